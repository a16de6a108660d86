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

	/*
	 * Within one millisecond keep ids increasing: an 18-bit counter that
	 * starts at a random value below 2^17 and, should it ever fill up,
	 * borrows the next millisecond.
	 */
	pthread_mutex_lock(&lock);
	if (ms <= last_ms) {
		ms = last_ms;
		if (++seq >= (1u << 18)) {
			ms = ++last_ms;
			seq = 0;
		}
	} else {
		last_ms = ms;
		seq = rnd & 0x1ffff;
	}
	uint64_t low = ((uint64_t)seq << 12) | (rnd >> 20);
	pthread_mutex_unlock(&lock);

	/* Time → 10 chars (50 bits); counter and random → 6 chars (30 bits). */
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
