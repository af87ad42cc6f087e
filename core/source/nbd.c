/* nbd.c: drives read over NBD with libnbd: an export given by URI,
 * or an image file served by a qemu-nbd that libnbd starts and stops. */
#include <errno.h>
#include <fcntl.h>
#include <libnbd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bitmap/bitmap.h"
#include "core/source/source_int.h"

/* One block-status request: under 4 GiB (libnbd 1.14 has only 32-bit
 * lengths; replies may cover less, so callers loop), and large enough that
 * a sparse disk takes few round trips. */
#define STATUS_LEN (UINT64_C(1) << 30)
/* Without a limit from the server: the NBD protocol's safe request size. */
#define SAFE_IO (UINT64_C(32) << 20)
#define READ_STEP ((size_t)256 << 10)
#define READ_DEPTH 16
#define DIRTY_PREFIX "qemu:dirty-bitmap:"

struct ext {
	uint64_t end;         /* extents are contiguous: each ends where the next starts */
	bool data;
};

struct nbd_source {
	struct vb_source s;   /* first: the generic part */
	struct vb_nbd_conn c;
	char *bitmap_ctx;     /* "qemu:dirty-bitmap:NAME" negotiated, or NULL */
	bool bitmaps;         /* this kind of source can have dirty bitmaps */
	bool alloc;           /* base:allocation negotiated: holes are known */
	uint64_t win_off;     /* ext describes [win_off, ext[n - 1].end) */
	struct ext *ext;
	size_t n, cap;
	bool nomem;
};

/* ------------------------------------------------------------ connections */

static bool in_path(const char *prog)
{
	const char *path = getenv("PATH");
	char buf[4096];

	if (!path || !*path)
		path = "/usr/local/bin:/usr/bin:/bin";
	while (*path) {
		size_t n = strcspn(path, ":");

		if (n > 0 && snprintf(buf, sizeof(buf), "%.*s/%s", (int)n, path, prog) <
		    (int)sizeof(buf) && access(buf, X_OK) == 0)
			return true;
		path += n + (path[n] == ':');
	}
	return false;
}

/* libnbd forks qemu-nbd inside the connect call, and the child keeps our
 * stderr. Its messages ("Failed to get shared "write" lock", "Bitmap ... is
 * inconsistent") belong in vmaback's one error message, not loose on the
 * terminal, so fd 2 points at a temporary file for the duration of the
 * call. Sources and targets are opened before any thread starts and
 * nothing in core/ prints, so nothing else writes to fd 2 meanwhile. */
static int start_server(struct vb_nbd_conn *c, char **argv)
{
	int saved, rc;

	c->log_fd = vb_tmpfile();
	if (c->log_fd < 0)
		return nbd_connect_systemd_socket_activation(c->h, argv);
	saved = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
	if (dup2(c->log_fd, STDERR_FILENO) < 0) {
		if (saved >= 0)
			close(saved);
		return nbd_connect_systemd_socket_activation(c->h, argv);
	}
	rc = nbd_connect_systemd_socket_activation(c->h, argv);
	if (saved >= 0) {
		dup2(saved, STDERR_FILENO);
		close(saved);
	} else {
		close(STDERR_FILENO);
	}
	return rc;
}

void vb_nbd_why(const struct vb_nbd_conn *c, char *buf, size_t len)
{
	const char *e = nbd_get_error();
	int en = nbd_get_errno();
	char log[512];

	vb_text_line(c->log_fd, log, sizeof(log));
	if (log[0])
		snprintf(buf, len, "%s", log);
	else if (e)
		snprintf(buf, len, "%s", e);
	else
		snprintf(buf, len, "%s", en ? strerror(en) : "unknown NBD error");
}

int vb_nbd_connect(struct vb_nbd_conn *c, const char *what, const char *uri,
		   char **argv, const char *const *contexts, struct vb_error *err)
{
	char why[600];
	int64_t size, max;

	c->log_fd = -1;
	if (!uri && !in_path(argv[0]))
		return vb_error_set(err, VB_E_FAIL, ENOENT, "%s: %s is not installed (Debian "
				    "package qemu-utils)", what, argv[0]);
	c->h = nbd_create();
	if (!c->h)
		return vb_error_set(err, VB_E_FAIL, nbd_get_errno(), "%s: %s", what,
				    nbd_get_error());
	for (size_t i = 0; contexts && contexts[i]; i++)
		if (nbd_add_meta_context(c->h, contexts[i]) < 0)
			goto fail;
	if ((uri ? nbd_connect_uri(c->h, uri) : start_server(c, argv)) < 0) {
		vb_nbd_why(c, why, sizeof(why));
		if (!uri && vb_qemu_locked(why))
			return vb_error_set(err, VB_E_LOCKED, 0, "%s is in use by another program "
					    "(a running VM?); back up a running VM through an NBD "
					    "export instead (%s)", what, why);
		return vb_error_set(err, VB_E_FAIL, nbd_get_errno(), "%s: %s: %s", what,
				    uri ? "cannot connect" : "qemu-nbd cannot serve it", why);
	}
	size = nbd_get_size(c->h);
	if (size < 0)
		goto fail;
	c->size = (uint64_t)size;
	max = nbd_get_block_size(c->h, LIBNBD_SIZE_MAXIMUM);
	c->max_io = max > 0 && (uint64_t)max < SAFE_IO ? (uint64_t)max : SAFE_IO;
	return 0;
fail:
	vb_nbd_why(c, why, sizeof(why));
	return vb_error_set(err, VB_E_FAIL, nbd_get_errno(), "%s: %s", what, why);
}

void vb_nbd_disconnect(struct vb_nbd_conn *c)
{
	if (c->h) {
		/* The server may already be gone: only the close matters, and
		 * it waits for a qemu-nbd we started. */
		(void)nbd_shutdown(c->h, 0);
		nbd_close(c->h);
		c->h = NULL;
	}
	if (c->log_fd >= 0)
		close(c->log_fd);
	c->log_fd = -1;
}

/* ------------------------------------------------------------ reading */

static int fill_cb(void *opaque, const char *ctx, uint64_t off, uint32_t *e, size_t nr,
		   int *error)
{
	struct nbd_source *n = opaque;

	if (strcmp(ctx, LIBNBD_CONTEXT_BASE_ALLOCATION) != 0)
		return 0;
	if (off != (n->n ? n->ext[n->n - 1].end : n->win_off))
		return 0; /* not contiguous with what we have: ask again later */
	for (size_t i = 0; i + 1 < nr; i += 2) {
		bool data = !(e[i + 1] & LIBNBD_STATE_ZERO);

		if (e[i] == 0)
			continue;
		off += e[i];
		if (n->n && n->ext[n->n - 1].data == data) {
			n->ext[n->n - 1].end = off;
			continue;
		}
		if (n->n == n->cap) {
			size_t cap = n->cap ? 2 * n->cap : 64;
			struct ext *p = reallocarray(n->ext, cap, sizeof(*p));

			if (!p) {
				n->nomem = true;
				*error = ENOMEM;
				return -1;
			}
			n->ext = p;
			n->cap = cap;
		}
		n->ext[n->n++] = (struct ext){ .end = off, .data = data };
	}
	return 0;
}

/* Asks the server about [off, off + up to 1 GiB). */
static int fill(struct nbd_source *n, uint64_t off, struct vb_error *err)
{
	uint64_t count = n->s.size - off < STATUS_LEN ? n->s.size - off : STATUS_LEN;
	char why[600];

	n->n = 0;
	n->win_off = off;
	if (nbd_block_status(n->c.h, count, off,
			     (nbd_extent_callback){ .callback = fill_cb, .user_data = n }, 0) < 0) {
		if (n->nomem)
			return vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
		vb_nbd_why(&n->c, why, sizeof(why));
		return vb_error_set(err, VB_E_FAIL, nbd_get_errno(), "drive %s: block status at "
				    "offset %llu failed: %s", n->s.drive, (unsigned long long)off,
				    why);
	}
	if (n->n == 0)
		return vb_error_set(err, VB_E_FAIL, 0, "drive %s: the NBD server described no "
				    "extent at offset %llu", n->s.drive, (unsigned long long)off);
	if (n->ext[n->n - 1].end > n->s.size)
		n->ext[n->n - 1].end = n->s.size;
	return 0;
}

static int nbd_extent(struct vb_source *src, uint64_t off, uint64_t max, uint64_t *len,
		      bool *data, struct vb_error *err)
{
	struct nbd_source *n = (struct nbd_source *)src;
	size_t lo = 0, hi;

	*data = true;
	*len = max;
	if (!n->alloc)
		return 0;
	if (n->n == 0 || off < n->win_off || off >= n->ext[n->n - 1].end)
		if (fill(n, off, err) < 0)
			return -1;
	for (hi = n->n - 1; lo < hi;) {       /* the first extent ending after off */
		size_t mid = lo + (hi - lo) / 2;

		if (n->ext[mid].end > off)
			hi = mid;
		else
			lo = mid + 1;
	}
	*data = n->ext[lo].data;
	if (n->ext[lo].end - off < max)
		*len = n->ext[lo].end - off;
	return 0;
}

struct piece {
	uint64_t off;
	int err;
};

static int piece_done(void *opaque, int *error)
{
	struct piece *p = opaque;

	p->err = *error;
	return 1; /* retire the command: its status is in p */
}

/* Reads the ranges v[0..n) in requests of READ_STEP, up to READ_DEPTH of
 * them in flight: qemu-nbd serves many 256 KiB requests far faster than
 * few large ones (4 GiB in 3 s against 17 s with 4 MiB requests, one at a
 * time), and scattered clusters cost one round trip per READ_DEPTH, not
 * one each. */
static int nbd_readv(struct vb_source *src, const struct vb_read_piece *v, size_t n,
		     struct vb_error *err)
{
	struct nbd_source *ns = (struct nbd_source *)src;
	size_t step = ns->c.max_io < READ_STEP ? (size_t)ns->c.max_io : READ_STEP;
	struct piece pieces[READ_DEPTH];
	size_t vi = 0, done = 0;        /* the range read next, and its bytes sent */
	char why[600];

	while (vi < n) {
		size_t k = 0;

		for (; k < READ_DEPTH && vi < n; k++) {
			size_t left = v[vi].len - done, l = left < step ? left : step;
			uint64_t off = v[vi].off + done;

			pieces[k] = (struct piece){ .off = off };
			if (nbd_aio_pread(ns->c.h, (uint8_t *)v[vi].buf + done, l, off,
					  (nbd_completion_callback){ .callback = piece_done,
								     .user_data = &pieces[k] },
					  0) < 0) {
				pieces[k].err = nbd_get_errno() ? nbd_get_errno() : EIO;
				k++;
				vi = n;
				break;
			}
			done += l;
			if (done == v[vi].len) {
				vi++;
				done = 0;
			}
		}
		while (nbd_aio_in_flight(ns->c.h) > 0)
			if (nbd_poll(ns->c.h, -1) < 0)
				break;
		for (size_t i = 0; i < k; i++)
			if (pieces[i].err || nbd_aio_in_flight(ns->c.h) > 0) {
				vb_nbd_why(&ns->c, why, sizeof(why));
				return vb_error_set(err, VB_E_FAIL, pieces[i].err ? pieces[i].err : EIO,
						    "drive %s: read error at offset %llu: %s", src->drive,
						    (unsigned long long)pieces[i].off,
						    pieces[i].err ? strerror(pieces[i].err) : why);
			}
	}
	return 0;
}

static int nbd_read(struct vb_source *src, void *buf, size_t len, uint64_t off,
		    struct vb_error *err)
{
	struct vb_read_piece v = { .buf = buf, .len = len, .off = off };

	return len ? nbd_readv(src, &v, 1, err) : 0;
}

/* ------------------------------------------------------------ dirty bitmaps */

struct dirty_walk {
	const char *ctx;
	struct bitmap *bm;
	uint64_t next;        /* the end of what the server described */
};

static int dirty_cb(void *opaque, const char *ctx, uint64_t off, uint32_t *e, size_t nr,
		    int *error)
{
	struct dirty_walk *w = opaque;

	if (strcmp(ctx, w->ctx) != 0 || off != w->next)
		return 0;
	for (size_t i = 0; i + 1 < nr; i += 2) {
		/* bit 0 is "dirty" (libnbd 1.14 has no name for it) */
		if ((e[i + 1] & 1) && bitmap_set_bytes(w->bm, off, e[i]) < 0) {
			*error = ERANGE;
			return -1;
		}
		off += e[i];
	}
	w->next = off;
	return 0;
}

static int nbd_dirty(struct vb_source *src, const char *name, struct bitmap **out,
		     struct vb_error *err)
{
	struct nbd_source *n = (struct nbd_source *)src;
	struct dirty_walk w = { .ctx = n->bitmap_ctx };
	char why[600];

	*out = NULL;
	if (!n->bitmaps)
		return 0;
	if (!n->bitmap_ctx || strcmp(n->bitmap_ctx + strlen(DIRTY_PREFIX), name) != 0)
		return vb_error_set(err, VB_E_USAGE, 0, "drive %s: dirty bitmap %s was not asked "
				    "for when connecting", src->drive, name);
	if (nbd_can_meta_context(n->c.h, n->bitmap_ctx) != 1)
		return vb_error_set(err, VB_E_USAGE, 0, "drive %s: the NBD export has no dirty "
				    "bitmap %s (no metadata context %s)", src->drive, name,
				    n->bitmap_ctx);
	w.bm = bitmap_new(bitmap_clusters(src->size));
	if (!w.bm)
		return vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
	for (uint64_t off = 0; off < src->size; off = w.next) {
		uint64_t count = src->size - off < STATUS_LEN ? src->size - off : STATUS_LEN;

		if (nbd_block_status(n->c.h, count, off, (nbd_extent_callback){
					     .callback = dirty_cb, .user_data = &w }, 0) < 0) {
			vb_nbd_why(&n->c, why, sizeof(why));
			vb_error_set(err, VB_E_FAIL, nbd_get_errno(), "drive %s: reading dirty "
				     "bitmap %s at offset %llu: %s", src->drive, name,
				     (unsigned long long)off, why);
			goto fail;
		}
		if (w.next <= off) {
			vb_error_set(err, VB_E_FAIL, 0, "drive %s: the NBD server described no "
				     "extent of dirty bitmap %s at offset %llu", src->drive, name,
				     (unsigned long long)off);
			goto fail;
		}
	}
	*out = w.bm;
	return 1;
fail:
	bitmap_free(w.bm);
	return -1;
}

static void nbd_src_close(struct vb_source *src)
{
	struct nbd_source *n = (struct nbd_source *)src;

	vb_nbd_disconnect(&n->c);
	free(n->bitmap_ctx);
	free(n->ext);
	vb_source_fini(src);
	free(n);
}

/* ------------------------------------------------------------ opening */

#define NBD_OPS(k) { .kind = k, .extent = nbd_extent, .pread = nbd_read, \
		     .preadv = nbd_readv, .dirty_bitmap = nbd_dirty, .close = nbd_src_close }
static const struct vb_source_ops kinds[] = {
	NBD_OPS("nbd"), NBD_OPS("qcow2"), NBD_OPS("vmdk"), NBD_OPS("vdi"), NBD_OPS("vhdx"),
};

static const struct vb_source_ops *ops_for(const char *kind)
{
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (strcmp(kinds[i].kind, kind) == 0)
			return &kinds[i];
	return NULL;
}

static struct vb_source *open_common(const char *drive, const char *spec, const char *kind,
				     const char *uri, char **argv, const char *bitmap,
				     const char *what, struct vb_error *err)
{
	struct nbd_source *n = calloc(1, sizeof(*n));
	const char *ctx[3] = { LIBNBD_CONTEXT_BASE_ALLOCATION, NULL, NULL };

	if (!n) {
		vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
		return NULL;
	}
	n->c.log_fd = -1;
	if (vb_source_init(&n->s, ops_for(kind), drive, spec, err) < 0)
		goto fail;
	n->bitmaps = strcmp(kind, "nbd") == 0 || strcmp(kind, "qcow2") == 0;
	if (bitmap && n->bitmaps) {
		if (asprintf(&n->bitmap_ctx, "%s%s", DIRTY_PREFIX, bitmap) < 0) {
			n->bitmap_ctx = NULL;
			vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
			goto fail;
		}
		ctx[1] = n->bitmap_ctx;
	}
	if (vb_nbd_connect(&n->c, what, uri, argv, ctx, err) < 0)
		goto fail;
	n->s.size = n->c.size;
	n->alloc = nbd_can_meta_context(n->c.h, LIBNBD_CONTEXT_BASE_ALLOCATION) == 1;
	if (n->s.size == 0) {
		vb_error_set(err, VB_E_USAGE, 0, "%s is empty (0 bytes)", what);
		goto fail;
	}
	return &n->s;
fail:
	if (n->s.ops)
		nbd_src_close(&n->s);
	else
		free(n);
	return NULL;
}

struct vb_source *vb_source_nbd_open(const char *drive, const char *spec, const char *uri,
				     const char *bitmap, struct vb_error *err)
{
	char what[512];

	snprintf(what, sizeof(what), "drive %s (%s)", drive, uri);
	return open_common(drive, spec, "nbd", uri, NULL, bitmap, what, err);
}

struct vb_source *vb_source_image_open(const char *drive, const char *spec,
				       const struct vb_spec *sp, const char *bitmap,
				       struct vb_error *err)
{
	char fmt[32], bm[1100], what[512], *path = NULL, *argv[7];
	struct vb_source *s = NULL;
	struct stat st;
	int i = 0;

	snprintf(what, sizeof(what), "drive %s: %s", drive, sp->path);
	if (stat(sp->path, &st) < 0) {
		vb_error_set(err, VB_E_USAGE, errno, "drive %s: cannot open %s: %s", drive,
			     sp->path, strerror(errno));
		return NULL;
	}
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
		vb_error_set(err, VB_E_USAGE, 0, "drive %s: %s is not a regular file or a block "
			     "device", drive, sp->path);
		return NULL;
	}
	path = vb_qemu_path(sp->path);
	if (!path) {
		vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
		return NULL;
	}
	snprintf(fmt, sizeof(fmt), "--format=%s", sp->format);
	argv[i++] = "qemu-nbd";
	argv[i++] = "--read-only";
	argv[i++] = fmt;
	if (bitmap && strcmp(sp->format, "qcow2") == 0) {
		if ((size_t)snprintf(bm, sizeof(bm), "--bitmap=%s", bitmap) >= sizeof(bm)) {
			vb_error_set(err, VB_E_USAGE, 0, "drive %s: bitmap name too long", drive);
			goto out;
		}
		argv[i++] = bm;
	}
	argv[i++] = "--";
	argv[i++] = path;
	argv[i] = NULL;
	s = open_common(drive, spec, sp->format, NULL, argv, bitmap, what, err);
out:
	free(path);
	return s;
}
