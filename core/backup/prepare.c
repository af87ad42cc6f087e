/* prepare.c: the first half of the backup transaction: every drive named,
 * opened and sized (or a running VM's drives), the config files read, the
 * output checked against the sources, the checkpoint name and the mode
 * decided; nothing written. And the transaction's end: vb_backup_free. */
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/backup/backup_int.h"

static int read_config(struct config_blob *c, const char *path, struct vb_error *err)
{
	const char *base = strrchr(path, '/');
	struct stat st;
	size_t got = 0;
	int fd, rc = -1;

	base = base ? base + 1 : path;
	if (!vb_safe_file_name(base))
		return vb_error_set(err, VB_E_USAGE, 0, "config %s: not a usable file name", path);
	if (strcmp(base, VB_META_NAME) == 0)
		return vb_error_set(err, VB_E_USAGE, 0,
				    "config %s: the name %s is reserved for vmaback", path,
				    VB_META_NAME);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return vb_error_set(err, VB_E_USAGE, errno, "config %s: %s", path,
				    strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		vb_error_set(err, VB_E_USAGE, 0, "config %s: not a regular file", path);
		goto out;
	}
	if (st.st_size > (off_t)VMA_MAX_BLOB_LEN) {
		vb_error_set(err, VB_E_USAGE, 0,
			     "config %s is %lld bytes; a config blob holds at most %u", path,
			     (long long)st.st_size, VMA_MAX_BLOB_LEN);
		goto out;
	}
	c->name = strdup(base);
	c->data = malloc((size_t)st.st_size + 1);
	if (!c->name || !c->data) {
		vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
		goto out;
	}
	/* Read one byte more than stat said, to notice a file that grew. */
	for (;;) {
		ssize_t n = read(fd, c->data + got, (size_t)st.st_size + 1 - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			vb_error_set(err, VB_E_FAIL, errno, "config %s: %s", path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		got += (size_t)n;
		if (got > (size_t)st.st_size) {
			vb_error_set(err, VB_E_FAIL, 0, "config %s changed while being read", path);
			goto out;
		}
	}
	c->len = got;
	rc = 0;
out:
	close(fd);
	return rc;
}

static int prepare_configs(struct vb_backup *b, struct vb_error *err)
{
	if (b->o.nconfigs > VMA_MAX_CONFIGS - 1)
		return vb_error_set(err, VB_E_USAGE, 0, "at most %u config files",
				    VMA_MAX_CONFIGS - 1);
	b->cfg = calloc(b->o.nconfigs ? b->o.nconfigs : 1, sizeof(*b->cfg));
	if (!b->cfg)
		return vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
	for (size_t i = 0; i < b->o.nconfigs; i++) {
		if (read_config(&b->cfg[i], b->o.configs[i], err) < 0) {
			b->ncfg = i + 1;
			return -1;
		}
		b->ncfg = i + 1;
		for (size_t j = 0; j < i; j++)
			if (strcmp(b->cfg[j].name, b->cfg[i].name) == 0)
				return vb_error_set(err, VB_E_USAGE, 0,
						    "two config files named %s", b->cfg[i].name);
	}
	return 0;
}

static int prepare_drives(struct vb_backup *b, struct vb_error *err)
{
	const struct vb_backup_opts *o = &b->o;

	if (o->ndrives == 0)
		return vb_error_set(err, VB_E_USAGE, 0, "no drive given (--drive NAME=PATH)");
	if (o->ndrives > VMA_MAX_DEVICES)
		return vb_error_set(err, VB_E_USAGE, 0, "%zu drives; an archive holds at most %u",
				    o->ndrives, VMA_MAX_DEVICES);
	for (size_t i = 0; i < o->ndrives; i++) {
		if (vb_drive_name_check(o->drives[i].name, err) < 0)
			return -1;
		for (size_t j = 0; j < i; j++)
			if (strcmp(o->drives[i].name, o->drives[j].name) == 0)
				return vb_error_set(err, VB_E_USAGE, 0, "drive name %s given twice",
						    o->drives[i].name);
	}
	b->jobs = calloc(o->ndrives, sizeof(*b->jobs));
	if (!b->jobs)
		return vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
	for (size_t i = 0; i < o->ndrives; i++) {
		struct drive_job *j = &b->jobs[i];

		b->njobs = i + 1;
		j->name = o->drives[i].name;
		if (bk_image_prepare(b, j, &o->drives[i], err) < 0)
			return -1;
		j->src = vb_source_open_bitmap(o->drives[i].name, o->drives[i].spec,
					       j->bitmap_why ? NULL : j->bitmap, err);
		if (!j->src)
			return -1;
		j->spec = o->drives[i].spec;
		j->dev_id = (unsigned)i + 1;
		j->size = vb_source_size(j->src);
		if (j->size > VMA_MAX_DEVICE_SIZE)
			return vb_error_set(err, VB_E_USAGE, 0,
					    "drive %s: %s is %" PRIu64 " bytes, larger than a VMA "
					    "archive can address (%" PRIu64 " bytes: 2^32 clusters "
					    "of 64 KiB)", j->name, j->spec, j->size,
					    (uint64_t)VMA_MAX_DEVICE_SIZE);
		j->nclusters = vma_clusters_of(j->size);
	}
	return 0;
}

/* -o onto one of the backup's own sources would replace the disk with its
 * archive: refused, with --force too, by device and inode (a block device
 * by the disk it names), before anything is written, qcow2 bitmaps included. */
static int check_output(const struct vb_backup *b, struct vb_error *err)
{
	struct stat out, st;

	if (!b->o.archive_path || stat(b->o.archive_path, &out) < 0)
		return 0; /* a new file cannot be a source */
	for (size_t i = 0; i < b->o.ndrives; i++) {
		const struct vb_drive *d = &b->o.drives[i];
		struct vb_spec sp;

		vb_spec_split(d->spec, &sp);
		if (sp.kind != VB_SPEC_NBD && stat(sp.path, &st) == 0 && vb_same_object(&out, &st))
			return vb_error_set(err, VB_E_USAGE, 0, "the output %s is drive %s's source "
					    "%s: writing the archive there would destroy the disk; "
					    "refused", b->o.archive_path, d->name, sp.path);
	}
	return 0;
}

enum vb_kind vb_backup_kind(const struct vb_backup *b)
{
	return vb_kind_of_mode(b->mode);
}

int vb_backup_set_archive_path(struct vb_backup *b, const char *path, struct vb_error *err)
{
	b->o.archive_path = path;
	return check_output(b, err);
}

void vb_backup_set_siblings(struct vb_backup *b, const struct vb_sibling *f, size_t n)
{
	b->o.siblings = f;
	b->o.nsiblings = n;
}

struct vb_backup *vb_backup_prepare(const struct vb_backup_opts *o, struct vb_error *err)
{
	struct vb_backup *b = calloc(1, sizeof(*b));

	if (!b) {
		vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
		return NULL;
	}
	b->o = *o;
	vb_warnings_to(&b->warn, o->warn, o->warn_opaque);
	/* The name first: a qcow2 image gets the new checkpoint's bitmap
	 * before its source opens (image_bitmaps.c). */
	if (check_output(b, err) < 0 || bk_pick_checkpoint_name(b, err) < 0 ||
	    (o->live ? bk_live_prepare(b, err) : prepare_drives(b, err)) < 0 ||
	    prepare_configs(b, err) < 0 ||
	    (!o->live && o->layout && bk_add_layout(b, o->layout_name, o->layout, err) < 0))
		goto fail;
	if (bk_decide_mode(b, err) < 0 || (o->live && bk_live_start(b, o->mode, err) < 0) ||
	    bk_source_bitmaps(b, o->mode, err) < 0)
		goto fail;
	return b;
fail:
	vb_backup_free(b);
	return NULL;
}

void bk_drop_new_files(struct vb_backup *b)
{
	for (size_t i = 0; i < b->njobs; i++) {
		struct drive_job *j = &b->jobs[i];

		if (b->o.state) {
			vb_state_unlink(b->o.state, j->map_file);
			vb_state_unlink(b->o.state, j->bitmap_file);
		}
		free(j->map_file);
		free(j->bitmap_file);
		j->map_file = j->bitmap_file = NULL;
	}
}

void vb_backup_free(struct vb_backup *b)
{
	if (!b)
		return;
	bk_drop_new_files(b);
	bk_images_finish(b, BK_FAILED); /* closes the sources */
	for (size_t i = 0; i < b->njobs; i++) {
		bitmap_free(b->jobs[i].extra);
		bitmap_free(b->jobs[i].plan);
		bitmap_free(b->jobs[i].dirty);
		bitmap_free(b->jobs[i].srcmap);
		free(b->jobs[i].bitmap);
		free(b->jobs[i].bitmap_why);
		free(b->jobs[i].image);
		free(b->jobs[i].owned_spec);
	}
	free(b->jobs);
	for (size_t i = 0; i < b->ncfg; i++) {
		free(b->cfg[i].name);
		free(b->cfg[i].data);
	}
	free(b->cfg);
	vb_warnings_free(&b->warn);
	free(b);
}
