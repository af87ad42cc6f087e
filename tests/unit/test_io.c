/* test_core.c: unit tests of core/: errors, sinks (file, fd, command), zstd
 * and hash writers, rate limit, input stack; main() runs every group. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <openssl/evp.h>
#include <zlib.h>
#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_getFrameHeader */
#include <zstd.h>

#include "core/io/io_int.h"

#include "tests/unit/test_support.h"

/* Reads all of path through the input stack; returns -1 and err on error. */
static ssize_t read_all(const char *path, unsigned char **out, enum vb_compression *comp,
			uint64_t *raw, struct vb_error *err)
{
	struct vb_reader *r = vb_input_open(path, err);
	size_t cap = 1 << 20, len = 0;
	unsigned char *buf = NULL;
	ssize_t n = -1;

	if (r == NULL)
		return -1;
	if (comp != NULL)
		*comp = vb_reader_compression(r);
	for (;;) {
		unsigned char *nb = realloc(buf, len + cap);

		assert_non_null(nb);
		buf = nb;
		n = vb_reader_read(r, buf + len, cap, err);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	if (raw != NULL)
		*raw = vb_reader_raw_bytes(r);
	vb_reader_free(r);
	if (n < 0) {
		free(buf);
		return -1;
	}
	*out = buf;
	return (ssize_t)len;
}

static void expect_invalid(const char *path)
{
	struct vb_error err = { 0 };
	unsigned char *buf = NULL;

	assert_int_equal(read_all(path, &buf, NULL, NULL, &err), -1);
	assert_null(buf);
	assert_int_equal(err.cls, VB_E_INVALID);
}

/* ============================================================ group: error */

static void test_error_first_wins(void **state)
{
	struct vb_error err = { 0 };

	errno = EAGAIN;
	assert_int_equal(vb_error_set(&err, VB_E_USAGE, ENOENT, "first %d", 1), -1);
	assert_int_equal(errno, EAGAIN);
	assert_int_equal(vb_error_set(&err, VB_E_FAIL, EIO, "second"), -1);
	assert_int_equal(err.cls, VB_E_USAGE);
	assert_int_equal(err.sys_errno, ENOENT);
	assert_string_equal(err.msg, "first 1");
	vb_error_clear(&err);
	assert_int_equal(err.cls, VB_OK);
	assert_int_equal(vb_error_set(&err, VB_E_INVALID, 0, "%s", "third"), -1);
	assert_string_equal(err.msg, "third");
	assert_int_equal(vb_error_set(NULL, VB_E_FAIL, 0, "nowhere"), -1);
	vb_error_clear(NULL);
}

static void test_error_long_message(void **state)
{
	struct vb_error err = { 0 };
	char big[4000];

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	vb_error_set(&err, VB_E_FAIL, 0, "%s", big);
	assert_int_equal(strlen(err.msg), sizeof(err.msg) - 1);
}

static int group_error(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_error_first_wins),
		cmocka_unit_test(test_error_long_message),
	};
	return cmocka_run_group_tests_name("error", tests, NULL, NULL);
}

/* ============================================================ group: tempfile */

static void test_tempfile_publish(void **state)
{
	char *path = tpath(state, "a.vma");
	struct vb_error err = { 0 };
	struct vb_tempfile *t = vb_tempfile_new(path, &err);
	const char *slash;
	struct stat st;

	assert_non_null(t);
	slash = strrchr(vb_tempfile_path(t), '/');
	assert_true(vb_tempfile_is_ours(slash + 1));
	assert_int_equal(stat(vb_tempfile_path(t), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(write(vb_tempfile_fd(t), "abc", 3), 3);
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(vb_tempfile_publish(t, false, &err), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 3);
	assert_int_equal(count_entries(((struct tdir *)*state)->path), 1);
	free(path);
}

static void test_tempfile_noreplace(void **state)
{
	char *path = tpath(state, "a.vma");
	struct vb_error err = { 0 };
	struct vb_tempfile *t = vb_tempfile_new(path, &err);
	size_t len;
	unsigned char *d;

	assert_non_null(t);
	write_file(path, "old", 3); /* appeared while the temporary was written */
	assert_int_equal(write(vb_tempfile_fd(t), "new", 3), 3);
	assert_int_equal(vb_tempfile_publish(t, false, &err), -1);
	assert_int_equal(err.sys_errno, EEXIST);
	d = read_file(path, &len);
	assert_memory_equal(d, "old", 3);
	free(d);
	assert_int_equal(count_entries(((struct tdir *)*state)->path), 1);
	vb_error_clear(&err);
	t = vb_tempfile_new(path, &err);
	assert_non_null(t);
	assert_int_equal(write(vb_tempfile_fd(t), "new", 3), 3);
	assert_int_equal(vb_tempfile_publish(t, true, &err), 0);
	d = read_file(path, &len);
	assert_memory_equal(d, "new", 3);
	free(d);
	free(path);
}

/* What a fatal signal's handler does: every registered temporary goes,
 * published files stay; a child (another process) removes nothing. */
static void test_tempfile_remove_all(void **state)
{
	char *a = tpath(state, "a"), *b = tpath(state, "b"), *c = tpath(state, "c");
	struct vb_error err = { 0 };
	struct vb_tempfile *ta = vb_tempfile_new(a, &err), *tb = vb_tempfile_new(b, &err);
	struct vb_tempfile *tc = vb_tempfile_new(c, &err);
	char pa[256];
	int status;
	pid_t pid;

	assert_non_null(ta);
	assert_non_null(tb);
	assert_non_null(tc);
	assert_int_equal(vb_tempfile_publish(tc, false, &err), 0);
	snprintf(pa, sizeof(pa), "%s", vb_tempfile_path(ta));
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		vb_tempfile_remove_all();
		/* the parent's strings: valgrind checks the child's heap too */
		free(a);
		free(b);
		free(c);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(count_entries(((struct tdir *)*state)->path), 3);
	vb_tempfile_remove_all();
	assert_int_equal(count_entries(((struct tdir *)*state)->path), 1);
	assert_int_equal(access(c, F_OK), 0);
	vb_tempfile_discard(ta);
	vb_tempfile_discard(tb);
	/* A node is reused only once it was given back. */
	ta = vb_tempfile_new(a, &err);
	assert_non_null(ta);
	vb_tempfile_discard(ta);
	assert_int_equal(access(pa, F_OK), -1);
	free(a);
	free(b);
	free(c);
}

static void test_tempfile_long_name(void **state)
{
	char name[256], *path;
	struct vb_error err = { 0 };
	struct vb_tempfile *t;

	memset(name, 'n', 255);
	name[255] = '\0';
	path = tpath(state, name);
	t = vb_tempfile_new(path, &err);
	assert_non_null(t);
	assert_int_equal(vb_tempfile_publish(t, false, &err), 0);
	assert_int_equal(access(path, F_OK), 0);
	free(path);
}

static void test_tempfile_names(void **state)
{
	assert_true(vb_tempfile_is_ours(".a.vma" VB_TEMPFILE_MARK "Ab3xYz"));
	assert_false(vb_tempfile_is_ours("a.vma" VB_TEMPFILE_MARK "Ab3xYz"));
	assert_false(vb_tempfile_is_ours(".a.vma.Ab3xYz"));
	assert_false(vb_tempfile_is_ours(".a.vma" VB_TEMPFILE_MARK "Ab3xY"));
	assert_false(vb_tempfile_is_ours(".a.vma" VB_TEMPFILE_MARK "Ab3x-z"));
	assert_false(vb_tempfile_is_ours("state.json"));
}

static void test_tempfile_bad_dir(void **state)
{
	char *path = tpath(state, "no/such/a.vma");
	struct vb_error err = { 0 };

	assert_null(vb_tempfile_new(path, &err));
	assert_int_equal(err.cls, VB_E_USAGE);
	vb_error_clear(&err);
	assert_null(vb_tempfile_new("", &err));
	vb_error_clear(&err);
	free(path);
	path = tpath(state, "");
	assert_null(vb_tempfile_new(path, &err));
	free(path);
}

/* ---- faults through the linker's --wrap (TEST_LDFLAGS_io in the Makefile) */

int __real_flock(int fd, int op);
int __real_rename(const char *from, const char *to);
int __real_renameat2(int ofd, const char *from, int nfd, const char *to, unsigned flags);
int __real_fsync(int fd);

static int flock_busy;          /* that many flock calls fail with EWOULDBLOCK */
static bool rename_probe;       /* at a rename: is its source still locked? */
static int rename_probe_result; /* 1 locked, 0 free, -1 not probed */
static bool fsync_dir_fails;    /* fsync of a directory: EIO */

int __wrap_flock(int fd, int op)
{
	if (flock_busy > 0 && (op & LOCK_NB)) {
		flock_busy--;
		errno = EWOULDBLOCK;
		return -1;
	}
	return __real_flock(fd, op);
}

/* What a sweep in another run sees at the instant of the rename. */
static void probe_lock(const char *from)
{
	int fd;

	if (!rename_probe)
		return;
	fd = open(from, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	rename_probe_result = __real_flock(fd, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK;
	close(fd);
}

int __wrap_rename(const char *from, const char *to)
{
	probe_lock(from);
	return __real_rename(from, to);
}

int __wrap_renameat2(int ofd, const char *from, int nfd, const char *to, unsigned flags)
{
	probe_lock(from);
	return __real_renameat2(ofd, from, nfd, to, flags);
}

int __wrap_fsync(int fd)
{
	struct stat st;

	if (fsync_dir_fails && fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
		errno = EIO;
		return -1;
	}
	return __real_fsync(fd);
}

/* Whether another open file (a sweep's) can take the lock of path. */
static bool lock_free(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	bool free_ = false;

	assert_true(fd >= 0);
	free_ = __real_flock(fd, LOCK_EX | LOCK_NB) == 0;
	close(fd);
	return free_;
}

/* The writer holds its temporary's lock from creation to the rename: no
 * instant at which a sweep could take a live temporary for an orphan. */
static void test_tempfile_locked_to_rename(void **state)
{
	char *path = tpath(state, "a.vma");
	struct vb_error err = { 0 };
	struct vb_tempfile *t;

	for (int replace = 0; replace < 2; replace++) {
		t = vb_tempfile_new(path, &err);
		assert_non_null(t);
		assert_false(lock_free(vb_tempfile_path(t)));
		rename_probe = true;
		rename_probe_result = -1;
		assert_int_equal(vb_tempfile_publish(t, replace, &err), 0);
		rename_probe = false;
		assert_int_equal(rename_probe_result, 1);
		assert_true(lock_free(path)); /* published: the lock is gone with the file */
	}
	free(path);
}

/* A sweep that took the lock of a name just created (before its writer
 * could): the writer takes another name instead of failing. */
static void test_tempfile_lock_race(void **state)
{
	char *path = tpath(state, "a.vma");
	struct vb_error err = { 0 };
	struct vb_tempfile *t;

	flock_busy = 1;
	t = vb_tempfile_new(path, &err);
	flock_busy = 0;
	assert_non_null(t);
	assert_false(lock_free(vb_tempfile_path(t)));
	vb_tempfile_discard(t);
	free(path);
}

/* A directory that cannot be made durable after the rename: published
 * (1), under the final name, err says so; through a file sink too. */
static void test_tempfile_dir_fsync_fails(void **state)
{
	char *path = tpath(state, "a.vma"), *path2 = tpath(state, "b.vma");
	struct vb_error err = { 0 };
	struct vb_tempfile *t = vb_tempfile_new(path, &err);
	struct vb_writer *w;

	assert_non_null(t);
	fsync_dir_fails = true;
	assert_int_equal(vb_tempfile_publish(t, false, &err), 1);
	assert_int_equal(access(path, F_OK), 0);
	assert_non_null(strstr(err.msg, "was written, but the fsync of directory"));
	assert_int_equal(err.sys_errno, EIO);
	vb_error_clear(&err);
	w = vb_sink_file_new(path2, false, &err);
	assert_non_null(w);
	assert_int_equal(vb_writer_write(w, "abc", 3, &err), 0);
	assert_int_equal(vb_writer_close(w, &err), 1);
	fsync_dir_fails = false;
	assert_int_equal(access(path2, F_OK), 0);
	assert_int_equal(count_entries(((struct tdir *)*state)->path), 2);
	free(path);
	free(path2);
}

static char *mk(void **state, const char *name, size_t bytes)
{
	char *p = tpath(state, name), *buf = calloc(1, bytes + 1);

	assert_non_null(buf);
	write_file(p, buf, bytes);
	free(buf);
	return p;
}

/* Orphans (no lock) go with a line each; a live writer's temporary (of
 * this process, or locked by another one), names of another form, links,
 * FIFOs and directories stay; a dry run removes nothing. */
static void test_tempfile_sweep(void **state)
{
	const char *dir = ((struct tdir *)*state)->path;
	char *orphan = mk(state, ".x.vma" VB_TEMPFILE_MARK "Ab3xYz", 1000);
	char *other = mk(state, ".x.vma.Ab3xYz", 10), *plain = mk(state, "x.vma", 10);
	char *locked = mk(state, ".y.vma" VB_TEMPFILE_MARK "Zz9yyy", 10);
	char *link = tpath(state, ".l.vma" VB_TEMPFILE_MARK "Ab3xYz");
	char *fifo = tpath(state, ".f.vma" VB_TEMPFILE_MARK "Ab3xYz");
	char *sub = tpath(state, ".d.vma" VB_TEMPFILE_MARK "Ab3xYz");
	char *live_final = tpath(state, "live.vma"), *notes;
	struct vb_warnings w = { 0 };
	char text[2048];
	struct vb_error err = { 0 };
	struct vb_tempfile *live = vb_tempfile_new(live_final, &err);
	int pfd[2], gofd[2], status;
	pid_t pid;
	char c;

	assert_non_null(live);
	assert_int_equal(symlink(plain, link), 0);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	assert_int_equal(mkdir(sub, 0700), 0);
	assert_int_equal(pipe(pfd), 0);
	assert_int_equal(pipe(gofd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) { /* another live writer */
		int fd = open(locked, O_RDONLY);

		/* the parent's strings: valgrind checks the child's heap too */
		free(orphan);
		free(other);
		free(plain);
		free(locked);
		free(link);
		free(fifo);
		free(sub);
		free(live_final);
		if (fd < 0 || __real_flock(fd, LOCK_EX) < 0 || write(pfd[1], "x", 1) != 1)
			_exit(1);
		(void)!read(gofd[0], &c, 1);
		_exit(0);
	}
	assert_int_equal(read(pfd[0], &c, 1), 1);

	assert_int_equal(vb_tempfile_sweep(dir, true, &w, &err), 1);
	notes = (char *)ts_warnings_text(&w, text, sizeof(text));
	assert_non_null(strstr(notes, "would remove the temporary"));
	assert_int_equal(w.q[0].kind, VB_WARN_LEFTOVER);
	assert_int_equal(access(orphan, F_OK), 0);
	vb_warnings_free(&w);
	assert_int_equal(vb_tempfile_sweep(dir, false, &w, &err), 1);
	notes = (char *)ts_warnings_text(&w, text, sizeof(text));
	assert_int_equal(w.n, 1);
	assert_non_null(strstr(notes, "removed the temporary "));
	assert_non_null(strstr(notes, ".x.vma" VB_TEMPFILE_MARK "Ab3xYz left by a run that "
			       "did not finish (1000 bytes)"));
	assert_true(!strchr(notes, '\n') || strchr(notes, '\n')[1] == '\0'); /* one line */
	assert_int_equal(access(orphan, F_OK), -1);
	assert_int_equal(access(locked, F_OK), 0);
	assert_int_equal(access(vb_tempfile_path(live), F_OK), 0);
	assert_int_equal(access(other, F_OK), 0);
	assert_int_equal(access(plain, F_OK), 0);
	assert_int_equal(access(fifo, F_OK), 0);
	assert_int_equal(access(sub, F_OK), 0);
	assert_int_equal(faccessat(AT_FDCWD, link, F_OK, AT_SYMLINK_NOFOLLOW), 0);
	/* its writer gone, the second one goes too */
	assert_int_equal(write(gofd[1], "x", 1), 1);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(status, 0);
	vb_warnings_free(&w);
	assert_int_equal(vb_tempfile_sweep(dir, false, &w, &err), 1);
	assert_int_equal(access(locked, F_OK), -1);
	assert_int_equal(access(vb_tempfile_path(live), F_OK), 0);
	assert_int_equal(vb_tempfile_publish(live, false, &err), 0);
	assert_int_equal(vb_tempfile_sweep("/nonexistent/dir", false, &w, &err), -1);
	close(pfd[0]);
	close(pfd[1]);
	close(gofd[0]);
	close(gofd[1]);
	vb_warnings_free(&w);
	free(orphan);
	free(other);
	free(plain);
	free(locked);
	free(link);
	free(fifo);
	free(sub);
	free(live_final);
}

static int group_tempfile(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_tempfile_publish, tdir_setup, tdir_teardown),
		cmocka_unit_test_setup_teardown(test_tempfile_noreplace, tdir_setup, tdir_teardown),
		cmocka_unit_test_setup_teardown(test_tempfile_remove_all, tdir_setup, tdir_teardown),
		cmocka_unit_test_setup_teardown(test_tempfile_long_name, tdir_setup, tdir_teardown),
		cmocka_unit_test(test_tempfile_names),
		cmocka_unit_test_setup_teardown(test_tempfile_bad_dir, tdir_setup, tdir_teardown),
		cmocka_unit_test_setup_teardown(test_tempfile_locked_to_rename, tdir_setup,
						tdir_teardown),
		cmocka_unit_test_setup_teardown(test_tempfile_lock_race, tdir_setup, tdir_teardown),
		cmocka_unit_test_setup_teardown(test_tempfile_dir_fsync_fails, tdir_setup,
						tdir_teardown),
		cmocka_unit_test_setup_teardown(test_tempfile_sweep, tdir_setup, tdir_teardown),
	};
	return cmocka_run_group_tests_name("tempfile", tests, NULL, NULL);
}

/* ============================================================ group: file sink */

static void check_sink_mode(void **state, mode_t mask)
{
	char *path = tpath(state, "out.vma");
	struct vb_error err = { 0 };
	mode_t old = umask(mask);
	struct vb_writer *w = vb_sink_file_new(path, false, &err);
	struct stat st;

	umask(old);
	assert_non_null(w);
	assert_int_equal(stat(vb_sink_file_temp_path(w), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(vb_writer_write(w, "VMA", 3, &err), 0);
	assert_int_equal(vb_writer_close(w, &err), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(unlink(path), 0);
	free(path);
}

static void test_file_sink_mode(void **state)
{
	check_sink_mode(state, 0);
	check_sink_mode(state, 022);
	check_sink_mode(state, 0777);
}

static void test_file_sink_temp_discard(void **state)
{
	struct tdir *t = *state;
	char *path = tpath(state, "out.vma"), *prefix = tpath(state, ".out.vma" VB_TEMPFILE_MARK);
	struct vb_error err = { 0 };
	struct vb_writer *w = vb_sink_file_new(path, false, &err);
	const char *tmp;
	char *tmp_copy;

	assert_non_null(w);
	tmp = vb_sink_file_temp_path(w);
	assert_non_null(tmp);
	assert_int_equal(strncmp(tmp, prefix, strlen(prefix)), 0);
	assert_int_equal(strlen(tmp), strlen(prefix) + 6);
	tmp_copy = strdup(tmp);
	assert_int_equal(access(tmp_copy, F_OK), 0);
	assert_int_equal(vb_writer_write(w, "data", 4, &err), 0);
	assert_int_equal(w->bytes_in, 4);
	vb_writer_discard(w);
	assert_int_equal(access(tmp_copy, F_OK), -1);
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(rmdir(t->path), 0); /* empty: nothing left behind */
	assert_int_equal(mkdir(t->path, 0700), 0);
	vb_writer_discard(NULL);
	assert_null(vb_sink_file_temp_path(NULL));
	free(tmp_copy);
	free(prefix);
	free(path);
}

static void test_file_sink_publish(void **state)
{
	char *path = tpath(state, "out.vma");
	struct vb_error err = { 0 };
	unsigned char *data = make_data(3 << 20, 1), *back;
	struct vb_writer *w = vb_sink_file_new(path, false, &err);
	char *tmp;
	size_t len;

	assert_non_null(w);
	tmp = strdup(vb_sink_file_temp_path(w));
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(vb_writer_write(w, data, 1000, &err), 0);
	assert_int_equal(vb_writer_write(w, data + 1000, (3 << 20) - 1000, &err), 0);
	assert_int_equal(vb_writer_write(w, data, 0, &err), 0);
	assert_int_equal(w->bytes_in, 3 << 20);
	assert_int_equal(vb_writer_close(w, &err), 0);
	assert_int_equal(err.cls, VB_OK);
	back = read_file(path, &len);
	assert_int_equal(len, 3 << 20);
	assert_memory_equal(back, data, len);
	assert_int_equal(access(tmp, F_OK), -1);
	assert_int_equal(count_entries(((struct tdir *)*state)->path), 1);
	free(back);
	free(data);
	free(tmp);
	free(path);
}

static void test_file_sink_refuses_existing(void **state)
{
	char *path = tpath(state, "out.vma");
	char *msg = NULL;
	struct vb_error err = { 0 };
	unsigned char *back;
	size_t len;

	write_file(path, "old", 3);
	assert_null(vb_sink_file_new(path, false, &err));
	assert_int_equal(err.cls, VB_E_USAGE);
	assert_true(asprintf(&msg, "%s: file exists (use --force to replace it)", path) > 0);
	assert_string_equal(err.msg, msg);
	back = read_file(path, &len);
	assert_int_equal(len, 3);
	assert_memory_equal(back, "old", 3);
	assert_int_equal(count_entries(((struct tdir *)*state)->path), 1);
	free(back);
	free(msg);
	free(path);
}

/* The target appears while the backup runs: close must not replace it. */
static void test_file_sink_exists_at_close(void **state)
{
	char *path = tpath(state, "out.vma");
	struct vb_error err = { 0 };
	struct vb_writer *w = vb_sink_file_new(path, false, &err);
	char *tmp;
	unsigned char *back;
	size_t len;

	assert_non_null(w);
	tmp = strdup(vb_sink_file_temp_path(w));
	write_file(path, "old", 3);
	assert_int_equal(vb_writer_write(w, "new data", 8, &err), 0);
	assert_int_equal(vb_writer_close(w, &err), -1);
	assert_int_equal(err.cls, VB_E_USAGE);
	assert_non_null(strstr(err.msg, "file exists (use --force to replace it)"));
	back = read_file(path, &len);
	assert_int_equal(len, 3);
	assert_memory_equal(back, "old", 3);
	assert_int_equal(access(tmp, F_OK), -1);
	free(back);
	free(tmp);
	free(path);
}

static void test_file_sink_force(void **state)
{
	char *path = tpath(state, "out.vma");
	struct vb_error err = { 0 };
	struct vb_writer *w;
	unsigned char *back;
	size_t len;

	write_file(path, "old", 3);
	w = vb_sink_file_new(path, true, &err);
	assert_non_null(w);
	assert_int_equal(vb_writer_write(w, "new data", 8, &err), 0);
	assert_int_equal(vb_writer_close(w, &err), 0);
	back = read_file(path, &len);
	assert_int_equal(len, 8);
	assert_memory_equal(back, "new data", 8);
	assert_int_equal(count_entries(((struct tdir *)*state)->path), 1);
	free(back);
	free(path);
}

static void test_file_sink_bad_paths(void **state)
{
	char *missing = tpath(state, "nodir/out.vma");
	struct tdir *t = *state;
	struct vb_error err = { 0 };

	assert_null(vb_sink_file_new(missing, false, &err));
	assert_int_equal(err.cls, VB_E_USAGE);
	assert_int_equal(err.sys_errno, ENOENT);
	assert_non_null(strstr(err.msg, missing));
	assert_non_null(strstr(err.msg, strerror(ENOENT)));
	vb_error_clear(&err);
	assert_null(vb_sink_file_new(t->path, true, &err)); /* a directory */
	assert_int_equal(err.cls, VB_E_USAGE);
	vb_error_clear(&err);
	assert_null(vb_sink_file_new("", false, &err));
	assert_int_equal(err.cls, VB_E_USAGE);
	free(missing);
}

/* A failed write (EFBIG from a file size limit, as ENOSPC needs a full
 * file system) names the file, and close then publishes nothing. */
static void test_file_sink_write_error(void **state)
{
	char *path = tpath(state, "out.vma"), *tmp, msg[600];
	struct vb_error err = { 0 };
	struct rlimit old, lim;
	unsigned char *data = make_data(2 << 20, 5);
	struct vb_writer *w = vb_sink_file_new(path, false, &err);
	int rc;

	assert_non_null(w);
	tmp = strdup(vb_sink_file_temp_path(w));
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = 1 << 20;
	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	rc = vb_writer_write(w, data, 2 << 20, &err);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, SIG_DFL);
	assert_int_equal(rc, -1);
	assert_int_equal(err.sys_errno, EFBIG);
	snprintf(msg, sizeof(msg), "%s: write failed: %s", path, strerror(EFBIG));
	assert_string_equal(err.msg, msg);
	vb_error_clear(&err);
	assert_int_equal(vb_writer_close(w, &err), -1);
	assert_int_equal(err.cls, VB_E_FAIL);
	assert_int_equal(access(tmp, F_OK), -1);
	assert_int_equal(access(path, F_OK), -1);
	free(data);
	free(tmp);
	free(path);
}

/* A name without a directory is created in the current one. */
static void test_file_sink_relative(void **state)
{
	struct tdir *t = *state;
	struct vb_error err = { 0 };
	int cwd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct vb_writer *w;
	char *path = tpath(state, "a");

	assert_true(cwd >= 0);
	assert_int_equal(chdir(t->path), 0);
	w = vb_sink_file_new("a", false, &err);
	assert_non_null(w);
	assert_int_equal(strncmp(vb_sink_file_temp_path(w), ".a.", 3), 0);
	assert_int_equal(vb_writer_close(w, &err), 0);
	assert_int_equal(fchdir(cwd), 0);
	close(cwd);
	assert_int_equal(access(path, F_OK), 0);
	free(path);
}

static int group_file_sink(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_file_sink_mode, tdir_setup, tdir_teardown),
		cmocka_unit_test_setup_teardown(test_file_sink_temp_discard, tdir_setup,
						tdir_teardown),
		cmocka_unit_test_setup_teardown(test_file_sink_publish, tdir_setup, tdir_teardown),
		cmocka_unit_test_setup_teardown(test_file_sink_refuses_existing, tdir_setup,
						tdir_teardown),
		cmocka_unit_test_setup_teardown(test_file_sink_exists_at_close, tdir_setup,
						tdir_teardown),
		cmocka_unit_test_setup_teardown(test_file_sink_force, tdir_setup, tdir_teardown),
		cmocka_unit_test_setup_teardown(test_file_sink_bad_paths, tdir_setup,
						tdir_teardown),
		cmocka_unit_test_setup_teardown(test_file_sink_write_error, tdir_setup,
						tdir_teardown),
		cmocka_unit_test_setup_teardown(test_file_sink_relative, tdir_setup,
						tdir_teardown),
	};
	return cmocka_run_group_tests_name("file sink", tests, NULL, NULL);
}

/* ============================================================ group: fd sink */

static void test_fd_sink_epipe(void **state)
{
	struct vb_error err = { 0 };
	struct vb_writer *w;
	int p[2];

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	close(p[0]);
	w = vb_sink_fd_new(p[1], "standard output", &err);
	assert_non_null(w);
	assert_int_equal(vb_writer_write(w, "x", 1, &err), -1);
	assert_int_equal(err.cls, VB_E_FAIL);
	assert_int_equal(err.sys_errno, EPIPE);
	assert_string_equal(err.msg, "standard output: the reader closed the pipe (EPIPE)");
	vb_writer_discard(w);
	assert_int_equal(close(p[1]), 0); /* still ours */
}

static void test_fd_sink_enospc(void **state)
{
	struct vb_error err = { 0 };
	int fd = open("/dev/full", O_WRONLY | O_CLOEXEC);
	struct vb_writer *w;
	char msg[256];

	if (fd < 0)
		skip();
	w = vb_sink_fd_new(fd, "standard output", &err);
	assert_non_null(w);
	assert_int_equal(vb_writer_write(w, "x", 1, &err), -1);
	assert_int_equal(err.sys_errno, ENOSPC);
	snprintf(msg, sizeof(msg), "standard output: write failed: %s", strerror(ENOSPC));
	assert_string_equal(err.msg, msg);
	vb_writer_discard(w);
	close(fd);
}

/* The pipe's reader of test_fd_sink_pipe_and_file: reads "hello" (a
 * thread, not a child: a forked child would be leak-checked by valgrind). */
struct pipe_reader {
	int fd;
	bool ok;
};

static void *read_hello(void *arg)
{
	struct pipe_reader *r = arg;
	char buf[5];

	r->ok = read(r->fd, buf, 5) == 5 && memcmp(buf, "hello", 5) == 0;
	return NULL;
}

static void test_fd_sink_pipe_and_file(void **state)
{
	char *path = tpath(state, "a");
	struct vb_error err = { 0 };
	struct vb_writer *w;
	char buf[16];
	int p[2], fd;
	struct pipe_reader r = { 0 };
	pthread_t th;

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	w = vb_sink_fd_new(p[1], NULL, &err);
	assert_non_null(w);
	assert_int_equal(vb_writer_write(w, "hello", 5, &err), 0);
	/* close waits until the pipe's reader has read every byte */
	r.fd = p[0];
	assert_int_equal(pthread_create(&th, NULL, read_hello, &r), 0);
	assert_int_equal(vb_writer_close(w, &err), 0); /* no fsync error on a pipe */
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_true(r.ok);
	assert_int_equal(write(p[1], "!", 1), 1); /* not closed */
	assert_int_equal(read(p[0], buf, sizeof(buf)), 1);
	assert_memory_equal(buf, "!", 1);
	close(p[0]);
	close(p[1]);

	/* a reader that goes away early: the bytes it never read are named */
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	w = vb_sink_fd_new(p[1], "the pipe", &err);
	assert_non_null(w);
	assert_int_equal(vb_writer_write(w, "hello", 5, &err), 0);
	close(p[0]);
	assert_int_equal(vb_writer_close(w, &err), -1);
	assert_int_equal(err.cls, VB_E_FAIL);
	assert_non_null(strstr(err.msg, "5 of its 5 bytes were never read"));
	close(p[1]);
	err = (struct vb_error){ 0 };

	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	w = vb_sink_fd_new(fd, "standard output", &err);
	assert_int_equal(vb_writer_write(w, "hello", 5, &err), 0);
	assert_int_equal(vb_writer_close(w, &err), 0);
	assert_int_equal(close(fd), 0);
	assert_null(vb_sink_fd_new(-1, "standard output", &err));
	assert_int_equal(err.cls, VB_E_FAIL);
	free(path);
}

/* The one write loop: vb_write_all stops at the cancel flag (a pipe may
 * stall for good), vb_write_whole does not (a local file's change, once
 * begun, completes); both write everything otherwise, and report errors
 * as -errno. */
static void test_write_loops(void **state)
{
	static volatile sig_atomic_t flag;
	char *path = tpath(state, "f"), buf[16];
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600), full;

	assert_true(fd >= 0);
	vb_set_cancel(&flag);
	flag = 1;
	assert_int_equal(vb_write_all(fd, "abc", 3), -ECANCELED);
	assert_int_equal(vb_write_whole(fd, "abc", 3), 0);
	flag = 0;
	assert_int_equal(vb_write_all(fd, "def", 3), 0);
	assert_int_equal(pread(fd, buf, sizeof(buf), 0), 6);
	assert_memory_equal(buf, "abcdef", 6);
	vb_set_cancel(NULL);
	close(fd);
	full = open("/dev/full", O_WRONLY | O_CLOEXEC);
	if (full >= 0) {
		assert_int_equal(vb_write_whole(full, "x", 1), -ENOSPC);
		close(full);
	}
	free(path);
}

static int group_fd_sink(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fd_sink_epipe),
		cmocka_unit_test(test_fd_sink_enospc),
		cmocka_unit_test_setup_teardown(test_fd_sink_pipe_and_file, tdir_setup,
						tdir_teardown),
		cmocka_unit_test_setup_teardown(test_write_loops, tdir_setup, tdir_teardown),
	};
	return cmocka_run_group_tests_name("fd sink", tests, NULL, NULL);
}

/* ============================================================ group: command sink */

static void test_cmd_sink_cat(void **state)
{
	char *out = tpath(state, "out"), *cmd = NULL;
	size_t size = (5 << 20) + 123, off = 0, step = 1000, len;
	unsigned char *data = make_data(size, 11), *back;
	struct vb_error err = { 0 };
	struct vb_writer *w;

	assert_true(asprintf(&cmd, "cat > '%s'", out) > 0); /* mkdtemp: no quote */
	w = vb_sink_cmd_new(cmd, &err);
	assert_non_null(w);
	while (off < size) {
		size_t n = size - off < step ? size - off : step;

		assert_int_equal(vb_writer_write(w, data + off, n, &err), 0);
		off += n;
		step = step * 3 + 1;
	}
	assert_int_equal(w->bytes_in, size);
	assert_int_equal(vb_writer_close(w, &err), 0);
	assert_int_equal(err.cls, VB_OK);
	back = read_file(out, &len);
	assert_int_equal(len, size);
	assert_memory_equal(back, data, size);
	free(back);
	free(data);
	free(cmd);
	free(out);
}

/* Own process group, default signal dispositions (the test ignores
 * SIGPIPE, as cli/ does: exec keeps ignored signals ignored), and no
 * descriptor of the pipe but its stdin. */
static void test_cmd_sink_child_env(void **state)
{
	char *out = tpath(state, "env"), *cmd = NULL, *text, *sig;
	unsigned long long ign;
	struct vb_error err = { 0 };
	struct vb_writer *w;
	unsigned char *back;
	long pid = 0, pgrp = -1;
	size_t len;

	assert_true(asprintf(&cmd, "exec > '%s'; echo $$ $(cut -d' ' -f5 /proc/$$/stat); "
			     "grep SigIgn /proc/$$/status; t=$(readlink /proc/$$/fd/0); n=0; "
			     "for f in /proc/$$/fd/*; do [ \"$(readlink $f)\" = \"$t\" ] && "
			     "n=$((n+1)); done; echo pipes $n; cat", out) > 0);
	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	w = vb_sink_cmd_new(cmd, &err);
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	assert_non_null(w);
	assert_int_equal(vb_writer_write(w, "end\n", 4, &err), 0);
	assert_int_equal(vb_writer_close(w, &err), 0);
	back = read_file(out, &len);
	back[len] = '\0';
	text = (char *)back;
	assert_int_equal(sscanf(text, "%ld %ld", &pid, &pgrp), 2);
	assert_true(pid > 1);
	assert_int_equal(pid, pgrp);
	/* glibc leaves its internal signals 32 and 33 ignored: look at ours */
	sig = strstr(text, "SigIgn:\t");
	assert_non_null(sig);
	ign = strtoull(sig + 8, NULL, 16);
	assert_int_equal(ign & (1ULL << (SIGPIPE - 1) | 1ULL << (SIGINT - 1) |
				1ULL << (SIGTERM - 1)), 0);
	assert_non_null(strstr(text, "pipes 1\nend\n"));
	free(back);
	free(cmd);
	free(out);
}

/* Exits 3 after reading half: all bytes fit in the pipe in one write, so
 * the failure shows at close, with the status. */
static void test_cmd_sink_exit_status(void **state)
{
	const char *cmd = "head -c 16384 >/dev/null; exit 3";
	unsigned char *data = make_data(32768, 12);
	struct vb_error err = { 0 };
	struct vb_writer *w = vb_sink_cmd_new(cmd, &err);

	assert_non_null(w);
	assert_int_equal(vb_writer_write(w, data, 32768, &err), 0);
	assert_int_equal(vb_writer_close(w, &err), -1);
	assert_int_equal(err.cls, VB_E_FAIL);
	/* it read half and failed: both facts are named */
	assert_string_equal(err.msg, "output command 'head -c 16384 >/dev/null; exit 3' "
			    "ended (exit status 3) without reading the whole archive: "
			    "16384 of its 32768 bytes were never read");
	free(data);
}

/* The same with much more data: the failure shows at a write (EPIPE) or at
 * close, depending on timing; either way it names the command. */
static void test_cmd_sink_exit_midway(void **state)
{
	const char *cmd = "head -c 1000000 >/dev/null; exit 3";
	unsigned char *data = make_data(1 << 20, 13);
	struct vb_error err = { 0 };
	struct vb_writer *w = vb_sink_cmd_new(cmd, &err);
	int rc = 0;

	assert_non_null(w);
	for (int i = 0; i < 16 && rc == 0; i++)
		rc = vb_writer_write(w, data, 1 << 20, &err);
	if (rc == 0) {
		assert_int_equal(vb_writer_close(w, &err), -1);
		assert_non_null(strstr(err.msg, "exit status 3"));
	} else {
		assert_int_equal(err.sys_errno, EPIPE);
		assert_non_null(strstr(err.msg, "exited before the end of the archive"));
		vb_writer_discard(w);
	}
	assert_int_equal(err.cls, VB_E_FAIL);
	assert_non_null(strstr(err.msg, cmd));
	free(data);
}

/* A command that reads nothing: EPIPE, never a silent death, and the
 * status once it is known. */
static void test_cmd_sink_epipe(void **state)
{
	const char *prefix = "output command 'true' exited before the end of the archive";
	unsigned char *data = make_data(8 << 20, 14);
	struct vb_error err = { 0 };
	struct vb_writer *w = vb_sink_cmd_new("true", &err);

	assert_non_null(w);
	assert_int_equal(vb_writer_write(w, data, 8 << 20, &err), -1);
	assert_int_equal(err.cls, VB_E_FAIL);
	assert_int_equal(err.sys_errno, EPIPE);
	assert_int_equal(strncmp(err.msg, prefix, strlen(prefix)), 0);
	assert_true(strcmp(err.msg + strlen(prefix), "") == 0 ||
		    strcmp(err.msg + strlen(prefix), " (exit status 0)") == 0);
	vb_error_clear(&err);
	/* a close after the failure: an error, and the command is gone */
	assert_int_equal(vb_writer_close(w, &err), -1);
	assert_string_equal(err.msg, "output command 'true': stopped after a failed write");
	free(data);
}

/* discard: the command is stopped before it can see the end of its input
 * as a clean EOF (the mark is never made), promptly, and reaped. */
static void test_cmd_sink_discard(void **state)
{
	char *pidf = tpath(state, "pid"), *mark = tpath(state, "mark"), *cmd = NULL;
	struct vb_error err = { 0 };
	struct vb_writer *w;
	unsigned char *back;
	double t0;
	long pid = 0;
	size_t len;

	assert_true(asprintf(&cmd, "echo $$ > '%s'; cat >/dev/null && touch '%s'; sleep 100",
			     pidf, mark) > 0);
	w = vb_sink_cmd_new(cmd, &err);
	assert_non_null(w);
	assert_int_equal(vb_writer_write(w, "partial", 7, &err), 0);
	for (int i = 0; i < 500 && access(pidf, F_OK) < 0; i++)
		usleep(10000);
	usleep(50000); /* let the shell reach cat */
	t0 = now_s();
	vb_writer_discard(w);
	assert_true(now_s() - t0 < 5.0);
	back = read_file(pidf, &len);
	back[len] = '\0';
	pid = strtol((char *)back, NULL, 10);
	assert_true(pid > 1);
	assert_int_equal(kill((pid_t)pid, 0), -1); /* reaped: no zombie left */
	assert_int_equal(errno, ESRCH);
	assert_int_equal(access(mark, F_OK), -1);
	free(back);
	free(cmd);
	free(mark);
	free(pidf);
}

/* A command that ignores SIGTERM is killed after the grace period. */
static void test_cmd_sink_discard_stubborn(void **state)
{
	struct vb_error err = { 0 };
	struct vb_writer *w = vb_sink_cmd_new("trap '' TERM; cat >/dev/null; sleep 100", &err);
	double t0;

	assert_non_null(w);
	usleep(100000); /* the trap is set */
	t0 = now_s();
	vb_writer_discard(w);
	assert_true(now_s() - t0 < 8.0);
}

static void test_cmd_sink_not_found(void **state)
{
	struct vb_error err = { 0 };
	char msg[128];
	struct vb_writer *w;
	int saved = quiet(), rc;

	w = vb_sink_cmd_new("/nonexistent/x", &err);
	rc = w != NULL ? vb_writer_close(w, &err) : 0;
	unquiet(saved);
	assert_non_null(w);
	assert_int_equal(rc, -1);
	assert_int_equal(err.cls, VB_E_FAIL);
	assert_string_equal(err.msg, "output command '/nonexistent/x' failed: exit status 127");

	vb_error_clear(&err);
	w = vb_sink_cmd_new("kill -USR1 $$", &err);
	assert_non_null(w);
	assert_int_equal(vb_writer_close(w, &err), -1);
	snprintf(msg, sizeof(msg), "output command 'kill -USR1 $$' failed: killed by signal %d",
		 SIGUSR1);
	assert_string_equal(err.msg, msg);

	vb_error_clear(&err);
	assert_null(vb_sink_cmd_new("", &err));
	assert_int_equal(err.cls, VB_E_USAGE);
	assert_string_equal(err.msg, "empty output command");
}

static int group_cmd_sink(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_cmd_sink_cat, tdir_setup, tdir_teardown),
		cmocka_unit_test_setup_teardown(test_cmd_sink_child_env, tdir_setup,
						tdir_teardown),
		cmocka_unit_test(test_cmd_sink_exit_status),
		cmocka_unit_test(test_cmd_sink_exit_midway),
		cmocka_unit_test(test_cmd_sink_epipe),
		cmocka_unit_test_setup_teardown(test_cmd_sink_discard, tdir_setup,
						tdir_teardown),
		cmocka_unit_test(test_cmd_sink_discard_stubborn),
		cmocka_unit_test(test_cmd_sink_not_found),
	};
	return cmocka_run_group_tests_name("command sink", tests, NULL, NULL);
}

/* ============================================================ group: zstd writer */

static void zstd_roundtrip(void **state, int level, int threads, size_t size)
{
	char *path = tpath(state, "out.vma");
	struct vb_error err = { 0 };
	unsigned char *data = make_data(size, (uint64_t)size), *back = NULL, *file;
	struct vb_writer *sink = vb_sink_file_new(path, true, &err), *z;
	ZSTD_frameHeader fh;
	enum vb_compression comp;
	size_t flen, off = 0, step = 1;
	uint64_t raw;

	assert_non_null(sink);
	z = vb_zstd_writer_new(sink, level, threads, &err);
	assert_non_null(z);
	while (off < size) { /* uneven chunks, up to an extent's size */
		size_t n = size - off < step ? size - off : step;

		assert_int_equal(vb_writer_write(z, data + off, n, &err), 0);
		off += n;
		step = step * 7 + 3;
		if (step > 3866624)
			step = 1;
	}
	assert_int_equal(z->bytes_in, size);
	assert_int_equal(vb_writer_close(z, &err), 0);

	file = read_file(path, &flen);
	assert_int_equal(ZSTD_getFrameHeader(&fh, file, flen), 0);
	assert_int_equal(fh.checksumFlag, 1);
	/* seekable: frames, then the seek table's skippable frame, which ends
	 * the file; each frame starts at a write once 1 MiB was given */
	{
		size_t pos = 0, frames = 0;
		struct vb_rafile *ra;
		unsigned char *piece = malloc(70000);

		while (pos < flen && (file[pos + 3] != 0x18 || (file[pos] & 0xF0) != 0x50)) {
			size_t n = ZSTD_findFrameCompressedSize(file + pos, flen - pos);

			assert_false(ZSTD_isError(n));
			/* compressed whole (on a worker): its size is in its header */
			assert_true(ZSTD_getFrameContentSize(file + pos, flen - pos) !=
				    ZSTD_CONTENTSIZE_UNKNOWN);
			pos += n;
			frames++;
		}
		assert_true(pos + 8 + 8 * frames + VB_SEEK_FOOTER_SIZE == flen);
		assert_true(frames >= (size > (2u << 20) ? 2u : 1u));
		ra = vb_rafile_open(path, &err);
		if (!ra)
			fail_msg("%s", err.msg);
		assert_int_equal(vb_rafile_size(ra), size);
		assert_int_equal(vb_rafile_compression(ra), VB_COMP_ZSTD);
		assert_non_null(piece);
		for (size_t at = 0; at < size; at += size / 7 + 4093) {
			size_t len = size - at < 70000 ? size - at : 70000;

			assert_int_equal(vb_rafile_pread(ra, piece, len, at, &err), (ssize_t)len);
			assert_memory_equal(piece, data + at, len);
		}
		assert_int_equal(vb_rafile_pread(ra, piece, 10, size, &err), 0);
		vb_rafile_free(ra);
		free(piece);
	}
	assert_int_equal(read_all(path, &back, &comp, &raw, &err), (ssize_t)size);
	assert_int_equal(comp, VB_COMP_ZSTD);
	assert_int_equal(raw, flen);
	if (size > 0)
		assert_memory_equal(back, data, size);
	free(file);
	free(back);
	free(data);
	free(path);
}

static void test_zstd_roundtrip(void **state)
{
	zstd_roundtrip(state, 3, 0, 5 << 20);
	zstd_roundtrip(state, 1, 2, 9 << 20);
	zstd_roundtrip(state, 3, 3, 41 << 20); /* more frames than slots */
	zstd_roundtrip(state, 19, 0, 100000);
	zstd_roundtrip(state, 3, 0, 0);
}

static void test_zstd_bad_args(void **state)
{
	struct vb_error err = { 0 };
	struct vb_writer *sink = vb_sink_fd_new(STDERR_FILENO, "stderr", &err);

	assert_non_null(sink);
	assert_null(vb_zstd_writer_new(sink, 0, 0, &err));
	assert_int_equal(err.cls, VB_E_USAGE);
	vb_error_clear(&err);
	assert_null(vb_zstd_writer_new(sink, 20, 0, &err));
	assert_int_equal(err.cls, VB_E_USAGE);
	vb_error_clear(&err);
	assert_null(vb_zstd_writer_new(sink, 3, -1, &err));
	assert_int_equal(err.cls, VB_E_USAGE);
	vb_writer_discard(sink); /* still ours after a failure */
}

/* A failing sink below: the error surfaces and the whole stack is freed. */
static void test_zstd_sink_failure(void **state)
{
	struct vb_error err = { 0 };
	int fd = open("/dev/full", O_WRONLY | O_CLOEXEC);
	unsigned char *data = make_data(4 << 20, 7);
	struct vb_writer *z;
	int rc;

	if (fd < 0)
		skip();
	z = vb_zstd_writer_new(vb_sink_fd_new(fd, "standard output", &err), 3, 0, &err);
	assert_non_null(z);
	rc = vb_writer_write(z, data, 4 << 20, &err);
	if (rc == 0)
		rc = vb_writer_close(z, &err);
	else
		vb_writer_discard(z);
	assert_int_equal(rc, -1);
	assert_int_equal(err.sys_errno, ENOSPC);
	close(fd);
	free(data);
}

static int group_zstd(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_zstd_roundtrip, tdir_setup, tdir_teardown),
		cmocka_unit_test(test_zstd_bad_args),
		cmocka_unit_test(test_zstd_sink_failure),
	};
	return cmocka_run_group_tests_name("zstd writer", tests, NULL, NULL);
}

/* ============================================================ group: hash writer */

static void sha256_oneshot(const void *data, size_t len, uint8_t out[32])
{
	unsigned int n = 0;

	assert_int_equal(EVP_Digest(data, len, out, &n, EVP_sha256(), NULL), 1);
	assert_int_equal(n, 32);
}

/* The digest of the bytes through it, whatever the chunking, and the bytes
 * reach the layer below unchanged. */
static void test_hash_writer_digest(void **state)
{
	char *path = tpath(state, "out.vma");
	size_t size = (7 << 20) + 77, off = 0, step = 1, len;
	unsigned char *data = make_data(size, 21), *back;
	uint8_t digest[32], want[32];
	uint64_t bytes = 0;
	struct vb_error err = { 0 };
	struct vb_writer *w;

	w = vb_hash_writer_new(vb_sink_file_new(path, false, &err), digest, &bytes, &err);
	assert_non_null(w);
	while (off < size) {
		size_t n = size - off < step ? size - off : step;

		assert_int_equal(vb_writer_write(w, data + off, n, &err), 0);
		off += n;
		step = step * 5 + 1;
	}
	assert_int_equal(w->bytes_in, size);
	assert_int_equal(vb_writer_close(w, &err), 0);
	sha256_oneshot(data, size, want);
	assert_memory_equal(digest, want, 32);
	assert_int_equal(bytes, size);
	back = read_file(path, &len);
	assert_int_equal(len, size);
	assert_memory_equal(back, data, size);
	free(back);
	free(data);
	free(path);
}

/* Nothing written: the SHA-256 of no bytes. Under zstd (the order backup
 * uses): the digest is of the bytes written out. */
static void test_hash_writer_empty_and_stacked(void **state)
{
	static const uint8_t empty[32] = {
		0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8,
		0x99, 0x6f, 0xb9, 0x24, 0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c,
		0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
	};
	char *path = tpath(state, "out.vma.zst");
	unsigned char *data = make_data(1 << 20, 22), *file;
	uint8_t digest[32], want[32];
	uint64_t bytes = 1;
	struct vb_error err = { 0 };
	struct vb_writer *w;
	size_t len;

	w = vb_hash_writer_new(vb_sink_file_new(path, false, &err), digest, &bytes, &err);
	assert_non_null(w);
	assert_int_equal(vb_writer_close(w, &err), 0);
	assert_memory_equal(digest, empty, 32);
	assert_int_equal(bytes, 0);
	assert_int_equal(unlink(path), 0);

	w = vb_zstd_writer_new(vb_hash_writer_new(vb_sink_file_new(path, false, &err), digest,
						  NULL, &err), 3, 0, &err);
	assert_non_null(w);
	assert_int_equal(vb_writer_write(w, data, 1 << 20, &err), 0);
	assert_int_equal(vb_writer_close(w, &err), 0);
	file = read_file(path, &len);
	sha256_oneshot(file, len, want);
	assert_memory_equal(digest, want, 32);
	free(file);
	free(data);
	free(path);
}

/* discard frees the filter and discards below: the file sink's temporary
 * goes, nothing is published, the digest is left alone. */
static void test_hash_writer_discard(void **state)
{
	struct tdir *t = *state;
	char *path = tpath(state, "out.vma");
	uint8_t digest[32], before[32];
	uint64_t bytes = 42;
	struct vb_error err = { 0 };
	struct vb_writer *w;

	memset(digest, 0xAA, sizeof(digest));
	memcpy(before, digest, sizeof(digest));
	w = vb_hash_writer_new(vb_sink_file_new(path, false, &err), digest, &bytes, &err);
	assert_non_null(w);
	assert_int_equal(vb_writer_write(w, "partial", 7, &err), 0);
	vb_writer_discard(w);
	assert_int_equal(count_entries(t->path), 0);
	assert_memory_equal(digest, before, 32);
	assert_int_equal(bytes, 42);
	free(path);
}

/* An error below surfaces through the filter unchanged. */
static void test_hash_writer_error_below(void **state)
{
	struct vb_error err = { 0 };
	uint8_t digest[32];
	struct vb_writer *w;
	int p[2];

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	close(p[0]);
	w = vb_hash_writer_new(vb_sink_fd_new(p[1], "standard output", &err), digest, NULL,
			       &err);
	assert_non_null(w);
	assert_int_equal(vb_writer_write(w, "x", 1, &err), -1);
	assert_int_equal(err.sys_errno, EPIPE);
	assert_string_equal(err.msg, "standard output: the reader closed the pipe (EPIPE)");
	vb_writer_discard(w);
	close(p[1]);
}

/* vb_output_stack, the one assembly: hash below zstd (the digest is of the
 * bytes written out: zstd's frame), plain without compress, no hash layer
 * without sha256; a zstd that cannot start discards the sink (its
 * temporary goes). */
static void test_output_stack(void **state)
{
	struct tdir *t = *state;
	char *path = tpath(state, "out.vma.zst");
	unsigned char *data = make_data(1 << 20, 23), *file;
	uint8_t digest[32], want[32];
	uint64_t bytes = 0;
	struct vb_error err = { 0 };
	struct vb_writer *w;
	size_t len;

	w = vb_output_stack(vb_sink_file_new(path, false, &err), &(struct vb_output_opts){
		.compress = true, .zstd_level = 3, .sha256 = digest, .bytes = &bytes }, &err);
	assert_non_null(w);
	assert_int_equal(vb_writer_write(w, data, 1 << 20, &err), 0);
	assert_int_equal(vb_writer_close(w, &err), 0);
	file = read_file(path, &len);
	assert_true(len > 4 && memcmp(file, "\x28\xb5\x2f\xfd", 4) == 0); /* zstd magic */
	sha256_oneshot(file, len, want);
	assert_memory_equal(digest, want, 32);
	assert_int_equal(bytes, len);
	free(file);
	assert_int_equal(unlink(path), 0);
	w = vb_output_stack(vb_sink_file_new(path, false, &err), &(struct vb_output_opts){
		.sha256 = digest, .bytes = &bytes }, &err);
	assert_non_null(w);
	assert_int_equal(vb_writer_write(w, data, 1000, &err), 0);
	assert_int_equal(vb_writer_close(w, &err), 0);
	sha256_oneshot(data, 1000, want);
	assert_memory_equal(digest, want, 32);
	assert_int_equal(bytes, 1000);
	assert_int_equal(unlink(path), 0);
	w = vb_output_stack(vb_sink_file_new(path, false, &err), &(struct vb_output_opts){
		.compress = true, .zstd_level = 99 }, &err);
	assert_null(w);
	assert_int_not_equal(err.cls, 0);
	assert_int_equal(count_entries(t->path), 0);
	free(data);
	free(path);
}

static int group_hash(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_hash_writer_digest, tdir_setup,
						tdir_teardown),
		cmocka_unit_test_setup_teardown(test_hash_writer_empty_and_stacked, tdir_setup,
						tdir_teardown),
		cmocka_unit_test_setup_teardown(test_hash_writer_discard, tdir_setup,
						tdir_teardown),
		cmocka_unit_test(test_hash_writer_error_below),
		cmocka_unit_test_setup_teardown(test_output_stack, tdir_setup, tdir_teardown),
	};
	return cmocka_run_group_tests_name("hash writer", tests, NULL, NULL);
}

/* ============================================================ group: rate limit */

#define MiB (1024.0 * 1024.0)

/* A fake clock in whole nanoseconds, as a real one: a sleep advances it by
 * at least the time asked, rounded up to the next nanosecond. (A clock
 * advancing by exactly the double asked can make vb_ratelimit_take() spin
 * for ever: see the report of round 2.) */
struct fake_clock {
	int64_t ns;
	double slept;
	double longest;                 /* the longest single sleep */
	unsigned sleeps;
	unsigned cancel_at;             /* set *cancel at this sleep (0: never) */
	volatile sig_atomic_t *cancel;
};

static double fake_now(void *opaque)
{
	return (double)((struct fake_clock *)opaque)->ns / 1e9;
}

static void fake_advance(struct fake_clock *c, double seconds)
{
	int64_t ns = (int64_t)(seconds * 1e9);

	c->ns += (double)ns < seconds * 1e9 ? ns + 1 : ns; /* rounded up */
}

static void fake_sleep(void *opaque, double seconds)
{
	struct fake_clock *c = opaque;

	assert_true(seconds >= 0);
	assert_true(c->sleeps < 1000000); /* fail rather than hang */
	fake_advance(c, seconds);
	c->slept += seconds;
	if (seconds > c->longest)
		c->longest = seconds;
	if (++c->sleeps == c->cancel_at)
		*c->cancel = 1;
}

static struct vb_ratelimit *fake_limit(struct fake_clock *c, double rate_mib, double burst_mib)
{
	struct vb_ratelimit *rl;

	memset(c, 0, sizeof(*c));
	c->ns = (int64_t)1000000 * 1000000000; /* a monotonic clock after 11 days */
	rl = vb_ratelimit_new((uint64_t)(rate_mib * MiB), (uint64_t)(burst_mib * MiB), fake_now,
			      fake_sleep, c);
	assert_non_null(rl);
	return rl;
}

/* 40 MiB at 20 MiB/s needs 2 s, whatever the size of the takes and the
 * time the work between them takes; a little rounding (1e-9 s) aside. */
static void test_ratelimit_rate(void **state)
{
	static const struct { double take_mib, work_s; } cases[] = {
		{ 4, 0 }, { 0.0625, 0.001 }, { 1, 0.04 }, { 40, 0 }, { 3.7, 0.01 },
	};
	struct fake_clock c;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct vb_ratelimit *rl = fake_limit(&c, 20, 4);
		double start = fake_now(&c), done = 0;

		while (done < 40 * MiB) {
			double n = 40 * MiB - done < cases[i].take_mib * MiB ? 40 * MiB - done
									: cases[i].take_mib * MiB;

			assert_int_equal(vb_ratelimit_take(rl, (uint64_t)n, NULL), 0);
			done += (double)(uint64_t)n;
			fake_advance(&c, cases[i].work_s);
		}
		assert_true(fake_now(&c) - start >= 2.0 - 1e-9);
		assert_true(fake_now(&c) - start < 2.2);
		assert_true(c.longest <= 0.1 + 1e-12); /* short slices: cancel is seen */
		vb_ratelimit_free(rl);
	}
}

/* Idle time saves up at most burst. */
static void test_ratelimit_burst(void **state)
{
	struct fake_clock c;
	struct vb_ratelimit *rl = fake_limit(&c, 20, 2);

	fake_advance(&c, 100); /* a long idle time: 2000 MiB of credit, capped at 2 */
	assert_int_equal(vb_ratelimit_take(rl, (uint64_t)(2 * MiB), NULL), 0);
	assert_int_equal(c.sleeps, 0);
	assert_int_equal(vb_ratelimit_take(rl, (uint64_t)(2 * MiB), NULL), 0);
	assert_true(c.slept >= 0.1 - 1e-9 && c.slept < 0.1 + 1e-6);
	fake_advance(&c, 100);
	c.slept = 0;
	assert_int_equal(vb_ratelimit_take(rl, (uint64_t)(6 * MiB), NULL), 0);
	assert_true(c.slept >= 0.2 - 1e-9 && c.slept < 0.2 + 1e-6);
	vb_ratelimit_free(rl);

	/* burst 0: no credit at all */
	rl = fake_limit(&c, 20, 0);
	fake_advance(&c, 100);
	assert_int_equal(vb_ratelimit_take(rl, (uint64_t)(1 * MiB), NULL), 0);
	assert_true(c.slept >= 0.05 - 1e-9 && c.slept < 0.05 + 1e-6);
	vb_ratelimit_free(rl);
}

/* cancel set: the wait ends at the next slice, long before the rate would
 * allow the bytes. */
static void test_ratelimit_cancel(void **state)
{
	volatile sig_atomic_t cancel = 1;
	struct fake_clock c;
	struct vb_ratelimit *rl = fake_limit(&c, 1, 0);

	assert_int_equal(vb_ratelimit_take(rl, (uint64_t)(100 * MiB), &cancel), -1);
	assert_int_equal(c.sleeps, 0);
	vb_ratelimit_free(rl);

	cancel = 0;
	rl = fake_limit(&c, 1, 0);
	c.cancel = &cancel;
	c.cancel_at = 3;
	assert_int_equal(vb_ratelimit_take(rl, (uint64_t)(100 * MiB), &cancel), -1);
	assert_int_equal(c.sleeps, 3);
	assert_true(c.slept <= 0.3 + 1e-9);
	vb_ratelimit_free(rl);
}

static void test_ratelimit_none(void **state)
{
	struct fake_clock c = { 0 };
	volatile sig_atomic_t cancel = 1;
	struct vb_ratelimit *rl;

	assert_null(vb_ratelimit_new(0, 1 << 20, fake_now, fake_sleep, &c));
	assert_int_equal(vb_ratelimit_take(NULL, UINT64_MAX, NULL), 0);
	assert_int_equal(vb_ratelimit_take(NULL, 1, &cancel), 0);
	vb_ratelimit_free(NULL);
	rl = fake_limit(&c, 1, 0);
	assert_int_equal(vb_ratelimit_take(rl, 0, NULL), 0); /* holes cost nothing */
	assert_int_equal(c.sleeps, 0);
	vb_ratelimit_free(rl);
}

/* The real clock and sleep: 8 MiB at 64 MiB/s takes at least 0.125 s. */
static void test_ratelimit_real_clock(void **state)
{
	struct vb_ratelimit *rl = vb_ratelimit_new(64 << 20, 0, NULL, NULL, NULL);
	double t0 = now_s();

	assert_non_null(rl);
	for (int i = 0; i < 8; i++)
		assert_int_equal(vb_ratelimit_take(rl, 1 << 20, NULL), 0);
	assert_true(now_s() - t0 >= 0.125 - 0.002);
	assert_true(now_s() - t0 < 2.0);
	vb_ratelimit_free(rl);
}

static int group_ratelimit(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ratelimit_rate),
		cmocka_unit_test(test_ratelimit_burst),
		cmocka_unit_test(test_ratelimit_cancel),
		cmocka_unit_test(test_ratelimit_none),
		cmocka_unit_test(test_ratelimit_real_clock),
	};
	return cmocka_run_group_tests_name("rate limit", tests, NULL, NULL);
}

/* ============================================================ group: input */

#define INPUT_SIZE ((size_t)3 << 20)

/* a: plain VMA-looking data; b: its compressed form made by tool (or NULL) */
static unsigned char *make_inputs(void **state, char **plain, char **comp, char *const *tool)
{
	unsigned char *data = make_data(INPUT_SIZE, 42);

	memcpy(data, "VMA\0", 4);
	*plain = tpath(state, "a");
	*comp = tpath(state, "b");
	write_file(*plain, data, INPUT_SIZE);
	if (tool != NULL) {
		int rc = run_tool(tool, *plain, *comp);

		if (rc == -1) {
			free(data);
			free(*plain);
			free(*comp);
			skip();
		}
		assert_int_equal(rc, 0);
	}
	return data;
}

static void truncate_to(const char *path, off_t len)
{
	assert_int_equal(truncate(path, len), 0);
}

static void flip_byte(const char *path, off_t off)
{
	unsigned char c;
	int fd = open(path, O_RDWR | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &c, 1, off), 1);
	c ^= 0x55;
	assert_int_equal(pwrite(fd, &c, 1, off), 1);
	close(fd);
}

static void check_format(void **state, char *const *tool, enum vb_compression want)
{
	struct vb_error err = { 0 };
	char *plain, *comp;
	unsigned char *data = make_inputs(state, &plain, &comp, tool), *back = NULL;
	enum vb_compression got;
	struct stat st;
	uint64_t raw;

	assert_int_equal(stat(comp, &st), 0);
	assert_int_equal(read_all(comp, &back, &got, &raw, &err), (ssize_t)INPUT_SIZE);
	assert_int_equal(got, want);
	assert_int_equal(raw, (uint64_t)st.st_size);
	assert_memory_equal(back, data, INPUT_SIZE);
	free(back);
	/* a flipped byte: caught by the format's checksum at the latest */
	flip_byte(comp, st.st_size / 2);
	expect_invalid(comp);
	flip_byte(comp, st.st_size / 2);
	/* cut in the middle of the stream: an error, never a short read */
	truncate_to(comp, st.st_size / 2);
	expect_invalid(comp);
	truncate_to(comp, 20);
	expect_invalid(comp);
	free(data);
	free(plain);
	free(comp);
}

static void test_input_plain(void **state)
{
	struct vb_error err = { 0 };
	char *plain, *comp;
	unsigned char *data = make_inputs(state, &plain, &comp, NULL), *back = NULL;
	enum vb_compression got;
	uint64_t raw;

	assert_int_equal(read_all(plain, &back, &got, &raw, &err), (ssize_t)INPUT_SIZE);
	assert_int_equal(got, VB_COMP_NONE);
	assert_int_equal(raw, INPUT_SIZE);
	assert_memory_equal(back, data, INPUT_SIZE);
	assert_string_equal(vb_compression_name(VB_COMP_NONE), "none");
	free(back);
	free(data);
	free(plain);
	free(comp);
}

static void test_input_zstd(void **state)
{
	char *const argv[] = { "zstd", "-q", "-3", "-c", NULL };

	check_format(state, argv, VB_COMP_ZSTD);
}

static void test_input_gzip(void **state)
{
	char *const argv[] = { "gzip", "-c", NULL };

	check_format(state, argv, VB_COMP_GZIP);
}

static void test_input_lzop(void **state)
{
	char *const argv[] = { "lzop", "-c", NULL };

	check_format(state, argv, VB_COMP_LZO);
}

static void test_input_zstd_frames(void **state)
{
	char *const argv[] = { "zstd", "-q", "-c", NULL };
	struct vb_error err = { 0 };
	char *plain, *comp;
	unsigned char *data = make_inputs(state, &plain, &comp, argv), *back = NULL, *z;
	size_t zlen;
	int fd;

	/* two frames back to back: the data twice */
	z = read_file(comp, &zlen);
	fd = open(comp, O_WRONLY | O_APPEND | O_CLOEXEC);
	assert_int_equal(write(fd, z, zlen), (ssize_t)zlen);
	close(fd);
	assert_int_equal(read_all(comp, &back, NULL, NULL, &err), 2 * (ssize_t)INPUT_SIZE);
	assert_memory_equal(back, data, INPUT_SIZE);
	assert_memory_equal(back + INPUT_SIZE, data, INPUT_SIZE);
	free(back);
	/* a corrupt byte in the middle of the first frame */
	z[zlen / 2] ^= 0x55;
	write_file(comp, z, zlen);
	expect_invalid(comp);
	/* garbage after a good frame */
	z[zlen / 2] ^= 0x55;
	write_file(comp, z, zlen);
	fd = open(comp, O_WRONLY | O_APPEND | O_CLOEXEC);
	assert_int_equal(write(fd, "garbage!", 8), 8);
	close(fd);
	expect_invalid(comp);
	free(z);
	free(data);
	free(plain);
	free(comp);
}

static void test_input_bad(void **state)
{
	struct tdir *t = *state;
	char *path = tpath(state, "a"), *missing = tpath(state, "none.vma"), msg[600];
	unsigned char *noise = make_data(5000, 3);
	struct vb_error err = { 0 };

	noise[0] = 0x42;
	write_file(path, noise, 5000);
	assert_null(vb_input_open(path, &err));
	assert_int_equal(err.cls, VB_E_INVALID);
	snprintf(msg, sizeof(msg), "%s: not a VMA archive (unknown format; expected VMA, "
		 "zstd, gzip or lzop)", path);
	assert_string_equal(err.msg, msg);

	vb_error_clear(&err);
	write_file(path, "VM", 2);
	assert_null(vb_input_open(path, &err));
	assert_int_equal(err.cls, VB_E_INVALID);

	vb_error_clear(&err);
	write_file(path, "", 0);
	assert_null(vb_input_open(path, &err));
	assert_int_equal(err.cls, VB_E_INVALID);
	snprintf(msg, sizeof(msg), "%s: empty input, not a VMA archive", path);
	assert_string_equal(err.msg, msg);

	vb_error_clear(&err);
	assert_null(vb_input_open(missing, &err));
	assert_int_equal(err.cls, VB_E_USAGE);
	assert_int_equal(err.sys_errno, ENOENT);
	snprintf(msg, sizeof(msg), "%s: %s", missing, strerror(ENOENT));
	assert_string_equal(err.msg, msg);

	vb_error_clear(&err);
	assert_null(vb_input_open(t->path, &err));
	assert_int_equal(err.cls, VB_E_USAGE);
	snprintf(msg, sizeof(msg), "%s: is a directory", t->path);
	assert_string_equal(err.msg, msg);

	/* a zstd magic alone: a truncated stream */
	write_file(path, "\x28\xb5\x2f\xfd", 4);
	expect_invalid(path);
	free(noise);
	free(missing);
	free(path);
}

/* Standard input is a pipe: the peeked bytes must be replayed. */
static void stdin_case(const unsigned char *bytes, size_t blen, const unsigned char *want,
		       size_t wlen, enum vb_compression comp)
{
	struct vb_error err = { 0 };
	unsigned char *back = NULL;
	enum vb_compression got;
	int p[2], saved = dup(STDIN_FILENO), st;
	pid_t pid;

	assert_true(saved >= 0);
	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		/* small writes: the reader meets short reads */
		for (size_t off = 0; off < blen; off += 3000)
			if (write(p[1], bytes + off, blen - off < 3000 ? blen - off : 3000) < 0)
				_exit(1);
		_exit(0);
	}
	close(p[1]);
	assert_int_equal(dup2(p[0], STDIN_FILENO), STDIN_FILENO);
	close(p[0]);
	assert_int_equal(read_all("-", &back, &got, NULL, &err), (ssize_t)wlen);
	assert_int_equal(got, comp);
	assert_memory_equal(back, want, wlen);
	assert_int_equal(dup2(saved, STDIN_FILENO), STDIN_FILENO);
	close(saved);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	free(back);
}

static void test_input_stdin(void **state)
{
	char *const argv[] = { "zstd", "-q", "-c", NULL };
	char *const gz[] = { "gzip", "-c", NULL };
	char *plain, *comp;
	unsigned char *data = make_inputs(state, &plain, &comp, argv), *z;
	size_t zlen;

	stdin_case(data, INPUT_SIZE, data, INPUT_SIZE, VB_COMP_NONE);
	z = read_file(comp, &zlen);
	stdin_case(z, zlen, data, INPUT_SIZE, VB_COMP_ZSTD);
	free(z);
	assert_int_equal(run_tool(gz, plain, comp), 0);
	z = read_file(comp, &zlen);
	stdin_case(z, zlen, data, INPUT_SIZE, VB_COMP_GZIP);
	stdin_case((const unsigned char *)"VMA\0x", 5, (const unsigned char *)"VMA\0x", 5,
		   VB_COMP_NONE);
	free(z);
	free(data);
	free(plain);
	free(comp);
}

/* One gzip member of data made in-process; with fields, the header carries
 * a name, a comment, an extra field and a header CRC. malloc'd. */
static unsigned char *gz_member(const unsigned char *data, size_t len, bool fields,
				size_t *out_len)
{
	z_stream zs;
	gz_header h;
	unsigned char *out;
	size_t cap;

	memset(&zs, 0, sizeof(zs));
	memset(&h, 0, sizeof(h));
	assert_int_equal(deflateInit2(&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8,
				      Z_DEFAULT_STRATEGY), Z_OK);
	if (fields) {
		h.name = (Bytef *)"disk.vma";
		h.comment = (Bytef *)"made by test_core";
		h.extra = (Bytef *)"VB\x02\x00ok";
		h.extra_len = 6;
		h.hcrc = 1;
		assert_int_equal(deflateSetHeader(&zs, &h), Z_OK);
	}
	cap = deflateBound(&zs, (uLong)len) + 64;
	out = malloc(cap);
	assert_non_null(out);
	zs.next_in = (Bytef *)data;
	zs.avail_in = (uInt)len;
	zs.next_out = out;
	zs.avail_out = (uInt)cap;
	assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
	*out_len = zs.total_out;
	deflateEnd(&zs);
	return out;
}

/* path holds bytes; reading it fails with VB_E_INVALID and "PATH: why". */
static void expect_gz_error(const char *path, const unsigned char *bytes, size_t len,
			    const char *why)
{
	struct vb_error err = { 0 };
	unsigned char *buf = NULL;
	char msg[600];

	write_file(path, bytes, len);
	assert_int_equal(read_all(path, &buf, NULL, NULL, &err), -1);
	assert_int_equal(err.cls, VB_E_INVALID);
	snprintf(msg, sizeof(msg), "%s: %s", path, why);
	assert_string_equal(err.msg, msg);
}

/* Members one after the other (gzip -c a b, pigz), with header fields; the
 * CRC-32 and length of each are checked; nothing may follow the last. */
static void test_input_gzip_members(void **state)
{
	char *path = tpath(state, "a.gz");
	unsigned char *data = make_data(INPUT_SIZE, 9), *a, *b, *c, *all = NULL, *bad;
	unsigned char *back = NULL, zeros[512] = { 0 };
	size_t alen, blen, clen, len = 0;
	struct vb_error err = { 0 };
	enum vb_compression comp;
	uint64_t raw;

	memcpy(data, "VMA\0", 4);
	a = gz_member(data, 1 << 20, true, &alen);
	b = gz_member(data + (1 << 20), INPUT_SIZE - (1 << 20), false, &blen);
	c = gz_member(data, 0, false, &clen); /* an empty member */
	append(&all, &len, a, alen);
	append(&all, &len, c, clen);
	append(&all, &len, b, blen);
	write_file(path, all, len);
	assert_int_equal(read_all(path, &back, &comp, &raw, &err), (ssize_t)INPUT_SIZE);
	assert_int_equal(comp, VB_COMP_GZIP);
	assert_int_equal(raw, len);
	assert_memory_equal(back, data, INPUT_SIZE);
	free(back);

	append(&all, &len, "garbage!", 8);
	expect_gz_error(path, all, len,
			"corrupt gzip stream: trailing garbage after a gzip member");
	len -= 8;
	append(&all, &len, zeros, sizeof(zeros)); /* tape padding: refused too */
	expect_gz_error(path, all, len,
			"corrupt gzip stream: trailing garbage after a gzip member");
	len -= sizeof(zeros);
	append(&all, &len, "\x1f\x9d\x90", 3); /* compress(1) after gzip */
	expect_gz_error(path, all, len, "corrupt gzip stream: incorrect header check");
	len -= 3;
	append(&all, &len, "\x1f\x8b\x08", 3); /* a third member cut short */
	expect_gz_error(path, all, len, "truncated gzip stream");
	len -= 3;

	bad = malloc(alen);
	assert_non_null(bad);
	memcpy(bad, a, alen);
	bad[alen - 8] ^= 1; /* CRC-32 of the first member */
	expect_gz_error(path, bad, alen, "corrupt gzip stream: incorrect data check");
	bad[alen - 8] ^= 1;
	bad[alen - 1] ^= 1; /* its length */
	expect_gz_error(path, bad, alen, "corrupt gzip stream: incorrect length check");
	bad[alen - 1] ^= 1;
	expect_gz_error(path, bad, alen - 1, "truncated gzip stream");
	expect_gz_error(path, bad, 12, "truncated gzip stream");
	expect_gz_error(path, (const unsigned char *)"\x1f\x8b", 2, "truncated gzip stream");
	bad[2] = 7; /* compression method: not deflate */
	expect_gz_error(path, bad, alen, "corrupt gzip stream: unknown compression method");
	free(bad);
	free(all);
	free(a);
	free(b);
	free(c);
	free(data);
	free(path);
}

static int group_input(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_input_plain, tdir_setup, tdir_teardown),
		cmocka_unit_test_setup_teardown(test_input_zstd, tdir_setup, tdir_teardown),
		cmocka_unit_test_setup_teardown(test_input_gzip, tdir_setup, tdir_teardown),
		cmocka_unit_test_setup_teardown(test_input_lzop, tdir_setup, tdir_teardown),
		cmocka_unit_test_setup_teardown(test_input_gzip_members, tdir_setup,
						tdir_teardown),
		cmocka_unit_test_setup_teardown(test_input_zstd_frames, tdir_setup,
						tdir_teardown),
		cmocka_unit_test_setup_teardown(test_input_bad, tdir_setup, tdir_teardown),
		cmocka_unit_test_setup_teardown(test_input_stdin, tdir_setup, tdir_teardown),
	};
	return cmocka_run_group_tests_name("input", tests, NULL, NULL);
}

/* ============================================================ main */

/* Add a group here; each returns its number of failed tests. */
static int (*const groups[])(void) = {
	group_error,
	group_tempfile,
	group_file_sink,
	group_fd_sink,
	group_cmd_sink,
	group_zstd,
	group_hash,
	group_ratelimit,
	group_input,
};

int main(void)
{
	int failed = 0;

	/* as cli/ does: a closed pipe is an EPIPE error, not a silent death */
	signal(SIGPIPE, SIG_IGN);
	for (size_t i = 0; i < sizeof(groups) / sizeof(groups[0]); i++)
		failed += groups[i]();
	return failed == 0 ? 0 : 1;
}
