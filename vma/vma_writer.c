/* vma_writer.c: streaming VMA writer: collects configs and devices, writes
 * the header, then buffers clusters into extents handed out in one write each. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "vma/vma_int.h"

enum wstate { W_SETUP, W_STARTED, W_FINISHED, W_FAILED };

struct wconfig {
	char *name;
	uint8_t *data;
	size_t len;
};

struct wdevice {
	char *name;
	uint64_t size;
};

struct vma_writer {
	vma_write_fn fn;
	void *opaque;
	EVP_MD_CTX *md;
	uint8_t uuid[VMA_UUID_LEN];
	int64_t ctime;
	unsigned extent_clusters;
	enum wstate state;

	struct wconfig configs[VMA_MAX_CONFIGS];
	unsigned nconfigs;
	struct wdevice devices[VMA_MAX_DEVICES + 1]; /* index = dev_id, 0 unused */
	unsigned ndevices;
	uint64_t blob_used; /* blob buffer bytes so far, pad byte included */

	uint8_t *ext;       /* extent header + data, VMA_MAX_EXTENT_SIZE */
	size_t ext_len;     /* bytes used in ext, header included */
	unsigned nslots;
	uint64_t blockinfo[VMA_BLOCKINFO_PER_EXTENT];
	uint64_t extents;   /* extents written */
	uint64_t bytes;
	uint64_t stored_blocks; /* blocks of the clusters added so far */
	/* vma-tree-1: the tree fed, each slot's digest if the caller gave it */
	struct vma_tree *tree;
	uint8_t *tree_cl;   /* a cluster rebuilt to hash it, VMA_CLUSTER_SIZE */
	bool slot_has[VMA_BLOCKINFO_PER_EXTENT];
	uint8_t slot_digest[VMA_BLOCKINFO_PER_EXTENT][VMA_TREE_LEN];

	struct vma_errslot err;
};

struct vma_writer *vma_writer_new(vma_write_fn fn, void *opaque)
{
	struct vma_writer *w;

	if (!fn)
		return NULL;
	w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	w->fn = fn;
	w->opaque = opaque;
	w->extent_clusters = VMA_BLOCKINFO_PER_EXTENT;
	w->blob_used = 1;
	w->ctime = (int64_t)time(NULL);
	w->md = EVP_MD_CTX_new();
	if (!w->md || RAND_bytes(w->uuid, VMA_UUID_LEN) != 1) {
		vma_writer_free(w);
		return NULL;
	}
	return w;
}

void vma_writer_free(struct vma_writer *w)
{
	unsigned i;

	if (!w)
		return;
	for (i = 0; i < w->nconfigs; i++) {
		free(w->configs[i].name);
		free(w->configs[i].data);
	}
	for (i = 1; i <= w->ndevices; i++)
		free(w->devices[i].name);
	free(w->ext);
	free(w->tree_cl);
	EVP_MD_CTX_free(w->md);
	free(w);
}

/* Refuses calls after a fatal error (keeping that error) or in the wrong state. */
static int check_state(struct vma_writer *w, enum wstate want, const char *what)
{
	static const char *const names[] = { "before start", "after start",
					     "after finish", "after a failure" };

	if (w->state == W_FAILED)
		return -1;
	if (w->state != want)
		return vma_err_set(&w->err, VMA_ERR_USAGE, 0, "%s: not allowed %s",
				   what, names[w->state]);
	return 0;
}

int vma_writer_set_uuid(struct vma_writer *w, const uint8_t uuid[VMA_UUID_LEN])
{
	if (check_state(w, W_SETUP, "set uuid") < 0)
		return -1;
	memcpy(w->uuid, uuid, VMA_UUID_LEN);
	return 0;
}

void vma_writer_set_ctime(struct vma_writer *w, int64_t ctime)
{
	if (w->state == W_SETUP)
		w->ctime = ctime;
}

int vma_writer_set_extent_clusters(struct vma_writer *w, unsigned n)
{
	if (w->state == W_FAILED)
		return -1;
	if (n < 1 || n > VMA_BLOCKINFO_PER_EXTENT)
		return vma_err_set(&w->err, VMA_ERR_USAGE, 0,
				   "extent clusters %u out of range (1..%u)", n,
				   VMA_BLOCKINFO_PER_EXTENT);
	w->extent_clusters = n;
	return 0;
}

/* Reserves blob buffer room (length prefixes included), or fails when the
 * header would outgrow what a strict reader accepts. */
static int reserve_blobs(struct vma_writer *w, const char *what, const char *name,
			 uint64_t bytes)
{
	uint64_t used = w->blob_used + bytes;
	uint64_t hsize = VMA_HEADER_FIXED_SIZE + (used + 511) / 512 * 512;

	if (hsize > VMA_MAX_HEADER_SIZE)
		return vma_err_set(&w->err, VMA_ERR_LIMIT, 0,
				   "%s %s: header would grow to %llu bytes, more than %u",
				   what, name, (unsigned long long)hsize, VMA_MAX_HEADER_SIZE);
	w->blob_used = used;
	return 0;
}

int vma_writer_add_config(struct vma_writer *w, const char *name, const void *data, size_t len)
{
	struct wconfig *c;
	size_t nlen;
	unsigned i;

	if (check_state(w, W_SETUP, "add config") < 0)
		return -1;
	if (!name || !*name || strchr(name, '/') || (!data && len))
		return vma_err_set(&w->err, VMA_ERR_USAGE, 0,
				   "config \"%s\": name must be a non-empty basename",
				   name ? name : "(null)");
	nlen = strlen(name) + 1;
	if (nlen > VMA_MAX_BLOB_LEN)
		return vma_err_set(&w->err, VMA_ERR_LIMIT, 0,
				   "config %.64s...: name longer than %u bytes", name,
				   VMA_MAX_BLOB_LEN - 1);
	if (len > VMA_MAX_BLOB_LEN)
		return vma_err_set(&w->err, VMA_ERR_LIMIT, 0,
				   "config %s: %zu bytes, more than %u", name, len,
				   VMA_MAX_BLOB_LEN);
	if (w->nconfigs >= VMA_MAX_CONFIGS)
		return vma_err_set(&w->err, VMA_ERR_LIMIT, 0,
				   "config %s: more than %u configs", name, VMA_MAX_CONFIGS);
	for (i = 0; i < w->nconfigs; i++)
		if (strcmp(w->configs[i].name, name) == 0)
			return vma_err_set(&w->err, VMA_ERR_USAGE, 0,
					   "config %s: added twice", name);
	c = &w->configs[w->nconfigs];
	c->name = strdup(name);
	c->data = malloc(len ? len : 1);
	if (!c->name || !c->data) {
		free(c->name);
		free(c->data);
		c->name = NULL;
		c->data = NULL;
		return vma_err_set(&w->err, VMA_ERR_NOMEM, ENOMEM, "config %s: out of memory", name);
	}
	if (reserve_blobs(w, "config", name, 2 + (uint64_t)nlen + 2 + len) < 0) {
		free(c->name);
		free(c->data);
		c->name = NULL;
		c->data = NULL;
		return -1;
	}
	if (len)
		memcpy(c->data, data, len);
	c->len = len;
	w->nconfigs++;
	return 0;
}

int vma_writer_add_device(struct vma_writer *w, const char *name, uint64_t size)
{
	struct wdevice *d;
	size_t nlen;
	unsigned i;

	if (check_state(w, W_SETUP, "add device") < 0)
		return -1;
	if (!name || !*name)
		return vma_err_set(&w->err, VMA_ERR_USAGE, 0, "device name is empty");
	nlen = strlen(name) + 1;
	if (nlen > VMA_MAX_BLOB_LEN)
		return vma_err_set(&w->err, VMA_ERR_LIMIT, 0,
				   "device %.64s...: name longer than %u bytes", name,
				   VMA_MAX_BLOB_LEN - 1);
	/* Proxmox reads "vmstate" as a RAM-state stream, not as a disk */
	if (strcmp(name, "vmstate") == 0)
		return vma_err_set(&w->err, VMA_ERR_USAGE, 0,
				   "device vmstate: name reserved by Proxmox for VM state");
	if (size == 0 || size > VMA_MAX_DEVICE_SIZE)
		return vma_err_set(&w->err, VMA_ERR_LIMIT, 0,
				   "device %s: size %llu out of range (1..%llu)", name,
				   (unsigned long long)size,
				   (unsigned long long)VMA_MAX_DEVICE_SIZE);
	if (w->ndevices >= VMA_MAX_DEVICES)
		return vma_err_set(&w->err, VMA_ERR_LIMIT, 0,
				   "device %s: more than %u devices", name, VMA_MAX_DEVICES);
	for (i = 1; i <= w->ndevices; i++)
		if (strcmp(w->devices[i].name, name) == 0)
			return vma_err_set(&w->err, VMA_ERR_USAGE, 0,
					   "device %s: added twice", name);
	d = &w->devices[w->ndevices + 1];
	d->name = strdup(name);
	if (!d->name)
		return vma_err_set(&w->err, VMA_ERR_NOMEM, ENOMEM, "device %s: out of memory", name);
	if (reserve_blobs(w, "device", name, 2 + (uint64_t)nlen) < 0) {
		free(d->name);
		d->name = NULL;
		return -1;
	}
	d->size = size;
	w->ndevices++;
	return (int)w->ndevices;
}

/* Hands buf to the callback; a failure is fatal for the writer. */
static int emit(struct vma_writer *w, const void *buf, size_t len, const char *what)
{
	int rc = w->fn(w->opaque, buf, len);

	if (rc != 0) {
		int e = rc < 0 ? -rc : EIO;

		w->state = W_FAILED;
		return vma_err_set(&w->err, VMA_ERR_IO, e,
				   "write of %s at offset %llu (%zu bytes) failed: %s", what,
				   (unsigned long long)w->bytes, len, strerror(e));
	}
	w->bytes += len;
	return 0;
}

static uint32_t put_blob(uint8_t *blobs, uint32_t *pos, const void *data, size_t len)
{
	uint32_t at = *pos;

	put_le16(blobs + at, (uint16_t)len);
	if (len)
		memcpy(blobs + at + 2, data, len);
	*pos = at + 2 + (uint32_t)len;
	return at;
}

int vma_writer_start(struct vma_writer *w)
{
	uint32_t hsize, pos = 1;
	uint8_t *h, *blobs, md5[VMA_MD5_LEN];
	unsigned i;
	int rc = -1;

	if (check_state(w, W_SETUP, "start") < 0)
		return -1;
	hsize = VMA_HEADER_FIXED_SIZE + (uint32_t)((w->blob_used + 511) / 512 * 512);
	w->ext = malloc(VMA_MAX_EXTENT_SIZE);
	h = calloc(1, hsize);
	if (!h || !w->ext) {
		w->state = W_FAILED;
		vma_err_set(&w->err, VMA_ERR_NOMEM, ENOMEM, "header: out of memory");
		goto out;
	}
	memcpy(h + VMA_H_MAGIC, vma_magic, VMA_MAGIC_LEN);
	put_be32(h + VMA_H_VERSION, 1);
	memcpy(h + VMA_H_UUID, w->uuid, VMA_UUID_LEN);
	put_be64(h + VMA_H_CTIME, (uint64_t)w->ctime);
	put_be32(h + VMA_H_BLOB_OFFSET, VMA_HEADER_FIXED_SIZE);
	put_be32(h + VMA_H_BLOB_SIZE, (uint32_t)w->blob_used);
	put_be32(h + VMA_H_HEADER_SIZE, hsize);
	blobs = h + VMA_HEADER_FIXED_SIZE;
	/* Proxmox's order: each config's name then data, then device names */
	for (i = 0; i < w->nconfigs; i++) {
		const struct wconfig *c = &w->configs[i];

		put_be32(h + VMA_H_CONFIG_NAMES + 4 * i,
			     put_blob(blobs, &pos, c->name, strlen(c->name) + 1));
		put_be32(h + VMA_H_CONFIG_DATA + 4 * i, put_blob(blobs, &pos, c->data, c->len));
	}
	for (i = 1; i <= w->ndevices; i++) {
		const struct wdevice *d = &w->devices[i];
		uint8_t *e = h + VMA_H_DEV_INFO + VMA_H_DEV_ENTRY * i;

		put_be32(e, put_blob(blobs, &pos, d->name, strlen(d->name) + 1));
		put_be64(e + 8, d->size);
	}
	if (vma_md5(w->md, h, hsize, md5) < 0) {
		w->state = W_FAILED;
		vma_err_set(&w->err, VMA_ERR_NOMEM, 0, "header: MD5 failed in libcrypto");
		goto out;
	}
	memcpy(h + VMA_H_MD5, md5, VMA_MD5_LEN);
	if (w->tree) {
		if (!(w->tree_cl = malloc(VMA_CLUSTER_SIZE))) {
			w->state = W_FAILED;
			vma_err_set(&w->err, VMA_ERR_NOMEM, ENOMEM, "header: out of memory");
			goto out;
		}
		vma_tree_raw(w->tree, h, hsize);
	}
	w->ext_len = VMA_EXTENT_HEADER_SIZE;
	w->state = W_STARTED;
	rc = emit(w, h, hsize, "header");
out:
	free(h);
	return rc;
}

/* The buffered extent into the tree: its header, then each stored
 * cluster's digest, given or computed from its packed blocks. */
static int tree_extent(struct vma_writer *w)
{
	const uint8_t *p = w->ext + VMA_EXTENT_HEADER_SIZE;

	vma_tree_raw(w->tree, w->ext, VMA_EXTENT_HEADER_SIZE);
	for (unsigned i = 0; i < w->nslots; i++) {
		uint16_t mask = (uint16_t)(w->blockinfo[i] >> 48);
		unsigned dev = (unsigned)(w->blockinfo[i] >> 32) & 0xffu;
		uint64_t left = w->devices[dev].size - (w->blockinfo[i] & 0xffffffffu) *
			(uint64_t)VMA_CLUSTER_SIZE;
		uint32_t dev_bytes = left < VMA_CLUSTER_SIZE ? (uint32_t)left : VMA_CLUSTER_SIZE;

		if (!mask)
			continue;
		if (!w->slot_has[i]) {
			memset(w->tree_cl, 0, VMA_CLUSTER_SIZE);
			for (unsigned b = 0; b < VMA_BLOCKS_PER_CLUSTER; b++)
				if (mask & (1u << b)) {
					memcpy(w->tree_cl + b * VMA_BLOCK_SIZE, p, VMA_BLOCK_SIZE);
					p += VMA_BLOCK_SIZE;
				}
			if (vma_tree_cluster_digest(w->tree_cl, dev_bytes, w->slot_digest[i]) < 0)
				return -1;
		} else {
			p += (size_t)__builtin_popcount(mask) * VMA_BLOCK_SIZE;
		}
		vma_tree_cluster(w->tree, w->slot_digest[i]);
	}
	return 0;
}

/* Writes the buffered extent (possibly empty) in one callback call. */
static int flush_extent(struct vma_writer *w)
{
	uint8_t *e = w->ext, md5[VMA_MD5_LEN];
	unsigned i;

	memset(e, 0, VMA_EXTENT_HEADER_SIZE);
	memcpy(e + VMA_E_MAGIC, vma_extent_magic, VMA_MAGIC_LEN);
	put_be16(e + VMA_E_BLOCK_COUNT,
		     (uint16_t)((w->ext_len - VMA_EXTENT_HEADER_SIZE) / VMA_BLOCK_SIZE));
	memcpy(e + VMA_E_UUID, w->uuid, VMA_UUID_LEN);
	for (i = 0; i < w->nslots; i++)
		put_be64(e + VMA_E_BLOCKINFO + 8 * i, w->blockinfo[i]);
	if (vma_md5(w->md, e, VMA_EXTENT_HEADER_SIZE, md5) < 0) {
		w->state = W_FAILED;
		return vma_err_set(&w->err, VMA_ERR_NOMEM, 0, "extent: MD5 failed in libcrypto");
	}
	memcpy(e + VMA_E_MD5, md5, VMA_MD5_LEN);
	if (w->tree && tree_extent(w) < 0) {
		w->state = W_FAILED;
		return vma_err_set(&w->err, VMA_ERR_NOMEM, 0, "extent: SHA-256 failed in libcrypto");
	}
	if (emit(w, e, w->ext_len, "extent") < 0)
		return -1;
	w->extents++;
	w->nslots = 0;
	w->ext_len = VMA_EXTENT_HEADER_SIZE;
	return 0;
}

/* Common checks of add_cluster*: returns the bytes of the device inside
 * this cluster (1..65536) or 0 on error. Flushes a full extent first. */
static uint32_t cluster_prepare(struct vma_writer *w, unsigned dev_id, uint32_t cluster_num)
{
	uint64_t start, left;

	if (check_state(w, W_STARTED, "add cluster") < 0)
		return 0;
	if (dev_id < 1 || dev_id > w->ndevices) {
		vma_err_set(&w->err, VMA_ERR_USAGE, 0, "cluster %u: no device %u", cluster_num,
			    dev_id);
		return 0;
	}
	start = (uint64_t)cluster_num * VMA_CLUSTER_SIZE;
	if (start >= w->devices[dev_id].size) {
		vma_err_set(&w->err, VMA_ERR_USAGE, 0,
			    "device %s: cluster %u is past the device end (size %llu)",
			    w->devices[dev_id].name, cluster_num,
			    (unsigned long long)w->devices[dev_id].size);
		return 0;
	}
	if (w->nslots >= w->extent_clusters && flush_extent(w) < 0)
		return 0;
	left = w->devices[dev_id].size - start;
	return left < VMA_CLUSTER_SIZE ? (uint32_t)left : VMA_CLUSTER_SIZE;
}

static int cluster_commit(struct vma_writer *w, unsigned dev_id, uint32_t cluster_num,
			  uint16_t mask, const uint8_t *digest)
{
	w->slot_has[w->nslots] = digest != NULL;
	if (digest)
		memcpy(w->slot_digest[w->nslots], digest, VMA_TREE_LEN);
	w->blockinfo[w->nslots++] = vma_blockinfo(mask, dev_id, cluster_num);
	w->stored_blocks += (uint64_t)__builtin_popcount(mask);
	if (w->nslots >= w->extent_clusters)
		return flush_extent(w);
	return 0;
}

int vma_writer_add_cluster(struct vma_writer *w, unsigned dev_id, uint32_t cluster_num,
			   const void *data, size_t len)
{
	return vma_writer_add_cluster_digest(w, dev_id, cluster_num, data, len, NULL);
}

int vma_writer_add_cluster_digest(struct vma_writer *w, unsigned dev_id, uint32_t cluster_num,
				  const void *data, size_t len, const uint8_t *digest)
{
	const uint8_t *src = data;
	uint32_t dev_bytes, avail;
	uint16_t mask = 0;
	unsigned i;

	if (w->state == W_FAILED)
		return -1;
	if (len > VMA_CLUSTER_SIZE)
		return vma_err_set(&w->err, VMA_ERR_USAGE, 0,
				   "cluster %u: %zu bytes, more than a cluster", cluster_num, len);
	dev_bytes = cluster_prepare(w, dev_id, cluster_num);
	if (!dev_bytes)
		return -1;
	/* bytes past the device end are never stored, whatever data holds */
	avail = src ? (uint32_t)(len < dev_bytes ? len : dev_bytes) : 0;
	for (i = 0; i < VMA_BLOCKS_PER_CLUSTER && i * VMA_BLOCK_SIZE < avail; i++) {
		uint32_t off = i * VMA_BLOCK_SIZE;
		uint32_t n = avail - off < VMA_BLOCK_SIZE ? avail - off : VMA_BLOCK_SIZE;
		uint8_t *dst = w->ext + w->ext_len;

		if (vma_is_zero(src + off, n))
			continue;
		memcpy(dst, src + off, n);
		if (n < VMA_BLOCK_SIZE)
			memset(dst + n, 0, VMA_BLOCK_SIZE - n);
		w->ext_len += VMA_BLOCK_SIZE;
		mask |= (uint16_t)(1u << i);
	}
	/* the caller's digest covers len bytes: the tree's, the device's */
	return cluster_commit(w, dev_id, cluster_num, mask,
			      src && len == dev_bytes ? digest : NULL);
}

int vma_writer_add_cluster_masked(struct vma_writer *w, unsigned dev_id, uint32_t cluster_num,
				  uint16_t mask, const void *blocks)
{
	const uint8_t *src = blocks;
	uint32_t dev_bytes;
	unsigned i, in_dev;

	if (w->state == W_FAILED)
		return -1;
	if (mask && !blocks)
		return vma_err_set(&w->err, VMA_ERR_USAGE, 0,
				   "cluster %u: mask %#x without blocks", cluster_num, mask);
	dev_bytes = cluster_prepare(w, dev_id, cluster_num);
	if (!dev_bytes)
		return -1;
	in_dev = (dev_bytes + VMA_BLOCK_SIZE - 1) / VMA_BLOCK_SIZE;
	if (in_dev < VMA_BLOCKS_PER_CLUSTER && (mask >> in_dev) != 0)
		return vma_err_set(&w->err, VMA_ERR_USAGE, 0,
				   "device %s: mask %#06x of cluster %u stores blocks past the device end",
				   w->devices[dev_id].name, mask, cluster_num);
	for (i = 0; i < VMA_BLOCKS_PER_CLUSTER; i++) {
		uint32_t off = i * VMA_BLOCK_SIZE;
		uint8_t *dst = w->ext + w->ext_len;

		if (!(mask & (1u << i)))
			continue;
		memcpy(dst, src, VMA_BLOCK_SIZE);
		if (dev_bytes - off < VMA_BLOCK_SIZE)
			memset(dst + (dev_bytes - off), 0, VMA_BLOCK_SIZE - (dev_bytes - off));
		src += VMA_BLOCK_SIZE;
		w->ext_len += VMA_BLOCK_SIZE;
	}
	return cluster_commit(w, dev_id, cluster_num, mask, NULL);
}

int vma_writer_finish(struct vma_writer *w)
{
	if (check_state(w, W_STARTED, "finish") < 0)
		return -1;
	if ((w->nslots > 0 || w->extents == 0) && flush_extent(w) < 0)
		return -1;
	w->state = W_FINISHED;
	return 0;
}

void vma_writer_set_tree(struct vma_writer *w, struct vma_tree *t)
{
	w->tree = t;
}

uint64_t vma_writer_bytes(const struct vma_writer *w)
{
	return w->bytes;
}

uint64_t vma_writer_stored_blocks(const struct vma_writer *w)
{
	return w->stored_blocks;
}

void vma_writer_uuid(const struct vma_writer *w, uint8_t out[VMA_UUID_LEN])
{
	memcpy(out, w->uuid, VMA_UUID_LEN);
}

enum vma_err vma_writer_errcode(const struct vma_writer *w)
{
	return w->err.code;
}

int vma_writer_sys_errno(const struct vma_writer *w)
{
	return w->err.sys_errno;
}

const char *vma_writer_error(const struct vma_writer *w)
{
	return w->err.msg;
}
