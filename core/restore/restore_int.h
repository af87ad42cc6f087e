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
