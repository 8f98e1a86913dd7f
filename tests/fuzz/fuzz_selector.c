/* Fuzz target for Mercure topic selectors (node/selector.c). The input is
 * "selector NUL topic" (without a NUL, the topic is the selector too).
 * selector_new never fails on any bytes, and matching never crashes; `*`
 * matches every topic; a selector matches its own bytes; a plain string
 * matches only itself; and a template matches its expansions with every
 * variable undefined and with every variable "v" (RFC 6570 section 3). */
#include <string.h>

#include "common/buf.h"
#include "node/selector.h"
#include "tests/fuzz/fuzz.h"

/* Appends the expansion of the expression e[0..len) (between the braces)
 * with every variable set to the string "v": the operator's first
 * character, then each variable ("v", or "name=v" for ; ? &) joined by its
 * separator. Modifiers change nothing for a one-character value. */
static void expand_expression(const char *e, size_t len, buf_t *out)
{
    static const char ops[] = "+#./;?&", firsts[] = "\0#./;?&", seps[] = ",,./;&&";
    const char *op = len > 0 ? memchr(ops, e[0], sizeof ops - 1) : NULL;
    char first = op ? firsts[op - ops] : 0, sep = op ? seps[op - ops] : ',';
    int named = op != NULL && strchr(";?&", *op) != NULL;
    size_t i = op != NULL;
    if (first != 0)
        FUZZ_CHECK(buf_append_char(out, first) == 0);
    for (int n = 0; i < len; n++) {
        size_t end = i;
        while (end < len && e[end] != ',')
            end++;
        size_t name_end = i;
        while (name_end < end && e[name_end] != '*' && e[name_end] != ':')
            name_end++;
        if (n > 0)
            FUZZ_CHECK(buf_append_char(out, sep) == 0);
        if (named)
            FUZZ_CHECK(buf_append(out, e + i, name_end - i) == 0 && buf_append_char(out, '=') == 0);
        FUZZ_CHECK(buf_append_char(out, 'v') == 0);
        i = end + 1;
    }
}

/* Appends an expansion of the template s: with every variable undefined
 * (each expression gives nothing), or with every one set to "v". */
static void expand(const char *s, size_t len, int defined, buf_t *out)
{
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '{') {
            const char *close = memchr(s + i, '}', len - i);
            FUZZ_CHECK(close != NULL); /* a valid template closes every brace */
            if (defined)
                expand_expression(s + i + 1, (size_t)(close - s) - i - 1, out);
            i = (size_t)(close - s);
            continue;
        }
        FUZZ_CHECK(buf_append_char(out, s[i]) == 0);
    }
}

/* Checks that a template matches one of its expansions. */
static void check_expansion(const selector_t *sel, const char *s, size_t len, int defined)
{
    buf_t topic = BUF_INIT;
    expand(s, len, defined, &topic);
    FUZZ_CHECK(selector_match(sel, topic.base ? topic.base : "", topic.len) == 1);
    buf_free(&topic);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, '\0', size);
    size_t sel_len = nul != NULL ? (size_t)(nul - data) : size;
    char *sel_text = fuzz_copy(data, sel_len);
    char *topic = nul != NULL ? fuzz_copy(nul + 1, size - sel_len - 1) : fuzz_copy(data, size);
    size_t topic_len = nul != NULL ? size - sel_len - 1 : size;

    selector_t *sel = selector_new(sel_text, sel_len);
    selector_t *any = selector_new("*", 1);
    FUZZ_CHECK(sel != NULL && any != NULL);
    int kind = selector_kind(sel);
    FUZZ_CHECK(kind >= 0 && kind <= 2);
    FUZZ_CHECK((kind == 1) == (sel_len == 1 && sel_text[0] == '*'));
    FUZZ_CHECK(selector_match(any, topic, topic_len) == 1);
    FUZZ_CHECK(selector_match(sel, sel_text, sel_len) == 1);
    int m = selector_match(sel, topic, topic_len);
    FUZZ_CHECK(m == 0 || m == 1);
    if (kind == 0)
        FUZZ_CHECK(m == (topic_len == sel_len && memcmp(topic, sel_text, sel_len) == 0));
    if (kind == 2) {
        check_expansion(sel, sel_text, sel_len, 0);
        check_expansion(sel, sel_text, sel_len, 1);
    }
    selector_free(sel);
    selector_free(any);
    free(sel_text);
    free(topic);
    return 0;
}
