/* Skeleton: replaced by the continuity mailbox implementation. */
#include "continuity/cmbox.h"

#include <stdlib.h>

#include "lib/mem.h"

struct cmbox {
	struct archive *a;
};

int cmbox_open(struct archive *a, const char *data_dir, struct cmbox **m_r, char **err_r)
{
	struct cmbox *m = xcalloc(1, sizeof(*m));
	m->a = a;
	*m_r = m;
	return 0;
}
void cmbox_close(struct cmbox **m) { free(*m); *m = NULL; }
int cmbox_list(struct cmbox *m, const struct cmbox_user *u, struct cmbox_folder **list_r,
    size_t *n_r, char **err_r) { *err_r = xstrdup("not yet"); return -1; }
void cmbox_folders_free(struct cmbox_folder *list, size_t n) { }
int cmbox_snapshot(struct cmbox *m, const struct cmbox_user *u, const char *mailbox,
    struct cmbox_snapshot *s_r, char **err_r) { *err_r = xstrdup("not yet"); return -1; }
void cmbox_snapshot_free(struct cmbox_snapshot *s) { }
int cmbox_read(struct cmbox *m, const struct cmbox_user *u, const char *mailbox, uint32_t uid,
    unsigned char **raw_r, size_t *len_r, char **err_r) { *err_r = xstrdup("not yet"); return -1; }
int cmbox_set_flags(struct cmbox *m, const struct cmbox_user *u, const char *mailbox,
    const uint32_t *uids, size_t n, enum cmbox_flag_op op, unsigned flags, char **err_r)
{ *err_r = xstrdup("not yet"); return -1; }
int cmbox_expunge(struct cmbox *m, const struct cmbox_user *u, const char *mailbox,
    const uint32_t *uids, size_t n, char **err_r) { *err_r = xstrdup("not yet"); return -1; }
int cmbox_append(struct cmbox *m, const struct cmbox_user *u, const char *mailbox,
    const void *raw, size_t len, unsigned flags, time_t internaldate,
    uint32_t *uidvalidity_r, uint32_t *uid_r, char **err_r) { *err_r = xstrdup("not yet"); return -1; }
int cmbox_copy(struct cmbox *m, const struct cmbox_user *u, const char *from,
    const uint32_t *uids, size_t n, const char *to, uint32_t *uidvalidity_r,
    uint32_t *new_uids_r, char **err_r) { *err_r = xstrdup("not yet"); return -1; }
int cmbox_create(struct cmbox *m, const struct cmbox_user *u, const char *name, char **err_r)
{ *err_r = xstrdup("not yet"); return -1; }
int cmbox_delete(struct cmbox *m, const struct cmbox_user *u, const char *name, char **err_r)
{ *err_r = xstrdup("not yet"); return -1; }
int cmbox_rename(struct cmbox *m, const struct cmbox_user *u, const char *from, const char *to,
    char **err_r) { *err_r = xstrdup("not yet"); return -1; }
