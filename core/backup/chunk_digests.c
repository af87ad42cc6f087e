/* chunk_digests.c: the cluster digests of one chunk (64 clusters), computed
 * on two CPUs: a helper thread takes clusters from the start while the
 * caller, once it has nothing else to do, takes them from the end, so the
 * two share the work however busy each one is. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/backup/backup_int.h"

/* SHA-256 (SHA-NI) runs at about 1.6 GB/s per core: hashing every cluster
 * on the reading thread was the slowest step of a scan and of a full
 * backup with a state. */
struct chunk_hasher {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t go, done;
	bool busy;              /* a task is queued or running */
	bool stop;
	bool failed;            /* the task's SHA-256 failed */
	/* the task: clusters [first, n) of data not yet taken (under lock) */
	const uint8_t *data;
	size_t len;
	uint64_t mask;
	size_t first, n;
	const uint8_t *zero;
	uint8_t (*out)[DIGEST_LEN];
};

/* Digests of clusters [from, to) of the chunk: 0, or -1 when SHA-256 failed. */
static int hash_range(const uint8_t *data, size_t len, uint64_t mask, size_t from, size_t to,
		      const uint8_t *zero, uint8_t (*out)[DIGEST_LEN])
{
	for (size_t c = from; c < to; c++) {
		size_t off = c * VMA_CLUSTER_SIZE;
		size_t clen = len - off < VMA_CLUSTER_SIZE ? len - off : VMA_CLUSTER_SIZE;

		if (!((mask >> c) & 1) && clen == VMA_CLUSTER_SIZE)
			memcpy(out[c], zero, DIGEST_LEN);
		else if (digest_cluster(data + off, clen, out[c]) < 0)
			return -1;
	}
	return 0;
}

static void *hasher_main(void *opaque)
{
	struct chunk_hasher *h = opaque;

	pthread_mutex_lock(&h->lock);
	for (;;) {
		while (!h->busy && !h->stop)
			pthread_cond_wait(&h->go, &h->lock);
		if (h->stop)
			break;
		while (h->first < h->n) {
			size_t c = h->first++;

			pthread_mutex_unlock(&h->lock);
			if (hash_range(h->data, h->len, h->mask, c, c + 1, h->zero, h->out) < 0)
				h->failed = true;
			pthread_mutex_lock(&h->lock);
		}
		h->busy = false;
		pthread_cond_signal(&h->done);
	}
	pthread_mutex_unlock(&h->lock);
	return NULL;
}

/* Started with every signal blocked: signals go to the thread doing I/O.
 * NULL (no helper) is fine: the caller then hashes everything. */
struct chunk_hasher *chunk_hasher_new(void)
{
	struct chunk_hasher *h = calloc(1, sizeof(*h));
	bool ok;

	if (!h)
		return NULL;
	if (pthread_mutex_init(&h->lock, NULL) != 0) {
		free(h);
		return NULL;
	}
	pthread_cond_init(&h->go, NULL);
	pthread_cond_init(&h->done, NULL);
	ok = vb_thread_start(&h->thread, hasher_main, h) == 0;
	if (!ok) {
		pthread_cond_destroy(&h->go);
		pthread_cond_destroy(&h->done);
		pthread_mutex_destroy(&h->lock);
		free(h);
		return NULL;
	}
	return h;
}

void chunk_hasher_free(struct chunk_hasher *h)
{
	if (!h)
		return;
	pthread_mutex_lock(&h->lock);
	h->stop = true;
	pthread_cond_signal(&h->go);
	pthread_mutex_unlock(&h->lock);
	pthread_join(h->thread, NULL);
	pthread_cond_destroy(&h->go);
	pthread_cond_destroy(&h->done);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

/* Hands clusters [first, n) of the chunk to the helper. */
static void submit(struct chunk_hasher *h, const struct run *r, const uint8_t *data, size_t len,
		   uint64_t mask, size_t first, size_t n, uint8_t (*out)[DIGEST_LEN])
{
	pthread_mutex_lock(&h->lock);
	h->data = data;
	h->len = len;
	h->mask = mask;
	h->first = first;
	h->n = n;
	h->zero = r->zero_digest;
	h->out = out;
	h->failed = false;
	h->busy = true;
	pthread_cond_signal(&h->go);
	pthread_mutex_unlock(&h->lock);
}

/* Takes the task's clusters from the end until none is left, then waits
 * for the helper's: 0, or -1 when a SHA-256 failed. */
static int await(struct chunk_hasher *h)
{
	bool failed = false;

	pthread_mutex_lock(&h->lock);
	while (h->first < h->n) {
		size_t c = --h->n;

		pthread_mutex_unlock(&h->lock);
		if (hash_range(h->data, h->len, h->mask, c, c + 1, h->zero, h->out) < 0)
			failed = true;
		pthread_mutex_lock(&h->lock);
	}
	while (h->busy)
		pthread_cond_wait(&h->done, &h->lock);
	pthread_mutex_unlock(&h->lock);
	return h->failed || failed ? -1 : 0;
}

int chunk_digests(struct run *r, const uint8_t *data, size_t len, uint64_t mask,
		  uint8_t (*out)[DIGEST_LEN])
{
	struct chunk_hasher *h = r->hasher;
	size_t n = (len + VMA_CLUSTER_SIZE - 1) / VMA_CLUSTER_SIZE;

	if (!h || n < 2)
		return hash_range(data, len, mask, 0, n, r->zero_digest, out) < 0 ?
			vb_error_set(r->err, VB_E_FAIL, 0, "SHA-256 failed") : 0;
	submit(h, r, data, len, mask, 0, n, out);
	if (await(h) < 0)
		return vb_error_set(r->err, VB_E_FAIL, 0, "SHA-256 failed");
	return 0;
}

bool chunk_digests_start(struct run *r, const uint8_t *data, size_t len, uint64_t mask,
			 uint8_t (*out)[DIGEST_LEN])
{
	if (!r->hasher)
		return false;
	submit(r->hasher, r, data, len, mask, 0, (len + VMA_CLUSTER_SIZE - 1) / VMA_CLUSTER_SIZE,
	       out);
	return true;
}

int chunk_digests_wait(struct run *r)
{
	return await(r->hasher) < 0 ? vb_error_set(r->err, VB_E_FAIL, 0, "SHA-256 failed") : 0;
}
