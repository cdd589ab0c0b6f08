/* placeholder */
typedef int tc_placeholder_engine;
