/*
 * api_session.c — browser sessions in memory: a random 32-byte id (the
 * mailark_session cookie) and a random 32-byte CSRF token per session,
 * dropped after 12 h without use or on sign-out.  A restart signs
 * everyone out.  Callers hold the api lock.
 */
#include "http/api_internal.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "lib/mem.h"

static void
api_random_hex(char out[65])
{
	unsigned char raw[32];
	randombytes_buf(raw, sizeof(raw));
	sodium_bin2hex(out, 65, raw, sizeof(raw));
	sodium_memzero(raw, sizeof(raw));
}

static void
api_session_free(struct api_session *s)
{
	principal_clear(&s->who);
	sodium_memzero(s, sizeof(*s));
	free(s);
}

/* Drops expired sessions; when still full, the least recently used one. */
static void
api_sessions_prune(struct api_sessions *s, time_t now)
{
	struct api_session **pp = &s->head, **oldest = NULL;
	while (*pp != NULL) {
		struct api_session *cur = *pp;
		if (now - cur->last_used > API_SESSION_IDLE_SECS) {
			*pp = cur->next;
			api_session_free(cur);
			s->count--;
			continue;
		}
		if (oldest == NULL || cur->last_used < (*oldest)->last_used)
			oldest = pp;
		pp = &cur->next;
	}
	if (s->count >= API_SESSIONS_MAX && oldest != NULL) {
		struct api_session *victim = *oldest;
		*oldest = victim->next;
		api_session_free(victim);
		s->count--;
	}
}

struct api_session *
api_session_create(struct api_sessions *s, const struct principal *who)
{
	time_t now = time(NULL);
	api_sessions_prune(s, now);
	struct api_session *n = xcalloc(1, sizeof(*n));
	api_random_hex(n->id);
	api_random_hex(n->csrf);
	api_principal_copy(&n->who, who);
	n->last_used = now;
	n->next = s->head;
	s->head = n;
	s->count++;
	return n;
}

int
api_token_equal(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	return la == lb && la > 0 && sodium_memcmp(a, b, la) == 0;
}

struct api_session *
api_session_find(struct api_sessions *s, const char *id)
{
	time_t now = time(NULL);
	for (struct api_session **pp = &s->head; *pp != NULL; pp = &(*pp)->next) {
		struct api_session *cur = *pp;
		if (!api_token_equal(cur->id, id))
			continue;
		if (now - cur->last_used > API_SESSION_IDLE_SECS) {
			*pp = cur->next;
			api_session_free(cur);
			s->count--;
			return NULL;
		}
		cur->last_used = now;
		return cur;
	}
	return NULL;
}

void
api_session_remove(struct api_sessions *s, const char *id)
{
	for (struct api_session **pp = &s->head; *pp != NULL; pp = &(*pp)->next) {
		if (api_token_equal((*pp)->id, id)) {
			struct api_session *cur = *pp;
			*pp = cur->next;
			api_session_free(cur);
			s->count--;
			return;
		}
	}
}

void
api_sessions_clear(struct api_sessions *s)
{
	while (s->head != NULL) {
		struct api_session *next = s->head->next;
		api_session_free(s->head);
		s->head = next;
	}
	s->count = 0;
}
