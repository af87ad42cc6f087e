/* input_ahead.c: the read-ahead stages of the input stack: a helper
 * thread runs one stage's work (decompression, decryption) into a small
 * ring of buffers, which its reader copies out or borrows. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/io/input_int.h"

/* Decompressing a regular file on a helper thread: it fills a small ring
 * of buffers while the caller checks extents and writes the drives, so the
 * two overlap (zstd -d alone keeps one core busy). An encrypted file's
 * decryption is a stage of its own, on another thread, in front of the
 * decompression. Only for files: a read from a regular file cannot block
 * forever, so the caller never waits on a helper that a signal could not
 * wake. The caller sees the same bytes and the same errors, in the same
 * order. */
#define AHEAD_SLOTS 4

struct ahead {
	struct vb_reader *r;
	/* the stage's work: decode, or decrypt */
	vb_in_fill_fn fill;
	bool counts_raw;        /* fill is the decoder, which counts r->raw_bytes */
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t filled;  /* the caller waits for a slot or the end */
	pthread_cond_t freed;   /* the helper waits for a free slot */
	unsigned char *ring;    /* AHEAD_SLOTS * VB_IO_BUFSIZE */
	size_t len[AHEAD_SLOTS];
	unsigned head, tail, pending;
	size_t pos;             /* read offset in the tail slot */
	bool borrowed;          /* the tail slot is lent to the reader */
	bool done;              /* the helper ended: end of input or error */
	bool stop;              /* the caller is freeing the reader */
	struct vb_error err;    /* the helper's error, after its slots */
	bool error;
	uint64_t raw_bytes;     /* decode: compressed bytes behind the slots handed out */
};


static void *ahead_thread(void *opaque)
{
	struct ahead *a = opaque;
	struct vb_reader *r = a->r;
	struct vb_error err = { 0 };

	for (;;) {
		unsigned h;
		ssize_t n;

		pthread_mutex_lock(&a->lock);
		while (a->pending == AHEAD_SLOTS && !a->stop)
			pthread_cond_wait(&a->freed, &a->lock);
		h = a->head;
		if (a->stop) {
			pthread_mutex_unlock(&a->lock);
			break;
		}
		pthread_mutex_unlock(&a->lock);
		n = a->fill(r, a->ring + (size_t)h * VB_IO_BUFSIZE, VB_IO_BUFSIZE, &err);
		pthread_mutex_lock(&a->lock);
		if (n > 0) {
			a->len[h] = (size_t)n;
			a->head = (h + 1) % AHEAD_SLOTS;
			a->pending++;
		}
		if (a->counts_raw)
			a->raw_bytes = r->raw_bytes;
		if (n < 0) {
			a->err = err;
			a->error = true;
		}
		if (n < (ssize_t)VB_IO_BUFSIZE)
			a->done = true;
		pthread_cond_signal(&a->filled);
		pthread_mutex_unlock(&a->lock);
		if (n < (ssize_t)VB_IO_BUFSIZE)
			break;
	}
	return NULL;
}

/* Frees the tail slot (locked). */
static void ahead_pop(struct ahead *a)
{
	a->pos = 0;
	a->borrowed = false;
	a->tail = (a->tail + 1) % AHEAD_SLOTS;
	a->pending--;
	pthread_cond_signal(&a->freed);
}

/* Waits for a full slot (locked): false at the end, or after an error
 * (copied to err, if the helper met one: then *failed). */
static bool ahead_wait(struct ahead *a, bool *failed, struct vb_error *err)
{
	while (a->pending == 0 && !a->done)
		pthread_cond_wait(&a->filled, &a->lock);
	*failed = a->pending == 0 && a->error;
	if (*failed)
		*err = a->err;
	return a->pending > 0;
}

/* The next slot, lent to the reader (*p) until its next call: its length,
 * 0 at the end, or -1. The one lent before is given back. */
ssize_t vb_in_ahead_borrow(struct ahead *a, unsigned char **p, struct vb_error *err)
{
	ssize_t n = 0;
	bool failed;

	pthread_mutex_lock(&a->lock);
	if (a->borrowed)
		ahead_pop(a);
	if (ahead_wait(a, &failed, err)) {
		*p = a->ring + (size_t)a->tail * VB_IO_BUFSIZE;
		n = (ssize_t)a->len[a->tail];
		a->borrowed = true;
	} else if (failed) {
		n = -1;
	}
	pthread_mutex_unlock(&a->lock);
	return n;
}

ssize_t vb_in_ahead_read(struct ahead *a, unsigned char *buf, size_t len,
			 struct vb_error *err)
{
	size_t done = 0;

	pthread_mutex_lock(&a->lock);
	if (a->borrowed)
		ahead_pop(a);
	while (done < len) {
		unsigned t;
		bool failed;
		size_t n;

		if (!ahead_wait(a, &failed, err)) {
			if (failed) {
				pthread_mutex_unlock(&a->lock);
				return -1;
			}
			break;
		}
		t = a->tail;
		/* copying outside the lock: the helper never touches a full slot */
		n = a->len[t] - a->pos < len - done ? a->len[t] - a->pos : len - done;
		pthread_mutex_unlock(&a->lock);
		memcpy(buf + done, a->ring + (size_t)t * VB_IO_BUFSIZE + a->pos, n);
		pthread_mutex_lock(&a->lock);
		done += n;
		a->pos += n;
		if (a->pos == a->len[t])
			ahead_pop(a);
	}
	pthread_mutex_unlock(&a->lock);
	return (ssize_t)done;
}

/* The helper's memory, once its thread ended (or never started). */
static void ahead_destroy(struct ahead *a)
{
	pthread_mutex_destroy(&a->lock);
	pthread_cond_destroy(&a->filled);
	pthread_cond_destroy(&a->freed);
	free(a->ring);
	free(a);
}

/* Starts a stage's helper thread; without one (no memory, no thread) its
 * reader does the work, as before. */
struct ahead *vb_in_ahead_new(struct vb_reader *r, vb_in_fill_fn fill, bool counts_raw)
{
	struct ahead *a = calloc(1, sizeof(*a));
	int rc;

	if (!a)
		return NULL;
	a->r = r;
	a->fill = fill;
	a->counts_raw = counts_raw;
	a->ring = malloc(AHEAD_SLOTS * VB_IO_BUFSIZE);
	if (!a->ring || pthread_mutex_init(&a->lock, NULL) != 0) {
		free(a->ring);
		free(a);
		return NULL;
	}
	pthread_cond_init(&a->filled, NULL);
	pthread_cond_init(&a->freed, NULL);
	/* signals go to the caller's thread, as without the helper */
	rc = vb_thread_start(&a->thread, ahead_thread, a);
	if (rc != 0) {
		ahead_destroy(a);
		return NULL;
	}
	return a;
}

void vb_in_ahead_free(struct ahead *a)
{
	if (!a)
		return;
	pthread_mutex_lock(&a->lock);
	a->stop = true;
	pthread_cond_signal(&a->freed);
	pthread_mutex_unlock(&a->lock);
	pthread_join(a->thread, NULL);
	ahead_destroy(a);
}

uint64_t vb_in_ahead_raw_bytes(struct ahead *a)
{
	uint64_t n;

	pthread_mutex_lock(&a->lock);
	n = a->raw_bytes;
	pthread_mutex_unlock(&a->lock);
	return n;
}
