/* vma_tree.c: "vma-tree-1", an archive digest over the cluster digests.
 *
 * SHA-256 of: the tag "vma-tree-1\n", the header (header_size bytes, as
 * they are), then per extent its 512-byte header as it is and, for each
 * blockinfo slot whose mask stores blocks, the SHA-256 of that cluster's
 * device bytes (blocks the mask leaves out are zero; the last cluster of a
 * device only up to the device end). The bytes that stand for a cluster are
 * fixed by its extent header (the mask) and its content, so the digest
 * commits to every byte of the archive as SHA-256 of the bytes does; a
 * stored block's bytes past the device end must be zero, and the stream
 * ends after a whole extent. A backup with a digest map has each cluster's
 * digest at hand: the archive's bytes need no second hash. */
#include <errno.h>
#include <stdlib.h>

#include "vma/vma_int.h"

#define TREE_TAG "vma-tree-1\n"
#define TREE_RBUF ((size_t)1 << 20)

struct vma_tree {
	EVP_MD_CTX *md;
	bool failed;
};

struct vma_tree *vma_tree_new(void)
{
	struct vma_tree *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->md = EVP_MD_CTX_new();
	if (!t->md || EVP_DigestInit_ex(t->md, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(t->md, TREE_TAG, strlen(TREE_TAG)) != 1) {
		vma_tree_free(t);
		return NULL;
	}
	return t;
}

void vma_tree_free(struct vma_tree *t)
{
	if (!t)
		return;
	EVP_MD_CTX_free(t->md);
	free(t);
}

void vma_tree_raw(struct vma_tree *t, const void *buf, size_t len)
{
	if (!t->failed && EVP_DigestUpdate(t->md, buf, len) != 1)
		t->failed = true;
}

void vma_tree_cluster(struct vma_tree *t, const uint8_t digest[VMA_TREE_LEN])
{
	vma_tree_raw(t, digest, VMA_TREE_LEN);
}

int vma_tree_final(struct vma_tree *t, uint8_t out[VMA_TREE_LEN])
{
	unsigned int n = 0;

	if (t->failed || EVP_DigestFinal_ex(t->md, out, &n) != 1 || n != VMA_TREE_LEN)
		return -1;
	return 0;
}

int vma_tree_cluster_digest(const uint8_t *cluster, uint32_t dev_bytes,
			    uint8_t out[VMA_TREE_LEN])
{
	unsigned int n = 0;

	if (!EVP_Digest(cluster, dev_bytes, out, &n, EVP_sha256(), NULL) || n != VMA_TREE_LEN)
		return -1;
	return 0;
}

/* ------------------------------------------------ the digest of a stream */

struct treader {
	vma_read_fn fn;
	void *opaque;
	uint8_t *buf;
	size_t pos, len;
	uint64_t total;
	int err;                /* a negative errno from fn */
};

/* Up to n bytes into dst (fewer only at the end or on an error). */
static size_t tr_read(struct treader *r, uint8_t *dst, size_t n)
{
	size_t got = 0;

	while (got < n && !r->err) {
		if (r->pos == r->len) {
			ssize_t k = r->fn(r->opaque, r->buf, TREE_RBUF);

			if (k < 0 && k == -EINTR)
				continue;
			if (k < 0) {
				r->err = (int)k;
				break;
			}
			if (k == 0)
				break;
			r->pos = 0;
			r->len = (size_t)k;
			r->total += (uint64_t)k;
		}
		size_t c = r->len - r->pos < n - got ? r->len - r->pos : n - got;

		memcpy(dst + got, r->buf + r->pos, c);
		r->pos += c;
		got += c;
	}
	return got;
}

/* One extent's clusters into the tree: 0, or 1 when it is not as a
 * writer makes it. */
static int tree_extent(struct treader *r, struct vma_tree *t, const uint8_t *e,
		       const uint64_t *sizes, uint8_t *cl)
{
	unsigned blocks = 0, want = get_be16(e + VMA_E_BLOCK_COUNT);
	uint8_t d[VMA_TREE_LEN];

	for (unsigned i = 0; i < VMA_BLOCKINFO_PER_EXTENT; i++) {
		uint64_t bi = get_be64(e + VMA_E_BLOCKINFO + 8 * i), start, left;
		uint16_t mask = (uint16_t)(bi >> 48);
		unsigned dev = (unsigned)(bi >> 32) & 0xffu;
		uint32_t dev_bytes;

		if (!mask)
			continue;
		start = (bi & 0xffffffffu) * VMA_CLUSTER_SIZE;
		if (dev == 0 || start >= sizes[dev])
			return 1;
		left = sizes[dev] - start;
		dev_bytes = left < VMA_CLUSTER_SIZE ? (uint32_t)left : VMA_CLUSTER_SIZE;
		memset(cl, 0, VMA_CLUSTER_SIZE);
		for (unsigned b = 0; b < VMA_BLOCKS_PER_CLUSTER; b++) {
			if (!(mask & (1u << b)))
				continue;
			if (b * VMA_BLOCK_SIZE >= dev_bytes ||
			    tr_read(r, cl + b * VMA_BLOCK_SIZE, VMA_BLOCK_SIZE) != VMA_BLOCK_SIZE)
				return r->err ? -1 : 1;
			blocks++;
		}
		for (uint32_t z = dev_bytes, n; z < VMA_CLUSTER_SIZE; z += n) {
			n = VMA_CLUSTER_SIZE - z < VMA_BLOCK_SIZE ? VMA_CLUSTER_SIZE - z : VMA_BLOCK_SIZE;
			if (!vma_is_zero(cl + z, n))
				return 1;
		}
		if (vma_tree_cluster_digest(cl, dev_bytes, d) < 0)
			return -1;
		vma_tree_cluster(t, d);
	}
	return blocks == want ? 0 : 1;
}

static int tree_walk(struct treader *r, struct vma_tree *t, uint8_t *cl)
{
	uint64_t sizes[VMA_DEV_SLOTS] = { 0 };
	uint8_t e[VMA_EXTENT_HEADER_SIZE], *h = cl;
	uint32_t hsize;
	size_t got;
	int rc;

	/* the fixed part fits the cluster buffer; the blobs are hashed after */
	if (tr_read(r, h, VMA_HEADER_FIXED_SIZE) != VMA_HEADER_FIXED_SIZE)
		return r->err ? -1 : 1;
	hsize = get_be32(h + VMA_H_HEADER_SIZE);
	if (memcmp(h, vma_magic, VMA_MAGIC_LEN) != 0 || hsize < VMA_HEADER_FIXED_SIZE ||
	    hsize % 512 != 0 || hsize > VMA_MAX_HEADER_SIZE)
		return 1;
	for (unsigned i = 1; i < VMA_DEV_SLOTS; i++)
		sizes[i] = get_be64(h + VMA_H_DEV_INFO + VMA_H_DEV_ENTRY * i + 8);
	vma_tree_raw(t, h, VMA_HEADER_FIXED_SIZE);
	for (uint32_t done = VMA_HEADER_FIXED_SIZE; done < hsize; done += (uint32_t)got) {
		size_t n = hsize - done < VMA_CLUSTER_SIZE ? hsize - done : VMA_CLUSTER_SIZE;

		if ((got = tr_read(r, cl, n)) != n)
			return r->err ? -1 : 1;
		vma_tree_raw(t, cl, n);
	}
	while ((got = tr_read(r, e, sizeof(e))) == sizeof(e)) {
		if (memcmp(e + VMA_E_MAGIC, vma_extent_magic, VMA_MAGIC_LEN) != 0)
			return 1;
		vma_tree_raw(t, e, sizeof(e));
		if ((rc = tree_extent(r, t, e, sizes, cl)) != 0)
			return rc;
	}
	if (r->err)
		return -1;
	return got == 0 ? 0 : 1;
}

int vma_tree_of_stream(vma_read_fn fn, void *opaque, uint8_t out[VMA_TREE_LEN],
		       uint64_t *size)
{
	struct treader r = { .fn = fn, .opaque = opaque };
	struct vma_tree *t = vma_tree_new();
	uint8_t *cl = malloc(VMA_CLUSTER_SIZE), skip[4096];
	int rc = -ENOMEM;

	r.buf = malloc(TREE_RBUF);
	if (t && cl && r.buf) {
		rc = tree_walk(&r, t, cl);
		if (rc == 0 && vma_tree_final(t, out) < 0)
			rc = -ENOMEM;
		else if (rc < 0)
			rc = r.err ? r.err : -ENOMEM;
		/* the size counts every byte, after a stream it could not take too */
		while (rc == 1 && tr_read(&r, skip, sizeof(skip)) == sizeof(skip))
			;
		if (rc == 1 && r.err)
			rc = r.err;
	}
	*size = r.total;
	free(r.buf);
	free(cl);
	vma_tree_free(t);
	return rc;
}
