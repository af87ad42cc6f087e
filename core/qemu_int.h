/* qemu_int.h: what core/ shares about QEMU's peers: --drive specs that name
 * NBD exports and image files, qemu-img calls, and NBD restore targets. */
#ifndef VMABACK_QEMU_INT_H
#define VMABACK_QEMU_INT_H

#include "core/core_int.h"

/* What a --drive or --target spec names. */
enum vb_spec_kind {
	VB_SPEC_RAW,    /* a regular file or block device, read with pread */
	VB_SPEC_NBD,    /* an NBD URI (nbd://, nbd+unix://, nbds://, ...) */
	VB_SPEC_IMAGE,  /* an image file served by qemu-nbd */
};

struct vb_spec {
	enum vb_spec_kind kind;
	const char *format;   /* image: "qcow2", "vmdk", "vdi", "vhdx" */
	const char *path;     /* raw and image: the file (points into the spec) */
	bool detected;        /* image: a plain path found to be qcow2 by content */
};

/* Splits spec: "FMT:PATH" for the image formats and "raw:PATH", NBD URIs,
 * else a path, which is qcow2 if its content starts with the qcow2 magic
 * (unreadable paths are left to the raw source to report). A detected
 * qcow2 with a backing or external data file is refused: a raw disk whose
 * guest wrote a qcow2 header must not make vmaback read host files. */
int vb_spec_parse(const char *drive, const char *spec, struct vb_spec *out,
		  struct vb_error *err);
/* The same without looking at the file (no detection, no checks). */
void vb_spec_split(const char *spec, struct vb_spec *out);
bool vb_spec_is_nbd(const char *spec);

/* A path qemu-img and qemu-nbd read as a file name, never as "proto:...":
 * relative paths get "./". malloc'd, NULL if out of memory. */
char *vb_qemu_path(const char *path);

/* A temporary file (unlinked, close-on-exec) for a child's output; -1. */
int vb_tmpfile(void);
/* The end of what a child wrote to fd, as one line ("; " between its
 * lines), or "". */
void vb_text_line(int fd, char *buf, size_t len);
/* Whether a QEMU tool's message says another program holds the image. */
bool vb_qemu_locked(const char *why);

/* NBD sources (source_nbd.c): an export by URI, or an image file through
 * a qemu-nbd that libnbd starts by socket activation and stops at close.
 * bitmap (may be NULL) is the dirty bitmap to negotiate. */
struct vb_source *vb_source_nbd_open(const char *drive, const char *spec, const char *uri,
				     const char *bitmap, struct vb_error *err);
struct vb_source *vb_source_image_open(const char *drive, const char *spec,
				       const struct vb_spec *sp, const char *bitmap,
				       struct vb_error *err);

/* A connected libnbd handle and what it is for messages. */
struct nbd_handle;
struct vb_nbd_conn {
	struct nbd_handle *h;
	int log_fd;           /* qemu-nbd's stderr (a temporary file), or -1 */
	uint64_t size;
	uint64_t max_io;      /* the largest request the server takes */
};

/* Connects to uri, or (uri NULL) starts argv (qemu-nbd) by socket
 * activation with its stderr in a temporary file. contexts: metadata
 * contexts to ask for (NULL-terminated, may be NULL). what names the drive
 * or target in messages. A failure to start qemu-nbd because another
 * program holds the image is VB_E_LOCKED. */
int vb_nbd_connect(struct vb_nbd_conn *c, const char *what, const char *uri,
		   char **argv, const char *const *contexts, struct vb_error *err);
/* Shuts the connection down and waits for qemu-nbd; NULL handle: no-op. */
void vb_nbd_disconnect(struct vb_nbd_conn *c);
/* libnbd's last error, with qemu-nbd's own message when it printed one. */
void vb_nbd_why(const struct vb_nbd_conn *c, char *buf, size_t len);

/* ------------------------------------------------------------ qemu-img */

struct vb_qbitmap {
	char *name;
	bool enabled;         /* "auto": recording writes */
	bool in_use;          /* "in-use": a writer has it open or crashed with it */
};

/* The persistent bitmaps of a qcow2 file (`qemu-img info`), which also
 * fails with VB_E_LOCKED when another program writes the image. */
int vb_qcow2_bitmaps(const char *what, const char *path, struct vb_qbitmap **out, size_t *n,
		     struct vb_error *err);
void vb_qcow2_bitmaps_free(struct vb_qbitmap *b, size_t n);
/* `qemu-img bitmap OP -f qcow2 PATH NAME`; OP "--add" (enabled, 64 KiB
 * granularity), "--disable" or "--remove". */
int vb_qcow2_bitmap_op(const char *what, const char *path, const char *op, const char *name,
		       struct vb_error *err);

/* ------------------------------------------------------------ restore targets */

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
