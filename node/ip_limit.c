/* Streams per client address (see ip_limit.h): a chained hash table under
 * one mutex, touched only when a stream opens or ends. */
#include "node/ip_limit.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/text.h"

#define BUCKETS 4096

struct ip_entry {
    ip_entry_t *next;
    unsigned char key[17]; /* family byte + up to 16 address bytes */
    unsigned count;
};

static ip_entry_t *buckets[BUCKETS];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

/* Fills key with the address part of sa (no port); returns 0 or -1. */
static int key_of(const struct sockaddr *sa, socklen_t len, unsigned char key[17])
{
    memset(key, 0, 17);
    if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        key[0] = 4;
        memcpy(key + 1, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return 0;
    }
    if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        key[0] = 6;
        memcpy(key + 1, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
        return 0;
    }
    return -1;
}

static size_t bucket_of(const unsigned char key[17])
{
    return (size_t)(text_fnv1a64(TEXT_FNV1A64_SEED, key, 17) % BUCKETS);
}

ip_entry_t *ip_limit_acquire(const struct sockaddr *sa, socklen_t len, unsigned limit)
{
    unsigned char key[17];
    if (key_of(sa, len, key) != 0)
        return NULL;
    size_t b = bucket_of(key);
    pthread_mutex_lock(&lock);
    ip_entry_t *e = buckets[b];
    while (e != NULL && memcmp(e->key, key, 17) != 0)
        e = e->next;
    if (e == NULL && (e = calloc(1, sizeof(*e))) != NULL) {
        memcpy(e->key, key, 17);
        e->next = buckets[b];
        buckets[b] = e;
    }
    if (e != NULL && e->count >= limit)
        e = NULL;
    else if (e != NULL)
        e->count++;
    pthread_mutex_unlock(&lock);
    return e;
}

void ip_limit_release(ip_entry_t *e)
{
    if (e == NULL)
        return;
    pthread_mutex_lock(&lock);
    if (--e->count == 0) {
        ip_entry_t **pp = &buckets[bucket_of(e->key)];
        while (*pp != e)
            pp = &(*pp)->next;
        *pp = e->next;
        free(e);
    }
    pthread_mutex_unlock(&lock);
}
