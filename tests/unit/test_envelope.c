/* Unit tests for broker/envelope.c: the live netstring codec (what
 * functions.lua publishes), its strictness on truncated and malformed input
 * (every buffer is an exact-size heap copy, so ASan catches any read past
 * the end), the field checks and the ssejson: parser. */
#include <jansson.h>
#include <stdlib.h>

#include "broker/envelope.h"
#include "check.h"

/* Decodes a copy of exactly len bytes in its own allocation (so reading one
 * byte too far is a heap overflow ASan reports); returns decode's result. */
static int decode_exact(const char *msg, size_t len, envelope_t *out)
{
    char *copy = malloc(len ? len : 1);
    if (len)
        memcpy(copy, msg, len);
    int r = envelope_decode_live(copy, len, out);
    free(copy);
    return r;
}
/* Like decode_exact, but the copy stays alive until the next call (so the
 * fields can be read); kept_free releases the last one. */
static char *kept;
static int decode_kept(const char *msg, size_t len, envelope_t *out)
{
    free(kept);
    kept = malloc(len ? len : 1);
    if (len)
        memcpy(kept, msg, len);
    return envelope_decode_live(kept, len, out);
}
static void kept_free(void)
{
    free(kept);
    kept = NULL;
}
#define DEC(lit, ev) decode_kept((lit), sizeof(lit) - 1, (ev))

/* The exact bytes functions.lua writes for a full event decode field by field. */
static void test_decode_known(void)
{
    static const char msg[] = "15:1700000000000-7,4:data,5:hello,4:type,3:foo,5:retry,4:5000,3:mid,2:m1,";
    envelope_t ev;
    /* decode in place: fields point into the message */
    CHECK(envelope_decode_live(msg, sizeof msg - 1, &ev) == 0);
    CHECK(ev.id.ms == 1700000000000ULL && ev.id.seq == 7);
    CHECK_MEM(ev.data, ev.data_len, "hello");
    CHECK_MEM(ev.type, ev.type_len, "foo");
    CHECK_MEM(ev.mid, ev.mid_len, "m1");
    CHECK(ev.retry == 5000);
    CHECK(ev.data == msg + 28);

    CHECK(DEC("3:1-0,4:data,0:,", &ev) == 0); /* empty data, nothing optional */
    CHECK(ev.data != NULL && ev.data_len == 0 && ev.type == NULL && ev.mid == NULL && ev.retry == -1);
    CHECK(ev.type_len == 0 && ev.mid_len == 0);
    /* unknown names are skipped, wherever they are */
    CHECK(DEC("3:1-0,7:private,1:1,4:data,1:x,6:topics,3:a,b,4:prev,3:0-0,", &ev) == 0);
    CHECK_MEM(ev.data, ev.data_len, "x");
    /* binary data: commas, colons, NUL, CR LF */
    CHECK(DEC("3:1-0,4:data,6:,:\0\r\n:,", &ev) == 0);
    CHECK(ev.data_len == 6 && memcmp(ev.data, ",:\0\r\n:", 6) == 0);
    kept_free();
}

#define M(lit)                                                                                               \
    {                                                                                                        \
        (lit), sizeof(lit) - 1                                                                               \
    }

/* Malformed messages are refused, and *out is left alone. */
static void test_decode_malformed(void)
{
    envelope_t ev, untouched;
    memset(&untouched, 0x5a, sizeof untouched);
    /* sizeof keeps the NUL bytes some of them hold */
    static const struct {
        const char *s;
        size_t len;
    } bad[] = {
        M(""),
        M("3:1-0,"),                  /* no data */
        M("3:1-0,4:data,"),           /* name without value */
        M("3:1-0,4:data,1:x,4:type"), /* truncated name */
        M("3:1-x,4:data,1:x,"),       /* bad id */
        M("0:,4:data,1:x,"),          /* empty id */
        M("4:01-0,4:data,1:x,"),      /* id with a leading zero */
        M("03:1-0,4:data,1:x,"),      /* length with a leading zero */
        M("3:1-0,4:data,01:x,"),
        M("3:1-0,4:data,1:x;"), /* no comma */
        M("3:1-0,4:data,2:x,"), /* length too long */
        M("3:1-0,4:data,0:x,"), /* length too short */
        M("3:1-0,4:data,:x,"),  /* no digits */
        M("3:1-0,4:data,-1:x,"),
        M("3:1-0,4:data,+1:x,"),
        M("3:1-0,4:data, 1:x,"),
        M("3:1-0,4:data,1 :x,"),
        M("3:1-0,4:data,99999999999999999999999:x,"), /* huge length */
        M("3:1-0,4:data,18446744073709551617:x,"),    /* wraps 64 bits */
        M("3:1-0,4:data,1:x,4:data,1:y,"),            /* repeated field */
        M("3:1-0,4:data,1:x,4:type,0:,"),             /* empty type */
        M("3:1-0,4:data,1:x,4:type,2:a\n,"),          /* type with LF */
        M("3:1-0,4:data,1:x,3:mid,2:#1,"),            /* mid starting with # */
        M("3:1-0,4:data,1:x,3:mid,3:a\0b,"),          /* mid with NUL */
        M("3:1-0,4:data,1:x,5:retry,2:1a,"),          /* retry not a number */
        M("3:1-0,4:data,1:x,5:retry,0:,"),
        M("3:1-0,4:data,1:x,5:retry,11:12345678901,"), /* more digits than Lua allows */
        M("3:1-0,4:data,1:x,5:retry,2:-1,"),
        M("3:1-0,4:data,1:x,junk"), /* trailing bytes */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memcpy(&ev, &untouched, sizeof ev);
        int r = decode_exact(bad[i].s, bad[i].len, &ev);
        if (r != -1)
            fprintf(stderr, "accepted bad message #%zu\n", i);
        CHECK(r == -1);
        CHECK(memcmp(&ev, &untouched, sizeof ev) == 0);
    }
    CHECK(envelope_decode_live(NULL, 0, &ev) == -1);
}

/* Fills buf with n random bytes biased toward the netstring syntax. */
static void random_bytes(unsigned *seed, char *buf, size_t n)
{
    static const char special[] = ",:0123456789\r\n\0";
    for (size_t i = 0; i < n; i++)
        buf[i] = (rand_r(seed) % 3) ? (char)rand_r(seed) : special[rand_r(seed) % (sizeof special - 1)];
}

/* Fills a random line field (type or mid) that passes its check. */
static size_t random_field(unsigned *seed, char *buf, size_t max)
{
    size_t n = 1 + (size_t)rand_r(seed) % max;
    for (size_t i = 0; i < n; i++) {
        char c;
        do
            c = (char)rand_r(seed);
        while (c == '\r' || c == '\n' || c == '\0' || (i == 0 && c == '#'));
        buf[i] = c;
    }
    return n;
}

/* Returns nonzero when two events carry the same fields. */
static int same_event(const envelope_t *a, const envelope_t *b)
{
    return a->id.ms == b->id.ms && a->id.seq == b->id.seq && a->data_len == b->data_len &&
           memcmp(a->data, b->data, a->data_len) == 0 && (a->type == NULL) == (b->type == NULL) &&
           a->type_len == b->type_len && (!a->type || memcmp(a->type, b->type, a->type_len) == 0) &&
           (a->mid == NULL) == (b->mid == NULL) && a->mid_len == b->mid_len &&
           (!a->mid || memcmp(a->mid, b->mid, a->mid_len) == 0) && a->retry == b->retry;
}

/* Marks where whole messages could end: ends[k] is the number of
 * netstrings in msg[0..k) when that is the id plus whole name/value pairs
 * (an odd count), else 0. */
static void netstring_ends(const char *msg, size_t len, unsigned char *ends)
{
    memset(ends, 0, len + 1);
    size_t pos = 0;
    unsigned char count = 0;
    while (pos < len) {
        size_t n = strtoul(msg + pos, NULL, 10);
        pos = (size_t)((const char *)memchr(msg + pos, ':', len - pos) - msg) + 1 + n + 1;
        count++;
        if (count % 2 == 1)
            ends[pos] = count;
    }
}

/* Random events survive encode + decode exactly; every cut of an encoding
 * that is not at a field boundary is refused, and a cut at a boundary
 * decodes to the fields before it; random corruption never crashes. */
static void test_round_trip_and_cuts(void)
{
    unsigned seed = 4242;
    buf_t b = BUF_INIT;
    int bad_round = 0, bad_cut = 0, boundary_ok = 0;
    char data[300], type[300], mid[300];
    for (int round = 0; round < 2000; round++) {
        envelope_t ev = {.id = {(uint64_t)rand_r(&seed) * 1000003ULL, (uint64_t)(rand_r(&seed) % 5)},
                         .retry = -1};
        ev.data = data;
        ev.data_len = (size_t)rand_r(&seed) % (round % 10 == 0 ? 300 : 20);
        random_bytes(&seed, data, ev.data_len);
        if (rand_r(&seed) % 2)
            ev.type = type, ev.type_len = random_field(&seed, type, 256);
        if (rand_r(&seed) % 2)
            ev.retry = rand_r(&seed) % 3 ? rand_r(&seed) % 100000 : 9999999999L;
        if (rand_r(&seed) % 2)
            ev.mid = mid, ev.mid_len = random_field(&seed, mid, 256);
        buf_clear(&b);
        CHECK(envelope_encode_live(&b, &ev) == 0);
        envelope_t back;
        if (decode_exact(b.base, b.len, &back) != 0)
            bad_round++;
        /* in place, so the fields can be compared */
        if (envelope_decode_live(b.base, b.len, &back) != 0 || !same_event(&ev, &back))
            bad_round++;
        unsigned char *ends = malloc(b.len + 1);
        netstring_ends(b.base, b.len, ends);
        for (size_t cut = 0; cut < b.len; cut++) {
            /* a cut after the data value (the 3rd netstring) or a later value is a whole,
             * shorter message; every other cut is malformed */
            int want = ends[cut] >= 3 ? 0 : -1;
            int r = decode_exact(b.base, cut, &back);
            if (r != want)
                bad_cut++;
            boundary_ok += want == 0 && r == 0;
        }
        free(ends);
        for (int k = 0; k < 20; k++) { /* corruption: must not crash or over-read */
            char *copy = malloc(b.len);
            memcpy(copy, b.base, b.len);
            copy[(size_t)rand_r(&seed) % b.len] = (char)rand_r(&seed);
            (void)envelope_decode_live(copy, b.len, &back);
            free(copy);
        }
    }
    CHECK(bad_round == 0);
    CHECK(bad_cut == 0);
    CHECK(boundary_ok > 0);
    buf_free(&b);
}

/* A data-only message is refused at every cut but the full length. */
static void test_cuts_data_only(void)
{
    static const char msg[] = "15:1700000000000-0,4:data,11:a,b:c\r\n\0xyz,";
    size_t len = sizeof msg - 1;
    envelope_t ev;
    int accepted = 0;
    for (size_t cut = 0; cut < len; cut++)
        accepted += decode_exact(msg, cut, &ev) == 0;
    CHECK(accepted == 0);
    CHECK(decode_exact(msg, len, &ev) == 0);
    CHECK(ev.data_len == 11);
}

/* The encoder writes functions.lua's exact bytes and order. */
static void test_encode_exact(void)
{
    buf_t b = BUF_INIT;
    envelope_t ev = {.id = {1700000000000ULL, 0},
                     .data = "hi",
                     .data_len = 2,
                     .type = "t",
                     .type_len = 1,
                     .mid = "m",
                     .mid_len = 1,
                     .retry = 250};
    CHECK(envelope_encode_live(&b, &ev) == 0);
    CHECK_MEM(b.base, b.len, "15:1700000000000-0,4:data,2:hi,4:type,1:t,5:retry,3:250,3:mid,1:m,");
    buf_clear(&b);
    envelope_t bare = {.id = {5, 1}, .retry = -1};
    CHECK(envelope_encode_live(&b, &bare) == 0);
    CHECK_MEM(b.base, b.len, "3:5-1,4:data,0:,");
    buf_free(&b);
}

static void test_field_checks(void)
{
    char long_field[258];
    memset(long_field, 'a', sizeof long_field);
    CHECK(envelope_check_type("message", 7) == 0);
    CHECK(envelope_check_type("#ok", 3) == 0);
    CHECK(envelope_check_type("", 0) == -1);
    CHECK(envelope_check_type("a\rb", 3) == -1);
    CHECK(envelope_check_type("a\nb", 3) == -1);
    CHECK(envelope_check_type("a\0b", 3) == -1);
    CHECK(envelope_check_type(long_field, 256) == 0);
    CHECK(envelope_check_type(long_field, 257) == -1);
    CHECK(envelope_check_mid("id-1", 4) == 0);
    CHECK(envelope_check_mid("#1", 2) == -1);
    CHECK(envelope_check_mid("1#", 2) == 0);
    CHECK(envelope_check_mid("", 0) == -1);
    CHECK(envelope_check_mid("a\n", 2) == -1);
    CHECK(envelope_check_mid(long_field, 256) == 0);
    CHECK(envelope_check_mid(long_field, 257) == -1);
}

/* Parses a JSON literal; returns parse's result, leaving the owner in *owner. */
static int parse(const char *json, size_t len, envelope_t *ev, json_t **owner, char *err)
{
    return envelope_parse_json(json, len, ev, owner, err, 128);
}
#define PARSE(lit, ev, owner, err) parse((lit), sizeof(lit) - 1, (ev), (owner), (err))

static void test_json_good(void)
{
    envelope_t ev;
    json_t *owner = NULL;
    char err[128];
    CHECK(PARSE("{\"data\":\"hello\"}", &ev, &owner, err) == 0);
    CHECK(owner != NULL);
    CHECK_MEM(ev.data, ev.data_len, "hello");
    CHECK(ev.type == NULL && ev.mid == NULL && ev.retry == -1 && ev.id.ms == 0 && ev.id.seq == 0);
    json_decref(owner);

    CHECK(PARSE("{\"type\":\"upd\",\"data\":\"a\\nb\",\"retry\":5000,\"id\":\"m-1\"}", &ev, &owner, err) ==
          0);
    CHECK_MEM(ev.data, ev.data_len, "a\nb");
    CHECK_MEM(ev.type, ev.type_len, "upd");
    CHECK_MEM(ev.mid, ev.mid_len, "m-1");
    CHECK(ev.retry == 5000);
    json_decref(owner);

    CHECK(PARSE(" {\"data\":\"x\\u0000y\", \"retry\":0} \n", &ev, &owner, err) == 0);
    CHECK(ev.data_len == 3 && memcmp(ev.data, "x\0y", 3) == 0);
    CHECK(ev.retry == 0);
    json_decref(owner);

    CHECK(PARSE("{\"data\":\"\",\"retry\":9999999999}", &ev, &owner, err) == 0);
    CHECK(ev.data_len == 0 && ev.retry == 9999999999L);
    json_decref(owner);

    CHECK(PARSE("{\"data\":\"\\u65e5\"}", &ev, &owner, err) == 0);
    CHECK_MEM(ev.data, ev.data_len, "\xE6\x97\xA5");
    json_decref(owner);
}

/* Bad payloads fail with a reason, no owner and an untouched *out. */
static void test_json_bad(void)
{
    static const char *bad[] = {
        "",
        "not json",
        "{\"data\":\"x\"} trailing",
        "[\"data\"]",
        "\"data\"",
        "{}",
        "{\"data\":1}",
        "{\"data\":null}",
        "{\"data\":[\"x\"]}",
        "{\"type\":\"t\"}",
        "{\"data\":\"x\",\"extra\":1}",
        "{\"data\":\"x\",\"Data\":\"y\"}",
        "{\"data\":\"x\",\"data\":\"y\"}",
        "{\"data\":\"x\",\"retry\":-1}",
        "{\"data\":\"x\",\"retry\":1.5}",
        "{\"data\":\"x\",\"retry\":\"5\"}",
        "{\"data\":\"x\",\"retry\":10000000000}",
        "{\"data\":\"x\",\"retry\":null}",
        "{\"data\":\"x\",\"type\":\"\"}",
        "{\"data\":\"x\",\"type\":\"a\\nb\"}",
        "{\"data\":\"x\",\"type\":\"a\\u0000b\"}",
        "{\"data\":\"x\",\"type\":7}",
        "{\"data\":\"x\",\"id\":\"#1\"}",
        "{\"data\":\"x\",\"id\":\"\"}",
        "{\"data\":\"x\",\"id\":1}",
        "{\"data\":\"x\",\"id\":\"a\\rb\"}",
        "{\"data\":\"\xff\"}",
        "{\"data\":\"x\"",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        envelope_t ev, untouched;
        memset(&untouched, 0x5a, sizeof untouched);
        memcpy(&ev, &untouched, sizeof ev);
        json_t *owner = (json_t *)&ev; /* must come back NULL */
        char err[128] = "";
        int r = parse(bad[i], strlen(bad[i]), &ev, &owner, err);
        if (r != -1)
            fprintf(stderr, "accepted bad JSON #%zu: %s\n", i, bad[i]);
        CHECK(r == -1);
        CHECK(owner == NULL);
        CHECK(err[0] != '\0');
        CHECK(memcmp(&ev, &untouched, sizeof ev) == 0);
    }
    /* a long type is refused, a 256-byte one accepted */
    char json[400];
    char field[258];
    memset(field, 'a', sizeof field);
    envelope_t ev;
    json_t *owner;
    char err[128];
    int n = snprintf(json, sizeof json, "{\"data\":\"x\",\"type\":\"%.*s\"}", 257, field);
    CHECK(parse(json, (size_t)n, &ev, &owner, err) == -1);
    n = snprintf(json, sizeof json, "{\"data\":\"x\",\"type\":\"%.*s\"}", 256, field);
    CHECK(parse(json, (size_t)n, &ev, &owner, err) == 0);
    json_decref(owner);
    /* the reason is short and says what is wrong */
    CHECK(PARSE("{\"data\":\"x\",\"nope\":1}", &ev, &owner, err) == -1);
    CHECK(strstr(err, "unknown") != NULL);
}

int main(void)
{
    test_decode_known();
    test_decode_malformed();
    test_round_trip_and_cuts();
    test_cuts_data_only();
    test_encode_exact();
    test_field_checks();
    test_json_good();
    test_json_bad();
    return CHECK_DONE();
}
