/* job.c: one drive's job: reading it in large chunks (holes skipped,
 * rate-limited), hashing clusters into digest maps, and copying the planned
 * clusters into the archive. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/backup/backup_int.h"

/* Zeroes the hole [at, at+len) of a chunk where a cluster may share it with
 * data: the partial clusters at its ends. The whole clusters inside it have
 * no data, and nothing reads them (no data: stored as zero, hashed as the
 * zero cluster), so a sparse terabyte costs no terabyte of memset. */
static void zero_hole(uint8_t *buf, uint64_t at, uint64_t len)
{
	uint64_t end = at + len;
	uint64_t head = (at + VMA_CLUSTER_SIZE - 1) / VMA_CLUSTER_SIZE * VMA_CLUSTER_SIZE;
	uint64_t tail = end / VMA_CLUSTER_SIZE * VMA_CLUSTER_SIZE;

	if (head >= tail) {
		memset(buf + at, 0, len);
		return;
	}
	memset(buf + at, 0, head - at);
	memset(buf + tail, 0, end - tail);
}

/* Fills buf with [off, off+len) of the drive: data extents are read,
 * holes are zero where a cluster holds data, or where a cluster is cut by
 * the drive's end. Bit i of *data_mask: cluster i of the chunk has data. */
static int read_chunk_to(struct run *r, struct drive_job *j, uint8_t *buf, uint64_t off,
			 size_t len, uint64_t *data_mask, struct vb_error *err, uint64_t *bytes)
{
	uint64_t pos = off, end = off + len;

	*data_mask = 0;
	*bytes = 0;
	while (pos < end) {
		uint64_t elen;
		bool data;

		if (vb_source_extent(j->src, pos, end - pos, &elen, &data, err) < 0)
			return -1;
		if (data) {
			uint64_t first = (pos - off) / VMA_CLUSTER_SIZE;
			uint64_t last = (pos + elen - 1 - off) / VMA_CLUSTER_SIZE;

			if (vb_ratelimit_take(r->rl, elen, r->b->o.cancel) < 0)
				return vb_error_set(err, VB_E_CANCELED, EINTR,
						    "drive %s: interrupted", j->name);
			if (vb_source_pread(j->src, buf + (pos - off), elen, pos, err) < 0)
				return -1;
			for (uint64_t c = first; c <= last; c++)
				*data_mask |= UINT64_C(1) << c;
			*bytes += elen;
			vb_crash_point("mid-read");
		} else {
			zero_hole(buf, pos - off, elen);
		}
		pos += elen;
	}
	return 0;
}

static int read_chunk(struct run *r, struct drive_job *j, uint8_t *buf, uint64_t off,
		      size_t len, uint64_t *data_mask)
{
	uint64_t bytes;
	int rc = read_chunk_to(r, j, buf, off, len, data_mask, r->err, &bytes);

	r->res->bytes_read += bytes;
	return rc;
}

static int check_cancel(struct run *r, struct drive_job *j, uint64_t off)
{
	const volatile sig_atomic_t *cancel = r->b->o.cancel;

	if (cancel && *cancel)
		return vb_error_set(r->err, VB_E_CANCELED, EINTR,
				    "drive %s: interrupted at offset %llu", j->name,
				    (unsigned long long)off);
	return 0;
}

static void report(struct run *r, struct drive_job *j, const char *phase, uint64_t done,
		   uint64_t step)
{
	uint64_t stored = vma_writer_stored_blocks(r->vw) * (uint64_t)VMA_BLOCK_SIZE;

	r->prog.phase = phase;
	r->prog.drive_index = j->dev_id - 1;
	r->prog.drive_name = j->name;
	r->prog.drive_size = j->size;
	r->prog.drive_done = done;
	r->prog.total_done += step;
	r->prog.bytes_read = r->res->bytes_read;
	r->prog.bytes_out = vma_writer_bytes(r->vw);
	r->prog.bytes_zero = r->prog.total_done > stored ? r->prog.total_done - stored : 0;
	if (r->b->o.progress)
		r->b->o.progress(r->b->o.progress_opaque, &r->prog);
}

/* One chunk of a drive read whole, and its clusters' digests. */
struct chunk {
	uint64_t off;
	size_t len;
	uint64_t mask;          /* bit c: cluster c holds data */
	uint8_t *buf;
	uint8_t (*dg)[DIGEST_LEN];
};

typedef int (*chunk_fn)(struct run *r, struct drive_job *j, void *ctx, const struct chunk *c);

/* Every chunk of j in order, with a hasher and a second buffer: the helper
 * hashes a chunk while this thread reads the next and hands the one before
 * to fn (writes it), so reading, hashing and writing overlap on two CPUs
 * instead of taking turns. */
static int each_chunk_hashed(struct run *r, struct drive_job *j, chunk_fn fn, void *ctx)
{
	struct chunk c[2] = { { .buf = r->buf, .dg = r->digests },
			      { .buf = r->buf2, .dg = r->digests2 } };
	int cur = 0, prev = -1, rc = -1;
	bool busy = false;

	for (uint64_t off = 0;; off += CHUNK_SIZE) {
		bool more = off < j->size;

		if (more) {
			c[cur].off = off;
			c[cur].len = j->size - off < CHUNK_SIZE ? (size_t)(j->size - off) : CHUNK_SIZE;
			if (check_cancel(r, j, off) < 0 ||
			    read_chunk(r, j, c[cur].buf, off, c[cur].len, &c[cur].mask) < 0)
				goto out;
		}
		if (busy) {
			busy = false;
			if (chunk_digests_wait(r) < 0)
				goto out;
		}
		if (more)
			busy = chunk_digests_start(r, c[cur].buf, c[cur].len, c[cur].mask, c[cur].dg);
		/* a signal while the helper hashed is seen here, before any write */
		if (prev >= 0 && (check_cancel(r, j, c[prev].off) < 0 || fn(r, j, ctx, &c[prev]) < 0))
			goto out;
		if (!more)
			break;
		prev = cur;
		cur ^= 1;
	}
	rc = 0;
out:
	if (busy && chunk_digests_wait(r) < 0 && rc == 0)
		rc = -1;
	return rc;
}

static int map_add(struct run *r, struct drive_job *j, struct map_out *mo,
		   const uint8_t d[DIGEST_LEN])
{
	int rc = digest_writer_add(mo->wr, d);

	if (rc < 0)
		return vb_error_from_bitmap(r->err, rc, mo->io.err, "%s/%s",
					    vb_state_path(r->b->o.state), j->map_file);
	return 0;
}

/* A full backup reads the old map only to record what changed: a damaged
 * one makes every cluster count as changed (a note), never a failure. */
static int old_map_lost(struct run *r, struct drive_job *j, const struct map_in *mi)
{
	if (r->b->mode != VB_MODE_FULL || !mi->bad)
		return -1;
	vb_warn(&r->b->warn, VB_WARN_FULL, j->name, "%s; every cluster counts as changed",
		r->err->msg);
	vb_error_clear(r->err);
	bitmap_set_all(j->dirty);
	j->old_map = false;
	return 0;
}

/* Records cluster i's digest d in the new map; compares with the old. */
static int hash_step(struct run *r, struct drive_job *j, struct map_out *mo, struct map_in *mi,
		     uint64_t i, const uint8_t d[DIGEST_LEN])
{
	uint8_t old[DIGEST_LEN];

	if (map_add(r, j, mo, d) < 0)
		return -1;
	if (!mi)
		return 0;
	if (map_in_get(r, mi, i, old) < 0)
		return old_map_lost(r, j, mi);
	if (memcmp(d, old, DIGEST_LEN) != 0)
		bitmap_set_range(j->dirty, i, 1);
	return 0;
}

struct scan_ctx {
	struct map_out *mo;
	struct map_in *mi;      /* the old map, or NULL */
};

static int scan_chunk(struct run *r, struct drive_job *j, void *ctx, const struct chunk *c)
{
	struct scan_ctx *sc = ctx;

	for (size_t k = 0; k * VMA_CLUSTER_SIZE < c->len; k++)
		if (hash_step(r, j, sc->mo, sc->mi, c->off / VMA_CLUSTER_SIZE + k, c->dg[k]) < 0)
			return -1;
	report(r, j, "scan", c->off + c->len, c->len);
	return 0;
}

int job_scan(struct run *r, struct drive_job *j)
{
	struct map_out mo = { .io.fd = -1 };
	struct map_in mi = { .io.fd = -1 };
	struct scan_ctx sc = { .mo = &mo, .mi = j->old_map ? &mi : NULL };
	int rc = -1;

	j->dirty = bitmap_new(j->nclusters);
	if (!j->dirty)
		return vb_error_set(r->err, VB_E_FAIL, ENOMEM, "out of memory");
	if (map_out_open(r, j, &mo) < 0)
		goto out;
	if (j->old_map && old_map_open(r, j, &mi) < 0)
		goto out;
	if (!j->old_map)
		bitmap_set_all(j->dirty);
	if (r->buf2 && each_chunk_hashed(r, j, scan_chunk, &sc) < 0)
		goto out;
	for (uint64_t off = 0; !r->buf2 && off < j->size; off += CHUNK_SIZE) {
		struct chunk c = { .off = off, .buf = r->buf, .dg = r->digests };

		c.len = j->size - off < CHUNK_SIZE ? (size_t)(j->size - off) : CHUNK_SIZE;
		if (check_cancel(r, j, off) < 0 || read_chunk(r, j, r->buf, off, c.len, &c.mask) < 0 ||
		    chunk_digests(r, r->buf, c.len, c.mask, r->digests) < 0 ||
		    check_cancel(r, j, off) < 0 || scan_chunk(r, j, &sc, &c) < 0)
			goto out;
	}
	if (map_out_finish(r, j, &mo) < 0 || (j->old_map && map_in_finish(r, &mi, j->nclusters) < 0))
		goto out;
	rc = 0;
out:
	j->map_damaged = rc < 0 && mi.bad; /* scan_all may fall back to a full backup */
	map_out_close(&mo);
	map_in_close(&mi);
	return rc;
}

/* What the copy pass does besides copying, by kind of backup. */
struct copy_ctx {
	struct map_out mo;      /* full with a state, or patching: the new map */
	struct map_in mi;       /* full with a state: the old map, when usable */
	struct map_in check;    /* incremental: the map of the scan */
	bool hashing, checking;
	/* The source's bitmap replaced the scan: the new map is the old one
	 * with the digests of the copied clusters replaced, streamed, so it
	 * stays exact without reading the rest of the drive. */
	bool patching;
	uint64_t next;          /* patching: the next cluster the new map needs */
};

/* Patching: the old map's digests of clusters [x->next, i) go to the new. */
static int patch_upto(struct run *r, struct drive_job *j, struct copy_ctx *x, uint64_t i)
{
	uint8_t d[DIGEST_LEN];

	for (; x->next < i; x->next++)
		if (map_in_get(r, &x->mi, x->next, d) < 0 || map_add(r, j, &x->mo, d) < 0)
			return -1;
	return 0;
}

/* d: the cluster's digest, when x hashes (else NULL). */
static int copy_cluster(struct run *r, struct drive_job *j, struct copy_ctx *x, uint64_t i,
			const uint8_t *data, size_t len, bool has_data, const uint8_t *d)
{
	if (x->hashing && hash_step(r, j, &x->mo, j->old_map ? &x->mi : NULL, i, d) < 0)
		return -1;
	if (x->patching) {
		uint8_t old[DIGEST_LEN];

		if (patch_upto(r, j, x, i) < 0 || map_in_get(r, &x->mi, i, old) < 0 ||
		    map_add(r, j, &x->mo, d) < 0)
			return -1;
		x->next = i + 1;
	}
	if (x->checking) {
		uint8_t want[DIGEST_LEN];

		if (map_in_get(r, &x->check, i, want) < 0)
			return -1;
		if (memcmp(d, want, DIGEST_LEN) != 0)
			return vb_error_set(r->err, VB_E_FAIL, 0,
					    "drive %s changed during the backup (cluster at offset "
					    "%llu); back up a stopped VM or a snapshot", j->name,
					    (unsigned long long)i * VMA_CLUSTER_SIZE);
	}
	if (j->ad && d)
		vb_adigests_add(j->ad, i, d);
	if (vma_writer_add_cluster_digest(r->vw, j->dev_id, (uint32_t)i, has_data ? data : NULL,
					  len, d) < 0)
		return vb_error_vma(r->err, r->vw);
	r->res->clusters++;
	return 0;
}

/* Copies clusters [first, first+count) (count <= CHUNK_CLUSTERS), or with
 * idx the count clusters it lists (ascending, apart: a gathered read). */
static int copy_range(struct run *r, struct drive_job *j, struct copy_ctx *x, uint64_t first,
		      uint64_t count, const uint64_t *idx)
{
	uint64_t off = first * VMA_CLUSTER_SIZE, end = (first + count) * VMA_CLUSTER_SIZE;
	bool hash = x->hashing || x->patching || x->checking;
	size_t len;
	uint64_t mask;
	int rc;

	if (idx) {
		off = idx[0] * VMA_CLUSTER_SIZE;
		end = (idx[count - 1] + 1) * VMA_CLUSTER_SIZE;
	}
	if (end > j->size)
		end = j->size;
	len = (size_t)(end - off);
	if (check_cancel(r, j, off) < 0)
		return -1;
	rc = idx ? gather_read(r, j, idx, (size_t)count, &len, &mask)
		 : read_chunk(r, j, r->buf, off, len, &mask);
	/* a signal while the helper hashed is seen here, before any write */
	if (rc < 0 || (hash && (chunk_digests(r, r->buf, len, mask, r->digests) < 0 ||
				check_cancel(r, j, off) < 0)))
		return -1;
	for (size_t c = 0; c * VMA_CLUSTER_SIZE < len; c++) {
		size_t coff = c * VMA_CLUSTER_SIZE;
		size_t clen = len - coff < VMA_CLUSTER_SIZE ? len - coff : VMA_CLUSTER_SIZE;

		if (copy_cluster(r, j, x, idx ? idx[c] : first + c, r->buf + coff, clen,
				 (mask >> c) & 1, hash ? r->digests[c] : NULL) < 0)
			return -1;
	}
	report(r, j, "copy", end, len);
	return 0;
}

/* A chunk a full backup read and hashed (each_chunk_hashed), or read
 * ahead unhashed (dg NULL: copy_read_ahead), copied. */
static int copy_chunk(struct run *r, struct drive_job *j, void *ctx, const struct chunk *c)
{
	for (size_t k = 0; k * VMA_CLUSTER_SIZE < c->len; k++) {
		size_t coff = k * VMA_CLUSTER_SIZE;
		size_t clen = c->len - coff < VMA_CLUSTER_SIZE ? c->len - coff : VMA_CLUSTER_SIZE;

		if (copy_cluster(r, j, ctx, c->off / VMA_CLUSTER_SIZE + k, c->buf + coff, clen,
				 (c->mask >> k) & 1, c->dg ? c->dg[k] : NULL) < 0)
			return -1;
	}
	report(r, j, "copy", c->off + c->len, c->len);
	return 0;
}

/* One chunk read by a helper thread (read_ahead) while the caller writes
 * the one before. */
struct ahead {
	struct run *r;
	struct drive_job *j;
	struct chunk c;
	uint64_t bytes;
	int rc;
	struct vb_error err;    /* the helper's own: r->err is the writer's */
	pthread_t thread;
	bool started;
};

static void *ahead_main(void *opaque)
{
	struct ahead *a = opaque;

	a->rc = read_chunk_to(a->r, a->j, a->c.buf, a->c.off, a->c.len, &a->c.mask, &a->err,
			      &a->bytes);
	return NULL;
}

/* Whether [off, off+len) is one hole of the source (asked while no helper
 * runs: the source has one user at a time). An error here says no: the
 * read meets it again and reports it. */
static bool all_hole(struct drive_job *j, uint64_t off, size_t len)
{
	struct vb_error e = { 0 };
	uint64_t elen;
	bool data;

	if (vb_source_extent(j->src, off, len, &elen, &data, &e) < 0)
		return false;
	return !data && elen >= len;
}

/* Starts reading [off, off+len) into buf; without a thread, reads it now.
 * A chunk that is all hole costs no read, only the extent query: it is
 * done here, not on a thread of its own (a thread per chunk of a 1 TiB
 * sparse drive made its backup 13 times slower). */
static void ahead_start(struct ahead *a, uint8_t *buf, uint64_t off, size_t len)
{
	a->c = (struct chunk){ .off = off, .len = len, .buf = buf };
	a->err = (struct vb_error){ 0 };
	a->started = false;
	if (all_hole(a->j, off, len)) {
		ahead_main(a);
		return;
	}
	a->started = vb_thread_start(&a->thread, ahead_main, a) == 0; /* signals stay the writer's */
	if (!a->started)
		ahead_main(a);
}

static int ahead_wait(struct ahead *a)
{
	if (a->started)
		pthread_join(a->thread, NULL);
	a->started = false;
	a->r->res->bytes_read += a->bytes;
	if (a->rc < 0)
		return vb_error_set(a->r->err, a->err.cls, a->err.sys_errno, "%s", a->err.msg);
	return 0;
}

/* A plain full backup, every chunk in order: the next one is read on a
 * helper thread while this one hands the one before to the writer, so the
 * source (qemu-nbd's copying, a file's page cache) and the archive's
 * writing and hashing overlap on two CPUs instead of taking turns. The
 * source is only ever used by one thread at a time. */
static int copy_read_ahead(struct run *r, struct drive_job *j, struct copy_ctx *x)
{
	struct ahead a = { .r = r, .j = j };
	uint8_t *bufs[2] = { r->buf, r->buf2 };
	int cur = 0, rc = 0;

	ahead_start(&a, bufs[cur], 0, j->size < CHUNK_SIZE ? (size_t)j->size : CHUNK_SIZE);
	for (;;) {
		struct chunk c;

		if (ahead_wait(&a) < 0)
			return -1;
		c = a.c;
		if (c.off + c.len < j->size) {
			uint64_t off = c.off + c.len;

			ahead_start(&a, bufs[cur ^ 1], off, j->size - off < CHUNK_SIZE ?
				    (size_t)(j->size - off) : CHUNK_SIZE);
		}
		rc = check_cancel(r, j, c.off) < 0 || copy_chunk(r, j, x, &c) < 0 ? -1 : 0;
		if (rc < 0 || c.off + c.len >= j->size)
			break;
		cur ^= 1;
	}
	if (a.started)
		(void)ahead_wait(&a); /* the first error (the writer's) wins */
	return rc;
}

/* Runs of the plan shorter than this are gathered with others. */
#define GATHER_RUN 8

static int copy_all(struct run *r, struct drive_job *j, struct copy_ctx *x)
{
	uint64_t pend[CHUNK_CLUSTERS];
	size_t np = 0;

	if (!j->plan && x->hashing && r->buf2)
		return each_chunk_hashed(r, j, copy_chunk, x);
	if (!j->plan && !x->hashing && !x->patching && !x->checking && r->buf2)
		return copy_read_ahead(r, j, x);
	if (!j->plan) {
		for (uint64_t c = 0; c < j->nclusters; c += CHUNK_CLUSTERS) {
			uint64_t n = j->nclusters - c < CHUNK_CLUSTERS ? j->nclusters - c : CHUNK_CLUSTERS;

			if (copy_range(r, j, x, c, n, NULL) < 0)
				return -1;
		}
		return 0;
	}
	for (uint64_t from = 0, start, len; bitmap_next_run(j->plan, from, &start, &len);
	     from = start + len) {
		if (len < GATHER_RUN) {
			for (uint64_t c = start; c < start + len; c++) {
				pend[np++] = c;
				if (np == CHUNK_CLUSTERS) {
					if (copy_range(r, j, x, 0, np, pend) < 0)
						return -1;
					np = 0;
				}
			}
			continue;
		}
		/* in cluster order: what was gathered before this run first */
		if (np && copy_range(r, j, x, 0, np, pend) < 0)
			return -1;
		np = 0;
		for (uint64_t c = start; c < start + len; c += CHUNK_CLUSTERS) {
			uint64_t n = start + len - c < CHUNK_CLUSTERS ? start + len - c : CHUNK_CLUSTERS;

			if (copy_range(r, j, x, c, n, NULL) < 0)
				return -1;
		}
	}
	return np ? copy_range(r, j, x, 0, np, pend) : 0;
}

int job_copy(struct run *r, struct drive_job *j)
{
	struct copy_ctx x = { .mo.io.fd = -1, .mi.io.fd = -1, .check.io.fd = -1 };
	int rc = -1;

	x.hashing = r->b->o.state && r->b->mode == VB_MODE_FULL;
	x.patching = r->b->o.state && r->b->mode != VB_MODE_FULL && j->from_bitmap;
	x.checking = r->b->o.state && r->b->mode != VB_MODE_FULL && !j->from_bitmap;
	if (x.patching && (map_out_open(r, j, &x.mo) < 0 ||
			   old_map_open(r, j, &x.mi) < 0))
		goto out;
	if (x.hashing) {
		j->dirty = bitmap_new(j->nclusters);
		if (!j->dirty) {
			vb_error_set(r->err, VB_E_FAIL, ENOMEM, "out of memory");
			goto out;
		}
		if (!j->old_map)
			bitmap_set_all(j->dirty);
		if (map_out_open(r, j, &x.mo) < 0 ||
		    (j->old_map && old_map_open(r, j, &x.mi) < 0 && old_map_lost(r, j, &x.mi) < 0))
			goto out;
	}
	if (x.checking && map_in_open(r, &x.check, j->map_file, j->size) < 0)
		goto out;
	/* Best effort: without it, the commit makes it from the digest map. */
	if (x.hashing || x.patching || x.checking)
		j->ad = vb_adigests_begin(r->b->o.state, j->size, &(struct vb_error){ 0 });
	if (copy_all(r, j, &x) < 0)
		goto out;
	if (x.hashing && (map_out_finish(r, j, &x.mo) < 0 ||
			  (j->old_map && map_in_finish(r, &x.mi, j->nclusters) < 0 &&
			   old_map_lost(r, j, &x.mi) < 0)))
		goto out;
	if (x.checking && map_in_finish(r, &x.check, j->nclusters) < 0)
		goto out;
	if (x.patching && (patch_upto(r, j, &x, j->nclusters) < 0 ||
			   map_out_finish(r, j, &x.mo) < 0 ||
			   map_in_finish(r, &x.mi, j->nclusters) < 0))
		goto out;
	if (j->ad && vb_adigests_end(j->ad, &j->ad_file, &(struct vb_error){ 0 }) < 0)
		j->ad_file = NULL;
	j->ad = NULL;
	rc = 0;
out:
	vb_adigests_abort(j->ad);
	j->ad = NULL;
	map_out_close(&x.mo);
	map_in_close(&x.mi);
	map_in_close(&x.check);
	return rc;
}
