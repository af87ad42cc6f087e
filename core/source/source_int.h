/* source_int.h: the interface every kind of drive source implements (raw
 * files and block devices, NBD exports, QEMU image files); private to
 * core/source. */
#ifndef VMABACK_SOURCE_INT_H
#define VMABACK_SOURCE_INT_H

#ifndef VB_MODULE_source
#error "core/source/source_int.h is private to core/source: include core/source/source.h"
#endif

#include "core/io/io.h"
#include "core/source/source.h"

struct vb_source_ops {
	const char *kind;
	int (*extent)(struct vb_source *s, uint64_t off, uint64_t max, uint64_t *len,
		      bool *data, struct vb_error *err);
	int (*pread)(struct vb_source *s, void *buf, size_t len, uint64_t off,
		     struct vb_error *err);
	/* NULL: one pread per piece */
	int (*preadv)(struct vb_source *s, const struct vb_read_piece *v, size_t n,
		      struct vb_error *err);
	/* NULL: no bitmaps */
	int (*dirty_bitmap)(struct vb_source *s, const char *name, struct bitmap **out,
			    struct vb_error *err);
	void (*close)(struct vb_source *s);
};

/* Every source starts with this: the generic calls dispatch through ops. */
struct vb_source {
	const struct vb_source_ops *ops;
	char *drive;
	char *spec;
	uint64_t size;
};

/* Fills the common part; 0 or -1 (out of memory). */
int vb_source_init(struct vb_source *s, const struct vb_source_ops *ops, const char *drive,
		   const char *spec, struct vb_error *err);
/* Frees the common part (not s itself). */
void vb_source_fini(struct vb_source *s);

/* Constructors by kind. */
struct vb_source *vb_source_raw_open(const char *drive, const char *path, struct vb_error *err);
/* NBD sources (nbd.c): an export by URI, or an image file through a
 * qemu-nbd that libnbd starts by socket activation and stops at close.
 * bitmap (may be NULL) is the dirty bitmap to negotiate. */
struct vb_source *vb_source_nbd_open(const char *drive, const char *spec, const char *uri,
				     const char *bitmap, struct vb_error *err);
struct vb_source *vb_source_image_open(const char *drive, const char *spec,
				       const struct vb_spec *sp, const char *bitmap,
				       struct vb_error *err);

#endif
