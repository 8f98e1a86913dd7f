/* JWS compact serialization (RFC 7515) verification for Mercure tokens:
 * strict base64url, a header whose "alg" must match the key, HMAC or RSA
 * signatures through OpenSSL, and the claims parsed with jansson only after
 * the signature holds. No state outside the keys, which are read-only. */
#include "common/jwt.h"

#include "common/buf.h"
#include "common/text.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

struct jwt_key {
    jwt_alg_t alg;
    unsigned char *secret; /* HS256: the shared secret, secret_len bytes */
    size_t secret_len;
    EVP_PKEY *pkey; /* RS256: an RSA public key of JWT_MIN_RSA_BITS or more */
};

/* ---- keys --------------------------------------------------------------- */

int jwt_alg_parse(const char *name, jwt_alg_t *out)
{
    if (strcmp(name, "HS256") == 0)
        *out = JWT_ALG_HS256;
    else if (strcmp(name, "RS256") == 0)
        *out = JWT_ALG_RS256;
    else
        return -1;
    return 0;
}

/* Copies an HMAC secret into k; returns 0, or -1 with a reason in err. */
static int key_set_secret(jwt_key_t *k, const char *material, size_t len, char *err, size_t errlen)
{
    if (len == 0) {
        snprintf(err, errlen, "HS256 key: the secret is empty");
        return -1;
    }
    if (len > INT_MAX) { /* HMAC() takes an int length */
        snprintf(err, errlen, "HS256 key: the secret is too long");
        return -1;
    }
    k->secret = malloc(len);
    if (k->secret == NULL) {
        snprintf(err, errlen, "HS256 key: out of memory");
        return -1;
    }
    memcpy(k->secret, material, len);
    k->secret_len = len;
    return 0;
}

/* Returns the public key of the first PEM public key (or, when cert, of the
 * first PEM certificate) in pem, or NULL. Leaves OpenSSL's per-thread error
 * queue empty: a stale entry there would mislead the next TLS call on this
 * thread. */
static EVP_PKEY *pem_public_key(const char *pem, size_t len, int cert)
{
    EVP_PKEY *pkey = NULL;
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    if (bio != NULL && !cert) {
        pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    } else if (bio != NULL) {
        X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
        pkey = x != NULL ? X509_get_pubkey(x) : NULL;
        X509_free(x);
    }
    BIO_free(bio);
    ERR_clear_error();
    return pkey;
}

/* Loads the RSA public key of a PEM text into k; returns 0, or -1 with a
 * reason in err. */
static int key_set_rsa(jwt_key_t *k, const char *pem, size_t len, char *err, size_t errlen)
{
    if (len > JWT_MAX_KEY_FILE_LEN) {
        snprintf(err, errlen, "RS256 key: PEM text over %d bytes", JWT_MAX_KEY_FILE_LEN);
        return -1;
    }
    k->pkey = pem_public_key(pem, len, 0);
    if (k->pkey == NULL)
        k->pkey = pem_public_key(pem, len, 1);
    if (k->pkey == NULL) {
        snprintf(err, errlen, "RS256 key: no PEM public key (BEGIN PUBLIC KEY) or certificate found");
        return -1;
    }
    if (EVP_PKEY_get_base_id(k->pkey) != EVP_PKEY_RSA) {
        const char *type = EVP_PKEY_get0_type_name(k->pkey);
        snprintf(err, errlen, "RS256 key: an RSA key is required, this one is %s", type ? type : "unknown");
        return -1;
    }
    int bits = EVP_PKEY_get_bits(k->pkey);
    if (bits < JWT_MIN_RSA_BITS) {
        snprintf(err, errlen, "RS256 key: RSA key of %d bits, at least %d required", bits, JWT_MIN_RSA_BITS);
        return -1;
    }
    return 0;
}

jwt_key_t *jwt_key_new(jwt_alg_t alg, const char *material, size_t len, char *err, size_t errlen)
{
    if (alg != JWT_ALG_HS256 && alg != JWT_ALG_RS256) {
        snprintf(err, errlen, "unknown JWT algorithm %d", (int)alg);
        return NULL;
    }
    jwt_key_t *k = calloc(1, sizeof(*k));
    if (k == NULL) {
        snprintf(err, errlen, "JWT key: out of memory");
        return NULL;
    }
    k->alg = alg;
    int rc = alg == JWT_ALG_HS256 ? key_set_secret(k, material, len, err, errlen)
                                  : key_set_rsa(k, material, len, err, errlen);
    if (rc != 0) {
        jwt_key_free(k);
        return NULL;
    }
    return k;
}

/* Reads a whole file of at most JWT_MAX_KEY_FILE_LEN bytes into out;
 * returns 0, or -1 with a reason naming the path in err. */
static int read_key_file(const char *path, buf_t *out, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    int rc = 0;
    for (;;) {
        if (out->len > JWT_MAX_KEY_FILE_LEN) {
            snprintf(err, errlen, "%s: larger than %d bytes", path, JWT_MAX_KEY_FILE_LEN);
            rc = -1;
            break;
        }
        if (buf_reserve(out, 4096) != 0) {
            snprintf(err, errlen, "%s: out of memory", path);
            rc = -1;
            break;
        }
        size_t n = fread(out->base + out->len, 1, out->cap - out->len - 1, f);
        out->len += n;
        out->base[out->len] = '\0';
        if (n == 0) {
            if (ferror(f)) {
                snprintf(err, errlen, "%s: read error", path);
                rc = -1;
            }
            break;
        }
    }
    fclose(f);
    return rc;
}

jwt_key_t *jwt_key_from_setting(jwt_alg_t alg, const char *value, char *err, size_t errlen)
{
    if (alg == JWT_ALG_HS256)
        return jwt_key_new(alg, value, strlen(value), err, errlen);
    buf_t pem = BUF_INIT;
    jwt_key_t *k = NULL;
    if (read_key_file(value, &pem, err, errlen) == 0) {
        char why[200] = "";
        k = jwt_key_new(alg, pem.base, pem.len, why, sizeof(why));
        if (k == NULL)
            snprintf(err, errlen, "%s: %s", value, why);
    }
    buf_free(&pem);
    return k;
}

void jwt_key_free(jwt_key_t *k)
{
    if (k == NULL)
        return;
    OPENSSL_clear_free(k->secret, k->secret_len);
    EVP_PKEY_free(k->pkey);
    free(k);
}

jwt_alg_t jwt_key_alg(const jwt_key_t *k)
{
    return k->alg;
}

/* ---- base64url ---------------------------------------------------------- */

/* Decodes unpadded base64url s[0..len) into out (room for len * 3 / 4
 * bytes) and sets *outlen. Returns 0, or -1 when a character is outside the
 * alphabet, the length cannot be unpadded base64, or the unused low bits of
 * the last character are not zero: each byte string has one spelling. */
static int b64url_decode(const char *s, size_t len, unsigned char *out, size_t *outlen)
{
    if (len % 4 == 1)
        return -1;
    unsigned acc = 0, bits = 0;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        int v = text_base64url_value(s[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (unsigned char)(acc >> bits);
        }
    }
    if ((acc & ((1u << bits) - 1)) != 0)
        return -1;
    *outlen = n;
    return 0;
}

/* ---- token structure and signature -------------------------------------- */

enum { JWS_HEADER, JWS_PAYLOAD, JWS_SIGNATURE, JWS_PARTS };

/* A token cut at its dots: each part as text and decoded. */
typedef struct jws {
    const char *text[JWS_PARTS];
    size_t textlen[JWS_PARTS];
    unsigned char *raw[JWS_PARTS]; /* decoded bytes, in one buffer owned by the caller */
    size_t rawlen[JWS_PARTS];
} jws_t;

/* Cuts token into exactly three non-empty parts; returns JWT_OK or
 * JWT_MALFORMED. */
static int jws_split(const char *token, size_t len, jws_t *j)
{
    if (len == 0 || len > JWT_MAX_TOKEN_LEN)
        return JWT_MALFORMED;
    const char *p = token, *end = token + len;
    for (int i = 0; i < JWS_PARTS; i++) {
        const char *dot = i < JWS_PARTS - 1 ? memchr(p, '.', (size_t)(end - p)) : end;
        if (dot == NULL || dot == p)
            return JWT_MALFORMED;
        j->text[i] = p;
        j->textlen[i] = (size_t)(dot - p);
        p = dot + 1;
    }
    /* a third dot lands inside the signature, which base64url rejects */
    return JWT_OK;
}

/* Decodes the three parts of j into raw (room for the token's length);
 * returns JWT_OK or JWT_MALFORMED. */
static int jws_decode(jws_t *j, unsigned char *raw)
{
    for (int i = 0; i < JWS_PARTS; i++) {
        j->raw[i] = raw;
        if (b64url_decode(j->text[i], j->textlen[i], raw, &j->rawlen[i]) != 0)
            return JWT_MALFORMED;
        raw += j->rawlen[i];
    }
    return JWT_OK;
}

/* Parses n bytes of JSON into *out (flags as for json_loadb); returns
 * JWT_OK, JWT_MALFORMED or JWT_NO_MEMORY. */
static int parse_json(const unsigned char *s, size_t n, size_t flags, json_t **out)
{
    json_error_t e;
    *out = json_loadb((const char *)s, n, flags | JSON_REJECT_DUPLICATES, &e);
    if (*out != NULL)
        return JWT_OK;
    return json_error_code(&e) == json_error_out_of_memory ? JWT_NO_MEMORY : JWT_MALFORMED;
}

/* Reads the algorithm the header names into *alg. Returns JWT_OK;
 * JWT_MALFORMED for a header that is not an object with a string "alg", or
 * that has "crit" (no extension is understood, RFC 7515 §4.1.11); or
 * JWT_BAD_ALG for an algorithm other than HS256 and RS256. */
static int header_alg(const jws_t *j, jwt_alg_t *alg)
{
    json_t *h;
    int rc = parse_json(j->raw[JWS_HEADER], j->rawlen[JWS_HEADER], 0, &h);
    if (rc != JWT_OK)
        return rc;
    const char *name = json_string_value(json_object_get(h, "alg"));
    if (!json_is_object(h) || json_object_get(h, "crit") != NULL || name == NULL)
        rc = JWT_MALFORMED;
    else if (jwt_alg_parse(name, alg) != 0)
        rc = JWT_BAD_ALG;
    json_decref(h);
    return rc;
}

/* Returns 1 when sig is the HMAC-SHA256 of in under k's secret, comparing
 * in constant time; 0 otherwise. */
static int hmac_matches(const jwt_key_t *k, const unsigned char *in, size_t inlen, const unsigned char *sig,
                        size_t siglen)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    int ok = HMAC(EVP_sha256(), k->secret, (int)k->secret_len, in, inlen, md, &mdlen) != NULL &&
             siglen == mdlen && CRYPTO_memcmp(md, sig, mdlen) == 0;
    OPENSSL_cleanse(md, sizeof(md));
    ERR_clear_error();
    return ok;
}

/* Returns 1 when sig is a valid RSASSA-PKCS1-v1_5 SHA-256 signature of in
 * under k's public key; 0 otherwise. */
static int rsa_matches(const jwt_key_t *k, const unsigned char *in, size_t inlen, const unsigned char *sig,
                       size_t siglen)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    int ok = ctx != NULL && EVP_DigestVerifyInit(ctx, &pctx, EVP_sha256(), NULL, k->pkey) == 1 &&
             EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) > 0 &&
             EVP_DigestVerify(ctx, sig, siglen, in, inlen) == 1;
    EVP_MD_CTX_free(ctx);
    ERR_clear_error();
    return ok;
}

/* Tries every key of the header's algorithm on the signature. Returns
 * JWT_OK when one verifies, JWT_BAD_SIGNATURE when none does, JWT_BAD_ALG
 * when no key has that algorithm. */
static int verify_signature(const jws_t *j, jwt_alg_t alg, jwt_key_t *const *keys, size_t nkeys)
{
    const unsigned char *in = (const unsigned char *)j->text[JWS_HEADER];
    size_t inlen = j->textlen[JWS_HEADER] + 1 + j->textlen[JWS_PAYLOAD];
    const unsigned char *sig = j->raw[JWS_SIGNATURE];
    size_t siglen = j->rawlen[JWS_SIGNATURE];
    int rc = JWT_BAD_ALG;
    for (size_t i = 0; i < nkeys; i++) {
        const jwt_key_t *k = keys[i];
        if (k == NULL || k->alg != alg)
            continue;
        int ok = alg == JWT_ALG_HS256 ? hmac_matches(k, in, inlen, sig, siglen)
                                      : rsa_matches(k, in, inlen, sig, siglen);
        if (ok)
            return JWT_OK;
        rc = JWT_BAD_SIGNATURE;
    }
    return rc;
}

/* ---- claims ------------------------------------------------------------- */

/* Reads a NumericDate claim (absent, an integer, or a real that is floored
 * and clamped to int64_t). Returns 0, or -1 when v is another JSON type. */
static int claim_seconds(const json_t *v, int *has, int64_t *out)
{
    *has = v != NULL;
    if (v == NULL)
        return 0;
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return 0;
    }
    if (!json_is_real(v))
        return -1;
    double d = json_real_value(v);
    if (d >= 9223372036854775807.0) {
        *out = INT64_MAX;
    } else if (d <= -9223372036854775808.0) {
        *out = INT64_MIN;
    } else {
        *out = (int64_t)d; /* truncates toward zero; floor below zero */
        if ((double)*out > d)
            (*out)--;
    }
    return 0;
}

/* Checks exp and nbf against now, keeping exp in c. Returns JWT_OK,
 * JWT_EXPIRED, JWT_NOT_YET_VALID or JWT_BAD_CLAIMS. */
static int read_times(const json_t *root, int64_t now, jwt_claims_t *c)
{
    int has_nbf;
    int64_t nbf = 0;
    if (claim_seconds(json_object_get(root, "exp"), &c->has_exp, &c->exp) != 0 ||
        claim_seconds(json_object_get(root, "nbf"), &has_nbf, &nbf) != 0)
        return JWT_BAD_CLAIMS;
    if (c->has_exp && c->exp <= now)
        return JWT_EXPIRED;
    if (has_nbf && nbf > now)
        return JWT_NOT_YET_VALID;
    return JWT_OK;
}

/* Copies an optional array of strings into a NULL-terminated list, setting
 * *has when present. Returns JWT_OK, JWT_BAD_CLAIMS for anything but an
 * array of strings, or JWT_NO_MEMORY (what was copied stays in *list and
 * *n for jwt_claims_free). */
static int read_selectors(const json_t *v, int *has, char ***list, size_t *n)
{
    if (v == NULL)
        return JWT_OK;
    if (!json_is_array(v))
        return JWT_BAD_CLAIMS;
    size_t count = json_array_size(v);
    for (size_t i = 0; i < count; i++)
        if (!json_is_string(json_array_get(v, i)))
            return JWT_BAD_CLAIMS;
    *list = calloc(count + 1, sizeof(**list));
    if (*list == NULL)
        return JWT_NO_MEMORY;
    *has = 1;
    for (size_t i = 0; i < count; i++) {
        /* jansson rejects \u0000 unless told otherwise, so strdup copies all */
        (*list)[i] = strdup(json_string_value(json_array_get(v, i)));
        if ((*list)[i] == NULL)
            return JWT_NO_MEMORY;
        *n = i + 1;
    }
    return JWT_OK;
}

/* Reads the optional "mercure" claim into c. Returns JWT_OK,
 * JWT_BAD_CLAIMS or JWT_NO_MEMORY. */
static int read_mercure(const json_t *m, jwt_claims_t *c)
{
    if (m == NULL)
        return JWT_OK;
    if (!json_is_object(m))
        return JWT_BAD_CLAIMS;
    int rc = read_selectors(json_object_get(m, "publish"), &c->has_publish, &c->publish, &c->npublish);
    if (rc == JWT_OK)
        rc =
            read_selectors(json_object_get(m, "subscribe"), &c->has_subscribe, &c->subscribe, &c->nsubscribe);
    const json_t *payload = json_object_get(m, "payload");
    if (rc == JWT_OK && payload != NULL) {
        c->payload_json = json_dumps(payload, JSON_COMPACT | JSON_ENCODE_ANY);
        if (c->payload_json == NULL)
            rc = JWT_NO_MEMORY;
    }
    return rc;
}

/* Parses the (already authenticated) payload into c. Returns JWT_OK or a
 * negative enum jwt_error. */
static int read_claims(const jws_t *j, int64_t now, jwt_claims_t *c)
{
    json_t *root;
    int rc = parse_json(j->raw[JWS_PAYLOAD], j->rawlen[JWS_PAYLOAD], JSON_DECODE_ANY, &root);
    if (rc != JWT_OK)
        return rc;
    rc = json_is_object(root) ? read_times(root, now, c) : JWT_BAD_CLAIMS;
    if (rc == JWT_OK)
        rc = read_mercure(json_object_get(root, "mercure"), c);
    json_decref(root);
    return rc;
}

static void free_list(char **list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(list[i]);
    free(list);
}

void jwt_claims_free(jwt_claims_t *c)
{
    if (c == NULL)
        return;
    free_list(c->publish, c->npublish);
    free_list(c->subscribe, c->nsubscribe);
    free(c->payload_json);
    memset(c, 0, sizeof(*c));
}

/* ---- verification ------------------------------------------------------- */

int jwt_verify(const char *token, size_t len, jwt_key_t *const *keys, size_t nkeys, int64_t now,
               jwt_claims_t *claims)
{
    memset(claims, 0, sizeof(*claims));
    jws_t j;
    int rc = jws_split(token, len, &j);
    if (rc != JWT_OK)
        return rc;
    unsigned char *raw = malloc(len);
    if (raw == NULL)
        return JWT_NO_MEMORY;
    jwt_alg_t alg = JWT_ALG_HS256;
    rc = jws_decode(&j, raw);
    if (rc == JWT_OK)
        rc = header_alg(&j, &alg);
    if (rc == JWT_OK)
        rc = verify_signature(&j, alg, keys, nkeys);
    if (rc == JWT_OK)
        rc = read_claims(&j, now, claims);
    free(raw);
    if (rc != JWT_OK)
        jwt_claims_free(claims);
    return rc;
}

const char *jwt_error_name(int err)
{
    switch (err) {
    case JWT_OK:
        return "ok";
    case JWT_MALFORMED:
        return "malformed";
    case JWT_BAD_ALG:
        return "bad_algorithm";
    case JWT_BAD_SIGNATURE:
        return "bad_signature";
    case JWT_EXPIRED:
        return "expired";
    case JWT_NOT_YET_VALID:
        return "not_yet_valid";
    case JWT_BAD_CLAIMS:
        return "bad_claims";
    case JWT_NO_MEMORY:
        return "no_memory";
    }
    return "unknown";
}
