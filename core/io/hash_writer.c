/* hash_writer.c: an output-stack filter that passes bytes through and
 * reports their SHA-256 when the stream closes (the manifest's digest). */
#include <errno.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/io/crypt_int.h"

/* SHA-256 runs at about 1.7 GB/s on one core: on the caller's thread it
 * would be the slowest step of a plain backup. The bytes are copied into a
 * small ring (memcpy is ten times faster) and a helper thread hashes them
 * in order, while the caller goes on reading drives and writing the sink. */
#define HASH_SLOTS 4
#define HASH_SLOT_SIZE ((size_t)1 << 20)

struct hash_writer {
	struct vb_writer w;     /* first: the layer is cast from it */
	struct vb_writer *next;
	EVP_MD_CTX *md;
	uint8_t *out;           /* 32 bytes, filled on a successful close */
	uint8_t own[32];        /* out when the caller wants no digest */
	const struct vb_key *sign; /* append a signature trailer, or NULL */
	uint64_t *bytes;        /* the byte count, filled on a successful close */
	uint64_t count;
	/* The helper thread, if it could be started. */
	bool threaded;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t work;    /* the helper waits for a full slot or stop */
	pthread_cond_t room;    /* the writer waits for a free slot */
	uint8_t *ring;          /* HASH_SLOTS * HASH_SLOT_SIZE */
	size_t len[HASH_SLOTS];
	unsigned head;          /* slot the writer fills */
	unsigned tail;          /* slot the helper hashes next */
	unsigned pending;       /* full slots not yet hashed */
	size_t fill;            /* bytes in the head slot */
	bool stop;              /* no more slots will come */
	bool abandon;           /* ... and the queued ones are not wanted */
	atomic_bool failed;     /* EVP_DigestUpdate failed (the helper sets it, the
				 * writer reads it on every write) */
};

static void *hash_thread(void *opaque)
{
	struct hash_writer *h = opaque;

	pthread_mutex_lock(&h->lock);
	for (;;) {
		unsigned t;

		while (h->pending == 0 && !h->stop)
			pthread_cond_wait(&h->work, &h->lock);
		if (h->pending == 0 || h->abandon)
			break;
		t = h->tail;
		pthread_mutex_unlock(&h->lock);
		/* after a failure the digest is lost anyway: just drain */
		if (!h->failed && EVP_DigestUpdate(h->md, h->ring + (size_t)t * HASH_SLOT_SIZE,
						   h->len[t]) != 1)
			h->failed = true;
		pthread_mutex_lock(&h->lock);
		h->tail = (t + 1) % HASH_SLOTS;
		h->pending--;
		pthread_cond_signal(&h->room);
	}
	pthread_mutex_unlock(&h->lock);
	return NULL;
}

/* Hands the head slot (fill bytes) to the helper. */
static void submit(struct hash_writer *h)
{
	pthread_mutex_lock(&h->lock);
	h->len[h->head] = h->fill;
	h->head = (h->head + 1) % HASH_SLOTS;
	h->pending++;
	h->fill = 0;
	pthread_cond_signal(&h->work);
	/* the new head slot must be free before it is filled */
	while (h->pending == HASH_SLOTS)
		pthread_cond_wait(&h->room, &h->lock);
	pthread_mutex_unlock(&h->lock);
}

static void queue_bytes(struct hash_writer *h, const uint8_t *p, size_t len)
{
	while (len > 0) {
		size_t n = HASH_SLOT_SIZE - h->fill < len ? HASH_SLOT_SIZE - h->fill : len;

		memcpy(h->ring + (size_t)h->head * HASH_SLOT_SIZE + h->fill, p, n);
		h->fill += n;
		p += n;
		len -= n;
		if (h->fill == HASH_SLOT_SIZE)
			submit(h);
	}
}

/* Ends the helper: after the queued bytes (drain), or as soon as it can. */
static void stop_thread(struct hash_writer *h, bool drain)
{
	if (!h->threaded)
		return;
	if (drain && h->fill > 0)
		submit(h);
	pthread_mutex_lock(&h->lock);
	h->abandon = !drain;
	h->stop = true;
	pthread_cond_signal(&h->work);
	pthread_mutex_unlock(&h->lock);
	pthread_join(h->thread, NULL);
	h->threaded = false;
}

static void release(struct hash_writer *h)
{
	stop_thread(h, false);
	if (h->ring) {
		pthread_mutex_destroy(&h->lock);
		pthread_cond_destroy(&h->work);
		pthread_cond_destroy(&h->room);
	}
	free(h->ring);
	EVP_MD_CTX_free(h->md);
	free(h);
}

static int hash_write(struct vb_writer *w, const void *buf, size_t len, struct vb_error *err)
{
	struct hash_writer *h = (struct hash_writer *)w;

	if (h->threaded)
		queue_bytes(h, buf, len);
	else if (EVP_DigestUpdate(h->md, buf, len) != 1)
		h->failed = true;
	if (h->failed)
		return vb_error_set(err, VB_E_FAIL, 0, "output: SHA-256 of the archive failed");
	h->count += len;
	return vb_writer_write(h->next, buf, len, err);
}

/* The signature of the bytes so far, appended (and hashed): the digest
 * and the count then cover the whole file. */
static int sign_trailer(struct hash_writer *h, struct vb_error *err)
{
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	uint8_t d[32], t[VB_SIG_TRAILER];
	unsigned int len = 0;
	bool ok = c && EVP_MD_CTX_copy_ex(c, h->md) == 1 && EVP_DigestFinal_ex(c, d, &len) == 1 &&
		  vb_sig_make(h->sign, d, h->count, t) == 0 &&
		  EVP_DigestUpdate(h->md, t, sizeof(t)) == 1;

	EVP_MD_CTX_free(c);
	if (!ok)
		return vb_error_set(err, VB_E_FAIL, 0, "output: the Ed25519 signature failed");
	h->count += sizeof(t);
	return vb_writer_write(h->next, t, sizeof(t), err);
}

static int hash_close(struct vb_writer *w, struct vb_error *err)
{
	struct hash_writer *h = (struct hash_writer *)w;
	struct vb_writer *next = h->next;
	unsigned int len = 0;
	int ok;

	stop_thread(h, true);
	if (h->sign && !h->failed && sign_trailer(h, err) < 0) {
		release(h);
		vb_writer_discard(next);
		return -1;
	}
	ok = !h->failed && EVP_DigestFinal_ex(h->md, h->out, &len) == 1 && len == 32;
	if (h->bytes)
		*h->bytes = h->count;
	release(h);
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

	release(h);
	vb_writer_discard(next);
}

static const struct vb_writer_ops hash_ops = {
	.write = hash_write,
	.close = hash_close,
	.discard = hash_discard,
};

/* Starts the helper with every signal blocked, so that signals reach the
 * thread that writes the sink (a write blocked on a stalled pipe must see
 * EINTR). Without a helper the caller hashes: slower, same digest. */
static void start_thread(struct hash_writer *h)
{
	h->ring = malloc(HASH_SLOTS * HASH_SLOT_SIZE);
	if (!h->ring)
		return;
	if (pthread_mutex_init(&h->lock, NULL) != 0) {
		free(h->ring);
		h->ring = NULL;
		return;
	}
	pthread_cond_init(&h->work, NULL);
	pthread_cond_init(&h->room, NULL);
	h->threaded = vb_thread_start(&h->thread, hash_thread, h) == 0;
}

struct vb_writer *vb_hash_writer_new(struct vb_writer *next, uint8_t digest[32],
				     uint64_t *bytes, struct vb_error *err)
{
	return vb_hash_writer_signed(next, digest, bytes, NULL, err);
}

struct vb_writer *vb_hash_writer_signed(struct vb_writer *next, uint8_t digest[32],
					uint64_t *bytes, const struct vb_key *key,
					struct vb_error *err)
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
	h->out = digest ? digest : h->own;
	h->bytes = bytes;
	h->sign = key;
	start_thread(h);
	return &h->w;
}
