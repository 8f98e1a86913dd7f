/* redis://[user:password@]host:port[,host:port...][/db] URLs: one Redis,
 * or seed nodes of a Redis Cluster (any one of them is enough to find the
 * rest); and redis-sentinel://[user:password@]host:port[,...]/master[/db]:
 * the Sentinels that know the master named "master". */
#ifndef SSEHUB_COMMON_REDIS_URL_H
#define SSEHUB_COMMON_REDIS_URL_H

#include <stddef.h>

#define REDIS_URL_MAX_HOSTS 16

typedef struct redis_addr {
    char host[256];
    int port;
} redis_addr_t;

typedef struct redis_url {
    char host[256]; /* name or address; IPv6 literals are written [::1] in the URL, stored bare */
    int port;       /* default 6379 */
    char user[128]; /* ACL user, "" when none (AUTH password only) */
    char password[256]; /* "" when none; percent-decoded */
    int db;         /* default 0 */
    int nhosts;     /* hosts given (1 or more); hosts[0] is host:port */
    redis_addr_t hosts[REDIS_URL_MAX_HOSTS];
    char sentinel_master[128]; /* redis-sentinel://: the master's name; "" otherwise */
    char sentinel_password[256]; /* AUTH for the Sentinels (not from the URL); "" = none */
} redis_url_t;

/* Parses a URL; returns 0, or -1 with a message in err. user and password
 * may be percent-encoded in the URL. */
int redis_url_parse(const char *url, redis_url_t *out, char *err, size_t errlen);

/* Sets the password the Sentinels of a redis-sentinel:// URL take ("" for
 * none); returns 0, or -1 with a message when the URL names no Sentinels
 * or the password is too long. */
int redis_url_set_sentinel_password(redis_url_t *u, const char *password, char *err, size_t errlen);

#endif
