/* The optional cap on open streams per client address
 * (max_connections_per_ip), shared by every worker thread. Addresses are
 * counted while they have streams open and forgotten with the last one. */
#ifndef SSEHUB_NODE_IP_LIMIT_H
#define SSEHUB_NODE_IP_LIMIT_H

#include <stddef.h>
#include <sys/socket.h>

typedef struct ip_entry ip_entry_t;

/* Counts one more stream from the address; returns its entry (pass it to
 * ip_limit_release when the stream ends), or NULL when the address has
 * `limit` streams already or memory ran out. */
ip_entry_t *ip_limit_acquire(const struct sockaddr *sa, socklen_t len, unsigned limit);
void ip_limit_release(ip_entry_t *e);

#endif
