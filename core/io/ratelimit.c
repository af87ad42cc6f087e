/* ratelimit.c: the token bucket behind --bwlimit, on bytes read from the
 * drives, with an injectable clock so its tests need no sleeping. */
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "core/io/io_int.h"

struct vb_ratelimit {
	double rate;        /* bytes per second */
	double burst;       /* the most that idle time can save up */
	double tokens;      /* may go negative: a debt paid by sleeping */
	double last;
	vb_clock_fn clock;
	vb_sleep_fn sleep_fn;
	void *opaque;
};

static double real_clock(void *opaque)
{
	(void)opaque;
	return vb_clock_monotonic();
}

static void real_sleep(void *opaque, double seconds)
{
	struct timespec ts;

	(void)opaque;
	ts.tv_sec = (time_t)seconds;
	ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
	/* EINTR just ends this slice early: the caller loops and checks cancel. */
	nanosleep(&ts, NULL);
}

struct vb_ratelimit *vb_ratelimit_new(uint64_t rate, uint64_t burst, vb_clock_fn clock,
				      vb_sleep_fn sleep_fn, void *opaque)
{
	struct vb_ratelimit *rl;

	if (rate == 0)
		return NULL;
	rl = calloc(1, sizeof(*rl));
	if (!rl)
		return NULL;
	rl->rate = (double)rate;
	rl->burst = (double)burst;
	rl->clock = clock ? clock : real_clock;
	rl->sleep_fn = sleep_fn ? sleep_fn : real_sleep;
	rl->opaque = opaque;
	rl->tokens = 0; /* no initial credit: the first bytes already count */
	rl->last = rl->clock(rl->opaque);
	return rl;
}

int vb_ratelimit_take(struct vb_ratelimit *rl, uint64_t n, const volatile sig_atomic_t *cancel)
{
	double now;

	if (!rl || n == 0)
		return 0;
	now = rl->clock(rl->opaque);
	if (now > rl->last) {
		rl->tokens += (now - rl->last) * rl->rate;
		if (rl->tokens > rl->burst)
			rl->tokens = rl->burst;
	}
	rl->last = now;
	rl->tokens -= (double)n;
	/* A debt under one byte is rounding: waiting it out could take a sleep
	 * too short to move the clock at all. */
	while (rl->tokens < -1.0) {
		double wait = -rl->tokens / rl->rate;

		if (cancel && *cancel)
			return -1;
		rl->sleep_fn(rl->opaque, wait > 0.1 ? 0.1 : wait);
		now = rl->clock(rl->opaque);
		if (now > rl->last)
			rl->tokens += (now - rl->last) * rl->rate;
		rl->last = now;
	}
	return 0;
}

void vb_ratelimit_free(struct vb_ratelimit *rl)
{
	free(rl);
}
