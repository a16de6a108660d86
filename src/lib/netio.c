/*
 * netio.c — blocking socket I/O with a deadline (see netio.h).
 */
#include "lib/netio.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define NETIO_POLL_MAX_MS 60000   /* one poll() never sleeps longer */

int64_t
netio_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
netio_wait(int fd, short events, int64_t deadline_ms)
{
	for (;;) {
		int64_t left = deadline_ms - netio_now_ms();
		if (left <= 0) {
			errno = ETIMEDOUT;
			return 0;
		}
		struct pollfd p = { .fd = fd, .events = events };
		int n = poll(&p, 1, left > NETIO_POLL_MAX_MS ? NETIO_POLL_MAX_MS : (int)left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n > 0)
			return p.revents;
	}
}

/* Finishes a non-blocking connect before the deadline: 0 or -1 + errno. */
static int
connect_wait(int fd, const struct sockaddr *sa, socklen_t salen, int64_t deadline_ms)
{
	if (connect(fd, sa, salen) == 0)
		return 0;
	if (errno != EINPROGRESS)
		return -1;
	int ev = netio_wait(fd, POLLOUT, deadline_ms);
	if (ev <= 0)
		return -1;
	int soerr = 0;
	socklen_t sl = sizeof(soerr);
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
		return -1;
	if (soerr != 0) {
		errno = soerr;
		return -1;
	}
	return 0;
}

/* A new non-blocking socket connected to sa, or -1 + errno. */
static int
connect_new(int family, const struct sockaddr *sa, socklen_t salen, int64_t deadline_ms)
{
	int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect_wait(fd, sa, salen, deadline_ms) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

int
netio_connect_unix(const char *path, int64_t deadline_ms)
{
	struct sockaddr_un sun;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	size_t len = strlen(path);
	if (len >= sizeof(sun.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(sun.sun_path, path, len + 1);
	return connect_new(AF_UNIX, (struct sockaddr *)&sun, sizeof(sun), deadline_ms);
}

int
netio_connect_tcp(const char *host, const char *port, int64_t deadline_ms, int *gai_r)
{
	if (gai_r != NULL)
		*gai_r = 0;
	struct addrinfo hints, *res = NULL;
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	int gai = getaddrinfo(host, port, &hints, &res);
	if (gai != 0 || res == NULL) {
		if (gai_r != NULL)
			*gai_r = gai;
		errno = EHOSTUNREACH;
		return -1;
	}
	int fd = -1;
	errno = EHOSTUNREACH;
	for (struct addrinfo *ai = res; ai != NULL && fd < 0; ai = ai->ai_next)
		fd = connect_new(ai->ai_family, ai->ai_addr, ai->ai_addrlen, deadline_ms);
	int e = errno;
	freeaddrinfo(res);
	errno = e;
	return fd;
}

/* Sends (writing) or receives exactly len bytes before the deadline. */
static int
transfer_all(int fd, unsigned char *p, size_t len, int64_t deadline_ms, int writing)
{
	while (len > 0) {
		if (netio_wait(fd, writing ? POLLOUT : POLLIN, deadline_ms) <= 0)
			return -1;
		ssize_t n = writing ? send(fd, p, len, MSG_NOSIGNAL) : recv(fd, p, len, 0);
		if (n == 0 && !writing) {
			errno = ECONNRESET;
			return -1;
		}
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int
netio_write_all(int fd, const void *data, size_t len, int64_t deadline_ms)
{
	return transfer_all(fd, (unsigned char *)(uintptr_t)data, len, deadline_ms, 1);
}

int
netio_read_full(int fd, void *data, size_t len, int64_t deadline_ms)
{
	return transfer_all(fd, data, len, deadline_ms, 0);
}
