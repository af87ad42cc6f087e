/* vma.h: the VMA archive format (Proxmox VE vzdump, version 1) as a small
 * streaming library over read/write callbacks; it never opens files or prints. */
#ifndef VMABACK_VMA_H
#define VMABACK_VMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define VMA_MAGIC_LEN 4
#define VMA_BLOCK_SIZE 4096u
#define VMA_CLUSTER_SIZE 65536u
#define VMA_BLOCKS_PER_CLUSTER 16u
#define VMA_HEADER_FIXED_SIZE 12288u
#define VMA_EXTENT_HEADER_SIZE 512u
#define VMA_BLOCKINFO_PER_EXTENT 59u
#define VMA_MAX_EXTENT_SIZE (VMA_EXTENT_HEADER_SIZE + VMA_BLOCKINFO_PER_EXTENT * VMA_CLUSTER_SIZE)
#define VMA_MAX_DEVICES 254u   /* dev_id 1..254; 0 and 255 are never used */
#define VMA_MAX_CONFIGS 256u
#define VMA_MAX_BLOB_LEN 65535u
#define VMA_MAX_HEADER_SIZE (4u * 1024u * 1024u) /* strict reader limit */
#define VMA_UUID_LEN 16
/* cluster_num is 32 bits: the largest device a VMA archive can describe */
#define VMA_MAX_DEVICE_SIZE ((uint64_t)UINT32_MAX * VMA_CLUSTER_SIZE + VMA_CLUSTER_SIZE)

/* Error classes; each check of vma-format.md section 5 has its own. */
enum vma_err {
	VMA_OK = 0,
	VMA_ERR_IO,              /* the callback failed (errno in vma_*_sys_errno) */
	VMA_ERR_NOMEM,
	VMA_ERR_USAGE,           /* API misuse: bad argument, wrong call order */
	VMA_ERR_LIMIT,           /* too many devices/configs, blob too long, size too big */
	VMA_ERR_HEADER_SHORT,    /* stream ended inside the header */
	VMA_ERR_HEADER_MAGIC,    /* not "VMA\0" */
	VMA_ERR_HEADER_VERSION,  /* version != 1 */
	VMA_ERR_HEADER_SIZE,     /* header_size <= 12288, not a multiple of 512, too big */
	VMA_ERR_HEADER_MD5,      /* header checksum mismatch */
	VMA_ERR_BLOB_BOUNDS,     /* blob buffer outside the header */
	VMA_ERR_BLOB_PTR,        /* a config or device name pointer does not resolve */
	VMA_ERR_BLOB_STRING,     /* a name blob is not a NUL-terminated string */
	VMA_ERR_EXTENT_SHORT,    /* stream ended inside an extent */
	VMA_ERR_EXTENT_MD5,      /* extent header checksum mismatch */
	VMA_ERR_EXTENT_UUID,     /* extent uuid differs from the header's */
	VMA_ERR_EXTENT_MAGIC,    /* not "VMAE", or reserved field != 0 */
	VMA_ERR_EXTENT_DEV,      /* blockinfo names a device that does not exist */
	VMA_ERR_EXTENT_DUP,      /* a cluster appears twice for one device */
	VMA_ERR_EXTENT_BEYOND,   /* a stored block starts at or past the device end */
	VMA_ERR_EXTENT_COUNT,    /* masks do not account for block_count exactly */
	VMA_ERR_MISSING_CLUSTER, /* a cluster of a device was never seen */
	VMA_ERR_DEV_DUP,         /* two devices of the header have one name */
	VMA_ERR__COUNT
};

/* Short stable name of an error class, e.g. "extent-md5" (for tests, JSON). */
const char *vma_err_name(enum vma_err e);

/* Callbacks. write: write all len bytes or fail; return 0 or a negative errno.
 * read: return bytes read (may be short; 0 only at end of stream) or a negative errno. */
typedef int (*vma_write_fn)(void *opaque, const void *buf, size_t len);
typedef ssize_t (*vma_read_fn)(void *opaque, void *buf, size_t len);

/* ---------------------------------------------------------------- writer */

struct vma_writer;

struct vma_writer *vma_writer_new(vma_write_fn fn, void *opaque);
void vma_writer_free(struct vma_writer *w); /* NULL is a no-op */

/* Before vma_writer_start(). The uuid defaults to 16 random bytes, ctime to now. */
int vma_writer_set_uuid(struct vma_writer *w, const uint8_t uuid[VMA_UUID_LEN]);
void vma_writer_set_ctime(struct vma_writer *w, int64_t ctime);
/* Clusters per extent before a flush, 1..59 (default 59; Proxmox uses 58). */
int vma_writer_set_extent_clusters(struct vma_writer *w, unsigned n);
/* A config blob: name (stored with its NUL) and raw data of at most 65535 bytes. */
int vma_writer_add_config(struct vma_writer *w, const char *name, const void *data, size_t len);
/* A device; size is what the header declares (> 0). Returns its dev_id (1..254)
 * or -1. The name must be non-empty and at most 65534 bytes. */
int vma_writer_add_device(struct vma_writer *w, const char *name, uint64_t size);
/* Writes the header. After this no config or device can be added. */
int vma_writer_start(struct vma_writer *w);
/* Adds one cluster. data holds len bytes of the cluster (len <= 65536; bytes
 * from len on are taken as zero), or is NULL for an all-zero cluster. Blocks
 * that are all zero or wholly past the device end are not stored; a block
 * straddling the end is stored with its tail zeroed. Clusters may come in any
 * order; the writer does not check duplicates. */
int vma_writer_add_cluster(struct vma_writer *w, unsigned dev_id, uint32_t cluster_num,
			   const void *data, size_t len);
/* Like add_cluster, but the caller gives the mask of stored blocks and the
 * stored blocks packed (popcount(mask) * 4096 bytes). Used to copy clusters
 * from one archive to another without re-scanning. */
int vma_writer_add_cluster_masked(struct vma_writer *w, unsigned dev_id, uint32_t cluster_num,
				  uint16_t mask, const void *blocks);
/* Flushes the last extent (or writes one empty extent if none was written). */
int vma_writer_finish(struct vma_writer *w);

/* Bytes handed to the write callback so far. */
uint64_t vma_writer_bytes(const struct vma_writer *w);
/* 4 KiB blocks stored so far (added clusters, flushed or not). */
uint64_t vma_writer_stored_blocks(const struct vma_writer *w);
void vma_writer_uuid(const struct vma_writer *w, uint8_t out[VMA_UUID_LEN]);
enum vma_err vma_writer_errcode(const struct vma_writer *w);
int vma_writer_sys_errno(const struct vma_writer *w);
const char *vma_writer_error(const struct vma_writer *w);

/* ------------------------------------------------------ vma-tree-1 digest
 * An archive digest over the cluster digests (vma_tree.c says what it
 * covers): a writer given a tree feeds it as it writes, taking each
 * cluster's SHA-256 from the caller where it has it; vma_tree_of_stream
 * computes it from an archive's bytes. */
#define VMA_TREE_LEN 32u
#define VMA_TREE_NAME "vma-tree-1"

struct vma_tree;

struct vma_tree *vma_tree_new(void);
void vma_tree_free(struct vma_tree *t);
void vma_tree_raw(struct vma_tree *t, const void *buf, size_t len);
void vma_tree_cluster(struct vma_tree *t, const uint8_t digest[VMA_TREE_LEN]);
/* 0, or -1 when libcrypto failed at some point. */
int vma_tree_final(struct vma_tree *t, uint8_t out[VMA_TREE_LEN]);
/* SHA-256 of the first dev_bytes bytes of a cluster: 0 or -1. */
int vma_tree_cluster_digest(const uint8_t *cluster, uint32_t dev_bytes,
			    uint8_t out[VMA_TREE_LEN]);
/* The digest of a whole plain VMA stream read through fn; *size: the bytes
 * read. 0; 1 when the bytes are no archive a writer made (truncated,
 * extended, not VMA: no digest); or a negative errno (read failure, no memory). */
int vma_tree_of_stream(vma_read_fn fn, void *opaque, uint8_t out[VMA_TREE_LEN],
		       uint64_t *size);
/* Before vma_writer_start: the writer feeds t (owned by the caller). */
void vma_writer_set_tree(struct vma_writer *w, struct vma_tree *t);
/* add_cluster with the SHA-256 of the cluster's len bytes, for the tree
 * (NULL: the writer computes it when it has a tree). */
int vma_writer_add_cluster_digest(struct vma_writer *w, unsigned dev_id, uint32_t cluster_num,
				  const void *data, size_t len, const uint8_t *digest);

/* ---------------------------------------------------------------- reader */

struct vma_reader;

struct vma_device_info {
	unsigned dev_id;
	const char *name;   /* NUL-terminated, owned by the reader */
	uint64_t size;      /* as declared in the header */
};

struct vma_config_info {
	const char *name;   /* NUL-terminated */
	const uint8_t *data;
	size_t len;
};

/* One cluster as read from an extent. */
struct vma_cluster {
	unsigned dev_id;
	uint32_t cluster_num;
	uint16_t mask;          /* bit i set: block i is stored (bytes i*4096..) */
	const uint8_t *data;    /* 65536 bytes; blocks not in the mask are zero */
};

struct vma_reader *vma_reader_new(vma_read_fn fn, void *opaque);
void vma_reader_free(struct vma_reader *r);

/* Reads and checks the whole header. Returns 0 or -1. */
int vma_reader_read_header(struct vma_reader *r);

void vma_reader_uuid(const struct vma_reader *r, uint8_t out[VMA_UUID_LEN]);
int64_t vma_reader_ctime(const struct vma_reader *r);
uint32_t vma_reader_header_size(const struct vma_reader *r);
/* Devices in dev_id order; index 0..count-1 (not the dev_id). */
unsigned vma_reader_device_count(const struct vma_reader *r);
const struct vma_device_info *vma_reader_device(const struct vma_reader *r, unsigned index);
/* By dev_id (1..255); NULL when no such device. */
const struct vma_device_info *vma_reader_device_by_id(const struct vma_reader *r, unsigned dev_id);
/* Config blobs in slot order. */
unsigned vma_reader_config_count(const struct vma_reader *r);
const struct vma_config_info *vma_reader_config(const struct vma_reader *r, unsigned index);
const struct vma_config_info *vma_reader_config_by_name(const struct vma_reader *r, const char *name);

/* Next cluster of the stream, after every check of its extent. Returns 1 with
 * *c filled (valid until the next call), 0 at the normal end of the stream,
 * -1 on error. Clusters come in archive order. */
int vma_reader_next_cluster(struct vma_reader *r, struct vma_cluster *c);

/* Index building: the next extent's header and blockinfo, with every check
 * of vma_reader_next_cluster but those of the data, which skip(opaque, len)
 * passes over (0, -ENODATA when the stream ends first, or another -errno).
 * Returns 1 with *x filled, 0 at the end, -1. Not to be mixed with
 * vma_reader_next_cluster on one reader. */
typedef int (*vma_skip_fn)(void *opaque, uint64_t len);
struct vma_extent_slot {
	unsigned dev_id;
	uint32_t cluster_num;
	uint16_t mask;          /* stored blocks, packed from data_offset on */
	uint64_t data_offset;   /* stream offset of the first stored block */
};
struct vma_extent {
	uint64_t offset;        /* stream offset of the extent header */
	unsigned nslots;
	struct vma_extent_slot slot[VMA_BLOCKINFO_PER_EXTENT];
};
int vma_reader_next_extent(struct vma_reader *r, vma_skip_fn skip, struct vma_extent *x);

/* After the end: how many distinct clusters of dev_id were seen, and whether
 * every cluster 0..ceil(size/65536)-1 was. check_complete sets
 * VMA_ERR_MISSING_CLUSTER naming the first missing cluster; dev_id 0 checks
 * every device. */
uint64_t vma_reader_clusters_seen(const struct vma_reader *r, unsigned dev_id);
int vma_reader_check_complete(struct vma_reader *r, unsigned dev_id);

/* Bytes of the stream consumed so far (header included). */
uint64_t vma_reader_offset(const struct vma_reader *r);
enum vma_err vma_reader_errcode(const struct vma_reader *r);
int vma_reader_sys_errno(const struct vma_reader *r);
const char *vma_reader_error(const struct vma_reader *r);

/* Cluster count of a device of this size: ceil(size / 65536). */
static inline uint64_t vma_clusters_of(uint64_t size)
{
	return size / VMA_CLUSTER_SIZE + (size % VMA_CLUSTER_SIZE != 0);
}

#endif
