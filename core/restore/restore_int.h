/* restore_int.h: what the files of core/restore share: the cluster-to-file
 * writer and the NBD targets; private to core/restore. */
#ifndef VMABACK_RESTORE_INT_H
#define VMABACK_RESTORE_INT_H

#ifndef VB_MODULE_restore
#error "core/restore/restore_int.h is private to core/restore: include core/restore/restore.h"
#endif

#include "core/archive/archive.h"
#include "core/io/io.h"
#include "core/restore/restore.h"
#include "core/source/source.h"

/* Writes cluster c at its place in fd, clipped at size: its stored blocks
 * (whole false: fd is a fresh sparse file) or all 64 KiB (absent blocks as
 * zeros). Adds the bytes written to *written. Returns 0 or -errno. */
int vb_put_cluster(int fd, const struct vma_cluster *c, uint64_t size, bool whole,
		   uint64_t *written);

/* A new file of a restore or extract: a registered temporary (core/io
 * tempfile) beside its final name, published with the others of its run
 * by vb_outfiles_publish. */
struct vb_outfile {
	struct vb_tempfile *tmp;  /* until published or discarded */
	uint64_t size;            /* clusters are clipped here; 0: a stream */
	bool existed;             /* the final name existed (replaced with --force) */
	bool published;
	char *final;              /* set when publishing */
};

/* A new temporary for final, sparse, of size bytes. */
int vb_outfile_open(struct vb_outfile *f, const char *final, uint64_t size, bool existed,
		    struct vb_error *err);
int vb_outfile_fd(const struct vb_outfile *f);
const char *vb_outfile_final(const struct vb_outfile *f);
/* Writes cluster c's stored blocks (the file is fresh and sparse). */
int vb_outfile_put(struct vb_outfile *f, const struct vma_cluster *c, uint64_t *written,
		   struct vb_error *err);
/* All or nothing: without replace, refuses (publishing none) if any final
 * name is taken; then fsyncs and renames each. If one rename fails, the
 * names already published that were new are removed again. 0, or -1 (also
 * when all were published but a directory fsync failed: err says so). */
int vb_outfiles_publish(struct vb_outfile *const *v, size_t n, bool replace,
			struct vb_error *err);
/* Removes the temporary if not published. */
void vb_outfile_discard(struct vb_outfile *f);
/* vb_outfile_discard, and frees what publishing kept. */
void vb_outfile_free(struct vb_outfile *f);

struct vb_nbd_target;

/* A new image file: `qemu-img create -f FMT PATH SIZE`, written through a
 * writable qemu-nbd (fresh: absent blocks are not written). */
struct vb_nbd_target *vb_nbd_target_image(const char *what, const char *format,
					  const char *path, uint64_t size, struct vb_error *err);
/* An existing NBD export of at least size bytes, overwritten: absent
 * blocks become NBD zero requests. */
struct vb_nbd_target *vb_nbd_target_uri(const char *what, const char *uri, uint64_t size,
					struct vb_error *err);
/* Writes cluster c (clipped at the drive's size). */
int vb_nbd_target_put(struct vb_nbd_target *t, const struct vma_cluster *c,
		      uint64_t *written, struct vb_error *err);
/* Flushes, disconnects and waits for qemu-nbd to close the image. Frees t. */
int vb_nbd_target_close(struct vb_nbd_target *t, struct vb_error *err);
/* Disconnects without flushing; NULL is a no-op. Frees t. */
void vb_nbd_target_abort(struct vb_nbd_target *t);

#endif
