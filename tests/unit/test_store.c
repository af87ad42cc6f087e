/* test_store.c: unit tests of core/store: the state directory's names, the
 * JSON codec (round trip, refusal of damaged state files), the lock, the
 * commit and the chain edits, garbage collection (only vmaback's own name
 * patterns, never in a directory that is not a state), archive checks and
 * the archive-digest files. Fixtures in mkdtemp directories. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bitmap/bitmap.h"
#include "core/store/store_int.h"

#include "tests/unit/test_support.h"

/* The state's queued warnings (no callback given), one line each. */
#define WARNINGS(s) ts_warnings_text(&(s)->warn, (char[2048]){ 0 }, 2048)

#define SZ (4 * 65536 + 100) /* a drive of 5 clusters, the last one short */

/* ============================================================== faults
 * Linked with -Wl,--wrap=fsync,rename,write (TEST_LDFLAGS_store): while a
 * fault is armed, the calls on a file whose name contains the pattern (or
 * "DIR": on a directory) fail with its errno; everything else passes. */
static const char *fsync_fault, *write_fault;
static int rename_fault; /* errno for every rename, 0: none */

int __real_fsync(int fd);
ssize_t __real_write(int fd, const void *buf, size_t len);
int __wrap_fsync(int fd);
int __real_rename(const char *oldpath, const char *newpath);
int __wrap_rename(const char *oldpath, const char *newpath);
ssize_t __wrap_write(int fd, const void *buf, size_t len);

static bool fd_is(int fd, const char *pattern)
{
	char link[64], path[PATH_MAX];
	struct stat st;
	ssize_t n;
	const char *base;

	if (strcmp(pattern, "DIR") == 0)
		return fstat(fd, &st) == 0 && S_ISDIR(st.st_mode);
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, path, sizeof(path) - 1);
	if (n <= 0)
		return false;
	path[n] = '\0';
	base = strrchr(path, '/');
	return strstr(base ? base + 1 : path, pattern) != NULL;
}

int __wrap_fsync(int fd)
{
	if (fsync_fault && fd_is(fd, fsync_fault)) {
		errno = EIO;
		return -1;
	}
	return __real_fsync(fd);
}

/* state.json is published by core/io's tempfile (rename, replacing). */
int __wrap_rename(const char *oldpath, const char *newpath)
{
	if (rename_fault) {
		errno = rename_fault;
		return -1;
	}
	return __real_rename(oldpath, newpath);
}

ssize_t __wrap_write(int fd, const void *buf, size_t len)
{
	if (write_fault && fd_is(fd, write_fault)) {
		errno = ENOSPC;
		return -1;
	}
	return __real_write(fd, buf, len);
}
#define NCL 5

static const char *root(void **state)
{
	return ((struct tdir *)*state)->path;
}

/* DIR/s/name, to free */
static char *spath(void **state, const char *name)
{
	char *p = NULL;

	assert_true(asprintf(&p, "%s/s/%s", root(state), name) > 0);
	return p;
}

static bool sexists(void **state, const char *name)
{
	char *p = spath(state, name);
	struct stat st;
	bool ok = lstat(p, &st) == 0;

	free(p);
	return ok;
}

static struct vb_state *open_w(void **state)
{
	struct vb_error err = { 0 };
	struct vb_state *s = vb_state_open(root(state), "s", &err);

	if (!s)
		print_error("vb_state_open: %s\n", err.msg);
	assert_non_null(s);
	return s;
}

/* A bitmap file of nbits with the bits of mask set (bit i of mask: cluster i). */
static char *bitmap_file(struct vb_state *s, uint64_t nbits, unsigned mask)
{
	struct bitmap *b = bitmap_new(nbits);
	struct vb_error err = { 0 };
	uint8_t *enc;
	size_t len;
	char *name = NULL;

	assert_non_null(b);
	for (unsigned i = 0; i < nbits && i < 32; i++)
		if (mask & (1u << i))
			assert_int_equal(bitmap_set_range(b, i, 1), 0);
	assert_int_equal(bitmap_encode(b, &enc, &len), 0);
	assert_int_equal(vb_state_write_file(s, "bitmap", enc, len, &name, &err), 0);
	free(enc);
	bitmap_free(b);
	return name;
}

/* The digest of cluster i of a test drive: all bytes i+seed. */
static void fake_digest(unsigned i, unsigned seed, uint8_t out[DIGEST_LEN])
{
	memset(out, (int)(i + seed), DIGEST_LEN);
}

/* A digest map of the test drive (NCL clusters). */
static char *digest_file(struct vb_state *s, unsigned seed)
{
	struct vb_error err = { 0 };
	char *name = NULL;
	int fd = vb_state_create_file(s, "digests", &name, &err);
	struct digest_writer *w;
	uint8_t d[DIGEST_LEN];

	assert_true(fd >= 0);
	w = digest_writer_new(SZ, vb_fd_write_cb, &fd);
	assert_non_null(w);
	for (unsigned i = 0; i < NCL; i++) {
		fake_digest(i, seed, d);
		assert_int_equal(digest_writer_add(w, d), 0);
	}
	assert_int_equal(digest_writer_finish(w, NULL), 0);
	digest_writer_free(w);
	assert_int_equal(close(fd), 0);
	return name;
}

/* Commits a checkpoint of one drive "a" with a bitmap of mask (and a digest
 * map when seed != 0). */
static void commit_ck(struct vb_state *s, const char *name, const char *kind, const char *parent,
		      const char *uuid, const char *base, unsigned mask, unsigned seed)
{
	struct vb_error err = { 0 };
	struct vb_ckpt_drive d = { .name = "a", .size = SZ, .source = "/dev/x" };
	struct vb_ckpt c = { .name = (char *)name, .kind = ts_kind(kind), .parent = (char *)parent,
			     .uuid = (char *)uuid, .base_uuid = (char *)base, .time = 1704067200,
			     .ndrives = 1, .drives = &d };

	d.bitmap = bitmap_file(s, NCL, mask);
	d.digests = seed ? digest_file(s, seed) : NULL;
	if (vb_state_commit(s, &c, false, &err) < 0)
		print_error("commit: %s\n", err.msg);
	assert_int_equal(err.cls, VB_OK);
	free(d.bitmap);
	free(d.digests);
}

static struct bitmap *load_bm(struct vb_state *s, const char *file)
{
	struct vb_error err = { 0 };
	struct bitmap *b = NULL;

	assert_int_equal(vb_state_load_bitmap(s, file, &b, &err), 0);
	return b;
}

/* ============================================================== names */

static void test_file_names(void **state)
{
	(void)state;
	assert_true(st_file_name_ok("bitmap-0123456789abcdef.bin"));
	assert_true(st_file_name_ok("anything.else"));
	assert_false(st_file_name_ok(NULL));
	assert_false(st_file_name_ok(""));
	assert_false(st_file_name_ok(STATE_FILE));
	assert_false(st_file_name_ok(LOCK_FILE));
	assert_false(st_file_name_ok("../bitmap-0123456789abcdef.bin"));
	assert_false(st_file_name_ok("a/b"));
	assert_false(st_file_name_ok(".."));
	assert_false(st_file_name_ok("x\ny"));
}

static void test_gc_patterns(void **state)
{
	const char *ours[] = { "bitmap-0123456789abcdef.bin", "digests-ffffffffffffffff.bin",
			       "manifest-0000000000000000.bin", "adigests-a1b2c3d4e5f60718.bin",
			       ".state.json.Ab12Zz", ".state.json" VB_TEMPFILE_MARK "xY12ab" };
	const char *not_ours[] = { "bitmap-0123456789ABCDEF.bin", "bitmap-0123456789abcde.bin",
				   "bitmap-0123456789abcdef0.bin", "bitmap-0123456789abcdeg.bin",
				   "bitmap_0123456789abcdef.bin", "other-0123456789abcdef.bin",
				   "bitmap-0123456789abcdef.bin.x", "bitmap-0123456789abcdef.txt",
				   ".state.json.abc", ".state.json.abc-12", ".state.json.abcdefg",
				   "state.json", "lock", "notes.txt", ".bitmap-0123456789abcdef.bin",
				   ".other.vbtmp.xY12ab" };

	(void)state;
	for (size_t i = 0; i < sizeof(ours) / sizeof(ours[0]); i++)
		assert_true(st_gc_pattern(ours[i]));
	for (size_t i = 0; i < sizeof(not_ours) / sizeof(not_ours[0]); i++) {
		if (st_gc_pattern(not_ours[i]))
			fail_msg("'%s' taken for vmaback's own file", not_ours[i]);
	}
}

static void test_bad_set_names(void **state)
{
	const char *bad[] = { "", "../x", "a/b", ".s", "-s" };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct vb_error err = { 0 };

		assert_null(vb_state_open(root(state), bad[i], &err));
		assert_int_equal(err.cls, VB_E_USAGE);
		vb_error_clear(&err);
		assert_null(vb_state_open_read(root(state), bad[i], &err));
		assert_int_equal(err.cls, VB_E_USAGE);
	}
	assert_int_equal(count_entries(root(state)), 0); /* nothing made */
}

static void test_default_dir(void **state)
{
	char *d;

	(void)state;
	setenv("XDG_STATE_HOME", "/xdg", 1);
	d = vb_state_default_dir();
	assert_non_null(d);
	assert_string_equal(d, geteuid() == 0 ? "/var/lib/vmaback" : "/xdg/vmaback");
	free(d);
	if (geteuid() != 0) {
		setenv("XDG_STATE_HOME", "relative", 1); /* ignored */
		setenv("HOME", "/home/u", 1);
		d = vb_state_default_dir();
		assert_string_equal(d, "/home/u/.local/state/vmaback");
		free(d);
	}
	unsetenv("XDG_STATE_HOME");
}

static void test_output_inside_state_dir(void **state)
{
	struct vb_error err = { 0 };
	char *sdir = tpath(state, "s"), *in = spath(state, "x.vma"), *deep = NULL;
	char *beside = tpath(state, "s2/x.vma"), *s2 = tpath(state, "s2");

	assert_int_equal(mkdir(sdir, 0700), 0);
	assert_int_equal(mkdir(s2, 0700), 0);
	assert_true(asprintf(&deep, "%s/sub", sdir) > 0);
	assert_int_equal(mkdir(deep, 0700), 0);
	free(deep);
	deep = spath(state, "sub/y.log");
	assert_int_equal(vb_state_dir_check_output(sdir, "--log-file", in, &err), -1);
	assert_int_equal(err.cls, VB_E_USAGE);
	assert_non_null(strstr(err.msg, "--log-file"));
	vb_error_clear(&err);
	assert_int_equal(vb_state_dir_check_output(sdir, "-o", deep, &err), -1);
	vb_error_clear(&err);
	/* "s2" shares the prefix "s" but is not inside */
	assert_int_equal(vb_state_dir_check_output(sdir, "-o", beside, &err), 0);
	assert_int_equal(vb_state_dir_check_output(sdir, "-o", "/nonexistent/dir/x", &err), 0);
	assert_int_equal(vb_state_dir_check_output(NULL, "-o", in, &err), 0);
	assert_int_equal(err.cls, VB_OK);
	free(sdir);
	free(in);
	free(deep);
	free(beside);
	free(s2);
}

/* ============================================================== codec */

static const char good_state[] =
	"{ \"format\": \"vmaback-state\", \"version\": 1, \"set\": \"s\",\n"
	"  \"checkpoints\": [\n"
	"    { \"name\": \"c1\", \"time\": 1704067200, \"kind\": \"full\", \"parent\": null,\n"
	"      \"uuid\": \"u1\", \"base_uuid\": null, \"archive\": \"/b/c1 \\\"q\\\".vma\",\n"
	"      \"archive_sha256\": \"ab\", \"archive_size\": 4096,\n"
	"      \"drives\": [ { \"name\": \"caf\xc3\xa9/x\", \"size\": 65536, \"source\": \"/dev/a\",\n"
	"                    \"bitmap\": \"bitmap-0000000000000001.bin\", \"digests\": null,\n"
	"                    \"digest_root\": \"00\" } ] },\n"
	"    { \"name\": \"c2\", \"time\": 1704153600, \"kind\": \"incremental\",\n"
	"      \"parent\": \"c1\", \"uuid\": \"u2\", \"base_uuid\": \"u1\", \"archive\": null,\n"
	"      \"archive_sha256\": null,\n"
	"      \"drives\": [ { \"name\": \"a\", \"size\": 131072, \"source\": null,\n"
	"                    \"bitmap\": \"bitmap-0000000000000002.bin\",\n"
	"                    \"digests\": \"digests-0000000000000002.bin\",\n"
	"                    \"digest_root\": \"11\",\n"
	"                    \"archive_digests\": \"adigests-0000000000000002.bin\" },\n"
	"                  { \"name\": \"b\", \"size\": 512,\n"
	"                    \"bitmap\": \"bitmap-0000000000000003.bin\" } ] } ],\n"
	"  \"retired\": [ { \"name\": \"c0\", \"time\": 1, \"kind\": \"full\", \"uuid\": \"u0\",\n"
	"                 \"drives\": [] } ],\n"
	"  \"pending\": { \"name\": \"c3\", \"time\": 3, \"kind\": \"differential\",\n"
	"                \"uuid\": \"u3\", \"base_uuid\": \"u1\", \"drives\": [] },\n"
	"  \"manifests\": [ \"manifest-0000000000000001.bin\" ],\n"
	"  \"pruned\": [ { \"checkpoint\": \"old\", \"uuid\": \"u-old\", \"archive\": null } ] }\n";

/* What the codec writes, it reads back to the same state and the same text. */
static void test_codec_round_trip(void **state)
{
	struct vb_error err = { 0 };
	struct vb_state *s = vb_state_parse("s", good_state, strlen(good_state), &err), *s2;
	const struct vb_ckpt *c;
	char *t1, *t2;

	(void)state;
	assert_non_null(s);
	assert_int_equal(vb_state_count(s), 2);
	c = vb_state_get(s, 0);
	assert_string_equal(c->archive, "/b/c1 \"q\".vma");
	assert_int_equal(c->archive_size, 4096);
	assert_null(c->parent);
	assert_string_equal(c->drives[0].name, "caf\xc3\xa9/x");
	assert_null(c->drives[0].digests);
	c = vb_state_latest(s);
	assert_string_equal(c->parent, "c1");
	assert_int_equal(c->ndrives, 2);
	assert_string_equal(c->drives[0].archive_digests, "adigests-0000000000000002.bin");
	assert_null(c->drives[1].source);
	assert_int_equal(c->drives[1].size, 512);
	assert_int_equal(vb_state_retired_count(s), 1);
	assert_string_equal(vb_state_pending(s)->name, "c3");
	assert_ptr_equal(vb_state_by_uuid(s, "u0"), vb_state_retired_get(s, 0));
	assert_ptr_equal(vb_state_by_uuid(s, "u3"), vb_state_pending(s));
	assert_null(vb_state_by_uuid(s, "u9"));
	assert_null(vb_state_find(s, "c0")); /* retired: no checkpoint */
	assert_int_equal(vb_state_pruned_count(s), 1);
	assert_string_equal(vb_state_pruned_get(s, 0)->uuid, "u-old");
	assert_null(vb_state_pruned_get(s, 0)->archive);
	t1 = vb_state_text(s);
	assert_non_null(t1);
	s2 = vb_state_parse("s", t1, strlen(t1), &err);
	assert_non_null(s2);
	t2 = vb_state_text(s2);
	assert_string_equal(t1, t2);
	assert_int_equal(vb_state_count(s2), 2);
	assert_string_equal(vb_state_get(s2, 0)->drives[0].name, "caf\xc3\xa9/x");
	assert_string_equal(vb_state_get(s2, 0)->archive, "/b/c1 \"q\".vma");
	assert_int_equal(vb_state_get(s2, 1)->archive_size, 0); /* absent stays absent */
	assert_null(strstr(t1, "\\/")); /* slashes are not escaped */
	free(t1);
	free(t2);
	vb_state_close(s);
	vb_state_close(s2);
}

/* Replaces the first occurrence of from in good_state by to. */
static char *mutate(const char *from, const char *to)
{
	const char *at = strstr(good_state, from);
	char *out = NULL;

	assert_non_null(at);
	assert_true(asprintf(&out, "%.*s%s%s", (int)(at - good_state), good_state, to,
			     at + strlen(from)) > 0);
	return out;
}

static void test_codec_rejects(void **state)
{
	static const struct {
		const char *from, *to, *says;
	} bad[] = {
		{ "{ \"format\"", "[ \"format\"", "not valid JSON" },
		{ "\"pruned\"", "\"pruned\" ", NULL }, /* control: still good */
		{ "} ] }\n", "} ] } }", "not valid JSON" },
		{ "} ] }\n", "} ] } x", "not valid JSON" },
		{ "\"vmaback-state\"", "\"vmaback-manifest\"", "not a vmaback state file" },
		{ "\"version\": 1", "\"version\": \"1\"", "not a vmaback state file" },
		{ "\"version\": 1", "\"version\": 2", "newer vmaback" },
		{ "\"set\": \"s\"", "\"set\": \"t\"", "belongs to set 't'" },
		{ "\"set\": \"s\"", "\"set\": 5", "belongs to set '?'" },
		{ "\"checkpoints\": [", "\"checkpoints\": 1, \"x\": [", "bad checkpoint" },
		{ "\"uuid\": \"u1\"", "\"uuid\": 1", "bad checkpoint" },
		{ "\"time\": 1704067200", "\"time\": \"now\"", "bad checkpoint" },
		{ "\"kind\": \"full\", \"parent\"", "\"kind\": null, \"parent\"", "bad checkpoint" },
		{ "\"kind\": \"full\", \"parent\"", "\"kind\": \"partial\", \"parent\"",
		  "bad checkpoint" },
		{ "\"size\": 65536", "\"size\": 0", "bad checkpoint" },
		{ "\"size\": 65536", "\"size\": -1", "bad checkpoint" },
		{ "\"size\": 65536", "\"size\": 1.5", "bad checkpoint" },
		{ "\"bitmap-0000000000000001.bin\"", "\"../bitmap-0000000000000001.bin\"",
		  "bad checkpoint" },
		{ "\"bitmap-0000000000000001.bin\"", "\"state.json\"", "bad checkpoint" },
		{ "\"bitmap-0000000000000001.bin\"", "null", "bad checkpoint" },
		{ "\"digests-0000000000000002.bin\"", "\"/etc/passwd\"", "bad checkpoint" },
		{ "\"adigests-0000000000000002.bin\"", "\"lock\"", "bad checkpoint" },
		{ "\"archive_size\": 4096", "\"archive_size\": 0", "bad checkpoint" },
		{ "\"archive_size\": 4096", "\"archive_size\": \"4096\"", "bad checkpoint" },
		{ "\"retired\": [", "\"retired\": {}, \"r\": [", "bad checkpoint" },
		{ "\"uuid\": \"u0\"", "\"uuid\": []", "bad checkpoint" },
		{ "\"uuid\": \"u3\"", "\"uuid\": false", "bad checkpoint" },
		{ "[ \"manifest-0000000000000001.bin\" ]", "[ \"a/b\" ]", "bad checkpoint" },
		{ "[ \"manifest-0000000000000001.bin\" ]", "[ null ]", "bad checkpoint" },
		{ "\"pruned\": [", "\"pruned\": 7, \"p\": [", "bad checkpoint" },
		{ "\"uuid\": \"u-old\"", "\"uid\": \"u-old\"", "bad checkpoint" },
		{ "\"drives\": [] } ],", "\"drives\": {} } ],", "bad checkpoint" },
	};
	struct vb_error err = { 0 };
	struct vb_state *s;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *text = mutate(bad[i].from, bad[i].to);

		vb_error_clear(&err);
		s = vb_state_parse("s", text, strlen(text), &err);
		if (!bad[i].says) {
			assert_non_null(s);
			vb_state_close(s);
		} else {
			if (s)
				fail_msg("accepted: %s -> %s", bad[i].from, bad[i].to);
			assert_int_equal(err.cls, VB_E_INVALID);
			if (!strstr(err.msg, bad[i].says))
				fail_msg("case %zu: '%s' does not say '%s'", i, err.msg, bad[i].says);
		}
		free(text);
	}
	/* a NUL inside the text, the empty text */
	{
		size_t len = strlen(good_state);
		char *text = malloc(len + 2);

		memcpy(text, good_state, len);
		text[len] = '\0';
		text[len + 1] = '\0';
		vb_error_clear(&err);
		assert_null(vb_state_parse("s", text, len + 1, &err));
		assert_int_equal(err.cls, VB_E_INVALID);
		free(text);
		vb_error_clear(&err);
		assert_null(vb_state_parse("s", "", 0, &err));
		assert_int_equal(err.cls, VB_E_INVALID);
	}
}

/* A damaged state.json on disk: open refuses it and deletes nothing (what
 * it would name cannot be known). */
static void test_damaged_state_file_keeps_files(void **state)
{
	struct vb_state *s = open_w(state);
	struct vb_error err = { 0 };
	char *sj = spath(state, STATE_FILE);
	char *leftover;

	commit_ck(s, "c1", "full", NULL, "u1", NULL, 0x1f, 0);
	leftover = bitmap_file(s, 4, 1); /* unreferenced */
	vb_state_close(s);
	write_file(sj, "{\"format\": \"vmaback-state\", ", 28);
	s = vb_state_open(root(state), "s", &err);
	assert_null(s);
	assert_int_equal(err.cls, VB_E_INVALID);
	assert_non_null(strstr(err.msg, "damaged"));
	assert_true(sexists(state, leftover));
	vb_error_clear(&err);
	assert_null(vb_state_open_read(root(state), "s", &err));
	assert_int_equal(err.cls, VB_E_INVALID);
	free(leftover);
	free(sj);
}

/* A state.json (or a bitmap) larger than ST_MAX_FILE never sizes an
 * allocation: it is refused as damaged before it is read. */
static void test_state_file_too_large(void **state)
{
	struct vb_state *s = open_w(state);
	struct vb_error err = { 0 };
	char *sj = spath(state, STATE_FILE);

	commit_ck(s, "c1", "full", NULL, "u1", NULL, 0x1f, 0);
	vb_state_close(s);
	assert_int_equal(truncate(sj, ST_MAX_FILE + 1), 0);
	assert_null(vb_state_open_read(root(state), "s", &err));
	assert_int_equal(err.cls, VB_E_INVALID);
	assert_non_null(strstr(err.msg, "state.json: damaged: larger than 64 MiB"));
	free(sj);
}

/* ============================================================== lock */

static void test_lock_exclusion(void **state)
{
	struct vb_error err = { 0 };
	struct vb_state *w = open_w(state), *r1, *r2;
	char *lock = spath(state, LOCK_FILE), pid[32], *text;
	size_t len;

	/* the holder's pid is in the lock, named by the refusal */
	text = (char *)read_file(lock, &len);
	snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	assert_int_equal(len, strlen(pid));
	assert_memory_equal(text, pid, len);
	free(text);
	assert_null(vb_state_open(root(state), "s", &err));
	assert_int_equal(err.cls, VB_E_LOCKED);
	pid[strlen(pid) - 1] = '\0';
	assert_non_null(strstr(err.msg, pid));
	assert_non_null(strstr(err.msg, "'s' is locked"));
	vb_error_clear(&err);
	assert_null(vb_state_open_read(root(state), "s", &err));
	assert_int_equal(err.cls, VB_E_LOCKED);
	vb_error_clear(&err);
	vb_state_close(w);
	/* released and cleared: readers share it, a writer waits for them */
	text = (char *)read_file(lock, &len);
	assert_int_equal(len, 0);
	free(text);
	r1 = vb_state_open_read(root(state), "s", &err);
	r2 = vb_state_open_read(root(state), "s", &err);
	assert_non_null(r1);
	assert_non_null(r2);
	assert_null(vb_state_open(root(state), "s", &err));
	assert_int_equal(err.cls, VB_E_LOCKED);
	vb_error_clear(&err);
	vb_state_close(r1);
	vb_state_close(r2);
	w = open_w(state);
	vb_state_close(w);
	free(lock);
}

/* Held by someone whose pid in the file does not run: no pid is named. */
static void test_lock_stale_pid_not_named(void **state)
{
	struct vb_error err = { 0 };
	struct vb_state *w = open_w(state);
	char *lock = spath(state, LOCK_FILE);
	int fd;

	vb_state_close(w);
	fd = open(lock, O_RDWR | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(flock(fd, LOCK_EX), 0);
	assert_int_equal(write(fd, "2147483646\n", 11), 11);
	assert_null(vb_state_open(root(state), "s", &err));
	assert_int_equal(err.cls, VB_E_LOCKED);
	assert_null(strstr(err.msg, "pid"));
	close(fd);
	free(lock);
}

/* A FIFO planted as the lock neither blocks nor is taken for a lock. */
static void test_lock_not_regular(void **state)
{
	struct vb_error err = { 0 };
	char *sdir = tpath(state, "s"), *lock = spath(state, LOCK_FILE);

	assert_int_equal(mkdir(sdir, 0700), 0);
	assert_int_equal(mkfifo(lock, 0600), 0);
	assert_null(vb_state_open(root(state), "s", &err));
	assert_int_equal(err.cls, VB_E_FAIL);
	assert_non_null(strstr(err.msg, "not a regular file"));
	vb_error_clear(&err);
	assert_null(vb_state_open_read(root(state), "s", &err));
	assert_non_null(strstr(err.msg, "not a regular file"));
	free(sdir);
	free(lock);
}

/* A reader of a set that has no directory sees an empty chain, makes
 * nothing, and cannot write. */
static void test_reader_creates_nothing(void **state)
{
	struct vb_error err = { 0 };
	struct vb_state *r = vb_state_open_read(root(state), "s", &err);
	struct vb_ckpt_drive d = { .name = "a", .size = SZ, .bitmap = "bitmap-0000000000000000.bin" };
	struct vb_ckpt c = { .name = "c1", .kind = VB_KIND_FULL, .uuid = "u1", .ndrives = 1,
			     .drives = &d };
	char *name = NULL;

	assert_non_null(r);
	assert_int_equal(vb_state_count(r), 0);
	assert_null(vb_state_latest(r));
	assert_null(vb_state_pending(r));
	assert_int_equal(count_entries(root(state)), 0);
	vb_state_close(r);
	/* with a directory: still nothing written through a reader */
	vb_state_close(open_w(state));
	r = vb_state_open_read(root(state), "s", &err);
	assert_non_null(r);
	assert_int_equal(vb_state_create_file(r, "bitmap", &name, &err), -1);
	assert_non_null(strstr(err.msg, "reading only"));
	vb_error_clear(&err);
	assert_int_equal(vb_state_commit(r, &c, false, &err), -1);
	assert_non_null(strstr(err.msg, "reading only"));
	assert_int_equal(vb_state_count(r), 0);
	assert_false(sexists(state, STATE_FILE));
	vb_state_close(r);
}

/* ============================================================== directories */

/* A user's directory is never made a state; nothing is created in it. */
static void test_refuses_foreign_directory(void **state)
{
	struct vb_error err = { 0 };
	char *sdir = tpath(state, "s"), *mine = spath(state, "notes.txt");

	assert_int_equal(mkdir(sdir, 0700), 0);
	write_file(mine, "mine", 4);
	assert_null(vb_state_open(root(state), "s", &err));
	assert_int_equal(err.cls, VB_E_USAGE);
	assert_non_null(strstr(err.msg, "notes.txt"));
	assert_non_null(strstr(err.msg, "not the state directory"));
	assert_int_equal(count_entries(sdir), 1);
	free(sdir);
	free(mine);
}

static void test_refuses_writable_directories(void **state)
{
	struct vb_error err = { 0 };
	char *sdir = tpath(state, "s");

	vb_state_close(open_w(state));
	assert_int_equal(chmod(sdir, 0770), 0);
	assert_null(vb_state_open(root(state), "s", &err));
	assert_int_equal(err.cls, VB_E_USAGE);
	assert_non_null(strstr(err.msg, "writable by its group"));
	vb_error_clear(&err);
	assert_null(vb_state_open_read(root(state), "s", &err));
	assert_int_equal(err.cls, VB_E_USAGE);
	vb_error_clear(&err);
	assert_int_equal(chmod(sdir, 0700), 0);
	assert_int_equal(chmod(root(state), 0777), 0);
	assert_null(vb_state_open(root(state), "s", &err));
	assert_non_null(strstr(err.msg, "writable by everyone"));
	assert_int_equal(chmod(root(state), 0700), 0);
	free(sdir);
}

/* ============================================================== garbage */

static void test_gc_own_patterns_only(void **state)
{
	struct vb_state *s = open_w(state);
	char *stray = NULL, *user = spath(state, "keep.txt"), *upper, *sub, *link;
	char *tmpj = spath(state, ".state.json.Ab12Cd"), *bitmap;
	char *target = tpath(state, "target.bin");
	struct stat st;

	commit_ck(s, "c1", "full", NULL, "u1", NULL, 0x1f, 0);
	bitmap = strdup(vb_state_latest(s)->drives[0].bitmap);
	stray = bitmap_file(s, 4, 1);
	vb_state_close(s);
	upper = spath(state, "bitmap-0123456789ABCDEF.bin");
	sub = spath(state, "manifest-0123456789abcdef.bin");
	link = spath(state, "digests-0123456789abcdef.bin");
	write_file(user, "u", 1);
	write_file(upper, "u", 1);
	write_file(tmpj, "{", 1);
	write_file(target, "t", 1);
	assert_int_equal(mkdir(sub, 0700), 0);
	assert_int_equal(symlink(target, link), 0);

	s = open_w(state);
	assert_non_null(strstr(WARNINGS(s), "removed 2 leftover files"));
	assert_int_equal(s->warn.n, 1);
	assert_int_equal(s->warn.q[0].kind, VB_WARN_LEFTOVER);
	assert_false(sexists(state, stray));
	assert_false(sexists(state, ".state.json.Ab12Cd"));
	assert_true(sexists(state, bitmap));       /* named by state.json */
	assert_true(sexists(state, "keep.txt"));   /* not a name of ours */
	assert_true(sexists(state, "bitmap-0123456789ABCDEF.bin"));
	assert_int_equal(stat(sub, &st), 0);       /* a directory, not a file of ours */
	assert_int_equal(lstat(link, &st), 0);     /* a symlink is not followed or removed */
	assert_int_equal(stat(target, &st), 0);
	vb_state_close(s);
	s = open_w(state);
	assert_string_equal(WARNINGS(s), "");
	vb_state_close(s);
	free(stray);
	free(user);
	free(upper);
	free(sub);
	free(link);
	free(tmpj);
	free(bitmap);
	free(target);
}

/* A reader never collects, and a writer does not in a directory that held
 * neither state.json nor vmaback's lock before it came. */
static void test_gc_not_reader_not_foreign(void **state)
{
	struct vb_error err = { 0 };
	char *sdir = tpath(state, "s"), *f = spath(state, "bitmap-0123456789abcdef.bin");
	struct vb_state *s;

	assert_int_equal(mkdir(sdir, 0700), 0);
	write_file(f, "x", 1);
	s = vb_state_open_read(root(state), "s", &err);
	assert_non_null(s);
	vb_state_close(s);
	assert_true(sexists(state, "bitmap-0123456789abcdef.bin"));
	s = open_w(state); /* no state.json, no lock before: not ours to clean */
	assert_true(sexists(state, "bitmap-0123456789abcdef.bin"));
	assert_string_equal(WARNINGS(s), "");
	vb_state_close(s);
	/* with a state.json: the reader still leaves it */
	s = open_w(state);
	commit_ck(s, "c1", "full", NULL, "u1", NULL, 0x1f, 0);
	vb_state_close(s);
	write_file(f, "x", 1);
	s = vb_state_open_read(root(state), "s", &err);
	assert_non_null(s);
	vb_state_close(s);
	assert_true(sexists(state, "bitmap-0123456789abcdef.bin"));
	free(sdir);
	free(f);
}

/* ============================================================== commit */

static void test_commit_and_reopen(void **state)
{
	struct vb_state *s = open_w(state);
	const struct vb_ckpt *c;
	char *sj = spath(state, STATE_FILE);
	struct stat st;
	struct bitmap *b;
	size_t manifests = 0;
	DIR *d;
	struct dirent *e;

	commit_ck(s, "c1", "full", NULL, "u1", NULL, 0x1f, 1);
	assert_non_null(vb_state_latest(s)->drives[0].digests);
	commit_ck(s, "c2", "incremental", "c1", "u2", "u1", 0x2, 2);
	/* only the latest keeps its digest map */
	assert_null(vb_state_get(s, 0)->drives[0].digests);
	assert_non_null(vb_state_get(s, 1)->drives[0].digests);
	vb_state_close(s);
	assert_int_equal(stat(sj, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);

	s = open_w(state);
	assert_int_equal(vb_state_count(s), 2);
	c = vb_state_latest(s);
	assert_string_equal(c->name, "c2");
	assert_string_equal(c->parent, "c1");
	assert_string_equal(c->base_uuid, "u1");
	assert_string_equal(c->drives[0].source, "/dev/x");
	assert_int_equal(c->drives[0].size, SZ);
	assert_ptr_equal(vb_state_find(s, "c1"), vb_state_get(s, 0));
	assert_ptr_equal(vb_state_by_uuid(s, "u2"), c);
	assert_null(vb_state_find(s, "c3"));
	assert_null(vb_state_get(s, 2));
	b = load_bm(s, c->drives[0].bitmap);
	assert_int_equal(bitmap_size(b), NCL);
	assert_int_equal(bitmap_count(b), 1);
	assert_true(bitmap_test(b, 1));
	bitmap_free(b);
	/* the c1's digest map was collected, c2's kept */
	assert_null(vb_state_get(s, 0)->drives[0].digests);
	assert_true(sexists(state, c->drives[0].digests));
	vb_state_close(s);

	/* one manifest per commit */
	sj[strlen(sj) - strlen(STATE_FILE)] = '\0';
	d = opendir(sj);
	assert_non_null(d);
	while ((e = readdir(d)))
		if (strncmp(e->d_name, "manifest-", 9) == 0)
			manifests++;
	closedir(d);
	assert_int_equal(manifests, 2);
	free(sj);
}

static void test_state_files(void **state)
{
	struct vb_error err = { 0 };
	struct vb_state *s = open_w(state);
	char *name = NULL, *path;
	struct stat st;
	struct bitmap *b = NULL;
	int fd;

	commit_ck(s, "c1", "full", NULL, "u1", NULL, 0x1f, 0);
	assert_int_equal(vb_state_write_file(s, "bitmap", "junk", 4, &name, &err), 0);
	assert_true(st_gc_pattern(name));
	path = spath(state, name);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	/* a file that is not a bitmap, a name state.json may not give */
	assert_int_equal(vb_state_load_bitmap(s, name, &b, &err), -1);
	assert_int_equal(err.cls, VB_E_INVALID);
	assert_null(b);
	vb_error_clear(&err);
	assert_int_equal(vb_state_load_bitmap(s, "../x", &b, &err), -1);
	assert_int_equal(err.cls, VB_E_INVALID);
	vb_error_clear(&err);
	assert_int_equal(vb_state_open_file(s, LOCK_FILE, &err), -1);
	assert_non_null(strstr(err.msg, "bad file name"));
	vb_error_clear(&err);
	assert_int_equal(vb_state_open_file(s, "bitmap-0000000000000000.bin", &err), -1);
	assert_non_null(strstr(err.msg, "damaged"));
	vb_error_clear(&err);
	fd = vb_state_open_file(s, name, &err);
	assert_true(fd >= 0);
	close(fd);
	/* unlink removes only a file name of the state directory */
	vb_state_unlink(s, name);
	assert_int_equal(stat(path, &st), -1);
	vb_state_unlink(s, STATE_FILE);
	vb_state_unlink(s, NULL);
	vb_state_unlink(s, "../s/" STATE_FILE);
	assert_true(sexists(state, STATE_FILE));
	assert_true(sexists(state, LOCK_FILE));
	vb_state_close(s);
	free(name);
	free(path);
}

/* ============================================================== pending */

static void test_pending_commit(void **state)
{
	struct vb_error err = { 0 };
	struct vb_state *s = open_w(state);
	char *arch = tpath(state, "c2.vma");
	struct vb_ckpt_drive d = { .name = "a", .size = SZ };
	/* SHA-256 of "archive" */
	struct vb_ckpt c = { .name = "c2", .kind = VB_KIND_INCREMENTAL, .parent = "c1", .uuid = "u2",
			     .base_uuid = "u1", .time = 5, .ndrives = 1, .drives = &d,
			     .archive = arch, .archive_size = 7,
			     .archive_sha256 = "0eb3e36bfb24dcd9bb1d1bece1531216b59539a8fde17ee8"
					       "0224af0653c92aa3" };

	commit_ck(s, "c1", "full", NULL, "u1", NULL, 0x1f, 0);
	write_file(arch, "archive", 7);
	d.bitmap = bitmap_file(s, NCL, 0x4);
	assert_int_equal(vb_state_commit(s, &c, true, &err), 0);
	assert_string_equal(vb_state_pending(s)->name, "c2");
	assert_string_equal(vb_state_latest(s)->name, "c1");
	vb_state_close(s);

	s = open_w(state);
	assert_non_null(vb_state_pending(s));
	assert_int_equal(vb_state_count(s), 1);
	assert_true(sexists(state, d.bitmap)); /* the pending one's files are kept */
	assert_int_equal(vb_state_commit_pending(s, "c9", &err), -1);
	assert_int_equal(err.cls, VB_E_USAGE);
	assert_non_null(strstr(err.msg, "(pending: c2)"));
	vb_error_clear(&err);
	/* the archive changed since: nothing changes */
	write_file(arch, "archivX", 7);
	assert_int_equal(vb_state_commit_pending(s, "c2", &err), -1);
	assert_int_equal(err.cls, VB_E_INVALID);
	assert_non_null(strstr(err.msg, "was not committed"));
	vb_error_clear(&err);
	write_file(arch, "archive+", 8);
	assert_int_equal(vb_state_commit_pending(s, "c2", &err), -1);
	assert_non_null(strstr(err.msg, "8 bytes, expected 7"));
	vb_error_clear(&err);
	unlink(arch);
	assert_int_equal(vb_state_commit_pending(s, "c2", &err), -1);
	assert_int_equal(err.cls, VB_E_INVALID);
	vb_error_clear(&err);
	vb_state_close(s);
	s = open_w(state);
	assert_non_null(vb_state_pending(s));
	assert_int_equal(vb_state_count(s), 1);
	write_file(arch, "archive", 7);
	assert_int_equal(vb_state_commit_pending(s, "c2", &err), 0);
	assert_null(vb_state_pending(s));
	assert_string_equal(vb_state_latest(s)->name, "c2");
	assert_int_equal(vb_state_commit_pending(s, "c2", &err), -1); /* none left */
	assert_int_equal(err.cls, VB_E_USAGE);
	vb_error_clear(&err);
	vb_state_close(s);
	s = open_w(state);
	assert_int_equal(vb_state_count(s), 2);
	assert_null(vb_state_pending(s));
	vb_state_close(s);
	free(d.bitmap);
	free(arch);
}

/* A newer backup replaces a pending checkpoint, and says so. */
static void test_pending_replaced(void **state)
{
	struct vb_error err = { 0 };
	struct vb_state *s = open_w(state);
	struct vb_ckpt_drive d = { .name = "a", .size = SZ };
	struct vb_ckpt c = { .name = "p1", .kind = VB_KIND_FULL, .uuid = "up", .ndrives = 1,
			     .drives = &d };

	d.bitmap = bitmap_file(s, NCL, 0x1f);
	assert_int_equal(vb_state_commit(s, &c, true, &err), 0);
	commit_ck(s, "c1", "full", NULL, "u1", NULL, 0x1f, 0);
	assert_null(vb_state_pending(s));
	assert_non_null(strstr(WARNINGS(s), "discarded checkpoint p1"));
	assert_int_equal(s->warn.q[s->warn.n - 1].kind, VB_WARN_DISCARDED);
	vb_state_close(s);
	s = open_w(state);
	assert_null(vb_state_pending(s));
	assert_false(sexists(state, d.bitmap)); /* its bitmap went with it */
	vb_state_close(s);
	free(d.bitmap);
}

/* ============================================================== chain edits */

static void chain4(struct vb_state *s)
{
	commit_ck(s, "c1", "full", NULL, "u1", NULL, 0x1f, 0);
	commit_ck(s, "c2", "incremental", "c1", "u2", "u1", 0x2, 0);
	commit_ck(s, "c3", "incremental", "c2", "u3", "u2", 0x4, 0);
	commit_ck(s, "c4", "incremental", "c3", "u4", "u3", 0x8, 0);
}

static void test_remove(void **state)
{
	struct vb_error err = { 0 };
	struct vb_state *s = open_w(state);
	const struct vb_ckpt *c3;
	struct bitmap *b;

	chain4(s);
	assert_int_equal(vb_state_remove(s, "c4", &err), -1);
	assert_int_equal(err.cls, VB_E_USAGE);
	assert_non_null(strstr(err.msg, "latest"));
	vb_error_clear(&err);
	assert_int_equal(vb_state_remove(s, "c1", &err), -1);
	assert_int_equal(err.cls, VB_E_USAGE);
	assert_non_null(strstr(err.msg, "c2 ... c4 build on"));
	vb_error_clear(&err);
	assert_int_equal(vb_state_remove(s, "nope", &err), -1);
	assert_non_null(strstr(err.msg, "no checkpoint nope"));
	vb_error_clear(&err);
	assert_int_equal(vb_state_count(s), 4);

	assert_int_equal(vb_state_remove(s, "c2", &err), 0);
	vb_state_close(s);
	s = open_w(state);
	assert_int_equal(vb_state_count(s), 3);
	assert_null(vb_state_find(s, "c2"));
	c3 = vb_state_find(s, "c3");
	assert_string_equal(c3->parent, "c1");
	/* c3 now holds the changes since c1: its own and c2's */
	b = load_bm(s, c3->drives[0].bitmap);
	assert_true(bitmap_test(b, 1) && bitmap_test(b, 2));
	assert_int_equal(bitmap_count(b), 2);
	bitmap_free(b);
	/* c3's archive builds on c2's: the record stays, retired */
	assert_int_equal(vb_state_retired_count(s), 1);
	assert_string_equal(vb_state_by_uuid(s, "u2")->name, "c2");
	vb_state_close(s);
}

/* A bitmap of another size (the drive was resized) makes the child all
 * changed; a removed checkpoint nothing builds on is not retired. */
static void test_remove_resized(void **state)
{
	struct vb_error err = { 0 };
	struct vb_state *s = open_w(state);
	struct vb_ckpt_drive d = { .name = "a", .size = 3 * 65536 };
	struct vb_ckpt c = { .name = "c2", .kind = VB_KIND_INCREMENTAL, .parent = "c1", .uuid = "u2",
			     .base_uuid = "u1", .ndrives = 1, .drives = &d };
	struct bitmap *b;

	commit_ck(s, "c1", "full", NULL, "u1", NULL, 0x1f, 0);
	d.bitmap = bitmap_file(s, 3, 0x1);
	assert_int_equal(vb_state_commit(s, &c, false, &err), 0);
	commit_ck(s, "c3", "differential", "c2", "u3", "u1", 0x1, 0);
	assert_int_equal(vb_state_remove(s, "c2", &err), 0);
	assert_int_equal(vb_state_retired_count(s), 0);
	b = load_bm(s, vb_state_latest(s)->drives[0].bitmap);
	assert_int_equal(bitmap_count(b), NCL);
	bitmap_free(b);
	vb_state_close(s);
	free(d.bitmap);
}

/* ============================================================== archive check */

static void test_check_file(void **state)
{
	struct vb_error err = { 0 };
	char *f = tpath(state, "a.vma"), *fifo = tpath(state, "fifo");
	struct vb_ckpt c = { .name = "c1", .archive_size = 3,
			     /* SHA-256 of "abc" */
			     .archive_sha256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9c"
					       "b410ff61f20015ad" };

	assert_int_equal(vb_ckpt_check_archive(&c, &err), 0); /* no file: not ours to vouch */
	write_file(f, "abc", 3);
	assert_int_equal(vb_ckpt_check_file(&c, f, &err), 0);
	c.archive = f;
	assert_int_equal(vb_ckpt_check_archive(&c, &err), 0);
	write_file(f, "abd", 3);
	assert_int_equal(vb_ckpt_check_archive(&c, &err), -1);
	assert_int_equal(err.cls, VB_E_INVALID);
	assert_non_null(strstr(err.msg, "changed or replaced"));
	vb_error_clear(&err);
	c.archive_size = 0; /* an older state: the digest alone */
	assert_int_equal(vb_ckpt_check_archive(&c, &err), -1);
	vb_error_clear(&err);
	c.archive_size = 3;
	write_file(f, "ab", 2);
	assert_int_equal(vb_ckpt_check_archive(&c, &err), -1);
	assert_non_null(strstr(err.msg, "2 bytes, expected 3"));
	vb_error_clear(&err);
	unlink(f);
	assert_int_equal(vb_ckpt_check_archive(&c, &err), -1);
	assert_int_equal(err.cls, VB_E_INVALID);
	vb_error_clear(&err);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	assert_int_equal(vb_ckpt_check_file(&c, fifo, &err), -1);
	assert_int_equal(err.cls, VB_E_INVALID);
	assert_non_null(strstr(err.msg, "not a regular file"));
	vb_error_clear(&err);
	assert_int_equal(vb_ckpt_check_file(&c, root(state), &err), -1);
	assert_non_null(strstr(err.msg, "not a regular file"));
	c.archive_sha256 = NULL; /* nothing recorded: nothing to compare */
	assert_int_equal(vb_ckpt_check_file(&c, "/nonexistent", &err), 0);
	free(f);
	free(fifo);
}

/* ============================================================== archive digests */

static void check_adigests(struct vb_state *s, const struct vb_ckpt *c, unsigned mask,
			   unsigned seed)
{
	struct vb_error err = { 0 };
	struct vb_adigests a;
	uint8_t want[DIGEST_LEN];
	uint64_t n = 0;

	assert_non_null(c->drives[0].archive_digests);
	assert_int_equal(vb_adigests_load(s, c->drives[0].archive_digests, &a, &err), 0);
	assert_int_equal(a.size, SZ);
	for (unsigned i = 0; i < NCL + 2; i++) {
		const uint8_t *got = vb_adigests_find(&a, i);

		if (i < NCL && (mask & (1u << i))) {
			assert_non_null(got);
			fake_digest(i, seed, want);
			assert_memory_equal(got, want, DIGEST_LEN);
			n++;
		} else {
			assert_null(got);
		}
	}
	assert_int_equal(a.n, n);
	free(a.entries);
}

/* The digests of what each archive holds: all clusters of a full, the
 * changes of an incremental, the changes since the base of a differential. */
static void test_adigests_written(void **state)
{
	struct vb_state *s = open_w(state);

	commit_ck(s, "c1", "full", NULL, "u1", NULL, 0x1f, 1);
	check_adigests(s, vb_state_latest(s), 0x1f, 1);
	commit_ck(s, "c2", "incremental", "c1", "u2", "u1", 0x12, 2);
	check_adigests(s, vb_state_latest(s), 0x12, 2);
	commit_ck(s, "c3", "differential", "c2", "u3", "u1", 0x4, 3);
	check_adigests(s, vb_state_latest(s), 0x16, 3);
	vb_state_close(s);
	s = open_w(state); /* kept across the reopen, for each archive */
	check_adigests(s, vb_state_get(s, 0), 0x1f, 1);
	check_adigests(s, vb_state_get(s, 1), 0x12, 2);
	vb_state_close(s);
}

/* Damaged archive-digest files are refused, never misread. */
static void test_adigests_damaged(void **state)
{
	struct vb_error err = { 0 };
	struct vb_state *s = open_w(state);
	struct vb_adigests a;
	uint8_t *good, *bad;
	size_t len;
	char *path, *name = NULL;

	commit_ck(s, "c1", "full", NULL, "u1", NULL, 0x1f, 1);
	path = spath(state, vb_state_latest(s)->drives[0].archive_digests);
	good = read_file(path, &len);
	assert_int_equal(len, 24 + NCL * 40);
	bad = malloc(len + 40);
	struct {
		size_t len;
		size_t at;      /* byte to change (or len: none) */
		uint8_t to;
	} cases[] = {
		{ 0, 0, 0 }, { 23, 23, 0 }, { len, 0, 'X' } /* magic */,
		{ len - 1, len - 1, 0 } /* an entry cut short */,
		{ len - 40, len - 40, 0 } /* fewer entries than counted */,
		{ len, 16, NCL + 1 } /* count too high */,
		{ len, 21, 1 } /* count beyond any file */,
		{ len + 40, len, 0 } /* more entries than counted */,
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memcpy(bad, good, len);
		memset(bad + len, 0, 40);
		if (cases[i].at < cases[i].len)
			bad[cases[i].at] = cases[i].to;
		vb_error_clear(&err);
		assert_int_equal(vb_state_write_file(s, "adigests", bad, cases[i].len, &name, &err),
				 0);
		if (vb_adigests_load(s, name, &a, &err) == 0)
			fail_msg("case %zu accepted", i);
		assert_int_equal(err.cls, VB_E_INVALID);
		assert_non_null(strstr(err.msg, "damaged archive digests"));
		assert_null(a.entries);
		vb_state_unlink(s, name);
		free(name);
	}
	vb_error_clear(&err);
	assert_int_equal(vb_adigests_load(s, "../x", &a, &err), -1);
	assert_int_equal(err.cls, VB_E_INVALID);
	vb_state_close(s);
	free(good);
	free(bad);
	free(path);
}

/* Entries out of order, twice, or past the drive's clusters: refused (the
 * search by halves would miss entries of an unsorted list); the bytes of a
 * file get the same checks. */
static void test_adigests_order(void **state)
{
	struct vb_error err = { 0 };
	struct vb_state *s = open_w(state);
	struct vb_adigests a;
	uint8_t *good, *bad;
	size_t len;
	char *path, *name = NULL;

	commit_ck(s, "c1", "full", NULL, "u1", NULL, 0x1f, 1);
	path = spath(state, vb_state_latest(s)->drives[0].archive_digests);
	good = read_file(path, &len);
	assert_int_equal(vb_adigests_parse(good, len, &a, &err), 0);
	assert_int_equal(a.n, NCL);
	assert_non_null(vb_adigests_find(&a, NCL - 1));
	free(a.entries);
	bad = malloc(len);
	for (int i = 0; i < 3; i++) {
		memcpy(bad, good, len);
		if (i == 0) { /* entries 1 and 2 swapped */
			memcpy(bad + 24 + 40, good + 24 + 80, 40);
			memcpy(bad + 24 + 80, good + 24 + 40, 40);
		} else if (i == 1) { /* cluster 1 twice */
			memcpy(bad + 24 + 80, good + 24 + 40, 40);
		} else { /* a cluster past the drive's end */
			bad[24 + 4 * 40] = NCL;
		}
		vb_error_clear(&err);
		assert_int_equal(vb_state_write_file(s, "adigests", bad, len, &name, &err), 0);
		assert_int_equal(vb_adigests_load(s, name, &a, &err), -1);
		assert_int_equal(err.cls, VB_E_INVALID);
		assert_null(a.entries);
		vb_state_unlink(s, name);
		free(name);
		vb_error_clear(&err);
		assert_int_equal(vb_adigests_parse(bad, len, &a, &err), -1);
		assert_int_equal(err.cls, VB_E_INVALID);
		assert_null(a.entries);
	}
	vb_error_clear(&err);
	assert_int_equal(vb_adigests_parse(good, 23, &a, &err), -1);
	vb_error_clear(&err);
	assert_int_equal(vb_adigests_parse(good, len - 1, &a, &err), -1);
	vb_state_close(s);
	free(good);
	free(bad);
	free(path);
}

/* A digest map that fails its trailer check gives no archive digests: its
 * digests are not used, as the digest reader's contract says. */
static void test_adigests_damaged_map_unused(void **state)
{
	struct vb_error err = { 0 };
	struct vb_state *s = open_w(state);
	struct vb_ckpt_drive d = { .name = "a", .size = SZ };
	struct vb_ckpt c = { .name = "c1", .kind = VB_KIND_FULL, .uuid = "u1", .ndrives = 1,
			     .drives = &d };
	unsigned char *map;
	size_t len;
	char *path;

	d.bitmap = bitmap_file(s, NCL, 0x1f);
	d.digests = digest_file(s, 1);
	path = spath(state, d.digests);
	map = read_file(path, &len);
	map[24 + 2 * DIGEST_LEN] ^= 1; /* cluster 2's digest */
	write_file(path, map, len);
	assert_int_equal(vb_state_commit(s, &c, false, &err), 0);
	assert_null(vb_state_latest(s)->drives[0].archive_digests);
	vb_state_close(s);
	free(map);
	free(path);
	free(d.bitmap);
	free(d.digests);
}

/* ============================================================== faults */

/* Files of the state directory whose names start with prefix. */
static size_t count_prefix(void **state, const char *prefix)
{
	char *dir = spath(state, "");
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
	closedir(d);
	free(dir);
	return n;
}

/* A commit that fails before state.json is renamed changes nothing: the
 * state in memory is what the disk holds, no temporary is left, and the
 * error names the file and the system's reason. */
static void commit_fails(void **state, int expect_errno)
{
	struct vb_error err = { 0 };
	struct vb_state *s = open_w(state);
	struct vb_ckpt_drive d = { .name = "a", .size = SZ };
	struct vb_ckpt c = { .name = "c2", .kind = VB_KIND_INCREMENTAL, .parent = "c1", .uuid = "u2",
			     .base_uuid = "u1", .ndrives = 1, .drives = &d };

	d.bitmap = bitmap_file(s, NCL, 0x2);
	if (s->n == 0)
		fail_msg("no c1");
	assert_int_equal(vb_state_commit(s, &c, false, &err), -1);
	fsync_fault = write_fault = NULL;
	rename_fault = 0;
	assert_int_equal(err.sys_errno, expect_errno);
	assert_non_null(strstr(err.msg, STATE_FILE));
	assert_int_equal(vb_state_count(s), 1);
	assert_string_equal(vb_state_latest(s)->name, "c1");
	assert_int_equal(count_prefix(state, ".state.json."), 0);
	assert_true(sexists(state, d.bitmap)); /* the caller's, to remove */
	vb_state_close(s);
	s = open_w(state);
	assert_int_equal(vb_state_count(s), 1);
	assert_null(vb_state_find(s, "c2"));
	vb_state_close(s);
	free(d.bitmap);
}

static void test_fault_state_fsync(void **state)
{
	struct vb_state *s = open_w(state);

	commit_ck(s, "c1", "full", NULL, "u1", NULL, 0x1f, 0);
	vb_state_close(s);
	fsync_fault = ".state.json.";
	commit_fails(state, EIO);
}

static void test_fault_state_write(void **state)
{
	struct vb_state *s = open_w(state);

	commit_ck(s, "c1", "full", NULL, "u1", NULL, 0x1f, 0);
	vb_state_close(s);
	write_fault = ".state.json.";
	commit_fails(state, ENOSPC);
}

static void test_fault_rename(void **state)
{
	struct vb_state *s = open_w(state);

	commit_ck(s, "c1", "full", NULL, "u1", NULL, 0x1f, 0);
	vb_state_close(s);
	rename_fault = EXDEV;
	commit_fails(state, EXDEV);
}

/* The manifest cannot be written: nothing changes, and no half-written
 * manifest is left. */
static void test_fault_manifest(void **state)
{
	struct vb_error err = { 0 };
	struct vb_state *s = open_w(state);
	struct vb_ckpt_drive d = { .name = "a", .size = SZ };
	struct vb_ckpt c = { .name = "c1", .kind = VB_KIND_FULL, .uuid = "u1", .ndrives = 1,
			     .drives = &d };

	d.bitmap = bitmap_file(s, NCL, 0x1f);
	write_fault = "manifest-";
	assert_int_equal(vb_state_commit(s, &c, false, &err), -1);
	write_fault = NULL;
	assert_int_equal(err.sys_errno, ENOSPC);
	assert_int_equal(vb_state_count(s), 0);
	assert_int_equal(count_prefix(state, "manifest-"), 0);
	assert_false(sexists(state, STATE_FILE));
	vb_state_close(s);
	free(d.bitmap);
}

/* Once state.json is renamed into place the change is made: a failed fsync
 * of the directory after it cannot be reported as "not committed" (the
 * caller would then delete the files the new state names); the commit
 * succeeds, and a note says its durability is in doubt. */
static void test_fault_dir_fsync(void **state)
{
	struct vb_error err = { 0 };
	struct vb_state *s = open_w(state);
	struct vb_ckpt_drive d = { .name = "a", .size = SZ };
	struct vb_ckpt c = { .name = "c2", .kind = VB_KIND_INCREMENTAL, .parent = "c1", .uuid = "u2",
			     .base_uuid = "u1", .ndrives = 1, .drives = &d };
	int rc;

	commit_ck(s, "c1", "full", NULL, "u1", NULL, 0x1f, 0);
	d.bitmap = bitmap_file(s, NCL, 0x2);
	fsync_fault = "DIR";
	rc = vb_state_commit(s, &c, false, &err);
	fsync_fault = NULL;
	/* renamed, not made durable: 1, and the error says what is true */
	assert_int_equal(rc, 1);
	assert_non_null(strstr(err.msg, "could not be made durable"));
	assert_string_equal(vb_state_latest(s)->name, "c2");
	vb_state_close(s);
	s = open_w(state);
	/* what the call said is what the disk holds, the files it names too */
	assert_int_equal(vb_state_count(s), 2);
	assert_true(sexists(state, d.bitmap));
	vb_state_close(s);
	free(d.bitmap);
}

/* vb_error_from_bitmap: the one conversion of bitmap/'s codes. */
static void test_error_from_bitmap(void **state)
{
	static const int damaged[] = { BITMAP_ERR_MAGIC, BITMAP_ERR_VERSION, BITMAP_ERR_CHECKSUM,
				       BITMAP_ERR_TRUNCATED, BITMAP_ERR_CORRUPT };
	struct vb_error err = { 0 };

	(void)state;
	for (size_t i = 0; i < sizeof(damaged) / sizeof(damaged[0]); i++) {
		vb_error_clear(&err);
		assert_int_equal(vb_error_from_bitmap(&err, damaged[i], 0, "st/%s", "f"), -1);
		assert_int_equal(err.cls, VB_E_INVALID);
		assert_int_equal(err.sys_errno, 0);
		assert_non_null(strstr(err.msg, "st/f: "));
		assert_non_null(strstr(err.msg, bitmap_strerror(damaged[i])));
	}
	vb_error_clear(&err);
	vb_error_from_bitmap(&err, BITMAP_ERR_NOMEM, 0, "m");
	assert_int_equal(err.cls, VB_E_FAIL);
	assert_int_equal(err.sys_errno, ENOMEM);
	vb_error_clear(&err);
	vb_error_from_bitmap(&err, BITMAP_ERR_IO, ENOSPC, "m");
	assert_int_equal(err.cls, VB_E_FAIL);
	assert_int_equal(err.sys_errno, ENOSPC);
	assert_string_equal(err.msg, "m: No space left on device");
	vb_error_clear(&err);
	vb_error_from_bitmap(&err, BITMAP_ERR_IO, 0, "m");
	assert_int_equal(err.sys_errno, EIO);
	vb_error_clear(&err);
	vb_error_from_bitmap(&err, BITMAP_ERR_RANGE, 0, "m");
	assert_int_equal(err.cls, VB_E_FAIL);
	assert_string_equal(err.msg, "m: index or range outside the bitmap");
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, tdir_setup, tdir_teardown)
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_error_from_bitmap),
		T(test_state_file_too_large),
		cmocka_unit_test(test_file_names),
		cmocka_unit_test(test_gc_patterns),
		T(test_bad_set_names),
		cmocka_unit_test(test_default_dir),
		T(test_output_inside_state_dir),
		cmocka_unit_test(test_codec_round_trip),
		cmocka_unit_test(test_codec_rejects),
		T(test_damaged_state_file_keeps_files),
		T(test_lock_exclusion),
		T(test_lock_stale_pid_not_named),
		T(test_lock_not_regular),
		T(test_reader_creates_nothing),
		T(test_refuses_foreign_directory),
		T(test_refuses_writable_directories),
		T(test_gc_own_patterns_only),
		T(test_gc_not_reader_not_foreign),
		T(test_commit_and_reopen),
		T(test_state_files),
		T(test_pending_commit),
		T(test_pending_replaced),
		T(test_remove),
		T(test_remove_resized),
		T(test_check_file),
		T(test_adigests_written),
		T(test_adigests_damaged),
		T(test_adigests_order),
		T(test_adigests_damaged_map_unused),
		T(test_fault_state_fsync),
		T(test_fault_state_write),
		T(test_fault_rename),
		T(test_fault_manifest),
		T(test_fault_dir_fsync),
	};
#undef T

	return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}
