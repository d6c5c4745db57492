/* The check macro shared by the C unit tests: each failed check prints its
 * place and condition; test_total prints the total and gives main's exit
 * status (non-zero on any failure). */
#ifndef TEST_CHECK_H
#define TEST_CHECK_H

#include <stdio.h>

static int test_run, test_failed;

#define CHECK(cond)                                                              \
    do {                                                                         \
        test_run++;                                                              \
        if (!(cond)) {                                                           \
            test_failed++;                                                       \
            printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);               \
        }                                                                        \
    } while (0)

static int test_total(void)
{
    printf("%d checks, %d failed\n", test_run, test_failed);
    return test_failed ? 1 : 0;
}

#endif
