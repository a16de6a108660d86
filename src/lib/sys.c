#include "lib/sys.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/mem.h"

enum sys_op { SYS_OP_OPEN, SYS_OP_WRITE, SYS_OP_FSYNC, SYS_OP_RENAME, SYS_OP_UNLINK, SYS_OP_COUNT };
enum sys_fault_kind { SYS_FAULT_NONE, SYS_FAULT_EIO, SYS_FAULT_ENOSPC, SYS_FAULT_CRASH };

static const char *const sys_op_names[SYS_OP_COUNT] = { "open", "write", "fsync", "rename", "unlink" };

struct sys_fault {
	enum sys_fault_kind kind;
	unsigned long from_call;
};

static struct sys_fault sys_faults[SYS_OP_COUNT];
static atomic_ulong sys_calls[SYS_OP_COUNT];

static int
sys_fault_parse_one(const char *item, char **err_r)
{
	char op[32], kind[32];
	unsigned long at = 1;
	int end = -1, fields = sscanf(item, "%31[a-z]=%31[a-z]%n@%lu%n", op, kind, &end, &at, &end);
	if (fields < 2 || end < 0 || item[end] != '\0') {
		struct buf b = BUF_INIT;
		buf_appendf(&b, "bad fault '%s' (want op=kind[@N])", item);
		*err_r = buf_steal(&b);
		return -1;
	}
	int o;
	for (o = 0; o < SYS_OP_COUNT; o++)
		if (strcmp(op, sys_op_names[o]) == 0)
			break;
	enum sys_fault_kind k = SYS_FAULT_NONE;
	if (strcmp(kind, "eio") == 0)
		k = SYS_FAULT_EIO;
	else if (strcmp(kind, "enospc") == 0)
		k = SYS_FAULT_ENOSPC;
	else if (strcmp(kind, "crash") == 0)
		k = SYS_FAULT_CRASH;
	if (o == SYS_OP_COUNT || k == SYS_FAULT_NONE || at == 0) {
		struct buf b = BUF_INIT;
		buf_appendf(&b, "bad fault '%s'", item);
		*err_r = buf_steal(&b);
		return -1;
	}
	sys_faults[o].kind = k;
	sys_faults[o].from_call = at;
	return 0;
}

int
sys_fault_configure(const char *spec, char **err_r)
{
	memset(sys_faults, 0, sizeof(sys_faults));
	for (int i = 0; i < SYS_OP_COUNT; i++)
		atomic_store(&sys_calls[i], 0);
	if (spec == NULL || *spec == '\0')
		return 0;
	char *copy = xstrdup(spec), *save = NULL;
	int rc = 0;
	for (char *item = strtok_r(copy, ",", &save); item != NULL && rc == 0;
	     item = strtok_r(NULL, ",", &save))
		rc = sys_fault_parse_one(item, err_r);
	free(copy);
	return rc;
}

/* Returns 0 to go on, -1 (errno set) when an injected fault fires. */
static int
sys_fault_check(enum sys_op op)
{
	const struct sys_fault *f = &sys_faults[op];
	if (f->kind == SYS_FAULT_NONE)
		return 0;
	unsigned long n = atomic_fetch_add(&sys_calls[op], 1) + 1;
	if (n < f->from_call)
		return 0;
	switch (f->kind) {
	case SYS_FAULT_EIO:
		errno = EIO;
		return -1;
	case SYS_FAULT_ENOSPC:
		errno = ENOSPC;
		return -1;
	case SYS_FAULT_CRASH:
		_exit(137);
	case SYS_FAULT_NONE:
		break;
	}
	return 0;
}

int
sys_open(const char *path, int flags, mode_t mode)
{
	return sys_openat(AT_FDCWD, path, flags, mode);
}

int
sys_openat(int dirfd, const char *path, int flags, mode_t mode)
{
	if (sys_fault_check(SYS_OP_OPEN) < 0)
		return -1;
	int fd;
	do
		fd = openat(dirfd, path, flags | O_CLOEXEC, mode);
	while (fd < 0 && errno == EINTR);
	return fd;
}

int
sys_write_all(int fd, const void *data, size_t len)
{
	const char *p = data;
	if (sys_fault_check(SYS_OP_WRITE) < 0)
		return -1;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int
sys_pwrite_all(int fd, const void *data, size_t len, off_t offset)
{
	const char *p = data;
	if (sys_fault_check(SYS_OP_WRITE) < 0)
		return -1;
	while (len > 0) {
		ssize_t n = pwrite(fd, p, len, offset);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
		offset += n;
	}
	return 0;
}

int
sys_fsync(int fd)
{
	if (sys_fault_check(SYS_OP_FSYNC) < 0)
		return -1;
	return fsync(fd);
}

int
sys_fdatasync(int fd)
{
	if (sys_fault_check(SYS_OP_FSYNC) < 0)
		return -1;
	return fdatasync(fd);
}

int
sys_close(int fd)
{
	if (close(fd) < 0 && errno != EINTR)
		return -1;
	return 0;
}

int
sys_rename(const char *from, const char *to)
{
	return sys_renameat(AT_FDCWD, from, AT_FDCWD, to);
}

int
sys_renameat(int fromdir, const char *from, int todir, const char *to)
{
	if (sys_fault_check(SYS_OP_RENAME) < 0)
		return -1;
	return renameat(fromdir, from, todir, to);
}

int
sys_unlink(const char *path)
{
	return sys_unlinkat(AT_FDCWD, path);
}

int
sys_unlinkat(int dirfd, const char *path)
{
	if (sys_fault_check(SYS_OP_UNLINK) < 0)
		return -1;
	return unlinkat(dirfd, path, 0);
}

int
sys_fsync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int rc = sys_fsync(fd);
	int saved = errno;
	close(fd);
	errno = saved;
	return rc;
}

int
sys_mkdir_p(const char *path, mode_t mode)
{
	char tmp[PATH_MAX];
	int n = snprintf(tmp, sizeof(tmp), "%s", path);
	if (n < 0 || (size_t)n >= sizeof(tmp)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	for (char *p = tmp + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, mode) < 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(tmp, mode) < 0 && errno != EEXIST)
		return -1;
	return 0;
}

int
sys_read_file(const char *path, size_t max, char **data_r, size_t *len_r)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	struct buf b = BUF_INIT;
	char chunk[65536];
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || b.len + (size_t)n > max) {
			int saved = n < 0 ? errno : EFBIG;
			close(fd);
			buf_free(&b);
			errno = saved;
			return -1;
		}
		if (n == 0)
			break;
		buf_append(&b, chunk, (size_t)n);
	}
	close(fd);
	*len_r = b.len;
	*data_r = buf_steal(&b);
	return 0;
}

int
sys_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode)
{
	struct buf tmp = BUF_INIT, dir = BUF_INIT;
	buf_appendf(&tmp, "%s.tmp.%ld", path, (long)getpid());
	const char *slash = strrchr(path, '/');
	if (slash != NULL)
		buf_append(&dir, path, (size_t)(slash - path) + (slash == path));
	else
		buf_append_str(&dir, ".");
	int rc = -1, saved = 0;
	int fd = sys_open(buf_cstr(&tmp), O_WRONLY | O_CREAT | O_TRUNC, mode);
	if (fd >= 0) {
		if (sys_write_all(fd, data, len) == 0 && sys_fsync(fd) == 0) {
			if (sys_close(fd) == 0 && sys_rename(tmp.data, path) == 0 &&
			    sys_fsync_dir(buf_cstr(&dir)) == 0)
				rc = 0;
		} else {
			saved = errno;
			close(fd);
			errno = saved;
		}
		if (rc < 0) {
			saved = errno;
			unlink(tmp.data);
			errno = saved;
		}
	}
	buf_free(&tmp);
	buf_free(&dir);
	return rc;
}
