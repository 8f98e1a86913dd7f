/* The event envelope: the netstring live message written by functions.lua's
 * publish (entry id, then field name/value pairs) and the ssejson: ingest
 * payload. Pure functions; the decoder never reads outside [msg, msg+len). */
#include "broker/envelope.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

/* Longest publisher-supplied type or id, as functions.lua's MAX_FIELD. */
#define ENVELOPE_MAX_FIELD 256
/* Longest retry text functions.lua accepts: 10 decimal digits. */
#define ENVELOPE_MAX_RETRY 9999999999LL

/* ---- field checks -------------------------------------------------------- */

/* Returns 0 when s is 1..256 bytes without CR, LF or NUL, the rule of
 * functions.lua's bad_field, so the text fits on one SSE line. */
static int check_line_field(const char *s, size_t len)
{
    if (s == NULL || len == 0 || len > ENVELOPE_MAX_FIELD)
        return -1;
    for (size_t i = 0; i < len; i++)
        if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0')
            return -1;
    return 0;
}

int envelope_check_type(const char *s, size_t len)
{
    return check_line_field(s, len);
}

int envelope_check_mid(const char *s, size_t len)
{
    if (check_line_field(s, len) != 0 || s[0] == '#')
        return -1;
    return 0;
}

/* Parses the retry text functions.lua stores (1..10 decimal digits) into
 * *out; returns 0, or -1 when it is anything else. */
static int parse_retry(const char *s, size_t len, long *out)
{
    if (len == 0 || len > 10)
        return -1;
    long long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v > LONG_MAX)
        return -1;
    *out = (long)v;
    return 0;
}

/* ---- netstrings ---------------------------------------------------------- */

/* Reads the netstring "<len>:<bytes>," starting at *pos (strict: digits
 * without leading zeros, a colon, exactly len bytes, a comma). Returns 0
 * with the bytes in *s, *n and *pos moved past it, or -1 when malformed or
 * truncated. */
static int netstring_next(const char *msg, size_t len, size_t *pos, const char **s, size_t *n)
{
    size_t i = *pos, v = 0;
    while (i < len && msg[i] >= '0' && msg[i] <= '9') {
        v = v * 10 + (size_t)(msg[i] - '0');
        if (v > len) /* can never fit; also stops overflow */
            return -1;
        i++;
    }
    size_t digits = i - *pos;
    if (digits == 0 || (digits > 1 && msg[*pos] == '0'))
        return -1;
    if (i >= len || msg[i] != ':')
        return -1;
    i++;
    if (v >= len - i || msg[i + v] != ',') /* needs v bytes and the comma */
        return -1;
    *s = msg + i;
    *n = v;
    *pos = i + v + 1;
    return 0;
}

/* Appends one netstring; returns 0 or -ENOMEM. */
static int netstring_append(buf_t *out, const char *s, size_t n)
{
    if (buf_printf(out, "%zu:", n) != 0 || buf_append(out, s, n) != 0)
        return -ENOMEM;
    return buf_append_char(out, ',');
}

/* ---- live messages ------------------------------------------------------- */

/* Stores one name/value pair of a live message into *ev; returns 0, or -1
 * for a repeated or invalid known field. Unknown names are ignored. */
int envelope_take_field(envelope_t *ev, const char *name, size_t nlen, const char *v, size_t vlen)
{
    if (nlen == 4 && memcmp(name, "data", 4) == 0) {
        if (ev->data != NULL)
            return -1;
        ev->data = v, ev->data_len = vlen;
    } else if (nlen == 4 && memcmp(name, "type", 4) == 0) {
        if (ev->type != NULL || envelope_check_type(v, vlen) != 0)
            return -1;
        ev->type = v, ev->type_len = vlen;
    } else if (nlen == 3 && memcmp(name, "mid", 3) == 0) {
        if (ev->mid != NULL || envelope_check_mid(v, vlen) != 0)
            return -1;
        ev->mid = v, ev->mid_len = vlen;
    } else if (nlen == 5 && memcmp(name, "retry", 5) == 0) {
        if (ev->retry >= 0 || parse_retry(v, vlen, &ev->retry) != 0)
            return -1;
    } else if (nlen == 7 && memcmp(name, "private", 7) == 0) {
        ev->is_private = 1;
    } else if (nlen == 6 && memcmp(name, "topics", 6) == 0) {
        ev->topics = v, ev->topics_len = vlen;
    }
    return 0;
}

int envelope_decode_live(const char *msg, size_t len, envelope_t *out)
{
    envelope_t ev = {.retry = -1};
    size_t pos = 0, n, vlen;
    const char *s, *v;
    if (msg == NULL || netstring_next(msg, len, &pos, &s, &n) != 0 || stream_id_parse(s, n, &ev.id) != 0)
        return -1;
    while (pos < len) {
        if (netstring_next(msg, len, &pos, &s, &n) != 0 || netstring_next(msg, len, &pos, &v, &vlen) != 0)
            return -1;
        if (envelope_take_field(&ev, s, n, v, vlen) != 0)
            return -1;
    }
    if (ev.data == NULL)
        return -1;
    *out = ev;
    return 0;
}

/* Appends the optional fields of ev in functions.lua's order (type, retry,
 * mid); returns 0 or -ENOMEM. */
static int envelope_encode_optional(buf_t *out, const envelope_t *ev)
{
    int r = 0;
    if (ev->type != NULL) {
        r = netstring_append(out, "type", 4);
        r = r ? r : netstring_append(out, ev->type, ev->type_len);
    }
    if (r == 0 && ev->retry >= 0) {
        char num[24];
        int k = snprintf(num, sizeof num, "%ld", ev->retry);
        r = netstring_append(out, "retry", 5);
        r = r ? r : netstring_append(out, num, (size_t)k);
    }
    if (r == 0 && ev->mid != NULL) {
        r = netstring_append(out, "mid", 3);
        r = r ? r : netstring_append(out, ev->mid, ev->mid_len);
    }
    return r;
}

int envelope_encode_live(buf_t *out, const envelope_t *ev)
{
    size_t start = out->len;
    char id[STREAM_ID_MAX_TEXT];
    size_t idlen = stream_id_format(ev->id, id);
    int r = netstring_append(out, id, idlen);
    r = r ? r : netstring_append(out, "data", 4);
    r = r ? r : netstring_append(out, ev->data ? ev->data : "", ev->data ? ev->data_len : 0);
    r = r ? r : envelope_encode_optional(out, ev);
    if (r != 0) {
        buf_truncate(out, start);
        return -ENOMEM;
    }
    return 0;
}

/* ---- ssejson: payloads --------------------------------------------------- */

/* Stores one member of an ssejson object into *ev; returns NULL, or a short
 * static reason why the member is refused. */
static const char *json_take_member(envelope_t *ev, const char *key, json_t *value)
{
    if (strcmp(key, "data") == 0) {
        if (!json_is_string(value))
            return "data must be a string";
        ev->data = json_string_value(value), ev->data_len = json_string_length(value);
    } else if (strcmp(key, "type") == 0) {
        if (!json_is_string(value))
            return "type must be a string";
        ev->type = json_string_value(value), ev->type_len = json_string_length(value);
        if (envelope_check_type(ev->type, ev->type_len) != 0)
            return "bad type";
    } else if (strcmp(key, "id") == 0) {
        if (!json_is_string(value))
            return "id must be a string";
        ev->mid = json_string_value(value), ev->mid_len = json_string_length(value);
        if (envelope_check_mid(ev->mid, ev->mid_len) != 0)
            return "bad id";
    } else if (strcmp(key, "retry") == 0) {
        json_int_t r = json_is_integer(value) ? json_integer_value(value) : -1;
        if (r < 0 || r > ENVELOPE_MAX_RETRY || r > LONG_MAX)
            return "retry must be a non-negative integer of milliseconds";
        ev->retry = (long)r;
    } else {
        return "unknown key";
    }
    return NULL;
}

/* Fills *ev from a parsed JSON value; returns NULL, or a static reason. */
static const char *json_take_object(envelope_t *ev, json_t *root)
{
    if (!json_is_object(root))
        return "not a JSON object";
    const char *key;
    json_t *value;
    json_object_foreach(root, key, value)
    {
        const char *why = json_take_member(ev, key, value);
        if (why != NULL)
            return why;
    }
    return ev->data == NULL ? "data is required" : NULL;
}

int envelope_parse_json(const char *payload, size_t len, envelope_t *out, struct json_t **owner, char *err,
                        size_t errlen)
{
    envelope_t ev = {.retry = -1};
    json_error_t jerr;
    json_t *root = json_loadb(payload, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    const char *why = root ? json_take_object(&ev, root) : "invalid JSON";
    if (why != NULL) {
        json_decref(root);
        *owner = NULL;
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "%s", why);
        return -1;
    }
    *out = ev;
    *owner = root;
    return 0;
}
