/* Recognising the Redis errors that mean the project's Function library is
 * not loaded (a restarted or flushed Redis, FUNCTION DELETE, a failover to
 * a replica that never got it), so callers reload it and retry. */
#include "broker/functions.h"

#include <string.h>
#include <strings.h>

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
