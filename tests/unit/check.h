/* A tiny unit-test harness: CHECK records a failure with its location and
 * goes on; CHECK_DONE prints "N passed, N failed" and yields the exit code. */
#ifndef SSEHUB_TESTS_CHECK_H
#define SSEHUB_TESTS_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_passed, check_failed;

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (cond) {                                                                  \
            check_passed++;                                                          \
        } else {                                                                     \
            check_failed++;                                                          \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                            \
    } while (0)

/* Compares a byte range with an expected C string literal, printing both. */
#define CHECK_MEM(ptr, len, lit)                                                           \
    do {                                                                                   \
        size_t l_ = (len);                                                                 \
        if (l_ == sizeof(lit) - 1 && memcmp((ptr), (lit), l_) == 0) {                      \
            check_passed++;                                                                \
        } else {                                                                           \
            check_failed++;                                                                \
            fprintf(stderr, "%s:%d: got [%.*s] (%zu bytes), want [%s]\n", __FILE__, __LINE__, \
                    (int)l_, (const char *)(ptr), l_, lit);                                \
        }                                                                                  \
    } while (0)

#define CHECK_DONE()                                                  \
    (printf("%d passed, %d failed\n", check_passed, check_failed),    \
     check_failed ? 1 : 0)

#endif
