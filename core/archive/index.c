/* index.c: random access to a chain's newest point: one pass over each
 * archive's extent headers (seeking over the data) maps every cluster of
 * every drive to the newest archive holding it and the file offset of its
 * stored blocks; reads then fetch only the blocks a request needs. Only
 * clusters holding data take memory: 16 bytes each. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/byteorder.h"
#include "core/archive/archive_int.h"

struct ent {
	uint64_t off;        /* decompressed stream offset of the first stored block */
	uint32_t cluster;
	uint16_t mask;       /* 0 while building: the newest archive says zero */
	uint16_t arch;
};

struct idrive {
	struct ent *e;
	size_t n, cap;
};

struct vb_index {
	struct vb_chain *chain;
	struct vb_rafile **files;
	size_t nfiles;
	const struct vb_meta *meta;
	struct idrive *d;            /* one per meta drive */
	int by_dev[256];   /* dev_id -> drive index + 1 */
};

/* The sequential cursor the VMA reader pulls the headers through. */
struct cursor {
	struct vb_rafile *f;
	uint64_t pos;
	struct vb_error *err;
};

static ssize_t cursor_read(void *opaque, void *buf, size_t len)
{
	struct cursor *c = opaque;
	ssize_t n = vb_rafile_pread(c->f, buf, len, c->pos, c->err);

	if (n < 0)
		return -EIO;
	c->pos += (uint64_t)n;
	return n;
}

static int cursor_skip(void *opaque, uint64_t len)
{
	struct cursor *c = opaque;

	if (len > vb_rafile_size(c->f) - c->pos)
		return -ENODATA;
	c->pos += len;
	return 0;
}

static int push(struct idrive *d, const struct ent *e)
{
	if (d->n == d->cap) {
		size_t cap = d->cap ? 2 * d->cap : 1024;
		struct ent *p = realloc(d->e, cap * sizeof(*p));

		if (!p)
			return -1;
		d->e = p;
		d->cap = cap;
	}
	d->e[d->n++] = *e;
	return 0;
}

/* Cluster ascending, the newest archive first. */
static int ent_cmp(const void *a, const void *b)
{
	const struct ent *x = a, *y = b;

	if (x->cluster != y->cluster)
		return x->cluster < y->cluster ? -1 : 1;
	return x->arch > y->arch ? -1 : x->arch < y->arch;
}

/* Keeps the newest entry of each cluster (the first after sorting), and
 * drops it when it is zero: what older archives held there is gone. */
static void settle(struct idrive *d)
{
	size_t w = 0;

	qsort(d->e, d->n, sizeof(*d->e), ent_cmp);
	for (size_t i = 0; i < d->n; i++) {
		if (i > 0 && d->e[i].cluster == d->e[i - 1].cluster)
			continue;
		if (d->e[i].mask)
			d->e[w++] = d->e[i];
	}
	d->n = w;
}

/* Indexes archive i of the chain. */
static int index_one(struct vb_index *x, size_t i, struct vb_error *err)
{
	struct vb_archive *a = vb_chain_archive(x->chain, i);
	const struct vb_meta *m = vb_archive_meta(a);
	const char *path = vb_archive_path(a);
	struct cursor cur = { .err = err };
	struct vma_reader *r = NULL;
	struct vma_extent *ext = malloc(sizeof(*ext));
	uint8_t uuid[VMA_UUID_LEN];
	char us[37];
	int rc = -1, n;

	if (!ext)
		return vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
	cur.f = x->files[i] = vb_rafile_open(path, err);
	if (!cur.f)
		goto out;
	r = vma_reader_new(cursor_read, &cur);
	if (!r) {
		vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
		goto out;
	}
	if (vma_reader_read_header(r) < 0) {
		vb_error_vma_reader(err, r, path);
		goto out;
	}
	vma_reader_uuid(r, uuid);
	vb_uuid_format(uuid, us);
	if (strcmp(us, m->uuid) != 0) {
		vb_error_set(err, VB_E_INVALID, 0, "%s changed while it was opened", path);
		goto out;
	}
	while ((n = vma_reader_next_extent(r, cursor_skip, ext)) == 1) {
		for (unsigned s = 0; s < ext->nslots; s++) {
			const struct vma_extent_slot *sl = &ext->slot[s];
			int d = x->by_dev[sl->dev_id];
			struct ent e = { sl->data_offset, sl->cluster_num, sl->mask, (uint16_t)i };

			/* the full's empty clusters are holes: nothing older to hide */
			if (!d || (i == 0 && !sl->mask))
				continue;
			if (push(&x->d[d - 1], &e) < 0) {
				vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
				goto out;
			}
		}
	}
	if (n < 0) {
		vb_error_vma_reader(err, r, path);
		goto out;
	}
	for (size_t k = 0; k < m->ndrives; k++) {
		const struct vb_meta_drive *md = &m->drives[k];
		uint64_t seen = vma_reader_clusters_seen(r, md->dev_id);

		if (i == 0 && strcmp(md->name, "vmstate") != 0) {
			if (vma_reader_check_complete(r, md->dev_id) < 0) {
				vb_error_vma_reader(err, r, path);
				goto out;
			}
		} else if (md->clusters != UINT64_MAX && seen != md->clusters) {
			vb_error_set(err, VB_E_INVALID, 0, "%s: drive %s holds %llu clusters, "
				     "vmaback.json says %llu", path, md->name,
				     (unsigned long long)seen, (unsigned long long)md->clusters);
			goto out;
		}
	}
	rc = 0;
out:
	vma_reader_free(r);
	free(ext);
	return rc;
}

/* The chain opened and checked, its drives' lists empty. */
static struct vb_index *index_new(const char *const *paths, size_t n, struct vb_error *err)
{
	struct vb_index *x = calloc(1, sizeof(*x));

	if (!x) {
		vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
		return NULL;
	}
	x->chain = vb_chain_open(paths, n, err);
	if (!x->chain)
		goto fail;
	x->meta = vb_chain_meta(x->chain);
	x->nfiles = vb_chain_length(x->chain);
	x->files = calloc(x->nfiles, sizeof(*x->files));
	x->d = calloc(x->meta->ndrives ? x->meta->ndrives : 1, sizeof(*x->d));
	if (!x->files || !x->d) {
		vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
		goto fail;
	}
	for (size_t k = 0; k < x->meta->ndrives; k++)
		x->by_dev[x->meta->drives[k].dev_id & 0xff] = (int)k + 1;
	return x;
fail:
	vb_index_free(x);
	return NULL;
}

struct vb_index *vb_index_open(const char *const *paths, size_t n, struct vb_error *err)
{
	struct vb_index *x = index_new(paths, n, err);

	for (size_t i = 0; x && i < x->nfiles; i++)
		if (index_one(x, i, err) < 0) {
			vb_index_free(x);
			return NULL;
		}
	for (size_t k = 0; x && k < x->meta->ndrives; k++)
		settle(&x->d[k]);
	return x;
}

/* ------------------------------------------------------------ index file
 * What vb_index_save writes, little-endian: IDX_MAGIC, the counts of
 * archives and drives (u32 each), each archive's uuid (36 characters), each
 * drive's entry count (u64), then the entries, drive by drive (offset u64,
 * cluster u32, mask u16, archive u16). */
#define IDX_MAGIC "VBINDEX1"
#define IDX_ENT 16u

static int idx_write(int fd, const void *buf, size_t len, struct vb_error *err)
{
	int rc = vb_write_all(fd, buf, len);

	return rc < 0 ? vb_error_set(err, VB_E_FAIL, -rc, "index file: %s", strerror(-rc)) : 0;
}

int vb_index_save(const struct vb_index *x, int fd, struct vb_error *err)
{
	uint8_t head[16], buf[64 * IDX_ENT];

	memcpy(head, IDX_MAGIC, 8);
	put_le32(head + 8, (uint32_t)x->nfiles);
	put_le32(head + 12, (uint32_t)x->meta->ndrives);
	if (idx_write(fd, head, sizeof(head), err) < 0)
		return -1;
	for (size_t i = 0; i < x->nfiles; i++)
		if (idx_write(fd, vb_archive_meta(vb_chain_archive(x->chain, i))->uuid, 36, err) < 0)
			return -1;
	for (size_t k = 0; k < x->meta->ndrives; k++) {
		put_le64(buf, x->d[k].n);
		if (idx_write(fd, buf, 8, err) < 0)
			return -1;
	}
	for (size_t k = 0; k < x->meta->ndrives; k++) {
		for (size_t i = 0; i < x->d[k].n; i += 64) {
			size_t m = x->d[k].n - i < 64 ? x->d[k].n - i : 64;

			for (size_t j = 0; j < m; j++) {
				const struct ent *e = &x->d[k].e[i + j];
				uint8_t *p = buf + j * IDX_ENT;

				put_le64(p, e->off);
				put_le32(p + 8, e->cluster);
				put_le16(p + 12, e->mask);
				put_le16(p + 14, e->arch);
			}
			if (idx_write(fd, buf, m * IDX_ENT, err) < 0)
				return -1;
		}
	}
	return 0;
}

static int idx_read(int fd, void *buf, size_t len, struct vb_error *err)
{
	ssize_t n = vb_io_read_full(fd, buf, len);

	if (n < 0)
		return vb_error_set(err, VB_E_FAIL, errno, "index file: %s", strerror(errno));
	return (size_t)n == len ? 0 : vb_error_set(err, VB_E_INVALID, 0, "index file: truncated");
}

/* Entry e of drive k is one an index of x could hold. */
static bool idx_ent_ok(const struct vb_index *x, size_t k, const struct ent *e,
		       const struct ent *prev)
{
	uint64_t blocks = (uint64_t)__builtin_popcount(e->mask) * VMA_BLOCK_SIZE;

	return e->mask && e->arch < x->nfiles &&
	       e->cluster < vma_clusters_of(x->meta->drives[k].size) &&
	       (!prev || e->cluster > prev->cluster) &&
	       e->off <= vb_rafile_size(x->files[e->arch]) &&
	       blocks <= vb_rafile_size(x->files[e->arch]) - e->off;
}

static int idx_load_entries(struct vb_index *x, int fd, struct vb_error *err)
{
	uint8_t buf[IDX_ENT];

	for (size_t k = 0; k < x->meta->ndrives; k++) {
		if (idx_read(fd, buf, 8, err) < 0)
			return -1;
		x->d[k].n = get_le64(buf);
		if (x->d[k].n > vma_clusters_of(x->meta->drives[k].size))
			return vb_error_set(err, VB_E_INVALID, 0, "index file: drive %s: %llu "
					    "clusters, more than it has", x->meta->drives[k].name,
					    (unsigned long long)x->d[k].n);
	}
	for (size_t k = 0; k < x->meta->ndrives; k++) {
		struct idrive *d = &x->d[k];

		d->cap = d->n;
		d->e = malloc((d->n ? d->n : 1) * sizeof(*d->e));
		if (!d->e)
			return vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
		for (size_t i = 0; i < d->n; i++) {
			if (idx_read(fd, buf, IDX_ENT, err) < 0)
				return -1;
			d->e[i] = (struct ent){ get_le64(buf), get_le32(buf + 8), get_le16(buf + 12),
						get_le16(buf + 14) };
			if (!idx_ent_ok(x, k, &d->e[i], i ? &d->e[i - 1] : NULL))
				return vb_error_set(err, VB_E_INVALID, 0, "index file: drive %s: "
						    "entry %zu is not one of its archives'",
						    x->meta->drives[k].name, i);
		}
	}
	if (vb_io_read_full(fd, buf, 1) != 0)
		return vb_error_set(err, VB_E_INVALID, 0, "index file: longer than its entries");
	return 0;
}

struct vb_index *vb_index_load(const char *const *paths, size_t n, int fd, struct vb_error *err)
{
	struct vb_index *x = index_new(paths, n, err);
	uint8_t head[16];
	char uuid[37] = "";

	if (!x)
		return NULL;
	for (size_t i = 0; i < x->nfiles; i++) {
		x->files[i] = vb_rafile_open(vb_archive_path(vb_chain_archive(x->chain, i)), err);
		if (!x->files[i])
			goto fail;
	}
	if (idx_read(fd, head, sizeof(head), err) < 0)
		goto fail;
	if (memcmp(head, IDX_MAGIC, 8) != 0 || get_le32(head + 8) != x->nfiles ||
	    get_le32(head + 12) != x->meta->ndrives) {
		vb_error_set(err, VB_E_INVALID, 0, "index file: not the index of this chain");
		goto fail;
	}
	for (size_t i = 0; i < x->nfiles; i++) {
		if (idx_read(fd, uuid, 36, err) < 0)
			goto fail;
		if (strcmp(uuid, vb_archive_meta(vb_chain_archive(x->chain, i))->uuid) != 0) {
			vb_error_set(err, VB_E_INVALID, 0, "index file: archive %zu of the chain "
				     "is not the one indexed", i + 1);
			goto fail;
		}
	}
	if (idx_load_entries(x, fd, err) < 0)
		goto fail;
	return x;
fail:
	vb_index_free(x);
	return NULL;
}

void vb_index_free(struct vb_index *x)
{
	if (!x)
		return;
	for (size_t i = 0; i < x->nfiles && x->files; i++)
		vb_rafile_free(x->files[i]);
	for (size_t k = 0; x->d && k < x->meta->ndrives; k++)
		free(x->d[k].e);
	free(x->d);
	free(x->files);
	vb_chain_free(x->chain);
	free(x);
}

const struct vb_meta *vb_index_meta(const struct vb_index *x)
{
	return x->meta;
}

uint64_t vb_index_clusters(const struct vb_index *x, size_t drive)
{
	return x->d[drive].n;
}

uint64_t vb_index_frames_started(const struct vb_index *x)
{
	uint64_t n = 0;

	for (size_t i = 0; i < x->nfiles; i++)
		n += vb_rafile_frames_started(x->files[i]);
	return n;
}

/* The entry of cluster c, or NULL: a hole. */
static const struct ent *find(const struct idrive *d, uint32_t c)
{
	size_t lo = 0, hi = d->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (d->e[mid].cluster == c)
			return &d->e[mid];
		if (d->e[mid].cluster < c)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* Calls fn for each run of blocks of [off, off + len) (within the drive)
 * that is stored (data) or not (zero), with e the cluster's entry. */
typedef int (*run_fn)(void *opaque, const struct ent *e, uint64_t off, uint64_t len,
		      bool data, uint64_t src);

static int walk(const struct idrive *d, uint64_t off, uint64_t len, run_fn fn, void *opaque)
{
	uint64_t end = off + len;

	while (off < end) {
		uint32_t c = (uint32_t)(off / VMA_CLUSTER_SIZE);
		uint64_t cbase = (uint64_t)c * VMA_CLUSTER_SIZE;
		const struct ent *e = find(d, c);
		unsigned b = (unsigned)((off - cbase) / VMA_BLOCK_SIZE);
		bool data = e && (e->mask >> b & 1);
		unsigned k = b;
		uint64_t run_end, src = 0;
		int rc;

		while (k < VMA_BLOCKS_PER_CLUSTER && (e && (e->mask >> k & 1)) == data)
			k++;
		run_end = cbase + (uint64_t)k * VMA_BLOCK_SIZE;
		if (run_end > end)
			run_end = end;
		if (data)
			src = e->off + (uint64_t)__builtin_popcount(e->mask & ((1u << b) - 1)) *
				       VMA_BLOCK_SIZE + (off - cbase) % VMA_BLOCK_SIZE;
		rc = fn(opaque, e, off, run_end - off, data, src);
		if (rc < 0)
			return rc;
		off = run_end;
	}
	return 0;
}

struct rd {
	struct vb_index *x;
	uint8_t *buf;
	uint64_t base;
	const char *drive;
	struct vb_error *err;
};

static int read_run(void *opaque, const struct ent *e, uint64_t off, uint64_t len, bool data,
		    uint64_t src)
{
	struct rd *r = opaque;
	uint8_t *dst = r->buf + (off - r->base);
	ssize_t n;

	if (!data) {
		memset(dst, 0, (size_t)len);
		return 0;
	}
	n = vb_rafile_pread(r->x->files[e->arch], dst, (size_t)len, src, r->err);
	if (n < 0)
		return -1;
	if ((uint64_t)n < len)
		return vb_error_set(r->err, VB_E_INVALID, 0, "drive %s: the archive ends inside "
				    "the data of cluster %u", r->drive, e->cluster);
	return 0;
}

static int check_range(const struct vb_index *x, size_t drive, uint64_t off, uint64_t len,
		       struct vb_error *err)
{
	if (drive >= x->meta->ndrives)
		return vb_error_set(err, VB_E_USAGE, 0, "no drive %zu", drive);
	if (off > x->meta->drives[drive].size || len > x->meta->drives[drive].size - off)
		return vb_error_set(err, VB_E_USAGE, 0, "drive %s: range %llu+%llu past its end",
				    x->meta->drives[drive].name, (unsigned long long)off,
				    (unsigned long long)len);
	return 0;
}

int vb_index_pread(struct vb_index *x, size_t drive, void *buf, size_t len, uint64_t off,
		   struct vb_error *err)
{
	struct rd r = { x, buf, off, NULL, err };

	if (check_range(x, drive, off, len, err) < 0)
		return -1;
	r.drive = x->meta->drives[drive].name;
	return walk(&x->d[drive], off, len, read_run, &r) < 0 ? -1 : 0;
}

struct ext_walk {
	vb_index_extent_fn fn;
	void *opaque;
	uint64_t start, len;
	bool data, open;
};

static int ext_run(void *opaque, const struct ent *e, uint64_t off, uint64_t len, bool data,
		   uint64_t src)
{
	struct ext_walk *w = opaque;

	if (w->open && w->data == data) {
		w->len += len;
		return 0;
	}
	if (w->open && w->fn(w->opaque, w->start, w->len, w->data) < 0)
		return -1;
	*w = (struct ext_walk){ w->fn, w->opaque, off, len, data, true };
	return 0;
}

int vb_index_extents(struct vb_index *x, size_t drive, uint64_t off, uint64_t len,
		     vb_index_extent_fn fn, void *opaque, struct vb_error *err)
{
	struct ext_walk w = { fn, opaque, 0, 0, false, false };

	if (check_range(x, drive, off, len, err) < 0)
		return -1;
	if (walk(&x->d[drive], off, len, ext_run, &w) < 0)
		return vb_error_set(err, VB_E_FAIL, 0, "drive %s: block status failed",
				    x->meta->drives[drive].name);
	if (w.open && fn(opaque, w.start, w.len, w.data) < 0)
		return vb_error_set(err, VB_E_FAIL, 0, "drive %s: block status failed",
				    x->meta->drives[drive].name);
	return 0;
}
