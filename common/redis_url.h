/* redis://[user:password@]host:port[/db] URLs. */
#ifndef SSEHUB_COMMON_REDIS_URL_H
#define SSEHUB_COMMON_REDIS_URL_H

#include <stddef.h>

typedef struct redis_url {
    char host[256]; /* name or address; IPv6 literals are written [::1] in the URL, stored bare */
    int port;       /* default 6379 */
    char user[128]; /* ACL user, "" when none (AUTH password only) */
    char password[256]; /* "" when none; percent-decoded */
    int db;         /* default 0 */
} redis_url_t;

/* Parses a URL; returns 0, or -1 with a message in err. user and password
 * may be percent-encoded in the URL. */
int redis_url_parse(const char *url, redis_url_t *out, char *err, size_t errlen);

#endif
