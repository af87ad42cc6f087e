/* verify_deep.c: `verify --deep`: the archives of a checkpoint's chain
 * against the state's records: each file's SHA-256 against its manifest,
 * and each restored cluster against the digest map (or its root hash). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bitmap/bitmap.h"
#include "core/restore/restore_int.h"

static int null_write_cb(void *opaque, const void *buf, size_t len)
{
	(void)opaque;
	(void)buf;
	(void)len;
	return 0;
}

/* The chain of checkpoint c, oldest first, from the state's records (the
 * committed checkpoints and the retired records a removal kept): each
 * archive's path and record. file: the archive of c itself, given by the user. */
static int chain_of(const struct vb_state *s, const struct vb_ckpt *c, const char *file,
		    const char ***paths, const struct vb_ckpt ***recs, size_t *n,
		    struct vb_error *err)
{
	const struct vb_ckpt *cur = c;
	size_t max = vb_state_count(s) + vb_state_retired_count(s) + 1;

	*n = 0;
	*paths = calloc(max + 1, sizeof(**paths));
	*recs = calloc(max + 1, sizeof(**recs));
	if (!*paths || !*recs)
		return vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
	while (cur && *n <= max) {
		const char *path = cur == c && file ? file : cur->archive;

		if (!path)
			return vb_error_set(err, VB_E_USAGE, 0, "the archive of checkpoint %s was "
					    "not written to a file; give the chain's archives",
					    cur->name);
		memmove(*paths + 1, *paths, *n * sizeof(**paths));
		memmove(*recs + 1, *recs, *n * sizeof(**recs));
		(*paths)[0] = path;
		(*recs)[0] = cur;
		(*n)++;
		if (cur->kind == VB_KIND_FULL)
			return 0;
		if (!cur->base_uuid || !(cur = vb_state_by_uuid(s, cur->base_uuid)))
			return vb_error_set(err, VB_E_USAGE, 0, "the state no longer records the "
					    "archive checkpoint %s builds on; give the chain's "
					    "archives", c->name);
	}
	return vb_error_set(err, VB_E_INVALID, 0, "the checkpoint chain of %s loops", c->name);
}

/* Each archive's bytes against its manifest. A file that differs is named
 * in *bad (the first one) and the chain is still decoded, so the damage is
 * also found by drive and offset where it touches restored data. */
static int check_manifests(const char *const *paths, const struct vb_ckpt *const *recs,
			   size_t n, bool *damaged, char *bad, size_t badlen,
			   struct vb_error *err)
{
	for (size_t i = 0; i < n; i++) {
		struct vb_error e = { 0 };

		if (vb_ckpt_check_file(recs[i], paths[i], &e) == 0)
			continue;
		if (e.cls != VB_E_INVALID) {
			*err = e;
			return -1;
		}
		damaged[i] = true;
		if (!bad[0])
			snprintf(bad, badlen, "%.*s", (int)(badlen - 1), e.msg);
	}
	return 0;
}

/* What a file given to verify is, when it is not an archive of the set's
 * state: into err (VB_E_INVALID). */
static int not_in_set(const struct vb_state *s, const char *file, const struct vb_meta *m,
		      struct vb_error *err)
{
	if (!m->set)
		return vb_error_set(err, VB_E_INVALID, 0, "%s is not an archive of set '%s': it "
				    "belongs to no backup set (no vmaback.json)", file,
				    vb_state_set(s));
	if (strcmp(m->set, vb_state_set(s)) != 0)
		return vb_error_set(err, VB_E_INVALID, 0, "%s is not an archive of set '%s': it "
				    "is checkpoint %s of set '%s'", file, vb_state_set(s),
				    m->checkpoint ? m->checkpoint : "?", m->set);
	return vb_error_set(err, VB_E_INVALID, 0, "%s (checkpoint %s, archive %s) is not in the "
			    "state of set '%s' (pruned, or of an older chain)", file,
			    m->checkpoint ? m->checkpoint : "?", m->uuid, vb_state_set(s));
}

/* The checkpoint whose archive the user gave (o->file). */
static const struct vb_ckpt *file_ckpt(const struct vb_deep_opts *o, struct vb_error *err)
{
	struct vb_archive *a = vb_archive_open(o->file, err);
	const struct vb_ckpt *c;

	if (!a)
		return NULL;
	c = vb_state_by_uuid(o->state, vb_archive_meta(a)->uuid);
	if (c && vb_archive_meta(a)->set && strcmp(vb_archive_meta(a)->set,
						   vb_state_set(o->state)) != 0)
		c = NULL;
	if (!c)
		not_in_set(o->state, o->file, vb_archive_meta(a), err);
	else if (o->checkpoint && strcmp(o->checkpoint, c->name) != 0) {
		vb_error_set(err, VB_E_USAGE, 0, "%s is the archive of checkpoint %s, not of %s",
			     o->file, c->name, o->checkpoint);
		c = NULL;
	}
	vb_archive_free(a);
	return c;
}

/* The digest of cluster c's len bytes; a cluster with no stored block
 * (a hole, a zero cluster: most of a sparse drive) takes the zero
 * cluster's, computed once, instead of hashing 64 KiB of zeros. */
static int cluster_digest(const struct vma_cluster *c, size_t len, uint8_t out[DIGEST_LEN])
{
	static uint8_t zero[DIGEST_LEN];
	static bool have;

	if (c->mask != 0 || len != VMA_CLUSTER_SIZE)
		return digest_cluster(c->data, len, out);
	if (!have) {
		if (digest_cluster(c->data, len, zero) < 0)
			return -1;
		have = true;
	}
	memcpy(out, zero, DIGEST_LEN);
	return 0;
}

/* Where one archive differs from what it held when written: its clusters
 * against the digests recorded for that archive. Appends what it finds. */
static void locate(struct vb_state *s, const struct vb_ckpt *c, const char *path, char *out,
		   size_t outlen)
{
	struct vb_error err = { 0 };
	struct vb_archive *a = vb_archive_open(path, &err);
	struct vb_adigests *ad = calloc(c->ndrives + 1, sizeof(*ad));
	struct vma_cluster cl;
	size_t len = strlen(out);
	int r = -1;

	for (size_t i = 0; a && ad && i < c->ndrives; i++)
		if (!c->drives[i].archive_digests ||
		    vb_adigests_load(s, c->drives[i].archive_digests, &ad[i], &err) < 0)
			goto out;
	while (a && ad && (r = vb_archive_next_cluster(a, &cl, &err)) == 1) {
		const struct vb_ckpt_drive *d;
		const uint8_t *want;
		uint8_t got[DIGEST_LEN];
		uint64_t off = (uint64_t)cl.cluster_num * VMA_CLUSTER_SIZE;

		if (cl.dev_id == 0 || cl.dev_id > c->ndrives)
			break;
		d = &c->drives[cl.dev_id - 1];
		want = vb_adigests_find(&ad[cl.dev_id - 1], cl.cluster_num);
		if (!want || off >= d->size ||
		    cluster_digest(&cl, d->size - off < VMA_CLUSTER_SIZE ?
				   (size_t)(d->size - off) : VMA_CLUSTER_SIZE, got) < 0 ||
		    memcmp(got, want, DIGEST_LEN) == 0)
			continue;
		snprintf(out + len, outlen - len, "; in %s: drive %s: the data at offset %" PRIu64
			 " (cluster %" PRIu32 ") differs from what was backed up", path, d->name,
			 off, cl.cluster_num);
		goto out;
	}
	if (r < 0 && err.msg[0] && !strstr(out, err.msg))
		snprintf(out + len, outlen - len, "; %.400s", err.msg);
out:
	for (size_t i = 0; ad && i < c->ndrives; i++)
		free(ad[i].entries);
	free(ad);
	vb_archive_free(a);
}

/* The data check failed (err) or passed; a damaged file is reported too. */
static int manifest_verdict(const char *bad, const char *ckpt, int rc, struct vb_error *err)
{
	size_t len;

	if (!bad[0] || (rc < 0 && err->cls == VB_E_CANCELED))
		return rc;
	if (rc < 0 && strstr(bad, err->msg)) {
		/* locate() already found the same damage in that file; the
		 * first error wins, so clear it to report the file's. */
		*err = (struct vb_error){ 0 };
		return vb_error_set(err, VB_E_INVALID, 0, "%s", bad);
	}
	if (rc < 0) {
		len = strlen(err->msg);
		snprintf(err->msg + len, sizeof(err->msg) - len, "; %s", bad);
		err->cls = VB_E_INVALID;
		return -1;
	}
	return vb_error_set(err, VB_E_INVALID, 0, "%s (what checkpoint %s restores is intact: "
			    "the damage is in clusters later archives replace, or in the "
			    "archive's headers)", bad, ckpt);
}

struct drive_check {
	const struct vb_ckpt_drive *d;
	uint64_t next;                 /* the cluster expected next */
	int fd;
	struct digest_reader *map;     /* the latest checkpoint: its map */
	struct digest_writer *root;    /* older ones: recompute the root */
};

static int check_cluster(struct drive_check *dc, const struct vma_cluster *c,
			 struct vb_error *err)
{
	uint64_t off = (uint64_t)c->cluster_num * VMA_CLUSTER_SIZE;
	size_t len = dc->d->size - off < VMA_CLUSTER_SIZE ? (size_t)(dc->d->size - off)
							 : VMA_CLUSTER_SIZE;
	uint8_t got[DIGEST_LEN], want[DIGEST_LEN];

	if (c->cluster_num != dc->next)
		return vb_error_set(err, VB_E_INVALID, 0, "drive %s: cluster %" PRIu64 " (offset "
				    "%" PRIu64 ") is missing from the chain", dc->d->name,
				    dc->next, dc->next * VMA_CLUSTER_SIZE);
	dc->next++;
	if (cluster_digest(c, len, got) < 0)
		return vb_error_set(err, VB_E_FAIL, 0, "SHA-256 failed");
	if (dc->root)
		return digest_writer_add(dc->root, got) < 0 ?
			vb_error_set(err, VB_E_FAIL, 0, "digest failed") : 0;
	if (digest_reader_next(dc->map, want) != 1)
		return vb_error_set(err, VB_E_INVALID, 0, "drive %s: the digest map of the state "
				    "is damaged", dc->d->name);
	if (memcmp(got, want, DIGEST_LEN) != 0)
		return vb_error_set(err, VB_E_INVALID, 0, "drive %s: the restored data differs "
				    "from what was backed up at offset %" PRIu64 " (cluster %"
				    PRIu32 ")", dc->d->name, off, c->cluster_num);
	return 0;
}

static int open_checks(struct vb_state *s, const struct vb_ckpt *c, struct drive_check *dc,
		       struct vb_error *err)
{
	for (size_t i = 0; i < c->ndrives; i++) {
		uint64_t size, n;

		dc[i].d = &c->drives[i];
		dc[i].fd = -1;
		if (!c->drives[i].digests) {
			dc[i].root = digest_writer_new(c->drives[i].size, null_write_cb, NULL);
			if (!dc[i].root)
				return vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
			continue;
		}
		dc[i].fd = vb_state_open_file(s, c->drives[i].digests, err);
		if (dc[i].fd < 0)
			return -1;
		dc[i].map = digest_reader_new(vb_fd_read_cb, &dc[i].fd);
		if (!dc[i].map || digest_reader_start(dc[i].map, &size, &n) < 0 ||
		    size != c->drives[i].size)
			return vb_error_set(err, VB_E_INVALID, 0, "drive %s: the digest map of the "
					    "state is damaged", c->drives[i].name);
	}
	return 0;
}

static int close_checks(const struct vb_ckpt *c, struct drive_check *dc, struct vb_error *err)
{
	for (size_t i = 0; i < c->ndrives; i++) {
		uint8_t root[DIGEST_LEN], d[DIGEST_LEN];
		char h[65];

		if (dc[i].next != vma_clusters_of(dc[i].d->size))
			return vb_error_set(err, VB_E_INVALID, 0, "drive %s: the chain holds %"
					    PRIu64 " of its clusters", dc[i].d->name, dc[i].next);
		if (dc[i].map && digest_reader_next(dc[i].map, d) != 0)
			return vb_error_set(err, VB_E_INVALID, 0, "drive %s: the digest map of "
					    "the state is damaged", dc[i].d->name);
		if (dc[i].map)
			digest_reader_root(dc[i].map, root);
		else if (digest_writer_finish(dc[i].root, root) < 0)
			return vb_error_set(err, VB_E_FAIL, 0, "digest failed");
		vb_hex(root, DIGEST_LEN, h);
		if (!dc[i].d->digest_root || strcmp(h, dc[i].d->digest_root) != 0)
			return vb_error_set(err, VB_E_INVALID, 0, "drive %s: the restored data "
					    "differs from what was backed up (digest root)",
					    dc[i].d->name);
	}
	return 0;
}

int vb_verify_deep(const struct vb_deep_opts *o, struct vb_deep_result *res,
		   struct vb_error *err)
{
	const struct vb_ckpt *c, **recs = NULL;
	const char **paths = NULL;
	struct drive_check *dc = NULL;
	struct vb_chain *chain = NULL;
	struct vma_cluster cl;
	size_t n = o->narchives;
	bool *damaged = NULL;
	char bad[900] = "";
	int rc = -1, r;

	memset(res, 0, sizeof(*res));
	if (o->file)
		c = file_ckpt(o, err);
	else if (!(c = o->checkpoint ? vb_state_find(o->state, o->checkpoint) :
				       vb_state_latest(o->state)))
		vb_error_set(err, VB_E_USAGE, 0, "backup set '%s' has no checkpoint %s",
			     vb_state_set(o->state), o->checkpoint ? o->checkpoint : "yet");
	if (!c)
		return -1;
	if (c->ndrives == 0)
		return vb_error_set(err, VB_E_INVALID, 0, "checkpoint %s of set '%s' records no "
				    "drives: its state is damaged, nothing can be compared",
				    c->name, vb_state_set(o->state));
	snprintf(res->checkpoint, sizeof(res->checkpoint), "%s", c->name);
	if (n == 0) {
		if (chain_of(o->state, c, o->file, &paths, &recs, &n, err) < 0 ||
		    !(damaged = calloc(n + 1, sizeof(*damaged))) ||
		    check_manifests(paths, recs, n, damaged, bad, sizeof(bad), err) < 0) {
			if (paths && recs && !damaged)
				vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
			goto out;
		}
		for (size_t i = 0; i < n; i++)
			if (damaged[i]) {
				locate(o->state, recs[i], paths[i], bad, sizeof(bad));
				break;
			}
	}
	chain = vb_chain_open(n == o->narchives ? o->archives : paths, n, err);
	dc = calloc(c->ndrives + 1, sizeof(*dc));
	if (!chain || !dc) {
		if (chain)
			vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
		goto out;
	}
	if (!vb_chain_meta(chain)->checkpoint ||
	    strcmp(vb_chain_meta(chain)->checkpoint, c->name) != 0) {
		vb_error_set(err, VB_E_USAGE, 0, "the newest archive given is not the one of "
			     "checkpoint %s", c->name);
		goto out;
	}
	if (open_checks(o->state, c, dc, err) < 0)
		goto out;
	while ((r = vb_chain_next(chain, &cl, err)) == 1) {
		if (o->cancel && *o->cancel) {
			vb_error_set(err, VB_E_CANCELED, EINTR, "interrupted");
			goto out;
		}
		if (cl.dev_id == 0 || cl.dev_id > c->ndrives) {
			vb_error_set(err, VB_E_INVALID, 0, "the chain holds device %u, but "
				     "checkpoint %s records %zu drive%s", cl.dev_id, c->name,
				     c->ndrives, c->ndrives == 1 ? "" : "s");
			goto out;
		}
		if (check_cluster(&dc[cl.dev_id - 1], &cl, err) < 0)
			goto out;
		res->clusters++;
	}
	if (r < 0 || close_checks(c, dc, err) < 0)
		goto out;
	res->archives = (unsigned)n;
	res->per_cluster = c->drives[0].digests != NULL;
	rc = 0;
out:
	for (size_t i = 0; dc && i < c->ndrives; i++) {
		digest_reader_free(dc[i].map);
		digest_writer_free(dc[i].root);
		if (dc[i].fd >= 0)
			close(dc[i].fd);
	}
	free(dc);
	free(damaged);
	free(paths);
	free(recs);
	vb_chain_free(chain);
	return manifest_verdict(bad, res->checkpoint, rc, err);
}
