/*
 * sys — the system calls that make mail durable, behind one thin layer.
 *
 * Every write, fsync, rename and unlink that decides whether a message is
 * safe goes through these functions, so that tests can make them fail.
 * sys_fault_configure() takes a list such as
 *     "fsync=eio@3,write=enospc@10,rename=crash@5"
 * meaning: the 3rd and every later fsync fails with EIO, the 10th and later
 * write fails with ENOSPC, the 5th rename kills the process (_exit 137)
 * before it happens.  The daemon reads the list from $MAILARK_FAULTS at
 * start-up.  Without it the functions are the plain system calls, with
 * EINTR and short writes handled.  All return -1 with errno set on failure.
 */
#ifndef MAILARK_LIB_SYS_H
#define MAILARK_LIB_SYS_H

#include <stddef.h>
#include <sys/types.h>

/* Returns 0, or -1 with a reason in *err_r (caller frees) for a bad spec. */
int sys_fault_configure(const char *spec, char **err_r);

int sys_open(const char *path, int flags, mode_t mode);
int sys_openat(int dirfd, const char *path, int flags, mode_t mode);
int sys_write_all(int fd, const void *data, size_t len);
int sys_pwrite_all(int fd, const void *data, size_t len, off_t offset);
int sys_fsync(int fd);
int sys_fdatasync(int fd);
/* close() whose error is reported (NFS and some filesystems report late). */
int sys_close(int fd);
int sys_rename(const char *from, const char *to);
int sys_renameat(int fromdir, const char *from, int todir, const char *to);
int sys_unlink(const char *path);
int sys_unlinkat(int dirfd, const char *path);
/* Opens the directory, fsyncs it, closes it. */
int sys_fsync_dir(const char *path);
/* mkdir -p with the given mode for directories it creates. */
int sys_mkdir_p(const char *path, mode_t mode);
/* Reads a whole file into *data_r (NUL-terminated, caller frees). */
int sys_read_file(const char *path, size_t max, char **data_r, size_t *len_r);
/* Writes a whole file durably: temp name, fsync, rename, fsync dir. */
int sys_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode);

#endif
