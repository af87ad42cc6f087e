/* hash_writer.c: an output-stack filter that passes bytes through and
 * reports their SHA-256 when the stream closes (the manifest's digest). */
#include <errno.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

struct hash_writer {
	struct vb_writer w;     /* first: the layer is cast from it */
	struct vb_writer *next;
	EVP_MD_CTX *md;
	uint8_t *out;           /* 32 bytes, filled on a successful close */
	uint64_t *bytes;        /* the byte count, filled on a successful close */
	uint64_t count;
};

static int hash_write(struct vb_writer *w, const void *buf, size_t len, struct vb_error *err)
{
	struct hash_writer *h = (struct hash_writer *)w;

	if (EVP_DigestUpdate(h->md, buf, len) != 1)
		return vb_error_set(err, VB_E_FAIL, 0, "output: SHA-256 of the archive failed");
	h->count += len;
	return vb_writer_write(h->next, buf, len, err);
}

static int hash_close(struct vb_writer *w, struct vb_error *err)
{
	struct hash_writer *h = (struct hash_writer *)w;
	struct vb_writer *next = h->next;
	unsigned int len = 0;
	int ok = EVP_DigestFinal_ex(h->md, h->out, &len) == 1 && len == 32;

	if (h->bytes)
		*h->bytes = h->count;

	EVP_MD_CTX_free(h->md);
	free(h);
	if (!ok) {
		vb_writer_discard(next);
		return vb_error_set(err, VB_E_FAIL, 0, "output: SHA-256 of the archive failed");
	}
	return vb_writer_close(next, err);
}

static void hash_discard(struct vb_writer *w)
{
	struct hash_writer *h = (struct hash_writer *)w;
	struct vb_writer *next = h->next;

	EVP_MD_CTX_free(h->md);
	free(h);
	vb_writer_discard(next);
}

static const struct vb_writer_ops hash_ops = {
	.write = hash_write,
	.close = hash_close,
	.discard = hash_discard,
};

struct vb_writer *vb_hash_writer_new(struct vb_writer *next, uint8_t digest[32],
				     uint64_t *bytes, struct vb_error *err)
{
	struct hash_writer *h;

	if (!next) {
		vb_error_set(err, VB_E_FAIL, EINVAL, "output: no layer below the SHA-256 filter");
		return NULL;
	}
	h = calloc(1, sizeof(*h));
	if (h)
		h->md = EVP_MD_CTX_new();
	if (!h || !h->md || EVP_DigestInit_ex(h->md, EVP_sha256(), NULL) != 1) {
		if (h)
			EVP_MD_CTX_free(h->md);
		free(h);
		vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
		return NULL;
	}
	h->w.ops = &hash_ops;
	h->next = next;
	h->out = digest;
	h->bytes = bytes;
	return &h->w;
}
