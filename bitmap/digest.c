/* digest.c: cluster digests (SHA-256 via libcrypto) and the digest map
 * stream: a buffered writer and a pipe-safe, checking reader. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "bitmap/bitmap.h"
#include "bitmap/bitmap_int.h"

#define DIGEST_BUF_SIZE 65536u

int digest_cluster(const void *data, size_t len, uint8_t out[DIGEST_LEN])
{
	unsigned int n = 0;

	if (!EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) || n != DIGEST_LEN) {
		memset(out, 0, DIGEST_LEN);
		return BITMAP_ERR_NOMEM;
	}
	return BITMAP_OK;
}

static EVP_MD_CTX *sha256_ctx_new(void)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	if (ctx && !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) {
		EVP_MD_CTX_free(ctx);
		ctx = NULL;
	}
	return ctx;
}

/* ------------------------------------------------------------ writer */

struct digest_writer {
	digest_write_fn fn;
	void *opaque;
	EVP_MD_CTX *ctx;       /* over everything written before the trailer */
	uint64_t clusters, added;
	int err;               /* sticky: the stream is broken */
	bool finished;
	size_t len;
	uint8_t buf[DIGEST_BUF_SIZE];
};

struct digest_writer *digest_writer_new(uint64_t drive_size, digest_write_fn fn, void *opaque)
{
	struct digest_writer *w = calloc(1, sizeof(*w));

	if (!w)
		return NULL;
	w->ctx = sha256_ctx_new();
	if (!w->ctx) {
		free(w);
		return NULL;
	}
	w->fn = fn;
	w->opaque = opaque;
	w->clusters = bitmap_clusters(drive_size);
	memcpy(w->buf, DIGEST_MAGIC, 4);
	put_le32(w->buf + 4, DIGEST_VERSION);
	put_le64(w->buf + 8, drive_size);
	put_le64(w->buf + 16, w->clusters);
	w->len = DIGEST_HDR_LEN;
	return w;
}

static int writer_flush(struct digest_writer *w)
{
	if (!w->len)
		return BITMAP_OK;
	if (!EVP_DigestUpdate(w->ctx, w->buf, w->len))
		return w->err = BITMAP_ERR_NOMEM;
	if (w->fn(w->opaque, w->buf, w->len) < 0)
		return w->err = BITMAP_ERR_IO;
	w->len = 0;
	return BITMAP_OK;
}

int digest_writer_add(struct digest_writer *w, const uint8_t digest[DIGEST_LEN])
{
	if (w->err)
		return w->err;
	if (w->finished || w->added >= w->clusters)
		return BITMAP_ERR_RANGE;
	memcpy(w->buf + w->len, digest, DIGEST_LEN);
	w->len += DIGEST_LEN;
	w->added++;
	if (w->len + DIGEST_LEN > sizeof(w->buf))
		return writer_flush(w);
	return BITMAP_OK;
}

int digest_writer_finish(struct digest_writer *w, uint8_t root[DIGEST_LEN])
{
	uint8_t sum[DIGEST_LEN];
	unsigned int n = 0;
	int rc;

	if (w->err)
		return w->err;
	if (w->finished || w->added != w->clusters)
		return BITMAP_ERR_RANGE;
	rc = writer_flush(w);
	if (rc != BITMAP_OK)
		return rc;
	if (!EVP_DigestFinal_ex(w->ctx, sum, &n) || n != DIGEST_LEN)
		return w->err = BITMAP_ERR_NOMEM;
	if (w->fn(w->opaque, sum, DIGEST_LEN) < 0)
		return w->err = BITMAP_ERR_IO;
	w->finished = true;
	if (root)
		memcpy(root, sum, DIGEST_LEN);
	return BITMAP_OK;
}

void digest_writer_free(struct digest_writer *w)
{
	if (!w)
		return;
	EVP_MD_CTX_free(w->ctx);
	free(w);
}

/* ------------------------------------------------------------ reader */

enum reader_state { R_NEW, R_BODY, R_DONE };

struct digest_reader {
	digest_read_fn fn;
	void *opaque;
	EVP_MD_CTX *ctx;
	enum reader_state state;
	int err;                  /* sticky */
	uint64_t clusters, idx;
	uint8_t root[DIGEST_LEN];
	/* buf[pos, len) is read but not consumed; buf[hpos, pos) is consumed
	 * but not yet hashed. Everything consumed before the trailer is hashed. */
	size_t len, pos, hpos;
	uint8_t buf[DIGEST_BUF_SIZE];
};

struct digest_reader *digest_reader_new(digest_read_fn fn, void *opaque)
{
	struct digest_reader *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->ctx = sha256_ctx_new();
	if (!r->ctx) {
		free(r);
		return NULL;
	}
	r->fn = fn;
	r->opaque = opaque;
	return r;
}

static int reader_hash_consumed(struct digest_reader *r)
{
	if (r->pos > r->hpos && !EVP_DigestUpdate(r->ctx, r->buf + r->hpos, r->pos - r->hpos))
		return BITMAP_ERR_NOMEM;
	r->hpos = r->pos;
	return BITMAP_OK;
}

/* One read, retrying EINTR: bytes read, 0 at EOF, or BITMAP_ERR_IO. */
static ssize_t reader_read(struct digest_reader *r, uint8_t *buf, size_t len)
{
	ssize_t n;

	do
		n = r->fn(r->opaque, buf, len);
	while (n == -EINTR);
	if (n < 0 || (size_t)n > len)
		return BITMAP_ERR_IO;
	return n;
}

/* Makes at least need bytes available at buf[pos], reading as much as the
 * buffer holds so small reads stay rare. */
static int reader_fill(struct digest_reader *r, size_t need)
{
	while (r->len - r->pos < need) {
		ssize_t n;

		if (r->pos > 0) {
			int rc = reader_hash_consumed(r);

			if (rc != BITMAP_OK)
				return rc;
			memmove(r->buf, r->buf + r->pos, r->len - r->pos);
			r->len -= r->pos;
			r->pos = r->hpos = 0;
		}
		n = reader_read(r, r->buf + r->len, sizeof(r->buf) - r->len);
		if (n < 0)
			return (int)n;
		if (n == 0)
			return BITMAP_ERR_TRUNCATED;
		r->len += (size_t)n;
	}
	return BITMAP_OK;
}

static int reader_header(struct digest_reader *r, uint64_t *drive_size)
{
	const uint8_t *h;
	int rc;

	rc = reader_fill(r, ENC_MIN_LEN);
	if (rc != BITMAP_OK)
		return rc;
	h = r->buf + r->pos;
	if (memcmp(h, DIGEST_MAGIC, 4) != 0)
		return BITMAP_ERR_MAGIC;
	if (get_le32(h + 4) != DIGEST_VERSION)
		return BITMAP_ERR_VERSION;
	rc = reader_fill(r, DIGEST_HDR_LEN);
	if (rc != BITMAP_OK)
		return rc;
	h = r->buf + r->pos;
	*drive_size = get_le64(h + 8);
	r->clusters = get_le64(h + 16);
	if (r->clusters != bitmap_clusters(*drive_size))
		return BITMAP_ERR_CORRUPT;
	r->pos += DIGEST_HDR_LEN;
	return BITMAP_OK;
}

int digest_reader_start(struct digest_reader *r, uint64_t *drive_size, uint64_t *clusters)
{
	uint64_t size = 0;
	int rc;

	if (r->err)
		return r->err;
	if (r->state != R_NEW)
		return BITMAP_ERR_RANGE;
	rc = reader_header(r, &size);
	if (rc != BITMAP_OK)
		return r->err = rc;
	r->state = R_BODY;
	if (drive_size)
		*drive_size = size;
	if (clusters)
		*clusters = r->clusters;
	return BITMAP_OK;
}

/* After the last digest: the trailer must match and end the stream. */
static int reader_trailer(struct digest_reader *r)
{
	uint8_t sum[DIGEST_LEN];
	unsigned int n = 0;
	ssize_t got;
	int rc;

	rc = reader_hash_consumed(r);
	if (rc != BITMAP_OK)
		return rc;
	if (!EVP_DigestFinal_ex(r->ctx, sum, &n) || n != DIGEST_LEN)
		return BITMAP_ERR_NOMEM;
	rc = reader_fill(r, DIGEST_LEN);
	if (rc != BITMAP_OK)
		return rc;
	if (memcmp(sum, r->buf + r->pos, DIGEST_LEN) != 0)
		return BITMAP_ERR_CHECKSUM;
	r->pos += DIGEST_LEN;
	if (r->len > r->pos)
		return BITMAP_ERR_CORRUPT;
	got = reader_read(r, r->buf, sizeof(r->buf));
	if (got < 0)
		return (int)got;
	if (got > 0)
		return BITMAP_ERR_CORRUPT;
	memcpy(r->root, sum, DIGEST_LEN);
	return BITMAP_OK;
}

int digest_reader_next(struct digest_reader *r, uint8_t digest[DIGEST_LEN])
{
	int rc;

	if (r->err)
		return r->err;
	if (r->state == R_NEW)
		return BITMAP_ERR_RANGE;
	if (r->state == R_DONE)
		return 0;
	if (r->idx < r->clusters) {
		rc = reader_fill(r, DIGEST_LEN);
		if (rc != BITMAP_OK)
			return r->err = rc;
		memcpy(digest, r->buf + r->pos, DIGEST_LEN);
		r->pos += DIGEST_LEN;
		r->idx++;
		return 1;
	}
	rc = reader_trailer(r);
	if (rc != BITMAP_OK)
		return r->err = rc;
	r->state = R_DONE;
	return 0;
}

void digest_reader_root(const struct digest_reader *r, uint8_t root[DIGEST_LEN])
{
	if (r->state == R_DONE)
		memcpy(root, r->root, DIGEST_LEN);
	else
		memset(root, 0, DIGEST_LEN);
}

void digest_reader_free(struct digest_reader *r)
{
	if (!r)
		return;
	EVP_MD_CTX_free(r->ctx);
	free(r);
}
