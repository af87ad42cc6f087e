/* test_archive.c: unit tests of core/archive: opening archives (plain and
 * compressed, ours and foreign), vmaback.json built and read back and its
 * damaged forms refused, verification, and chains: their order, parents,
 * gaps, duplicates, foreign sets, and the merged stream. Archives are built
 * in the test with the VMA writer in mkdtemp directories. */
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
#include <unistd.h>

#include <json-c/json.h>
#include <zstd.h>

#include "core/archive/archive_int.h"

#include "tests/unit/test_support.h"

#define CL VMA_CLUSTER_SIZE
#define SIZE_A (3 * CL)            /* drive a: 3 clusters */
#define SIZE_B (CL + 1000)         /* drive b: 2 clusters, not a whole sector */

/* What one test archive is. */
struct arc {
	const char *kind;          /* NULL: "full" */
	const char *set;           /* NULL: "s" (unless noset) */
	bool noset;
	const char *ckpt, *pckpt;
	uint8_t uuid, parent;      /* uuid bytes (all 16 the same); parent 0: none */
	int64_t time_ns;
	unsigned mask[2];          /* clusters of drives a and b written (bit i: cluster i) */
	uint8_t fill;              /* data of cluster i of drive d: fill + 16 d + i */
	bool descending;           /* clusters written last first */
	bool foreign;              /* no vmaback.json (as Proxmox writes) */
	const char *json;          /* this vmaback.json instead of the built one */
	size_t json_len;           /* its length (0: strlen) */
	uint64_t clusters[2];      /* what vmaback.json says (0: as written) */
	uint64_t size_b;           /* drive b's size (0: SIZE_B) */
	const char *const *merged;
	size_t nmerged;
	bool zstd;
	bool single_frame;         /* zstd as one frame, without a seek table */
};

static void uuid_of(uint8_t b, uint8_t out[16])
{
	memset(out, b, 16);
}

static char *uuid_str(uint8_t b)
{
	uint8_t u[16];
	char *s = malloc(37);

	assert_non_null(s);
	uuid_of(b, u);
	vb_uuid_format(u, s);
	return s;
}

static int writer_cb(void *opaque, const void *buf, size_t len)
{
	struct vb_error err = { 0 };

	return vb_writer_write(opaque, buf, len, &err) < 0 ? -EIO : 0;
}

static unsigned popcount(unsigned m)
{
	return (unsigned)__builtin_popcount(m);
}

/* Cluster i of drive d as read back: the archive stores nothing past the
 * device's end (drive b's second cluster ends at its 1024th byte). */
static void cluster_data(const struct arc *a, unsigned d, unsigned i, uint8_t *buf)
{
	uint64_t end = vb_round_sector(d ? (a->size_b ? a->size_b : SIZE_B) : SIZE_A);
	uint64_t off = (uint64_t)i * CL;

	memset(buf, 0, CL);
	memset(buf, a->fill + 16 * d + i, end - off < CL ? (size_t)(end - off) : CL);
}

/* Writes the archive a at path. */
static void make_archive(const char *path, const struct arc *a)
{
	struct vb_error err = { 0 };
	struct vb_writer *sink = vb_sink_file_new(path, true, &err), *top = sink;
	struct vma_writer *w;
	uint8_t uuid[16], *buf = malloc(CL);
	char *puuid = a->parent ? uuid_str(a->parent) : NULL;
	uint64_t sizes[2] = { SIZE_A, a->size_b ? a->size_b : SIZE_B };
	char *json = NULL;

	assert_non_null(sink);
	assert_non_null(buf);
	if (a->zstd && !a->single_frame) {
		top = vb_zstd_writer_new(sink, 3, 0, &err);
		assert_non_null(top);
	}
	w = vma_writer_new(writer_cb, top);
	assert_non_null(w);
	uuid_of(a->uuid, uuid);
	assert_int_equal(vma_writer_set_uuid(w, uuid), 0);
	vma_writer_set_ctime(w, 1704067200);
	assert_int_equal(vma_writer_add_config(w, "qemu-server.conf", "memory: 512\n", 12), 0);
	if (a->json) {
		size_t n = a->json_len ? a->json_len : strlen(a->json) + 1;

		json = malloc(n);
		assert_non_null(json);
		memcpy(json, a->json, n);
	} else if (!a->foreign) {
		struct vb_meta_drive_in d[2] = {
			{ "a", 1, sizes[0], a->clusters[0] ? a->clusters[0] : popcount(a->mask[0]),
			  "file", "/img/a" },
			{ "b", 2, sizes[1], a->clusters[1] ? a->clusters[1] : popcount(a->mask[1]),
			  "block", "/dev/b" },
		};
		struct vb_meta_archive_in in = {
			.kind = ts_kind(a->kind ? a->kind : "full"), .set = a->noset ? NULL : a->set ? a->set : "s",
			.checkpoint = a->ckpt, .parent_checkpoint = a->pckpt, .parent_uuid = puuid,
			.merged = a->merged, .nmerged = a->nmerged, .time_ns = a->time_ns,
		};

		json = vb_meta_build(&in, uuid, 1704067200, d, 2, &err);
		assert_non_null(json);
	}
	if (json)
		assert_int_equal(vma_writer_add_config(w, VB_META_NAME, json,
						       a->json_len ? a->json_len : strlen(json)), 0);
	assert_int_equal(vma_writer_add_device(w, "a", vb_round_sector(sizes[0])), 1);
	assert_int_equal(vma_writer_add_device(w, "b", vb_round_sector(sizes[1])), 2);
	assert_int_equal(vma_writer_start(w), 0);
	for (unsigned k = 0; k < 2 * 32; k++) {
		unsigned j = a->descending ? 2 * 32 - 1 - k : k, d = j / 32, i = j % 32;

		if (!(a->mask[d] & (1u << i)))
			continue;
		cluster_data(a, d, i, buf);
		assert_int_equal(vma_writer_add_cluster(w, d + 1, i, buf, CL), 0);
	}
	assert_int_equal(vma_writer_finish(w), 0);
	vma_writer_free(w);
	assert_int_equal(vb_writer_close(top, &err), 0);
	if (a->single_frame) { /* as Proxmox writes them: `zstd` on the stream */
		size_t len, cap;
		uint8_t *plain = read_file(path, &len), *z;
		FILE *fp;

		cap = ZSTD_compressBound(len);
		z = malloc(cap);
		assert_non_null(plain);
		assert_non_null(z);
		cap = ZSTD_compress(z, cap, plain, len, 3);
		assert_false(ZSTD_isError(cap));
		fp = fopen(path, "wb");
		assert_non_null(fp);
		assert_int_equal(fwrite(z, 1, cap, fp), cap);
		assert_int_equal(fclose(fp), 0);
		free(plain);
		free(z);
	}
	free(buf);
	free(puuid);
	free(json);
}

/* tdir/name written as a, its path to free */
static char *arc_at(void **state, const char *name, const struct arc *a)
{
	char *p = tpath(state, name);

	make_archive(p, a);
	return p;
}

static const struct arc FULL = { .ckpt = "c1", .uuid = 1, .time_ns = 1000, .mask = { 7, 3 },
				 .fill = 1 };
static const struct arc INC1 = { .kind = "incremental", .ckpt = "c2", .pckpt = "c1", .uuid = 2,
				 .parent = 1, .time_ns = 2000, .mask = { 2, 0 }, .fill = 100 };
static const struct arc INC2 = { .kind = "incremental", .ckpt = "c3", .pckpt = "c2", .uuid = 3,
				 .parent = 2, .time_ns = 3000, .mask = { 6, 1 }, .fill = 200 };

/* ============================================================== archives */

static void test_open_full(void **state)
{
	struct vb_error err = { 0 };
	char *p = arc_at(state, "full.vma", &FULL), *u1 = uuid_str(1);
	struct vb_archive *a = vb_archive_open(p, &err);
	const struct vb_meta *m;
	struct vb_verify_result res;

	assert_non_null(a);
	m = vb_archive_meta(a);
	assert_true(m->ours);
	assert_string_equal(vb_kind_name(m->kind), "full");
	assert_string_equal(m->tool_version, VB_VERSION);
	assert_string_equal(m->uuid, u1);
	assert_string_equal(m->set, "s");
	assert_string_equal(m->checkpoint, "c1");
	assert_null(m->parent_uuid);
	assert_null(m->parent_checkpoint);
	assert_int_equal(m->ctime, 1704067200);
	assert_int_equal(m->time_ns, 1000);
	assert_int_equal(m->nmerged, 0);
	assert_int_equal(m->ndrives, 2);
	assert_string_equal(m->drives[0].name, "a");
	assert_int_equal(m->drives[0].dev_id, 1);
	assert_int_equal(m->drives[0].size, SIZE_A);
	assert_int_equal(m->drives[0].clusters, 3);
	assert_string_equal(m->drives[1].name, "b");
	assert_int_equal(m->drives[1].size, SIZE_B); /* exact, not the header's rounded size */
	assert_int_equal(m->drives[1].clusters, 2);
	assert_int_equal(vb_archive_compression(a), VB_COMP_NONE);
	assert_string_equal(vb_archive_path(a), p);
	assert_int_equal(vb_verify(a, NULL, &res, &err), 0);
	assert_int_equal(res.drives, 2);
	assert_int_equal(res.clusters, 5);
	/* drive b's last cluster: one 4 KiB block inside the device */
	assert_int_equal(res.stored_bytes, 4 * CL + 4096);
	assert_true(res.stream_bytes > res.stored_bytes);
	vb_archive_free(a);
	free(p);
	free(u1);
}

/* Compression is found from the bytes, whatever the name says. */
static void test_open_zstd(void **state)
{
	struct vb_error err = { 0 };
	struct arc z = FULL;
	char *p;
	struct vb_archive *a;
	struct vb_verify_result res;

	z.zstd = true;
	p = arc_at(state, "plain-looking.vma", &z);
	a = vb_archive_open(p, &err);
	assert_non_null(a);
	assert_int_equal(vb_archive_compression(a), VB_COMP_ZSTD);
	assert_int_equal(vb_verify(a, NULL, &res, &err), 0);
	assert_int_equal(res.clusters, 5);
	vb_archive_free(a);
	free(p);
}

static void test_open_fd(void **state)
{
	struct vb_error err = { 0 };
	char *p = arc_at(state, "full.vma", &FULL);
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	struct vb_archive *a = vb_archive_open_fd(fd, "named", &err);

	assert_non_null(a);
	assert_string_equal(vb_archive_path(a), "named");
	assert_string_equal(vb_archive_meta(a)->checkpoint, "c1");
	vb_archive_free(a); /* closes fd */
	assert_int_equal(fcntl(fd, F_GETFD), -1);
	free(p);
}

static void test_open_errors(void **state)
{
	struct vb_error err = { 0 };
	char *p = arc_at(state, "full.vma", &FULL), *empty = tpath(state, "empty");
	char *junk = tpath(state, "junk"), *cut = tpath(state, "cut");
	unsigned char *bytes;
	size_t len;

	char *missing = tpath(state, "missing");

	assert_null(vb_archive_open(missing, &err));
	assert_int_equal(err.cls, VB_E_USAGE);
	free(missing);
	write_file(empty, "", 0);
	vb_error_clear(&err);
	assert_null(vb_archive_open(empty, &err));
	assert_int_equal(err.cls, VB_E_INVALID);
	write_file(junk, "this is not an archive at all, just text\n", 41);
	vb_error_clear(&err);
	assert_null(vb_archive_open(junk, &err));
	assert_int_equal(err.cls, VB_E_INVALID);
	bytes = read_file(p, &len);
	write_file(cut, bytes, 1000); /* inside the header */
	vb_error_clear(&err);
	assert_null(vb_archive_open(cut, &err));
	assert_int_equal(err.cls, VB_E_INVALID);
	assert_non_null(strstr(err.msg, cut));
	free(bytes);
	free(p);
	free(empty);
	free(junk);
	free(cut);
}

/* An archive without vmaback.json is described by its header, and is
 * verified whole. */
static void test_foreign(void **state)
{
	struct vb_error err = { 0 };
	struct arc f = FULL;
	char *p;
	struct vb_archive *a;
	struct vb_verify_result res;
	const struct vb_meta *m;

	f.foreign = true;
	p = arc_at(state, "px.vma", &f);
	a = vb_archive_open(p, &err);
	assert_non_null(a);
	m = vb_archive_meta(a);
	assert_false(m->ours);
	assert_string_equal(vb_kind_name(m->kind), "proxmox");
	assert_null(m->set);
	assert_int_equal(m->ndrives, 2);
	assert_int_equal(m->drives[1].size, vb_round_sector(SIZE_B));
	assert_int_equal(m->drives[1].clusters, UINT64_MAX);
	assert_int_equal(vb_verify(a, NULL, &res, &err), 0);
	vb_archive_free(a);
	/* a cluster missing: not whole */
	f.mask[0] = 5;
	make_archive(p, &f);
	a = vb_archive_open(p, &err);
	assert_non_null(a);
	assert_int_equal(vb_verify(a, NULL, &res, &err), -1);
	assert_int_equal(err.cls, VB_E_INVALID);
	assert_non_null(strstr(err.msg, "truncated or damaged"));
	vb_archive_free(a);
	free(p);
}

static void test_verify_counts(void **state)
{
	struct vb_error err = { 0 };
	struct arc f = FULL, i = INC1;
	char *p;
	struct vb_archive *a;
	struct vb_verify_result res;
	static volatile sig_atomic_t cancel = 1;

	/* a full that lacks a cluster */
	f.mask[1] = 1;
	f.clusters[1] = 1;
	p = arc_at(state, "x.vma", &f);
	a = vb_archive_open(p, &err);
	assert_int_equal(vb_verify(a, NULL, &res, &err), -1);
	assert_non_null(strstr(err.msg, "truncated or damaged"));
	vb_archive_free(a);
	/* an incremental holding fewer clusters than it says */
	i.clusters[0] = 2;
	make_archive(p, &i);
	vb_error_clear(&err);
	a = vb_archive_open(p, &err);
	assert_int_equal(vb_verify(a, NULL, &res, &err), -1);
	assert_non_null(strstr(err.msg, "holds 1 clusters, vmaback.json says 2"));
	vb_archive_free(a);
	/* ... and a good one: not every cluster, but what it says */
	make_archive(p, &INC1);
	vb_error_clear(&err);
	a = vb_archive_open(p, &err);
	assert_int_equal(vb_verify(a, NULL, &res, &err), 0);
	assert_int_equal(res.clusters, 1);
	vb_archive_free(a);
	/* stopped by a signal */
	a = vb_archive_open(p, &err);
	assert_int_equal(vb_verify(a, &cancel, &res, &err), -1);
	assert_int_equal(err.cls, VB_E_CANCELED);
	vb_archive_free(a);
	free(p);
}

/* ============================================================== vmaback.json */

/* Built and parsed back by json-c: every field, the time as a date. */
static void test_meta_build(void **state)
{
	struct vb_error err = { 0 };
	uint8_t uuid[16];
	const char *merged[] = { "11111111-1111-1111-1111-111111111111" };
	struct vb_meta_drive_in d = { "d\"q/x", 1, 12345, 1, "file", "/p/\xc3\xa9" };
	struct vb_meta_archive_in in = { .kind = VB_KIND_INCREMENTAL, .set = "s", .checkpoint = "c",
					 .parent_checkpoint = "p", .parent_uuid = "pu",
					 .merged = merged, .nmerged = 1, .time_ns = 77 };
	char *j;
	json_object *o, *x;

	(void)state;
	uuid_of(0xab, uuid);
	j = vb_meta_build(&in, uuid, 0, &d, 1, &err);
	assert_non_null(j);
	o = json_tokener_parse(j);
	assert_non_null(o);
	assert_true(json_object_object_get_ex(o, "format", &x));
	assert_string_equal(json_object_get_string(x), "vmaback");
	assert_true(json_object_object_get_ex(o, "uuid", &x));
	assert_string_equal(json_object_get_string(x), "abababab-abab-abab-abab-abababababab");
	assert_true(json_object_object_get_ex(o, "created", &x));
	assert_string_equal(json_object_get_string(x), "1970-01-01T00:00:00Z");
	assert_true(json_object_object_get_ex(o, "time_ns", &x));
	assert_int_equal(json_object_get_int64(x), 77);
	assert_true(json_object_object_get_ex(o, "merged_uuids", &x));
	assert_int_equal(json_object_array_length(x), 1);
	assert_true(json_object_object_get_ex(o, "drives", &x));
	x = json_object_array_get_idx(x, 0);
	assert_true(json_object_object_get_ex(x, "name", &x));
	assert_string_equal(json_object_get_string(x), "d\"q/x");
	json_object_put(o);
	free(j);
	/* no set, no merge, time 0: now, and the keys are there as null */
	setenv("VMABACK_TEST_NOW", "1704067200", 1);
	in = (struct vb_meta_archive_in){ .kind = VB_KIND_FULL };
	j = vb_meta_build(&in, uuid, 1704067200, &d, 1, &err);
	unsetenv("VMABACK_TEST_NOW");
	o = json_tokener_parse(j);
	assert_true(json_object_object_get_ex(o, "set", &x));
	assert_null(x);
	assert_false(json_object_object_get_ex(o, "merged_uuids", &x));
	assert_true(json_object_object_get_ex(o, "time_ns", &x));
	assert_int_equal(json_object_get_int64(x), (int64_t)1704067200 * 1000000000);
	assert_true(json_object_object_get_ex(o, "created", &x));
	assert_string_equal(json_object_get_string(x), "2024-01-01T00:00:00Z");
	json_object_put(o);
	free(j);
}

/* A vmaback.json matching the test header (drives a and b), to mutate. */
static const char meta_ok[] =
	"{ \"format\": \"vmaback\", \"format_version\": 1, \"kind\": \"incremental\",\n"
	"  \"set\": \"s\", \"checkpoint\": \"c2\", \"parent_checkpoint\": \"c1\",\n"
	"  \"parent_uuid\": \"01010101-0101-0101-0101-010101010101\", \"time_ns\": 5,\n"
	"  \"merged_uuids\": [ \"01010101-0101-0101-0101-010101010101\" ],\n"
	"  \"drives\": [ { \"name\": \"a\", \"dev_id\": 1, \"size\": 196608, \"clusters\": 1 },\n"
	"              { \"name\": \"b\", \"dev_id\": 2, \"size\": 66536, \"clusters\": 0 } ] }";

static char *meta_mutate(const char *from, const char *to)
{
	const char *at = strstr(meta_ok, from);
	char *out = NULL;

	if (!at)
		fail_msg("'%s' not in the template", from);
	assert_true(asprintf(&out, "%.*s%s%s", (int)(at - meta_ok), meta_ok, to,
			     at + strlen(from)) > 0);
	return out;
}

static void test_meta_rejects(void **state)
{
	static const struct {
		const char *from, *to, *says;
	} bad[] = {
		{ "\"time_ns\": 5", "\"time_ns\": 5", NULL }, /* control: accepted */
		{ "{ \"format\"", "[ \"format\"", "not valid JSON" },
		{ "] }", "] } x", "not valid JSON" },
		{ "] }", "] }}", "not valid JSON" },
		{ "\"vmaback\"", "\"vmabackup\"", "lacks format, kind or drives" },
		{ "\"kind\": \"incremental\"", "\"kinds\": \"incremental\"", "lacks format" },
		{ "\"kind\": \"incremental\"", "\"kind\": 1", "lacks format" },
		{ "\"drives\": [", "\"drives\": 1, \"x\": [", "lacks format" },
		{ "\"kind\": \"incremental\"", "\"kind\": \"partial\"", "unknown kind 'partial'" },
		{ "\"parent_uuid\"", "\"parent_uuid_\"", "without its parent" },
		{ "\"set\": \"s\"", "\"set\": null", "without its parent" },
		{ ",\n              { \"name\": \"b\", \"dev_id\": 2, \"size\": 66536, "
		  "\"clusters\": 0 }", "", "lists 1 drives, the header 2" },
		{ "\"clusters\": 0 }", "\"clusters\": 0 }, { \"name\": \"c\", \"dev_id\": 3, "
		  "\"size\": 1, \"clusters\": 0 }", "lists 3 drives" },
		{ "\"dev_id\": 2, \"size\": 66536, ", "\"dev_id\": 2, ", "drive 1 is incomplete" },
		{ "\"dev_id\": 1", "\"dev_id\": \"1\"", "drive 0 is incomplete" },
		{ "\"size\": 196608", "\"size\": 1.5", "drive 0 is incomplete" },
		{ "\"name\": \"a\"", "\"name\": null", "drive 0 is incomplete" },
		{ "\"dev_id\": 1", "\"dev_id\": 9", "that the header does not hold" },
		{ "\"dev_id\": 1", "\"dev_id\": 256", "that the header does not hold" },
		{ "\"name\": \"a\"", "\"name\": \"b\"", "that the header does not hold" },
		{ "\"size\": 196608", "\"size\": 0", "does not match" },
		{ "\"size\": 196608", "\"size\": 196609", "does not match" },
		{ "\"size\": 196608", "\"size\": 196096", "does not match" },
		{ "\"size\": 66536", "\"size\": 66024", "does not match" },
		{ "\"clusters\": 1 }", "\"clusters\": 4 }", "does not match" },
		{ "\"clusters\": 0 }", "\"clusters\": 3 }", "does not match" },
		/* negative numbers, which json-c's uint64 reading makes 0 */
		{ "\"clusters\": 1 }", "\"clusters\": -1 }", "drive 0 is incomplete" },
		{ "\"clusters\": 0 }", "\"clusters\": -5 }", "drive 1 is incomplete" },
		{ "\"dev_id\": 1", "\"dev_id\": -1", "drive 0 is incomplete" },
		{ "\"clusters\": 1 }", "\"clusters\": 18446744073709551615 }", "does not match" },
		{ "\"name\": \"b\", \"dev_id\": 2, \"size\": 66536",
		  "\"name\": \"a\", \"dev_id\": 1, \"size\": 196608", "twice" },
		{ "\"merged_uuids\": [", "\"merged_uuids\": 1, \"m\": [", "not a list" },
		{ "[ \"01010101-0101-0101-0101-010101010101\" ]", "[ \"0101\" ]", "not a uuid" },
		{ "[ \"01010101-0101-0101-0101-010101010101\" ]", "[ 1 ]", "not a uuid" },
	};
	struct vb_error err = { 0 };
	struct arc x = { .json = NULL, .mask = { 2, 0 }, .uuid = 2 };
	char *p = tpath(state, "m.vma");

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *j = meta_mutate(bad[i].from, bad[i].to);
		struct vb_archive *a;

		x.json = j;
		make_archive(p, &x);
		vb_error_clear(&err);
		a = vb_archive_open(p, &err);
		if (!bad[i].says) {
			if (!a)
				fail_msg("control refused: %s", err.msg);
			assert_string_equal(vb_archive_meta(a)->parent_checkpoint, "c1");
			assert_int_equal(vb_archive_meta(a)->nmerged, 1);
			vb_archive_free(a);
		} else {
			if (a)
				fail_msg("case %zu accepted: %s -> %s", i, bad[i].from, bad[i].to);
			assert_int_equal(err.cls, VB_E_INVALID);
			if (!strstr(err.msg, bad[i].says))
				fail_msg("case %zu: '%s' does not say '%s'", i, err.msg, bad[i].says);
			assert_non_null(strstr(err.msg, p)); /* names the file */
		}
		free(j);
	}
	/* a NUL inside the blob */
	{
		char j[sizeof(meta_ok) + 1];

		memcpy(j, meta_ok, sizeof(meta_ok));
		j[sizeof(meta_ok)] = 'x';
		x.json = j;
		x.json_len = sizeof(meta_ok) + 1;
		make_archive(p, &x);
		vb_error_clear(&err);
		assert_null(vb_archive_open(p, &err));
		assert_non_null(strstr(err.msg, "not valid JSON"));
	}
	free(p);
}

/* ============================================================== chains */

/* The merged stream: each cluster once, ascending, from the newest archive
 * that holds it; the newest archive's metadata. */
static void test_chain_merge(void **state)
{
	struct vb_error err = { 0 };
	char *f = arc_at(state, "f.vma", &FULL), *i1 = arc_at(state, "i1.vma", &INC1);
	char *i2 = arc_at(state, "i2.vma", &INC2);
	const char *paths[] = { f, i1, i2 };
	struct vb_chain *c = vb_chain_open(paths, 3, &err);
	struct vma_cluster cl;
	/* drive a: 0 full, 1 i2, 2 i2; drive b: 0 i2, 1 full */
	const struct {
		unsigned dev, num;
		const struct arc *from;
	} want[] = { { 1, 0, &FULL }, { 1, 1, &INC2 }, { 1, 2, &INC2 }, { 2, 0, &INC2 },
		     { 2, 1, &FULL } };
	uint8_t *buf = malloc(CL);
	size_t k = 0;
	int rc;

	if (!c)
		fail_msg("%s", err.msg);
	assert_int_equal(vb_chain_length(c), 3);
	assert_string_equal(vb_chain_meta(c)->checkpoint, "c3");
	assert_string_equal(vb_archive_meta(vb_chain_archive(c, 0))->checkpoint, "c1");
	assert_null(vb_chain_archive(c, 3));
	while ((rc = vb_chain_next(c, &cl, &err)) == 1) {
		assert_true(k < 5);
		assert_int_equal(cl.dev_id, want[k].dev);
		assert_int_equal(cl.cluster_num, want[k].num);
		cluster_data(want[k].from, cl.dev_id - 1, cl.cluster_num, buf);
		assert_memory_equal(cl.data, buf, CL);
		k++;
	}
	assert_int_equal(rc, 0);
	assert_int_equal(k, 5);
	vb_chain_free(c);
	/* a differential after an incremental builds on the full */
	{
		struct arc d = INC2;
		char *dp;
		const char *p2[] = { f, i1, NULL };

		d.kind = "differential";
		d.parent = 1;
		dp = arc_at(state, "d.vma", &d);
		p2[2] = dp;
		c = vb_chain_open(p2, 3, &err);
		assert_non_null(c);
		vb_chain_free(c);
		free(dp);
	}
	free(buf);
	free(f);
	free(i1);
	free(i2);
}

static void expect_chain_refused(const char *const *paths, size_t n, const char *says)
{
	struct vb_error err = { 0 };
	struct vb_chain *c = vb_chain_open(paths, n, &err);

	if (c)
		fail_msg("chain accepted (expected: %s)", says);
	assert_int_equal(err.cls, VB_E_USAGE);
	if (!strstr(err.msg, says))
		fail_msg("'%s' does not say '%s'", err.msg, says);
}

static void test_chain_refusals(void **state)
{
	struct arc x;
	char *f = arc_at(state, "f.vma", &FULL), *i1 = arc_at(state, "i1.vma", &INC1);
	char *i2 = arc_at(state, "i2.vma", &INC2), *other, *f2, *older, *drives, *px, *noset;

	x = INC1;
	x.set = "t";
	other = arc_at(state, "other.vma", &x);
	x = FULL;
	x.uuid = 9;
	x.time_ns = 1500;
	f2 = arc_at(state, "f2.vma", &x);
	x = INC2;
	x.kind = "differential";
	x.parent = 1;
	x.time_ns = 1500; /* before i1 */
	older = arc_at(state, "older.vma", &x);
	x = INC1;
	x.size_b = 2 * CL;
	drives = arc_at(state, "drives.vma", &x);
	x = FULL;
	x.foreign = true;
	px = arc_at(state, "px.vma", &x);
	x = FULL;
	x.noset = true;
	noset = arc_at(state, "noset.vma", &x);

	expect_chain_refused((const char *[]){ f, i2 }, 2, "a gap in the chain");
	expect_chain_refused((const char *[]){ f, i2, i1 }, 3, "a gap in the chain");
	expect_chain_refused((const char *[]){ f, i1, i1 }, 3, "given twice");
	expect_chain_refused((const char *[]){ f, f }, 2, "only the first archive");
	expect_chain_refused((const char *[]){ f, i1, f2 }, 3, "only the first archive");
	expect_chain_refused((const char *[]){ f, other }, 2, "belongs to backup set 't'");
	expect_chain_refused((const char *[]){ noset, i1 }, 2, "the chain's full archive to '?'");
	expect_chain_refused((const char *[]){ f, i1, older }, 3, "is older than");
	expect_chain_refused((const char *[]){ f, drives }, 2, "other drives");
	expect_chain_refused((const char *[]){ i1 }, 1, "a chain starts with a full archive");
	expect_chain_refused((const char *[]){ px, i1 }, 2, "not written by vmaback");
	expect_chain_refused((const char *[]){ f }, 0, "no archive given");
	{
		struct vb_error err = { 0 };
		struct vb_chain *c = vb_chain_open((const char *[]){ px }, 1, &err);

		assert_non_null(c); /* a Proxmox full alone is a chain */
		vb_chain_free(c);
		char *none = tpath(state, "none");

		c = vb_chain_open((const char *[]){ none }, 1, &err);
		assert_null(c);
		assert_int_equal(err.cls, VB_E_USAGE);
		free(none);
	}
	free(f);
	free(i1);
	free(i2);
	free(other);
	free(f2);
	free(older);
	free(drives);
	free(px);
	free(noset);
}

/* Standard input carries one archive: the second "-" is refused. */
static void test_chain_stdin_once(void **state)
{
	char *f = arc_at(state, "f.vma", &FULL);
	int saved = dup(STDIN_FILENO), fd = open(f, O_RDONLY | O_CLOEXEC);

	assert_true(saved >= 0 && fd >= 0);
	assert_int_equal(dup2(fd, STDIN_FILENO), STDIN_FILENO);
	close(fd);
	expect_chain_refused((const char *[]){ "-", "-" }, 2, "standard input can carry one");
	assert_int_equal(dup2(saved, STDIN_FILENO), STDIN_FILENO);
	close(saved);
	free(f);
}

/* A synthetic full (merge) stands for the archives it merged: what followed
 * any of them follows it. */
static void test_chain_synthetic_full(void **state)
{
	struct vb_error err = { 0 };
	char *u1 = uuid_str(1), *u2 = uuid_str(2);
	const char *merged[] = { u1, u2 };
	struct arc syn = FULL;
	char *s, *i2 = arc_at(state, "i2.vma", &INC2);
	struct vb_chain *c;

	syn.uuid = 7;
	syn.time_ns = 2000;
	syn.merged = merged;
	syn.nmerged = 2;
	s = arc_at(state, "syn.vma", &syn);
	c = vb_chain_open((const char *[]){ s, i2 }, 2, &err);
	if (!c)
		fail_msg("%s", err.msg);
	assert_int_equal(vb_archive_meta(vb_chain_archive(c, 0))->nmerged, 2);
	vb_chain_free(c);
	syn.nmerged = 1; /* stands for u1 only: i2's parent u2 is missing */
	make_archive(s, &syn);
	expect_chain_refused((const char *[]){ s, i2 }, 2, "a gap in the chain");
	free(u1);
	free(u2);
	free(s);
	free(i2);
}

/* A member that is not sorted cannot be merged; one that lacks clusters it
 * announced fails at its end. A single archive may come in any order. */
static void test_chain_stream_errors(void **state)
{
	struct vb_error err = { 0 };
	struct arc x = FULL;
	char *f, *i1 = arc_at(state, "i1.vma", &INC1);
	struct vb_chain *c;
	struct vma_cluster cl;
	int rc;

	x.descending = true;
	f = arc_at(state, "f.vma", &x);
	c = vb_chain_open((const char *[]){ f }, 1, &err);
	assert_non_null(c);
	while ((rc = vb_chain_next(c, &cl, &err)) == 1)
		;
	assert_int_equal(rc, 0);
	vb_chain_free(c);
	c = vb_chain_open((const char *[]){ f, i1 }, 2, &err);
	assert_non_null(c);
	while ((rc = vb_chain_next(c, &cl, &err)) == 1)
		;
	assert_int_equal(rc, -1);
	assert_int_equal(err.cls, VB_E_INVALID);
	assert_non_null(strstr(err.msg, "not in ascending order"));
	vb_chain_free(c);

	make_archive(f, &FULL);
	x = INC1;
	x.clusters[0] = 3;
	make_archive(i1, &x);
	vb_error_clear(&err);
	c = vb_chain_open((const char *[]){ f, i1 }, 2, &err);
	assert_non_null(c);
	while ((rc = vb_chain_next(c, &cl, &err)) == 1)
		;
	assert_int_equal(rc, -1);
	assert_non_null(strstr(err.msg, "vmaback.json says 3"));
	vb_chain_free(c);
	free(f);
	free(i1);
}

/* ============================================================== index */

/* The chain's newest point, drive by drive, as the merged stream has it. */
static void chain_image(const char *const *paths, size_t n, uint8_t *img[2], uint64_t size[2])
{
	struct vb_error err = { 0 };
	struct vb_chain *c = vb_chain_open(paths, n, &err);
	struct vma_cluster cl;
	int rc;

	assert_non_null(c);
	for (unsigned d = 0; d < 2; d++) {
		size[d] = vb_chain_meta(c)->drives[d].size;
		img[d] = calloc(1, vma_clusters_of(size[d]) * CL);
		assert_non_null(img[d]);
	}
	while ((rc = vb_chain_next(c, &cl, &err)) == 1)
		memcpy(img[cl.dev_id - 1] + (size_t)cl.cluster_num * CL, cl.data, CL);
	assert_int_equal(rc, 0);
	vb_chain_free(c);
}

struct runs {
	uint64_t next;
	uint64_t data;
	const uint8_t *img;
};

static int count_run(void *opaque, uint64_t off, uint64_t len, bool data)
{
	struct runs *r = opaque;

	assert_int_equal(off, r->next);
	r->next = off + len;
	if (data)
		r->data += len;
	else
		for (uint64_t k = 0; k < len; k++)
			assert_int_equal(r->img[off + k], 0);
	return 0;
}

/* x reads as the chain's newest point, read whole and in pieces. */
static void check_index(struct vb_index *x, const char *const *paths, size_t n)
{
	struct vb_error err = { 0 };
	uint8_t *img[2], *buf;
	uint64_t size[2];

	chain_image(paths, n, img, size);
	for (unsigned d = 0; d < 2; d++) {
		struct runs r = { 0, 0, img[d] };

		assert_int_equal(vb_index_meta(x)->drives[d].size, size[d]);
		buf = malloc(size[d]);
		assert_non_null(buf);
		assert_int_equal(vb_index_pread(x, d, buf, size[d], 0, &err), 0);
		assert_memory_equal(buf, img[d], size[d]);
		/* odd pieces, across blocks and clusters */
		for (uint64_t off = 0; off < size[d]; off += 7777) {
			size_t len = (size_t)(size[d] - off < 70001 ? size[d] - off : 70001);

			assert_int_equal(vb_index_pread(x, d, buf, len, off, &err), 0);
			assert_memory_equal(buf, img[d] + off, len);
		}
		assert_int_equal(vb_index_extents(x, d, 0, size[d], count_run, &r, &err), 0);
		assert_int_equal(r.next, size[d]);
		assert_true(r.data > 0);
		assert_int_equal(vb_index_pread(x, d, buf, 2, size[d] - 1, &err), -1);
		vb_error_clear(&err);
		free(buf);
		free(img[d]);
	}
}

static void expect_index(const char *const *paths, size_t n)
{
	struct vb_error err = { 0 };
	struct vb_index *x = vb_index_open(paths, n, &err);

	if (!x)
		fail_msg("%s", err.msg);
	check_index(x, paths, n);
	vb_index_free(x);
}

static void test_index_chain(void **state)
{
	/* a differential on the full after two incrementals: drive a's cluster
	 * 0 is zero again (fill 0), drive b's partial cluster 1 changes */
	struct arc dif = { .kind = "differential", .ckpt = "c4", .pckpt = "c1", .uuid = 4,
			   .parent = 1, .time_ns = 4000, .mask = { 3, 2 }, .fill = 0 };
	char *f = arc_at(state, "f.vma", &FULL), *i1 = arc_at(state, "i1.vma", &INC1);
	char *i2 = arc_at(state, "i2.vma", &INC2), *dp = arc_at(state, "d.vma", &dif);
	const char *paths[] = { f, i1, i2, dp };
	struct vb_error err = { 0 };
	struct vb_index *x;

	for (size_t n = 1; n <= 4; n++)
		expect_index(paths, n);
	x = vb_index_open(paths, 4, &err);
	assert_non_null(x);
	/* drive a: cluster 0 zero again, 1 and 2 hold data; drive b: both */
	assert_int_equal(vb_index_clusters(x, 0), 2);
	assert_int_equal(vb_index_clusters(x, 1), 2);
	assert_int_equal(vb_index_frames_started(x), 0);
	vb_index_free(x);
	free(f);
	free(i1);
	free(i2);
	free(dp);
	/* the same chain as seekable zstd (a plain full under zstd successors) */
	{
		struct arc zf = FULL, z2 = INC2, zd = dif;
		char *p[4];

		zf.zstd = z2.zstd = zd.zstd = true;
		p[0] = arc_at(state, "f.vma.zst", &zf);
		p[1] = arc_at(state, "i1.vma", &INC1);
		p[2] = arc_at(state, "i2.vma.zst", &z2);
		p[3] = arc_at(state, "d.vma.zst", &zd);
		expect_index((const char *const *)p, 4);
		x = vb_index_open((const char *const *)p, 4, &err);
		assert_non_null(x);
		assert_true(vb_index_frames_started(x) > 0);
		vb_index_free(x);
		for (int k = 0; k < 4; k++)
			free(p[k]);
	}
}

static void test_index_refusals(void **state)
{
	struct arc z = FULL;
	char *f = arc_at(state, "f.vma", &FULL), *t = tpath(state, "t.vma"), *zp;
	const char *one[1];
	struct vb_error err = { 0 };
	struct stat st;
	int fd;

	/* truncated inside the data of its last extent */
	assert_int_equal(stat(f, &st), 0);
	fd = open(t, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	{
		size_t len = (size_t)st.st_size - 100, all;
		uint8_t *b = read_file(f, &all);

		assert_int_equal(write(fd, b, len), (ssize_t)len);
		free(b);
	}
	close(fd);
	one[0] = t;
	assert_null(vb_index_open(one, 1, &err));
	assert_int_equal(err.cls, VB_E_INVALID);
	assert_non_null(strstr(err.msg, "stream ended inside"));
	vb_error_clear(&err);
	/* one zstd frame, no seek table */
	z.zstd = true;
	z.single_frame = true;
	zp = arc_at(state, "z.vma.zst", &z);
	one[0] = zp;
	assert_null(vb_index_open(one, 1, &err));
	assert_int_equal(err.cls, VB_E_USAGE);
	assert_non_null(strstr(err.msg, "without a seek table"));
	free(f);
	free(t);
	free(zp);
}

/* The index of vb_index_save, read back by vb_index_load for the same
 * chain, without a pass over the extents (vmaback serve builds it once). */
static void test_index_file(void **state)
{
	struct arc zf = FULL, z2 = INC2;
	char *p[3], *file = tpath(state, "idx"), *other = NULL;
	struct vb_error err = { 0 };
	struct vb_index *x, *y;
	struct stat st;
	uint8_t *b;
	size_t len;
	int fd;

	zf.zstd = z2.zstd = true;
	p[0] = arc_at(state, "f.vma.zst", &zf);
	p[1] = arc_at(state, "i1.vma", &INC1);
	p[2] = arc_at(state, "i2.vma.zst", &z2);
	x = vb_index_open((const char *const *)p, 3, &err);
	assert_non_null(x);
	fd = open(file, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(vb_index_save(x, fd, &err), 0);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	y = vb_index_load((const char *const *)p, 3, fd, &err);
	if (!y)
		fail_msg("%s", err.msg);
	assert_int_equal(err.cls, VB_OK);
	/* nothing decompressed to build it: the extents were not read again */
	assert_int_equal(vb_index_frames_started(y), 0);
	for (size_t d = 0; d < 2; d++)
		assert_int_equal(vb_index_clusters(y, d), vb_index_clusters(x, d));
	check_index(y, (const char *const *)p, 3);
	vb_index_free(y);
	vb_index_free(x);
	/* another chain: two archives, or the same count with another one */
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	assert_null(vb_index_load((const char *const *)p, 2, fd, &err));
	assert_int_equal(err.cls, VB_E_INVALID);
	if (!strstr(err.msg, "not the index of this chain"))
		fail_msg("%s", err.msg);
	vb_error_clear(&err);
	{
		struct arc o = INC2; /* the same place in the chain, another archive */

		o.uuid = 9;
		other = arc_at(state, "o.vma", &o);
	}
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	{
		const char *q[3] = { p[0], p[1], other };

		assert_null(vb_index_load(q, 3, fd, &err));
	}
	assert_non_null(strstr(err.msg, "archive 3 of the chain is not the one indexed"));
	vb_error_clear(&err);
	/* truncated, or longer */
	assert_int_equal(fstat(fd, &st), 0);
	b = read_file(file, &len);
	assert_int_equal(ftruncate(fd, st.st_size - 1), 0);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	assert_null(vb_index_load((const char *const *)p, 3, fd, &err));
	assert_non_null(strstr(err.msg, "index file: truncated"));
	vb_error_clear(&err);
	assert_int_equal(pwrite(fd, b + len - 1, 1, st.st_size - 1), 1);
	assert_int_equal(pwrite(fd, "x", 1, st.st_size), 1);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	assert_null(vb_index_load((const char *const *)p, 3, fd, &err));
	assert_non_null(strstr(err.msg, "longer than its entries"));
	vb_error_clear(&err);
	/* an entry beyond its drive: the last entry's cluster */
	assert_int_equal(ftruncate(fd, st.st_size), 0);
	b[len - 8] = 0xff;
	b[len - 7] = 0xff;
	assert_int_equal(pwrite(fd, b, len, 0), (ssize_t)len);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	assert_null(vb_index_load((const char *const *)p, 3, fd, &err));
	assert_non_null(strstr(err.msg, "is not one of its archives'"));
	close(fd);
	free(b);
	free(file);
	free(other);
	for (int k = 0; k < 3; k++)
		free(p[k]);
}

/* vb_error_from_vma: the one conversion of the VMA library's codes. */
static void test_error_from_vma(void **state)
{
	struct vb_error err = { 0 };

	(void)state;
	assert_int_equal(vb_error_from_vma(&err, VMA_ERR_EXTENT_MD5, 0, "extent: bad MD5", "a.vma"), -1);
	assert_int_equal(err.cls, VB_E_INVALID);
	assert_string_equal(err.msg, "a.vma: extent: bad MD5");
	vb_error_clear(&err);
	vb_error_from_vma(&err, VMA_ERR_LIMIT, 0, "too many devices", "a.vma");
	assert_int_equal(err.cls, VB_E_INVALID);
	vb_error_clear(&err);
	vb_error_from_vma(&err, VMA_ERR_NOMEM, 0, "header: out of memory", "a.vma");
	assert_int_equal(err.cls, VB_E_FAIL);
	assert_int_equal(err.sys_errno, ENOMEM);
	vb_error_clear(&err);
	vb_error_from_vma(&err, VMA_ERR_USAGE, 0, "not allowed", "archive");
	assert_int_equal(err.cls, VB_E_FAIL);
	vb_error_clear(&err);
	vb_error_from_vma(&err, VMA_ERR_IO, EIO, "read failed", "a.vma");
	assert_int_equal(err.cls, VB_E_FAIL);
	assert_int_equal(err.sys_errno, EIO);
	/* the callback's own error, already there, stays */
	vb_error_clear(&err);
	vb_error_set(&err, VB_E_INVALID, 0, "a.vma.zst: truncated zstd frame");
	vb_error_from_vma(&err, VMA_ERR_IO, EIO, "read failed", "a.vma");
	assert_int_equal(err.cls, VB_E_INVALID);
	assert_string_equal(err.msg, "a.vma.zst: truncated zstd frame");
	vb_error_clear(&err);
	vb_error_from_vma(&err, VMA_ERR_HEADER_MAGIC, 0, NULL, "b.vma");
	assert_string_equal(err.msg, "b.vma: unknown error");
}

static int discard_write(void *opaque, const void *buf, size_t len)
{
	(void)opaque, (void)buf, (void)len;
	return 0;
}

/* The writer's refusals are the backup's failure, never "invalid". */
static void test_error_vma_writer(void **state)
{
	struct vb_error err = { 0 };
	struct vma_writer *w = vma_writer_new(discard_write, NULL);
	char *name = malloc(VMA_MAX_BLOB_LEN + 2);

	(void)state;
	assert_non_null(w);
	assert_non_null(name);
	memset(name, 'x', VMA_MAX_BLOB_LEN + 1);
	name[VMA_MAX_BLOB_LEN + 1] = 0;
	assert_true(vma_writer_add_device(w, name, 4096) < 0);
	assert_int_equal(vma_writer_errcode(w), VMA_ERR_LIMIT);
	assert_int_equal(vb_error_vma(&err, w), -1);
	assert_int_equal(err.cls, VB_E_FAIL);
	assert_non_null(strstr(err.msg, "archive: device xxx"));
	vma_writer_free(w);
	free(name);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, tdir_setup, tdir_teardown)
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_error_from_vma),
		cmocka_unit_test(test_error_vma_writer),
		T(test_open_full),
		T(test_open_zstd),
		T(test_open_fd),
		T(test_open_errors),
		T(test_foreign),
		T(test_verify_counts),
		cmocka_unit_test(test_meta_build),
		T(test_meta_rejects),
		T(test_chain_merge),
		T(test_chain_refusals),
		T(test_chain_stdin_once),
		T(test_chain_synthetic_full),
		T(test_chain_stream_errors),
		T(test_index_chain),
		T(test_index_refusals),
		T(test_index_file),
	};
#undef T

	return cmocka_run_group_tests_name("archive", tests, NULL, NULL);
}
