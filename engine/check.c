/* placeholder */
typedef int tc_placeholder_check;
