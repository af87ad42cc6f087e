/* decide.c: what a backup will be, before anything is read: the new
 * checkpoint's name, and full, incremental or differential from the state
 * (the latest checkpoint's drives and digest maps, --mode, --since and
 * --mode auto's rotation). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/backup/backup_int.h"

#define note(b, ...) vb_warn(&(b)->warn, VB_WARN_FULL, NULL, __VA_ARGS__)

/* Whether checkpoint c was taken of the same drives (names, order, sizes). */
static bool same_drives(const struct vb_backup *b, const struct vb_ckpt *c, char *why,
			size_t len)
{
	if (c->ndrives != b->njobs) {
		snprintf(why, len, "drives were added or removed since checkpoint %s", c->name);
		return false;
	}
	for (size_t i = 0; i < b->njobs; i++) {
		if (strcmp(c->drives[i].name, b->jobs[i].name) != 0) {
			snprintf(why, len, "the drives differ from checkpoint %s (%s instead of %s)",
				 c->name, b->jobs[i].name, c->drives[i].name);
			return false;
		}
		if (c->drives[i].size != b->jobs[i].size) {
			snprintf(why, len, "drive %s changed size since checkpoint %s (%llu to "
				 "%llu bytes)", b->jobs[i].name, c->name,
				 (unsigned long long)c->drives[i].size,
				 (unsigned long long)b->jobs[i].size);
			return false;
		}
	}
	return true;
}

/* Uses the latest checkpoint's digest maps if every one of them is intact. */
static int attach_latest(struct vb_backup *b, const struct vb_ckpt *latest, struct vb_error *err)
{
	for (size_t i = 0; i < b->njobs; i++) {
		struct drive_job *j = &b->jobs[i];

		j->latest = &latest->drives[i];
		if (job_check_map(b->o.state, j->latest, j->size, false, err) < 0)
			return -1;
	}
	for (size_t i = 0; i < b->njobs; i++)
		b->jobs[i].old_map = true;
	return 0;
}

/* Differential: the changes between checkpoint since and the latest. */
static int load_extra(struct vb_backup *b, size_t k, struct vb_error *err)
{
	struct vb_state *s = b->o.state;

	for (size_t i = 0; i < b->njobs; i++) {
		struct drive_job *j = &b->jobs[i];

		j->extra = bitmap_new(j->nclusters);
		if (!j->extra)
			return vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
		for (size_t c = k + 1; c < vb_state_count(s); c++) {
			struct bitmap *bm;

			if (vb_state_load_bitmap(s, vb_state_get(s, c)->drives[i].bitmap, &bm,
						 err) < 0)
				return -1;
			if (bitmap_size(bm) == j->nclusters)
				bitmap_union(j->extra, bm);
			else
				bitmap_set_all(j->extra);
			bitmap_free(bm);
		}
	}
	return 0;
}

static int decide_differential(struct vb_backup *b, struct vb_error *err)
{
	struct vb_state *s = b->o.state;
	size_t k;
	char why[512];

	if (!b->o.since)
		return vb_error_set(err, VB_E_USAGE, 0,
				    "--mode differential needs --since CHECKPOINT");
	for (k = 0; k < vb_state_count(s); k++)
		if (strcmp(vb_state_get(s, k)->name, b->o.since) == 0)
			break;
	if (k == vb_state_count(s))
		return vb_error_set(err, VB_E_USAGE, 0, "backup set '%s' has no checkpoint %s "
				    "(see vmaback checkpoints)", vb_state_set(s), b->o.since);
	for (size_t c = k; c < vb_state_count(s); c++)
		if (!same_drives(b, vb_state_get(s, c), why, sizeof(why)))
			return vb_error_set(err, VB_E_USAGE, 0, "differential since %s: %s; "
					    "take a full backup", b->o.since, why);
	b->base = vb_state_get(s, k);
	if (attach_latest(b, vb_state_latest(s), err) < 0)
		return -1;
	return load_extra(b, k, err);
}

/* --mode auto: whether the chain since the latest full backup is as long or
 * as old as the rotation allows (then the next backup is a full one). */
static bool chain_rotates(struct vb_backup *b)
{
	struct vb_state *s = b->o.state;
	size_t n = vb_state_count(s), k = n;
	const struct vb_ckpt *full;
	int64_t age;

	while (k > 0 && vb_state_get(s, k - 1)->kind != VB_KIND_FULL)
		k--;
	if (k == 0)
		return false; /* no full in the state: nothing to rotate */
	full = vb_state_get(s, k - 1);
	if (b->o.max_chain && n - k + 1 >= b->o.max_chain) {
		note(b, "the chain since full backup %s holds %zu backup%s (--max-chain %u): "
		     "full backup", full->name, n - k + 1, n - k + 1 == 1 ? "" : "s",
		     b->o.max_chain);
		return true;
	}
	age = (int64_t)vb_clock_now() - full->time;
	if (b->o.full_every && age >= b->o.full_every) {
		note(b, "full backup %s is %.1f days old (--full-every %.0f): full backup",
		     full->name, (double)age / 86400, (double)b->o.full_every / 86400);
		return true;
	}
	return false;
}

int bk_decide_mode(struct vb_backup *b, struct vb_error *err)
{
	struct vb_state *s = b->o.state;
	const struct vb_ckpt *latest;
	enum vb_mode asked = b->o.mode;
	char why[512] = "";
	bool same;

	if (!s) {
		if (asked == VB_MODE_INCREMENTAL || asked == VB_MODE_DIFFERENTIAL)
			return vb_error_set(err, VB_E_USAGE, 0, "--mode %s needs a backup set "
					    "(--set NAME)", vb_mode_name(asked));
		b->mode = VB_MODE_FULL;
		return 0;
	}
	if (b->o.since && asked != VB_MODE_DIFFERENTIAL)
		return vb_error_set(err, VB_E_USAGE, 0, "--since goes with --mode differential");
	latest = vb_state_latest(s);
	same = latest && same_drives(b, latest, why, sizeof(why));
	if (asked == VB_MODE_DIFFERENTIAL) {
		b->mode = VB_MODE_DIFFERENTIAL;
		return decide_differential(b, err);
	}
	if (asked == VB_MODE_INCREMENTAL && !latest)
		return vb_error_set(err, VB_E_USAGE, 0, "backup set '%s' has no checkpoint yet: "
				    "take a full backup first (--mode full or auto)",
				    vb_state_set(s));
	if (asked == VB_MODE_INCREMENTAL && !same)
		return vb_error_set(err, VB_E_USAGE, 0, "%s: an incremental backup is not "
				    "possible; take a full one (--mode full or auto)", why);
	if (asked == VB_MODE_AUTO && !latest) {
		note(b, "backup set '%s' has no checkpoint yet: full backup", vb_state_set(s));
		b->mode = VB_MODE_FULL;
	} else if (asked == VB_MODE_AUTO && !same) {
		note(b, "%s: full backup", why);
		b->mode = VB_MODE_FULL;
	} else if (asked == VB_MODE_AUTO && chain_rotates(b)) {
		b->mode = VB_MODE_FULL; /* as --mode full: the latest still attaches */
	} else {
		b->mode = asked == VB_MODE_AUTO ? VB_MODE_INCREMENTAL : asked;
	}
	if (!latest || !same)
		return 0;
	if (attach_latest(b, latest, err) < 0) {
		if (b->mode == VB_MODE_INCREMENTAL && asked == VB_MODE_INCREMENTAL)
			return -1;
		/* A damaged map only costs a full read: never a wrong incremental. */
		note(b, "%s; full backup", err->msg);
		vb_error_clear(err);
		for (size_t i = 0; i < b->njobs; i++)
			b->jobs[i].latest = NULL;
		b->mode = VB_MODE_FULL;
		return 0;
	}
	if (b->mode == VB_MODE_INCREMENTAL)
		b->base = latest;
	return 0;
}

int bk_pick_checkpoint_name(struct vb_backup *b, struct vb_error *err)
{
	struct vb_state *s = b->o.state;
	time_t t = (time_t)vb_clock_now();
	struct tm tm;
	char base[64];

	if (!s) {
		if (b->o.checkpoint || b->o.no_commit)
			return vb_error_set(err, VB_E_USAGE, 0, "--checkpoint and --no-commit "
					    "need a backup set (--set NAME)");
		return 0;
	}
	if (b->o.checkpoint) {
		if (vb_ckpt_name_check(b->o.checkpoint, err) < 0)
			return -1;
		if (vb_state_find(s, b->o.checkpoint))
			return vb_error_set(err, VB_E_USAGE, 0, "backup set '%s' already has a "
					    "checkpoint %s", vb_state_set(s), b->o.checkpoint);
		snprintf(b->ckname, sizeof(b->ckname), "%s", b->o.checkpoint);
		return 0;
	}
	gmtime_r(&t, &tm);
	strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%SZ", &tm);
	snprintf(b->ckname, sizeof(b->ckname), "%s", base);
	for (unsigned n = 2; vb_state_find(s, b->ckname); n++)
		snprintf(b->ckname, sizeof(b->ckname), "%s-%u", base, n);
	return 0;
}
