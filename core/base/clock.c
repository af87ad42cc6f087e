/* clock.c: the wall clock of backups (checkpoint names, archive times,
 * generated archive names), which tests can set (VMABACK_TEST_NOW). */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <stdlib.h>
#include <time.h>

#include "core/base/base.h"

/* VMABACK_TEST_NOW=SECONDS (since the epoch) is for tests only: a series of
 * backups "taken" over months runs in seconds. */
static bool test_now(int64_t *sec)
{
	const char *v = getenv("VMABACK_TEST_NOW");
	char *end;
	long long s;

	if (!v || !*v)
		return false;
	errno = 0;
	s = strtoll(v, &end, 10);
	if (errno || *end != '\0' || s < 0)
		return false;
	*sec = s;
	return true;
}

int64_t vb_clock_now(void)
{
	int64_t s;

	return test_now(&s) ? s : (int64_t)time(NULL);
}

int64_t vb_clock_now_ns(void)
{
	struct timespec ts;
	int64_t s;

	if (test_now(&s))
		return s * 1000000000;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

double vb_clock_monotonic(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* VMABACK_TEST_CRASH=POINT is for tests only: the process kills itself with
 * SIGKILL at the named point, as a crash or `kill -9` would there. */
static const char *crash_at;
static pthread_once_t crash_once = PTHREAD_ONCE_INIT;

static void crash_read(void)
{
	const char *v = getenv("VMABACK_TEST_CRASH");

	crash_at = v && *v ? v : NULL;
}

/* Called per extent and cluster: the environment is read once. */
void vb_crash_point(const char *point)
{
	pthread_once(&crash_once, crash_read);
	if (crash_at && strcmp(crash_at, point) == 0)
		raise(SIGKILL);
}
