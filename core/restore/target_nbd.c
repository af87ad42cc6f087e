/* target_nbd.c: restore targets written over NBD: a new image file that
 * qemu-img creates and a writable qemu-nbd serves, or an existing export. */
#include <errno.h>
#include <libnbd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/restore/restore_int.h"

struct vb_nbd_target {
	struct vb_nbd_conn c;
	char what[512];
	uint64_t size;        /* the drive's */
	bool whole;           /* old data there: absent blocks are zeroed */
	bool can_zero;
};

static struct vb_nbd_target *target_new(const char *what, uint64_t size, struct vb_error *err)
{
	struct vb_nbd_target *t = calloc(1, sizeof(*t));

	if (!t) {
		vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
		return NULL;
	}
	t->c.log_fd = -1;
	t->size = size;
	snprintf(t->what, sizeof(t->what), "%s", what);
	return t;
}

static int target_check(struct vb_nbd_target *t, struct vb_error *err)
{
	if (nbd_is_read_only(t->c.h) == 1)
		return vb_error_set(err, VB_E_USAGE, 0, "%s: the NBD export is read-only", t->what);
	if (t->c.size < t->size)
		return vb_error_set(err, VB_E_USAGE, 0, "%s holds %llu bytes, the drive needs %llu",
				    t->what, (unsigned long long)t->c.size,
				    (unsigned long long)t->size);
	t->can_zero = nbd_can_zero(t->c.h) == 1;
	return 0;
}

struct vb_nbd_target *vb_nbd_target_image(const char *what, const char *format,
					  const char *path, uint64_t size, struct vb_error *err)
{
	struct vb_nbd_target *t = target_new(what, size, err);
	char *p = vb_qemu_path(path), fmt[32];
	char *serve[] = { "qemu-nbd", fmt, "--", p, NULL };

	if (!t || !p) {
		if (t)
			vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
		goto fail;
	}
	snprintf(fmt, sizeof(fmt), "--format=%s", format);
	if (vb_qemu_img_create(what, format, path, size, err) < 0 ||
	    vb_nbd_connect(&t->c, what, NULL, serve, NULL, err) < 0 ||
	    target_check(t, err) < 0)
		goto fail;
	free(p);
	return t;
fail:
	free(p);
	vb_nbd_target_abort(t);
	return NULL;
}

struct vb_nbd_target *vb_nbd_target_uri(const char *what, const char *uri, uint64_t size,
					struct vb_error *err)
{
	struct vb_nbd_target *t = target_new(what, size, err);

	if (!t)
		return NULL;
	t->whole = true;
	if (vb_nbd_connect(&t->c, what, uri, NULL, NULL, err) < 0 || target_check(t, err) < 0) {
		vb_nbd_target_abort(t);
		return NULL;
	}
	return t;
}

static int target_write(struct vb_nbd_target *t, const uint8_t *data, uint64_t len,
			uint64_t off, struct vb_error *err)
{
	static const uint8_t zeros[VMA_CLUSTER_SIZE];
	char why[600];

	while (len > 0) {
		uint64_t step = len < t->c.max_io ? len : t->c.max_io;
		int rc;

		if (!data && !t->can_zero && step > sizeof(zeros))
			step = sizeof(zeros);
		if (data)
			rc = nbd_pwrite(t->c.h, data, step, off, 0);
		else if (t->can_zero)
			rc = nbd_zero(t->c.h, step, off, 0);
		else
			rc = nbd_pwrite(t->c.h, zeros, step, off, 0);
		if (rc < 0) {
			vb_nbd_why(&t->c, why, sizeof(why));
			return vb_error_set(err, VB_E_FAIL, nbd_get_errno(), "%s: write error at "
					    "offset %llu: %s", t->what, (unsigned long long)off, why);
		}
		if (data)
			data += step;
		len -= step;
		off += step;
	}
	return 0;
}

int vb_nbd_target_put(struct vb_nbd_target *t, const struct vma_cluster *c,
		      uint64_t *written, struct vb_error *err)
{
	uint64_t base = (uint64_t)c->cluster_num * VMA_CLUSTER_SIZE;

	for (unsigned b = 0, e; b < VMA_BLOCKS_PER_CLUSTER; b = e) {
		bool stored = c->mask >> b & 1;
		uint64_t off = base + (uint64_t)b * VMA_BLOCK_SIZE, len;

		for (e = b + 1; e < VMA_BLOCKS_PER_CLUSTER && (bool)(c->mask >> e & 1) == stored;)
			e++;
		if (off >= t->size)
			break;
		len = (uint64_t)(e - b) * VMA_BLOCK_SIZE;
		if (len > t->size - off)
			len = t->size - off;
		if (!stored && !t->whole)
			continue; /* a fresh image reads zeros there already */
		if (target_write(t, stored ? c->data + (size_t)b * VMA_BLOCK_SIZE : NULL, len, off,
				 err) < 0)
			return -1;
		if (written)
			*written += stored ? len : 0;
	}
	return 0;
}

int vb_nbd_target_close(struct vb_nbd_target *t, struct vb_error *err)
{
	char why[600];
	int rc = 0;

	if (nbd_can_flush(t->c.h) == 1 && nbd_flush(t->c.h, 0) < 0) {
		vb_nbd_why(&t->c, why, sizeof(why));
		rc = vb_error_set(err, VB_E_FAIL, nbd_get_errno(), "%s: flush failed: %s", t->what,
				  why);
	}
	vb_nbd_target_abort(t);
	return rc;
}

void vb_nbd_target_abort(struct vb_nbd_target *t)
{
	if (!t)
		return;
	vb_nbd_disconnect(&t->c);
	free(t);
}
