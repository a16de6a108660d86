/*
 * audit — the tamper-evident audit trail: every change, every sign-in
 * (good or bad) and every read of message content is one entry.
 *
 *   audit_record(srv, &principal, "tenant.add", "tenant:acme", "ok", NULL);
 *
 * Entries are append-only rows in mailark.db; each carries the SHA-256 of
 * the one before (a hash chain) and periodic checkpoints are signed with
 * an Ed25519 key kept in <data_dir>/keys/audit.key.  No API deletes
 * entries.  audit_verify() re-walks the chain and checks every signature,
 * naming the first bad entry.  audit_record() is synchronous on the loop
 * thread and returns -1 only when the database refuses the write; callers
 * then refuse the operation they were auditing.
 */
#ifndef MAILARK_AUDIT_AUDIT_H
#define MAILARK_AUDIT_AUDIT_H

struct server;
struct principal;

int audit_record(struct server *srv, const struct principal *who, const char *action,
    const char *object, const char *outcome, const char *detail);

#endif
