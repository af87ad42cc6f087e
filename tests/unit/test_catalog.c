/* test_prune.c: unit tests of core/prune.c and core/dumpdir.c: the keep-*
 * selection (Proxmox's rules), the dependencies of kept backups, and the
 * names of archives in a dump directory. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bitmap/bitmap.h"
#include "core/catalog/catalog.h"
#include "core/store/store.h"

#include "tests/unit/test_support.h"

#define DAY 86400
/* 2024-01-01 00:00:00 UTC, a Monday */
#define T0 1704067200

static void test_keep_last(void **st)
{
	int64_t t[10];
	int why[10];
	struct vb_keep k = { .last = 3 };

	(void)st;
	for (int i = 0; i < 10; i++)
		t[i] = T0 + i * DAY;
	vb_prune_select(t, NULL, 10, &k, why);
	for (int i = 0; i < 10; i++)
		assert_int_equal(why[i], i >= 7 ? VB_KEEP_LAST : VB_KEEP_NO);
}

static void test_no_rule_keeps_all(void **st)
{
	int64_t t[3] = { T0, T0 + DAY, T0 + 2 * DAY };
	int why[3];
	struct vb_keep k = { 0 };

	(void)st;
	vb_prune_select(t, NULL, 3, &k, why);
	for (int i = 0; i < 3; i++)
		assert_int_equal(why[i], VB_KEEP_ALL);
}

/* Two backups on one day: keep-daily takes the newer and marks the older
 * for removal, so keep-weekly does not keep it (Proxmox's prune_mark). */
static void test_daily_then_weekly(void **st)
{
	int64_t t[4] = { T0 - 7 * DAY, T0 + 2 * DAY + 3600, T0 + 2 * DAY + 7200, T0 + DAY };
	int why[4];
	struct vb_keep k = { .daily = 1, .weekly = 2 };

	(void)st;
	vb_prune_select(t, NULL, 4, &k, why);
	assert_int_equal(why[2], VB_KEEP_DAILY);
	assert_int_equal(why[1], VB_KEEP_NO);    /* same day as the kept one */
	assert_int_equal(why[3], VB_KEEP_NO);    /* same week as the daily one */
	assert_int_equal(why[0], VB_KEEP_WEEKLY); /* the week before */
}

static void test_protected_takes_no_slot(void **st)
{
	int64_t t[3] = { T0, T0 + DAY, T0 + 2 * DAY };
	bool prot[3] = { false, false, true };
	int why[3];
	struct vb_keep k = { .last = 1 };

	(void)st;
	vb_prune_select(t, prot, 3, &k, why);
	assert_int_equal(why[2], VB_KEEP_PROTECTED);
	assert_int_equal(why[1], VB_KEEP_LAST);
	assert_int_equal(why[0], VB_KEEP_NO);
}

/* 2020-12-31 and 2021-01-03 are both in ISO week 53 of 2020. */
static void test_weekly_iso_year(void **st)
{
	int64_t t[3] = { 1608940800 /* 2020-12-26 */, 1609372800 /* 2020-12-31 */,
			 1609632000 /* 2021-01-03 */ };
	int why[3];
	struct vb_keep k = { .weekly = 5 };

	(void)st;
	vb_prune_select(t, NULL, 3, &k, why);
	assert_int_equal(why[2], VB_KEEP_WEEKLY);
	assert_int_equal(why[1], VB_KEEP_NO);
	assert_int_equal(why[0], VB_KEEP_WEEKLY);
}

/* Months already holding a kept backup count for no further monthly slot. */
static void test_monthly_after_daily(void **st)
{
	int64_t t[90];
	int why[90];
	struct vb_keep k = { .daily = 2, .monthly = 2 };
	int kept = 0;

	(void)st;
	for (int i = 0; i < 90; i++)
		t[i] = T0 + i * DAY; /* Jan 1 .. Mar 30 2024 */
	vb_prune_select(t, NULL, 90, &k, why);
	assert_int_equal(why[89], VB_KEEP_DAILY);
	assert_int_equal(why[88], VB_KEEP_DAILY);
	assert_int_equal(why[59], VB_KEEP_MONTHLY); /* Feb 29 */
	assert_int_equal(why[30], VB_KEEP_MONTHLY); /* Jan 31 */
	for (int i = 0; i < 90; i++)
		kept += why[i] != VB_KEEP_NO;
	assert_int_equal(kept, 4);
}

static void add(struct vb_backup_list *l, const char *ck, const char *kind, const char *uuid,
		const char *base, int64_t time, bool prot)
{
	struct vb_backup_info *b;

	l->v = realloc(l->v, (l->n + 1) * sizeof(*l->v));
	assert_non_null(l->v);
	b = &l->v[l->n++];
	memset(b, 0, sizeof(*b));
	b->checkpoint = strdup(ck);
	b->kind = ts_kind(kind);
	b->uuid = strdup(uuid);
	b->base_uuid = base ? strdup(base) : NULL;
	b->time = time;
	b->in_state = true;
	b->protected = prot;
}

/* A full A with incrementals B, C, then a full D with incremental E. */
static void chain(struct vb_backup_list *l, bool protect_c)
{
	add(l, "A", "full", "a", NULL, T0, false);
	add(l, "B", "incremental", "b", "a", T0 + DAY, false);
	add(l, "C", "incremental", "c", "b", T0 + 2 * DAY, protect_c);
	add(l, "D", "full", "d", NULL, T0 + 3 * DAY, false);
	add(l, "E", "differential", "e", "d", T0 + 4 * DAY, false);
	l->v[4].latest = true;
}

static void test_plan_dependencies(void **st)
{
	struct vb_backup_list l = { 0 };
	struct vb_keep k = { .last = 1 };

	(void)st;
	chain(&l, false);
	vb_prune_plan(&l, &k);
	assert_int_equal(l.v[4].keep, VB_KEEP_LAST);
	assert_int_equal(l.v[3].keep, VB_KEEP_NEEDED);
	assert_int_equal(l.v[3].needed_by, 4);
	for (int i = 0; i < 3; i++)
		assert_int_equal(l.v[i].keep, VB_KEEP_NO);
	vb_backups_free(&l);

	memset(&l, 0, sizeof(l));
	chain(&l, true);
	vb_prune_plan(&l, &k);
	assert_int_equal(l.v[2].keep, VB_KEEP_PROTECTED);
	assert_int_equal(l.v[1].keep, VB_KEEP_NEEDED);
	assert_int_equal(l.v[0].keep, VB_KEEP_NEEDED);
	assert_int_equal(l.v[0].needed_by, 2);
	vb_backups_free(&l);
}

/* The latest checkpoint stays even if no rule keeps it (keep-daily keeps
 * the day's newest, which is the latest; keep-weekly alone too): here a
 * rule that keeps only older backups cannot exist, so check the mark
 * with a hand-made list whose latest is not the newest time. */
static void test_plan_latest(void **st)
{
	struct vb_backup_list l = { 0 };
	struct vb_keep k = { .last = 1 };

	(void)st;
	chain(&l, false);
	l.v[4].latest = false;
	l.v[2].latest = true;
	vb_prune_plan(&l, &k);
	assert_int_equal(l.v[2].keep, VB_KEEP_LATEST);
	assert_int_equal(l.v[1].keep, VB_KEEP_NEEDED);
	assert_int_equal(l.v[0].keep, VB_KEEP_NEEDED);
	vb_backups_free(&l);
}

static void test_dumpdir_names(void **st)
{
	struct vb_error err = { 0 };
	char *n;

	(void)st;
	n = vb_dumpdir_name(NULL, "100", NULL, 1700000000, true, false, &err);
	assert_string_equal(n, "vzdump-qemu-100-2023_11_14-22_13_20.vma.zst");
	free(n);
	n = vb_dumpdir_name("{set}-{date}", NULL, "web", 1700000000, false, false, &err);
	assert_string_equal(n, "web-2023_11_14-22_13_20.vma");
	free(n);
	assert_null(vb_dumpdir_name("a/{date}", "1", NULL, 0, false, false, &err));
	assert_int_equal(err.cls, VB_E_USAGE);
	vb_error_clear(&err);
	assert_null(vb_dumpdir_name(NULL, NULL, NULL, 0, false, false, &err));
	assert_int_equal(err.cls, VB_E_USAGE);
	n = vb_dumpdir_sibling("/d/x.vma.zst", "log");
	assert_string_equal(n, "/d/x.log");
	free(n);
	n = vb_dumpdir_sibling("/d/x.vma.zst", "notes");
	assert_string_equal(n, "/d/x.vma.zst.notes");
	free(n);
	assert_true(vb_dumpdir_is_archive_name("a.vma.gz"));
	/* partial archives: names Proxmox does not list as vzdump backups */
	n = vb_dumpdir_kind_name("/d/x.vma.zst", VB_KIND_INCREMENTAL);
	assert_string_equal(n, "/d/x.vmainc.zst");
	free(n);
	n = vb_dumpdir_kind_name("/d/x.vma", VB_KIND_DIFFERENTIAL);
	assert_string_equal(n, "/d/x.vmadiff");
	free(n);
	n = vb_dumpdir_kind_name("/d/x.vma", VB_KIND_FULL);
	assert_string_equal(n, "/d/x.vma");
	free(n);
	assert_null(vb_dumpdir_kind_name("/d/x.raw", VB_KIND_FULL));
	assert_true(vb_dumpdir_is_archive_name("a.vmainc.zst"));
	assert_true(vb_dumpdir_is_archive_name("a.vmadiff"));
	n = vb_dumpdir_sibling("/d/x.vmainc.zst", "log");
	assert_string_equal(n, "/d/x.log");
	free(n);
	assert_false(vb_dumpdir_is_archive_name(".a.vma.zst"));
	assert_false(vb_dumpdir_is_archive_name("a.vma.zst.notes"));
	assert_false(vb_dumpdir_is_archive_name(".vma"));
	/* encrypted: ".enc" after the archive extension, kept by the kind's
	 * name, stripped from the log's */
	n = vb_dumpdir_name(NULL, "100", NULL, 1700000000, true, true, &err);
	assert_string_equal(n, "vzdump-qemu-100-2023_11_14-22_13_20.vma.zst.enc");
	free(n);
	n = vb_dumpdir_kind_name("/d/x.vma.zst.enc", VB_KIND_INCREMENTAL);
	assert_string_equal(n, "/d/x.vmainc.zst.enc");
	free(n);
	n = vb_dumpdir_sibling("/d/x.vmadiff.zst.enc", "log");
	assert_string_equal(n, "/d/x.log");
	free(n);
	assert_true(vb_dumpdir_is_archive_name("a.vma.enc"));
	assert_true(vb_dumpdir_is_archive_name("a.vmainc.zst.enc"));
	assert_false(vb_dumpdir_is_archive_name(".enc"));
	assert_false(vb_dumpdir_is_archive_name("a.vma.zst.enc.notes"));
	assert_false(vb_dumpdir_is_archive_name("a.raw.enc"));
}

/* A checkpoint of one drive "a" (4 clusters) whose bitmap marks cluster bit. */
static void commit_one(struct vb_state *s, const char *name, const char *uuid, unsigned bit)
{
	struct bitmap *b = bitmap_new(4);
	struct vb_error err = { 0 };
	struct vb_ckpt_drive d = { .name = "a", .size = 4 * 65536 };
	struct vb_ckpt c = { .name = (char *)name, .kind = VB_KIND_INCREMENTAL, .uuid = (char *)uuid,
			     .time = T0, .ndrives = 1, .drives = &d,
			     .archive = "/nonexistent/x.vma" };
	uint8_t *enc;
	size_t len;

	assert_non_null(b);
	assert_int_equal(bitmap_set_range(b, bit, 1), 0);
	assert_int_equal(bitmap_encode(b, &enc, &len), 0);
	assert_int_equal(vb_state_write_file(s, "bitmap", enc, len, &d.bitmap, &err), 0);
	assert_int_equal(vb_state_commit(s, &c, false, &err), 0);
	free(d.bitmap);
	free(enc);
	bitmap_free(b);
}

/* vb_state_prune: one atomic change that removes checkpoints, merges their
 * bitmaps into the next one and records them until forgotten. */
static void test_state_prune(void **st)
{
	const char *dir = ((struct tdir *)*st)->path;
	struct vb_error err = { 0 };
	struct vb_state *s;
	struct bitmap *b = NULL;
	const char *names[] = { "c1", "c2" };

	s = vb_state_open(dir, "s", &err);
	assert_non_null(s);
	commit_one(s, "c1", "u1", 0);
	commit_one(s, "c2", "u2", 1);
	commit_one(s, "c3", "u3", 2);
	commit_one(s, "c4", "u4", 3);
	assert_int_equal(vb_state_prune(s, (const char *const[]){ "c4" }, 1, &err), -1);
	assert_int_equal(err.cls, VB_E_USAGE); /* the latest */
	vb_error_clear(&err);
	assert_int_equal(vb_state_pruned_count(s), 0);
	assert_int_equal(vb_state_count(s), 4);
	assert_int_equal(vb_state_prune(s, names, 2, &err), 0);
	vb_state_close(s);
	/* reopened: the records survived, c3 holds the changes of c1..c3 */
	s = vb_state_open(dir, "s", &err);
	assert_non_null(s);
	assert_int_equal(vb_state_count(s), 2);
	assert_int_equal(vb_state_pruned_count(s), 2);
	assert_string_equal(vb_state_pruned_get(s, 1)->uuid, "u2");
	assert_string_equal(vb_state_pruned_get(s, 0)->archive, "/nonexistent/x.vma");
	assert_null(vb_state_find(s, "c1"));
	assert_null(vb_state_find(s, "c3")->parent);
	assert_int_equal(vb_state_load_bitmap(s, vb_state_find(s, "c3")->drives[0].bitmap, &b,
					      &err), 0);
	assert_true(bitmap_test(b, 0) && bitmap_test(b, 1) && bitmap_test(b, 2));
	assert_false(bitmap_test(b, 3));
	bitmap_free(b);
	assert_int_equal(vb_state_forget_pruned(s, &err), 0);
	vb_state_close(s);
	s = vb_state_open(dir, "s", &err);
	assert_non_null(s);
	assert_int_equal(vb_state_pruned_count(s), 0);
	vb_state_close(s);
}

/* A signal during a change of the state (the archive is published by
 * then) does not cut it short: the change completes, then the signal takes
 * effect (cli/). */
static void test_state_signal_completes(void **st)
{
	const char *dir = ((struct tdir *)*st)->path;
	static volatile sig_atomic_t flag;
	struct vb_error err = { 0 };
	struct vb_state *s = vb_state_open(dir, "s", &err);

	assert_non_null(s);
	commit_one(s, "c1", "u1", 0);
	flag = 1;
	vb_set_cancel(&flag);
	commit_one(s, "c2", "u2", 1); /* bitmap, manifest, digests, state.json */
	vb_set_cancel(NULL);
	vb_state_close(s);
	s = vb_state_open(dir, "s", &err);
	assert_non_null(s);
	assert_int_equal(vb_state_count(s), 2);
	assert_non_null(vb_state_find(s, "c2"));
	vb_state_close(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keep_last),
		cmocka_unit_test(test_no_rule_keeps_all),
		cmocka_unit_test(test_daily_then_weekly),
		cmocka_unit_test(test_protected_takes_no_slot),
		cmocka_unit_test(test_weekly_iso_year),
		cmocka_unit_test(test_monthly_after_daily),
		cmocka_unit_test(test_plan_dependencies),
		cmocka_unit_test(test_plan_latest),
		cmocka_unit_test(test_dumpdir_names),
		cmocka_unit_test_setup_teardown(test_state_prune, tdir_setup, tdir_teardown),
		cmocka_unit_test_setup_teardown(test_state_signal_completes, tdir_setup,
						tdir_teardown),
	};

	setenv("TZ", "UTC", 1);
	tzset();
	return cmocka_run_group_tests_name("prune", tests, NULL, NULL);
}
