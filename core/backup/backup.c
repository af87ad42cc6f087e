/* backup.c: the backup transaction: prepare every job (open and size every
 * drive, read configs, decide the mode from the checkpoint state), run the
 * jobs in order into one archive, and commit the checkpoint only after the
 * archive is durable. */
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/backup/backup_int.h"

/* A line for the person running the backup (printed after prepare). */
#define note(b, ...) vb_notes_add(&(b)->notes, __VA_ARGS__)

const char *vb_backup_notes(const struct vb_backup *b)
{
	return b->notes ? b->notes : "";
}

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
		if (job_check_map(b->o.state, j->latest, j->size, err) < 0)
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

	while (k > 0 && strcmp(vb_state_get(s, k - 1)->kind, "full") != 0)
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

static int decide_mode(struct vb_backup *b, struct vb_error *err)
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

static int pick_checkpoint_name(struct vb_backup *b, struct vb_error *err)
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

const char *vb_backup_kind(const struct vb_backup *b)
{
	return vb_mode_name(b->mode);
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
	/* The name first: a qcow2 image gets the new checkpoint's bitmap
	 * before its source opens (image_bitmaps.c). */
	if (check_output(b, err) < 0 || pick_checkpoint_name(b, err) < 0 ||
	    (o->live ? bk_live_prepare(b, err) : prepare_drives(b, err)) < 0 ||
	    prepare_configs(b, err) < 0)
		goto fail;
	if (decide_mode(b, err) < 0 || (o->live && bk_live_start(b, o->mode, err) < 0) ||
	    bk_source_bitmaps(b, o->mode, err) < 0)
		goto fail;
	return b;
fail:
	vb_backup_free(b);
	return NULL;
}

static void drop_new_files(struct vb_backup *b)
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
	drop_new_files(b);
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
	free(b->notes);
	free(b);
}

static int write_cb(void *opaque, const void *buf, size_t len)
{
	struct run *r = opaque;

	if (vb_writer_write(r->out, buf, len, r->err) < 0)
		return r->err->sys_errno ? -r->err->sys_errno : -EIO;
	return 0;
}

static int vma_fail(struct run *r)
{
	return vb_error_set(r->err, VB_E_FAIL, vma_writer_sys_errno(r->vw), "archive: %s",
			    vma_writer_error(r->vw));
}

static uint64_t planned_clusters(const struct drive_job *j)
{
	return j->plan ? bitmap_count(j->plan) : j->nclusters;
}

static int start_archive(struct run *r, int64_t ctime)
{
	struct vb_backup *b = r->b;
	struct vb_meta_archive_in ma = {
		.kind = vb_mode_name(b->mode),
		.set = b->o.state ? vb_state_set(b->o.state) : NULL,
		.checkpoint = b->o.state ? b->ckname : NULL,
		.parent_checkpoint = b->base ? b->base->name : NULL,
		.parent_uuid = b->base ? b->base->uuid : NULL,
	};
	struct vb_meta_drive_in *md;
	char *json = NULL;
	int rc = -1;

	if (RAND_bytes(r->res->uuid, VMA_UUID_LEN) != 1)
		return vb_error_set(r->err, VB_E_FAIL, 0, "no random bytes for the archive uuid");
	md = calloc(b->njobs, sizeof(*md));
	if (!md)
		return vb_error_set(r->err, VB_E_FAIL, ENOMEM, "out of memory");
	for (size_t i = 0; i < b->njobs; i++) {
		md[i].name = b->jobs[i].name;
		md[i].dev_id = b->jobs[i].dev_id;
		md[i].size = b->jobs[i].size;
		md[i].clusters = planned_clusters(&b->jobs[i]);
		md[i].source = b->o.live ? "qmp" : vb_source_kind(b->jobs[i].src);
		md[i].path = b->jobs[i].spec;
	}
	json = vb_meta_build(&ma, r->res->uuid, ctime, md, b->njobs, r->err);
	if (!json)
		goto out;
	if (vma_writer_set_uuid(r->vw, r->res->uuid) < 0)
		goto vfail;
	vma_writer_set_ctime(r->vw, ctime);
	for (size_t i = 0; i < b->ncfg; i++)
		if (vma_writer_add_config(r->vw, b->cfg[i].name, b->cfg[i].data, b->cfg[i].len) < 0)
			goto vfail;
	if (vma_writer_add_config(r->vw, VB_META_NAME, json, strlen(json)) < 0)
		goto vfail;
	for (size_t i = 0; i < b->njobs; i++)
		if (vma_writer_add_device(r->vw, md[i].name, vb_round_sector(md[i].size)) < 0)
			goto vfail;
	if (vma_writer_start(r->vw) < 0)
		goto vfail;
	rc = 0;
	goto out;
vfail:
	vma_fail(r);
out:
	free(json);
	free(md);
	return rc;
}

/* Incremental and differential: find the changes of every drive before the
 * header (which records each drive's cluster count) is written. */
static int scan_all(struct run *r)
{
	struct vb_backup *b = r->b;

	if (!b->o.state || b->mode == VB_MODE_FULL)
		return 0;
	for (size_t i = 0; i < b->njobs; i++) {
		struct drive_job *j = &b->jobs[i];

		if (j->srcmap) {
			/* The source tracked the changes: nothing to read here. */
			j->dirty = j->srcmap;
			j->srcmap = NULL;
			j->from_bitmap = true;
		} else if (job_scan(r, j) < 0) {
			return -1;
		}
		j->plan = bitmap_dup(j->dirty);
		if (!j->plan)
			return vb_error_set(r->err, VB_E_FAIL, ENOMEM, "out of memory");
		if (j->extra)
			bitmap_union(j->plan, j->extra);
		r->res->dirty_clusters += bitmap_count(j->dirty);
	}
	r->prog.total_done = 0;
	r->prog.total_size = 0;
	for (size_t i = 0; i < b->njobs; i++)
		r->prog.total_size += planned_clusters(&b->jobs[i]) * (uint64_t)VMA_CLUSTER_SIZE;
	return 0;
}

/* The output stack over the sink: SHA-256 of what is written, then zstd. */
static struct vb_writer *build_stack(struct run *r, struct vb_writer *sink)
{
	struct vb_writer *h, *z;

	h = vb_hash_writer_new(sink, r->res->sha256, &r->res->output_bytes, r->err);
	if (!h) {
		vb_writer_discard(sink);
		return NULL;
	}
	if (!r->b->o.compress)
		return h;
	z = vb_zstd_writer_new(h, r->b->o.zstd_level, r->b->o.zstd_threads, r->err);
	if (!z)
		vb_writer_discard(h);
	return z;
}

static char *absolute(const char *path)
{
	char cwd[4096], *out;
	size_t len;

	if (!path || path[0] == '/')
		return path ? strdup(path) : NULL;
	if (!getcwd(cwd, sizeof(cwd)))
		return strdup(path);
	len = strlen(cwd) + strlen(path) + 2;
	out = malloc(len);
	if (out)
		snprintf(out, len, "%s/%s", cwd, path);
	return out;
}

static int write_bitmaps(struct run *r)
{
	for (size_t i = 0; i < r->b->njobs; i++) {
		struct drive_job *j = &r->b->jobs[i];
		uint8_t *enc;
		size_t len;
		int rc;

		if (bitmap_encode(j->dirty, &enc, &len) < 0)
			return vb_error_set(r->err, VB_E_FAIL, ENOMEM, "out of memory");
		rc = vb_state_write_file(r->b->o.state, "bitmap", enc, len, &j->bitmap_file,
					 r->err);
		free(enc);
		if (rc < 0)
			return -1;
	}
	return 0;
}

static int commit(struct run *r, int64_t ctime)
{
	struct vb_backup *b = r->b;
	struct vb_state *s = b->o.state;
	const struct vb_ckpt *latest = vb_state_latest(s);
	char uuid[37], sha[65], (*roots)[65] = NULL;
	struct vb_ckpt c = { 0 };
	int rc = -1;

	if (write_bitmaps(r) < 0)
		return -1;
	roots = calloc(b->njobs, sizeof(*roots));
	c.drives = calloc(b->njobs, sizeof(*c.drives));
	c.archive = absolute(b->o.archive_path);
	if (!roots || !c.drives || (b->o.archive_path && !c.archive)) {
		vb_error_set(r->err, VB_E_FAIL, ENOMEM, "out of memory");
		goto out;
	}
	vb_uuid_format(r->res->uuid, uuid);
	vb_hex(r->res->sha256, 32, sha);
	c.name = b->ckname;
	c.time = ctime;
	c.kind = (char *)vb_mode_name(b->mode);
	c.parent = latest ? latest->name : NULL;
	c.uuid = uuid;
	c.base_uuid = b->base ? b->base->uuid : NULL;
	c.archive_sha256 = sha;
	c.archive_size = r->res->output_bytes;
	c.ndrives = b->njobs;
	for (size_t i = 0; i < b->njobs; i++) {
		struct drive_job *j = &b->jobs[i];

		vb_hex(j->root, DIGEST_LEN, roots[i]);
		c.drives[i] = (struct vb_ckpt_drive){
			.name = (char *)j->name, .size = j->size, .source = (char *)j->spec,
			.bitmap = j->bitmap_file, .digests = j->map_file, .digest_root = roots[i],
		};
	}
	if (vb_state_commit(s, &c, b->o.no_commit, r->err) < 0)
		goto out;
	/* Published: the state owns these files now. */
	for (size_t i = 0; i < b->njobs; i++) {
		free(b->jobs[i].map_file);
		free(b->jobs[i].bitmap_file);
		b->jobs[i].map_file = b->jobs[i].bitmap_file = NULL;
	}
	rc = 0;
out:
	free(c.archive);
	free(c.drives);
	free(roots);
	return rc;
}

/* Publishes the siblings (each atomically, fsynced); on a failure removes
 * those already published. */
static int publish_siblings(const struct vb_backup *b, struct vb_error *err)
{
	for (size_t i = 0; i < b->o.nsiblings; i++) {
		const struct vb_sibling *f = &b->o.siblings[i];
		struct vb_writer *w = vb_sink_file_new(f->path, true, err);

		if (w && f->len && vb_writer_write(w, f->data, f->len, err) < 0) {
			vb_writer_discard(w);
			w = NULL;
		}
		if (!w || vb_writer_close(w, err) < 0) {
			while (i-- > 0)
				unlink(b->o.siblings[i].path);
			return -1;
		}
	}
	return 0;
}

static void remove_siblings(const struct vb_backup *b)
{
	for (size_t i = 0; i < b->o.nsiblings; i++)
		unlink(b->o.siblings[i].path);
}

int vb_backup_run(struct vb_backup *b, struct vb_writer *sink, struct vb_backup_result *res,
		  struct vb_error *err)
{
	struct run r = { .b = b, .err = err, .res = res };
	int64_t ctime = vb_clock_now();
	double t0 = vb_clock_monotonic();
	int rc = -1;

	memset(res, 0, sizeof(*res));
	res->kind = vb_mode_name(b->mode);
	res->drives = (unsigned)b->njobs;
	for (size_t i = 0; i < b->njobs; i++)
		res->total_size += b->jobs[i].size;
	snprintf(res->checkpoint, sizeof(res->checkpoint), "%s", b->ckname);
	r.prog.drive_count = (unsigned)b->njobs;
	r.prog.total_size = res->total_size;
	r.out = build_stack(&r, sink);
	if (!r.out)
		goto fail;
	r.buf = aligned_alloc(4096, CHUNK_SIZE);
	r.vw = vma_writer_new(write_cb, &r);
	if (b->o.bwlimit)
		r.rl = vb_ratelimit_new(b->o.bwlimit, CHUNK_SIZE, NULL, NULL, NULL);
	if (b->o.state)
		r.hasher = chunk_hasher_new(); /* digest maps: hash on two CPUs */
	if (!r.buf || !r.vw || (b->o.bwlimit && !r.rl)) {
		vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
		goto fail;
	}
	memset(r.buf, 0, VMA_CLUSTER_SIZE);
	if (digest_cluster(r.buf, VMA_CLUSTER_SIZE, r.zero_digest) < 0) {
		vb_error_set(err, VB_E_FAIL, 0, "SHA-256 failed");
		goto fail;
	}
	if (scan_all(&r) < 0 || start_archive(&r, ctime) < 0)
		goto fail;
	for (size_t i = 0; i < b->njobs; i++)
		if (job_copy(&r, &b->jobs[i]) < 0)
			goto fail;
	if (vma_writer_finish(r.vw) < 0) {
		vma_fail(&r);
		goto fail;
	}
	res->archive_bytes = vma_writer_bytes(r.vw);
	if (b->o.threshold && b->mode != VB_MODE_FULL &&
	    res->dirty_clusters * (uint64_t)VMA_CLUSTER_SIZE < b->o.threshold) {
		/* As a failed run, without the failure: the bitmaps and digest
		 * maps stay as they were, so the next run holds these changes. */
		res->skipped = true;
		res->checkpoint[0] = '\0';
		rc = 0;
		goto fail; /* the failure path's clean-up, with exit 0 */
	}
	{
		/* What the copy pass covered (all of a full backup, the planned
		 * clusters of another) is stored, zero, or a hole. */
		uint64_t covered = r.prog.total_size < res->total_size ? r.prog.total_size
									: res->total_size;
		uint64_t stored = vma_writer_stored_blocks(r.vw) * (uint64_t)VMA_BLOCK_SIZE;

		res->bytes_unchanged = res->total_size - covered;
		res->bytes_zero = covered > stored ? covered - stored : 0;
	}
	if (publish_siblings(b, err) < 0)
		goto fail;
	{
		struct vb_writer *out = r.out;

		r.out = NULL;
		if (vb_writer_close(out, err) < 0) {
			remove_siblings(b);
			goto fail;
		}
	}
	vb_crash_point("after-rename");
	/* The archive is durable: only now may the checkpoint move. */
	if (b->o.state) {
		if (commit(&r, ctime) < 0) {
			char why[sizeof(err->msg)];

			snprintf(why, sizeof(why), "%s", err->msg);
			vb_error_clear(err);
			vb_error_set(err, VB_E_FAIL, 0, "the archive was written, but checkpoint %s "
				     "was not committed (%s); the next backup will include these "
				     "changes again", b->ckname, why);
			goto fail;
		}
		res->committed = !b->o.no_commit;
		res->pending = b->o.no_commit;
		vb_crash_point("after-commit");
	}
	rc = 0;
fail:
	if (r.out)
		vb_writer_discard(r.out);
	if (rc < 0 || res->skipped)
		drop_new_files(b);
	bk_images_finish(b, rc < 0 || res->skipped ? BK_FAILED :
			 b->o.no_commit ? BK_PENDING : BK_COMMITTED);
	vma_writer_free(r.vw);
	chunk_hasher_free(r.hasher);
	vb_ratelimit_free(r.rl);
	free(r.buf);
	res->seconds = vb_clock_monotonic() - t0;
	return rc;
}
