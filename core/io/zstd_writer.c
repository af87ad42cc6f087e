/* zstd_writer.c: the zstd compression layer of the output stack, in zstd's
 * seekable format: independent frames with a content checksum, each ended
 * at the first write after it holds VB_ZSTD_FRAME_BYTES (the VMA writer
 * writes an extent at a time, so frames start at extents), each compressed
 * whole, on worker threads when asked, then a seek table in a skippable
 * frame. `zstd -d` and
 * Proxmox read it as any .zst; `vmaback serve` decompresses only the
 * frames a read needs. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "common/byteorder.h"
#include "core/io/io_int.h"

/* A dense extent (3.7 MiB) is a frame of its own; small ones are grouped. */
#define VB_ZSTD_FRAME_BYTES ((uint64_t)1 << 20)

/* The frames are independent: each is compressed whole by one worker with
 * its own context (zstd's own workers drain at every frame end, one job of
 * 1-4 MiB at a time: no parallelism), and they are written out in order.
 * Without workers the caller's thread compresses. */
enum slot_state { SLOT_FREE, SLOT_QUEUED, SLOT_BUSY, SLOT_DONE };

struct slot {
	enum slot_state state;
	unsigned char *in, *out;
	size_t in_len, in_cap, out_len, out_cap;
	size_t zerr;            /* a zstd error code, (size_t)-1 out of memory, or 0 */
};

struct seek_entry {
	uint32_t csize, dsize;
};

struct zstd_writer {
	struct vb_writer w;     /* first: the layer is cast from it */
	struct vb_writer *next;
	int level;
	bool failed;
	struct slot *slots;
	unsigned nslots;
	unsigned head;          /* the slot being filled */
	unsigned tail;          /* the oldest slot not yet written out */
	unsigned used;          /* slots from tail to head, head included */
	ZSTD_CCtx *cctx;        /* the caller's, without workers */
	unsigned nworkers, started;
	unsigned job;           /* the slot the next free worker takes (locked) */
	pthread_t *threads;
	pthread_mutex_t lock;
	pthread_cond_t work;    /* a slot was queued, or stop */
	pthread_cond_t done;    /* a slot was compressed */
	bool stop;
	struct seek_entry *seek; /* the frames written so far */
	size_t nseek, seek_cap;
};

static int zstd_write(struct vb_writer *w, const void *buf, size_t len, struct vb_error *err);
static int zstd_close(struct vb_writer *w, struct vb_error *err);
static void zstd_discard(struct vb_writer *w);

static const struct vb_writer_ops zstd_ops = {
	.write = zstd_write,
	.close = zstd_close,
	.discard = zstd_discard,
};

static ZSTD_CCtx *new_cctx(int level)
{
	ZSTD_CCtx *c = ZSTD_createCCtx();

	if (c && (ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, level)) ||
		  ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1)))) {
		ZSTD_freeCCtx(c);
		c = NULL;
	}
	return c;
}

/* Compresses slot s with c into the slot's output buffer: one frame. */
static void compress_slot(ZSTD_CCtx *c, struct slot *s)
{
	size_t bound = ZSTD_compressBound(s->in_len), r;

	s->zerr = 0;
	s->out_len = 0;
	if (bound > s->out_cap) {
		unsigned char *p = realloc(s->out, bound);

		if (!p) {
			s->zerr = (size_t)-1;
			return;
		}
		s->out = p;
		s->out_cap = bound;
	}
	r = ZSTD_compress2(c, s->out, s->out_cap, s->in, s->in_len);
	if (ZSTD_isError(r))
		s->zerr = r;
	else
		s->out_len = r;
}

static void *worker_main(void *opaque)
{
	struct zstd_writer *z = opaque;
	ZSTD_CCtx *c = new_cctx(z->level);

	pthread_mutex_lock(&z->lock);
	for (;;) {
		struct slot *s = NULL;

		/* slots are queued in ring order: the oldest first */
		while (!z->stop && z->slots[z->job].state != SLOT_QUEUED)
			pthread_cond_wait(&z->work, &z->lock);
		if (z->stop)
			break;
		s = &z->slots[z->job];
		z->job = (z->job + 1) % z->nslots;
		s->state = SLOT_BUSY;
		pthread_mutex_unlock(&z->lock);
		if (c)
			compress_slot(c, s);
		else
			s->zerr = (size_t)-1;
		pthread_mutex_lock(&z->lock);
		s->state = SLOT_DONE;
		pthread_cond_broadcast(&z->done);
	}
	pthread_mutex_unlock(&z->lock);
	ZSTD_freeCCtx(c);
	return NULL;
}

/* Stops and joins the workers (what is queued is dropped). */
static void stop_workers(struct zstd_writer *z)
{
	if (z->started == 0)
		return;
	pthread_mutex_lock(&z->lock);
	z->stop = true;
	pthread_cond_broadcast(&z->work);
	pthread_mutex_unlock(&z->lock);
	for (unsigned i = 0; i < z->started; i++)
		pthread_join(z->threads[i], NULL);
	z->started = 0;
}

static void zstd_release(struct zstd_writer *z)
{
	stop_workers(z);
	if (z->threads) {
		pthread_mutex_destroy(&z->lock);
		pthread_cond_destroy(&z->work);
		pthread_cond_destroy(&z->done);
	}
	for (unsigned i = 0; z->slots && i < z->nslots; i++) {
		free(z->slots[i].in);
		free(z->slots[i].out);
	}
	free(z->slots);
	free(z->threads);
	ZSTD_freeCCtx(z->cctx);
	free(z->seek);
	free(z);
}

/* The workers start with the first frame and inherit this thread's mask:
 * signals must go to the caller's thread, whose blocked write they
 * interrupt. Fewer than asked (or none) still work. */
static void start_workers(struct zstd_writer *z)
{
	while (z->started < z->nworkers &&
	       vb_thread_start(&z->threads[z->started], worker_main, z) == 0)
		z->started++;
	if (z->started == 0)
		z->nworkers = 0;
}

/* Workers when this libzstd has threads (as zstd -T would), at most 64. */
static unsigned zstd_workers(int threads)
{
	ZSTD_bounds b = ZSTD_cParam_getBounds(ZSTD_c_nbWorkers);

	if (threads <= 0 || ZSTD_isError(b.error) || b.upperBound == 0)
		return 0;
	return threads > 64 ? 64 : (unsigned)threads;
}

struct vb_writer *vb_zstd_writer_new(struct vb_writer *next, int level, int threads,
				     struct vb_error *err)
{
	struct zstd_writer *z = NULL;

	if (next == NULL) {
		vb_error_set(err, VB_E_FAIL, EINVAL, "zstd: no output below the compressor");
		return NULL;
	}
	if (level < 1 || level > 19) {
		vb_error_set(err, VB_E_USAGE, 0, "zstd: compression level %d out of range 1..19",
			     level);
		return NULL;
	}
	if (threads < 0) {
		vb_error_set(err, VB_E_USAGE, 0, "zstd: negative number of threads %d", threads);
		return NULL;
	}
	z = calloc(1, sizeof(*z));
	if (z == NULL)
		goto nomem;
	z->w.ops = &zstd_ops;
	z->level = level;
	z->nworkers = zstd_workers(threads);
	/* one frame per worker, and the one being filled: each slot holds up
	 * to 1 MiB and an extent, and as much compressed (RSS 34 -> 48 MiB
	 * with 2 workers) */
	z->nslots = z->nworkers + 1;
	z->slots = calloc(z->nslots, sizeof(*z->slots));
	z->cctx = new_cctx(level);
	if (z->slots == NULL || z->cctx == NULL)
		goto nomem;
	if (z->nworkers > 0) {
		z->threads = calloc(z->nworkers, sizeof(*z->threads));
		if (!z->threads)
			goto nomem;
		pthread_mutex_init(&z->lock, NULL);
		pthread_cond_init(&z->work, NULL);
		pthread_cond_init(&z->done, NULL);
	}
	z->used = 1;
	z->next = next; /* owned from here on */
	return &z->w;
nomem:
	vb_error_set(err, VB_E_FAIL, ENOMEM, "zstd: out of memory");
	if (z != NULL)
		zstd_release(z);
	return NULL;
}

static int fail(struct zstd_writer *z, struct vb_error *err, int e, const char *msg)
{
	z->failed = true;
	return vb_error_set(err, VB_E_FAIL, e, "zstd: %s", msg);
}

/* Writes the tail slot's frame to next (once compressed) and records it in
 * the seek table; the slot is free again. */
static int emit_tail(struct zstd_writer *z, struct vb_error *err)
{
	struct slot *s = &z->slots[z->tail];

	if (z->started > 0) {
		pthread_mutex_lock(&z->lock);
		while (s->state != SLOT_DONE)
			pthread_cond_wait(&z->done, &z->lock);
		pthread_mutex_unlock(&z->lock);
	}
	if (s->zerr == (size_t)-1)
		return fail(z, err, ENOMEM, "out of memory");
	if (s->zerr != 0) {
		z->failed = true;
		return vb_error_set(err, VB_E_FAIL, 0, "zstd: compression failed: %s",
				    ZSTD_getErrorName(s->zerr));
	}
	if (z->nseek == z->seek_cap) {
		size_t cap = z->seek_cap ? 2 * z->seek_cap : 256;
		struct seek_entry *p = realloc(z->seek, cap * sizeof(*p));

		if (!p)
			return fail(z, err, ENOMEM, "out of memory");
		z->seek = p;
		z->seek_cap = cap;
	}
	if (s->out_len > UINT32_MAX || s->in_len > UINT32_MAX || z->nseek >= VB_SEEK_MAX_FRAMES)
		return fail(z, err, EFBIG, "frame too large for a seek table");
	if (vb_writer_write(z->next, s->out, s->out_len, err) < 0) {
		z->failed = true;
		return -1;
	}
	z->seek[z->nseek++] = (struct seek_entry){ (uint32_t)s->out_len, (uint32_t)s->in_len };
	s->in_len = s->out_len = 0;
	if (z->started > 0)
		pthread_mutex_lock(&z->lock);
	s->state = SLOT_FREE; /* the workers look at it */
	if (z->started > 0)
		pthread_mutex_unlock(&z->lock);
	z->tail = (z->tail + 1) % z->nslots;
	z->used--;
	return 0;
}

/* Whether the tail slot's frame is compressed (without waiting). */
static bool tail_done(struct zstd_writer *z)
{
	bool done;

	if (z->started == 0)
		return z->slots[z->tail].state == SLOT_DONE;
	pthread_mutex_lock(&z->lock);
	done = z->slots[z->tail].state == SLOT_DONE;
	pthread_mutex_unlock(&z->lock);
	return done;
}

/* Ends the frame in the head slot: to a worker, or compressed here; the
 * next slot (once its old frame is written out) becomes the head. */
static int end_frame(struct zstd_writer *z, struct vb_error *err)
{
	struct slot *s = &z->slots[z->head];

	if (z->started == 0 && z->nworkers > 0)
		start_workers(z);
	if (z->started == 0) {
		compress_slot(z->cctx, s);
		s->state = SLOT_DONE;
	} else {
		pthread_mutex_lock(&z->lock);
		s->state = SLOT_QUEUED;
		pthread_cond_signal(&z->work);
		pthread_mutex_unlock(&z->lock);
	}
	if (z->used == z->nslots && emit_tail(z, err) < 0)
		return -1;
	z->head = (z->head + 1) % z->nslots;
	z->used++;
	/* Frames already compressed go out now, not only once the ring is
	 * full: a slow source (--bwlimit) would otherwise hold several MiB
	 * back from the output for seconds. */
	while (z->used > 1 && tail_done(z))
		if (emit_tail(z, err) < 0)
			return -1;
	return 0;
}

/* Writes out every frame in flight but the head slot's (empty). */
static int drain(struct zstd_writer *z, struct vb_error *err)
{
	while (z->used > 1)
		if (emit_tail(z, err) < 0)
			return -1;
	return 0;
}

/* The seek table: a skippable frame of (csize, dsize) entries, no
 * checksums (each frame carries its own), and the footer. */
static int write_seek_table(struct zstd_writer *z, struct vb_error *err)
{
	size_t len = 8 + 8 * z->nseek + VB_SEEK_FOOTER_SIZE;
	unsigned char *t = malloc(len), *p;
	int rc;

	if (!t)
		return vb_error_set(err, VB_E_FAIL, ENOMEM, "zstd: out of memory");
	put_le32(t, VB_SEEK_SKIPPABLE);
	put_le32(t + 4, (uint32_t)(len - 8));
	p = t + 8;
	for (size_t i = 0; i < z->nseek; i++, p += 8) {
		put_le32(p, z->seek[i].csize);
		put_le32(p + 4, z->seek[i].dsize);
	}
	put_le32(p, (uint32_t)z->nseek);
	p[4] = 0;
	put_le32(p + 5, VB_SEEK_MAGIC);
	rc = vb_writer_write(z->next, t, len, err);
	free(t);
	return rc;
}

static int zstd_write(struct vb_writer *w, const void *buf, size_t len, struct vb_error *err)
{
	struct zstd_writer *z = (struct zstd_writer *)w;
	struct slot *s;

	if (z->failed)
		return vb_error_set(err, VB_E_FAIL, 0, "zstd: write after a failure");
	if (z->slots[z->head].in_len >= VB_ZSTD_FRAME_BYTES && end_frame(z, err) < 0)
		return -1;
	s = &z->slots[z->head];
	if (len > s->in_cap - s->in_len) {
		/* in MiB steps: a frame is at most 1 MiB and a write */
		size_t cap = (s->in_len + len + VB_IO_BUFSIZE - 1) / VB_IO_BUFSIZE * VB_IO_BUFSIZE;
		unsigned char *p = cap < s->in_len + len ? NULL : realloc(s->in, cap);

		if (!p)
			return fail(z, err, ENOMEM, "out of memory");
		s->in = p;
		s->in_cap = cap;
	}
	memcpy(s->in + s->in_len, buf, len);
	s->in_len += len;
	/* The frame ends here, not at the start of the next write (the same
	 * boundary): it is compressed while the source is read, and goes out
	 * without waiting for the next extent. */
	if (s->in_len >= VB_ZSTD_FRAME_BYTES && end_frame(z, err) < 0)
		return -1;
	return 0;
}

static int zstd_close(struct vb_writer *w, struct vb_error *err)
{
	struct zstd_writer *z = (struct zstd_writer *)w;
	struct vb_writer *next = z->next;

	if (z->failed) {
		vb_error_set(err, VB_E_FAIL, 0, "zstd: close after a failure");
		goto fail;
	}
	/* the last frame, if a write left one open (one empty frame for an
	 * empty stream) */
	if ((z->slots[z->head].in_len > 0 || (z->nseek == 0 && z->used == 1)) &&
	    end_frame(z, err) < 0)
		goto fail;
	if (drain(z, err) < 0 || write_seek_table(z, err) < 0)
		goto fail;
	zstd_release(z);
	return vb_writer_close(next, err);
fail:
	zstd_release(z);
	vb_writer_discard(next);
	return -1;
}

static void zstd_discard(struct vb_writer *w)
{
	struct zstd_writer *z = (struct zstd_writer *)w;
	struct vb_writer *next = z->next;

	zstd_release(z);
	vb_writer_discard(next);
}
