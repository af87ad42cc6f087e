/* rafile.c: random access to an archive's decompressed stream: a plain
 * VMA file read in place, or a zstd file in the seekable format (frames
 * compressed independently, a seek table in a trailing skippable frame),
 * of which only the frames a read touches are decompressed, each only as
 * far as the read needs. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "common/byteorder.h"
#include "core/io/crypt_int.h"

struct frame {
	uint64_t coff;    /* compressed offset in the file */
	uint64_t doff;    /* decompressed offset in the stream */
	uint32_t csize, dsize;
};

struct vb_rafile {
	int fd;
	char *name;
	enum vb_compression comp;
	uint64_t size;            /* of the decompressed stream */
	struct frame *frames;
	size_t nframes;
	/* the frame being decompressed: its bytes so far, and where it stands */
	ZSTD_DCtx *dctx;
	size_t cur;               /* frame index, or SIZE_MAX */
	unsigned char *dbuf;      /* dsize bytes */
	size_t dlen;              /* decompressed so far */
	unsigned char *cbuf;      /* the compressed frame */
	size_t cpos;              /* consumed of it */
	uint64_t frames_started;  /* for tests and figures */
	struct vb_decrypt *dec;   /* an encrypted file: its plaintext is read */
};

static int pread_full(struct vb_rafile *f, void *buf, size_t len, uint64_t off,
		      struct vb_error *err)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = f->dec ? vb_decrypt_pread(f->dec, (char *)buf + done, len - done,
						      off + done, err)
				   : pread(f->fd, (char *)buf + done, len - done, (off_t)(off + done));

		if (n < 0 && f->dec)
			return -1;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return vb_error_set(err, VB_E_FAIL, errno, "%s: read failed: %s", f->name,
					    strerror(errno));
		if (n == 0)
			return vb_error_set(err, VB_E_INVALID, 0, "%s: ends at byte %llu, inside "
					    "what its seek table describes", f->name,
					    (unsigned long long)(off + done));
		done += (size_t)n;
	}
	return 0;
}

/* The seek table at the end of a file of fsize bytes. */
static int load_seek_table(struct vb_rafile *f, uint64_t fsize, struct vb_error *err)
{
	unsigned char foot[VB_SEEK_FOOTER_SIZE], *tab;
	uint32_t n, fsz;
	size_t esize, tlen;
	uint64_t coff = 0, doff = 0;

	if (fsize < VB_SEEK_FOOTER_SIZE + 8 ||
	    pread_full(f, foot, sizeof(foot), fsize - sizeof(foot), err) < 0 ||
	    get_le32(foot + 5) != VB_SEEK_MAGIC)
		return vb_error_set(err, VB_E_USAGE, 0, "%s: a zstd archive without a seek "
				    "table (not written by this vmaback, or by an older one): "
				    "it can only be read from the start", f->name);
	n = get_le32(foot);
	if (foot[4] & 0x7c)
		return vb_error_set(err, VB_E_INVALID, 0, "%s: seek table: reserved bits set",
				    f->name);
	esize = foot[4] & 0x80 ? 12 : 8;
	tlen = 8 + (size_t)n * esize + VB_SEEK_FOOTER_SIZE;
	if (n == 0 || n > VB_SEEK_MAX_FRAMES || tlen > fsize)
		return vb_error_set(err, VB_E_INVALID, 0, "%s: seek table: bad frame count %u",
				    f->name, n);
	tab = malloc(tlen);
	f->frames = calloc(n, sizeof(*f->frames));
	if (!tab || !f->frames) {
		free(tab);
		return vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
	}
	if (pread_full(f, tab, tlen, fsize - tlen, err) < 0) {
		free(tab);
		return -1;
	}
	fsz = get_le32(tab + 4);
	if (get_le32(tab) != VB_SEEK_SKIPPABLE || fsz != tlen - 8) {
		free(tab);
		return vb_error_set(err, VB_E_INVALID, 0, "%s: seek table: bad frame header",
				    f->name);
	}
	for (uint32_t i = 0; i < n; i++) {
		const unsigned char *e = tab + 8 + (size_t)i * esize;

		f->frames[i] = (struct frame){ coff, doff, get_le32(e), get_le32(e + 4) };
		/* the buffers of a frame are as large as it says it is */
		if (f->frames[i].dsize > VB_SEEK_MAX_FRAME_BYTES ||
		    f->frames[i].csize > ZSTD_compressBound(VB_SEEK_MAX_FRAME_BYTES)) {
			free(tab);
			return vb_error_set(err, VB_E_INVALID, 0, "%s: seek table: frame %u "
					    "holds %u bytes (%u compressed), more than the limit "
					    "of %u (vmaback writes frames of about 1 MiB)", f->name,
					    i, f->frames[i].dsize, f->frames[i].csize,
					    VB_SEEK_MAX_FRAME_BYTES);
		}
		coff += f->frames[i].csize;
		doff += f->frames[i].dsize;
	}
	free(tab);
	f->nframes = n;
	if (coff != fsize - tlen)
		return vb_error_set(err, VB_E_INVALID, 0, "%s: seek table describes %llu bytes "
				    "of frames, the file holds %llu", f->name,
				    (unsigned long long)coff, (unsigned long long)(fsize - tlen));
	f->size = doff;
	f->dctx = ZSTD_createDCtx();
	if (!f->dctx || ZSTD_isError(ZSTD_DCtx_setParameter(f->dctx, ZSTD_d_windowLogMax,
							    VB_ZSTD_WINDOW_LOG_MAX)))
		return vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
	return 0;
}

struct vb_rafile *vb_rafile_open(const char *path, struct vb_error *err)
{
	struct vb_rafile *f = calloc(1, sizeof(*f));
	unsigned char magic[4];
	struct stat st;
	uint64_t fsize;
	ssize_t n;

	if (!f) {
		vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
		return NULL;
	}
	f->cur = SIZE_MAX;
	f->name = strdup(path);
	f->fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (!f->name || f->fd < 0) {
		vb_error_set(err, errno == ENOENT ? VB_E_USAGE : VB_E_FAIL, errno, "%s: %s", path,
			     strerror(errno));
		goto fail;
	}
	if (fstat(f->fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		vb_error_set(err, VB_E_USAGE, 0, "%s: not a regular file: serving needs "
			     "random access", path);
		goto fail;
	}
	do
		n = pread(f->fd, magic, sizeof(magic), 0);
	while (n < 0 && errno == EINTR);
	fsize = (uint64_t)st.st_size;
	if (n == 4 && memcmp(magic, VB_CRYPT_MAGIC, 4) == 0) {
		const struct vb_input_opts *o = vb_input_default_opts();

		f->dec = vb_decrypt_ra_new(f->fd, f->name, fsize, o ? o->keys : NULL,
					   o ? o->nkeys : 0, err);
		if (!f->dec)
			goto fail;
		fsize = vb_decrypt_size(f->dec);
		n = fsize >= 4 && pread_full(f, magic, 4, 0, err) == 0 ? 4 : -1;
		if (n < 0)
			goto fail;
	}
	if (n == 4 && memcmp(magic, "VMA", 4) == 0) {
		f->comp = VB_COMP_NONE;
		f->size = fsize;
		return f;
	}
	if (n == 4 && get_le32(magic) == ZSTD_MAGICNUMBER) {
		uint64_t size = fsize;
		uint8_t t[VB_SIG_TRAILER];

		/* a signed archive: the seek table is before the signature */
		if (size > VB_SIG_TRAILER &&
		    pread_full(f, t, sizeof(t), size - VB_SIG_TRAILER, err) == 0 &&
		    vb_sig_is_trailer(t))
			size -= VB_SIG_TRAILER;
		f->comp = VB_COMP_ZSTD;
		if (load_seek_table(f, size, err) < 0)
			goto fail;
		return f;
	}
	vb_error_set(err, VB_E_USAGE, 0, "%s: neither a plain VMA archive nor a seekable "
		     "zstd one: it can only be read from the start", path);
fail:
	vb_rafile_free(f);
	return NULL;
}

void vb_rafile_free(struct vb_rafile *f)
{
	if (!f)
		return;
	vb_decrypt_free(f->dec);
	if (f->fd >= 0)
		close(f->fd);
	ZSTD_freeDCtx(f->dctx);
	free(f->frames);
	free(f->dbuf);
	free(f->cbuf);
	free(f->name);
	free(f);
}

uint64_t vb_rafile_size(const struct vb_rafile *f)
{
	return f->size;
}

enum vb_compression vb_rafile_compression(const struct vb_rafile *f)
{
	return f->comp;
}

uint64_t vb_rafile_frames_started(const struct vb_rafile *f)
{
	return f->frames_started;
}

/* Frame i, decompressed from its start (when it is not the current one)
 * until at least need of its bytes are there. */
static int frame_fill(struct vb_rafile *f, size_t i, size_t need, struct vb_error *err)
{
	const struct frame *fr = &f->frames[i];

	if (f->cur != i) {
		unsigned char *c = realloc(f->cbuf, fr->csize ? fr->csize : 1);
		unsigned char *d = realloc(f->dbuf, fr->dsize ? fr->dsize : 1);

		if (c)
			f->cbuf = c;
		if (d)
			f->dbuf = d;
		if (!c || !d)
			return vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
		f->cur = SIZE_MAX;
		if (pread_full(f, f->cbuf, fr->csize, fr->coff, err) < 0)
			return -1;
		ZSTD_DCtx_reset(f->dctx, ZSTD_reset_session_only);
		f->cur = i;
		f->dlen = 0;
		f->cpos = 0;
		f->frames_started++;
	}
	while (f->dlen < need) {
		ZSTD_inBuffer in = { f->cbuf, fr->csize, f->cpos };
		/* a little at a time: an extent header costs one zstd block */
		size_t want = need - f->dlen < ZSTD_BLOCKSIZE_MAX ? ZSTD_BLOCKSIZE_MAX : need - f->dlen;
		ZSTD_outBuffer out = { f->dbuf + f->dlen,
				       want < fr->dsize - f->dlen ? want : fr->dsize - f->dlen, 0 };
		size_t r = ZSTD_decompressStream(f->dctx, &out, &in);

		f->cpos = in.pos;
		f->dlen += out.pos;
		if (ZSTD_isError(r)) {
			f->cur = SIZE_MAX;
			if (ZSTD_getErrorCode(r) == ZSTD_error_frameParameter_windowTooLarge)
				return vb_zstd_window_error(f->cbuf, fr->csize, f->name, err);
			return vb_error_set(err, VB_E_INVALID, 0, "%s: frame %zu: %s", f->name, i,
					    ZSTD_getErrorName(r));
		}
		if (r == 0 && f->dlen < fr->dsize) {
			f->cur = SIZE_MAX;
			return vb_error_set(err, VB_E_INVALID, 0, "%s: frame %zu holds %zu bytes, "
					    "its seek table says %u", f->name, i, f->dlen,
					    fr->dsize);
		}
		if (out.pos == 0 && in.pos == in.size && r != 0) {
			f->cur = SIZE_MAX;
			return vb_error_set(err, VB_E_INVALID, 0, "%s: frame %zu is truncated",
					    f->name, i);
		}
	}
	return 0;
}

/* The frame holding decompressed offset off (off < size). */
static size_t frame_of(const struct vb_rafile *f, uint64_t off)
{
	size_t lo = 0, hi = f->nframes;

	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;

		if (f->frames[mid].doff <= off)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

ssize_t vb_rafile_pread(struct vb_rafile *f, void *buf, size_t len, uint64_t off,
			struct vb_error *err)
{
	size_t done = 0;

	if (off >= f->size)
		return 0;
	if (len > f->size - off)
		len = (size_t)(f->size - off);
	if (f->comp == VB_COMP_NONE) {
		if (pread_full(f, buf, len, off, err) < 0)
			return -1;
		return (ssize_t)len;
	}
	while (done < len) {
		uint64_t at = off + done;
		size_t i = frame_of(f, at);
		size_t in = (size_t)(at - f->frames[i].doff);
		size_t n = f->frames[i].dsize - in;

		if (n > len - done)
			n = len - done;
		if (frame_fill(f, i, in + n, err) < 0)
			return -1;
		memcpy((char *)buf + done, f->dbuf + in, n);
		done += n;
	}
	return (ssize_t)done;
}
