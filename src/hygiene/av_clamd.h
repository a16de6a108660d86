/*
 * av_clamd — the antivirus content stage: streams the message to clamd
 * ([hygiene] clamd_socket: a unix socket path or host:port) with the
 * INSTREAM command (chunked, zINSTREAM), within [hygiene] clamd_timeout.
 * An empty clamd_socket (the default) means no antivirus: the stage does nothing.
 *
 *   rc = av_clamd_stage(m, r, &err);   // hygiene.c stage table
 *
 * "stream: Eicar-Signature FOUND" raises the tenant's av.action (reject:
 * "550 5.7.1 Message rejected: virus found: Eicar-Signature"); "OK" records
 * nothing; a connection error, timeout or "ERROR" reply returns -1 (the
 * tenant's av.on_failure then decides).  av_clamd_scan() is the bare client.
 */
#ifndef MAILARK_HYGIENE_AV_CLAMD_H
#define MAILARK_HYGIENE_AV_CLAMD_H

#include <stddef.h>

struct hygiene_msg;
struct hygiene_result;

/* 0 clean, 1 infected (*virus_r = malloc'd name), -1 error (*err_r). */
int av_clamd_scan(const char *socket_spec, unsigned timeout_s, const unsigned char *data,
    size_t len, char **virus_r, char **err_r);
int av_clamd_stage(const struct hygiene_msg *m, struct hygiene_result *r, char **err_r);

#endif
