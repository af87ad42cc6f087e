/* backup.c: the run of the backup transaction (prepared in prepare.c): the
 * changes found, the archive's header, the jobs in order into one archive,
 * the siblings and the archive published, and the checkpoint committed
 * only after the archive is durable. */
#include <errno.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/backup/backup_int.h"

static int vma_fail(struct run *r)
{
	return vb_error_vma(r->err, r->vw);
}

static uint64_t planned_clusters(const struct drive_job *j)
{
	return j->plan ? bitmap_count(j->plan) : j->nclusters;
}

static int start_archive(struct run *r, int64_t ctime)
{
	struct vb_backup *b = r->b;
	struct vb_meta_archive_in ma = {
		.kind = vb_kind_of_mode(b->mode),
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
/* --mode auto, and a drive's old digest map was found damaged before the
 * archive started: a full backup instead (a note), never a wrong
 * incremental; the scan's new maps go, the copy makes them again. */
static int fall_back_to_full(struct run *r)
{
	struct vb_backup *b = r->b;

	if (b->o.mode != VB_MODE_AUTO)
		return -1;
	vb_warn(&b->warn, VB_WARN_FULL, NULL, "%s; full backup", r->err->msg);
	vb_error_clear(r->err);
	bk_drop_new_files(b);
	for (size_t i = 0; i < b->njobs; i++) {
		struct drive_job *j = &b->jobs[i];

		bitmap_free(j->dirty);
		bitmap_free(j->plan);
		bitmap_free(j->extra);
		bitmap_free(j->srcmap);
		j->dirty = j->plan = j->extra = j->srcmap = NULL;
		j->latest = NULL;
		j->old_map = j->from_bitmap = j->map_damaged = false;
	}
	b->mode = VB_MODE_FULL;
	b->base = NULL;
	r->res->kind = VB_KIND_FULL;
	r->res->dirty_clusters = 0;
	r->prog.total_done = 0;
	return 0;
}

static int scan_all(struct run *r)
{
	struct vb_backup *b = r->b;

	if (!b->o.state || b->mode == VB_MODE_FULL)
		return 0;
	for (size_t i = 0; i < b->njobs; i++) {
		struct drive_job *j = &b->jobs[i];

		if (j->srcmap) {
			/* The source tracked the changes: nothing to read here
			 * but the old map, patched during the copy. */
			if (job_check_map(b->o.state, j->latest, j->size, true, r->err) < 0)
				return fall_back_to_full(r);
			j->dirty = j->srcmap;
			j->srcmap = NULL;
			j->from_bitmap = true;
		} else if (job_scan(r, j) < 0) {
			return j->map_damaged ? fall_back_to_full(r) : -1;
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
	char uuid[37], sha[65], kid[2 * VB_KEY_ID_LEN + 1], (*roots)[65] = NULL;
	char tree[sizeof(VMA_TREE_NAME) + 65];
	struct vb_ckpt c = { 0 };
	int rc = -1, got;

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
	c.kind = vb_kind_of_mode(b->mode);
	c.parent = latest ? latest->name : NULL;
	c.uuid = uuid;
	c.base_uuid = b->base ? b->base->uuid : NULL;
	if (b->o.encrypt_to) {
		vb_key_id_hex(vb_pubkey_id(b->o.encrypt_to), kid);
		c.key_id = kid;
	}
	snprintf(tree, sizeof(tree), "%s:%s", VMA_TREE_NAME, sha);
	c.archive_sha256 = r->res->tree ? NULL : sha;
	c.archive_digest = r->res->tree ? tree : NULL;
	c.archive_size = r->res->output_bytes;
	c.ndrives = b->njobs;
	for (size_t i = 0; i < b->njobs; i++) {
		struct drive_job *j = &b->jobs[i];

		vb_hex(j->root, DIGEST_LEN, roots[i]);
		c.drives[i] = (struct vb_ckpt_drive){
			.name = (char *)j->name, .size = j->size, .source = (char *)j->spec,
			.bitmap = j->bitmap_file, .digests = j->map_file, .digest_root = roots[i],
			.archive_digests = j->ad_file,
		};
	}
	got = vb_state_commit(s, &c, b->o.no_commit, r->err);
	if (got < 0)
		goto out;
	/* Published (1: not durable): the state owns these files now. */
	for (size_t i = 0; i < b->njobs; i++) {
		free(b->jobs[i].map_file);
		free(b->jobs[i].bitmap_file);
		free(b->jobs[i].ad_file);
		b->jobs[i].map_file = b->jobs[i].bitmap_file = b->jobs[i].ad_file = NULL;
	}
	rc = got;
out:
	free(c.archive);
	free(c.drives);
	free(roots);
	return rc;
}

/* Publishes the siblings (each atomically, fsynced); on a failure removes
 * those already published (before the archive: nothing is published). */
static int publish_siblings(const struct vb_backup *b, struct vb_error *err)
{
	for (size_t i = 0; i < b->o.nsiblings; i++) {
		const struct vb_sibling *f = &b->o.siblings[i];
		struct vb_writer *w = vb_sink_file_new(f->path, true, err);
		int r = -1;

		if (w && f->len && vb_writer_write(w, f->data, f->len, err) < 0) {
			vb_writer_discard(w);
			w = NULL;
		}
		if (w)
			r = vb_writer_close(w, err);
		if (r > 0) { /* renamed, not durable: removed again with the others */
			int e = err->sys_errno;

			vb_error_clear(err);
			vb_error_set(err, VB_E_FAIL, e, "%s: the fsync of its directory failed "
				     "(%s)", f->path, strerror(e));
		}
		if (r != 0) {
			if (r > 0)
				i++;
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

/* Takes err's message into why and clears err, for a new message that
 * says first what happened; returns its errno. */
static int reword(struct vb_error *err, char *why, size_t len)
{
	int e = err->sys_errno;

	snprintf(why, len, "%s", err->msg);
	vb_error_clear(err);
	return e;
}

int vb_backup_run(struct vb_backup *b, struct vb_writer *sink, struct vb_backup_result *res,
		  struct vb_error *err)
{
	struct run r = { .b = b, .err = err, .res = res };
	int64_t ctime = vb_clock_now();
	double t0 = vb_clock_monotonic();
	char why[sizeof(err->msg)];
	int rc = -1, e;

	memset(res, 0, sizeof(*res));
	res->kind = vb_kind_of_mode(b->mode);
	res->drives = (unsigned)b->njobs;
	for (size_t i = 0; i < b->njobs; i++)
		res->total_size += b->jobs[i].size;
	snprintf(res->checkpoint, sizeof(res->checkpoint), "%s", b->ckname);
	r.prog.drive_count = (unsigned)b->njobs;
	r.prog.total_size = res->total_size;
	struct vb_output_opts oo = {
		.compress = b->o.compress, .zstd_level = b->o.zstd_level,
		.zstd_threads = b->o.zstd_threads, .sha256 = res->sha256,
		.bytes = &res->output_bytes, .encrypt_to = b->o.encrypt_to,
		.sign = b->o.sign };
	/* One hash pass per byte: a set's archive written to a file as the VMA
	 * writer makes it gets the vma-tree-1 digest from the cluster digests
	 * the digest maps need anyway (a stack that changes the bytes, or an
	 * output whose summary is all its reader has to check, keeps SHA-256) */
	res->tree = b->o.state && b->o.archive_path && vb_output_stack_plain(&oo);
	if (res->tree) {
		oo.sha256 = NULL;
		oo.bytes = NULL;
		if (!(r.tree = vma_tree_new())) {
			vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
			vb_writer_discard(sink);
			goto fail;
		}
	}
	r.out = vb_output_stack(sink, &oo, err);
	if (!r.out)
		goto fail;
	r.buf = aligned_alloc(4096, CHUNK_SIZE);
	r.vo = (struct vb_vma_out){ .out = r.out, .err = err };
	r.vw = vb_vma_out_writer(&r.vo, err);
	if (r.vw && r.tree)
		vma_writer_set_tree(r.vw, r.tree);
	if (b->o.bwlimit)
		r.rl = vb_ratelimit_new(b->o.bwlimit, CHUNK_SIZE, NULL, NULL, NULL);
	if (b->o.state)
		r.hasher = chunk_hasher_new(); /* digest maps: hash on two CPUs */
	/* the next chunk is read while the helper hashes one; without a state,
	 * while this thread writes one (NULL: read and write take turns) */
	if (r.hasher || !b->o.state)
		r.buf2 = aligned_alloc(4096, CHUNK_SIZE);
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
		if (job_copy(&r, &b->jobs[i]) < 0) {
			bk_live_explain(b, err);
			goto fail;
		}
	if (vma_writer_finish(r.vw) < 0) {
		vma_fail(&r);
		goto fail;
	}
	res->archive_bytes = vma_writer_bytes(r.vw);
	if (r.tree) {
		res->output_bytes = res->archive_bytes;
		if (vma_tree_final(r.tree, res->sha256) < 0) {
			vb_error_set(err, VB_E_FAIL, 0, "output: the archive's %s digest failed",
				     VMA_TREE_NAME);
			goto fail;
		}
	}
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
		int closed;

		r.out = NULL;
		closed = vb_writer_close(out, err);
		if (closed < 0) {
			remove_siblings(b);
			goto fail;
		}
		/* From here on the archive is out (1: under its final name, but
		 * perhaps not durable, which err says): never "nothing published". */
		res->published = true;
		if (closed > 0) {
			if (b->o.state) {
				e = reword(err, why, sizeof(why));
				vb_error_set(err, VB_E_FAIL, e, "%s; checkpoint %s was not "
					     "committed, the next backup will include these "
					     "changes again", why, b->ckname);
			}
			goto fail;
		}
	}
	vb_crash_point("after-rename");
	/* The archive is durable: only now may the checkpoint move. */
	if (b->o.state) {
		int got = commit(&r, ctime);

		if (got < 0) {
			e = reword(err, why, sizeof(why));
			vb_error_set(err, VB_E_FAIL, e, "the archive was written, but checkpoint "
				     "%s was not committed (%s); the next backup will include "
				     "these changes again", b->ckname, why);
			goto fail;
		}
		res->committed = !b->o.no_commit;
		res->pending = b->o.no_commit;
		if (got > 0) {
			/* Renamed: the state names this run's files, which stay. */
			e = reword(err, why, sizeof(why));
			vb_error_set(err, VB_E_FAIL, e, "the archive was written and checkpoint "
				     "%s was %s, but %s", b->ckname, b->o.no_commit ?
				     "recorded as pending" : "committed", why);
			goto fail;
		}
		vb_crash_point("after-commit");
	}
	rc = 0;
fail:
	if (r.out)
		vb_writer_discard(r.out);
	if (rc < 0 || res->skipped)
		bk_drop_new_files(b); /* none once the state names them */
	bk_images_finish(b, (rc < 0 && !res->committed && !res->pending) || res->skipped ?
			 BK_FAILED : b->o.no_commit ? BK_PENDING : BK_COMMITTED);
	vma_writer_free(r.vw);
	vma_tree_free(r.tree);
	chunk_hasher_free(r.hasher);
	vb_ratelimit_free(r.rl);
	free(r.buf);
	free(r.buf2);
	res->seconds = vb_clock_monotonic() - t0;
	return rc;
}
