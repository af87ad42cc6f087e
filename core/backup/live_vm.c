/* live_vm.c: a running VM's drives in the backup transaction (--qmp,
 * --domain): the drives come from QEMU or libvirt, recovery keeps the
 * bitmap of the set's latest committed checkpoint, the point in time is
 * taken once the mode is decided, and the end of the run (commit or
 * failure) ends the hypervisor's side. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/backup/backup_int.h"

int bk_live_prepare(struct vb_backup *b, struct vb_error *err)
{
	struct vb_live *l = b->o.live;
	const struct vb_ckpt *latest = b->o.state ? vb_state_latest(b->o.state) : NULL;
	size_t n = vb_live_count(l);

	if (!b->o.state)
		return vb_error_set(err, VB_E_USAGE, 0, "a running VM needs a backup set (--set "
				    "NAME): the VM's bitmaps are named for it");
	if (n > VMA_MAX_DEVICES)
		return vb_error_set(err, VB_E_USAGE, 0, "the VM has %zu disks; an archive holds "
				    "at most %u (choose with --drive NAME=%s:DEVICE)", n,
				    VMA_MAX_DEVICES, vb_live_kind(l));
	if (vb_live_recover(l, latest ? latest->name : NULL, err) < 0)
		return -1;
	vb_crash_point("after-recovery");
	b->jobs = calloc(n, sizeof(*b->jobs));
	if (!b->jobs)
		return vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		const struct vb_live_drive *d = vb_live_get(l, i);
		struct drive_job *j = &b->jobs[i];

		b->njobs = i + 1;
		j->name = d->name;
		if (asprintf(&j->owned_spec, "%s:%s", vb_live_kind(l), d->node) < 0) {
			j->owned_spec = NULL;
			return vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
		}
		j->spec = j->owned_spec;
		for (size_t k = 0; k < i; k++)
			if (strcmp(b->jobs[k].name, j->name) == 0)
				return vb_error_set(err, VB_E_USAGE, 0, "two of the VM's disks are "
						    "named %s (name them with --drive "
						    "NAME=%s:DEVICE)", j->name,
						    vb_live_kind(l));
		j->dev_id = (unsigned)i + 1;
		j->size = d->size;
		if (j->size > VMA_MAX_DEVICE_SIZE)
			return vb_error_set(err, VB_E_USAGE, 0, "drive %s: %" PRIu64 " bytes, larger "
					    "than a VMA archive can address", j->name, j->size);
		j->nclusters = vma_clusters_of(j->size);
	}
	return 0;
}

int bk_add_layout(struct vb_backup *b, const char *blob, const char *text, struct vb_error *err)
{
	struct config_blob *c;

	for (size_t i = 0; i < b->ncfg; i++)
		if (strcmp(b->cfg[i].name, blob) == 0)
			return vb_error_set(err, VB_E_USAGE, 0, "--config %s: the name is the VM's "
					    "layout's, which vmaback stores", blob);
	if (b->ncfg + 1 > VMA_MAX_CONFIGS - 1)
		return vb_error_set(err, VB_E_USAGE, 0, "at most %u config files with a "
				    "running VM", VMA_MAX_CONFIGS - 2);
	c = realloc(b->cfg, (b->ncfg + 1) * sizeof(*c));
	if (!c)
		return vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
	b->cfg = c;
	c = &b->cfg[b->ncfg];
	c->name = strdup(blob);
	c->len = strlen(text);
	c->data = malloc(c->len + 1);
	if (!c->name || !c->data) {
		free(c->name);
		free(c->data);
		return vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
	}
	memcpy(c->data, text, c->len);
	b->ncfg++;
	return 0;
}

int bk_live_start(struct vb_backup *b, enum vb_mode asked, struct vb_error *err)
{
	struct vb_live *l = b->o.live;
	const struct vb_ckpt *latest = vb_state_latest(b->o.state);
	const char *since = b->mode != VB_MODE_FULL && !b->o.no_source_bitmaps && latest ?
			    latest->name : NULL;

	if (bk_add_layout(b, vb_live_layout_name(l), vb_live_layout(l), err) < 0)
		return -1;
	for (size_t i = 0; since && i < b->njobs; i++) {
		const struct vb_live_drive *d = vb_live_get(l, i);

		if (d->has_bitmap)
			continue;
		if (asked == VB_MODE_INCREMENTAL)
			return vb_error_set(err, VB_E_USAGE, 0, "%s: --mode incremental cannot find "
					    "this drive's changes without it (--mode auto reads "
					    "the whole drive then)", d->why);
		vb_warn(&b->warn, VB_WARN_FULL, d->name, "%s; finding its changes by reading all of it",
			d->why);
	}
	b->live_started = true;
	if (vb_live_start(l, since, b->ckname, err) < 0)
		return -1;
	for (size_t i = 0; i < b->njobs; i++) {
		const struct vb_live_drive *d = vb_live_get(l, i);
		struct drive_job *j = &b->jobs[i];

		if (d->bitmap && !(j->bitmap = strdup(d->bitmap)))
			return vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
		j->src = vb_source_open_bitmap(j->name, d->uri, j->bitmap, err);
		if (!j->src)
			return -1;
		if (vb_source_size(j->src) != j->size)
			return vb_error_set(err, VB_E_FAIL, 0, "drive %s: the export is %" PRIu64
					    " bytes, the disk %" PRIu64, j->name,
					    vb_source_size(j->src), j->size);
	}
	return 0;
}

void bk_live_finish(struct vb_backup *b, enum bk_outcome how)
{
	struct vb_error e = { 0 };

	if (!b->o.live || b->live_finished)
		return;
	b->live_finished = true;
	if (vb_live_finish(b->o.live, how == BK_COMMITTED ? VB_LIVE_COMMITTED :
			   how == BK_PENDING ? VB_LIVE_PENDING : VB_LIVE_FAILED, &e) < 0)
		vb_warn(&b->warn, VB_WARN_CLEANUP, NULL, "%s; the next run (or vmaback recover) "
			"removes what is left in QEMU", e.msg);
}

void bk_live_explain(struct vb_backup *b, struct vb_error *err)
{
	char why[512];
	size_t n;

	if (!b->o.live || err->cls != VB_E_FAIL || !vb_live_why(b->o.live, why, sizeof(why)))
		return;
	n = strlen(err->msg);
	snprintf(err->msg + n, sizeof(err->msg) - n, " (%s)", why);
}
