/* image_bitmaps.c: dirty bitmaps given by sources in the backup transaction,
 * and the checkpoint bitmaps vmaback keeps in qcow2 files of a backup set.
 *
 * A qcow2 file backed up in a set carries one persistent bitmap per
 * checkpoint, named "vmaback/SET/CHECKPOINT" ('/' cannot occur in set or
 * checkpoint names, so no set reads another's). The bitmap of the set's
 * latest checkpoint is enabled and holds every write since that
 * checkpoint's data was read, so the next incremental reads only it.
 *
 * Order, so that no crash or failure can make an incremental miss a write:
 * 1. prepare, before qemu-nbd opens the image: add the new checkpoint's
 *    bitmap, enabled (as QEMU's transaction adds it with the backup job).
 *    Every write from then on is in it, including writes made after the
 *    read and before the state commit (a VM started in between);
 * 2. read the drives, publish the archive, commit the state;
 * 3. after the commit, with qemu-nbd gone: disable the older checkpoints'
 *    bitmaps and remove those the state does not know.
 * A crash or failure before 3 leaves the latest committed checkpoint's
 * bitmap enabled, so it still covers everything: after a crash before the
 * commit, the state's latest is the old checkpoint, whose bitmap was never
 * disabled; after a crash between the commit and 3, the new bitmap exists
 * since 1 and the old one is merely still recording. Leftovers (the new
 * bitmap of a failed run that could not be removed, a crashed run's) are
 * removed by step 3 of the next successful backup. A pending checkpoint
 * (--no-commit) skips 3, since it may yet be discarded. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/backup/backup_int.h"

static char *own_name(const struct vb_backup *b, const char *checkpoint)
{
	char *p = NULL;

	if (asprintf(&p, "vmaback/%s/%s", vb_state_set(b->o.state), checkpoint) < 0)
		return NULL;
	return p;
}

static const struct vb_qbitmap *find(const struct vb_qbitmap *l, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(l[i].name, name) == 0)
			return &l[i];
	return NULL;
}

/* Whether the bitmap j->bitmap of the image can hold the changes. */
static int judge(struct drive_job *j, const char *path, const struct vb_qbitmap *l, size_t n,
		 struct vb_error *err)
{
	const struct vb_qbitmap *q = find(l, n, j->bitmap);
	int rc = 0;

	if (!q)
		rc = asprintf(&j->bitmap_why, "drive %s: %s has no bitmap %s", j->name, path,
			      j->bitmap);
	else if (q->in_use)
		rc = asprintf(&j->bitmap_why, "drive %s: bitmap %s of %s is inconsistent (a "
			      "program that wrote the image crashed, or still has it open)",
			      j->name, j->bitmap, path);
	else if (!q->enabled && !j->bitmap_given)
		rc = asprintf(&j->bitmap_why, "drive %s: bitmap %s of %s was disabled by another "
			      "program", j->name, j->bitmap, path);
	if (rc < 0) {
		j->bitmap_why = NULL;
		return vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
	}
	j->bitmap_missing = !q;
	return 0;
}

int bk_image_prepare(struct vb_backup *b, struct drive_job *j, const struct vb_drive *d,
		     struct vb_error *err)
{
	const struct vb_ckpt *latest = b->o.state ? vb_state_latest(b->o.state) : NULL;
	struct vb_drive plain = { .name = d->name, .spec = d->spec };
	struct vb_qbitmap *l = NULL;
	struct vb_spec sp;
	char what[512];
	size_t n = 0;
	int rc = -1;

	/* A bitmap only matters to an incremental or differential. */
	if (!b->o.state || b->o.mode == VB_MODE_FULL || b->o.no_source_bitmaps || !latest)
		d = &plain;
	if (d->bitmap && !(j->bitmap = strdup(d->bitmap)))
		return vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
	j->bitmap_given = d->bitmap != NULL;
	if (vb_spec_parse(d->name, d->spec, &sp, err) < 0)
		return -1;
	if (!b->o.state || sp.kind != VB_SPEC_IMAGE || strcmp(sp.format, "qcow2") != 0)
		return 0;
	snprintf(what, sizeof(what), "drive %s: %s", d->name, sp.path);
	if (vb_qcow2_bitmaps(what, sp.path, &l, &n, err) < 0)
		return -1;
	if (!j->bitmap && latest && b->o.mode != VB_MODE_FULL && !b->o.no_source_bitmaps &&
	    !(j->bitmap = own_name(b, latest->name))) {
		vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
		goto out;
	}
	if (j->bitmap && judge(j, sp.path, l, n, err) < 0)
		goto out;
	j->image = strdup(sp.path);
	j->added = own_name(b, b->ckname);
	if (!j->image || !j->added) {
		vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
		goto out;
	}
	/* The name is not a checkpoint of the state: a crashed run's leftover. */
	if (find(l, n, j->added) && vb_qcow2_bitmap_op(what, sp.path, "--remove", j->added,
						      err) < 0)
		goto out;
	if (vb_qcow2_bitmap_op(what, sp.path, "--add", j->added, err) < 0) {
		free(j->added);
		j->added = NULL;
		goto out;
	}
	rc = 0;
	/* kept for the rotation: nothing else touches the image meanwhile
	 * (qemu-nbd reads it; a running VM's image is refused) */
	j->qbitmaps = l;
	j->nqbitmaps = n;
	l = NULL;
	n = 0;
out:
	vb_qcow2_bitmaps_free(l, n);
	return rc;
}

/* The source bitmap of j, or why it cannot be had (j->bitmap_why): 0, or
 * 1 when this kind of source has no bitmaps at all, or -1. */
static int fetch(struct drive_job *j, struct vb_error *err)
{
	int rc;

	if (j->bitmap_why)
		return 0;
	rc = vb_source_dirty_bitmap(j->src, j->bitmap, &j->srcmap, err);
	if (rc == 1)
		return 0;
	if (rc < 0 && err->cls != VB_E_USAGE)
		return -1;
	if (rc < 0) {
		j->bitmap_why = strdup(err->msg);
		j->bitmap_missing = true;
		vb_error_clear(err);
	} else if (asprintf(&j->bitmap_why, "drive %s: a %s source has no dirty bitmaps",
			    j->name, vb_source_kind(j->src)) < 0) {
		j->bitmap_why = NULL;
	}
	if (!j->bitmap_why)
		return vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
	return rc == 0;
}

int bk_source_bitmaps(struct vb_backup *b, enum vb_mode asked, struct vb_error *err)
{
	bool full = false;

	if (b->mode == VB_MODE_FULL)
		return 0;
	for (size_t i = 0; i < b->njobs; i++) {
		struct drive_job *j = &b->jobs[i];
		int rc;

		if (!j->bitmap)
			continue;
		if ((rc = fetch(j, err)) < 0)
			return -1;
		if (!j->bitmap_why)
			continue;
		if (rc == 1 || !j->bitmap_given) {
			vb_warn(&b->warn, VB_WARN_FULL, j->name, "%s; finding its changes by "
				"reading all of it", j->bitmap_why);
		} else if (asked == VB_MODE_AUTO) {
			vb_warn(&b->warn, VB_WARN_FULL, j->name, "%s; full backup", j->bitmap_why);
			full = true;
		} else {
			return vb_error_set(err, j->bitmap_missing ? VB_E_USAGE : VB_E_INVALID, 0,
					    "%s: --mode %s cannot use it (--mode auto makes a full "
					    "backup then)", j->bitmap_why, vb_mode_name(asked));
		}
	}
	if (full) {
		b->mode = VB_MODE_FULL;
		b->base = NULL;
		for (size_t i = 0; i < b->njobs; i++) {
			bitmap_free(b->jobs[i].srcmap);
			b->jobs[i].srcmap = NULL;
		}
	}
	return 0;
}

/* After the commit: the new checkpoint's bitmap records, the older ones
 * of the state are disabled, the ones it does not know are removed (the
 * list is the one bk_image_prepare read: no second qemu-img info). */
static void rotate(struct vb_backup *b, struct drive_job *j)
{
	char what[512], *prefix = own_name(b, "");
	const struct vb_qbitmap *l = j->qbitmaps;
	struct vb_error e = { 0 };
	size_t n = j->nqbitmaps;

	snprintf(what, sizeof(what), "drive %s: %s", j->name, j->image);
	if (!prefix) {
		vb_error_set(&e, VB_E_FAIL, ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n && !e.cls; i++) {
		const char *ck = l[i].name + strlen(prefix);

		if (strncmp(l[i].name, prefix, strlen(prefix)) != 0 ||
		    strcmp(l[i].name, j->added) == 0)
			continue;
		if (!l[i].in_use && vb_state_find(b->o.state, ck)) {
			if (l[i].enabled)
				vb_qcow2_bitmap_op(what, j->image, "--disable", l[i].name, &e);
		} else {
			vb_qcow2_bitmap_op(what, j->image, "--remove", l[i].name, &e);
		}
	}
out:
	if (e.cls)
		vb_warn(&b->warn, VB_WARN_BITMAP, j->name, "%s; the older checkpoint bitmaps stay "
			"as they are (harmless; the next backup retries)", e.msg);
	free(prefix);
}

void bk_images_finish(struct vb_backup *b, enum bk_outcome how)
{
	/* qemu-img needs the image to itself: qemu-nbd must be gone. */
	for (size_t i = 0; i < b->njobs; i++) {
		vb_source_close(b->jobs[i].src);
		b->jobs[i].src = NULL;
	}
	for (size_t i = 0; i < b->njobs; i++) {
		struct drive_job *j = &b->jobs[i];
		struct vb_error e = { 0 };
		char what[512];

		if (!j->added)
			continue;
		snprintf(what, sizeof(what), "drive %s: %s", j->name, j->image);
		if (how == BK_COMMITTED)
			rotate(b, j);
		else if (how == BK_FAILED &&
			 vb_qcow2_bitmap_op(what, j->image, "--remove", j->added, &e) < 0)
			vb_warn(&b->warn, VB_WARN_BITMAP, j->name, "%s; the bitmap %s stays "
				"(harmless; the next backup removes it)", e.msg, j->added);
		free(j->added);
		j->added = NULL;
		vb_qcow2_bitmaps_free(j->qbitmaps, j->nqbitmaps);
		j->qbitmaps = NULL;
		j->nqbitmaps = 0;
	}
	bk_live_finish(b, how);
}
