/* Fuzz target for JWT verification (common/jwt.c) with a fixed HS256
 * secret and a fixed RS256 public key. An input that holds a NUL or starts
 * with '{' is structured: "header NUL payload" JSON (or only the payload,
 * under the header {"alg":"HS256"}), base64url-encoded and signed with the
 * HS256 secret so the claims parser is reached; any other input is a raw
 * token. jwt_verify must return one of its codes, zeroed claims on failure
 * and well-formed claims on success; a token signed under the fixed header
 * never fails on its signature or algorithm. */
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "common/buf.h"
#include "common/jwt.h"
#include "tests/fuzz/fuzz.h"

/* The Mercure conformance suite's secret. */
static const char HS256_SECRET[] = "!ChangeThisMercureHubJWTSecretKey!";
/* A 2048-bit RSA public key made for this target (its private key signed
 * the RS256 seeds and was thrown away). */
static const char RS256_PUBLIC_KEY[] = "-----BEGIN PUBLIC KEY-----\n"
                                       "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAnrNKGdcx1Z6sJmftzqNF\n"
                                       "cnjFji01ercKdaOnrPGkIJdkJ4dDFNuUufwkC4x3UrFZ9OeYzKGbCNWHAcwwXxpF\n"
                                       "2MpT/npPWvMz73Om1VrgnnhyI1Tb+xVEuYAk/dAGSg+Q0k8a+dHhGnplqoc/2lHy\n"
                                       "Ij2Vphz37sd1mjBF3SMU5sK1BO60C8g2KRZeyCWwHqQJT0php0TeYk5gf99O9Kw8\n"
                                       "vG5LPemuTF1Ny0SMhpsYmUwjSKvwPD3Aux+lnHQDW51A4QBrTT3NrUPXb3eqhCfA\n"
                                       "D8dP17nqoqUDa+8ZIR7fa7Uno3LaPz3mK/uFcDyodks/TS3+QmyJUAaTpCyECmwi\n"
                                       "YQIDAQAB\n"
                                       "-----END PUBLIC KEY-----\n";
static const char FIXED_HEADER[] = "{\"alg\":\"HS256\"}";
/* Tokens are checked at this time (2023-11-14), so exp and nbf both matter. */
#define NOW 1700000000

static jwt_key_t *keys[2];

int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Builds the keys once, before the first input. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char err[256];
    keys[0] = jwt_key_new(JWT_ALG_HS256, HS256_SECRET, sizeof HS256_SECRET - 1, err, sizeof err);
    keys[1] = jwt_key_new(JWT_ALG_RS256, RS256_PUBLIC_KEY, sizeof RS256_PUBLIC_KEY - 1, err, sizeof err);
    FUZZ_CHECK(keys[0] != NULL && keys[1] != NULL);
    return 0;
}

/* Appends s[0..len) in unpadded base64url. */
static void put_base64url(buf_t *out, const unsigned char *s, size_t len)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for (size_t i = 0; i < len; i += 3) {
        unsigned v =
            (unsigned)s[i] << 16 | (i + 1 < len ? (unsigned)s[i + 1] << 8 : 0) | (i + 2 < len ? s[i + 2] : 0);
        size_t chars = len - i >= 3 ? 4 : len - i + 1;
        for (size_t k = 0; k < chars; k++)
            FUZZ_CHECK(buf_append_char(out, abc[(v >> (18 - 6 * k)) & 63]) == 0);
    }
}

/* Appends header.payload.signature, signed with the HS256 secret. */
static void sign_hs256(buf_t *token, const char *header, size_t hlen, const char *payload, size_t plen)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned maclen = 0;
    put_base64url(token, (const unsigned char *)header, hlen);
    FUZZ_CHECK(buf_append_char(token, '.') == 0);
    put_base64url(token, (const unsigned char *)payload, plen);
    FUZZ_CHECK(HMAC(EVP_sha256(), HS256_SECRET, (int)(sizeof HS256_SECRET - 1),
                    (const unsigned char *)token->base, token->len, mac, &maclen) != NULL);
    FUZZ_CHECK(buf_append_char(token, '.') == 0);
    put_base64url(token, mac, maclen);
}

/* Checks a selector list: n strings, then NULL; absent means empty. */
static void check_list(int has, char **list, size_t n)
{
    FUZZ_CHECK(has == (list != NULL));
    FUZZ_CHECK(list != NULL || n == 0);
    for (size_t i = 0; list != NULL && i <= n; i++)
        FUZZ_CHECK((list[i] == NULL) == (i == n));
}

/* Verifies a token and checks the result; returns jwt_verify's code. */
static int verify(const char *token, size_t len)
{
    static const jwt_claims_t zero;
    jwt_claims_t c;
    int rc = jwt_verify(token, len, keys, 2, NOW, &c);
    FUZZ_CHECK(rc <= JWT_OK && rc >= JWT_NO_MEMORY);
    FUZZ_CHECK(strcmp(jwt_error_name(rc), "unknown") != 0);
    if (rc != JWT_OK) {
        FUZZ_CHECK(memcmp(&c, &zero, sizeof c) == 0);
    } else {
        check_list(c.has_publish, c.publish, c.npublish);
        check_list(c.has_subscribe, c.subscribe, c.nsubscribe);
        FUZZ_CHECK(!c.has_exp || c.exp > NOW);
        FUZZ_CHECK(c.payload_json == NULL || strlen(c.payload_json) > 0);
    }
    jwt_claims_free(&c);
    FUZZ_CHECK(memcmp(&c, &zero, sizeof c) == 0);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_copy(data, size);
    const char *nul = memchr(s, '\0', size);
    if (nul == NULL && (size == 0 || s[0] != '{')) {
        int rc = verify(s, size);
        if (size == 0 || size > JWT_MAX_TOKEN_LEN)
            FUZZ_CHECK(rc == JWT_MALFORMED);
        free(s);
        return 0;
    }
    buf_t token = BUF_INIT;
    if (nul != NULL)
        sign_hs256(&token, s, (size_t)(nul - s), nul + 1, size - (size_t)(nul - s) - 1);
    else
        sign_hs256(&token, FIXED_HEADER, sizeof FIXED_HEADER - 1, s, size);
    char *exact = fuzz_copy((const uint8_t *)token.base, token.len);
    int rc = verify(exact, token.len);
    if (nul == NULL && token.len <= JWT_MAX_TOKEN_LEN)
        FUZZ_CHECK(rc != JWT_BAD_SIGNATURE && rc != JWT_BAD_ALG);
    free(exact);
    buf_free(&token);
    free(s);
    return 0;
}
