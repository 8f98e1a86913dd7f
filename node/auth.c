/* Mercure authorization on the node (see auth.h). */
#include "node/auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- keys ---------------------------------------------------------------------- */

/* Builds one key from a setting's value (the HS256 secret, or the RS256
 * PEM file it names); returns NULL after a message naming the setting. */
static jwt_key_t *key_from_setting(jwt_alg_t alg, const char *setting, const char *value, char *err, size_t errlen)
{
    char why[256] = "";
    jwt_key_t *k = jwt_key_from_setting(alg, value, why, sizeof(why));
    if (k == NULL)
        snprintf(err, errlen, "%s: %s", setting, why[0] ? why : "out of memory");
    return k;
}

int auth_keys_load(const ssehub_config_t *cfg, auth_keys_t *keys, char *err, size_t errlen)
{
    memset(keys, 0, sizeof(*keys));
    jwt_alg_t alg;
    if (jwt_alg_parse(cfg->jwt_algorithm, &alg) != 0) {
        snprintf(err, errlen, "jwt_algorithm: %s is not one of HS256, RS256", cfg->jwt_algorithm);
        return -1;
    }
    const char *pub = cfg->jwt_publisher_key[0] ? cfg->jwt_publisher_key : cfg->jwt_key;
    const char *sub = cfg->jwt_subscriber_key[0] ? cfg->jwt_subscriber_key : cfg->jwt_key;
    const char *pub_name = cfg->jwt_publisher_key[0] ? "jwt_publisher_key" : "jwt_key";
    const char *sub_name = cfg->jwt_subscriber_key[0] ? "jwt_subscriber_key" : "jwt_key";
    if (pub[0] && (keys->publisher[keys->npublisher++] = key_from_setting(alg, pub_name, pub, err, errlen)) == NULL)
        goto fail;
    if (sub[0] && (keys->subscriber[keys->nsubscriber++] = key_from_setting(alg, sub_name, sub, err, errlen)) == NULL)
        goto fail;
    if (cfg->jwt_key_previous[0]) {
        if (keys->npublisher == 0 && keys->nsubscriber == 0) {
            snprintf(err, errlen, "jwt_key_previous: set jwt_key too (the previous key is accepted besides it)");
            goto fail;
        }
        if (keys->npublisher > 0 &&
            (keys->publisher[keys->npublisher++] = key_from_setting(alg, "jwt_key_previous", cfg->jwt_key_previous, err, errlen)) == NULL)
            goto fail;
        if (keys->nsubscriber > 0 &&
            (keys->subscriber[keys->nsubscriber++] = key_from_setting(alg, "jwt_key_previous", cfg->jwt_key_previous, err, errlen)) == NULL)
            goto fail;
    }
    if (!cfg->subscribe_anonymous && keys->nsubscriber == 0) {
        snprintf(err, errlen, "subscribe_anonymous: false needs jwt_key (or jwt_subscriber_key) to verify tokens");
        goto fail;
    }
    return 0;
fail:
    auth_keys_free(keys);
    return -1;
}

void auth_keys_free(auth_keys_t *keys)
{
    for (size_t i = 0; i < keys->npublisher; i++)
        jwt_key_free(keys->publisher[i]);
    for (size_t i = 0; i < keys->nsubscriber; i++)
        jwt_key_free(keys->subscriber[i]);
    memset(keys, 0, sizeof(*keys));
}

/* ---- finding the token ------------------------------------------------------------ */

/* Looks for name=value in one Cookie header value; returns 1 and *out. */
static int cookie_find(h2o_iovec_t header, const char *name, h2o_iovec_t *out)
{
    size_t nlen = strlen(name);
    const char *p = header.base, *end = header.base + header.len;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == ';'))
            p++;
        const char *e = p;
        while (e < end && *e != ';')
            e++;
        if ((size_t)(e - p) > nlen && memcmp(p, name, nlen) == 0 && p[nlen] == '=') {
            const char *v = p + nlen + 1, *ve = e;
            while (ve > v && ve[-1] == ' ')
                ve--;
            if (ve - v >= 2 && *v == '"' && ve[-1] == '"')
                v++, ve--;
            *out = h2o_iovec_init(v, (size_t)(ve - v));
            return 1;
        }
        p = e;
    }
    return 0;
}

int auth_find_token(h2o_req_t *req, const buf_t *query_token, h2o_iovec_t *token)
{
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1);
    if (i >= 0) {
        h2o_iovec_t v = req->headers.entries[i].value;
        if (v.len >= 7 && h2o_lcstris(v.base, 7, H2O_STRLIT("bearer ")))
            *token = h2o_iovec_init(v.base + 7, v.len - 7);
        else
            *token = h2o_iovec_init("", 0); /* present but not a bearer token: fails verification */
        return 1;
    }
    if (query_token != NULL && query_token->len > 0) {
        *token = h2o_iovec_init(query_token->base, query_token->len);
        return 1;
    }
    for (i = -1; (i = h2o_find_header(&req->headers, H2O_TOKEN_COOKIE, i)) >= 0;)
        if (cookie_find(req->headers.entries[i].value, "mercureAuthorization", token))
            return 1;
    return 0;
}

/* ---- claims ------------------------------------------------------------------------ */

/* Compiles claim selectors; returns 0 or -1. */
static int compile(char *const *src, size_t n, selector_t ***out)
{
    *out = n ? calloc(n, sizeof(**out)) : NULL;
    if (n && *out == NULL)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (((*out)[i] = selector_new(src[i], strlen(src[i]))) == NULL)
            return -1;
    return 0;
}

int auth_subscriber(const auth_keys_t *keys, h2o_iovec_t token, int64_t now, auth_grant_t **grant)
{
    jwt_claims_t claims;
    int r = jwt_verify(token.base, token.len, keys->subscriber, keys->nsubscriber, now, &claims);
    if (r != JWT_OK)
        return r;
    auth_grant_t *g = calloc(1, sizeof(*g));
    if (g == NULL) {
        jwt_claims_free(&claims);
        return JWT_MALFORMED;
    }
    g->exp = claims.has_exp ? claims.exp : 0;
    g->nsubscribe = claims.has_subscribe ? claims.nsubscribe : 0;
    r = compile(claims.subscribe, g->nsubscribe, &g->subscribe);
    jwt_claims_free(&claims);
    if (r != 0) {
        auth_grant_free(g);
        return JWT_MALFORMED;
    }
    *grant = g;
    return 0;
}

void auth_grant_free(auth_grant_t *g)
{
    if (g == NULL)
        return;
    for (size_t i = 0; i < g->nsubscribe; i++)
        if (g->subscribe[i] != NULL)
            selector_free(g->subscribe[i]);
    free(g->subscribe);
    free(g);
}

int auth_grant_allows(const auth_grant_t *g, const char *topic, size_t len)
{
    if (g == NULL)
        return 0;
    for (size_t i = 0; i < g->nsubscribe; i++)
        if (selector_match(g->subscribe[i], topic, len))
            return 1;
    return 0;
}

int auth_publisher(const auth_keys_t *keys, h2o_iovec_t token, int64_t now, const h2o_iovec_t *topics, size_t n)
{
    jwt_claims_t claims;
    int r = jwt_verify(token.base, token.len, keys->publisher, keys->npublisher, now, &claims);
    if (r != JWT_OK)
        return r;
    selector_t **sel = NULL;
    size_t nsel = claims.has_publish ? claims.npublish : 0;
    r = compile(claims.publish, nsel, &sel) != 0 ? JWT_MALFORMED : 0;
    for (size_t i = 0; r == 0 && i < n; i++) {
        int ok = 0;
        for (size_t k = 0; k < nsel && !ok; k++)
            ok = selector_match(sel[k], topics[i].base, topics[i].len);
        if (!ok)
            r = AUTH_FORBIDDEN;
    }
    for (size_t k = 0; sel != NULL && k < nsel; k++)
        if (sel[k] != NULL)
            selector_free(sel[k]);
    free(sel);
    jwt_claims_free(&claims);
    return r;
}

const char *auth_error_name(int err)
{
    return err == AUTH_FORBIDDEN ? "forbidden" : jwt_error_name(err);
}
