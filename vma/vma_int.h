/* vma_int.h: private helpers shared by the VMA writer and reader: the
 * on-disk field offsets of vma-format.md, the error slot and MD5. */
#ifndef VMABACK_VMA_INT_H
#define VMABACK_VMA_INT_H

#ifndef VB_MODULE_vma
#error "vma/vma_int.h is private to vma/: include vma/vma.h"
#endif

#include <stdarg.h>
#include <stdint.h>
#include <string.h>

#include <openssl/evp.h>

#include "common/byteorder.h"
#include "vma/vma.h"

/* Header fields (vma-format.md section 2). */
#define VMA_H_MAGIC 0u
#define VMA_H_VERSION 4u
#define VMA_H_UUID 8u
#define VMA_H_CTIME 24u
#define VMA_H_MD5 32u
#define VMA_H_BLOB_OFFSET 48u
#define VMA_H_BLOB_SIZE 52u
#define VMA_H_HEADER_SIZE 56u
#define VMA_H_CONFIG_NAMES 2044u
#define VMA_H_CONFIG_DATA 3068u
#define VMA_H_DEV_INFO 4096u
#define VMA_H_DEV_ENTRY 32u
#define VMA_DEV_SLOTS 256u

/* Extent header fields (section 4). */
#define VMA_E_MAGIC 0u
#define VMA_E_RESERVED 4u
#define VMA_E_BLOCK_COUNT 6u
#define VMA_E_UUID 8u
#define VMA_E_MD5 24u
#define VMA_E_BLOCKINFO 40u
#define VMA_MD5_LEN 16u
#define VMA_MAX_EXTENT_BLOCKS (VMA_BLOCKINFO_PER_EXTENT * VMA_BLOCKS_PER_CLUSTER)

extern const uint8_t vma_magic[VMA_MAGIC_LEN];
extern const uint8_t vma_extent_magic[VMA_MAGIC_LEN];

/* Blockinfo word: mask(63..48) reserved(47..40) dev_id(39..32) cluster(31..0). */
static inline uint64_t vma_blockinfo(uint16_t mask, unsigned dev_id, uint32_t cluster)
{
	return (uint64_t)mask << 48 | (uint64_t)(dev_id & 0xffu) << 32 | cluster;
}

/* The error slot of a reader or writer. */
struct vma_errslot {
	enum vma_err code;
	int sys_errno;
	char msg[512];
};

/* Fills the slot and returns -1. */
int vma_err_set(struct vma_errslot *e, enum vma_err code, int sys_errno,
		const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* MD5 of len bytes into out; the context is reused. Returns 0 or -1. */
int vma_md5(EVP_MD_CTX *ctx, const void *data, size_t len,
	    uint8_t out[VMA_MD5_LEN]);

/* The MD5 of buf[0, len) as if the 16 bytes at md5_off were zero; the field
 * itself is left as it was. Returns 0 or -1. */
int vma_md5_zeroed(EVP_MD_CTX *ctx, uint8_t *buf, size_t len, size_t md5_off,
		   uint8_t out[VMA_MD5_LEN]);

extern const uint8_t vma_zero_block[VMA_BLOCK_SIZE];

static inline int vma_is_zero(const void *p, size_t len)
{
	/* len <= VMA_BLOCK_SIZE; glibc's memcmp is vectorised */
	return memcmp(p, vma_zero_block, len) == 0;
}

#endif
