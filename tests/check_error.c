/* check_error.c - placeholder */
#include "testutil.h"
#include <string.h>
START_TEST(test_placeholder) { ck_assert_str_eq(cdm_strerror(CDM_OK), "success"); }
END_TEST
int main(void)
{
    Suite *s = suite_create("error");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_placeholder);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
