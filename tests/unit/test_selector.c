/* Unit tests of Mercure topic selectors (node/selector.c): the Mercure
 * conformance cases, every RFC 6570 operator and modifier, invalid
 * templates, the size bounds and a template that would make a naive
 * backtracker exponential. */
#include "node/selector.h"

#include <stdlib.h>
#include <time.h>

#include "tests/unit/check.h"

/* Returns selector_match(selector, topic) for C strings; -1 when out of memory. */
static int match(const char *selector, const char *topic)
{
    selector_t *sel = selector_new(selector, strlen(selector));
    if (sel == NULL)
        return -1;
    int r = selector_match(sel, topic, strlen(topic));
    selector_free(sel);
    return r;
}

/* Returns selector_kind() of a C string selector; -1 when out of memory. */
static int kind(const char *selector)
{
    selector_t *sel = selector_new(selector, strlen(selector));
    if (sel == NULL)
        return -1;
    int k = selector_kind(sel);
    selector_free(sel);
    return k;
}

/* The Mercure conformance cases and the `*` and exact rules. */
static void test_mercure(void)
{
    const char *random = "https://example.net/foo/{random}";
    CHECK(kind(random) == 2);
    CHECK(match(random, "https://example.net/foo/0123456789abcdef0123456789abcdef01234567") == 1);
    CHECK(match(random, "https://example.net/bar/x") == 0);
    CHECK(match(random, "https://example.net/foo/a/b") == 0);
    CHECK(match(random, "https://example.net/foo/") == 1);

    CHECK(kind("https://example.net/foo/another-name") == 0);
    CHECK(match("https://example.net/foo/another-name", "https://example.net/foo/another-name") == 1);
    CHECK(match("https://example.net/foo/another-name", "https://example.net/foo/will-not-match}") == 0);
    CHECK(kind("https://example.net/foo/will-not-match}") == 0);
    CHECK(match("https://example.net/foo/will-not-match}", "https://example.net/foo/will-not-match}") == 1);
    CHECK(match("https://example.net/foo/will-not-match}", "https://example.net/foo/will-not-match") == 0);

    CHECK(kind("*") == 1);
    CHECK(match("*", "https://example.com/anything") == 1);
    CHECK(match("*", "") == 1);
    CHECK(kind("**") == 0);
    CHECK(match("**", "x") == 0);

    const char *users = "https://example.com/users/foo/{?topic}";
    CHECK(match(users, "https://example.com/users/foo/?topic=https%3A%2F%2Fexample.com%2Fbooks%2F1") == 1);
    CHECK(match(users, "https://example.com/users/foo/") == 1);
    CHECK(match(users, "https://example.com/users/foo/?topic=") == 1);
    CHECK(match(users, "https://example.com/users/foo/?topic=https://example.com/books/1") == 0);
    CHECK(match(users, "https://example.com/users/foo/?other=1") == 0);
    CHECK(match(users, "https://example.com/users/foo/?topic=1&x=2") == 0);

    /* byte-identical wins even where no expansion could produce the topic */
    CHECK(match("https://x/{id}", "https://x/{id}") == 1);
    CHECK(match("https://x/{id}", "https://x/7") == 1);
    CHECK(match("https://x/{id}", "https://x/{ie}") == 0);
    CHECK(match("", "") == 1);
    CHECK(match("", "x") == 0);
}

/* Every operator, several variables, explode and prefix modifiers. */
static void test_operators(void)
{
    /* {var}: unreserved and %XX only, possibly empty */
    CHECK(match("a{x}b", "ab") == 1);
    CHECK(match("a{x}b", "a-._~Zz09b") == 1);
    CHECK(match("a{x}b", "a%2F%2fb") == 1);
    CHECK(match("a{x}b", "a%2b") == 0);
    CHECK(match("a{x}b", "a%zzb") == 0);
    CHECK(match("a{x}b", "a%b") == 0);
    CHECK(match("{x}", "a,b") == 0);
    CHECK(match("{x}", "a b") == 0);
    CHECK(match("{x}", "caf\xc3\xa9") == 0);
    CHECK(match("{x,y}", "a,b") == 1);
    CHECK(match("{x,y}", "a") == 1);
    CHECK(match("{x,y}", ",") == 1);
    CHECK(match("{x,y}", "a,b,c") == 0);
    CHECK(match("{x*}", "a,b,c") == 1);

    /* {+var}: reserved characters too, so across slashes */
    CHECK(match("/a{+path}", "/a/b/c?d=e#f") == 1);
    CHECK(match("/a{path}", "/a/b/c") == 0);
    CHECK(match("{+path}/here", "foo/bar/here") == 1);
    CHECK(match("{+path}", "a%20b") == 1);
    CHECK(match("{+path}", "a b") == 0);
    CHECK(match("{+path}", "a{b") == 0);

    /* {#var} */
    CHECK(match("x{#frag}", "x#a/b?c") == 1);
    CHECK(match("x{#frag}", "x#") == 1);
    CHECK(match("x{#frag}", "x") == 1);
    CHECK(match("x{#frag}", "xa") == 0);
    CHECK(match("x{#a,b}", "x#1/2,3") == 1);

    /* {.var} */
    CHECK(match("file{.ext}", "file.txt") == 1);
    CHECK(match("file{.ext}", "file.tar.gz") == 1);
    CHECK(match("file{.ext}", "file") == 1);
    CHECK(match("file{.ext}", "file.") == 1);
    CHECK(match("file{.ext}", "file.t/x") == 0);
    CHECK(match("file{.ext}", "filetxt") == 0);

    /* {/var}, exploded lists and associative arrays (never mixed) */
    CHECK(match("/books{/id*}", "/books/1/2") == 1);
    CHECK(match("/books{/id*}", "/books/1") == 1);
    CHECK(match("/books{/id*}", "/books") == 1);
    CHECK(match("/books{/id*}", "/books/a=1/b=2") == 1);
    CHECK(match("/books{/id*}", "/books/a=1/2") == 0);
    CHECK(match("/books{/id*}", "/books1") == 0);
    CHECK(match("/books{/id}", "/books/1/2") == 0);
    CHECK(match("/books{/id,page}", "/books/1/2") == 1);
    CHECK(match("/books{/id,page}", "/books/1/2/3") == 0);

    /* {;var}: name, then =value unless the value is empty */
    CHECK(match("{;x,y}", ";x=1;y=2") == 1);
    CHECK(match("{;x,y}", ";x;y=2") == 1);
    CHECK(match("{;x,y}", ";y=2") == 1);
    CHECK(match("{;x,y}", ";x") == 1);
    CHECK(match("{;x,y}", "") == 1);
    CHECK(match("{;x,y}", ";y=2;x=1") == 0);
    CHECK(match("{;x,y}", ";x=1y=2") == 0);
    CHECK(match("{;x,y}", ";x=") == 0);
    CHECK(match("{;x,y}", ";") == 0);
    CHECK(match("{;list*}", ";list=a;list=b") == 1);
    CHECK(match("{;keys*}", ";a=1;b;c=3") == 1);

    /* {?var} and {&var}: name=value, "name=" when empty */
    CHECK(match("/s{?q,lang}", "/s?q=cat&lang=en") == 1);
    CHECK(match("/s{?q,lang}", "/s?lang=") == 1);
    CHECK(match("/s{?q,lang}", "/s?q") == 0);
    CHECK(match("/s{?q,lang}", "/s?") == 0);
    CHECK(match("/s{?q*}", "/s?q=1&q=2") == 1);
    CHECK(match("/s{?q*}", "/s?a=1&b=2") == 1);
    CHECK(match("/s{?q}{&r}", "/s?q=1&r=2") == 1);
    CHECK(match("?a=1{&q}", "?a=1&q=x") == 1);
    CHECK(match("?a=1{&q}", "?a=1") == 1);
    CHECK(match("?a=1{&q}", "?a=1&q=") == 1);
    CHECK(match("?a=1{&q}", "?a=1&r=x") == 0);
    CHECK(match("?a=1{&q}", "?a=1&q=x&q=y") == 0);

    /* prefix modifier: at most N characters, a %XX triplet being one */
    CHECK(match("{x:3}", "abc") == 1);
    CHECK(match("{x:3}", "ab") == 1);
    CHECK(match("{x:3}", "") == 1);
    CHECK(match("{x:3}", "%41bc") == 1);
    CHECK(match("{x:3}", "abcd") == 0);
    CHECK(match("{x:3}", "%41bcd") == 0);
    CHECK(match("{x:3}/{y}", "abc/defgh") == 1);
    CHECK(match("{x:1}{y:1}", "ab") == 1);
    CHECK(match("{x:1}{y:1}", "abc") == 0);
    CHECK(match("{;x:2}", ";x=ab") == 1);
    CHECK(match("{;x:2}", ";x=abc") == 0);
    CHECK(match("{;x:1}", ";x=a") == 1);
    CHECK(match("{?x:2}", "?x=") == 1);
    CHECK(match("{x:9999}", "abc") == 1);

    /* variable names: dots and %XX, literal in named expansions */
    CHECK(match("{;a.b}", ";a.b=1") == 1);
    CHECK(match("{;a%2Eb}", ";a%2Eb=1") == 1);
    CHECK(match("{;a%2Eb}", ";a.b=1") == 0);

    /* UTF-8 and %XX in literals compare byte for byte */
    CHECK(kind("https://x/caf\xc3\xa9/{id}") == 2);
    CHECK(match("https://x/caf\xc3\xa9/{id}", "https://x/caf\xc3\xa9/1") == 1);
    CHECK(match("https://x/%41/{id}", "https://x/%41/1") == 1);
    CHECK(match("https://x/%41/{id}", "https://x/A/1") == 0);
}

/* Not templates: they match only byte-identically. */
static void test_invalid(void)
{
    /* clang-format off */
    static const char *const bad[] = {
        /* braces */
        "{", "}{", "{}", "{x", "x}", "{x}{", "{{x}}",
        /* op-reserved operators */
        "{=x}", "{!x}", "{|x}", "{@x}", "{,x}",
        /* prefix out of 1..9999, or with explode */
        "{x:0}", "{x:05}", "{x:10000}", "{x:}", "{x:3*}", "{x*:3}",
        /* variable names */
        "{.x.}", "{x..y}", "{.}", "{x,}", "{x y}", "{x-y}",
        /* literals: space, quote, bad %XX, bad or non-character UTF-8, '|' */
        "a b{x}", "a\"{x}", "{x}%zz", "{x}%4", "\xff{x}", "\xc3{x}", "\xed\xa0\x80{x}",
        "{x}\xef\xbf\xbe", "{x}|",
    };
    /* clang-format on */
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK(kind(bad[i]) == 0);
        CHECK(match(bad[i], bad[i]) == 1);
        CHECK(match(bad[i], "") == 0);
        CHECK(match(bad[i], "x") == 0);
    }
    CHECK(kind("{x:9999}") == 2);
    CHECK(kind("{x_1.y%20z}") == 2);
    CHECK(kind("{+x,y*,z:3}") == 2);
    CHECK(kind("https://example.com/'{x}'") == 2);
    CHECK(kind("https://example.com/") == 0);

    /* any bytes, NUL included */
    selector_t *sel = selector_new("a\0{x}", 5);
    CHECK(sel != NULL && selector_kind(sel) == 0);
    CHECK(sel != NULL && selector_match(sel, "a\0{x}", 5) == 1);
    CHECK(sel != NULL && selector_match(sel, "a", 1) == 0);
    selector_free(sel);
    sel = selector_new(NULL, 0);
    CHECK(sel != NULL && selector_kind(sel) == 0 && selector_match(sel, NULL, 0) == 1);
    selector_free(sel);
}

/* Fills a selector of n expressions "{v0}{v1}..." into buf; returns its length. */
static size_t many_expressions(char *buf, int n)
{
    size_t len = 0;
    for (int i = 0; i < n; i++)
        len += (size_t)sprintf(buf + len, "{v%d}", i);
    return len;
}

/* The size bounds, and work that stays linear where backtracking is not. */
static void test_bounds(void)
{
    char buf[8192];
    size_t len = many_expressions(buf, 64);
    selector_t *sel = selector_new(buf, len);
    CHECK(sel != NULL && selector_kind(sel) == 2);
    CHECK(sel != NULL && selector_match(sel, "abc", 3) == 1);
    selector_free(sel);
    len = many_expressions(buf, 65);
    sel = selector_new(buf, len);
    CHECK(sel != NULL && selector_kind(sel) == 0);
    CHECK(sel != NULL && selector_match(sel, "abc", 3) == 0);
    CHECK(sel != NULL && selector_match(sel, buf, len) == 1);
    selector_free(sel);

    memset(buf, 'a', SELECTOR_MAX_TEMPLATE + 1);
    memcpy(buf, "{x}/", 4);
    sel = selector_new(buf, SELECTOR_MAX_TEMPLATE);
    CHECK(sel != NULL && selector_kind(sel) == 2);
    selector_free(sel);
    sel = selector_new(buf, SELECTOR_MAX_TEMPLATE + 1);
    CHECK(sel != NULL && selector_kind(sel) == 0);
    selector_free(sel);

    /* 40 adjacent expressions against a long topic that fails only at its
     * last byte: a backtracker tries C(n + 39, 39) splits */
    len = many_expressions(buf, 40);
    memcpy(buf + len, "!", 2);
    size_t topic_len = 20000;
    char *topic = malloc(topic_len);
    CHECK(topic != NULL);
    if (topic == NULL)
        return;
    memset(topic, 'a', topic_len);
    topic[topic_len - 1] = '?';
    sel = selector_new(buf, len + 1);
    CHECK(sel != NULL && selector_kind(sel) == 2);
    clock_t start = clock();
    CHECK(sel != NULL && selector_match(sel, topic, topic_len) == 0);
    topic[topic_len - 1] = '!';
    CHECK(sel != NULL && selector_match(sel, topic, topic_len) == 1);
    double seconds = (double)(clock() - start) / CLOCKS_PER_SEC;
    CHECK(seconds < 2.0);
    selector_free(sel);

    /* the largest program: exploded named variables fill the 4 KiB */
    len = 0;
    buf[len++] = '{';
    buf[len++] = ';';
    for (; len + 4 < SELECTOR_MAX_TEMPLATE; len += 3)
        memcpy(buf + len, "a*,", 3);
    buf[len - 1] = '}';
    sel = selector_new(buf, len);
    CHECK(sel != NULL && selector_kind(sel) == 2);
    memset(topic, 'x', topic_len);
    memcpy(topic, ";a=", 3);
    start = clock();
    CHECK(sel != NULL && selector_match(sel, topic, 1000) == 1);
    CHECK(sel != NULL && selector_match(sel, ";a=1;b", 6) == 1);
    CHECK(sel != NULL && selector_match(sel, ";a=1;", 5) == 0);
    seconds = (double)(clock() - start) / CLOCKS_PER_SEC;
    CHECK(seconds < 2.0);
    selector_free(sel);
    free(topic);
}

int main(void)
{
    test_mercure();
    test_operators();
    test_invalid();
    test_bounds();
    return CHECK_DONE();
}
