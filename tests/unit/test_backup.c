/* test_backup.c: unit tests of core/backup: the transaction on raw files in
 * a temporary directory, the archive read back as a chain (core/archive):
 * full and incremental content, what the state commits, and the failure
 * paths (a sink that fails, a cancel, the threshold, a name taken, drives
 * that changed) commit nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "test_support.h"

#include "bitmap/bitmap.h"
#include "core/archive/archive.h"
#include "core/backup/backup.h"
#include "core/store/store.h"

#define MIB (1024 * 1024)
#define CL 65536

struct fx {
	struct tdir t;           /* first: tdir's helpers take the fixture */
	char *disk[2];
	char *state_dir;
};

static int setup(void **state)
{
	struct fx *f;
	unsigned char *buf = malloc(2 * MIB);

	assert_int_equal(tdir_setup(state), 0);
	f = realloc(*state, sizeof(*f));
	assert_non_null(f);
	*state = f;
	for (int i = 0; i < 2; i++) {
		assert_true(asprintf(&f->disk[i], "%s/d%d.raw", f->t.path, i) > 0);
		for (size_t k = 0; k < 2 * MIB; k++)
			buf[k] = (unsigned char)(k / CL * 7 + (size_t)i * 13 + 1);
		write_file(f->disk[i], buf, (size_t)(i + 1) * MIB);
	}
	assert_true(asprintf(&f->state_dir, "%s/st", f->t.path) > 0);
	assert_int_equal(mkdir(f->state_dir, 0700), 0);
	free(buf);
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	for (int i = 0; i < 2; i++)
		free(f->disk[i]);
	free(f->state_dir);
	return tdir_teardown(state);
}

/* Overwrites cluster c of disk i with byte v. */
static void poke(struct fx *f, int i, unsigned c, unsigned char v)
{
	unsigned char buf[CL];
	int fd = open(f->disk[i], O_WRONLY | O_CLOEXEC);

	memset(buf, v, sizeof(buf));
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, buf, CL, (off_t)c * CL), CL);
	close(fd);
}

/* One backup of both disks into archive name (in the fixture's directory):
 * rc of prepare+run; *res filled. */
static int backup(struct fx *f, const char *name, enum vb_mode mode, uint64_t threshold,
		  const volatile sig_atomic_t *cancel, struct vb_backup_result *res,
		  struct vb_error *err)
{
	struct vb_drive d[2] = { { "drive-scsi0", f->disk[0], NULL },
				 { "drive-scsi1", f->disk[1], NULL } };
	char *out = NULL;
	struct vb_state *s = vb_state_open(f->state_dir, "vm", err);
	struct vb_backup_opts o = {
		.drives = d, .ndrives = 2, .state = s, .mode = mode, .threshold = threshold,
		.cancel = cancel,
	};
	struct vb_writer *sink;
	struct vb_backup *b;
	int rc = -1;

	assert_non_null(s);
	assert_true(asprintf(&out, "%s/%s", f->t.path, name) > 0);
	o.archive_path = out;
	b = vb_backup_prepare(&o, err);
	if (b && (sink = vb_sink_file_new(out, false, err)))
		rc = vb_backup_run(b, sink, res, err);
	vb_backup_free(b);
	vb_state_close(s);
	free(out);
	return rc;
}

static size_t ckpt_count(struct fx *f)
{
	struct vb_error err = { 0 };
	struct vb_state *s = vb_state_open_read(f->state_dir, "vm", &err);
	size_t n;

	if (!s)
		return 0; /* no state yet */
	n = vb_state_count(s);
	vb_state_close(s);
	return n;
}

/* The chain restores both disks exactly as they are now. */
static void chain_equals_disks(struct fx *f, const char *const *names, size_t n)
{
	struct vb_error err = { 0 };
	const char *paths[8];
	char *own[8];
	struct vma_cluster cl;
	unsigned char *disk[2];
	size_t len[2], seen = 0;
	struct vb_chain *c;
	int r;

	for (size_t i = 0; i < n; i++) {
		assert_true(asprintf(&own[i], "%s/%s", f->t.path, names[i]) > 0);
		paths[i] = own[i];
	}
	for (int i = 0; i < 2; i++)
		disk[i] = read_file(f->disk[i], &len[i]);
	c = vb_chain_open(paths, n, &err);
	assert_non_null(c);
	while ((r = vb_chain_next(c, &cl, &err)) == 1) {
		size_t off = (size_t)cl.cluster_num * CL;

		assert_true(cl.dev_id == 1 || cl.dev_id == 2);
		assert_true(off < len[cl.dev_id - 1]);
		assert_memory_equal(cl.data, disk[cl.dev_id - 1] + off, CL);
		seen++;
	}
	assert_int_equal(r, 0);
	assert_int_equal(seen, (len[0] + len[1]) / CL);
	vb_chain_free(c);
	for (size_t i = 0; i < n; i++)
		free(own[i]);
	free(disk[0]);
	free(disk[1]);
}

static void full_then_incremental(void **state)
{
	struct fx *f = *state;
	struct vb_backup_result res;
	struct vb_error err = { 0 };
	const char *chain[] = { "full.vma", "inc.vma" };

	assert_int_equal(backup(f, "full.vma", VB_MODE_AUTO, 0, NULL, &res, &err), 0);
	assert_string_equal(vb_kind_name(res.kind), "full");
	assert_true(res.committed);
	assert_int_equal(res.clusters, 3 * MIB / CL);
	chain_equals_disks(f, chain, 1);
	poke(f, 0, 3, 0xee);
	poke(f, 1, 20, 0xdd);
	poke(f, 1, 21, 0xdc);
	assert_int_equal(backup(f, "inc.vma", VB_MODE_AUTO, 0, NULL, &res, &err), 0);
	assert_string_equal(vb_kind_name(res.kind), "incremental");
	assert_int_equal(res.dirty_clusters, 3);
	assert_int_equal(res.clusters, 3);
	assert_int_equal(ckpt_count(f), 2);
	chain_equals_disks(f, chain, 2);
}

/* An incremental whose changes lie apart (gathered into one read) and in a
 * run (read as a range), a changed cluster that became zero among them:
 * the chain restores the disks, and the archive's recorded digest (a plain
 * archive of a set: vma-tree-1 from the cluster digests) checks out. */
static void scattered_incremental(void **state)
{
	struct fx *f = *state;
	struct vb_backup_result res;
	struct vb_error err = { 0 };
	const char *chain[] = { "full.vma", "inc.vma" };
	unsigned scattered[] = { 0, 2, 5, 9, 24, 31 };
	struct vb_state *s;

	assert_int_equal(backup(f, "full.vma", VB_MODE_AUTO, 0, NULL, &res, &err), 0);
	assert_true(res.tree);
	for (size_t i = 0; i < sizeof(scattered) / sizeof(scattered[0]); i++)
		poke(f, 1, scattered[i], scattered[i] == 24 ? 0 : (unsigned char)(0x80 + i));
	for (unsigned c = 12; c < 22; c++)
		poke(f, 1, c, 0x42);
	poke(f, 0, 7, 0x11);
	assert_int_equal(backup(f, "inc.vma", VB_MODE_AUTO, 0, NULL, &res, &err), 0);
	assert_string_equal(vb_kind_name(res.kind), "incremental");
	assert_int_equal(res.dirty_clusters, 6 + 10 + 1);
	assert_int_equal(res.clusters, 6 + 10 + 1);
	chain_equals_disks(f, chain, 2);
	s = vb_state_open_read(f->state_dir, "vm", &err);
	assert_non_null(s);
	assert_non_null(vb_state_latest(s)->archive_digest);
	assert_int_equal(vb_ckpt_check_archive(vb_state_latest(s), &err), 0);
	/* the archive's cluster digests, written during the copy: one per
	 * cluster it holds, each that of the cluster's data */
	{
		struct vb_adigests ad;
		unsigned char cl[CL];
		uint8_t want[32];

		assert_int_equal(vb_adigests_load(s, vb_state_latest(s)->drives[1].archive_digests,
						  &ad, &err), 0);
		assert_int_equal(ad.n, 6 + 10);
		memset(cl, 0x80 + 2, sizeof(cl));
		assert_int_equal(digest_cluster(cl, CL, want), 0);
		assert_non_null(vb_adigests_find(&ad, 5));
		assert_memory_equal(vb_adigests_find(&ad, 5), want, 32);
		assert_null(vb_adigests_find(&ad, 6));
		free(ad.entries);
	}
	vb_state_close(s);
}

/* A sink that cannot be written (the archive's directory is gone): the
 * run fails, nothing is committed, no archive appears. */
static void failing_sink_commits_nothing(void **state)
{
	struct fx *f = *state;
	struct vb_backup_result res;
	struct vb_error err = { 0 };
	struct stat st;
	char *p;

	assert_int_equal(backup(f, "full.vma", VB_MODE_FULL, 0, NULL, &res, &err), 0);
	poke(f, 0, 1, 0x11);
	vb_error_clear(&err);
	assert_int_equal(backup(f, "no/such/dir/inc.vma", VB_MODE_AUTO, 0, NULL, &res, &err), -1);
	assert_int_not_equal(err.cls, VB_OK);
	assert_int_equal(ckpt_count(f), 1);
	p = tpath(state, "no");
	assert_int_equal(stat(p, &st), -1);
	free(p);
}

static void cancel_commits_nothing(void **state)
{
	struct fx *f = *state;
	struct vb_backup_result res;
	struct vb_error err = { 0 };
	volatile sig_atomic_t cancel = 1;
	struct stat st;
	char *p = tpath(state, "full.vma");

	assert_int_equal(backup(f, "full.vma", VB_MODE_FULL, 0, &cancel, &res, &err), -1);
	assert_int_equal(err.cls, VB_E_CANCELED);
	assert_int_equal(ckpt_count(f), 0);
	assert_int_equal(stat(p, &st), -1);
	free(p);
}

/* Below the threshold: success, nothing kept; the next run holds the
 * change. */
static void threshold_keeps_changes_for_later(void **state)
{
	struct fx *f = *state;
	struct vb_backup_result res;
	struct vb_error err = { 0 };
	const char *chain[] = { "full.vma", "inc2.vma" };

	assert_int_equal(backup(f, "full.vma", VB_MODE_AUTO, 0, NULL, &res, &err), 0);
	poke(f, 1, 5, 0x55);
	assert_int_equal(backup(f, "inc1.vma", VB_MODE_AUTO, 2 * CL, NULL, &res, &err), 0);
	assert_true(res.skipped);
	assert_false(res.committed);
	assert_int_equal(ckpt_count(f), 1);
	poke(f, 0, 9, 0x66);
	assert_int_equal(backup(f, "inc2.vma", VB_MODE_AUTO, 2 * CL, NULL, &res, &err), 0);
	assert_false(res.skipped);
	assert_int_equal(res.dirty_clusters, 2);
	chain_equals_disks(f, chain, 2);
}

/* A drive that changed size: --mode auto takes a full backup (a note),
 * --mode incremental refuses. */
static void changed_drives(void **state)
{
	struct fx *f = *state;
	struct vb_backup_result res;
	struct vb_error err = { 0 };
	unsigned char big[CL] = { 1 };
	int fd;

	assert_int_equal(backup(f, "full.vma", VB_MODE_AUTO, 0, NULL, &res, &err), 0);
	fd = open(f->disk[0], O_WRONLY | O_APPEND | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, big, sizeof(big)), CL);
	close(fd);
	assert_int_equal(backup(f, "inc.vma", VB_MODE_INCREMENTAL, 0, NULL, &res, &err), -1);
	assert_int_equal(err.cls, VB_E_USAGE);
	assert_non_null(strstr(err.msg, "changed size"));
	vb_error_clear(&err);
	assert_int_equal(backup(f, "full2.vma", VB_MODE_AUTO, 0, NULL, &res, &err), 0);
	assert_string_equal(vb_kind_name(res.kind), "full");
	assert_int_equal(ckpt_count(f), 2);
}

/* A checkpoint name the set has is refused before anything is written. */
static void checkpoint_name_taken(void **state)
{
	struct fx *f = *state;
	struct vb_drive d = { "drive-scsi0", f->disk[0], NULL };
	struct vb_error err = { 0 };
	struct vb_backup_result res;
	struct vb_state *s;
	struct vb_backup *b;
	struct vb_backup_opts o = { .drives = &d, .ndrives = 1, .mode = VB_MODE_AUTO };

	assert_int_equal(backup(f, "full.vma", VB_MODE_AUTO, 0, NULL, &res, &err), 0);
	s = vb_state_open(f->state_dir, "vm", &err);
	assert_non_null(s);
	o.state = s;
	o.checkpoint = res.checkpoint;
	b = vb_backup_prepare(&o, &err);
	assert_null(b);
	assert_int_equal(err.cls, VB_E_USAGE);
	assert_non_null(strstr(err.msg, "already has a checkpoint"));
	vb_state_close(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(full_then_incremental, setup, teardown),
		cmocka_unit_test_setup_teardown(scattered_incremental, setup, teardown),
		cmocka_unit_test_setup_teardown(failing_sink_commits_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(cancel_commits_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(threshold_keeps_changes_for_later, setup, teardown),
		cmocka_unit_test_setup_teardown(changed_drives, setup, teardown),
		cmocka_unit_test_setup_teardown(checkpoint_name_taken, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
