/* Fuzz target for the event envelope (broker/envelope.c): the same bytes go
 * to envelope_decode_live (netstring live messages) and to
 * envelope_parse_json (ssejson: payloads). Whatever either accepts must
 * pass the field checks, point inside the input, and survive
 * envelope_encode_live and a second decode unchanged; the encoding of a
 * decoded message is canonical (it encodes to itself). */
#include <jansson.h>
#include <string.h>

#include "broker/envelope.h"
#include "common/buf.h"
#include "tests/fuzz/fuzz.h"

/* Returns nonzero when two optional fields hold the same bytes. */
static int same_field(const char *a, size_t alen, const char *b, size_t blen)
{
    if ((a == NULL) != (b == NULL) || alen != blen)
        return 0;
    return alen == 0 || memcmp(a, b, alen) == 0;
}

/* Checks what every accepted envelope must satisfy. */
static void check_fields(const envelope_t *ev)
{
    FUZZ_CHECK(ev->data != NULL);
    FUZZ_CHECK(ev->type == NULL || envelope_check_type(ev->type, ev->type_len) == 0);
    FUZZ_CHECK(ev->mid == NULL || envelope_check_mid(ev->mid, ev->mid_len) == 0);
    FUZZ_CHECK(ev->type != NULL || ev->type_len == 0);
    FUZZ_CHECK(ev->mid != NULL || ev->mid_len == 0);
    FUZZ_CHECK(ev->retry >= -1 && ev->retry <= 9999999999L);
}

/* Returns nonzero when [p, p+n) lies inside [base, base+len). */
static int inside(const char *p, size_t n, const char *base, size_t len)
{
    return p == NULL || (p >= base && n <= len && (size_t)(p - base) <= len - n);
}

/* Encodes ev, decodes the result, and checks the fields the encoding
 * carries come back, and that re-encoding gives the same bytes. */
static void check_round_trip(const envelope_t *ev)
{
    buf_t msg = BUF_INIT, again = BUF_INIT;
    envelope_t back;
    FUZZ_CHECK(envelope_encode_live(&msg, ev) == 0);
    char *exact = fuzz_copy((const uint8_t *)msg.base, msg.len);
    FUZZ_CHECK(envelope_decode_live(exact, msg.len, &back) == 0);
    FUZZ_CHECK(stream_id_cmp(back.id, ev->id) == 0);
    FUZZ_CHECK(same_field(back.data, back.data_len, ev->data, ev->data_len));
    FUZZ_CHECK(same_field(back.type, back.type_len, ev->type, ev->type_len));
    FUZZ_CHECK(same_field(back.mid, back.mid_len, ev->mid, ev->mid_len));
    FUZZ_CHECK(back.retry == ev->retry);
    FUZZ_CHECK(envelope_encode_live(&again, &back) == 0);
    FUZZ_CHECK(again.len == msg.len && memcmp(again.base, msg.base, msg.len) == 0);
    free(exact);
    buf_free(&msg);
    buf_free(&again);
}

static void check_live(const char *s, size_t len)
{
    envelope_t ev;
    if (envelope_decode_live(s, len, &ev) != 0)
        return;
    check_fields(&ev);
    FUZZ_CHECK(inside(ev.data, ev.data_len, s, len) && inside(ev.type, ev.type_len, s, len));
    FUZZ_CHECK(inside(ev.mid, ev.mid_len, s, len) && inside(ev.topics, ev.topics_len, s, len));
    check_round_trip(&ev);
}

static void check_json(const char *s, size_t len)
{
    envelope_t ev;
    json_t *owner = NULL;
    char err[128];
    if (envelope_parse_json(s, len, &ev, &owner, err, sizeof err) != 0) {
        FUZZ_CHECK(owner == NULL && strlen(err) > 0);
        return;
    }
    FUZZ_CHECK(owner != NULL);
    check_fields(&ev);
    FUZZ_CHECK(ev.id.ms == 0 && ev.id.seq == 0 && !ev.is_private && ev.topics == NULL);
    check_round_trip(&ev);
    json_decref(owner);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_copy(data, size);
    check_live(s, size);
    check_json(s, size);
    free(s);
    return 0;
}
