/*
 * netio — blocking socket I/O with a deadline, for worker threads (the
 * clamd client, the milter client).
 *
 *   int64_t deadline = netio_now_ms() + timeout_ms;
 *   int fd = netio_connect_unix("/run/clamd.sock", deadline);
 *   if (fd < 0) ... errno says why (ETIMEDOUT when the deadline passed) ...
 *   netio_write_all(fd, data, len, deadline);
 *   netio_read_full(fd, hdr, 4, deadline);
 *   close(fd);
 *
 * Sockets are opened non-blocking and close-on-exec; every wait is a poll()
 * against an absolute CLOCK_MONOTONIC deadline in milliseconds.  Nothing is
 * allocated; the caller closes the descriptors it gets.  All functions
 * return -1 with errno set on failure.
 */
#ifndef MAILARK_LIB_NETIO_H
#define MAILARK_LIB_NETIO_H

#include <stddef.h>
#include <stdint.h>

/* Milliseconds of CLOCK_MONOTONIC: the clock of every deadline here. */
int64_t netio_now_ms(void);
/* Waits for events (POLLIN, POLLOUT …) on fd until the deadline: the
 * revents seen (> 0), 0 when the deadline passed (errno ETIMEDOUT), -1 on error. */
int netio_wait(int fd, short events, int64_t deadline_ms);
/* A connected stream socket to a unix socket path, or -1 (ENAMETOOLONG for
 * a path that does not fit a sockaddr_un). */
int netio_connect_unix(const char *path, int64_t deadline_ms);
/* A connected TCP socket to host (name or numeric) and numeric port text,
 * trying each address in turn; -1 with errno of the last attempt.  When the
 * name does not resolve errno is EHOSTUNREACH and *gai_r (if not NULL) gets
 * getaddrinfo()'s code (0 otherwise). */
int netio_connect_tcp(const char *host, const char *port, int64_t deadline_ms, int *gai_r);
/* Sends all len bytes (MSG_NOSIGNAL) before the deadline. */
int netio_write_all(int fd, const void *data, size_t len, int64_t deadline_ms);
/* Reads exactly len bytes before the deadline; a closed connection is ECONNRESET. */
int netio_read_full(int fd, void *data, size_t len, int64_t deadline_ms);

#endif
