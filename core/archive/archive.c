/* archive.c: reading an archive from a file or a pipe, whatever its
 * compression: the header, vmaback.json, the clusters, and verification. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/archive/archive_int.h"

struct vb_archive {
	char *path;
	struct vb_reader *in;
	struct vma_reader *vr;
	struct vb_meta meta;
	struct vb_error rerr;   /* what the input layer said when a read failed */
};

static ssize_t read_cb(void *opaque, void *buf, size_t len)
{
	struct vb_archive *a = opaque;
	ssize_t n = vb_reader_read(a->in, buf, len, &a->rerr);

	if (n < 0)
		return a->rerr.sys_errno ? -a->rerr.sys_errno : -EIO;
	return n;
}

/* The input layer's own error (a truncated zstd stream, EIO) wins over the
 * VMA reader's view of it; a format error is VB_E_INVALID. */
static int reader_fail(struct vb_archive *a, struct vb_error *err)
{
	if (vma_reader_errcode(a->vr) == VMA_ERR_IO && a->rerr.cls != VB_OK) {
		vb_error_set(err, a->rerr.cls, a->rerr.sys_errno, "%s", a->rerr.msg);
		return -1;
	}
	return vb_error_vma_reader(err, a->vr, a->path);
}

/* path, or fd >= 0 (owned) read under the name path. */
static struct vb_archive *archive_open(const char *path, int fd, struct vb_error *err)
{
	struct vb_archive *a = calloc(1, sizeof(*a));

	if (!a) {
		vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	a->path = strdup(strcmp(path, "-") == 0 && fd < 0 ? "standard input" : path);
	if (!a->path) {
		vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
		if (fd >= 0)
			close(fd);
		goto fail;
	}
	a->in = fd >= 0 ? vb_input_open_fd(fd, path, err) : vb_input_open(path, err);
	if (!a->in)
		goto fail;
	a->vr = vma_reader_new(read_cb, a);
	if (!a->vr) {
		vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
		goto fail;
	}
	if (vma_reader_read_header(a->vr) < 0) {
		reader_fail(a, err);
		goto fail;
	}
	if (vb_meta_load(&a->meta, a->vr, a->path, err) < 0)
		goto fail;
	return a;
fail:
	vb_archive_free(a);
	return NULL;
}

struct vb_archive *vb_archive_open(const char *path, struct vb_error *err)
{
	return archive_open(path, -1, err);
}

struct vb_archive *vb_archive_open_fd(int fd, const char *path, struct vb_error *err)
{
	return archive_open(path, fd, err);
}

void vb_archive_free(struct vb_archive *a)
{
	if (!a)
		return;
	vb_meta_clear(&a->meta);
	vma_reader_free(a->vr);
	vb_reader_free(a->in);
	free(a->path);
	free(a);
}

struct vma_reader *vb_archive_vma(struct vb_archive *a)
{
	return a->vr;
}

const struct vb_meta *vb_archive_meta(const struct vb_archive *a)
{
	return &a->meta;
}

enum vb_compression vb_archive_compression(const struct vb_archive *a)
{
	return vb_reader_compression(a->in);
}

const char *vb_archive_path(const struct vb_archive *a)
{
	return a->path;
}

int vb_archive_next_cluster(struct vb_archive *a, struct vma_cluster *c, struct vb_error *err)
{
	int rc = vma_reader_next_cluster(a->vr, c);

	if (rc < 0)
		return reader_fail(a, err);
	return rc;
}

/* Completeness of one drive once the stream has ended. */
static int check_drive(struct vb_archive *a, const struct vb_meta_drive *d,
		       struct vb_error *err)
{
	uint64_t seen = vma_reader_clusters_seen(a->vr, d->dev_id);
	bool whole = vb_kind_whole(a->meta.kind);

	/* vmstate is a byte stream, not a disk: Proxmox does not check it. */
	if (whole && strcmp(d->name, "vmstate") != 0 &&
	    vma_reader_check_complete(a->vr, d->dev_id) < 0)
		return vb_error_set(err, VB_E_INVALID, 0, "%s: %s (truncated or damaged)",
				    a->path, vma_reader_error(a->vr));
	if (d->clusters != UINT64_MAX && seen != d->clusters)
		return vb_error_set(err, VB_E_INVALID, 0,
				    "%s: drive %s: the archive holds %" PRIu64
				    " clusters, vmaback.json says %" PRIu64 " (truncated?)",
				    a->path, d->name, seen, d->clusters);
	return 0;
}

int vb_archive_check_drive(struct vb_archive *a, unsigned dev_id, struct vb_error *err)
{
	for (size_t i = 0; i < a->meta.ndrives; i++)
		if (a->meta.drives[i].dev_id == dev_id)
			return check_drive(a, &a->meta.drives[i], err);
	return vb_error_set(err, VB_E_INVALID, 0, "%s: device %u of the header is not described",
			    a->path, dev_id);
}

int vb_verify(struct vb_archive *a, const volatile sig_atomic_t *cancel,
	      struct vb_verify_result *res, struct vb_error *err)
{
	struct vma_cluster c;
	int rc;

	memset(res, 0, sizeof(*res));
	while ((rc = vb_archive_next_cluster(a, &c, err)) == 1) {
		if (cancel && *cancel)
			return vb_error_set(err, VB_E_CANCELED, EINTR, "%s: interrupted", a->path);
		res->clusters++;
		res->stored_bytes += (uint64_t)__builtin_popcount(c.mask) * VMA_BLOCK_SIZE;
	}
	if (rc < 0)
		return -1;
	/* Proxmox's RAM state is a device, not a drive. */
	for (size_t i = 0; i < a->meta.ndrives; i++) {
		if (strcmp(a->meta.drives[i].name, "vmstate") == 0)
			res->vmstate = true;
		else
			res->drives++;
	}
	res->stream_bytes = vma_reader_offset(a->vr);
	for (size_t i = 0; i < a->meta.ndrives; i++)
		if (check_drive(a, &a->meta.drives[i], err) < 0)
			return -1;
	return 0;
}
