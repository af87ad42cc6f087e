/* job.c: one drive's job: reading it in large chunks (holes skipped,
 * rate-limited), hashing clusters into digest maps, and copying the planned
 * clusters into the archive. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/backup/backup_int.h"

struct fdio {
	int fd;
	int err;        /* errno of a failed write: the map writer keeps only "I/O error" */
};

static int fd_write_cb(void *opaque, const void *buf, size_t len)
{
	struct fdio *io = opaque;
	int rc = vb_write_whole(io->fd, buf, len);

	if (rc < 0)
		io->err = -rc;
	return rc;
}

/* A digest map being read in cluster order. */
struct map_in {
	struct fdio io;
	struct digest_reader *rd;
	uint64_t next;          /* index of the digest rd returns next */
	const char *root;       /* hex root it must have (the old map), or NULL */
	bool bad;               /* its content is damaged */
};

static int map_in_open(struct run *r, struct map_in *m, const char *file, uint64_t size)
{
	uint64_t msize, nclusters;
	int rc;

	m->io.fd = vb_state_open_file(r->b->o.state, file, r->err);
	m->bad = m->io.fd < 0;
	if (m->io.fd < 0)
		return -1;
	m->rd = digest_reader_new(vb_fd_read_cb, &m->io.fd);
	if (!m->rd)
		return vb_error_set(r->err, VB_E_FAIL, ENOMEM, "out of memory");
	rc = digest_reader_start(m->rd, &msize, &nclusters);
	m->bad = rc < 0 || msize != size;
	if (m->bad)
		return vb_error_set(r->err, VB_E_INVALID, 0, "%s/%s: %s",
				    vb_state_path(r->b->o.state), file,
				    rc < 0 ? bitmap_strerror(rc) : "size differs from the drive's");
	m->next = 0;
	return 0;
}

/* The digest of cluster i (reading past the ones before it). */
static int map_in_get(struct run *r, struct map_in *m, uint64_t i, uint8_t d[DIGEST_LEN])
{
	int rc = 0;

	while (m->next <= i) {
		rc = digest_reader_next(m->rd, d);
		if (rc != 1) {
			m->bad = true;
			return vb_error_set(r->err, VB_E_INVALID, 0, "%s: a digest map of the state "
					    "is damaged: %s", vb_state_path(r->b->o.state),
					    rc < 0 ? bitmap_strerror(rc) : "too short");
		}
		m->next++;
	}
	return 0;
}

/* The map's end: its trailer is checked only once every digest was read,
 * and the old map's root against the one its checkpoint recorded (the one
 * read of that map checks it whole: job_check_map only opened it). */
static int map_in_finish(struct run *r, struct map_in *m, uint64_t nclusters)
{
	uint8_t d[DIGEST_LEN], root[DIGEST_LEN];
	char hex[2 * DIGEST_LEN + 1];
	int rc;

	if (nclusters && map_in_get(r, m, nclusters - 1, d) < 0)
		return -1;
	rc = digest_reader_next(m->rd, d);
	m->bad = rc != 0;
	if (rc != 0)
		return vb_error_set(r->err, VB_E_INVALID, 0, "%s: a digest map of the state is "
				    "damaged: %s", vb_state_path(r->b->o.state),
				    rc < 0 ? bitmap_strerror(rc) : "too long");
	if (!m->root)
		return 0;
	digest_reader_root(m->rd, root);
	vb_hex(root, DIGEST_LEN, hex);
	m->bad = strcmp(hex, m->root) != 0;
	if (m->bad)
		return vb_error_set(r->err, VB_E_INVALID, 0, "%s: a digest map of the state is "
				    "damaged: it does not match its recorded root hash",
				    vb_state_path(r->b->o.state));
	return 0;
}

/* The latest checkpoint's map of j, whose root is checked at its end. */
static int old_map_open(struct run *r, struct drive_job *j, struct map_in *m)
{
	m->root = j->latest->digest_root;
	return map_in_open(r, m, j->latest->digests, j->size);
}

static void map_in_close(struct map_in *m)
{
	digest_reader_free(m->rd);
	if (m->io.fd >= 0)
		close(m->io.fd);
	m->rd = NULL;
	m->io.fd = -1;
}

/* The new digest map of a drive, written as the drive is read. */
struct map_out {
	struct fdio io;
	struct digest_writer *wr;
};

static int map_out_open(struct run *r, struct drive_job *j, struct map_out *m)
{
	m->io.fd = vb_state_create_file(r->b->o.state, "digests", &j->map_file, r->err);
	if (m->io.fd < 0)
		return -1;
	m->wr = digest_writer_new(j->size, fd_write_cb, &m->io);
	if (!m->wr)
		return vb_error_set(r->err, VB_E_FAIL, ENOMEM, "out of memory");
	return 0;
}

static int map_out_finish(struct run *r, struct drive_job *j, struct map_out *m)
{
	int rc = digest_writer_finish(m->wr, j->root);

	if (rc < 0)
		return vb_error_set(r->err, VB_E_FAIL, m->io.err, "%s/%s: %s",
				    vb_state_path(r->b->o.state), j->map_file,
				    m->io.err ? strerror(m->io.err) : bitmap_strerror(rc));
	if (fsync(m->io.fd) < 0)
		return vb_error_set(r->err, VB_E_FAIL, errno, "%s/%s: %s",
				    vb_state_path(r->b->o.state), j->map_file, strerror(errno));
	return 0;
}

static void map_out_close(struct map_out *m)
{
	digest_writer_free(m->wr);
	if (m->io.fd >= 0)
		close(m->io.fd);
	m->wr = NULL;
	m->io.fd = -1;
}

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

/* Fills r->buf with [off, off+len) of the drive: data extents are read,
 * holes are zero where a cluster holds data, or where a cluster is cut by
 * the drive's end. Bit i of *data_mask: cluster i of the chunk has data. */
static int read_chunk(struct run *r, struct drive_job *j, uint64_t off, size_t len,
		      uint64_t *data_mask)
{
	uint64_t pos = off, end = off + len;

	*data_mask = 0;
	while (pos < end) {
		uint64_t elen;
		bool data;

		if (vb_source_extent(j->src, pos, end - pos, &elen, &data, r->err) < 0)
			return -1;
		if (data) {
			uint64_t first = (pos - off) / VMA_CLUSTER_SIZE;
			uint64_t last = (pos + elen - 1 - off) / VMA_CLUSTER_SIZE;

			if (vb_ratelimit_take(r->rl, elen, r->b->o.cancel) < 0)
				return vb_error_set(r->err, VB_E_CANCELED, EINTR,
						    "drive %s: interrupted", j->name);
			if (vb_source_pread(j->src, r->buf + (pos - off), elen, pos, r->err) < 0)
				return -1;
			for (uint64_t c = first; c <= last; c++)
				*data_mask |= UINT64_C(1) << c;
			r->res->bytes_read += elen;
			vb_crash_point("mid-read");
		} else {
			zero_hole(r->buf, pos - off, elen);
		}
		pos += elen;
	}
	return 0;
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

static int map_add(struct run *r, struct drive_job *j, struct map_out *mo,
		   const uint8_t d[DIGEST_LEN])
{
	int rc = digest_writer_add(mo->wr, d);

	if (rc < 0)
		return vb_error_set(r->err, VB_E_FAIL, mo->io.err ? mo->io.err : EIO,
				    "%s/%s: %s", vb_state_path(r->b->o.state), j->map_file,
				    mo->io.err ? strerror(mo->io.err) : bitmap_strerror(rc));
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

int job_scan(struct run *r, struct drive_job *j)
{
	struct map_out mo = { .io.fd = -1 };
	struct map_in mi = { .io.fd = -1 };
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
	for (uint64_t off = 0; off < j->size; off += CHUNK_SIZE) {
		size_t len = j->size - off < CHUNK_SIZE ? (size_t)(j->size - off) : CHUNK_SIZE;
		uint64_t mask;

		if (check_cancel(r, j, off) < 0 || read_chunk(r, j, off, len, &mask) < 0 ||
		    chunk_digests(r, r->buf, len, mask, r->digests) < 0 ||
		    check_cancel(r, j, off) < 0)
			goto out;
		for (size_t c = 0; c * VMA_CLUSTER_SIZE < len; c++)
			if (hash_step(r, j, &mo, j->old_map ? &mi : NULL,
				      off / VMA_CLUSTER_SIZE + c, r->digests[c]) < 0)
				goto out;
		report(r, j, "scan", off + len, len);
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
		 : read_chunk(r, j, off, len, &mask);
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

/* Runs of the plan shorter than this are gathered with others. */
#define GATHER_RUN 8

static int copy_all(struct run *r, struct drive_job *j, struct copy_ctx *x)
{
	uint64_t pend[CHUNK_CLUSTERS];
	size_t np = 0;

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
	rc = 0;
out:
	map_out_close(&x.mo);
	map_in_close(&x.mi);
	map_in_close(&x.check);
	return rc;
}

int job_check_map(struct vb_state *s, const struct vb_ckpt_drive *d, uint64_t size,
		  bool whole, struct vb_error *err)
{
	struct fdio io = { .fd = -1 };
	struct digest_reader *rd = NULL;
	uint8_t dg[DIGEST_LEN], root[DIGEST_LEN];
	char roothex[2 * DIGEST_LEN + 1];
	uint64_t msize, n;
	int rc = -1, r;

	if (!d->digests)
		return vb_error_set(err, VB_E_INVALID, 0, "%s: drive %s has no digest map",
				    vb_state_path(s), d->name);
	io.fd = vb_state_open_file(s, d->digests, err);
	if (io.fd < 0)
		return -1;
	rd = digest_reader_new(vb_fd_read_cb, &io.fd);
	if (!rd) {
		vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
		goto out;
	}
	r = digest_reader_start(rd, &msize, &n);
	if (r == 0 && whole)
		while ((r = digest_reader_next(rd, dg)) == 1)
			;
	if (r < 0 || msize != size) {
		vb_error_set(err, VB_E_INVALID, 0, "%s/%s: the digest map of drive %s is damaged"
			     " (%s)", vb_state_path(s), d->digests, d->name,
			     r < 0 ? bitmap_strerror(r) : "wrong size");
		goto out;
	}
	if (whole) {
		digest_reader_root(rd, root);
		vb_hex(root, DIGEST_LEN, roothex);
	}
	if (!d->digest_root || (whole && strcmp(roothex, d->digest_root) != 0)) {
		vb_error_set(err, VB_E_INVALID, 0, "%s/%s: the digest map of drive %s does not "
			     "match its recorded root hash", vb_state_path(s), d->digests, d->name);
		goto out;
	}
	rc = 0;
out:
	digest_reader_free(rd);
	close(io.fd);
	return rc;
}
