/* vma_reader.c: streaming VMA reader: pulls extents through the read
 * callback (never seeks), checks each one whole, then hands out clusters. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vma/vma_reader_int.h"

struct vma_reader *vma_reader_new(vma_read_fn fn, void *opaque)
{
	struct vma_reader *r;

	if (!fn)
		return NULL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->fn = fn;
	r->opaque = opaque;
	r->md = EVP_MD_CTX_new();
	r->cbuf = calloc(1, VMA_CLUSTER_SIZE);
	if (!r->md || !r->cbuf) {
		vma_reader_free(r);
		return NULL;
	}
	return r;
}

void vma_reader_free(struct vma_reader *r)
{
	unsigned i;

	if (!r)
		return;
	for (i = 0; i < VMA_DEV_SLOTS; i++)
		vma_seen_free(r->seen[i]);
	free(r->head);
	free(r->ext);
	free(r->cbuf);
	EVP_MD_CTX_free(r->md);
	free(r);
}

int vma_reader_fail(struct vma_reader *r, enum vma_err code, const char *fmt, ...)
{
	va_list ap;

	r->state = R_FAILED;
	r->err.code = code;
	r->err.sys_errno = code == VMA_ERR_NOMEM ? ENOMEM : 0;
	va_start(ap, fmt);
	vsnprintf(r->err.msg, sizeof(r->err.msg), fmt, ap);
	va_end(ap);
	return -1;
}

/* A misuse: reported, but the stream stays usable. */
static int usage_error(struct vma_reader *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int usage_error(struct vma_reader *r, const char *fmt, ...)
{
	va_list ap;

	r->err.code = VMA_ERR_USAGE;
	r->err.sys_errno = 0;
	va_start(ap, fmt);
	vsnprintf(r->err.msg, sizeof(r->err.msg), fmt, ap);
	va_end(ap);
	return -1;
}

int vma_reader_fill(struct vma_reader *r, void *buf, size_t len, size_t *got)
{
	uint8_t *p = buf;
	size_t done = 0;

	while (done < len) {
		ssize_t n = r->fn(r->opaque, p + done, len - done);

		if (n == -EINTR)
			continue;
		if (n < 0 || (size_t)n > len - done) {
			int e = n < 0 ? (int)-n : EIO;

			vma_reader_fail(r, VMA_ERR_IO, "read at offset %llu failed: %s",
					(unsigned long long)(r->offset + done),
					n < 0 ? strerror(e) : "callback returned too many bytes");
			r->err.sys_errno = e;
			r->offset += done;
			return -1;
		}
		if (n == 0)
			break;
		done += (size_t)n;
	}
	r->offset += done;
	*got = done;
	return 0;
}

int vma_reader_read_header(struct vma_reader *r)
{
	if (r->state == R_FAILED)
		return -1;
	if (r->state != R_NEW)
		return usage_error(r, "header: already read");
	if (vma_header_parse(r) < 0)
		return -1;
	r->state = R_READY;
	return 0;
}

/* The per-slot checks of section 5 step 7, in Proxmox's order. */
static int check_slot(struct vma_reader *r, unsigned s, uint64_t word, unsigned block_count,
		      unsigned *claimed)
{
	unsigned long long at = (unsigned long long)r->ext_offset;
	unsigned dev_id = (unsigned)(word >> 32) & 0xffu;
	uint32_t cluster = (uint32_t)word;
	uint16_t mask = (uint16_t)(word >> 48);
	const struct vma_device_info *d;
	uint64_t start = (uint64_t)cluster * VMA_CLUSTER_SIZE;
	unsigned i;
	int rc;

	if (!r->index_of[dev_id])
		return vma_reader_fail(r, VMA_ERR_EXTENT_DEV,
				       "extent at offset %llu, slot %u: cluster %u of unknown device %u",
				       at, s, cluster, dev_id);
	d = &r->devices[r->index_of[dev_id] - 1];
	rc = vma_seen_mark(&r->seen[dev_id], cluster);
	if (rc < 0)
		return vma_reader_fail(r, VMA_ERR_NOMEM, "device %u (%s): out of memory",
				       dev_id, d->name);
	if (rc > 0)
		return vma_reader_fail(r, VMA_ERR_EXTENT_DUP,
				       "extent at offset %llu, slot %u: duplicate cluster %u of device %u (%s)",
				       at, s, cluster, dev_id, d->name);
	/* Proxmox's writer never emits a cluster past the end, even empty */
	if (start >= d->size)
		return vma_reader_fail(r, VMA_ERR_EXTENT_BEYOND,
				       "extent at offset %llu, slot %u: cluster %u of device %u (%s) is past the device end (size %llu)",
				       at, s, cluster, dev_id, d->name,
				       (unsigned long long)d->size);
	/* A block starting at or past the size is refused. Proxmox is stricter
	 * by one partial sector (floor(size/512)*512), which its writer avoids
	 * by declaring sector multiples. */
	for (i = 0; i < VMA_BLOCKS_PER_CLUSTER; i++) {
		uint64_t bstart = start + (uint64_t)i * VMA_BLOCK_SIZE;

		if ((mask & (1u << i)) && bstart >= d->size)
			return vma_reader_fail(r, VMA_ERR_EXTENT_BEYOND,
					       "extent at offset %llu, slot %u: block %u of cluster %u of device %u (%s) starts at byte %llu, past the device end (size %llu)",
					       at, s, i, cluster, dev_id, d->name,
					       (unsigned long long)bstart,
					       (unsigned long long)d->size);
	}
	*claimed += (unsigned)__builtin_popcount(mask);
	if (*claimed > block_count)
		return vma_reader_fail(r, VMA_ERR_EXTENT_COUNT,
				       "extent at offset %llu, slot %u: masks claim more than block_count %u blocks",
				       at, s, block_count);
	return 0;
}

/* The extent header checks of section 5 steps 2-5; returns block_count or -1. */
static int check_extent_header(struct vma_reader *r)
{
	unsigned long long at = (unsigned long long)r->ext_offset;
	const uint8_t *e = r->ext;
	uint8_t md5[VMA_MD5_LEN];
	uint16_t reserved = get_be16(e + VMA_E_RESERVED);
	unsigned block_count = get_be16(e + VMA_E_BLOCK_COUNT);

	if (vma_md5_zeroed(r->md, r->ext, VMA_EXTENT_HEADER_SIZE, VMA_E_MD5, md5) < 0)
		return vma_reader_fail(r, VMA_ERR_NOMEM, "extent: MD5 failed in libcrypto");
	if (memcmp(md5, e + VMA_E_MD5, VMA_MD5_LEN) != 0)
		return vma_reader_fail(r, VMA_ERR_EXTENT_MD5,
				       "extent at offset %llu: header checksum mismatch", at);
	if (memcmp(e + VMA_E_UUID, r->uuid, VMA_UUID_LEN) != 0)
		return vma_reader_fail(r, VMA_ERR_EXTENT_UUID,
				       "extent at offset %llu: uuid differs from the archive header's", at);
	if (memcmp(e + VMA_E_MAGIC, vma_extent_magic, VMA_MAGIC_LEN) != 0)
		return vma_reader_fail(r, VMA_ERR_EXTENT_MAGIC,
				       "extent at offset %llu: bad magic %02x%02x%02x%02x", at,
				       e[0], e[1], e[2], e[3]);
	if (reserved != 0)
		return vma_reader_fail(r, VMA_ERR_EXTENT_MAGIC,
				       "extent at offset %llu: reserved field %#x is not 0", at,
				       reserved);
	/* More blocks than 59 full clusters can never be accounted for; say so
	 * before reading (and buffering) up to 256 MiB of them. */
	if (block_count > VMA_MAX_EXTENT_BLOCKS)
		return vma_reader_fail(r, VMA_ERR_EXTENT_COUNT,
				       "extent at offset %llu: block_count %u is more than %u clusters hold",
				       at, block_count, VMA_BLOCKINFO_PER_EXTENT);
	return (int)block_count;
}

/* Bytes of the device inside this (checked) cluster. */
static uint32_t cluster_dev_bytes(const struct vma_reader *r, unsigned dev_id, uint32_t cluster)
{
	uint64_t size = r->devices[r->index_of[dev_id] - 1].size;
	uint64_t left = size - (uint64_t)cluster * VMA_CLUSTER_SIZE;

	return left < VMA_CLUSTER_SIZE ? (uint32_t)left : VMA_CLUSTER_SIZE;
}

/* Grows the extent buffer; it ends at VMA_MAX_EXTENT_SIZE for real archives. */
static int ensure_ext(struct vma_reader *r, size_t len)
{
	uint8_t *p;

	if (len <= r->ext_cap)
		return 0;
	if (len < 2 * r->ext_cap)
		len = 2 * r->ext_cap < VMA_MAX_EXTENT_SIZE ? 2 * r->ext_cap : VMA_MAX_EXTENT_SIZE;
	p = realloc(r->ext, len);
	if (!p)
		return vma_reader_fail(r, VMA_ERR_NOMEM, "extent at offset %llu: out of memory",
				       (unsigned long long)r->ext_offset);
	r->ext = p;
	r->ext_cap = len;
	return 0;
}

/* Reads and checks the next extent's header. Returns its block_count,
 * 0 with *end at the normal end of the stream, -1. */
static int load_extent_header(struct vma_reader *r, bool *end)
{
	unsigned long long at;
	size_t got;

	*end = false;
	if (!r->ext) {
		r->ext = malloc(VMA_EXTENT_HEADER_SIZE);
		if (!r->ext)
			return vma_reader_fail(r, VMA_ERR_NOMEM, "extent: out of memory");
		r->ext_cap = VMA_EXTENT_HEADER_SIZE;
	}
	r->nslots = r->next_slot = 0;
	r->ext_offset = r->offset;
	at = (unsigned long long)r->ext_offset;
	if (vma_reader_fill(r, r->ext, VMA_EXTENT_HEADER_SIZE, &got) < 0)
		return -1;
	if (got == 0) {
		*end = true;
		return 0;
	}
	if (got < VMA_EXTENT_HEADER_SIZE)
		return vma_reader_fail(r, VMA_ERR_EXTENT_SHORT,
				       "extent at offset %llu: stream ended after %zu of %u header bytes",
				       at, got, VMA_EXTENT_HEADER_SIZE);
	return check_extent_header(r);
}

/* The blockinfo slots of the loaded extent header, checked. 0 or -1. */
static int load_slots(struct vma_reader *r, int block_count)
{
	size_t pos = VMA_EXTENT_HEADER_SIZE;
	unsigned s, claimed = 0;

	for (s = 0; s < VMA_BLOCKINFO_PER_EXTENT; s++) {
		uint64_t word = get_be64(r->ext + VMA_E_BLOCKINFO + 8 * s);
		struct rslot *slot = &r->slots[r->nslots];

		/* dev_id 0 marks an unused slot, wherever it is (as Proxmox) */
		if (((word >> 32) & 0xffu) == 0)
			continue;
		if (check_slot(r, s, word, (unsigned)block_count, &claimed) < 0)
			return -1;
		slot->dev_id = (unsigned)(word >> 32) & 0xffu;
		slot->cluster_num = (uint32_t)word;
		slot->mask = (uint16_t)(word >> 48);
		slot->data_off = pos;
		slot->dev_bytes = cluster_dev_bytes(r, slot->dev_id, slot->cluster_num);
		pos += (size_t)__builtin_popcount(slot->mask) * VMA_BLOCK_SIZE;
		r->nslots++;
	}
	if (claimed != (unsigned)block_count)
		return vma_reader_fail(r, VMA_ERR_EXTENT_COUNT,
				       "extent at offset %llu: masks account for %u of block_count %d blocks",
				       (unsigned long long)r->ext_offset, claimed, block_count);
	return 0;
}

/* Reads and checks the next extent. Returns 1, 0 at the normal end, -1. */
static int load_extent(struct vma_reader *r)
{
	size_t got, need;
	bool end;
	int block_count = load_extent_header(r, &end);

	if (block_count < 0 || end)
		return block_count;
	need = (size_t)block_count * VMA_BLOCK_SIZE;
	if (ensure_ext(r, VMA_EXTENT_HEADER_SIZE + need) < 0)
		return -1;
	if (vma_reader_fill(r, r->ext + VMA_EXTENT_HEADER_SIZE, need, &got) < 0)
		return -1;
	if (got < need)
		return vma_reader_fail(r, VMA_ERR_EXTENT_SHORT,
				       "extent at offset %llu: stream ended after %zu of %zu data bytes",
				       (unsigned long long)r->ext_offset, got, need);
	return load_slots(r, block_count) < 0 ? -1 : 1;
}

int vma_reader_next_extent(struct vma_reader *r, vma_skip_fn skip, struct vma_extent *x)
{
	uint64_t need;
	bool end;
	int block_count, rc;

	if (r->state == R_FAILED)
		return -1;
	if (r->state == R_END)
		return 0;
	if (r->state != R_READY || !skip)
		return usage_error(r, "next extent: header not read or no skip callback");
	block_count = load_extent_header(r, &end);
	if (block_count < 0)
		return -1;
	if (end) {
		r->state = R_END;
		return 0;
	}
	if (load_slots(r, block_count) < 0)
		return -1;
	need = (uint64_t)block_count * VMA_BLOCK_SIZE;
	rc = skip(r->opaque, need);
	if (rc == -ENODATA)
		return vma_reader_fail(r, VMA_ERR_EXTENT_SHORT,
				       "extent at offset %llu: stream ended inside its %llu data bytes",
				       (unsigned long long)r->ext_offset, (unsigned long long)need);
	if (rc < 0) {
		vma_reader_fail(r, VMA_ERR_IO, "extent at offset %llu: skipping its data failed: %s",
				(unsigned long long)r->ext_offset, strerror(-rc));
		r->err.sys_errno = -rc;
		return -1;
	}
	x->offset = r->ext_offset;
	x->nslots = r->nslots;
	for (unsigned i = 0; i < r->nslots; i++) {
		x->slot[i].dev_id = r->slots[i].dev_id;
		x->slot[i].cluster_num = r->slots[i].cluster_num;
		x->slot[i].mask = r->slots[i].mask;
		x->slot[i].data_offset = r->ext_offset + r->slots[i].data_off;
	}
	r->offset += need;
	r->nslots = 0;
	return 1;
}

/* Fills c from a checked slot: a full cluster is handed out in place, a
 * partial one is scattered into cbuf, zeroing only blocks that need it. The
 * part of a block straddling the device end that lies past it is zeroed, so
 * no byte past the end ever reaches the caller. */
static void deliver(struct vma_reader *r, const struct rslot *slot, struct vma_cluster *c)
{
	uint8_t *src = r->ext + slot->data_off, *out = src;
	unsigned i, last;

	c->dev_id = slot->dev_id;
	c->cluster_num = slot->cluster_num;
	c->mask = slot->mask;
	if (slot->mask != 0xffffu) {
		for (i = 0; i < VMA_BLOCKS_PER_CLUSTER; i++) {
			uint16_t bit = (uint16_t)(1u << i);
			uint8_t *dst = r->cbuf + (size_t)i * VMA_BLOCK_SIZE;

			if (slot->mask & bit) {
				memcpy(dst, src, VMA_BLOCK_SIZE);
				src += VMA_BLOCK_SIZE;
			} else if (r->cbuf_dirty & bit) {
				memset(dst, 0, VMA_BLOCK_SIZE);
			}
		}
		r->cbuf_dirty = slot->mask;
		out = r->cbuf;
	}
	last = slot->dev_bytes / VMA_BLOCK_SIZE;
	if (slot->dev_bytes % VMA_BLOCK_SIZE && (slot->mask & (1u << last)))
		memset(out + slot->dev_bytes, 0, (last + 1) * VMA_BLOCK_SIZE - slot->dev_bytes);
	c->data = out;
}

int vma_reader_next_cluster(struct vma_reader *r, struct vma_cluster *c)
{
	if (r->state == R_FAILED)
		return -1;
	if (r->state == R_END)
		return 0;
	if (r->state != R_READY)
		return usage_error(r, "next cluster: header not read");
	while (r->next_slot >= r->nslots) {
		int rc = load_extent(r);

		if (rc <= 0) {
			if (rc == 0)
				r->state = R_END;
			return rc;
		}
	}
	deliver(r, &r->slots[r->next_slot++], c);
	return 1;
}

uint64_t vma_reader_clusters_seen(const struct vma_reader *r, unsigned dev_id)
{
	return dev_id < VMA_DEV_SLOTS ? vma_seen_count(r->seen[dev_id]) : 0;
}

static int check_device(struct vma_reader *r, const struct vma_device_info *d)
{
	uint64_t n = vma_clusters_of(d->size), first;

	if (vma_seen_count(r->seen[d->dev_id]) == n)
		return 0; /* only clusters < n are ever marked */
	if (!vma_seen_first_missing(r->seen[d->dev_id], n, &first))
		return 0;
	r->err.code = VMA_ERR_MISSING_CLUSTER;
	r->err.sys_errno = 0;
	snprintf(r->err.msg, sizeof(r->err.msg),
		 "device %u (%s): missing cluster %llu of %llu", d->dev_id, d->name,
		 (unsigned long long)first, (unsigned long long)n);
	return -1;
}

int vma_reader_check_complete(struct vma_reader *r, unsigned dev_id)
{
	unsigned i;

	if (r->state == R_FAILED)
		return -1;
	if (r->state == R_NEW || dev_id >= VMA_DEV_SLOTS ||
	    (dev_id && !r->index_of[dev_id]))
		return usage_error(r, "check complete: no device %u", dev_id);
	if (dev_id)
		return check_device(r, &r->devices[r->index_of[dev_id] - 1]);
	for (i = 0; i < r->ndevices; i++)
		if (check_device(r, &r->devices[i]) < 0)
			return -1;
	return 0;
}

void vma_reader_uuid(const struct vma_reader *r, uint8_t out[VMA_UUID_LEN])
{
	memcpy(out, r->uuid, VMA_UUID_LEN);
}

int64_t vma_reader_ctime(const struct vma_reader *r)
{
	return r->ctime;
}

uint32_t vma_reader_header_size(const struct vma_reader *r)
{
	return r->header_size;
}

unsigned vma_reader_device_count(const struct vma_reader *r)
{
	return r->ndevices;
}

const struct vma_device_info *vma_reader_device(const struct vma_reader *r, unsigned index)
{
	return index < r->ndevices ? &r->devices[index] : NULL;
}

const struct vma_device_info *vma_reader_device_by_id(const struct vma_reader *r, unsigned dev_id)
{
	if (dev_id >= VMA_DEV_SLOTS || !r->index_of[dev_id])
		return NULL;
	return &r->devices[r->index_of[dev_id] - 1];
}

unsigned vma_reader_config_count(const struct vma_reader *r)
{
	return r->nconfigs;
}

const struct vma_config_info *vma_reader_config(const struct vma_reader *r, unsigned index)
{
	return index < r->nconfigs ? &r->configs[index] : NULL;
}

const struct vma_config_info *vma_reader_config_by_name(const struct vma_reader *r,
							const char *name)
{
	unsigned i;

	for (i = 0; i < r->nconfigs; i++)
		if (strcmp(r->configs[i].name, name) == 0)
			return &r->configs[i];
	return NULL;
}

uint64_t vma_reader_offset(const struct vma_reader *r)
{
	return r->offset;
}

enum vma_err vma_reader_errcode(const struct vma_reader *r)
{
	return r->err.code;
}

int vma_reader_sys_errno(const struct vma_reader *r)
{
	return r->err.sys_errno;
}

const char *vma_reader_error(const struct vma_reader *r)
{
	return r->err.msg;
}
