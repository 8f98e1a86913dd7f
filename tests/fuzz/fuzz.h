/* What every libFuzzer target in tests/fuzz/ shares: the entry point's
 * declaration and a check that stops the run with a message, so a broken
 * property is reported as a crash with its input saved. */
#ifndef SSEHUB_TESTS_FUZZ_FUZZ_H
#define SSEHUB_TESTS_FUZZ_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Aborts (a crash to libFuzzer) when cond is false. */
#define FUZZ_CHECK(cond)                                                                                     \
    do {                                                                                                     \
        if (!(cond)) {                                                                                       \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);                         \
            abort();                                                                                         \
        }                                                                                                    \
    } while (0)

/* Returns a heap copy of data[0..size) holding exactly size bytes (one for
 * an empty input), so AddressSanitizer flags any read past the end; never
 * NULL (aborts when out of memory). */
static inline char *fuzz_copy(const uint8_t *data, size_t size)
{
    char *p = malloc(size ? size : 1);
    FUZZ_CHECK(p != NULL);
    for (size_t i = 0; i < size; i++)
        p[i] = (char)data[i];
    return p;
}

#endif
