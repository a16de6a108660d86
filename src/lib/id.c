#include "lib/id.h"

#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>
#include <sys/time.h>

static const char id_alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

void
id_generate(char out[ID_LEN + 1])
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	static uint64_t last_ms;
	static uint32_t seq;
	struct timeval tv;
	gettimeofday(&tv, NULL);
	uint64_t ms = (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
	uint32_t rnd;
	if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
		rnd = (uint32_t)tv.tv_usec;

	/* Within one millisecond keep ids increasing: the low bits count. */
	pthread_mutex_lock(&lock);
	if (ms <= last_ms) {
		ms = last_ms;
		seq++;
	} else {
		last_ms = ms;
		seq = rnd & 0xfffff;
	}
	uint64_t low = ((uint64_t)(seq & 0xfffff) << 12) | (rnd >> 20);
	pthread_mutex_unlock(&lock);

	/* 48-bit time → 10 chars (50 bits), 32-bit low → 6 chars (30 bits used + 2 spare). */
	uint64_t hi = ms & ((1ULL << 50) - 1);
	for (int i = 9; i >= 0; i--) {
		out[i] = id_alphabet[hi & 31];
		hi >>= 5;
	}
	for (int i = 15; i >= 10; i--) {
		out[i] = id_alphabet[low & 31];
		low >>= 5;
	}
	out[ID_LEN] = '\0';
}

int
id_valid(const char *s)
{
	if (strlen(s) != ID_LEN)
		return 0;
	for (const char *p = s; *p != '\0'; p++)
		if (strchr(id_alphabet, *p) == NULL)
			return 0;
	return 1;
}
