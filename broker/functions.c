/* Recognising the Redis errors that mean the project's Function library is
 * not loaded (a restarted or flushed Redis, FUNCTION DELETE, a failover to
 * a replica that never got it), so callers reload it and retry. */
#include "broker/functions.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define LIVE_LINE "local LIVE_PUBLISH = 'PUBLISH'"
#define LIVE_LINE_SHARDED "local LIVE_PUBLISH = 'SPUBLISH'"

static char *sharded_src;
static size_t sharded_len;
static pthread_once_t sharded_once = PTHREAD_ONCE_INIT;

/* Builds the cluster text: the compiled-in one with LIVE_LINE replaced. */
static void make_sharded(void)
{
    const char *at = strstr(ssehub_functions_lua, LIVE_LINE);
    size_t head = at != NULL ? (size_t)(at - ssehub_functions_lua) : 0;
    size_t add = strlen(LIVE_LINE_SHARDED) - strlen(LIVE_LINE);
    char *s = at != NULL ? malloc(ssehub_functions_lua_len + add + 1) : NULL;
    if (s == NULL)
        return; /* cannot happen with the compiled-in text; callers fall back to it */
    memcpy(s, ssehub_functions_lua, head);
    memcpy(s + head, LIVE_LINE_SHARDED, strlen(LIVE_LINE_SHARDED));
    size_t tail = ssehub_functions_lua_len - head - strlen(LIVE_LINE);
    memcpy(s + head + strlen(LIVE_LINE_SHARDED), at + strlen(LIVE_LINE), tail);
    sharded_len = ssehub_functions_lua_len + add;
    s[sharded_len] = '\0';
    sharded_src = s;
}

const char *functions_source(int sharded, size_t *len)
{
    if (sharded) {
        pthread_once(&sharded_once, make_sharded);
        if (sharded_src != NULL) {
            *len = sharded_len;
            return sharded_src;
        }
    }
    *len = ssehub_functions_lua_len;
    return ssehub_functions_lua;
}

/* Returns nonzero when s (len bytes) starts with the C string p. */
static int starts_with(const char *s, size_t len, const char *p)
{
    size_t n = strlen(p);
    return len >= n && strncasecmp(s, p, n) == 0;
}

int functions_missing_error(const char *errstr, size_t len)
{
    if (errstr == NULL)
        return 0;
    /* Redis 7 FCALL/FCALL_RO: "ERR Function not found"; EVALSHA's
     * equivalent is "NOSCRIPT No matching script...". */
    return starts_with(errstr, len, "ERR Function not found") || starts_with(errstr, len, "NOSCRIPT");
}

int functions_outdated_error(const char *errstr, size_t len)
{
    if (errstr == NULL)
        return 0;
    /* An older publish function refuses the options it does not know
     * (fence, in, maxbytes, ...): we only send options the current one takes. */
    return starts_with(errstr, len, "ERR ssehub: unknown option ");
}
