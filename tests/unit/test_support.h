/* test_support.h: helpers shared by the unit tests (header-only): a
 * temporary directory fixture, whole-file I/O, test data, running a tool,
 * a clock, silencing stderr. */
#ifndef VMABACK_TEST_SUPPORT_H
#define VMABACK_TEST_SUPPORT_H

/* include after <cmocka.h> */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Each test file uses some of these. */
#define TS_UNUSED __attribute__((unused))

extern char **environ;

/* A fresh directory under /tmp per test, removed with its content after. */
struct tdir {
	char path[64];
};

TS_UNUSED static int tdir_setup(void **state)
{
	struct tdir *t = calloc(1, sizeof(*t));

	assert_non_null(t);
	snprintf(t->path, sizeof(t->path), "/tmp/vb-test.XXXXXX");
	assert_non_null(mkdtemp(t->path));
	*state = t;
	return 0;
}

TS_UNUSED static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(p);
}

TS_UNUSED static int tdir_teardown(void **state)
{
	struct tdir *t = *state;

	nftw(t->path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(t);
	return 0;
}

/* dir/name, to free */
TS_UNUSED static char *tpath(void **state, const char *name)
{
	struct tdir *t = *state;
	char *p = NULL;

	assert_true(asprintf(&p, "%s/%s", t->path, name) > 0);
	return p;
}

TS_UNUSED static void write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
}

TS_UNUSED static unsigned char *read_file(const char *path, size_t *len)
{
	struct stat st;
	unsigned char *buf;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	buf = malloc((size_t)st.st_size + 1);
	assert_non_null(buf);
	assert_int_equal(read(fd, buf, (size_t)st.st_size), st.st_size);
	close(fd);
	*len = (size_t)st.st_size;
	return buf;
}

/* Entries of dir, "." and ".." aside: proves nothing is left behind. */
TS_UNUSED static size_t count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

/* Semi-compressible, deterministic test data: text-like runs, zeros, noise. */
TS_UNUSED static unsigned char *make_data(size_t len, uint64_t seed)
{
	unsigned char *p = malloc(len);
	uint64_t s = seed | 1;

	assert_non_null(p);
	for (size_t i = 0; i < len; i++) {
		s ^= s << 13;
		s ^= s >> 7;
		s ^= s << 17;
		if ((i / 4096) % 3 == 0)
			p[i] = (unsigned char)s;
		else if ((i / 4096) % 3 == 1)
			p[i] = 0;
		else
			p[i] = (unsigned char)("vmaback backup "[s % 15]);
	}
	return p;
}

/* Runs argv with stdin from in and stdout to out; returns the exit status,
 * or -1 if the program could not run. */
TS_UNUSED static int run_tool(char *const argv[], const char *in, const char *out)
{
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int st, rc;

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, in, O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rc != 0)
		return -1;
	while (waitpid(pid, &st, 0) < 0)
		assert_int_equal(errno, EINTR);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Monotonic seconds. */
TS_UNUSED static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Sends stderr to /dev/null, where a child's expected complaints ("sh: 1:
 * x: not found") stay out of the test output; returns the saved stderr for
 * unquiet(). No assertion in between: cmocka reports failures on stderr. */
TS_UNUSED static int quiet(void)
{
	int saved = dup(STDERR_FILENO), null = open("/dev/null", O_WRONLY | O_CLOEXEC);

	assert_true(saved >= 0 && null >= 0);
	assert_int_equal(dup2(null, STDERR_FILENO), STDERR_FILENO);
	close(null);
	return saved;
}

TS_UNUSED static void unquiet(int saved)
{
	assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
	close(saved);
}

/* Appends n bytes to the malloc'd *buf of *len bytes. */
TS_UNUSED static void append(unsigned char **buf, size_t *len, const void *more, size_t n)
{
	unsigned char *nb = realloc(*buf, *len + n);

	assert_non_null(nb);
	memcpy(nb + *len, more, n);
	*buf = nb;
	*len += n;
}

#ifdef VMABACK_BASE_H
/* A kind by its name ("full", ..., "proxmox", "?"): test data reads so. */
TS_UNUSED static enum vb_kind ts_kind(const char *s)
{
	for (int k = VB_KIND_UNKNOWN; k <= VB_KIND_PROXMOX; k++)
		if (strcmp(s, vb_kind_name((enum vb_kind)k)) == 0)
			return (enum vb_kind)k;
	fail_msg("no kind %s", s);
	return VB_KIND_UNKNOWN;
}

/* The messages of the warnings queued in w (no callback yet), one line
 * each, into buf ("" when none): what a test of a warning checks. */
TS_UNUSED static const char *ts_warnings_text(const struct vb_warnings *w, char *buf,
					      size_t len)
{
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < w->n && used < len; i++)
		used += (size_t)snprintf(buf + used, len - used, "%s\n", w->q[i].msg);
	return buf;
}
#endif

#endif
