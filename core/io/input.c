/* input.c: the input stack: opens an archive file or standard input,
 * decrypts an encrypted one, detects plain VMA, zstd, gzip or lzop by
 * content and decompresses it (input_codec.c); reads ahead on a thread. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/io/input_int.h"

#define PEEK_LEN 9 /* the longest magic: lzop's */


static const unsigned char magic_vma[] = { 'V', 'M', 'A', 0 };
static const unsigned char magic_zstd[] = { 0x28, 0xB5, 0x2F, 0xFD };
const unsigned char vb_in_magic_gzip[2] = { 0x1F, 0x8B };
const unsigned char vb_in_magic_lzop[9] = { 0x89, 0x4C, 0x5A, 0x4F, 0x00, 0x0D, 0x0A, 0x1A, 0x0A };

const char *vb_compression_name(enum vb_compression c)
{
	switch (c) {
	case VB_COMP_NONE: return "none";
	case VB_COMP_ZSTD: return "zstd";
	case VB_COMP_GZIP: return "gzip";
	case VB_COMP_LZO: return "lzo";
	}
	return "unknown";
}

const char *vb_in_stream_name(const struct vb_reader *r)
{
	return r->comp == VB_COMP_LZO ? "lzop" : vb_compression_name(r->comp);
}

int vb_in_read_error(struct vb_reader *r, int e, struct vb_error *err)
{
	return vb_error_set(err, VB_E_FAIL, e, "%s: read failed: %s", r->name, strerror(e));
}

/* The decryption's error, kept for libarchive's callback (which has no
 * error to fill). */
static int src_fail(struct vb_reader *r, const struct vb_error *e, struct vb_error *err)
{
	r->src_err = *e;
	r->src_failed = true;
	r->io_errno = e->sys_errno ? e->sys_errno : EBADMSG;
	if (err)
		*err = *e;
	return -1;
}

/* Up to len bytes (fewer only at the end) from the file or through the
 * decryption (read ahead on its own thread when it runs): the count, or
 * -1. */
static ssize_t src_read_full(struct vb_reader *r, unsigned char *buf, size_t len,
			     struct vb_error *err)
{
	struct vb_error e = { 0 };
	ssize_t n;

	if (!r->dec) {
		n = vb_io_read_full(r->fd, buf, len);
		return n < 0 ? vb_in_read_error(r, errno, err) : n;
	}
	n = r->dec_ahead ? vb_in_ahead_read(r->dec_ahead, buf, len, &e)
			 : vb_decrypt_read(r->dec, buf, len, &e);
	return n < 0 ? src_fail(r, &e, err) : n;
}

int vb_in_refill(struct vb_reader *r, struct vb_error *err)
{
	ssize_t n;

	r->in_pos = 0;
	r->in_len = 0;
	/* the decryption's next slot itself, not a copy */
	if (r->dec_ahead) {
		struct vb_error e = { 0 };

		n = vb_in_ahead_borrow(r->dec_ahead, &r->in, &e);
		if (n < 0)
			return src_fail(r, &e, err);
		r->in_eof = n == 0;
		r->in_len = (size_t)n;
		return 0;
	}
	if (r->dec) {
		n = src_read_full(r, r->in, VB_IO_BUFSIZE, err);
		if (n < 0)
			return -1;
		r->in_eof = n == 0;
		r->in_len = (size_t)n;
		return 0;
	}
	/* A pipe that stalls blocks until a signal: one that cancels ends it. */
	do
		n = read(r->fd, r->in, VB_IO_BUFSIZE);
	while (n < 0 && errno == EINTR && !vb_canceled());
	if (n < 0 && errno == EINTR) {
		r->io_errno = EINTR;
		return vb_error_set(err, VB_E_CANCELED, EINTR, "%s: interrupted", r->name);
	}
	if (n < 0) {
		r->io_errno = errno;
		return vb_in_read_error(r, r->io_errno, err);
	}
	if (n == 0)
		r->in_eof = true;
	r->in_len = (size_t)n;
	return 0;
}

static bool has_magic(const struct vb_reader *r, const unsigned char *m, size_t len)
{
	return r->in_len >= len && memcmp(r->in, m, len) == 0;
}

static bool has_zstd_magic(const struct vb_reader *r)
{
	/* a zstd frame, or a skippable frame (pzstd starts with one) */
	return has_magic(r, magic_zstd, sizeof(magic_zstd)) ||
	       (r->in_len >= 4 && (r->in[0] & 0xF0) == 0x50 && r->in[1] == 0x2A &&
		r->in[2] == 0x4D && r->in[3] == 0x18);
}

/* Reads the first bytes, which stay in the buffer to be replayed: a pipe
 * cannot seek back. */
static int detect(struct vb_reader *r, const struct vb_input_opts *o, struct vb_error *err)
{
	ssize_t n = vb_io_read_full(r->fd, r->in, PEEK_LEN);

	if (n < 0)
		return vb_in_read_error(r, errno, err);
	if (n >= VB_CRYPT_MAGIC_LEN && memcmp(r->in, VB_CRYPT_MAGIC, VB_CRYPT_MAGIC_LEN) == 0) {
		r->dec = vb_decrypt_new(r->fd, r->name, r->in, (size_t)n, o ? o->keys : NULL,
					o ? o->nkeys : 0, err);
		if (!r->dec)
			return -1;
		n = src_read_full(r, r->in, PEEK_LEN, err);
		if (n < 0)
			return -1;
	}
	r->in_len = (size_t)n;
	r->in_eof = n < PEEK_LEN;
	if (n == 0)
		return vb_error_set(err, VB_E_INVALID, 0,
				    "%s: empty input, not a VMA archive", r->name);
	if (has_magic(r, magic_vma, sizeof(magic_vma)))
		r->comp = VB_COMP_NONE;
	else if (has_zstd_magic(r))
		r->comp = VB_COMP_ZSTD;
	else if (has_magic(r, vb_in_magic_gzip, sizeof(vb_in_magic_gzip)))
		r->comp = VB_COMP_GZIP;
	else if (has_magic(r, vb_in_magic_lzop, sizeof(vb_in_magic_lzop)))
		r->comp = VB_COMP_LZO;
	else
		return vb_error_set(err, VB_E_INVALID, 0, "%s: not a VMA archive (unknown "
				    "format; expected VMA, zstd, gzip or lzop)", r->name);
	return 0;
}

/* ------------------------------------------------------------ plain */

static ssize_t plain_read(struct vb_reader *r, unsigned char *buf, size_t len,
			  struct vb_error *err)
{
	size_t done = 0;
	ssize_t n;

	if (r->in_pos < r->in_len) {
		done = r->in_len - r->in_pos < len ? r->in_len - r->in_pos : len;
		memcpy(buf, r->in + r->in_pos, done);
		r->in_pos += done;
	}
	if (done < len && !r->in_eof) {
		/* straight into the caller's buffer: no copy */
		n = src_read_full(r, buf + done, len - done, err);
		if (n < 0)
			return -1;
		if ((size_t)n < len - done)
			r->in_eof = true;
		done += (size_t)n;
	}
	r->raw_bytes += done;
	return (ssize_t)done;
}

/* ------------------------------------------------------------ read-ahead
 * (input_ahead.c) */

static ssize_t decrypt_fill(struct vb_reader *r, unsigned char *buf, size_t len,
			    struct vb_error *err)
{
	return vb_decrypt_read(r->dec, buf, len, err);
}

static ssize_t decode(struct vb_reader *r, unsigned char *buf, size_t len,
		      struct vb_error *err);

/* The decoding stage first: it may be reading from the decryption's. */
static void ahead_free(struct vb_reader *r)
{
	vb_in_ahead_free(r->ahead);
	r->ahead = NULL;
	vb_in_ahead_free(r->dec_ahead);
	r->dec_ahead = NULL;
}

/* The helpers of a regular file: decryption, decompression. */
static void ahead_start(struct vb_reader *r)
{
	struct stat st;

	if (fstat(r->fd, &st) < 0 || !S_ISREG(st.st_mode))
		return;
	if (r->dec)
		r->dec_ahead = vb_in_ahead_new(r, decrypt_fill, false);
	if (r->comp == VB_COMP_ZSTD || r->comp == VB_COMP_GZIP)
		r->ahead = vb_in_ahead_new(r, decode, true);
}

/* ------------------------------------------------------------ public */

static int input_open_fd(struct vb_reader *r, const char *path, struct vb_error *err)
{
	struct stat st;
	int e;

	if (strcmp(path, "-") == 0) {
		r->fd = STDIN_FILENO;
		return 0;
	}
	r->fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (r->fd < 0) {
		e = errno;
		return vb_error_set(err, (e == ENOENT || e == ENOTDIR || e == EACCES ||
					  e == ELOOP || e == ENAMETOOLONG) ? VB_E_USAGE
									   : VB_E_FAIL,
				    e, "%s: %s", path, strerror(e));
	}
	r->own_fd = true;
	if (fstat(r->fd, &st) < 0) {
		e = errno;
		return vb_error_set(err, VB_E_FAIL, e, "%s: %s", path, strerror(e));
	}
	if (S_ISDIR(st.st_mode))
		return vb_error_set(err, VB_E_USAGE, EISDIR, "%s: is a directory", path);
	return 0;
}

/* The command line's keys (cli/ sets them once, before any reader opens). */
static const struct vb_input_opts *default_opts;

void vb_input_set_default(const struct vb_input_opts *o)
{
	default_opts = o;
}

const struct vb_input_opts *vb_input_default_opts(void)
{
	return default_opts;
}

struct vb_reader *vb_input_open_opts(const char *path, int fd, const struct vb_input_opts *o,
				     struct vb_error *err)
{
	struct vb_reader *r;

	if (path == NULL || *path == '\0') {
		vb_error_set(err, VB_E_USAGE, EINVAL, "empty input file name");
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	r = calloc(1, sizeof(*r));
	if (r == NULL) {
		vb_error_set(err, VB_E_FAIL, ENOMEM, "%s: out of memory", path);
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	r->fd = fd;
	r->own_fd = fd >= 0;
	r->zret = 1; /* the input must start a frame */
	r->name = strdup(strcmp(path, "-") == 0 && fd < 0 ? "standard input" : path);
	r->in = r->in_buf = malloc(VB_IO_BUFSIZE);
	if (r->name == NULL || r->in == NULL) {
		vb_error_set(err, VB_E_FAIL, ENOMEM, "%s: out of memory", path);
		goto fail;
	}
	if ((fd < 0 && input_open_fd(r, path, err) < 0) || detect(r, o, err) < 0)
		goto fail;
	if (r->comp == VB_COMP_ZSTD) {
		r->dctx = ZSTD_createDCtx();
		if (r->dctx == NULL ||
		    ZSTD_isError(ZSTD_DCtx_setParameter(r->dctx, ZSTD_d_windowLogMax,
							VB_ZSTD_WINDOW_LOG_MAX))) {
			vb_error_set(err, VB_E_FAIL, ENOMEM, "%s: out of memory", r->name);
			goto fail;
		}
	} else if (r->comp == VB_COMP_GZIP) {
		if (vb_in_gz_open(r, err) < 0)
			goto fail;
	} else if (r->comp == VB_COMP_LZO && vb_in_ar_open(r, err) < 0) {
		goto fail;
	}
	ahead_start(r);
	return r;
fail:
	vb_reader_free(r);
	return NULL;
}

struct vb_reader *vb_input_open(const char *path, struct vb_error *err)
{
	return vb_input_open_opts(path, -1, default_opts, err);
}

struct vb_reader *vb_input_open_fd(int fd, const char *name, struct vb_error *err)
{
	return vb_input_open_opts(name, fd, default_opts, err);
}

ssize_t vb_reader_read(struct vb_reader *r, void *buf, size_t len, struct vb_error *err)
{
	ssize_t n;

	if (r == NULL || (buf == NULL && len > 0))
		return vb_error_set(err, VB_E_FAIL, EINVAL, "input: invalid read request");
	if (r->failed)
		return vb_error_set(err, VB_E_FAIL, 0, "%s: read after an error", r->name);
	if (len == 0)
		return 0;
	if (len > SSIZE_MAX)
		len = SSIZE_MAX;
	n = r->ahead ? vb_in_ahead_read(r->ahead, buf, len, err) : decode(r, buf, len, err);
	if (n < 0)
		r->failed = true;
	return n;
}

static ssize_t decode(struct vb_reader *r, unsigned char *buf, size_t len,
		      struct vb_error *err)
{
	ssize_t n;

	switch (r->comp) {
	case VB_COMP_ZSTD:
		n = vb_in_zstd_read(r, buf, len, err);
		break;
	case VB_COMP_GZIP:
		n = vb_in_gz_read(r, buf, len, err);
		break;
	case VB_COMP_LZO:
		n = vb_in_ar_read(r, buf, len, err);
		break;
	default:
		n = plain_read(r, buf, len, err);
		break;
	}
	return n;
}

const uint8_t *vb_reader_key_id(const struct vb_reader *r)
{
	return r != NULL && r->dec != NULL ? vb_decrypt_key_id(r->dec) : NULL;
}

enum vb_compression vb_reader_compression(const struct vb_reader *r)
{
	return r != NULL ? r->comp : VB_COMP_NONE;
}

uint64_t vb_reader_raw_bytes(const struct vb_reader *r)
{
	if (r == NULL)
		return 0;
	return r->ahead ? vb_in_ahead_raw_bytes(r->ahead) : r->raw_bytes;
}

void vb_reader_free(struct vb_reader *r)
{
	if (r == NULL)
		return;
	ahead_free(r);
	if (r->ar != NULL)
		archive_read_free(r->ar); /* reaps a "lzop -d" child */
	vb_decrypt_free(r->dec);
	ZSTD_freeDCtx(r->dctx);
	if (r->zs_ready)
		inflateEnd(&r->zs);
	if (r->own_fd && r->fd >= 0)
		close(r->fd);
	free(r->in_buf);
	free(r->name);
	free(r);
}
