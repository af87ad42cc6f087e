/* input.c: the input stack: opens an archive file or standard input,
 * detects plain VMA, zstd, gzip or lzop by content and decompresses it:
 * zstd and gzip in-process, lzop through libarchive (and the lzop program). */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "core/io/io_int.h"

#define PEEK_LEN 9 /* the longest magic: lzop's */
/* libarchive's message when its decompressing program fails */
#define CHILD_EXIT "Child process exited with status "

struct vb_reader {
	int fd;
	bool own_fd;            /* false for standard input */
	char *name;             /* path, or "standard input", for messages */
	enum vb_compression comp;
	uint64_t raw_bytes;     /* consumed from fd by the decoder */
	unsigned char *in;      /* bytes read from fd, the peeked ones first */
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
};

static const unsigned char magic_vma[] = { 'V', 'M', 'A', 0 };
static const unsigned char magic_zstd[] = { 0x28, 0xB5, 0x2F, 0xFD };
static const unsigned char magic_gzip[] = { 0x1F, 0x8B };
static const unsigned char magic_lzop[] = { 0x89, 0x4C, 0x5A, 0x4F, 0x00, 0x0D, 0x0A, 0x1A, 0x0A };

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

static const char *stream_name(const struct vb_reader *r)
{
	return r->comp == VB_COMP_LZO ? "lzop" : vb_compression_name(r->comp);
}

static int read_error(struct vb_reader *r, int e, struct vb_error *err)
{
	return vb_error_set(err, VB_E_FAIL, e, "%s: read failed: %s", r->name, strerror(e));
}

/* One read() into the empty input buffer; sets in_eof at the end. */
static int in_refill(struct vb_reader *r, struct vb_error *err)
{
	ssize_t n;

	r->in_pos = 0;
	r->in_len = 0;
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
		return read_error(r, r->io_errno, err);
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
static int detect(struct vb_reader *r, struct vb_error *err)
{
	ssize_t n = vb_io_read_full(r->fd, r->in, PEEK_LEN);

	if (n < 0)
		return read_error(r, errno, err);
	r->in_len = (size_t)n;
	r->in_eof = n < PEEK_LEN;
	if (n == 0)
		return vb_error_set(err, VB_E_INVALID, 0,
				    "%s: empty input, not a VMA archive", r->name);
	if (has_magic(r, magic_vma, sizeof(magic_vma)))
		r->comp = VB_COMP_NONE;
	else if (has_zstd_magic(r))
		r->comp = VB_COMP_ZSTD;
	else if (has_magic(r, magic_gzip, sizeof(magic_gzip)))
		r->comp = VB_COMP_GZIP;
	else if (has_magic(r, magic_lzop, sizeof(magic_lzop)))
		r->comp = VB_COMP_LZO;
	else
		return vb_error_set(err, VB_E_INVALID, 0, "%s: not a VMA archive (unknown "
				    "format; expected VMA, zstd, gzip or lzop)", r->name);
	return 0;
}

/* ------------------------------------------------------------ libarchive */

static la_ssize_t ar_read_cb(struct archive *a, void *data, const void **buf)
{
	struct vb_reader *r = data;
	size_t n;

	if (r->in_pos == r->in_len) {
		if (r->in_eof)
			return 0;
		if (in_refill(r, NULL) < 0) {
			archive_set_error(a, r->io_errno, "read failed");
			return -1;
		}
	}
	n = r->in_len - r->in_pos;
	*buf = r->in + r->in_pos;
	r->in_pos = r->in_len;
	r->raw_bytes += n;
	return (la_ssize_t)n;
}

static int ar_error(struct vb_reader *r, struct vb_error *err)
{
	const char *m = archive_error_string(r->ar);

	if (r->io_errno != 0)
		return read_error(r, r->io_errno, err);
	/* a decompressor killed (by the terminal's ^C, say) is no proof of a
	 * bad archive */
	if (m != NULL && strstr(m, "exited with signal") != NULL)
		return vb_error_set(err, VB_E_FAIL, 0, "%s: %s decompression stopped: %s",
				    r->name, stream_name(r), m);
	if (m != NULL && strncmp(m, CHILD_EXIT, strlen(CHILD_EXIT)) == 0)
		return vb_error_set(err, VB_E_INVALID, 0, "%s: corrupt or truncated %s stream: "
				    "the %s program failed with exit status %s", r->name,
				    stream_name(r), stream_name(r), m + strlen(CHILD_EXIT));
	return vb_error_set(err, VB_E_INVALID, 0, "%s: corrupt or truncated %s stream: %s",
			    r->name, stream_name(r), m != NULL ? m : "unknown error");
}

/* lzop goes through libarchive. Debian builds it without liblzo2, so it
 * would run "lzop -d", whose complaints ("lzop: Inappropriate ioctl for
 * device: <stdin>" for a truncated file) would land on our stderr beside
 * our own message; libarchive cannot redirect them, so a shell does: the
 * reason is lost, the exit status stays. */
#define LZOP_CMD "/bin/sh -c \"exec lzop -dc 2>/dev/null\""

static bool program_in_path(const char *prog)
{
	const char *path = getenv("PATH");
	bool found = false;

	if (path == NULL || *path == '\0')
		path = "/usr/local/bin:/usr/bin:/bin";
	while (!found) {
		const char *end = strchr(path, ':');
		size_t len = end != NULL ? (size_t)(end - path) : strlen(path);
		char *file = NULL;

		if (len > (size_t)INT32_MAX)
			break;
		if (asprintf(&file, "%.*s%s%s", (int)len, path, len > 0 ? "/" : "", prog) < 0)
			break;
		found = access(file, X_OK) == 0;
		free(file);
		if (end == NULL)
			break;
		path = end + 1;
	}
	return found;
}

/* Whether this libarchive decodes lzop itself (built with liblzo2). */
static bool lzop_native(void)
{
	struct archive *a = archive_read_new();
	bool native = a != NULL && archive_read_support_filter_lzop(a) == ARCHIVE_OK;

	archive_read_free(a);
	return native;
}

static int ar_open(struct vb_reader *r, struct vb_error *err)
{
	struct archive_entry *entry;
	int rc;

	r->ar = archive_read_new();
	if (r->ar == NULL)
		return vb_error_set(err, VB_E_FAIL, ENOMEM, "%s: out of memory", r->name);
	if (!lzop_native()) {
		if (!program_in_path("lzop"))
			return vb_error_set(err, VB_E_FAIL, ENOENT, "%s: reading lzop input "
					    "needs the lzop program, which is not in PATH",
					    r->name);
		rc = archive_read_support_filter_program_signature(r->ar, LZOP_CMD, magic_lzop,
								    sizeof(magic_lzop));
	} else {
		rc = archive_read_support_filter_lzop(r->ar);
	}
	if (rc != ARCHIVE_OK || archive_read_support_format_raw(r->ar) != ARCHIVE_OK)
		return vb_error_set(err, VB_E_FAIL, 0, "%s: libarchive cannot read lzop: %s",
				    r->name, archive_error_string(r->ar));
	if (archive_read_open(r->ar, r, NULL, ar_read_cb, NULL) != ARCHIVE_OK)
		return ar_error(r, err);
	rc = archive_read_next_header(r->ar, &entry);
	if (rc != ARCHIVE_OK)
		return rc == ARCHIVE_EOF
			? vb_error_set(err, VB_E_INVALID, 0, "%s: empty lzop stream, not a VMA "
				       "archive", r->name)
			: ar_error(r, err);
	return 0;
}

static ssize_t ar_read(struct vb_reader *r, unsigned char *buf, size_t len,
		       struct vb_error *err)
{
	size_t done = 0;

	while (done < len) {
		la_ssize_t n = archive_read_data(r->ar, buf + done, len - done);

		if (n < 0)
			return ar_error(r, err);
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

/* ------------------------------------------------------------ gzip */

static int gz_open(struct vb_reader *r, struct vb_error *err)
{
	/* gzip members only: a zlib or raw deflate stream is not a gzip file */
	int rc = inflateInit2(&r->zs, 16 + MAX_WBITS);

	if (rc != Z_OK)
		return vb_error_set(err, VB_E_FAIL, rc == Z_MEM_ERROR ? ENOMEM : 0,
				    "%s: cannot start the gzip decoder: %s", r->name,
				    r->zs.msg != NULL ? r->zs.msg : zError(rc));
	r->zs_ready = true;
	return 0;
}

static int gz_corrupt(struct vb_reader *r, const char *why, struct vb_error *err)
{
	return vb_error_set(err, VB_E_INVALID, 0, "%s: corrupt gzip stream: %s", r->name,
			    why != NULL ? why : "unknown error");
}

/* Members follow each other (gzip -c a b, pigz); zlib checks each one's
 * CRC-32 and length. The input may end only right after a member, and
 * anything else after one is refused: gzip would warn "trailing garbage
 * ignored", a backup reader must not guess. */
static ssize_t gz_read(struct vb_reader *r, unsigned char *buf, size_t len,
		       struct vb_error *err)
{
	size_t done = 0;

	while (done < len) {
		size_t chunk = len - done < UINT_MAX ? len - done : UINT_MAX, avail;
		int rc;

		if (r->in_pos == r->in_len && !r->in_eof && in_refill(r, err) < 0)
			return -1;
		if (r->in_pos == r->in_len) {
			if (r->gz_end)
				break;
			return vb_error_set(err, VB_E_INVALID, 0, "%s: truncated gzip stream",
					    r->name);
		}
		if (r->gz_end) {
			if (r->in[r->in_pos] != magic_gzip[0])
				return gz_corrupt(r, "trailing garbage after a gzip member", err);
			if (inflateReset(&r->zs) != Z_OK)
				return gz_corrupt(r, r->zs.msg, err);
			r->gz_end = false;
		}
		avail = r->in_len - r->in_pos; /* <= VB_IO_BUFSIZE: fits a uInt */
		r->zs.next_in = r->in + r->in_pos;
		r->zs.avail_in = (uInt)avail;
		r->zs.next_out = buf + done;
		r->zs.avail_out = (uInt)chunk;
		rc = inflate(&r->zs, Z_NO_FLUSH);
		r->in_pos += avail - r->zs.avail_in;
		r->raw_bytes += avail - r->zs.avail_in;
		done += chunk - r->zs.avail_out;
		if (rc == Z_STREAM_END) {
			r->gz_end = true;
		} else if (rc == Z_MEM_ERROR) {
			return vb_error_set(err, VB_E_FAIL, ENOMEM, "%s: out of memory", r->name);
		} else if (rc == Z_BUF_ERROR) {
			/* no progress with input and room for output: never loop on it */
			if (r->zs.avail_in > 0)
				return gz_corrupt(r, "the decoder is stuck", err);
		} else if (rc != Z_OK) {
			/* Z_DATA_ERROR: "incorrect data check" (CRC-32), "incorrect
			 * length check", "incorrect header check", ... */
			return gz_corrupt(r, r->zs.msg, err);
		}
	}
	return (ssize_t)done;
}

/* ------------------------------------------------------------ zstd */

/* z failed on input that started at r->in + start (a frame's header, when
 * the window is what failed). */
static int zstd_fail(struct vb_reader *r, size_t z, size_t start, struct vb_error *err)
{
	switch (ZSTD_getErrorCode(z)) {
	case ZSTD_error_frameParameter_windowTooLarge:
		return vb_zstd_window_error(r->in + start, r->in_len - start, r->name, err);
	case ZSTD_error_memory_allocation:
		return vb_error_set(err, VB_E_FAIL, ENOMEM,
				    "%s: out of memory for the zstd stream's window (a stream "
				    "written with zstd --long=N needs 2^N bytes)", r->name);
	default:
		return vb_error_set(err, VB_E_INVALID, 0, "%s: corrupt zstd stream: %s",
				    r->name, ZSTD_getErrorName(z));
	}
}

static ssize_t zstd_read(struct vb_reader *r, unsigned char *buf, size_t len,
			 struct vb_error *err)
{
	ZSTD_outBuffer out = { buf, len, 0 };

	while (out.pos < out.size) {
		ZSTD_inBuffer in;
		size_t before_out = out.pos, start = r->in_pos, z;

		if (r->in_pos == r->in_len && !r->in_eof && in_refill(r, err) < 0)
			return -1;
		/* The end is clean only right after a complete frame. */
		if (r->in_pos == r->in_len && r->in_eof && r->zret == 0)
			break;
		in = (ZSTD_inBuffer){ r->in, r->in_len, r->in_pos };
		z = ZSTD_decompressStream(r->dctx, &out, &in);
		r->raw_bytes += in.pos - r->in_pos;
		r->in_pos = in.pos;
		if (ZSTD_isError(z))
			return zstd_fail(r, z, start, err);
		r->zret = z;
		if (r->in_pos == r->in_len && r->in_eof && out.pos == before_out && z != 0)
			return vb_error_set(err, VB_E_INVALID, 0, "%s: truncated zstd stream",
					    r->name);
	}
	return (ssize_t)out.pos;
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
		n = vb_io_read_full(r->fd, buf + done, len - done);
		if (n < 0)
			return read_error(r, errno, err);
		if ((size_t)n < len - done)
			r->in_eof = true;
		done += (size_t)n;
	}
	r->raw_bytes += done;
	return (ssize_t)done;
}

/* ------------------------------------------------------------ read-ahead */

/* Decompressing a regular file on a helper thread: it fills a small ring
 * of buffers while the caller checks extents and writes the drives, so the
 * two overlap (zstd -d alone keeps one core busy). Only for files: a read
 * from a regular file cannot block forever, so the caller never waits on a
 * helper that a signal could not wake. The caller sees the same bytes and
 * the same errors, in the same order. */
#define AHEAD_SLOTS 4

struct ahead {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t filled;  /* the caller waits for a slot or the end */
	pthread_cond_t freed;   /* the helper waits for a free slot */
	unsigned char *ring;    /* AHEAD_SLOTS * VB_IO_BUFSIZE */
	size_t len[AHEAD_SLOTS];
	unsigned head, tail, pending;
	size_t pos;             /* read offset in the tail slot */
	bool done;              /* the helper ended: end of input or error */
	bool stop;              /* the caller is freeing the reader */
	struct vb_error err;    /* the helper's error, after its slots */
	bool error;
	uint64_t raw_bytes;     /* compressed bytes behind the slots handed out */
};

static ssize_t decode(struct vb_reader *r, unsigned char *buf, size_t len,
		      struct vb_error *err);

static void *ahead_thread(void *opaque)
{
	struct vb_reader *r = opaque;
	struct ahead *a = r->ahead;
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
		n = decode(r, a->ring + (size_t)h * VB_IO_BUFSIZE, VB_IO_BUFSIZE, &err);
		pthread_mutex_lock(&a->lock);
		if (n > 0) {
			a->len[h] = (size_t)n;
			a->head = (h + 1) % AHEAD_SLOTS;
			a->pending++;
		}
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

static ssize_t ahead_read(struct vb_reader *r, unsigned char *buf, size_t len,
			  struct vb_error *err)
{
	struct ahead *a = r->ahead;
	size_t done = 0;

	pthread_mutex_lock(&a->lock);
	while (done < len) {
		unsigned t = a->tail;
		size_t n;

		while (a->pending == 0 && !a->done)
			pthread_cond_wait(&a->filled, &a->lock);
		if (a->pending == 0) {
			if (a->error) {
				*err = a->err;
				pthread_mutex_unlock(&a->lock);
				return -1;
			}
			break;
		}
		/* copying outside the lock: the helper never touches a full slot */
		n = a->len[t] - a->pos < len - done ? a->len[t] - a->pos : len - done;
		pthread_mutex_unlock(&a->lock);
		memcpy(buf + done, a->ring + (size_t)t * VB_IO_BUFSIZE + a->pos, n);
		pthread_mutex_lock(&a->lock);
		done += n;
		a->pos += n;
		if (a->pos == a->len[t]) {
			a->pos = 0;
			a->tail = (t + 1) % AHEAD_SLOTS;
			a->pending--;
			pthread_cond_signal(&a->freed);
		}
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

static void ahead_free(struct vb_reader *r)
{
	struct ahead *a = r->ahead;

	if (!a)
		return;
	pthread_mutex_lock(&a->lock);
	a->stop = true;
	pthread_cond_signal(&a->freed);
	pthread_mutex_unlock(&a->lock);
	pthread_join(a->thread, NULL);
	ahead_destroy(a);
	r->ahead = NULL;
}

/* Starts the helper for a compressed regular file; without one (no
 * memory, no thread) the caller decompresses, as before. */
static void ahead_start(struct vb_reader *r)
{
	struct ahead *a;
	struct stat st;
	sigset_t all, old;
	int rc;

	if ((r->comp != VB_COMP_ZSTD && r->comp != VB_COMP_GZIP) || fstat(r->fd, &st) < 0 ||
	    !S_ISREG(st.st_mode))
		return;
	a = calloc(1, sizeof(*a));
	if (!a)
		return;
	a->ring = malloc(AHEAD_SLOTS * VB_IO_BUFSIZE);
	if (!a->ring || pthread_mutex_init(&a->lock, NULL) != 0) {
		free(a->ring);
		free(a);
		return;
	}
	pthread_cond_init(&a->filled, NULL);
	pthread_cond_init(&a->freed, NULL);
	r->ahead = a;
	/* signals go to the caller's thread, as without the helper */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	rc = pthread_create(&a->thread, NULL, ahead_thread, r);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		ahead_destroy(a);
		r->ahead = NULL;
	}
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

/* path, or fd >= 0 (owned from here on) read under the name path. */
static struct vb_reader *input_open(const char *path, int fd, struct vb_error *err)
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
	r->in = malloc(VB_IO_BUFSIZE);
	if (r->name == NULL || r->in == NULL) {
		vb_error_set(err, VB_E_FAIL, ENOMEM, "%s: out of memory", path);
		goto fail;
	}
	if ((fd < 0 && input_open_fd(r, path, err) < 0) || detect(r, err) < 0)
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
		if (gz_open(r, err) < 0)
			goto fail;
	} else if (r->comp == VB_COMP_LZO && ar_open(r, err) < 0) {
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
	return input_open(path, -1, err);
}

struct vb_reader *vb_input_open_fd(int fd, const char *name, struct vb_error *err)
{
	return input_open(name, fd, err);
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
	n = r->ahead ? ahead_read(r, buf, len, err) : decode(r, buf, len, err);
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
		n = zstd_read(r, buf, len, err);
		break;
	case VB_COMP_GZIP:
		n = gz_read(r, buf, len, err);
		break;
	case VB_COMP_LZO:
		n = ar_read(r, buf, len, err);
		break;
	default:
		n = plain_read(r, buf, len, err);
		break;
	}
	return n;
}

enum vb_compression vb_reader_compression(const struct vb_reader *r)
{
	return r != NULL ? r->comp : VB_COMP_NONE;
}

uint64_t vb_reader_raw_bytes(const struct vb_reader *r)
{
	uint64_t n;

	if (r == NULL)
		return 0;
	if (r->ahead == NULL)
		return r->raw_bytes;
	pthread_mutex_lock(&r->ahead->lock);
	n = r->ahead->raw_bytes;
	pthread_mutex_unlock(&r->ahead->lock);
	return n;
}

void vb_reader_free(struct vb_reader *r)
{
	if (r == NULL)
		return;
	ahead_free(r);
	if (r->ar != NULL)
		archive_read_free(r->ar); /* reaps a "lzop -d" child */
	ZSTD_freeDCtx(r->dctx);
	if (r->zs_ready)
		inflateEnd(&r->zs);
	if (r->own_fd && r->fd >= 0)
		close(r->fd);
	free(r->in);
	free(r->name);
	free(r);
}
