/* Verification of Mercure JWTs: JWS compact serialization signed with HS256
 * or RS256, and the claims ssehub reads from them (exp, nbf,
 * mercure.publish, mercure.subscribe, mercure.payload). Pure functions over
 * immutable keys, so any thread may verify with the same keys at once. */
#ifndef SSEHUB_COMMON_JWT_H
#define SSEHUB_COMMON_JWT_H

#include <stddef.h>
#include <stdint.h>

/* Longest token accepted, in bytes; longer ones are malformed, which bounds
 * the work an unauthenticated client can ask for. */
#define JWT_MAX_TOKEN_LEN 16384
/* Largest key file jwt_key_from_setting reads. */
#define JWT_MAX_KEY_FILE_LEN (1024 * 1024)
/* Smallest RSA modulus accepted for RS256. */
#define JWT_MIN_RSA_BITS 2048

/* The signature algorithms a key (and so a token) may use. */
typedef enum jwt_alg {
    JWT_ALG_HS256, /* HMAC with SHA-256 over a shared secret */
    JWT_ALG_RS256, /* RSASSA-PKCS1-v1_5 with SHA-256 */
} jwt_alg_t;

/* A verification key bound to one algorithm: an HMAC secret (HS256) or an
 * RSA public key (RS256). Immutable once built; release with jwt_key_free. */
typedef struct jwt_key jwt_key_t;

/* Sets *out from the JOSE name "HS256" or "RS256" (exact case); returns 0,
 * or -1 for any other name. */
int jwt_alg_parse(const char *name, jwt_alg_t *out);

/* Builds a key from len bytes of material: for HS256 the secret itself (not
 * empty); for RS256 PEM text holding a SubjectPublicKeyInfo ("BEGIN PUBLIC
 * KEY") or an X.509 certificate ("BEGIN CERTIFICATE"), whose public key is
 * taken and whose validity dates are not checked. An RS256 key must be RSA
 * of at least JWT_MIN_RSA_BITS bits. Returns the key, or NULL with a
 * one-line reason in err (err may be NULL when errlen is 0). */
jwt_key_t *jwt_key_new(jwt_alg_t alg, const char *material, size_t len, char *err, size_t errlen);

/* Builds a key from a configuration value: for HS256 the value is the
 * secret; for RS256 it is the path of a PEM file as jwt_key_new accepts.
 * Returns the key, or NULL with a one-line reason in err. */
jwt_key_t *jwt_key_from_setting(jwt_alg_t alg, const char *value, char *err, size_t errlen);

/* Releases a key (NULL is fine); an HMAC secret is wiped first. */
void jwt_key_free(jwt_key_t *k);

/* Returns the algorithm a key verifies. */
jwt_alg_t jwt_key_alg(const jwt_key_t *k);

/* What a verified token grants. Strings and arrays are heap copies owned by
 * the struct; release them with jwt_claims_free. */
typedef struct jwt_claims {
    int has_exp;     /* the token has an "exp" claim */
    int64_t exp;     /* its value in seconds since the epoch, a real floored */
    int has_publish; /* mercure.publish is present (perhaps empty) */
    char **publish;  /* its topic selectors, npublish of them then NULL */
    size_t npublish;
    int has_subscribe; /* mercure.subscribe is present (perhaps empty) */
    char **subscribe;  /* its topic selectors, nsubscribe of them then NULL */
    size_t nsubscribe;
    char *payload_json; /* mercure.payload as compact JSON, NULL when absent */
} jwt_claims_t;

/* Results of jwt_verify; jwt_error_name gives each a stable short code. */
enum jwt_error {
    JWT_OK = 0,
    JWT_MALFORMED = -1,     /* not three non-empty strict base64url parts, too long,
                               header or payload not JSON, header without "alg" or with "crit" */
    JWT_BAD_ALG = -2,       /* header alg unknown ("none", "HS512", ...) or no key of that alg */
    JWT_BAD_SIGNATURE = -3, /* no key of the header's alg verifies the signature */
    JWT_EXPIRED = -4,       /* exp <= now */
    JWT_NOT_YET_VALID = -5, /* nbf > now */
    JWT_BAD_CLAIMS = -6,    /* payload not an object, or a claim of the wrong type */
    JWT_NO_MEMORY = -7,     /* out of memory */
};

/* Verifies the len bytes of token against keys[0..nkeys) (e.g. the current
 * and the previous key during a rotation; NULL entries are skipped). Only
 * keys whose algorithm equals the header's "alg" are tried, so a token can
 * never pick how a key is used (an HS256 token is never checked with an
 * RSA public key as its secret). The payload is parsed only once the
 * signature holds; then exp (expired when exp <= now, no leeway) and nbf
 * (not yet valid when nbf > now) are checked against now, in seconds.
 * Returns JWT_OK and fills *claims, or a negative enum jwt_error with
 * *claims zeroed; either way jwt_claims_free(claims) is safe. */
int jwt_verify(const char *token, size_t len, jwt_key_t *const *keys, size_t nkeys, int64_t now,
               jwt_claims_t *claims);

/* Releases what *c holds and zeroes it (NULL is fine). */
void jwt_claims_free(jwt_claims_t *c);

/* Returns a stable short code for a jwt_verify result: "ok", "malformed",
 * "bad_algorithm", "bad_signature", "expired", "not_yet_valid",
 * "bad_claims", "no_memory", or "unknown". */
const char *jwt_error_name(int err);

#endif
