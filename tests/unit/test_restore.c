/* test_restore.c: unit tests of core/restore: a chain of small archives
 * (built in the test) restored into a temporary directory and onto given
 * files, byte for byte; refusals to overwrite; names that would leave the
 * target directory; all or nothing on failure; extract in Proxmox's layout;
 * the cluster-to-file writer. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "common/byteorder.h"
#include "core/restore/restore_int.h"

#include "tests/unit/test_support.h"

#define CL VMA_CLUSTER_SIZE
#define BS VMA_BLOCK_SIZE

struct tdev {
	const char *name;
	uint64_t size;          /* exact; the header declares it rounded to a sector */
	unsigned mask;          /* clusters written (bit i: cluster i) */
};

struct tarc {
	const char *kind;       /* NULL: full */
	uint8_t uuid, parent;
	int64_t time_ns;
	struct tdev dev[3];
	unsigned ndev;
	uint8_t fill;
	bool foreign;           /* no vmaback.json */
	const char *conf;       /* another config blob's name */
	uint64_t clusters0;     /* vmaback.json's count for drive 0 (0: as written) */
	/* a name the writer refuses ("vmstate", "../x" for a config), put into
	 * the header in place of a placeholder of its length */
	const char *forge_from, *forge_to;
};

/* Replaces the name from by to (as long) in the header of the archive at
 * path, and gives the header its MD5 again: what another writer could make. */
static void forge_name(const char *path, const char *from, const char *to)
{
	size_t len, n = strlen(from) + 1;
	unsigned char *b = read_file(path, &len), md[EVP_MAX_MD_SIZE];
	uint32_t hs = get_be32(b + 56);
	unsigned found = 0, dl = 0;

	assert_int_equal(strlen(to) + 1, n);
	assert_true(hs <= len);
	for (size_t i = 0; i + n <= hs; i++)
		if (memcmp(b + i, from, n) == 0) {
			memcpy(b + i, to, n);
			found++;
		}
	assert_int_equal(found, 1);
	memset(b + 32, 0, 16);
	assert_int_equal(EVP_Digest(b, hs, md, &dl, EVP_md5(), NULL), 1);
	memcpy(b + 32, md, 16);
	write_file(path, b, len);
	free(b);
}

/* Cluster i of drive d: every 4 KiB block its own bytes, block 5 zero
 * (not stored: a restored file is sparse there). */
static void cluster_data(const struct tarc *a, unsigned d, unsigned i, uint8_t *buf)
{
	for (unsigned b = 0; b < CL / BS; b++)
		memset(buf + b * BS, b == 5 ? 0 : a->fill + 16 * d + i + 3 * b, BS);
}

static int fd_write(void *opaque, const void *buf, size_t len)
{
	return vb_write_all(*(int *)opaque, buf, len);
}

static void make_archive(const char *path, const struct tarc *a)
{
	struct vb_error err = { 0 };
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	struct vma_writer *w = vma_writer_new(fd_write, &fd);
	uint8_t uuid[16], *buf = malloc(CL);
	struct vb_meta_drive_in in[3];
	char pu[37];

	assert_true(fd >= 0);
	assert_non_null(w);
	assert_non_null(buf);
	memset(uuid, a->uuid, 16);
	assert_int_equal(vma_writer_set_uuid(w, uuid), 0);
	assert_int_equal(vma_writer_add_config(w, "qemu-server.conf", "memory: 512\n", 12), 0);
	if (a->conf)
		assert_int_equal(vma_writer_add_config(w, a->conf, "x", 1), 0);
	for (unsigned d = 0; d < a->ndev; d++)
		in[d] = (struct vb_meta_drive_in){
			a->dev[d].name, d + 1, a->dev[d].size,
			d == 0 && a->clusters0 ? a->clusters0 : (uint64_t)__builtin_popcount(a->dev[d].mask),
			"file", "/x" };
	if (!a->foreign) {
		uint8_t p[16];
		struct vb_meta_archive_in m = { .kind = ts_kind(a->kind ? a->kind : "full"), .set = "s",
						.time_ns = a->time_ns ? a->time_ns : 1 };
		char *json;

		memset(p, a->parent, 16);
		vb_uuid_format(p, pu);
		if (a->parent)
			m.parent_uuid = pu;
		json = vb_meta_build(&m, uuid, 1704067200, in, a->ndev, &err);
		assert_non_null(json);
		assert_int_equal(vma_writer_add_config(w, VB_META_NAME, json, strlen(json)), 0);
		free(json);
	}
	for (unsigned d = 0; d < a->ndev; d++)
		assert_int_equal(vma_writer_add_device(w, a->dev[d].name,
						       vb_round_sector(a->dev[d].size)), (int)d + 1);
	assert_int_equal(vma_writer_start(w), 0);
	for (unsigned d = 0; d < a->ndev; d++)
		for (unsigned i = 0; i < 32; i++) {
			if (!(a->dev[d].mask & (1u << i)))
				continue;
			cluster_data(a, d, i, buf);
			assert_int_equal(vma_writer_add_cluster(w, d + 1, i, buf, CL), 0);
		}
	assert_int_equal(vma_writer_finish(w), 0);
	vma_writer_free(w);
	assert_int_equal(close(fd), 0);
	free(buf);
	if (a->forge_from)
		forge_name(path, a->forge_from, a->forge_to);
}

static char *arc_at(void **state, const char *name, const struct tarc *a)
{
	char *p = tpath(state, name);

	make_archive(p, a);
	return p;
}

/* Drive a: 3 clusters; drive b: 2 clusters, its size not a whole sector. */
#define SZA (3 * CL)
#define SZB (CL + 1000)
static const struct tarc FULL = { .uuid = 1, .time_ns = 10, .ndev = 2, .fill = 1,
				  .dev = { { "a", SZA, 7 }, { "b", SZB, 3 } } };
static const struct tarc INC = { .kind = "incremental", .uuid = 2, .parent = 1, .time_ns = 20,
				 .ndev = 2, .fill = 100,
				 .dev = { { "a", SZA, 2 }, { "b", SZB, 1 } } };

/* What drive d holds after the archives of chain (oldest first). */
static uint8_t *expected(const struct tarc *const *chain, size_t n, unsigned d)
{
	uint64_t size = chain[n - 1]->dev[d].size;
	uint8_t *img = calloc(1, (size_t)size + CL), *buf = malloc(CL);

	assert_non_null(img);
	assert_non_null(buf);
	for (size_t k = 0; k < n; k++)
		for (unsigned i = 0; i < 32; i++)
			if (chain[k]->dev[d].mask & (1u << i)) {
				cluster_data(chain[k], d, i, buf);
				memcpy(img + (size_t)i * CL, buf, CL);
			}
	free(buf);
	return img;
}

static void check_file(const char *path, const struct tarc *const *chain, size_t n, unsigned d)
{
	size_t len;
	unsigned char *got = read_file(path, &len);
	uint8_t *want = expected(chain, n, d);
	struct stat st;

	assert_int_equal(len, chain[n - 1]->dev[d].size); /* exact, not rounded */
	assert_memory_equal(got, want, len);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	free(got);
	free(want);
}

static char *sub(const char *dir, const char *name)
{
	char *p = NULL;

	assert_true(asprintf(&p, "%s/%s", dir, name) > 0);
	return p;
}

/* ============================================================== restore */

static void test_restore_chain(void **state)
{
	struct vb_error err = { 0 };
	char *f = arc_at(state, "f.vma", &FULL), *i = arc_at(state, "i.vma", &INC);
	char *to = tpath(state, "out"), *da, *db;
	const char *archives[] = { f, i };
	const struct tarc *chain[] = { &FULL, &INC };
	struct vb_restore_opts o = { .archives = archives, .narchives = 2, .dir = to };
	struct vb_restore_result res;
	struct stat st;

	if (vb_restore(&o, &res, &err) < 0)
		fail_msg("%s", err.msg);
	assert_int_equal(res.archives, 2);
	assert_int_equal(res.drives, 2);
	assert_int_equal(res.clusters, 5);
	/* a: 3 clusters less block 5 each; b: cluster 0 less block 5, then the
	 * one block of cluster 1 inside the drive (its stored bytes, clipped) */
	assert_int_equal(res.bytes_written, 3 * (CL - BS) + (CL - BS) + 1000);
	da = sub(to, "disk-a.raw");
	db = sub(to, "disk-b.raw");
	check_file(da, chain, 2, 0);
	check_file(db, chain, 2, 1);
	assert_int_equal(count_entries(to), 2); /* no temporaries left */
	assert_int_equal(stat(to, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	/* the full alone restores the full's state */
	free(to);
	to = tpath(state, "out2");
	o.dir = to;
	o.narchives = 1;
	assert_int_equal(vb_restore(&o, &res, &err), 0);
	free(da);
	da = sub(to, "disk-a.raw");
	check_file(da, chain, 1, 0);
	free(f);
	free(i);
	free(to);
	free(da);
	free(db);
}

/* Existing files are not replaced without force; with it they are, and a
 * planted symbolic link is replaced, never followed. */
static void test_restore_refuses_overwrite(void **state)
{
	struct vb_error err = { 0 };
	char *f = arc_at(state, "f.vma", &FULL), *to = tpath(state, "out");
	char *da, *db, *victim = tpath(state, "victim");
	const char *archives[] = { f };
	const struct tarc *chain[] = { &FULL };
	struct vb_restore_opts o = { .archives = archives, .narchives = 1, .dir = to };
	struct vb_restore_result res;
	unsigned char *got;
	size_t len;
	struct stat st;

	assert_int_equal(mkdir(to, 0700), 0);
	da = sub(to, "disk-a.raw");
	db = sub(to, "disk-b.raw");
	write_file(victim, "precious", 8);
	assert_int_equal(symlink(victim, db), 0);
	write_file(da, "old", 3);
	assert_int_equal(vb_restore(&o, &res, &err), -1);
	assert_int_equal(err.cls, VB_E_USAGE);
	assert_non_null(strstr(err.msg, "exists (use --force"));
	got = read_file(da, &len);
	assert_int_equal(len, 3);
	free(got);
	/* only the link in the way (a dangling one counts too) */
	unlink(da);
	unlink(victim);
	vb_error_clear(&err);
	assert_int_equal(vb_restore(&o, &res, &err), -1);
	assert_non_null(strstr(err.msg, db));
	assert_int_equal(count_entries(to), 1); /* disk-a.raw not published alone */
	write_file(victim, "precious", 8);
	o.force = true;
	vb_error_clear(&err);
	assert_int_equal(vb_restore(&o, &res, &err), 0);
	assert_int_equal(lstat(db, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	check_file(db, chain, 1, 1);
	got = read_file(victim, &len);
	assert_int_equal(len, 8);
	assert_memory_equal(got, "precious", 8);
	free(got);
	free(f);
	free(to);
	free(da);
	free(db);
	free(victim);
}

/* A drive name that is not one file name inside the directory is refused
 * before anything is made; under its own --target it may be restored. */
static void test_restore_escaping_names(void **state)
{
	const char *bad[] = { "../escape", "..", "a/b", "/abs" };
	struct vb_error err = { 0 };

	for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
		struct tarc x = { .uuid = 1, .ndev = 1, .fill = 1, .foreign = true,
				  .dev = { { bad[k], CL, 1 } } };
		char *f = arc_at(state, "evil.vma", &x), *to = tpath(state, "out");
		const char *archives[] = { f };
		struct vb_restore_opts o = { .archives = archives, .narchives = 1, .dir = to,
					     .force = true };
		struct vb_restore_result res;
		struct vb_error e2 = { 0 };

		vb_error_clear(&err);
		assert_int_equal(vb_restore(&o, &res, &err), -1);
		assert_int_equal(err.cls, VB_E_INVALID);
		assert_non_null(strstr(err.msg, "not a safe file name"));
		assert_int_equal(count_entries(((struct tdir *)*state)->path), 1); /* evil.vma */
		/* with a target of its own */
		if (k == 0) {
			char *t = tpath(state, "own.raw");
			struct vb_restore_target tg = { bad[k], t };
			const struct tarc *chain[] = { &x };

			o.targets = &tg;
			o.ntargets = 1;
			o.dir = NULL;
			assert_int_equal(vb_restore(&o, &res, &e2), 0);
			check_file(t, chain, 1, 0);
			unlink(t);
			free(t);
		}
		unlink(f);
		free(f);
		free(to);
	}
}

static void test_restore_usage_errors(void **state)
{
	struct vb_error err = { 0 };
	char *f = arc_at(state, "f.vma", &FULL), *to = tpath(state, "out");
	char *t1 = tpath(state, "t1.raw"), *subdir = tpath(state, "d");
	const char *archives[] = { f };
	struct vb_restore_result res;
	const char *nosuch[] = { "zz" };
	struct vb_restore_target same[] = { { "a", t1 }, { "b", t1 } };
	struct vb_restore_target twice[] = { { "a", t1 }, { "a", to } };
	struct vb_restore_target unknown[] = { { "zz", t1 } };
	struct vb_restore_target isdir[] = { { "a", subdir } };
	struct vb_restore_target nopath[] = { { "a", "qcow2:" } };
	const char *only_a[] = { "a" };
	struct {
		struct vb_restore_opts o;
		const char *says;
	} cases[] = {
		{ { .select = nosuch, .nselect = 1, .dir = to }, "no drive named zz" },
		{ { .targets = unknown, .ntargets = 1, .dir = to }, "--target zz" },
		{ { .targets = twice, .ntargets = 2 }, "two targets for drive a" },
		{ { .targets = same, .ntargets = 2, .force = true }, "have the same target" },
		{ { .targets = isdir, .ntargets = 1, .select = only_a, .nselect = 1 },
		  "not a regular file or a block device" },
		{ { .targets = nopath, .ntargets = 1, .select = only_a, .nselect = 1 },
		  "no path after the format" },
		{ { .select = only_a, .nselect = 1 }, "has no target" },
	};

	assert_int_equal(mkdir(subdir, 0700), 0);
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		cases[k].o.archives = archives;
		cases[k].o.narchives = 1;
		vb_error_clear(&err);
		assert_int_equal(vb_restore(&cases[k].o, &res, &err), -1);
		assert_int_equal(err.cls, VB_E_USAGE);
		if (!strstr(err.msg, cases[k].says))
			fail_msg("case %zu: '%s' does not say '%s'", k, err.msg, cases[k].says);
		/* nothing was made: neither the directory nor a target */
		assert_int_equal(count_entries(((struct tdir *)*state)->path), 2);
	}
	/* --to under a missing directory */
	{
		char *deep = tpath(state, "no/such");
		struct vb_restore_opts o = { .archives = archives, .narchives = 1, .dir = deep };

		vb_error_clear(&err);
		assert_int_equal(vb_restore(&o, &res, &err), -1);
		assert_int_equal(err.cls, VB_E_USAGE);
		free(deep);
	}
	free(f);
	free(to);
	free(t1);
	free(subdir);
}

/* Selected drives only; a failure publishes nothing and removes the
 * directory it made; vmstate is never a disk to restore. */
static void test_restore_select_and_failure(void **state)
{
	struct vb_error err = { 0 };
	struct tarc bad = INC;
	char *f = arc_at(state, "f.vma", &FULL), *to = tpath(state, "out"), *i, *db;
	const char *archives[] = { f, NULL };
	const char *only_b[] = { "b" };
	const struct tarc *chain[] = { &FULL };
	struct vb_restore_opts o = { .archives = archives, .narchives = 1, .dir = to,
				     .select = only_b, .nselect = 1 };
	struct vb_restore_result res;
	static volatile sig_atomic_t cancel = 1;

	assert_int_equal(vb_restore(&o, &res, &err), 0);
	assert_int_equal(res.drives, 1);
	assert_int_equal(count_entries(to), 1);
	db = sub(to, "disk-b.raw");
	check_file(db, chain, 1, 1);
	free(db);
	/* the incremental says it holds 3 clusters of a but has 1 */
	bad.clusters0 = 3;
	i = arc_at(state, "i.vma", &bad);
	archives[1] = i;
	free(to);
	to = tpath(state, "out2");
	o = (struct vb_restore_opts){ .archives = archives, .narchives = 2, .dir = to };
	assert_int_equal(vb_restore(&o, &res, &err), -1);
	assert_int_equal(err.cls, VB_E_INVALID);
	assert_non_null(strstr(err.msg, "vmaback.json says 3"));
	assert_int_equal(access(to, F_OK), -1); /* made and removed again */
	/* interrupted: the same */
	o.narchives = 1;
	o.cancel = &cancel;
	vb_error_clear(&err);
	assert_int_equal(vb_restore(&o, &res, &err), -1);
	assert_int_equal(err.cls, VB_E_CANCELED);
	assert_int_equal(access(to, F_OK), -1);
	/* an existing --to directory stays, with nothing new in it */
	assert_int_equal(mkdir(to, 0700), 0);
	vb_error_clear(&err);
	assert_int_equal(vb_restore(&o, &res, &err), -1);
	assert_int_equal(count_entries(to), 0);
	/* vmstate is left out */
	{
		struct tarc v = { .uuid = 5, .ndev = 2, .fill = 1, .foreign = true,
				  .dev = { { "a", CL, 1 }, { "VMSTATE", CL, 1 } },
				  .forge_from = "VMSTATE", .forge_to = "vmstate" };
		char *vf = arc_at(state, "v.vma", &v);
		const char *va[] = { vf };
		struct vb_restore_opts vo = { .archives = va, .narchives = 1, .dir = to };

		vb_error_clear(&err);
		assert_int_equal(vb_restore(&vo, &res, &err), 0);
		assert_int_equal(res.drives, 1);
		assert_int_equal(count_entries(to), 1);
		free(vf);
	}
	free(f);
	free(i);
	free(to);
}

/* ============================================================== extract */

static void test_extract(void **state)
{
	struct vb_error err = { 0 };
	char *f = arc_at(state, "f.vma", &FULL), *to = tpath(state, "x");
	struct vb_archive *a = vb_archive_open(f, &err);
	struct vb_extract_opts o = { .dir = to };
	const struct tarc *chain[] = { &FULL };
	char *p;
	unsigned char *got;
	size_t len;
	struct stat st;

	assert_non_null(a);
	assert_int_equal(vb_extract(a, &o, &err), 0);
	vb_archive_free(a);
	assert_int_equal(count_entries(to), 4);
	p = sub(to, "disk-a.raw");
	check_file(p, chain, 1, 0);
	free(p);
	p = sub(to, "disk-b.raw");
	check_file(p, chain, 1, 1);
	free(p);
	p = sub(to, "qemu-server.conf");
	got = read_file(p, &len);
	assert_int_equal(len, 12);
	assert_memory_equal(got, "memory: 512\n", 12);
	free(got);
	free(p);
	p = sub(to, VB_META_NAME);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	free(p);
	assert_int_equal(stat(to, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	/* the directory must be new */
	a = vb_archive_open(f, &err);
	assert_int_equal(vb_extract(a, &o, &err), -1);
	assert_int_equal(err.cls, VB_E_USAGE);
	assert_non_null(strstr(err.msg, "already exists"));
	assert_int_equal(count_entries(to), 4);
	vb_archive_free(a);
	free(f);
	free(to);
}

static void expect_extract_refused(void **state, const struct tarc *x, const char *says,
				   enum vb_errclass cls)
{
	struct vb_error err = { 0 };
	char *f = arc_at(state, "e.vma", x), *to = tpath(state, "x");
	struct vb_archive *a = vb_archive_open(f, &err);
	struct vb_extract_opts o = { .dir = to };

	if (!a)
		fail_msg("%s", err.msg);
	assert_int_equal(vb_extract(a, &o, &err), -1);
	assert_int_equal(err.cls, cls);
	if (!strstr(err.msg, says))
		fail_msg("'%s' does not say '%s'", err.msg, says);
	assert_int_equal(access(to, F_OK), -1); /* nothing left, the directory neither */
	vb_archive_free(a);
	unlink(f);
	free(f);
	free(to);
}

static void test_extract_refusals(void **state)
{
	struct tarc x = { .uuid = 1, .ndev = 1, .fill = 1, .foreign = true,
			  .dev = { { "a", CL, 1 } } };

	expect_extract_refused(state, &INC, "not a full archive", VB_E_USAGE);
	x.dev[0].name = "../up";
	expect_extract_refused(state, &x, "not a safe file name", VB_E_INVALID);
	x.dev[0].name = "..";
	expect_extract_refused(state, &x, "not a safe file name", VB_E_INVALID);
	x.dev[0].name = "a";
	x.conf = "xx_xx_etc_conf";
	x.forge_from = x.conf;
	x.forge_to = "../../etc/conf";
	expect_extract_refused(state, &x, "config name", VB_E_INVALID);
	x.conf = x.forge_from = "zz";
	x.forge_to = "..";
	expect_extract_refused(state, &x, "config name", VB_E_INVALID);
	x.forge_from = NULL;
	/* a config blob under a disk's file name */
	x.conf = "disk-a.raw";
	expect_extract_refused(state, &x, "two archive entries with one name", VB_E_INVALID);
	/* a full that lacks a cluster: found at the end, nothing kept */
	x.conf = NULL;
	x.dev[0].size = 2 * CL;
	expect_extract_refused(state, &x, "truncated or damaged", VB_E_INVALID);
}

static void test_extract_select_and_vmstate(void **state)
{
	struct vb_error err = { 0 };
	struct tarc v = { .uuid = 5, .ndev = 2, .fill = 1, .foreign = true,
			  .dev = { { "a", CL, 1 }, { "VMSTATE", 3 * CL, 3 } },
			  .forge_from = "VMSTATE", .forge_to = "vmstate" };
	char *f = arc_at(state, "v.vma", &v), *to = tpath(state, "x"), *p;
	struct vb_archive *a = vb_archive_open(f, &err);
	const char *sel[] = { "vmstate" }, *none[] = { "nope" };
	struct vb_extract_opts o = { .dir = to, .select = sel, .nselect = 1 };
	unsigned char *got;
	size_t len;
	uint8_t *buf = malloc(CL);

	assert_non_null(a);
	assert_int_equal(vb_extract(a, &o, &err), 0);
	vb_archive_free(a);
	/* the two config blobs and vmstate.bin: its stored blocks in order */
	assert_int_equal(count_entries(to), 2);
	p = sub(to, "vmstate.bin");
	got = read_file(p, &len);
	assert_int_equal(len, 2 * (CL - BS));
	cluster_data(&v, 1, 0, buf);
	assert_memory_equal(got, buf, 5 * BS);
	assert_memory_equal(got + 5 * BS, buf + 6 * BS, CL - 6 * BS);
	cluster_data(&v, 1, 1, buf);
	assert_memory_equal(got + (CL - BS), buf, 5 * BS);
	free(got);
	free(p);
	free(to);
	to = tpath(state, "y");
	a = vb_archive_open(f, &err);
	o = (struct vb_extract_opts){ .dir = to, .select = none, .nselect = 1 };
	assert_int_equal(vb_extract(a, &o, &err), -1);
	assert_int_equal(err.cls, VB_E_USAGE);
	assert_non_null(strstr(err.msg, "no drive named nope"));
	assert_int_equal(access(to, F_OK), -1);
	vb_archive_free(a);
	free(buf);
	free(f);
	free(to);
}

/* ============================================================== cluster writer */

static void test_put_cluster(void **state)
{
	char *p = tpath(state, "img");
	int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	uint8_t *data = malloc(CL), *got;
	struct vma_cluster c = { .dev_id = 1, .cluster_num = 1, .mask = 0x0003, .data = data };
	uint64_t written = 0;
	size_t len;

	assert_true(fd >= 0);
	memset(data, 0xee, CL);
	assert_int_equal(ftruncate(fd, 3 * CL), 0);
	/* stored blocks only, on a fresh file */
	assert_int_equal(vb_put_cluster(fd, &c, 3 * CL, false, &written), 0);
	assert_int_equal(written, 2 * BS);
	/* clipped at the size, inside a block */
	c.cluster_num = 2;
	c.mask = 0xffff;
	assert_int_equal(vb_put_cluster(fd, &c, 2 * CL + 100, true, &written), 0);
	assert_int_equal(written, 2 * BS + 100);
	/* wholly past the end: nothing */
	c.cluster_num = 5;
	assert_int_equal(vb_put_cluster(fd, &c, 2 * CL + 100, true, &written), 0);
	assert_int_equal(written, 2 * BS + 100);
	/* whole: absent blocks written as the cluster's zeros */
	memset(data, 0, CL);
	memset(data, 0x11, BS);
	c.cluster_num = 0;
	c.mask = 0x0001;
	assert_int_equal(vb_put_cluster(fd, &c, 3 * CL, true, NULL), 0);
	close(fd);
	got = read_file(p, &len);
	assert_int_equal(len, 3 * CL);
	for (size_t k = 0; k < len; k++) {
		uint8_t want = k < BS ? 0x11 : k < CL ? 0 : k < CL + 2 * BS ? 0xee :
			       k < 2 * CL ? 0 : k < 2 * CL + 100 ? 0xee : 0;

		if (got[k] != want)
			fail_msg("byte %zu is %#x, not %#x", k, got[k], want);
	}
	/* a write error is -errno */
	fd = open(p, O_RDONLY | O_CLOEXEC);
	assert_int_equal(vb_put_cluster(fd, &c, 3 * CL, true, NULL), -EBADF);
	close(fd);
	free(got);
	free(data);
	free(p);
}

/* All or nothing: a name taken meanwhile publishes none of them. */
static void test_outfiles_all_or_none(void **state)
{
	struct vb_error err = { 0 };
	char *p1 = tpath(state, "one"), *p2 = tpath(state, "two");
	struct vb_outfile f1, f2;
	struct vb_outfile *v[] = { &f1, &f2 };

	assert_int_equal(vb_outfile_open(&f1, p1, CL, false, &err), 0);
	assert_int_equal(vb_outfile_open(&f2, p2, 0, false, &err), 0);
	assert_string_equal(vb_outfile_final(&f1), p1);
	assert_int_equal(count_entries(((struct tdir *)*state)->path), 2); /* temporaries */
	write_file(p2, "x", 1);
	assert_int_equal(vb_outfiles_publish(v, 2, false, &err), -1);
	assert_int_equal(err.cls, VB_E_USAGE);
	assert_non_null(strstr(err.msg, "nothing published"));
	assert_int_equal(access(p1, F_OK), -1);
	vb_outfile_free(&f1);
	vb_outfile_free(&f2);
	assert_int_equal(count_entries(((struct tdir *)*state)->path), 1); /* "two" only */
	/* and with replace: both */
	vb_error_clear(&err);
	assert_int_equal(vb_outfile_open(&f1, p1, CL, false, &err), 0);
	assert_int_equal(vb_outfile_open(&f2, p2, 0, true, &err), 0);
	assert_int_equal(vb_outfiles_publish(v, 2, true, &err), 0);
	assert_true(f1.published && f2.published);
	vb_outfile_free(&f1);
	vb_outfile_free(&f2);
	assert_int_equal(count_entries(((struct tdir *)*state)->path), 2);
	free(p1);
	free(p2);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, tdir_setup, tdir_teardown)
	const struct CMUnitTest tests[] = {
		T(test_restore_chain),
		T(test_restore_refuses_overwrite),
		T(test_restore_escaping_names),
		T(test_restore_usage_errors),
		T(test_restore_select_and_failure),
		T(test_extract),
		T(test_extract_refusals),
		T(test_extract_select_and_vmstate),
		T(test_put_cluster),
		T(test_outfiles_all_or_none),
	};
#undef T

	return cmocka_run_group_tests_name("restore", tests, NULL, NULL);
}
