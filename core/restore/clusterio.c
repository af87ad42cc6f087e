/* clusterio.c: the one cluster-to-file writer of extract and restore:
 * one decoded cluster written to a target file or device, clipped at the
 * drive's size (stored blocks only on a fresh sparse file, the whole
 * cluster where old data must be overwritten), and new files made as
 * registered temporaries that a run publishes together or not at all. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/restore/restore_int.h"

int vb_put_cluster(int fd, const struct vma_cluster *c, uint64_t size, bool whole,
		   uint64_t *written)
{
	uint64_t base = (uint64_t)c->cluster_num * VMA_CLUSTER_SIZE;
	uint16_t mask = whole ? 0xffff : c->mask;

	for (unsigned b = 0; b < VMA_BLOCKS_PER_CLUSTER;) {
		unsigned e = b;
		uint64_t off, len;
		int rc;

		if (!(mask >> b & 1)) {
			b++;
			continue;
		}
		while (e < VMA_BLOCKS_PER_CLUSTER && (mask >> e & 1))
			e++;
		off = base + (uint64_t)b * VMA_BLOCK_SIZE;
		len = (uint64_t)(e - b) * VMA_BLOCK_SIZE;
		if (off >= size)
			break;
		if (off + len > size)
			len = size - off;
		rc = vb_pwrite_all(fd, c->data + (size_t)b * VMA_BLOCK_SIZE, len, off);
		if (rc < 0)
			return rc;
		if (written)
			*written += len;
		b = e;
	}
	return 0;
}

/* ------------------------------------------------------------ new files */

int vb_outfile_open(struct vb_outfile *f, const char *final, uint64_t size, bool existed,
		    struct vb_error *err)
{
	memset(f, 0, sizeof(*f));
	f->tmp = vb_tempfile_new(final, err);
	if (!f->tmp)
		return -1;
	f->size = size;
	f->existed = existed;
	if (size && ftruncate(vb_tempfile_fd(f->tmp), (off_t)size) < 0)
		return vb_error_set(err, VB_E_FAIL, errno, "%s: %s", final, strerror(errno));
	return 0;
}

int vb_outfile_fd(const struct vb_outfile *f)
{
	return vb_tempfile_fd(f->tmp);
}

const char *vb_outfile_final(const struct vb_outfile *f)
{
	return f->tmp ? vb_tempfile_final(f->tmp) : "";
}

int vb_outfile_put(struct vb_outfile *f, const struct vma_cluster *c, uint64_t *written,
		   struct vb_error *err)
{
	int rc = vb_put_cluster(vb_tempfile_fd(f->tmp), c, f->size, false, written);

	if (rc < 0)
		return vb_error_set(err, VB_E_FAIL, -rc, "%s: %s", vb_tempfile_final(f->tmp),
				    strerror(-rc));
	return 0;
}

void vb_outfile_discard(struct vb_outfile *f)
{
	vb_tempfile_discard(f->tmp);
	f->tmp = NULL;
}

/* 1: something is there, a dangling symbolic link included (access()
 * follows links, so it would let a planted link be replaced without
 * --force); 0: nothing; -1: lstat failed otherwise (errno), which says
 * nothing about whether a file is there. */
static int taken(const char *path)
{
	struct stat st;

	if (lstat(path, &st) == 0)
		return 1;
	return errno == ENOENT ? 0 : -1;
}

/* Undoes the names published so far that were new: ours, made moments ago.
 * A replaced file cannot come back: the message says which. */
static void unpublish(struct vb_outfile *const *v, size_t n, struct vb_error *err)
{
	for (size_t i = 0; i < n; i++) {
		if (!v[i]->published)
			continue;
		if (!v[i]->existed && unlink(v[i]->final) == 0)
			continue;
		vb_error_set(err, VB_E_FAIL, 0, "%s was already replaced", v[i]->final);
	}
}

int vb_outfiles_publish(struct vb_outfile *const *v, size_t n, bool replace,
			struct vb_error *err)
{
	int rc = 0;

	/* Nothing published unless every name is free (or may be replaced). */
	for (size_t i = 0; i < n && !replace; i++) {
		const char *final = vb_tempfile_final(v[i]->tmp);
		int t = taken(final);

		if (t < 0)
			return vb_error_set(err, VB_E_FAIL, errno, "%s: %s; nothing published",
					    final, strerror(errno));
		if (t)
			return vb_error_set(err, VB_E_USAGE, EEXIST, "%s appeared meanwhile; not "
					    "replaced, nothing published", final);
	}
	for (size_t i = 0; i < n; i++) {
		struct vb_tempfile *t = v[i]->tmp;
		int r;

		v[i]->final = strdup(vb_tempfile_final(t));
		if (!v[i]->final) {
			unpublish(v, i, err);
			return vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
		}
		v[i]->tmp = NULL;
		r = vb_tempfile_publish(t, replace, err);
		if (r < 0) {
			unpublish(v, i, err);
			return -1;
		}
		v[i]->published = true;
		if (r > 0)
			rc = -1; /* published, durability uncertain: err says so; go on */
	}
	return rc;
}

void vb_outfile_free(struct vb_outfile *f)
{
	vb_outfile_discard(f);
	free(f->final);
	f->final = NULL;
}
