/* fuzz_vma_reader.c: libFuzzer target for the VMA reader: header, every
 * cluster and check_complete over the input, then a re-encode round trip. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include <openssl/evp.h>

#include "vma/vma.h"

struct src {
	const uint8_t *data;
	size_t len, pos;
};

/* Short reads of varying size, as from a pipe. */
static ssize_t src_read(void *opaque, void *buf, size_t len)
{
	struct src *s = opaque;
	size_t n = 1 + (s->pos * 2654435761u) % 9001;

	if (n > len)
		n = len;
	if (n > s->len - s->pos)
		n = s->len - s->pos;
	memcpy(buf, s->data + s->pos, n);
	s->pos += n;
	return (ssize_t)n;
}

struct sink {
	uint8_t *data;
	size_t len, cap;
};

static int sink_write(void *opaque, const void *buf, size_t len)
{
	struct sink *k = opaque;

	if (k->len + len > k->cap) {
		size_t cap = (k->len + len) * 2;
		uint8_t *p = realloc(k->data, cap);

		if (!p)
			return -12;
		k->data = p;
		k->cap = cap;
	}
	memcpy(k->data + k->len, buf, len);
	k->len += len;
	return 0;
}

struct seen_cluster {
	unsigned dev_id;
	uint32_t num;
	uint16_t mask;
	size_t off; /* into packed */
};

struct record {
	struct seen_cluster *c;
	size_t n, cap;
	uint8_t *packed;
	size_t plen, pcap;
};

static int record_add(struct record *rec, const struct vma_cluster *c)
{
	unsigned i;

	if (rec->n == rec->cap) {
		size_t cap = rec->cap ? rec->cap * 2 : 64;
		struct seen_cluster *p = realloc(rec->c, cap * sizeof(*p));

		if (!p)
			return -1;
		rec->c = p;
		rec->cap = cap;
	}
	if (rec->plen + VMA_CLUSTER_SIZE > rec->pcap) {
		size_t cap = (rec->plen + VMA_CLUSTER_SIZE) * 2;
		uint8_t *p = realloc(rec->packed, cap);

		if (!p)
			return -1;
		rec->packed = p;
		rec->pcap = cap;
	}
	rec->c[rec->n] = (struct seen_cluster){ c->dev_id, c->cluster_num, c->mask, rec->plen };
	for (i = 0; i < VMA_BLOCKS_PER_CLUSTER; i++) {
		if (c->mask & (1u << i)) {
			memcpy(rec->packed + rec->plen, c->data + i * VMA_BLOCK_SIZE, VMA_BLOCK_SIZE);
			rec->plen += VMA_BLOCK_SIZE;
		} else {
			for (size_t k = 0; k < VMA_BLOCK_SIZE; k++)
				if (c->data[i * VMA_BLOCK_SIZE + k])
					__builtin_trap(); /* absent blocks must read as zero */
		}
	}
	rec->n++;
	return 0;
}

/* Writes what the reader saw through the writer and reads it back. */
static void reencode(struct vma_reader *r, const struct record *rec)
{
	struct vma_writer *w;
	struct sink k = { 0 };
	struct src s;
	struct vma_reader *r2 = NULL;
	struct vma_cluster c;
	unsigned i, map[256] = { 0 };
	uint8_t uuid[VMA_UUID_LEN];
	size_t n = 0;
	int rc;

	w = vma_writer_new(sink_write, &k);
	if (!w)
		return;
	vma_reader_uuid(r, uuid);
	vma_writer_set_uuid(w, uuid);
	for (i = 0; i < vma_reader_config_count(r); i++) {
		const struct vma_config_info *ci = vma_reader_config(r, i);

		if (vma_writer_add_config(w, ci->name, ci->data, ci->len) < 0)
			goto out; /* names the writer refuses, e.g. duplicates */
	}
	for (i = 0; i < vma_reader_device_count(r); i++) {
		const struct vma_device_info *di = vma_reader_device(r, i);
		int id = vma_writer_add_device(w, di->name, di->size);

		if (id < 0)
			goto out;
		map[di->dev_id] = (unsigned)id;
	}
	if (vma_writer_start(w) < 0)
		goto out;
	for (n = 0; n < rec->n; n++) {
		const struct seen_cluster *sc = &rec->c[n];

		if (vma_writer_add_cluster_masked(w, map[sc->dev_id], sc->num, sc->mask,
						  rec->packed + sc->off) < 0)
			__builtin_trap();
	}
	if (vma_writer_finish(w) < 0)
		__builtin_trap();
	s = (struct src){ k.data, k.len, 0 };
	r2 = vma_reader_new(src_read, &s);
	if (!r2 || vma_reader_read_header(r2) < 0)
		__builtin_trap();
	for (n = 0; (rc = vma_reader_next_cluster(r2, &c)) == 1; n++) {
		const struct seen_cluster *sc = &rec->c[n];
		unsigned b, k2 = 0;

		if (n >= rec->n || c.dev_id != map[sc->dev_id] || c.cluster_num != sc->num ||
		    c.mask != sc->mask)
			__builtin_trap();
		for (b = 0; b < VMA_BLOCKS_PER_CLUSTER; b++)
			if (c.mask & (1u << b) &&
			    memcmp(c.data + b * VMA_BLOCK_SIZE,
				   rec->packed + sc->off + VMA_BLOCK_SIZE * k2++, VMA_BLOCK_SIZE))
				__builtin_trap();
	}
	if (rc != 0 || n != rec->n)
		__builtin_trap();
out:
	vma_reader_free(r2);
	vma_writer_free(w);
	free(k.data);
}

static void run(const uint8_t *data, size_t size)
{
	struct src s = { data, size, 0 };
	struct vma_reader *r = vma_reader_new(src_read, &s);
	struct record rec = { 0 };
	struct vma_cluster c;
	unsigned i;
	int rc;

	if (!r)
		return;
	if (vma_reader_read_header(r) == 0) {
		for (i = 0; i < vma_reader_device_count(r); i++)
			(void)vma_reader_device_by_id(r, vma_reader_device(r, i)->dev_id);
		while ((rc = vma_reader_next_cluster(r, &c)) == 1) {
			uint64_t dsize = vma_reader_device_by_id(r, c.dev_id)->size;
			uint64_t start = (uint64_t)c.cluster_num * VMA_CLUSTER_SIZE;

			/* nothing past the device end reaches the caller */
			for (uint64_t k = dsize - start; k < VMA_CLUSTER_SIZE; k++)
				if (c.data[k])
					__builtin_trap();
			if (record_add(&rec, &c) < 0)
				break;
		}
		if (rc == 0) {
			(void)vma_reader_check_complete(r, 0);
			reencode(r, &rec);
		}
	}
	if (vma_reader_offset(r) > size)
		__builtin_trap();
	(void)vma_reader_error(r);
	vma_reader_free(r);
	free(rec.c);
	free(rec.packed);
}

static void put_md5(uint8_t *p, size_t len, size_t field)
{
	uint8_t md[EVP_MAX_MD_SIZE];

	memset(p + field, 0, 16);
	if (EVP_Digest(p, len, md, NULL, EVP_md5(), NULL) == 1)
		memcpy(p + field, md, 16);
}

/* A copy with every checksum made right, so mutations reach the checks
 * behind the header and extent MD5s. */
static uint8_t *fix_checksums(const uint8_t *data, size_t size)
{
	uint8_t *p;
	uint64_t hs, off;

	if (size < VMA_HEADER_FIXED_SIZE)
		return NULL;
	hs = (uint64_t)data[56] << 24 | (uint64_t)data[57] << 16 | data[58] << 8 | data[59];
	if (hs > size || hs < 64)
		return NULL;
	p = malloc(size);
	if (!p)
		return NULL;
	memcpy(p, data, size);
	put_md5(p, hs, 32);
	for (off = hs; off + VMA_EXTENT_HEADER_SIZE <= size;) {
		put_md5(p + off, VMA_EXTENT_HEADER_SIZE, 24);
		off += VMA_EXTENT_HEADER_SIZE + (uint64_t)(p[off + 6] << 8 | p[off + 7]) * VMA_BLOCK_SIZE;
	}
	return p;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *fixed;

	run(data, size);
	fixed = fix_checksums(data, size);
	if (fixed) {
		run(fixed, size);
		free(fixed);
	}
	return 0;
}
