/* input_codec.c: the decoders of the input stack: zstd and gzip
 * in-process, lzop through libarchive (and the lzop program). */
#include <archive_entry.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd_errors.h>

#include "core/io/input_int.h"

/* libarchive's message when its decompressing program fails */
#define CHILD_EXIT "Child process exited with status "

/* ------------------------------------------------------------ libarchive */

static la_ssize_t ar_read_cb(struct archive *a, void *data, const void **buf)
{
	struct vb_reader *r = data;
	size_t n;

	if (r->in_pos == r->in_len) {
		if (r->in_eof)
			return 0;
		if (vb_in_refill(r, NULL) < 0) {
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

	if (r->src_failed) {
		if (err)
			*err = r->src_err;
		return -1;
	}
	if (r->io_errno != 0)
		return vb_in_read_error(r, r->io_errno, err);
	/* a decompressor killed (by the terminal's ^C, say) is no proof of a
	 * bad archive */
	if (m != NULL && strstr(m, "exited with signal") != NULL)
		return vb_error_set(err, VB_E_FAIL, 0, "%s: %s decompression stopped: %s",
				    r->name, vb_in_stream_name(r), m);
	if (m != NULL && strncmp(m, CHILD_EXIT, strlen(CHILD_EXIT)) == 0)
		return vb_error_set(err, VB_E_INVALID, 0, "%s: corrupt or truncated %s stream: "
				    "the %s program failed with exit status %s", r->name,
				    vb_in_stream_name(r), vb_in_stream_name(r), m + strlen(CHILD_EXIT));
	return vb_error_set(err, VB_E_INVALID, 0, "%s: corrupt or truncated %s stream: %s",
			    r->name, vb_in_stream_name(r), m != NULL ? m : "unknown error");
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

int vb_in_ar_open(struct vb_reader *r, struct vb_error *err)
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
		rc = archive_read_support_filter_program_signature(r->ar, LZOP_CMD, vb_in_magic_lzop,
								    sizeof(vb_in_magic_lzop));
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

ssize_t vb_in_ar_read(struct vb_reader *r, unsigned char *buf, size_t len,
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

int vb_in_gz_open(struct vb_reader *r, struct vb_error *err)
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
ssize_t vb_in_gz_read(struct vb_reader *r, unsigned char *buf, size_t len,
		       struct vb_error *err)
{
	size_t done = 0;

	while (done < len) {
		size_t chunk = len - done < UINT_MAX ? len - done : UINT_MAX, avail;
		int rc;

		if (r->in_pos == r->in_len && !r->in_eof && vb_in_refill(r, err) < 0)
			return -1;
		if (r->in_pos == r->in_len) {
			if (r->gz_end)
				break;
			return vb_error_set(err, VB_E_INVALID, 0, "%s: truncated gzip stream",
					    r->name);
		}
		if (r->gz_end) {
			if (r->in[r->in_pos] != vb_in_magic_gzip[0])
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

ssize_t vb_in_zstd_read(struct vb_reader *r, unsigned char *buf, size_t len,
			 struct vb_error *err)
{
	ZSTD_outBuffer out = { buf, len, 0 };

	while (out.pos < out.size) {
		ZSTD_inBuffer in;
		size_t before_out = out.pos, start = r->in_pos, z;

		if (r->in_pos == r->in_len && !r->in_eof && vb_in_refill(r, err) < 0)
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
