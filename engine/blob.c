/* placeholder */
typedef int tc_placeholder_blob;
