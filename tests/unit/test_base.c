/* test_base.c: unit tests of core/base: the name checks (drive, set,
 * checkpoint, file), the first error wins, hex and uuid formatting, notes,
 * the clock that tests set with VMABACK_TEST_NOW, the cancel flag. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/byteorder.h"
#include "core/base/base.h"

#include "tests/unit/test_support.h"

/* A string of n copies of c, to free. */
static char *repeat(char c, size_t n)
{
	char *s = malloc(n + 1);

	assert_non_null(s);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

static void test_drive_names(void **state)
{
	struct vb_error err = { 0 };
	char *longest = repeat('d', VB_DRIVE_NAME_MAX);
	char *too_long = repeat('d', VB_DRIVE_NAME_MAX + 1);
	const char *good[] = { "drive-scsi0", "a", "with space", "caf\xc3\xa9", "..x", ".hidden",
			       "vmstate0", longest };
	const char *bad[] = { "", ".", "..", "a/b", "/", "vmstate", "tab\there", "nl\n",
			      "del\x7f", too_long };

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		vb_error_clear(&err);
		assert_int_equal(vb_drive_name_check(good[i], &err), 0);
		assert_int_equal(err.cls, VB_OK);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		vb_error_clear(&err);
		assert_int_equal(vb_drive_name_check(bad[i], &err), -1);
		assert_int_equal(err.cls, VB_E_USAGE);
		assert_true(err.msg[0] != '\0');
	}
	/* the message names the drive in printable form: one line */
	vb_error_clear(&err);
	assert_int_equal(vb_drive_name_check("x\ny/z", &err), -1);
	assert_non_null(strstr(err.msg, "x\\x0ay/z"));
	assert_null(strchr(err.msg, '\n'));
	vb_error_clear(&err);
	assert_int_equal(vb_drive_name_check(too_long, &err), -1);
	assert_non_null(strstr(err.msg, "243 bytes"));
	free(longest);
	free(too_long);
}

static void test_safe_file_name(void **state)
{
	char *n255 = repeat('f', 255), *n256 = repeat('f', 256);

	(void)state;
	assert_true(vb_safe_file_name("disk-a.raw"));
	assert_true(vb_safe_file_name("..."));
	assert_true(vb_safe_file_name(n255));
	assert_false(vb_safe_file_name(n256));
	assert_false(vb_safe_file_name(""));
	assert_false(vb_safe_file_name("."));
	assert_false(vb_safe_file_name(".."));
	assert_false(vb_safe_file_name("../x"));
	assert_false(vb_safe_file_name("a/"));
	assert_false(vb_safe_file_name("\x1b[2J"));
	assert_false(vb_safe_file_name("a\x7f"));
	free(n255);
	free(n256);
}

static void test_set_and_ckpt_names(void **state)
{
	struct vb_error err = { 0 };
	char *n128 = repeat('s', 128), *n129 = repeat('s', 129);
	const char *good[] = { "vm100", "a", "A-b_c.d:e+f", "0", n128 };
	const char *bad[] = { "", ".x", "-x", "a/b", "a b", "a\n", "caf\xc3\xa9", "x*", "..", n129 };

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		vb_error_clear(&err);
		assert_int_equal(vb_set_name_check(good[i], &err), 0);
		assert_int_equal(vb_ckpt_name_check(good[i], &err), 0);
		assert_int_equal(err.cls, VB_OK);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		vb_error_clear(&err);
		assert_int_equal(vb_set_name_check(bad[i], &err), -1);
		assert_int_equal(err.cls, VB_E_USAGE);
		assert_non_null(strstr(err.msg, "backup set"));
		vb_error_clear(&err);
		assert_int_equal(vb_ckpt_name_check(bad[i], &err), -1);
		assert_int_equal(err.cls, VB_E_USAGE);
		assert_non_null(strstr(err.msg, "checkpoint"));
	}
	free(n128);
	free(n129);
}

/* The first error wins: clean-up after a failure cannot hide its cause. */
static void test_error_first_wins(void **state)
{
	struct vb_error err = { 0 };

	(void)state;
	errno = EAGAIN;
	assert_int_equal(vb_error_set(&err, VB_E_INVALID, EIO, "first %d", 1), -1);
	assert_int_equal(errno, EAGAIN); /* errno survives for the caller */
	assert_int_equal(err.cls, VB_E_INVALID);
	assert_int_equal(err.sys_errno, EIO);
	assert_string_equal(err.msg, "first 1");
	assert_int_equal(vb_error_set(&err, VB_E_LOCKED, ENOSPC, "second"), -1);
	assert_int_equal(err.cls, VB_E_INVALID);
	assert_int_equal(err.sys_errno, EIO);
	assert_string_equal(err.msg, "first 1");
	vb_error_clear(&err);
	assert_int_equal(err.cls, VB_OK);
	assert_int_equal(err.sys_errno, 0);
	assert_string_equal(err.msg, "");
	/* an error set with VB_OK still reads as an error */
	assert_int_equal(vb_error_set(&err, VB_OK, 0, "oops"), -1);
	assert_int_equal(err.cls, VB_E_FAIL);
	/* no error record: still -1, and no crash */
	assert_int_equal(vb_error_set(NULL, VB_E_FAIL, 0, "nobody listens"), -1);
	vb_error_clear(NULL);
}

/* A message longer than the record is cut, NUL-terminated. */
static void test_error_long_message(void **state)
{
	struct vb_error err = { 0 };
	char *big = repeat('m', 5000);

	(void)state;
	vb_error_set(&err, VB_E_FAIL, 0, "%s", big);
	assert_int_equal(strlen(err.msg), sizeof(err.msg) - 1);
	free(big);
}

static void test_hex(void **state)
{
	const uint8_t d[] = { 0x00, 0x01, 0x7f, 0x80, 0xab, 0xff };
	char out[2 * sizeof(d) + 2];

	(void)state;
	memset(out, 'X', sizeof(out));
	vb_hex(d, sizeof(d), out);
	assert_string_equal(out, "00017f80abff");
	assert_int_equal(out[sizeof(out) - 1], 'X'); /* wrote 2n+1 bytes only */
	vb_hex(d, 0, out);
	assert_string_equal(out, "");
}

static void test_uuid_format(void **state)
{
	const uint8_t u[16] = { 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0,
				0x0f, 0xed, 0xcb, 0xa9, 0x87, 0x65, 0x43, 0x21 };
	const uint8_t z[16] = { 0 };
	char out[37];

	(void)state;
	vb_uuid_format(u, out);
	assert_string_equal(out, "12345678-9abc-def0-0fed-cba987654321");
	vb_uuid_format(z, out);
	assert_string_equal(out, "00000000-0000-0000-0000-000000000000");
}

/* What a warning callback got. */
struct seen {
	int calls;
	enum vb_warn_kind kind[4];
	char drive[4][16], msg[4][64];
};

static void on_warning(void *opaque, const struct vb_warning *w)
{
	struct seen *s = opaque;

	assert_true(s->calls < 4);
	s->kind[s->calls] = w->kind;
	snprintf(s->drive[s->calls], sizeof(s->drive[0]), "%s", w->drive ? w->drive : "-");
	snprintf(s->msg[s->calls], sizeof(s->msg[0]), "%s", w->msg);
	s->calls++;
}

/* Warnings are records: queued until there is a callback, then given to
 * it in order, the later ones at once; freeing the queue is idempotent. */
static void test_warnings(void **state)
{
	struct vb_warnings w = { 0 };
	struct seen s = { 0 };

	(void)state;
	vb_warn(&w, VB_WARN_LEFTOVER, NULL, "one %d", 1);
	vb_warn(&w, VB_WARN_FULL, "scsi0", "%s", "two");
	assert_int_equal(w.n, 2);
	assert_string_equal(w.q[0].msg, "one 1");
	assert_null(w.q[0].drive);
	assert_string_equal(w.q[1].drive, "scsi0");
	vb_warnings_to(&w, on_warning, &s);
	assert_int_equal(w.n, 0);
	assert_int_equal(s.calls, 2);
	assert_int_equal(s.kind[0], VB_WARN_LEFTOVER);
	assert_string_equal(s.msg[0], "one 1");
	assert_string_equal(s.drive[0], "-");
	assert_int_equal(s.kind[1], VB_WARN_FULL);
	assert_string_equal(s.drive[1], "scsi0");
	assert_string_equal(s.msg[1], "two");
	vb_warn(&w, VB_WARN_GUEST, "d", "three");
	assert_int_equal(w.n, 0); /* not queued: given at once */
	assert_int_equal(s.calls, 3);
	assert_string_equal(s.msg[2], "three");
	vb_warnings_free(&w);
	vb_warnings_free(&w);
	/* the JSON names, one per kind, and a name for a kind out of range */
	assert_string_equal(vb_warn_kind_name(VB_WARN_NOTE), "note");
	assert_string_equal(vb_warn_kind_name(VB_WARN_LEFTOVER), "leftover");
	assert_string_equal(vb_warn_kind_name(VB_WARN_FULL), "full-backup");
	assert_string_equal(vb_warn_kind_name(VB_WARN_DEFINE), "define");
	assert_string_equal(vb_warn_kind_name((enum vb_warn_kind)99), "note");
}

/* Kinds are enums inside; their names only at the JSON and CLI edges: one
 * to-string and one from-string, which agree. */
static void test_kinds(void **state)
{
	enum vb_kind k = VB_KIND_UNKNOWN;

	(void)state;
	assert_string_equal(vb_kind_name(VB_KIND_FULL), "full");
	assert_string_equal(vb_kind_name(VB_KIND_INCREMENTAL), "incremental");
	assert_string_equal(vb_kind_name(VB_KIND_DIFFERENTIAL), "differential");
	assert_string_equal(vb_kind_name(VB_KIND_PROXMOX), "proxmox");
	assert_string_equal(vb_kind_name(VB_KIND_UNKNOWN), "?");
	for (int i = VB_KIND_FULL; i <= VB_KIND_DIFFERENTIAL; i++) {
		assert_int_equal(vb_kind_parse(vb_kind_name((enum vb_kind)i), &k), 0);
		assert_int_equal(k, i);
		assert_int_equal(vb_kind_of_mode((enum vb_mode)i), i);
		assert_string_equal(vb_kind_name((enum vb_kind)i), vb_mode_name((enum vb_mode)i));
	}
	/* what vmaback never writes into a file is no kind of a file */
	assert_int_equal(vb_kind_parse("proxmox", &k), -1);
	assert_int_equal(vb_kind_parse("?", &k), -1);
	assert_int_equal(vb_kind_parse("Full", &k), -1);
	assert_int_equal(vb_kind_parse(NULL, &k), -1);
	assert_true(vb_kind_whole(VB_KIND_FULL) && vb_kind_whole(VB_KIND_PROXMOX));
	assert_false(vb_kind_whole(VB_KIND_INCREMENTAL) || vb_kind_whole(VB_KIND_DIFFERENTIAL) ||
		     vb_kind_whole(VB_KIND_UNKNOWN));
}

/* VMABACK_TEST_NOW sets the wall clock of backups; a value that is not a
 * whole non-negative number is ignored, and the monotonic clock never
 * follows it. */
static void test_clock(void **state)
{
	int64_t real, now;
	double m1, m2;

	(void)state;
	unsetenv("VMABACK_TEST_NOW");
	real = (int64_t)time(NULL);
	now = vb_clock_now();
	assert_true(now >= real && now <= real + 5);
	assert_true(vb_clock_now_ns() / 1000000000 >= real);

	setenv("VMABACK_TEST_NOW", "1704067200", 1);
	assert_int_equal(vb_clock_now(), 1704067200);
	assert_int_equal(vb_clock_now_ns(), (int64_t)1704067200 * 1000000000);
	m1 = vb_clock_monotonic();
	setenv("VMABACK_TEST_NOW", "0", 1);
	assert_int_equal(vb_clock_now(), 0);
	m2 = vb_clock_monotonic();
	assert_true(m2 >= m1);
	assert_true(m1 > 0 && m1 < 1e12 && m1 != 1704067200.0);

	const char *ignored[] = { "", "-5", "12x", "x", "99999999999999999999999" };

	for (size_t i = 0; i < sizeof(ignored) / sizeof(ignored[0]); i++) {
		setenv("VMABACK_TEST_NOW", ignored[i], 1);
		real = (int64_t)time(NULL);
		now = vb_clock_now();
		assert_true(now >= real && now <= real + 5);
	}
	unsetenv("VMABACK_TEST_NOW");
}

/* In a child (the variable is read once per process, at the first crash
 * point): VMABACK_TEST_CRASH=v, then the crash points, then a later setenv
 * that must not be seen; its wait status. */
static int crash_child(const char *v, const char *const *points, const char *later)
{
	pid_t pid = fork();
	int st;

	assert_true(pid >= 0);
	if (pid == 0) {
		if (v)
			setenv("VMABACK_TEST_CRASH", v, 1);
		else
			unsetenv("VMABACK_TEST_CRASH");
		for (size_t i = 0; points[i]; i++)
			vb_crash_point(points[i]);
		if (later) {
			setenv("VMABACK_TEST_CRASH", later, 1);
			vb_crash_point(later);
		}
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return st;
}

/* A crash point fires only when its own name is set. */
static void test_crash_point_other_name(void **state)
{
	static const char *const any[] = { "anything", NULL };
	static const char *const near[] = { "here", "elsewher", "", NULL };
	int st;

	(void)state;
	st = crash_child(NULL, any, NULL);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	st = crash_child("elsewhere", near, NULL);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	st = crash_child("", near, NULL);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	/* read once: set after the first crash point, it is not seen */
	st = crash_child(NULL, any, "late");
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* ... and when it is set, the process dies by SIGKILL (in a child). */
static void test_crash_point_kills(void **state)
{
	static const char *const here[] = { "elsewhere", "here", NULL };
	int st;

	(void)state;
	st = crash_child("here", here, NULL);
	assert_true(WIFSIGNALED(st));
	assert_int_equal(WTERMSIG(st), SIGKILL);
}

static void test_cancel_flag(void **state)
{
	static volatile sig_atomic_t flag;

	(void)state;
	vb_set_cancel(NULL);
	assert_false(vb_canceled());
	flag = 0;
	vb_set_cancel(&flag);
	assert_false(vb_canceled());
	flag = 1;
	assert_true(vb_canceled());
	vb_set_cancel(NULL);
	assert_false(vb_canceled());
}

static void test_modes_and_sectors(void **state)
{
	(void)state;
	assert_string_equal(vb_mode_name(VB_MODE_AUTO), "auto");
	assert_string_equal(vb_mode_name(VB_MODE_FULL), "full");
	assert_string_equal(vb_mode_name(VB_MODE_INCREMENTAL), "incremental");
	assert_string_equal(vb_mode_name(VB_MODE_DIFFERENTIAL), "differential");
	assert_string_equal(vb_mode_name((enum vb_mode)42), "auto");
	assert_int_equal(vb_round_sector(0), 0);
	assert_int_equal(vb_round_sector(1), 512);
	assert_int_equal(vb_round_sector(512), 512);
	assert_int_equal(vb_round_sector(513), 1024);
}

/* The printable form: no byte that would add a line or reach a terminal
 * as an escape, cut to fit the buffer on a character's edge; the promised
 * size 4 * strlen + 1 always suffices. */
static void test_printable(void **state)
{
	char out[64], big[4 * 8 + 1];
	const char *worst = "\x01\xff\x1b\n\\\x7f\xc2\x9b"; /* 8 bytes, each escaped */

	(void)state;
	vb_name_printable(worst, big, sizeof(big));
	assert_string_equal(big, "\\x01\\xff\\x1b\\x0a\\x5c\\x7f\\xc2\\x9b");
	vb_name_printable(worst, big, sizeof(big) - 1);
	assert_string_equal(big, "\\x01\\xff\\x1b\\x0a\\x5c\\x7f"); /* cut before C1 pair */
	vb_name_printable("abc", out, 1);
	assert_string_equal(out, "");
	vb_name_printable("abc", out, 0); /* writes nothing at all */
	vb_name_printable("\xf0\x9f\x98\x80!", out, 5);
	assert_string_equal(out, "\xf0\x9f\x98\x80");
	vb_name_printable("\xf0\x9f\x98\x80!", out, 4);
	assert_string_equal(out, "");
	assert_int_equal(vb_utf8_len((const unsigned char *)"\xe2\x82\xac", 2), 0);
	assert_int_equal(vb_utf8_len((const unsigned char *)"\xe0\x80\x80", 3), 0);
	assert_int_equal(vb_utf8_len((const unsigned char *)"\xc2\xa0", 2), 2);
	assert_int_equal(vb_utf8_len((const unsigned char *)"x", 0), 0);
}

/* common/byteorder.h: the one set of byte-order helpers. */
static void test_byteorder(void **state)
{
	static const uint8_t le[8] = { 0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x81 };
	uint8_t b[8];

	(void)state;
	assert_int_equal(get_le16(le), 0x0708);
	assert_int_equal(get_le32(le), 0x05060708u);
	assert_true(get_le64(le) == 0x8102030405060708ull);
	assert_int_equal(get_be16(le), 0x0807);
	assert_int_equal(get_be32(le), 0x08070605u);
	assert_true(get_be64(le) == 0x0807060504030281ull);
	put_le64(b, 0x8102030405060708ull);
	assert_memory_equal(b, le, 8);
	put_be64(b, 0x0807060504030281ull);
	assert_memory_equal(b, le, 8);
	put_le32(b, 0xdeadbeefu);
	assert_int_equal(get_le32(b), 0xdeadbeefu);
	assert_int_equal(b[0], 0xef);
	put_be32(b, 0xdeadbeefu);
	assert_int_equal(b[0], 0xde);
	put_le16(b, 0xabcd);
	assert_int_equal(get_le16(b), 0xabcd);
	put_be16(b, 0xabcd);
	assert_int_equal(b[0], 0xab);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_byteorder),
		cmocka_unit_test(test_drive_names),
		cmocka_unit_test(test_safe_file_name),
		cmocka_unit_test(test_set_and_ckpt_names),
		cmocka_unit_test(test_error_first_wins),
		cmocka_unit_test(test_error_long_message),
		cmocka_unit_test(test_hex),
		cmocka_unit_test(test_uuid_format),
		cmocka_unit_test(test_warnings),
		cmocka_unit_test(test_kinds),
		cmocka_unit_test(test_clock),
		cmocka_unit_test(test_crash_point_other_name),
		cmocka_unit_test(test_crash_point_kills),
		cmocka_unit_test(test_cancel_flag),
		cmocka_unit_test(test_modes_and_sectors),
		cmocka_unit_test(test_printable),
	};

	return cmocka_run_group_tests_name("base", tests, NULL, NULL);
}
