/* crypt_writer.c: the output stack's encryption filter (doc/encryption.md):
 * a header that wraps a random file key to a recipient's X25519 key, then
 * the stream in chunks of 64 KiB, each sealed with AES-256-GCM under a
 * nonce of the file's random prefix, the chunk's number and a last-chunk
 * flag (the STREAM construction). */
#include <errno.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

#include "core/io/crypt_int.h"

/* Sealed chunks gathered before one write to the layer below. */
#define OUT_CHUNKS 16
#define SEALED (VB_CRYPT_CHUNK + VB_CRYPT_TAG)

struct crypt_writer {
	struct vb_writer w;     /* first: the layer is cast from it */
	struct vb_writer *next;
	EVP_CIPHER_CTX *c;
	uint8_t key[32];
	uint8_t prefix[VB_CRYPT_PREFIX];
	uint32_t counter;       /* the next chunk's number */
	uint8_t *buf;           /* the plaintext of the chunk being filled */
	size_t fill;
	uint8_t *out;           /* header, sealed chunks not yet written */
	size_t out_len;
};

static void release(struct crypt_writer *x)
{
	EVP_CIPHER_CTX_free(x->c);
	OPENSSL_cleanse(x->key, sizeof(x->key));
	if (x->buf)
		OPENSSL_cleanse(x->buf, VB_CRYPT_CHUNK);
	free(x->buf);
	free(x->out);
	free(x);
}

static int flush_out(struct crypt_writer *x, struct vb_error *err)
{
	int rc = vb_writer_write(x->next, x->out, x->out_len, err);

	x->out_len = 0;
	return rc;
}

/* Seals the buffered chunk (last or not) into out. */
static int seal(struct crypt_writer *x, bool last, struct vb_error *err)
{
	uint8_t nonce[12], *dst;

	if (!last && x->counter == UINT32_MAX)
		return vb_error_set(err, VB_E_FAIL, EFBIG, "output: too long to encrypt "
				    "(2^32 chunks of 64 KiB)");
	if (x->out_len + SEALED > OUT_CHUNKS * SEALED + VB_CRYPT_HEADER &&
	    flush_out(x, err) < 0)
		return -1;
	dst = x->out + x->out_len;
	vb_crypt_nonce(x->prefix, x->counter, last, nonce);
	if (vb_crypt_gcm(x->c, true, x->key, nonce, NULL, 0, x->buf, x->fill, dst,
			 dst + x->fill) < 0)
		return vb_error_set(err, VB_E_FAIL, 0, "output: AES-256-GCM failed");
	x->out_len += x->fill + VB_CRYPT_TAG;
	x->counter++;
	x->fill = 0;
	return 0;
}

static int crypt_write(struct vb_writer *w, const void *buf, size_t len, struct vb_error *err)
{
	struct crypt_writer *x = (struct crypt_writer *)w;
	const uint8_t *p = buf;

	while (len > 0) {
		size_t n;

		/* a full chunk is sealed only when more follows: the last one
		 * is known only at close */
		if (x->fill == VB_CRYPT_CHUNK && seal(x, false, err) < 0)
			return -1;
		n = VB_CRYPT_CHUNK - x->fill < len ? VB_CRYPT_CHUNK - x->fill : len;
		memcpy(x->buf + x->fill, p, n);
		x->fill += n;
		p += n;
		len -= n;
	}
	return 0;
}

static int crypt_close(struct vb_writer *w, struct vb_error *err)
{
	struct crypt_writer *x = (struct crypt_writer *)w;
	struct vb_writer *next = x->next;

	if (seal(x, true, err) < 0 || flush_out(x, err) < 0) {
		release(x);
		vb_writer_discard(next);
		return -1;
	}
	release(x);
	return vb_writer_close(next, err);
}

static void crypt_discard(struct vb_writer *w)
{
	struct crypt_writer *x = (struct crypt_writer *)w;
	struct vb_writer *next = x->next;

	release(x);
	vb_writer_discard(next);
}

static const struct vb_writer_ops crypt_ops = {
	.write = crypt_write,
	.close = crypt_close,
	.discard = crypt_discard,
};

/* The header into x->out: the file key wrapped to `to`, the header sealed. */
static int make_header(struct crypt_writer *x, const struct vb_pubkey *to)
{
	uint8_t *h = x->out, eph[32], shared[32], wrap[32], nonce[12] = { 0 };
	int rc = -1;

	memset(h, 0, VB_CRYPT_HEADER);
	memcpy(h, VB_CRYPT_MAGIC, VB_CRYPT_MAGIC_LEN);
	h[VB_CH_VERSION] = VB_CRYPT_VERSION;
	h[VB_CH_CHUNK_LOG] = VB_CRYPT_CHUNK_LOG;
	memcpy(h + VB_CH_KEY_ID, to->id, VB_KEY_ID_LEN);
	if (RAND_priv_bytes(x->key, 32) != 1 || RAND_priv_bytes(eph, 32) != 1 ||
	    RAND_bytes(x->prefix, VB_CRYPT_PREFIX) != 1 ||
	    vb_crypt_public_of(EVP_PKEY_X25519, eph, h + VB_CH_EPHEMERAL) < 0 ||
	    vb_crypt_x25519(eph, to->x25519, shared) < 0 ||
	    vb_crypt_wrap_key(shared, h + VB_CH_EPHEMERAL, to->x25519, wrap) < 0 ||
	    vb_crypt_gcm(x->c, true, wrap, nonce, h, VB_CH_WRAPPED, x->key, 32,
			 h + VB_CH_WRAPPED, h + VB_CH_WRAP_TAG) < 0)
		goto out;
	memcpy(h + VB_CH_PREFIX, x->prefix, VB_CRYPT_PREFIX);
	vb_crypt_nonce(x->prefix, UINT32_MAX, false, nonce);
	nonce[11] = 2; /* never a chunk's */
	if (vb_crypt_gcm(x->c, true, x->key, nonce, h, VB_CH_HEADER_TAG, NULL, 0, NULL,
			 h + VB_CH_HEADER_TAG) < 0)
		goto out;
	x->out_len = VB_CRYPT_HEADER;
	rc = 0;
out:
	OPENSSL_cleanse(eph, sizeof(eph));
	OPENSSL_cleanse(shared, sizeof(shared));
	OPENSSL_cleanse(wrap, sizeof(wrap));
	return rc;
}

struct vb_writer *vb_crypt_writer_new(struct vb_writer *next, const struct vb_pubkey *to,
				      struct vb_error *err)
{
	struct crypt_writer *x;

	if (!next || !to) {
		vb_error_set(err, VB_E_FAIL, EINVAL, "output: no layer below the encryption");
		return NULL;
	}
	x = calloc(1, sizeof(*x));
	if (!x || !(x->c = EVP_CIPHER_CTX_new()) || !(x->buf = malloc(VB_CRYPT_CHUNK)) ||
	    !(x->out = malloc(OUT_CHUNKS * SEALED + VB_CRYPT_HEADER))) {
		if (x)
			release(x);
		vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
		return NULL;
	}
	x->w.ops = &crypt_ops;
	x->next = next;
	if (make_header(x, to) < 0) {
		release(x);
		vb_error_set(err, VB_E_FAIL, 0, "output: libcrypto cannot make the encryption "
			     "header");
		return NULL;
	}
	return &x->w;
}
