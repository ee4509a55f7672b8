/* check_mysql.c - placeholder */
#include "testutil.h"
START_TEST(test_placeholder) { ck_assert_int_eq(CDM_OK, 0); }
END_TEST
int main(void)
{
    Suite *s = suite_create("mysql");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_placeholder);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
