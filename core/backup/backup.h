/* backup.h: the backup transaction: prepare every drive, one job per drive in
 * order into one archive, grouped completion, the commit; and merge. Uses
 * source, archive, store, io, vma, bitmap. */
#ifndef VMABACK_BACKUP_H
#define VMABACK_BACKUP_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/base/base.h"
#include "core/io/io.h"
#include "core/store/store.h"
#include "vma/vma.h"

/* ============================================================== backup */

struct vb_drive {
	const char *name;
	const char *spec;   /* source: see vb_source_open */
	/* The source's dirty bitmap that holds the changes since the set's
	 * latest checkpoint (--bitmap), or NULL. */
	const char *bitmap;
};

struct vb_progress {
	const char *phase;          /* "scan" (finding changes) or "copy" */
	unsigned drive_index;       /* 0-based */
	unsigned drive_count;
	const char *drive_name;
	uint64_t drive_done;        /* bytes of this drive processed */
	uint64_t drive_size;
	uint64_t total_done;        /* bytes of all drives processed in this phase */
	uint64_t total_size;
	uint64_t bytes_read;        /* read from sources so far */
	uint64_t bytes_zero;        /* holes and zero blocks not stored */
	uint64_t bytes_out;         /* archive bytes produced (before compression) */
};

typedef void (*vb_progress_fn)(void *opaque, const struct vb_progress *p);


/* A small file beside the archive (a dump directory's ARCHIVE.notes,
 * ARCHIVE.protected): published, fsynced, just before the archive, so that
 * it is there when the checkpoint is committed. */
struct vb_sibling {
	const char *path;
	const void *data;
	size_t len;
};

struct vb_live;

struct vb_backup_opts {
	const struct vb_drive *drives;
	size_t ndrives;
	/* A running VM (--qmp, vb_live_open): its drives instead of drives;
	 * the point in time, its bitmaps and their commit or rollback are part
	 * of the transaction. Needs a state. */
	struct vb_live *live;
	const char *const *configs; /* user config files, stored by basename */
	size_t nconfigs;
	/* Without live: a layout blob all the same (a stopped libvirt
	 * domain's XML, libvirt-domain.xml), stored as a session's is. */
	const char *layout_name, *layout;
	const volatile sig_atomic_t *cancel; /* non-zero: stop at the next cluster */
	vb_progress_fn progress;     /* called about every 4 MiB; may be NULL */
	void *progress_opaque;
	/* What prepare decided and the run's end noted that a person should
	 * know (a running VM's own warnings go to its vb_live_on_warning). */
	vb_warn_fn warn;             /* may be NULL: warnings are dropped */
	void *warn_opaque;
	/* output */
	bool compress;               /* zstd */
	int zstd_level, zstd_threads;
	const char *archive_path;    /* recorded in the state; NULL if not a file */
	const struct vb_pubkey *encrypt_to; /* encrypted to this key; NULL: not */
	const struct vb_key *sign;   /* a signature trailer with this key; NULL: none */
	/* checkpoints: without a state, a plain full backup */
	struct vb_state *state;
	enum vb_mode mode;
	const char *since;           /* differential: the base checkpoint */
	const char *checkpoint;      /* the new checkpoint's name; NULL: a timestamp */
	bool no_commit;              /* leave the new checkpoint pending */
	uint64_t bwlimit;            /* bytes per second read from drives; 0: none */
	/* Find changes with the digest maps even where a source offers a dirty
	 * bitmap (qcow2 checkpoint bitmaps are still kept up to date). */
	bool no_source_bitmaps;
	/* --mode auto's rotation: a full backup once the chain since the
	 * latest full holds max_chain backups, or the full is full_every
	 * seconds old (0: no limit). */
	unsigned max_chain;
	int64_t full_every;
	/* An incremental or differential with fewer changed bytes than this is
	 * not kept: the archive is discarded, nothing committed, every bitmap
	 * stays (the next run includes these changes). 0: keep every one. */
	uint64_t threshold;
	const struct vb_sibling *siblings;
	size_t nsiblings;
};

struct vb_backup_result {
	enum vb_kind kind;       /* full, incremental or differential */
	unsigned drives;
	uint64_t total_size;     /* sum of drive sizes */
	uint64_t bytes_read;     /* read from the sources */
	uint64_t bytes_zero;     /* holes and all-zero blocks, not stored */
	uint64_t bytes_unchanged; /* not read or not stored: unchanged since the base */
	uint64_t clusters;       /* clusters in the archive */
	uint64_t dirty_clusters; /* clusters changed since the base (incremental) */
	uint64_t archive_bytes;  /* VMA bytes, before compression */
	uint64_t output_bytes;   /* bytes written to the output */
	uint8_t uuid[VMA_UUID_LEN];
	uint8_t sha256[32];      /* of the output bytes */
	char checkpoint[132];    /* the new checkpoint, "" without a state */
	bool published;          /* the archive is out (renamed, or all read): on a
				  * later failure too */
	bool committed;          /* the checkpoint is now the latest (on a failure
				  * too: then the state may not be durable) */
	bool pending;            /* the checkpoint waits for `vmaback commit` */
	bool skipped;            /* below the threshold: nothing kept */
	double seconds;
};

struct vb_backup;

/* Prepares the transaction: checks every drive name, opens and sizes every
 * source, reads every config file, decides the mode and loads the state it
 * needs. Nothing is written. */
struct vb_backup *vb_backup_prepare(const struct vb_backup_opts *o, struct vb_error *err);
/* The kind prepare decided: full, incremental or differential. */
enum vb_kind vb_backup_kind(const struct vb_backup *b);
/* Replaces o->archive_path (path must outlive b), checked again against
 * the sources: a dump directory's name depends on the kind. */
int vb_backup_set_archive_path(struct vb_backup *b, const char *path, struct vb_error *err);
/* The siblings the archive is published with (they may name the archive's
 * final path, known only after prepare); the array stays the caller's. */
void vb_backup_set_siblings(struct vb_backup *b, const struct vb_sibling *f, size_t n);
/* Runs one job per drive, in order, into sink (consumed: published only when
 * every job succeeded, discarded otherwise), then commits the checkpoint.
 * If the archive was published but the commit failed, res->committed is
 * false and -1 is returned. */
int vb_backup_run(struct vb_backup *b, struct vb_writer *sink, struct vb_backup_result *res,
		  struct vb_error *err);
void vb_backup_free(struct vb_backup *b);

/* ============================================================== merge */

/* Writes the synthetic full archive of a chain into sink (consumed), which
 * Proxmox's `vma extract` reads like any full backup. */
int vb_merge(const char *const *paths, size_t n, struct vb_writer *sink, bool compress,
	     int zstd_level, int zstd_threads, struct vb_error *err);

#endif
