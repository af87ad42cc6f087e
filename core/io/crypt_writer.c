/* crypt_writer.c: the output stack's encryption filter (doc/encryption.md):
 * a header that wraps a random file key to a recipient's X25519 key, then
 * the stream in chunks of 64 KiB, each sealed with AES-256-GCM under a
 * nonce of the file's random prefix, the chunk's number and a last-chunk
 * flag (the STREAM construction). */
#include <errno.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/io/crypt_int.h"

/* AES-GCM runs at a few GB/s: on the caller's thread, which also reads the
 * drives, feeds zstd and writes the sink, it would cost a tenth of a zstd
 * backup. Slots of chunks are sealed in order on a helper thread; the
 * caller copies into them and writes the sealed slots to the layer below
 * (so a write blocked on a stalled pipe still sees the caller's signals).
 * The helper also takes the SHA-256 of the bytes as written, when asked,
 * in place of a hash layer below (which would copy them once more on the
 * caller's thread). */
#define SLOTS 4
#define SLOT_CHUNKS 16
#define SEALED (VB_CRYPT_CHUNK + VB_CRYPT_TAG)
#define SLOT_BYTES (SLOT_CHUNKS * VB_CRYPT_CHUNK)

enum slot_state { SLOT_FREE, SLOT_QUEUED, SLOT_DONE };

struct slot {
	uint8_t *plain;         /* SLOT_BYTES */
	uint8_t *sealed;        /* SLOT_CHUNKS * SEALED */
	size_t fill;            /* plaintext bytes */
	size_t sealed_len;
	uint32_t first;         /* the number of its first chunk */
	bool last;              /* its final chunk ends the stream */
	bool failed;            /* AES-GCM failed on it */
	enum slot_state state;
};

struct crypt_writer {
	struct vb_writer w;     /* first: the layer is cast from it */
	struct vb_writer *next;
	EVP_CIPHER_CTX *c;      /* the caller's (header, sealing without a helper) */
	EVP_CIPHER_CTX *tc;     /* the helper's */
	uint8_t key[32];
	uint8_t prefix[VB_CRYPT_PREFIX];
	uint8_t header[VB_CRYPT_HEADER];
	bool header_out;        /* written to next */
	uint64_t counter;       /* the next chunk's number */
	struct slot slots[SLOTS];
	unsigned head;          /* the slot being filled */
	unsigned tail;          /* the oldest slot queued, written next */
	unsigned seal_next;     /* the helper's next slot */
	unsigned pending;       /* slots submitted, not yet written (the caller's) */
	bool threaded, stop;
	bool sync_ready;        /* lock and conditions initialized */
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t work, done;
	/* the SHA-256 of the output, header first, by whoever seals */
	EVP_MD_CTX *md;
	bool md_failed;
	uint8_t *digest;
	uint64_t *bytes, hashed;
};

/* Seals slot s with context c (the slots in order: the digest follows). */
static void seal_slot(EVP_CIPHER_CTX *c, struct crypt_writer *x, struct slot *s)
{
	size_t n = s->fill ? (s->fill + VB_CRYPT_CHUNK - 1) / VB_CRYPT_CHUNK : 1;

	s->sealed_len = 0;
	for (size_t i = 0; i < n; i++) {
		size_t len = s->fill - i * VB_CRYPT_CHUNK < VB_CRYPT_CHUNK ?
			     s->fill - i * VB_CRYPT_CHUNK : VB_CRYPT_CHUNK;
		uint8_t nonce[12], *dst = s->sealed + s->sealed_len;

		vb_crypt_nonce(x->prefix, s->first + (uint32_t)i, s->last && i + 1 == n, nonce);
		if (vb_crypt_gcm(c, true, NULL, nonce, NULL, 0, s->plain + i * VB_CRYPT_CHUNK, len,
				 dst, dst + len) < 0)
			s->failed = true;
		s->sealed_len += len + VB_CRYPT_TAG;
	}
	if (x->md && EVP_DigestUpdate(x->md, s->sealed, s->sealed_len) != 1)
		x->md_failed = true;
	x->hashed += s->sealed_len;
}

static void *seal_thread(void *opaque)
{
	struct crypt_writer *x = opaque;

	pthread_mutex_lock(&x->lock);
	for (;;) {
		struct slot *s = &x->slots[x->seal_next];

		while (s->state != SLOT_QUEUED && !x->stop)
			pthread_cond_wait(&x->work, &x->lock);
		if (s->state != SLOT_QUEUED)
			break;
		pthread_mutex_unlock(&x->lock);
		seal_slot(x->tc, x, s);
		pthread_mutex_lock(&x->lock);
		s->state = SLOT_DONE;
		x->seal_next = (x->seal_next + 1) % SLOTS;
		pthread_cond_signal(&x->done);
	}
	pthread_mutex_unlock(&x->lock);
	return NULL;
}

/* Hands the head slot over (sealed at once without a helper). */
static int submit(struct crypt_writer *x, bool last, struct vb_error *err)
{
	struct slot *s = &x->slots[x->head];
	uint64_t n = s->fill ? (s->fill + VB_CRYPT_CHUNK - 1) / VB_CRYPT_CHUNK : 1;

	if (x->counter + n > (uint64_t)UINT32_MAX + 1)
		return vb_error_set(err, VB_E_FAIL, EFBIG, "output: too long to encrypt "
				    "(2^32 chunks of 64 KiB)");
	s->first = (uint32_t)x->counter;
	s->last = last;
	x->counter += n;
	x->head = (x->head + 1) % SLOTS;
	x->pending++;
	if (!x->threaded) {
		seal_slot(x->c, x, s);
		s->state = SLOT_DONE;
		return 0;
	}
	pthread_mutex_lock(&x->lock);
	s->state = SLOT_QUEUED;
	pthread_cond_signal(&x->work);
	pthread_mutex_unlock(&x->lock);
	return 0;
}

/* Writes the tail slot once sealed (waiting for it if wait, else only if
 * it is): 1 when one was written, 0 when none was ready, -1 on error. A
 * slot's state is read and changed under the lock only: the helper reads
 * it to find its next slot. */
static int flush_tail(struct crypt_writer *x, bool wait, struct vb_error *err)
{
	struct slot *s = &x->slots[x->tail];
	int rc;

	pthread_mutex_lock(&x->lock);
	while (wait && s->state == SLOT_QUEUED)
		pthread_cond_wait(&x->done, &x->lock);
	rc = s->state == SLOT_DONE;
	pthread_mutex_unlock(&x->lock);
	if (!rc)
		return 0;
	if (s->failed)
		return vb_error_set(err, VB_E_FAIL, 0, "output: AES-256-GCM failed");
	if (!x->header_out) {
		if (vb_writer_write(x->next, x->header, sizeof(x->header), err) < 0)
			return -1;
		x->header_out = true;
	}
	if (vb_writer_write(x->next, s->sealed, s->sealed_len, err) < 0)
		return -1;
	s->fill = 0;
	pthread_mutex_lock(&x->lock);
	s->state = SLOT_FREE;
	pthread_mutex_unlock(&x->lock);
	x->tail = (x->tail + 1) % SLOTS;
	x->pending--;
	return 1;
}

static int crypt_write(struct vb_writer *w, const void *buf, size_t len, struct vb_error *err)
{
	struct crypt_writer *x = (struct crypt_writer *)w;
	const uint8_t *p = buf;

	while (len > 0) {
		struct slot *s = &x->slots[x->head];
		size_t n;

		/* a full slot is sealed only when more follows: the last chunk
		 * is known only at close */
		if (s->fill == SLOT_BYTES) {
			if (submit(x, false, err) < 0)
				return -1;
			/* every slot in flight: the oldest (the new head) out */
			while (x->pending == SLOTS)
				if (flush_tail(x, true, err) < 0)
					return -1;
			s = &x->slots[x->head];
		}
		n = SLOT_BYTES - s->fill < len ? SLOT_BYTES - s->fill : len;
		memcpy(s->plain + s->fill, p, n);
		s->fill += n;
		p += n;
		len -= n;
	}
	return 0;
}

static void stop_thread(struct crypt_writer *x)
{
	if (!x->threaded)
		return;
	pthread_mutex_lock(&x->lock);
	x->stop = true;
	pthread_cond_signal(&x->work);
	pthread_mutex_unlock(&x->lock);
	pthread_join(x->thread, NULL);
	x->threaded = false;
}

static void release(struct crypt_writer *x)
{
	stop_thread(x);
	if (x->sync_ready) {
		pthread_mutex_destroy(&x->lock);
		pthread_cond_destroy(&x->work);
		pthread_cond_destroy(&x->done);
	}
	EVP_CIPHER_CTX_free(x->c);
	EVP_CIPHER_CTX_free(x->tc);
	EVP_MD_CTX_free(x->md);
	OPENSSL_cleanse(x->key, sizeof(x->key));
	for (unsigned i = 0; i < SLOTS; i++) {
		if (x->slots[i].plain)
			OPENSSL_cleanse(x->slots[i].plain, SLOT_BYTES);
		free(x->slots[i].plain);
		free(x->slots[i].sealed);
	}
	free(x);
}

static int crypt_close(struct vb_writer *w, struct vb_error *err)
{
	struct crypt_writer *x = (struct crypt_writer *)w;
	struct vb_writer *next = x->next;
	int rc = submit(x, true, err);

	unsigned int len = 0;

	while (rc >= 0 && x->pending > 0)
		rc = flush_tail(x, true, err);
	stop_thread(x);
	if (rc >= 0 && x->md) {
		if (x->md_failed || EVP_DigestFinal_ex(x->md, x->digest, &len) != 1 || len != 32)
			rc = vb_error_set(err, VB_E_FAIL, 0, "output: SHA-256 of the archive failed");
		else if (x->bytes)
			*x->bytes = x->hashed;
	}
	release(x);
	if (rc < 0) {
		vb_writer_discard(next);
		return -1;
	}
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

/* The header: the file key wrapped to `to`, the header sealed. */
static int make_header(struct crypt_writer *x, const struct vb_pubkey *to)
{
	uint8_t *h = x->header, eph[32], shared[32], wrap[32], nonce[12] = { 0 };
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
	/* the chunks' key, set once in each context */
	if (EVP_CipherInit_ex(x->c, EVP_aes_256_gcm(), NULL, x->key, NULL, 1) == 1 &&
	    EVP_CipherInit_ex(x->tc, EVP_aes_256_gcm(), NULL, x->key, NULL, 1) == 1)
		rc = 0;
out:
	OPENSSL_cleanse(eph, sizeof(eph));
	OPENSSL_cleanse(shared, sizeof(shared));
	OPENSSL_cleanse(wrap, sizeof(wrap));
	return rc;
}

/* The helper, with every signal blocked; without it the caller seals. */
static void start_thread(struct crypt_writer *x)
{
	x->threaded = vb_thread_start(&x->thread, seal_thread, x) == 0;
}

struct vb_writer *vb_crypt_writer_new(struct vb_writer *next, const struct vb_pubkey *to,
				      uint8_t digest[32], uint64_t *bytes, struct vb_error *err)
{
	struct crypt_writer *x;
	bool ok;

	if (!next || !to) {
		vb_error_set(err, VB_E_FAIL, EINVAL, "output: no layer below the encryption");
		return NULL;
	}
	x = calloc(1, sizeof(*x));
	ok = x && (x->c = EVP_CIPHER_CTX_new()) && (x->tc = EVP_CIPHER_CTX_new()) &&
	     (!digest || ((x->md = EVP_MD_CTX_new()) &&
			  EVP_DigestInit_ex(x->md, EVP_sha256(), NULL) == 1));
	for (unsigned i = 0; ok && i < SLOTS; i++)
		ok = (x->slots[i].plain = malloc(SLOT_BYTES)) &&
		     (x->slots[i].sealed = malloc(SLOT_CHUNKS * SEALED));
	if (ok && pthread_mutex_init(&x->lock, NULL) == 0) {
		pthread_cond_init(&x->work, NULL);
		pthread_cond_init(&x->done, NULL);
		x->sync_ready = true;
	}
	if (!ok || !x->sync_ready) {
		if (x)
			release(x);
		vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
		return NULL;
	}
	x->w.ops = &crypt_ops;
	x->next = next;
	x->digest = digest;
	x->bytes = bytes;
	if (make_header(x, to) < 0 ||
	    (x->md && EVP_DigestUpdate(x->md, x->header, sizeof(x->header)) != 1)) {
		release(x);
		vb_error_set(err, VB_E_FAIL, 0, "output: libcrypto cannot make the encryption "
			     "header");
		return NULL;
	}
	x->hashed = sizeof(x->header);
	start_thread(x);
	return &x->w;
}
