/* input_int.h: what the two halves of the input stack share: the reader
 * (input.c: opening, detection, plain, read-ahead) and its decoders
 * (input_codec.c: zstd, gzip, lzop). Private to core/io. */
#ifndef VMABACK_INPUT_INT_H
#define VMABACK_INPUT_INT_H

#ifndef VB_MODULE_io
#error "core/io/input_int.h is private to core/io: include core/io/io.h"
#endif

#include <archive.h>
#include <zlib.h>
#include <zstd.h>

#include "core/io/crypt_int.h"

struct vb_reader {
	int fd;
	bool own_fd;            /* false for standard input */
	char *name;             /* path, or "standard input", for messages */
	enum vb_compression comp;
	uint64_t raw_bytes;     /* consumed from fd by the decoder */
	unsigned char *in;      /* bytes read from fd, the peeked ones first: in_buf,
				 * or a slot lent by the decryption's helper */
	unsigned char *in_buf;
	size_t in_pos, in_len;
	bool in_eof;
	int io_errno;           /* the last read error, met maybe inside libarchive */
	ZSTD_DCtx *dctx;
	size_t zret;            /* last ZSTD_decompressStream() result: 0 = frame done */
	z_stream zs;
	bool zs_ready;          /* inflateInit2() done: inflateEnd() on free */
	bool gz_end;            /* a gzip member just ended: the input may end here */
	struct archive *ar;
	bool failed;
	struct ahead *ahead;    /* decompressing on a helper thread, or NULL */
	struct ahead *dec_ahead; /* decrypting on another one, or NULL */
	struct vb_decrypt *dec; /* an encrypted input's decryption, or NULL */
	struct vb_error src_err; /* its error, met maybe inside libarchive */
	bool src_failed;
};

extern const unsigned char vb_in_magic_gzip[2], vb_in_magic_lzop[9];

/* "lzop" or the compression's name, for messages. */
const char *vb_in_stream_name(const struct vb_reader *r);
int vb_in_read_error(struct vb_reader *r, int e, struct vb_error *err);
/* One read into the empty input buffer (through the decryption of an
 * encrypted input); sets in_eof at the end. */
int vb_in_refill(struct vb_reader *r, struct vb_error *err);

int vb_in_ar_open(struct vb_reader *r, struct vb_error *err);
ssize_t vb_in_ar_read(struct vb_reader *r, unsigned char *buf, size_t len, struct vb_error *err);
int vb_in_gz_open(struct vb_reader *r, struct vb_error *err);
ssize_t vb_in_gz_read(struct vb_reader *r, unsigned char *buf, size_t len, struct vb_error *err);
ssize_t vb_in_zstd_read(struct vb_reader *r, unsigned char *buf, size_t len,
			struct vb_error *err);

/* Read-ahead (input_ahead.c): a helper thread runs fill (r, a buffer of
 * VB_IO_BUFSIZE) into a ring until it returns less; NULL when no thread
 * could start (the reader then does the work itself). counts_raw: fill
 * is the decoder, which keeps r->raw_bytes (read nowhere else). */
typedef ssize_t (*vb_in_fill_fn)(struct vb_reader *r, unsigned char *buf, size_t len,
				 struct vb_error *err);
struct ahead *vb_in_ahead_new(struct vb_reader *r, vb_in_fill_fn fill, bool counts_raw);
/* Stops the thread and frees the stage; NULL is a no-op. */
void vb_in_ahead_free(struct ahead *a);
/* The next bytes in order, as fill gave them: the count (short only at
 * the end), or -1 with the helper's error, after the bytes before it. */
ssize_t vb_in_ahead_read(struct ahead *a, unsigned char *buf, size_t len,
			 struct vb_error *err);
/* The next slot lent whole (*p) until the next call: its length, 0 at the
 * end, or -1. */
ssize_t vb_in_ahead_borrow(struct ahead *a, unsigned char **p, struct vb_error *err);
/* r->raw_bytes as of the slots handed out (for a decoding stage). */
uint64_t vb_in_ahead_raw_bytes(struct ahead *a);

#endif
