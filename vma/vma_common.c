/* vma_common.c: what the VMA writer and reader share: error names and the
 * error slot, magic numbers, the zero block and MD5 through libcrypto. */
#include <stdio.h>

#include "vma/vma_int.h"

const uint8_t vma_magic[VMA_MAGIC_LEN] = { 'V', 'M', 'A', 0 };
const uint8_t vma_extent_magic[VMA_MAGIC_LEN] = { 'V', 'M', 'A', 'E' };
const uint8_t vma_zero_block[VMA_BLOCK_SIZE];

static const char *const err_names[VMA_ERR__COUNT] = {
	[VMA_OK] = "ok",
	[VMA_ERR_IO] = "io",
	[VMA_ERR_NOMEM] = "nomem",
	[VMA_ERR_USAGE] = "usage",
	[VMA_ERR_LIMIT] = "limit",
	[VMA_ERR_HEADER_SHORT] = "header-short",
	[VMA_ERR_HEADER_MAGIC] = "header-magic",
	[VMA_ERR_HEADER_VERSION] = "header-version",
	[VMA_ERR_HEADER_SIZE] = "header-size",
	[VMA_ERR_HEADER_MD5] = "header-md5",
	[VMA_ERR_BLOB_BOUNDS] = "blob-bounds",
	[VMA_ERR_BLOB_PTR] = "blob-ptr",
	[VMA_ERR_BLOB_STRING] = "blob-string",
	[VMA_ERR_EXTENT_SHORT] = "extent-short",
	[VMA_ERR_EXTENT_MD5] = "extent-md5",
	[VMA_ERR_EXTENT_UUID] = "extent-uuid",
	[VMA_ERR_EXTENT_MAGIC] = "extent-magic",
	[VMA_ERR_EXTENT_DEV] = "extent-dev",
	[VMA_ERR_EXTENT_DUP] = "extent-dup",
	[VMA_ERR_EXTENT_BEYOND] = "extent-beyond",
	[VMA_ERR_EXTENT_COUNT] = "extent-count",
	[VMA_ERR_MISSING_CLUSTER] = "missing-cluster",
	[VMA_ERR_DEV_DUP] = "dev-dup",
};

const char *vma_err_name(enum vma_err e)
{
	if ((unsigned)e >= VMA_ERR__COUNT)
		return "unknown";
	return err_names[e];
}

int vma_err_set(struct vma_errslot *e, enum vma_err code, int sys_errno,
		const char *fmt, ...)
{
	va_list ap;

	e->code = code;
	e->sys_errno = sys_errno;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	return -1;
}

int vma_md5(EVP_MD_CTX *ctx, const void *data, size_t len, uint8_t out[VMA_MD5_LEN])
{
	unsigned int outlen = 0;

	if (EVP_DigestInit_ex(ctx, EVP_md5(), NULL) != 1 ||
	    EVP_DigestUpdate(ctx, data, len) != 1 ||
	    EVP_DigestFinal_ex(ctx, out, &outlen) != 1 || outlen != VMA_MD5_LEN)
		return -1;
	return 0;
}

int vma_md5_zeroed(EVP_MD_CTX *ctx, uint8_t *buf, size_t len, size_t md5_off,
		   uint8_t out[VMA_MD5_LEN])
{
	uint8_t saved[VMA_MD5_LEN];
	int rc;

	memcpy(saved, buf + md5_off, VMA_MD5_LEN);
	memset(buf + md5_off, 0, VMA_MD5_LEN);
	rc = vma_md5(ctx, buf, len, out);
	memcpy(buf + md5_off, saved, VMA_MD5_LEN);
	return rc;
}
