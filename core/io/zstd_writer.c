/* zstd_writer.c: the zstd compression layer of the output stack, in zstd's
 * seekable format: independent frames with a content checksum, each ended
 * at the first write after it holds VB_ZSTD_FRAME_BYTES (the VMA writer
 * writes an extent at a time, so frames start at extents), optionally
 * multi-threaded, then a seek table in a skippable frame. `zstd -d` and
 * Proxmox read it as any .zst; `vmaback serve` decompresses only the
 * frames a read needs. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <zstd.h>

#include "common/byteorder.h"
#include "core/io/io_int.h"

#define ZSTD_JOB_SIZE (2 << 20)
/* A dense extent (3.7 MiB) is a frame of its own; small ones are grouped. */
#define VB_ZSTD_FRAME_BYTES ((uint64_t)1 << 20)

struct seek_entry {
	uint32_t csize, dsize;
};

struct zstd_writer {
	struct vb_writer w;     /* first: the layer is cast from it */
	struct vb_writer *next;
	ZSTD_CCtx *cctx;
	unsigned char *out;     /* compressed bytes waiting for next */
	size_t out_cap;
	size_t out_len;
	bool failed;
	bool started;           /* the workers exist (they start with the frame) */
	uint64_t frame_in;      /* bytes given to the current frame */
	uint64_t frame_out;     /* its compressed bytes so far */
	struct seek_entry *seek; /* the frames ended so far */
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

static void zstd_release(struct zstd_writer *z)
{
	ZSTD_freeCCtx(z->cctx);
	free(z->out);
	free(z->seek);
	free(z);
}

static int zstd_param(struct zstd_writer *z, ZSTD_cParameter p, int v, const char *name,
		      struct vb_error *err)
{
	size_t r = ZSTD_CCtx_setParameter(z->cctx, p, v);

	if (ZSTD_isError(r))
		return vb_error_set(err, VB_E_FAIL, 0, "zstd: cannot set %s to %d: %s",
				    name, v, ZSTD_getErrorName(r));
	return 0;
}

/* Workers when this libzstd has them; a build without threads (its bounds
 * are 0..0) compresses in the caller's thread instead. */
static int zstd_set_threads(struct zstd_writer *z, int threads, struct vb_error *err)
{
	ZSTD_bounds b = ZSTD_cParam_getBounds(ZSTD_c_nbWorkers);

	if (threads == 0 || ZSTD_isError(b.error) || b.upperBound == 0)
		return 0;
	if (threads > b.upperBound)
		threads = b.upperBound;
	if (zstd_param(z, ZSTD_c_nbWorkers, threads, "the number of threads", err) < 0)
		return -1;
	/* The default job (4 windows: 8 MiB at level 3) buffers about 30 MiB
	 * per worker: 2 MiB jobs keep a backup's memory bounded (RSS 120 -> 48
	 * MiB with 2 workers). Each job starts with the last quarter window
	 * (512 KiB) of the one before it as its dictionary (zstd's default,
	 * an eighth, is for 8 MiB jobs): on 256 MiB of /usr files the size
	 * against zstd -T0 -3 goes from 1.025 to 1.016 for no more memory and
	 * about 2% more CPU on random data. */
	if (zstd_param(z, ZSTD_c_overlapLog, 7, "the job overlap", err) < 0)
		return -1;
	return zstd_param(z, ZSTD_c_jobSize, ZSTD_JOB_SIZE, "the job size", err);
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
	/* Large chunks to the next layer: few system calls. */
	z->out_cap = ZSTD_CStreamOutSize() > VB_IO_BUFSIZE ? ZSTD_CStreamOutSize()
							   : VB_IO_BUFSIZE;
	z->out = malloc(z->out_cap);
	z->cctx = ZSTD_createCCtx();
	if (z->out == NULL || z->cctx == NULL)
		goto nomem;
	if (zstd_param(z, ZSTD_c_compressionLevel, level, "the compression level", err) < 0 ||
	    zstd_param(z, ZSTD_c_checksumFlag, 1, "the checksum flag", err) < 0 ||
	    zstd_set_threads(z, threads, err) < 0)
		goto fail;
	z->next = next; /* owned from here on */
	return &z->w;
nomem:
	vb_error_set(err, VB_E_FAIL, ENOMEM, "zstd: out of memory");
fail:
	if (z != NULL)
		zstd_release(z);
	return NULL;
}

static int zstd_flush_out(struct zstd_writer *z, struct vb_error *err)
{
	if (z->out_len == 0)
		return 0;
	if (vb_writer_write(z->next, z->out, z->out_len, err) < 0) {
		z->failed = true;
		return -1;
	}
	z->out_len = 0;
	return 0;
}

/* Feeds in to the compressor; with ZSTD_e_end, until the frame is complete. */
static int zstd_run(struct zstd_writer *z, ZSTD_inBuffer *in, ZSTD_EndDirective mode,
		    struct vb_error *err)
{
	for (;;) {
		ZSTD_outBuffer out = { z->out, z->out_cap, z->out_len };
		size_t r;

		if (out.pos == out.size) {
			if (zstd_flush_out(z, err) < 0)
				return -1;
			out.pos = 0;
		}
		if (!z->started) {
			/* The workers start here and inherit this thread's
			 * mask: signals must go to the caller's thread, whose
			 * blocked write they interrupt. */
			sigset_t all, old;

			sigfillset(&all);
			pthread_sigmask(SIG_BLOCK, &all, &old);
			r = ZSTD_compressStream2(z->cctx, &out, in, mode);
			pthread_sigmask(SIG_SETMASK, &old, NULL);
			z->started = true;
		} else {
			r = ZSTD_compressStream2(z->cctx, &out, in, mode);
		}
		z->frame_out += out.pos - z->out_len;
		z->out_len = out.pos;
		if (ZSTD_isError(r)) {
			z->failed = true;
			return vb_error_set(err, VB_E_FAIL, 0, "zstd: compression failed: %s",
					    ZSTD_getErrorName(r));
		}
		if (mode == ZSTD_e_end ? r == 0 : in->pos == in->size)
			return 0;
	}
}

/* Ends the current frame and records it in the seek table. */
static int end_frame(struct zstd_writer *z, struct vb_error *err)
{
	ZSTD_inBuffer in = { NULL, 0, 0 };

	if (z->nseek == z->seek_cap) {
		size_t cap = z->seek_cap ? 2 * z->seek_cap : 256;
		struct seek_entry *p = realloc(z->seek, cap * sizeof(*p));

		if (!p) {
			z->failed = true;
			return vb_error_set(err, VB_E_FAIL, ENOMEM, "zstd: out of memory");
		}
		z->seek = p;
		z->seek_cap = cap;
	}
	if (zstd_run(z, &in, ZSTD_e_end, err) < 0)
		return -1;
	if (z->frame_out > UINT32_MAX || z->frame_in > UINT32_MAX || z->nseek >= VB_SEEK_MAX_FRAMES) {
		z->failed = true;
		return vb_error_set(err, VB_E_FAIL, EFBIG, "zstd: frame too large for a seek table");
	}
	z->seek[z->nseek++] = (struct seek_entry){ (uint32_t)z->frame_out, (uint32_t)z->frame_in };
	z->frame_in = z->frame_out = 0;
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
	ZSTD_inBuffer in = { buf, len, 0 };

	if (z->failed)
		return vb_error_set(err, VB_E_FAIL, 0, "zstd: write after a failure");
	if (z->frame_in >= VB_ZSTD_FRAME_BYTES && end_frame(z, err) < 0)
		return -1;
	z->frame_in += len;
	return zstd_run(z, &in, ZSTD_e_continue, err);
}

static int zstd_close(struct vb_writer *w, struct vb_error *err)
{
	struct zstd_writer *z = (struct zstd_writer *)w;
	struct vb_writer *next = z->next;

	if (z->failed) {
		vb_error_set(err, VB_E_FAIL, 0, "zstd: close after a failure");
		goto fail;
	}
	if (end_frame(z, err) < 0 || zstd_flush_out(z, err) < 0 ||
	    write_seek_table(z, err) < 0)
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
