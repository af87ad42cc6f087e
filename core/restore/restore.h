/* restore.h: restoring a chain onto files, devices, images and NBD exports,
 * extracting one archive in Proxmox's layout, deep verification against a
 * set's state. Uses archive, source, store, io, bitmap. */
#ifndef VMABACK_RESTORE_H
#define VMABACK_RESTORE_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/base/base.h"
#include "core/store/store.h"

/* ============================================================== restore */

struct vb_restore_target {
	const char *name;    /* drive */
	/* A block device or file, written in place; "raw:PATH" the same;
	 * "qcow2:PATH" (vmdk:, vdi:, vhdx:) a new image file created with
	 * qemu-img and written through qemu-nbd; an NBD URI, an existing
	 * export overwritten (needs force). */
	const char *path;
};

struct vb_restore_opts {
	const char *const *archives;
	size_t narchives;
	const char *dir;     /* DIR/disk-NAME.raw, sparse; created if missing */
	const struct vb_restore_target *targets;
	size_t ntargets;
	const char *const *select; /* drive names; none: all */
	size_t nselect;
	bool force;          /* replace existing files, write to existing targets */
	const volatile sig_atomic_t *cancel;
};

struct vb_restore_result {
	unsigned archives;
	unsigned drives;
	uint64_t clusters;
	uint64_t bytes_written;
};

/* Restores the state of the newest archive of a chain. New files are
 * written under temporary names and renamed when everything succeeded. */
int vb_restore(const struct vb_restore_opts *o, struct vb_restore_result *res,
	       struct vb_error *err);


/* ============================================================== extract */

struct vb_extract_opts {
	const char *dir;                 /* must not exist; created 0700 */
	const char *const *select;       /* drive names; NULL/0 = all */
	size_t nselect;
	const volatile sig_atomic_t *cancel;
};
/* Proxmox's layout: DIR/disk-NAME.raw (sparse, 0600) and each config blob
 * under its name. On failure everything written is removed, DIR too. */
int vb_extract(struct vb_archive *a, const struct vb_extract_opts *o, struct vb_error *err);

/* ============================================================== deep verify */

struct vb_deep_opts {
	struct vb_state *state;
	const char *checkpoint;          /* NULL: the latest */
	const char *const *archives;     /* NULL/0: the archives the state records */
	size_t narchives;
	/* One archive to verify (narchives 0): the checkpoint is the one it is
	 * the archive of (an error when it is not in the set's state), its
	 * chain the state's, with this file read in place of the checkpoint's
	 * own archive. */
	const char *file;
	const volatile sig_atomic_t *cancel;
};

struct vb_deep_result {
	char checkpoint[132];
	unsigned archives;
	uint64_t clusters;
	bool per_cluster;    /* compared cluster by cluster (the latest checkpoint) */
};

/* Restores the chain of a checkpoint in memory, streaming, and compares it
 * with what the state recorded when it was backed up: each archive file's
 * SHA-256 with its manifest, every cluster with the digest map (the latest
 * checkpoint) or the map's root hash (older ones). A file that is not an
 * archive of the set, or whose bytes differ from its manifest, is
 * VB_E_INVALID. */
int vb_verify_deep(const struct vb_deep_opts *o, struct vb_deep_result *res,
		   struct vb_error *err);

#endif
