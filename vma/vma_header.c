/* vma_header.c: reads and checks a VMA header (vma-format.md sections 2, 3
 * and 5): magic, version, size, MD5, blob buffer, config and device pointers. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vma/vma_reader_int.h"

/* The blob buffer after the walk: which pointers land on a blob. */
struct blobs {
	const uint8_t *base;   /* head + blob_buffer_offset */
	uint32_t size;         /* blob_buffer_size */
	uint8_t *starts;       /* bitmap over [0, size): a walked blob starts here */
};

/* Walks the blobs from pointer 1 as Proxmox does: a blob counts only when
 * it ends inside the used area; the walk stops when < 2 bytes remain. */
static int walk_blobs(struct vma_reader *r, struct blobs *b)
{
	uint64_t pos = 1;

	b->starts = calloc((size_t)b->size / 8 + 1, 1);
	if (!b->starts)
		return vma_reader_fail(r, VMA_ERR_NOMEM, "header: out of memory for %u blob bytes",
				       b->size);
	while (pos + 2 <= b->size) {
		uint64_t len = get_le16(b->base + pos);

		if (pos + 2 + len <= b->size)
			b->starts[pos / 8] |= (uint8_t)(1u << (pos % 8));
		pos += 2 + len;
	}
	return 0;
}

/* Resolves a blob pointer; returns its data or NULL. */
static const uint8_t *blob_at(const struct blobs *b, uint32_t ptr, size_t *len)
{
	if (ptr == 0 || ptr >= b->size || !(b->starts[ptr / 8] & (1u << (ptr % 8))))
		return NULL;
	*len = get_le16(b->base + ptr);
	return b->base + ptr + 2;
}

/* A name blob: a non-empty string whose only NUL is its last byte. */
static int blob_is_name(const uint8_t *p, size_t len)
{
	return len >= 2 && p[len - 1] == 0 && !memchr(p, 0, len - 1);
}

static int parse_configs(struct vma_reader *r, const struct blobs *b)
{
	const uint8_t *h = r->head;
	unsigned i;

	for (i = 0; i < VMA_MAX_CONFIGS; i++) {
		uint32_t nptr = get_be32(h + VMA_H_CONFIG_NAMES + 4 * i);
		uint32_t dptr = get_be32(h + VMA_H_CONFIG_DATA + 4 * i);
		const uint8_t *name, *data;
		size_t nlen, dlen;

		if (!nptr && !dptr)
			continue;
		/* Proxmox skips a half-used slot; it can only come from damage */
		if (!nptr || !dptr)
			return vma_reader_fail(r, VMA_ERR_BLOB_PTR,
					       "header: config slot %u: name pointer %u with data pointer %u",
					       i, nptr, dptr);
		name = blob_at(b, nptr, &nlen);
		if (!name)
			return vma_reader_fail(r, VMA_ERR_BLOB_PTR,
					       "header: config slot %u: name pointer %u does not resolve",
					       i, nptr);
		if (!blob_is_name(name, nlen))
			return vma_reader_fail(r, VMA_ERR_BLOB_STRING,
					       "header: config slot %u: name blob at %u is not a NUL-terminated string",
					       i, nptr);
		data = blob_at(b, dptr, &dlen);
		if (!data)
			return vma_reader_fail(r, VMA_ERR_BLOB_PTR,
					       "header: config %s: data pointer %u does not resolve",
					       (const char *)name, dptr);
		r->configs[r->nconfigs].name = (const char *)name;
		r->configs[r->nconfigs].data = data;
		r->configs[r->nconfigs].len = dlen;
		r->nconfigs++;
	}
	return 0;
}

/* A device exists when its size is not 0 and its name pointer is not 0,
 * as in Proxmox (its lookup of pointer 0 always fails, so such an entry is
 * silently no device). Where Proxmox also silently drops an entry whose
 * non-zero pointer does not resolve or is not a string, we refuse the
 * archive: only damage produces that. Entry 0 is reserved and ignored. */
static int parse_devices(struct vma_reader *r, const struct blobs *b)
{
	unsigned id;

	for (id = 1; id < VMA_DEV_SLOTS; id++) {
		const uint8_t *e = r->head + VMA_H_DEV_INFO + VMA_H_DEV_ENTRY * id;
		uint32_t ptr = get_be32(e);
		uint64_t size = get_be64(e + 8);
		const uint8_t *name;
		size_t len;

		if (size == 0 || ptr == 0)
			continue;
		name = blob_at(b, ptr, &len);
		if (!name)
			return vma_reader_fail(r, VMA_ERR_BLOB_PTR,
					       "header: device %u: name pointer %u does not resolve",
					       id, ptr);
		if (!blob_is_name(name, len))
			return vma_reader_fail(r, VMA_ERR_BLOB_STRING,
					       "header: device %u: name blob at %u is not a NUL-terminated string",
					       id, ptr);
		/* cluster_num is 32 bits: a larger device cannot be stored whole,
		 * and sizes near 2^64 overflow every rounding after this */
		if (size > VMA_MAX_DEVICE_SIZE)
			return vma_reader_fail(r, VMA_ERR_LIMIT,
					       "header: device %u (%s): size %llu is larger than a VMA archive can address (%llu bytes: 2^32 clusters of 64 KiB)",
					       id, (const char *)name, (unsigned long long)size,
					       (unsigned long long)VMA_MAX_DEVICE_SIZE);
		/* a restore would write both into one file, or refuse; a listing
		 * would show one drive where the header holds two */
		for (unsigned k = 0; k < r->ndevices; k++)
			if (strcmp(r->devices[k].name, (const char *)name) == 0)
				return vma_reader_fail(r, VMA_ERR_DEV_DUP,
						       "header: devices %u and %u are both named %s",
						       r->devices[k].dev_id, id, (const char *)name);
		r->devices[r->ndevices].dev_id = id;
		r->devices[r->ndevices].name = (const char *)name;
		r->devices[r->ndevices].size = size;
		r->ndevices++;
		r->index_of[id] = (uint8_t)r->ndevices;
	}
	return 0;
}

/* The fixed part: magic, version, header_size. */
static int check_fixed(struct vma_reader *r, const uint8_t *h)
{
	uint32_t version = get_be32(h + VMA_H_VERSION);
	uint32_t hsize = get_be32(h + VMA_H_HEADER_SIZE);

	if (memcmp(h + VMA_H_MAGIC, vma_magic, VMA_MAGIC_LEN) != 0)
		return vma_reader_fail(r, VMA_ERR_HEADER_MAGIC,
				       "header: bad magic %02x%02x%02x%02x, not a VMA archive",
				       h[0], h[1], h[2], h[3]);
	if (version != 1)
		return vma_reader_fail(r, VMA_ERR_HEADER_VERSION,
				       "header: version %u, only 1 is supported", version);
	if (hsize <= VMA_HEADER_FIXED_SIZE || hsize % 512 != 0 || hsize > VMA_MAX_HEADER_SIZE)
		return vma_reader_fail(r, VMA_ERR_HEADER_SIZE,
				       "header: header_size %u is not a multiple of 512 in (%u, %u]",
				       hsize, VMA_HEADER_FIXED_SIZE, VMA_MAX_HEADER_SIZE);
	r->header_size = hsize;
	return 0;
}

int vma_header_parse(struct vma_reader *r)
{
	struct blobs b = { 0 };
	uint8_t md5[VMA_MD5_LEN];
	uint32_t boff, bsize;
	uint8_t *grown;
	size_t got;
	int rc = -1;

	r->head = malloc(VMA_HEADER_FIXED_SIZE);
	if (!r->head)
		return vma_reader_fail(r, VMA_ERR_NOMEM, "header: out of memory");
	if (vma_reader_fill(r, r->head, VMA_HEADER_FIXED_SIZE, &got) < 0)
		return -1;
	if (got < VMA_HEADER_FIXED_SIZE)
		return vma_reader_fail(r, VMA_ERR_HEADER_SHORT,
				       "header: stream ended after %zu of %u bytes", got,
				       VMA_HEADER_FIXED_SIZE);
	if (check_fixed(r, r->head) < 0)
		return -1;
	grown = realloc(r->head, r->header_size);
	if (!grown)
		return vma_reader_fail(r, VMA_ERR_NOMEM, "header: out of memory for %u bytes",
				       r->header_size);
	r->head = grown;
	if (vma_reader_fill(r, r->head + VMA_HEADER_FIXED_SIZE,
			    r->header_size - VMA_HEADER_FIXED_SIZE, &got) < 0)
		return -1;
	if (got < r->header_size - VMA_HEADER_FIXED_SIZE)
		return vma_reader_fail(r, VMA_ERR_HEADER_SHORT,
				       "header: stream ended after %zu of %u bytes",
				       VMA_HEADER_FIXED_SIZE + got, r->header_size);
	if (vma_md5_zeroed(r->md, r->head, r->header_size, VMA_H_MD5, md5) < 0)
		return vma_reader_fail(r, VMA_ERR_NOMEM, "header: MD5 failed in libcrypto");
	if (memcmp(md5, r->head + VMA_H_MD5, VMA_MD5_LEN) != 0)
		return vma_reader_fail(r, VMA_ERR_HEADER_MD5, "header: checksum mismatch");

	memcpy(r->uuid, r->head + VMA_H_UUID, VMA_UUID_LEN);
	r->ctime = (int64_t)get_be64(r->head + VMA_H_CTIME);
	boff = get_be32(r->head + VMA_H_BLOB_OFFSET);
	bsize = get_be32(r->head + VMA_H_BLOB_SIZE);
	/* Proxmox checks offset >= 12288 and the end; we do the same in 64 bits */
	if (boff < VMA_HEADER_FIXED_SIZE || (uint64_t)boff + bsize > r->header_size)
		return vma_reader_fail(r, VMA_ERR_BLOB_BOUNDS,
				       "header: blob buffer at %u of %u bytes is outside [%u, %u)",
				       boff, bsize, VMA_HEADER_FIXED_SIZE, r->header_size);
	b.base = r->head + boff;
	b.size = bsize;
	if (walk_blobs(r, &b) < 0)
		goto out;
	if (parse_configs(r, &b) < 0 || parse_devices(r, &b) < 0)
		goto out;
	rc = 0;
out:
	free(b.starts);
	return rc;
}
