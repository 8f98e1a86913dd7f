/* Unit tests of Mercure JWT verification (common/jwt.c): the Mercure
 * conformance token, and tokens signed here with HS256 and with RSA keys
 * generated for the run. */
#include "common/jwt.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "common/buf.h"

#include "tests/unit/check.h"

#define NOW INT64_C(1700000000)
#define HS_HEADER "{\"alg\":\"HS256\"}"
#define RS_HEADER "{\"alg\":\"RS256\"}"
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))
#define ALL_TOPICS "{\"mercure\":{\"publish\":[\"*\"],\"subscribe\":[\"*\"]}}"

static const char mercure_secret[] = "!ChangeThisMercureHubJWTSecretKey!";
static const char mercure_token[] =
    "eyJhbGciOiJIUzI1NiJ9.eyJtZXJjdXJlIjp7InB1Ymxpc2giOlsiKiJdLCJzdWJzY3JpYmUiOlsiKiJdfX0."
    "bVXdlWXwfw9ySx7-iV5OpUSHo34RkjUdVzDLBcc6l_g";
static const char b64url_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* ---- signing, for the tests only ---------------------------------------- */

/* Appends s[0..n) to out as unpadded base64url. */
static void b64url_append(buf_t *out, const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)s[i + 1] << 8;
        if (i + 2 < n)
            v |= s[i + 2];
        size_t chars = n - i >= 3 ? 4 : n - i + 1;
        for (size_t k = 0; k < chars; k++)
            buf_append_char(out, b64url_alphabet[(v >> (18 - 6 * k)) & 63]);
    }
}

/* Sets tok to the signing input: base64url(header) "." base64url(payload). */
static void start_token(buf_t *tok, const char *header, const char *payload)
{
    buf_clear(tok);
    b64url_append(tok, header, strlen(header));
    buf_append_char(tok, '.');
    b64url_append(tok, payload, strlen(payload));
}

/* Sets tok to a token signed with HMAC-SHA256 under key, whatever alg the
 * header names. */
static void sign_hmac(buf_t *tok, const char *header, const char *payload, const char *key, size_t keylen)
{
    start_token(tok, header, payload);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    CHECK(HMAC(EVP_sha256(), key, (int)keylen, (unsigned char *)tok->base, tok->len, md, &mdlen) != NULL);
    buf_append_char(tok, '.');
    b64url_append(tok, md, mdlen);
}

static void sign_hs256(buf_t *tok, const char *payload)
{
    sign_hmac(tok, HS_HEADER, payload, mercure_secret, strlen(mercure_secret));
}

/* Sets tok to a token signed RSASSA-PKCS1-v1_5 SHA-256 with pkey. */
static void sign_rsa(buf_t *tok, const char *header, const char *payload, EVP_PKEY *pkey)
{
    start_token(tok, header, payload);
    unsigned char sig[1024];
    size_t siglen = sizeof(sig);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    CHECK(ctx != NULL && EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, pkey) == 1 &&
          EVP_DigestSign(ctx, sig, &siglen, (unsigned char *)tok->base, tok->len) == 1);
    EVP_MD_CTX_free(ctx);
    buf_append_char(tok, '.');
    b64url_append(tok, sig, siglen);
}

/* Sets out to the PEM of cert, or when cert is NULL of pkey's public key. */
static void write_pem(buf_t *out, EVP_PKEY *pkey, X509 *cert)
{
    BIO *bio = BIO_new(BIO_s_mem());
    CHECK(cert != NULL ? PEM_write_bio_X509(bio, cert) == 1 : PEM_write_bio_PUBKEY(bio, pkey) == 1);
    char *p = NULL;
    long n = BIO_get_mem_data(bio, &p);
    buf_clear(out);
    buf_append(out, p, (size_t)n);
    BIO_free(bio);
}

/* Returns a self-signed certificate for pkey. */
static X509 *self_signed(EVP_PKEY *pkey)
{
    X509 *x = X509_new();
    X509_NAME *name = X509_get_subject_name(x);
    CHECK(X509_set_version(x, 2) == 1 && ASN1_INTEGER_set(X509_get_serialNumber(x), 1) == 1 &&
          X509_gmtime_adj(X509_getm_notBefore(x), 0) != NULL &&
          X509_gmtime_adj(X509_getm_notAfter(x), 3600) != NULL && X509_set_pubkey(x, pkey) == 1 &&
          X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"ssehub test", -1, -1,
                                     0) == 1 &&
          X509_set_issuer_name(x, name) == 1 && X509_sign(x, pkey, EVP_sha256()) > 0);
    return x;
}

/* Returns a key for tests that expect it to be built. */
static jwt_key_t *key_of(jwt_alg_t alg, const char *material, size_t len)
{
    char err[200] = "";
    jwt_key_t *k = jwt_key_new(alg, material, len, err, sizeof(err));
    if (k == NULL)
        fprintf(stderr, "jwt_key_new: %s\n", err);
    CHECK(k != NULL);
    return k;
}

/* Verifies len bytes of tok, drops the claims and returns the result. */
static int verify_len(const buf_t *tok, size_t len, jwt_key_t *const *keys, size_t nkeys, int64_t now)
{
    jwt_claims_t c;
    int rc = jwt_verify(tok->base, len, keys, nkeys, now, &c);
    jwt_claims_free(&c);
    return rc;
}

static int verify(const buf_t *tok, jwt_key_t *const *keys, size_t nkeys)
{
    return verify_len(tok, tok->len, keys, nkeys, NOW);
}

/* Signs payload with the Mercure secret into tok and verifies it at now,
 * leaving the claims in *c; returns the result. */
static int claims_of(buf_t *tok, jwt_key_t *hs, const char *payload, int64_t now, jwt_claims_t *c)
{
    sign_hs256(tok, payload);
    return jwt_verify(tok->base, tok->len, &hs, 1, now, c);
}

/* Returns the offset just after the last dot of tok: its signature. */
static size_t signature_at(const buf_t *tok)
{
    return (size_t)(strrchr(tok->base, '.') - tok->base) + 1;
}

/* Replaces the character at `at` with another one of the alphabet. */
static void alter(buf_t *tok, size_t at)
{
    tok->base[at] = tok->base[at] == 'A' ? 'B' : 'A';
}

/* Sets copy to the bytes of tok. */
static void copy_of(buf_t *copy, const buf_t *tok)
{
    buf_clear(copy);
    buf_append(copy, tok->base, tok->len);
}

/* ---- tests -------------------------------------------------------------- */

/* A token signed with the Mercure secret and the result it must get at NOW. */
typedef struct token_case {
    const char *header;
    const char *payload;
    int want;
} token_case_t;

/* Headers: only HS256 and RS256, no "crit", no duplicate names. */
static const token_case_t header_cases[] = {
    {"{\"alg\":\"HS256\",\"typ\":\"JWT\"}", "{}", JWT_OK},
    {"{\"alg\":\"none\"}", "{}", JWT_BAD_ALG},
    {"{\"alg\":\"HS512\"}", "{}", JWT_BAD_ALG},
    {"{\"alg\":\"hs256\"}", "{}", JWT_BAD_ALG},
    {RS_HEADER, "{}", JWT_BAD_ALG},
    {"not json", "{}", JWT_MALFORMED},
    {"[\"HS256\"]", "{}", JWT_MALFORMED},
    {"{\"typ\":\"JWT\"}", "{}", JWT_MALFORMED},
    {"{\"alg\":256}", "{}", JWT_MALFORMED},
    {"{\"alg\":\"HS256\",\"crit\":[\"exp\"]}", "{}", JWT_MALFORMED},
    {"{\"alg\":\"HS256\",\"alg\":\"HS256\"}", "{}", JWT_MALFORMED},
};

/* exp and nbf: no leeway, reals floored, anything but a number refused. */
static const token_case_t time_cases[] = {
    {HS_HEADER, "{\"exp\":1700000000}", JWT_EXPIRED},
    {HS_HEADER, "{\"exp\":1699999999}", JWT_EXPIRED},
    {HS_HEADER, "{\"exp\":0}", JWT_EXPIRED},
    {HS_HEADER, "{\"exp\":1700000001}", JWT_OK},
    {HS_HEADER, "{\"exp\":1700000000.9}", JWT_EXPIRED},
    {HS_HEADER, "{\"exp\":1e300}", JWT_OK},
    {HS_HEADER, "{\"exp\":\"1800000000\"}", JWT_BAD_CLAIMS},
    {HS_HEADER, "{\"exp\":true}", JWT_BAD_CLAIMS},
    {HS_HEADER, "{\"exp\":null}", JWT_BAD_CLAIMS},
    {HS_HEADER, "{\"exp\":1800000000,\"exp\":1}", JWT_MALFORMED},
    {HS_HEADER, "{\"nbf\":1700000001}", JWT_NOT_YET_VALID},
    {HS_HEADER, "{\"nbf\":1700000000}", JWT_OK},
    {HS_HEADER, "{\"nbf\":1700000000.5}", JWT_OK},
    {HS_HEADER, "{\"nbf\":\"soon\"}", JWT_BAD_CLAIMS},
    {HS_HEADER, "{\"nbf\":1800000000,\"exp\":1}", JWT_EXPIRED},
};

/* The claims set must be an object; mercure and its lists have set types. */
static const token_case_t claim_cases[] = {
    {HS_HEADER, "[1]", JWT_BAD_CLAIMS},
    {HS_HEADER, "\"x\"", JWT_BAD_CLAIMS},
    {HS_HEADER, "42", JWT_BAD_CLAIMS},
    {HS_HEADER, "{", JWT_MALFORMED},
    {HS_HEADER, "{\"a\":\"\\u0000\"}", JWT_MALFORMED},
    {HS_HEADER, "{\"mercure\":[]}", JWT_BAD_CLAIMS},
    {HS_HEADER, "{\"mercure\":\"x\"}", JWT_BAD_CLAIMS},
    {HS_HEADER, "{\"mercure\":{\"publish\":\"*\"}}", JWT_BAD_CLAIMS},
    {HS_HEADER, "{\"mercure\":{\"publish\":[\"a\",1]}}", JWT_BAD_CLAIMS},
    {HS_HEADER, "{\"mercure\":{\"publish\":[[\"a\"]]}}", JWT_BAD_CLAIMS},
    {HS_HEADER, "{\"mercure\":{\"subscribe\":[null]}}", JWT_BAD_CLAIMS},
    {HS_HEADER, "{\"mercure\":{\"subscribe\":{}}}", JWT_BAD_CLAIMS},
    {HS_HEADER, "{\"mercure\":{\"publish\":[],\"subscribe\":[2]}}", JWT_BAD_CLAIMS},
};

/* Signs each case with the Mercure secret and checks its result. */
static void check_cases(jwt_key_t *hs, const token_case_t *cases, size_t n)
{
    buf_t tok = BUF_INIT;
    for (size_t i = 0; i < n; i++) {
        sign_hmac(&tok, cases[i].header, cases[i].payload, mercure_secret, strlen(mercure_secret));
        int rc = verify(&tok, &hs, 1);
        if (rc != cases[i].want)
            fprintf(stderr, "%s.%s: got %s, want %s\n", cases[i].header, cases[i].payload, jwt_error_name(rc),
                    jwt_error_name(cases[i].want));
        CHECK(rc == cases[i].want);
    }
    buf_free(&tok);
}

static void test_conformance(void)
{
    char err[200] = "";
    jwt_key_t *k = jwt_key_from_setting(JWT_ALG_HS256, mercure_secret, err, sizeof(err));
    CHECK(k != NULL && jwt_key_alg(k) == JWT_ALG_HS256);
    jwt_claims_t c;
    CHECK(jwt_verify(mercure_token, strlen(mercure_token), &k, 1, NOW, &c) == JWT_OK);
    CHECK(c.has_publish && c.npublish == 1 && strcmp(c.publish[0], "*") == 0 && c.publish[1] == NULL);
    CHECK(c.has_subscribe && c.nsubscribe == 1 && strcmp(c.subscribe[0], "*") == 0);
    CHECK(!c.has_exp && c.payload_json == NULL);
    jwt_claims_free(&c);
    CHECK(c.publish == NULL && c.npublish == 0);
    jwt_claims_free(&c);
    jwt_key_free(k);
}

static void test_names(void)
{
    jwt_alg_t alg = JWT_ALG_RS256;
    CHECK(jwt_alg_parse("HS256", &alg) == 0 && alg == JWT_ALG_HS256);
    CHECK(jwt_alg_parse("RS256", &alg) == 0 && alg == JWT_ALG_RS256);
    CHECK(jwt_alg_parse("hs256", &alg) == -1);
    CHECK(jwt_alg_parse("none", &alg) == -1);
    CHECK(jwt_alg_parse("", &alg) == -1);
    CHECK(strcmp(jwt_error_name(JWT_OK), "ok") == 0);
    CHECK(strcmp(jwt_error_name(JWT_MALFORMED), "malformed") == 0);
    CHECK(strcmp(jwt_error_name(JWT_BAD_ALG), "bad_algorithm") == 0);
    CHECK(strcmp(jwt_error_name(JWT_BAD_SIGNATURE), "bad_signature") == 0);
    CHECK(strcmp(jwt_error_name(JWT_EXPIRED), "expired") == 0);
    CHECK(strcmp(jwt_error_name(JWT_NOT_YET_VALID), "not_yet_valid") == 0);
    CHECK(strcmp(jwt_error_name(JWT_BAD_CLAIMS), "bad_claims") == 0);
    CHECK(strcmp(jwt_error_name(JWT_NO_MEMORY), "no_memory") == 0);
    CHECK(strcmp(jwt_error_name(42), "unknown") == 0);
}

static void test_hs256(jwt_key_t *hs)
{
    buf_t tok = BUF_INIT, copy = BUF_INIT;
    jwt_key_t *other = key_of(JWT_ALG_HS256, "another secret", 14);

    sign_hs256(&tok, ALL_TOPICS);
    CHECK(verify(&tok, &hs, 1) == JWT_OK);
    /* tampered payload: refused before the payload is even parsed */
    copy_of(&copy, &tok);
    alter(&copy, strchr(copy.base, '.') - copy.base + 1);
    CHECK(verify(&copy, &hs, 1) == JWT_BAD_SIGNATURE);
    /* another payload spliced in front of this signature */
    sign_hs256(&copy, "{\"mercure\":{\"publish\":[\"*\"]}}");
    buf_truncate(&copy, signature_at(&copy));
    buf_append_str(&copy, tok.base + signature_at(&tok));
    CHECK(verify(&copy, &hs, 1) == JWT_BAD_SIGNATURE);
    /* tampered signature */
    copy_of(&copy, &tok);
    alter(&copy, signature_at(&copy));
    CHECK(verify(&copy, &hs, 1) == JWT_BAD_SIGNATURE);
    /* wrong key, then key rotation: any listed key of the alg may match */
    CHECK(verify(&tok, &other, 1) == JWT_BAD_SIGNATURE);
    jwt_key_t *rotation[] = {other, NULL, hs};
    CHECK(verify(&tok, rotation, 3) == JWT_OK);
    CHECK(verify(&tok, rotation, 2) == JWT_BAD_SIGNATURE);
    CHECK(verify(&tok, NULL, 0) == JWT_BAD_ALG);
    /* a 33-byte "HMAC" is no HMAC */
    start_token(&copy, HS_HEADER, ALL_TOPICS);
    buf_append_str(&copy, ".");
    b64url_append(&copy, "0123456789abcdef0123456789abcdef!", 33);
    CHECK(verify(&copy, &hs, 1) == JWT_BAD_SIGNATURE);

    /* base64url, not base64: this kid encodes to '-' and '_' */
    sign_hmac(&tok, "{\"typ\":\"whatever\",\"alg\":\"HS256\",\"kid\":\"a>?\?\?>\"}", "{}", mercure_secret,
              strlen(mercure_secret));
    size_t hlen = (size_t)(strchr(tok.base, '.') - tok.base);
    CHECK(memchr(tok.base, '-', hlen) != NULL && memchr(tok.base, '_', hlen) != NULL);
    CHECK(verify(&tok, &hs, 1) == JWT_OK);
    start_token(&tok, "{\"alg\":\"none\"}", "{}");
    buf_append_char(&tok, '.');
    CHECK(verify(&tok, &hs, 1) == JWT_MALFORMED);

    jwt_key_free(other);
    buf_free(&tok);
    buf_free(&copy);
}

/* What a verified token yields: exp (floored), the lists, the payload. */
static void test_claim_values(jwt_key_t *hs)
{
    buf_t tok = BUF_INIT;
    jwt_claims_t c;
    CHECK(claims_of(&tok, hs, "{\"exp\":1700000001.5,\"iat\":1,\"sub\":\"x\",\"aud\":[\"y\"]}", NOW, &c) ==
          JWT_OK);
    CHECK(c.has_exp && c.exp == NOW + 1 && !c.has_publish && !c.has_subscribe);
    jwt_claims_free(&c);
    /* reals are floored, not truncated */
    CHECK(claims_of(&tok, hs, "{\"exp\":-1.5}", -3, &c) == JWT_OK);
    CHECK(c.has_exp && c.exp == -2);
    jwt_claims_free(&c);
    CHECK(jwt_verify(tok.base, tok.len, &hs, 1, -2, &c) == JWT_EXPIRED);
    CHECK(c.has_exp == 0 && c.publish == NULL);

    CHECK(claims_of(&tok, hs, "{\"mercure\":{\"publish\":[],\"subscribe\":[]}}", NOW, &c) == JWT_OK);
    CHECK(c.has_publish && c.npublish == 0 && c.publish != NULL && c.publish[0] == NULL);
    CHECK(c.has_subscribe && c.nsubscribe == 0 && c.subscribe != NULL && c.subscribe[0] == NULL);
    CHECK(c.payload_json == NULL);
    jwt_claims_free(&c);

    CHECK(claims_of(&tok, hs, "{\"mercure\":{}}", NOW, &c) == JWT_OK);
    CHECK(!c.has_publish && c.publish == NULL && !c.has_subscribe && c.subscribe == NULL);
    jwt_claims_free(&c);

    CHECK(claims_of(&tok, hs,
                    "{\"mercure\": {\"publish\": [\"https://example.com/books/{id}\"],"
                    " \"subscribe\": [\"a\", \"b\\/c\", \"\\u00e9\"],"
                    " \"payload\": {\"user\": \"https://example.com/u/1\", \"n\": [1, 2.5, null, true]}},"
                    " \"exp\": 1800000000}",
                    NOW, &c) == JWT_OK);
    CHECK(c.has_exp && c.exp == 1800000000);
    CHECK(c.npublish == 1 && strcmp(c.publish[0], "https://example.com/books/{id}") == 0);
    CHECK(c.nsubscribe == 3 && strcmp(c.subscribe[1], "b/c") == 0 &&
          strcmp(c.subscribe[2], "\xc3\xa9") == 0 && c.subscribe[3] == NULL);
    CHECK(c.payload_json != NULL &&
          strcmp(c.payload_json, "{\"user\":\"https://example.com/u/1\",\"n\":[1,2.5,null,true]}") == 0);
    jwt_claims_free(&c);

    CHECK(claims_of(&tok, hs, "{\"mercure\":{\"payload\":\"just text\"}}", NOW, &c) == JWT_OK);
    CHECK(c.payload_json != NULL && strcmp(c.payload_json, "\"just text\"") == 0);
    jwt_claims_free(&c);
    buf_free(&tok);
}

static void test_encoding(jwt_key_t *hs)
{
    buf_t tok = BUF_INIT, copy = BUF_INIT, payload = BUF_INIT;
    sign_hs256(&tok, ALL_TOPICS);
    size_t sig = signature_at(&tok);
    CHECK(tok.len - sig == 43);

    /* standard base64: padding, '+' and '/' */
    copy_of(&copy, &tok);
    buf_append_char(&copy, '=');
    CHECK(verify(&copy, &hs, 1) == JWT_MALFORMED);
    copy_of(&copy, &tok);
    copy.base[sig] = '+';
    CHECK(verify(&copy, &hs, 1) == JWT_MALFORMED);
    copy.base[sig] = '/';
    CHECK(verify(&copy, &hs, 1) == JWT_MALFORMED);
    /* the last character's unused bits must be zero: one spelling only */
    copy_of(&copy, &tok);
    int last = (int)(strchr(b64url_alphabet, copy.base[copy.len - 1]) - b64url_alphabet);
    CHECK((last & 3) == 0);
    copy.base[copy.len - 1] = b64url_alphabet[last | 1];
    CHECK(verify(&copy, &hs, 1) == JWT_MALFORMED);
    /* a length no unpadded base64 has (4n + 1) */
    copy_of(&copy, &tok);
    buf_append_str(&copy, "AA");
    CHECK(verify(&copy, &hs, 1) == JWT_MALFORMED);
    /* an embedded NUL */
    CHECK(verify_len(&tok, tok.len + 1, &hs, 1, NOW) == JWT_MALFORMED);

    /* dots and empty parts */
    copy_of(&copy, &tok);
    buf_append_str(&copy, ".AAAA");
    CHECK(verify(&copy, &hs, 1) == JWT_MALFORMED);
    buf_truncate(&copy, sig - 1);
    CHECK(verify(&copy, &hs, 1) == JWT_MALFORMED);
    buf_clear(&copy);
    buf_append_str(&copy, strchr(tok.base, '.'));
    CHECK(verify(&copy, &hs, 1) == JWT_MALFORMED);
    buf_clear(&copy);
    buf_append(&copy, tok.base, (size_t)(strchr(tok.base, '.') - tok.base) + 1);
    buf_append_str(&copy, tok.base + sig - 1);
    CHECK(verify(&copy, &hs, 1) == JWT_MALFORMED);
    copy_of(&copy, &tok);
    buf_truncate(&copy, sig);
    CHECK(verify(&copy, &hs, 1) == JWT_MALFORMED);
    CHECK(verify_len(&tok, 0, &hs, 1, NOW) == JWT_MALFORMED);
    buf_clear(&copy);
    buf_append_str(&copy, "..");
    CHECK(verify(&copy, &hs, 1) == JWT_MALFORMED);

    /* a token of exactly JWT_MAX_TOKEN_LEN bytes passes, one byte more does not */
    int at_limit = 0, over_limit = 0;
    for (size_t n = 12000; n < 13000 && !over_limit; n++) {
        buf_clear(&payload);
        buf_append_str(&payload, "{\"x\":\"");
        for (size_t i = 0; i < n; i++)
            buf_append_char(&payload, 'x');
        buf_append_str(&payload, "\"}");
        sign_hs256(&tok, payload.base);
        if (tok.len == JWT_MAX_TOKEN_LEN) {
            at_limit = 1;
            CHECK(verify(&tok, &hs, 1) == JWT_OK);
        } else if (tok.len > JWT_MAX_TOKEN_LEN) {
            over_limit = 1;
            CHECK(verify(&tok, &hs, 1) == JWT_MALFORMED);
        }
    }
    CHECK(at_limit && over_limit);

    buf_free(&tok);
    buf_free(&copy);
    buf_free(&payload);
}

/* Writes text to a new temporary file whose name is put in path. */
static void write_temp(char *path, const char *text, size_t len)
{
    strcpy(path, "/tmp/ssehub-test-jwt-XXXXXX");
    int fd = mkstemp(path);
    CHECK(fd >= 0 && write(fd, text, len) == (ssize_t)len);
    close(fd);
}

static void test_keys(EVP_PKEY *rsa)
{
    char err[200] = "";
    buf_t pem = BUF_INIT;

    CHECK(jwt_key_new(JWT_ALG_HS256, "", 0, err, sizeof(err)) == NULL && strstr(err, "empty") != NULL);
    CHECK(jwt_key_new(JWT_ALG_HS256, "", 0, NULL, 0) == NULL);
    CHECK(jwt_key_new((jwt_alg_t)7, "x", 1, err, sizeof(err)) == NULL);
    err[0] = '\0';
    CHECK(jwt_key_new(JWT_ALG_RS256, "not a pem", 9, err, sizeof(err)) == NULL && err[0] != '\0');
    CHECK(jwt_key_new(JWT_ALG_RS256, "", 0, err, sizeof(err)) == NULL);

    EVP_PKEY *small = EVP_RSA_gen(1024);
    CHECK(small != NULL);
    write_pem(&pem, small, NULL);
    CHECK(jwt_key_new(JWT_ALG_RS256, pem.base, pem.len, err, sizeof(err)) == NULL);
    CHECK(strstr(err, "1024") != NULL && strstr(err, "2048") != NULL);
    EVP_PKEY_free(small);

    EVP_PKEY *ec = EVP_EC_gen("P-256");
    CHECK(ec != NULL);
    write_pem(&pem, ec, NULL);
    CHECK(jwt_key_new(JWT_ALG_RS256, pem.base, pem.len, err, sizeof(err)) == NULL);
    CHECK(strstr(err, "RSA") != NULL && strstr(err, "EC") != NULL);
    EVP_PKEY_free(ec);

    /* RS256 settings are PEM file paths */
    char path[64];
    write_pem(&pem, rsa, NULL);
    write_temp(path, pem.base, pem.len);
    jwt_key_t *k = jwt_key_from_setting(JWT_ALG_RS256, path, err, sizeof(err));
    CHECK(k != NULL && jwt_key_alg(k) == JWT_ALG_RS256);
    jwt_key_free(k);
    unlink(path);
    CHECK(jwt_key_from_setting(JWT_ALG_RS256, path, err, sizeof(err)) == NULL);
    CHECK(strncmp(err, path, strlen(path)) == 0);
    write_temp(path, "garbage", 7);
    CHECK(jwt_key_from_setting(JWT_ALG_RS256, path, err, sizeof(err)) == NULL);
    CHECK(strncmp(err, path, strlen(path)) == 0 && strstr(err, "PEM") != NULL);
    unlink(path);
    jwt_key_free(NULL);
    buf_free(&pem);
}

static void test_rs256(jwt_key_t *hs, EVP_PKEY *rsa)
{
    buf_t tok = BUF_INIT, copy = BUF_INIT, pem = BUF_INIT;
    EVP_PKEY *rsa2 = EVP_RSA_gen(2048);
    CHECK(rsa2 != NULL);
    write_pem(&pem, rsa, NULL);
    jwt_key_t *rs = key_of(JWT_ALG_RS256, pem.base, pem.len);
    /* the public key PEM used as an HMAC secret: the classic confusion */
    jwt_key_t *hs_pem = key_of(JWT_ALG_HS256, pem.base, pem.len);
    write_pem(&pem, rsa2, NULL);
    jwt_key_t *rs2 = key_of(JWT_ALG_RS256, pem.base, pem.len);
    X509 *cert = self_signed(rsa);
    write_pem(&pem, NULL, cert);
    CHECK(strstr(pem.base, "BEGIN CERTIFICATE") != NULL);
    jwt_key_t *rs_cert = key_of(JWT_ALG_RS256, pem.base, pem.len);
    X509_free(cert);

    sign_rsa(&tok, RS_HEADER, ALL_TOPICS, rsa);
    jwt_claims_t c;
    CHECK(jwt_verify(tok.base, tok.len, &rs, 1, NOW, &c) == JWT_OK);
    CHECK(c.npublish == 1 && c.nsubscribe == 1 && strcmp(c.subscribe[0], "*") == 0);
    jwt_claims_free(&c);
    CHECK(verify(&tok, &rs_cert, 1) == JWT_OK);
    CHECK(verify(&tok, &rs2, 1) == JWT_BAD_SIGNATURE);
    jwt_key_t *rotation[] = {rs2, rs};
    CHECK(verify(&tok, rotation, 2) == JWT_OK);
    jwt_key_t *mixed[] = {hs, rs2, hs_pem, rs};
    CHECK(verify(&tok, mixed, 4) == JWT_OK);
    CHECK(verify(&tok, &hs_pem, 1) == JWT_BAD_ALG);
    CHECK(verify(&tok, &hs, 1) == JWT_BAD_ALG);

    copy_of(&copy, &tok);
    alter(&copy, strchr(copy.base, '.') - copy.base + 1);
    CHECK(verify(&copy, &rs, 1) == JWT_BAD_SIGNATURE);
    copy_of(&copy, &tok);
    alter(&copy, signature_at(&copy) + 5);
    CHECK(verify(&copy, &rs, 1) == JWT_BAD_SIGNATURE);
    sign_rsa(&tok, RS_HEADER, "{\"exp\":1700000000}", rsa);
    CHECK(verify(&tok, &rs, 1) == JWT_EXPIRED);
    sign_rsa(&tok, HS_HEADER, ALL_TOPICS, rsa);
    CHECK(verify(&tok, &rs, 1) == JWT_BAD_ALG);
    /* an HMAC-sized signature under RS256 */
    sign_hmac(&tok, RS_HEADER, ALL_TOPICS, "k", 1);
    CHECK(verify(&tok, &rs, 1) == JWT_BAD_SIGNATURE);

    /* an HS256 token whose secret is the RS256 public key's PEM text */
    write_pem(&pem, rsa, NULL);
    sign_hmac(&tok, HS_HEADER, ALL_TOPICS, pem.base, pem.len);
    CHECK(verify(&tok, &rs, 1) == JWT_BAD_ALG);
    CHECK(verify(&tok, &rs_cert, 1) == JWT_BAD_ALG);
    jwt_key_t *rs_and_other[] = {rs, hs};
    CHECK(verify(&tok, rs_and_other, 2) == JWT_BAD_SIGNATURE);
    CHECK(verify(&tok, &hs_pem, 1) == JWT_OK); /* only where it was configured as HS256 */

    jwt_key_free(rs);
    jwt_key_free(rs2);
    jwt_key_free(hs_pem);
    jwt_key_free(rs_cert);
    EVP_PKEY_free(rsa2);
    buf_free(&tok);
    buf_free(&copy);
    buf_free(&pem);
}

/* ---- concurrent use of shared keys --------------------------------------- */

typedef struct worker {
    jwt_key_t *const *keys;
    const buf_t *tokens; /* two: one HS256, one RS256 */
    int failures;
} worker_t;

static void *verify_many(void *arg)
{
    worker_t *w = arg;
    for (int i = 0; i < 200; i++) {
        const buf_t *tok = &w->tokens[i % 2];
        jwt_claims_t c;
        if (jwt_verify(tok->base, tok->len, w->keys, 2, NOW, &c) != JWT_OK || c.npublish != 1)
            w->failures++;
        jwt_claims_free(&c);
    }
    return NULL;
}

static void test_threads(jwt_key_t *hs, EVP_PKEY *rsa)
{
    buf_t pem = BUF_INIT, tokens[2] = {BUF_INIT, BUF_INIT};
    write_pem(&pem, rsa, NULL);
    jwt_key_t *keys[] = {hs, key_of(JWT_ALG_RS256, pem.base, pem.len)};
    sign_hs256(&tokens[0], ALL_TOPICS);
    sign_rsa(&tokens[1], RS_HEADER, ALL_TOPICS, rsa);
    worker_t w[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (worker_t){keys, tokens, 0};
        CHECK(pthread_create(&t[i], NULL, verify_many, &w[i]) == 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        CHECK(w[i].failures == 0);
    }
    jwt_key_free(keys[1]);
    buf_free(&pem);
    buf_free(&tokens[0]);
    buf_free(&tokens[1]);
}

int main(void)
{
    jwt_key_t *hs = key_of(JWT_ALG_HS256, mercure_secret, strlen(mercure_secret));
    EVP_PKEY *rsa = EVP_RSA_gen(2048);
    CHECK(rsa != NULL);

    test_conformance();
    test_names();
    test_hs256(hs);
    check_cases(hs, header_cases, COUNT(header_cases));
    check_cases(hs, time_cases, COUNT(time_cases));
    check_cases(hs, claim_cases, COUNT(claim_cases));
    test_claim_values(hs);
    test_encoding(hs);
    test_keys(rsa);
    test_rs256(hs, rsa);
    test_threads(hs, rsa);

    EVP_PKEY_free(rsa);
    jwt_key_free(hs);
    return CHECK_DONE();
}
