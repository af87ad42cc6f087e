/* backup_int.h: the parts of the backup transaction shared by prepare.c
 * (prepare, free), backup.c (run, commit), decide.c (name, mode), job.c
 * (reading drives into the archive), image_bitmaps.c (qcow2 checkpoint
 * bitmaps) and live_vm.c (a running VM); private to core/backup. */
#ifndef VMABACK_BACKUP_INT_H
#define VMABACK_BACKUP_INT_H

#ifndef VB_MODULE_backup
#error "core/backup/backup_int.h is private to core/backup: include core/backup/backup.h"
#endif

#include "bitmap/bitmap.h"
#include "core/archive/archive.h"
#include "core/backup/backup.h"
#include "core/source/source.h"

/* Bytes read per step: whole clusters (64 of them), large sequential I/O. */
#define CHUNK_SIZE (4u * 1024u * 1024u)
#define CHUNK_CLUSTERS (CHUNK_SIZE / VMA_CLUSTER_SIZE)

struct config_blob {
	char *name;
	uint8_t *data;
	size_t len;
};

struct drive_job {
	struct vb_source *src;
	const char *name;
	const char *spec;
	unsigned dev_id;
	uint64_t size;
	uint64_t nclusters;
	const struct vb_ckpt_drive *latest; /* this drive in the latest checkpoint */
	bool old_map;              /* latest->digests was checked and can be used */
	struct bitmap *extra;      /* differential: changes between since and latest */
	struct bitmap *plan;       /* clusters to copy; NULL: all */
	struct bitmap *dirty;      /* changes since the latest checkpoint */
	char *map_file;            /* the new digest map (a state file) */
	char *bitmap_file;         /* the new checkpoint's bitmap (a state file) */
	uint8_t root[DIGEST_LEN];  /* the new digest map's root hash */
	/* The source's own dirty bitmap (image_bitmaps.c) */
	char *bitmap;              /* its name: --bitmap or the image's checkpoint bitmap */
	bool bitmap_given;         /* from --bitmap (else vmaback's own) */
	char *bitmap_why;          /* why it cannot be used, or NULL */
	bool bitmap_missing;       /* ... because it does not exist */
	struct bitmap *srcmap;     /* its changes since the latest checkpoint */
	bool from_bitmap;          /* no scan: j->dirty is the source's bitmap */
	char *image;               /* qcow2 file whose checkpoint bitmaps vmaback keeps */
	char *added;               /* the bitmap this run added to it */
	char *owned_spec;          /* a running VM's drive: "qmp:NODE" */
};

struct vb_backup {
	struct vb_backup_opts o;
	struct drive_job *jobs;
	size_t njobs;
	struct config_blob *cfg;
	size_t ncfg;
	enum vb_mode mode;           /* resolved: never AUTO */
	const struct vb_ckpt *base;  /* the archive's parent checkpoint, or NULL */
	char ckname[132];
	struct vb_warnings warn;      /* to o.warn */
	bool live_started;           /* vb_live_start was called */
	bool live_finished;          /* vb_live_finish was called */
};

struct vb_ratelimit;

/* The state of one run, shared by the jobs and the write callback. */
struct run {
	struct vb_backup *b;
	struct vb_writer *out;
	struct vb_vma_out vo;        /* vw's bytes into out */
	struct vma_writer *vw;
	struct vb_error *err;
	struct vb_backup_result *res;
	struct vb_progress prog;
	struct vb_ratelimit *rl;
	uint8_t *buf;                /* CHUNK_SIZE */
	uint8_t zero_digest[DIGEST_LEN]; /* of a whole zero cluster */
	uint8_t digests[CHUNK_CLUSTERS][DIGEST_LEN]; /* of the chunk in buf */
	struct chunk_hasher *hasher; /* a second CPU for them, or NULL */
};

/* decide.c: the new checkpoint's name (never one the state has), then the
 * mode, the base and the latest checkpoint's digest maps (--mode auto
 * falls back to a full backup, with a note, where it must). */
int bk_pick_checkpoint_name(struct vb_backup *b, struct vb_error *err);
int bk_decide_mode(struct vb_backup *b, struct vb_error *err);
/* chunk_digests.c: a helper thread that hashes half of each chunk. NULL
 * when it cannot start (the caller then hashes alone); free(NULL) is a no-op. */
struct chunk_hasher *chunk_hasher_new(void);
void chunk_hasher_free(struct chunk_hasher *h);
/* The digest of every cluster of data (len bytes, bit c of mask: cluster c
 * holds data; a whole cluster without data gets the zero digest) into out. */
int chunk_digests(struct run *r, const uint8_t *data, size_t len, uint64_t mask,
		  uint8_t (*out)[DIGEST_LEN]);

/* Pass 1 of an incremental or differential backup: reads the whole drive,
 * writes its new digest map, and sets j->dirty to the clusters that differ
 * from the latest checkpoint's map. */
int job_scan(struct run *r, struct drive_job *j);
/* Copies the clusters of j->plan (all when NULL) into the archive. A full
 * backup with a state also writes the digest map and j->dirty on the way;
 * an incremental one checks each cluster against the map of its scan. */
int job_copy(struct run *r, struct drive_job *j);

/* Reads a whole digest map of the state and checks it against its recorded
 * root hash: a damaged map must never steer an incremental backup. */
int job_check_map(struct vb_state *s, const struct vb_ckpt_drive *d, uint64_t size,
		  struct vb_error *err);

/* Checkpoint bitmaps in qcow2 images and dirty bitmaps from sources
 * (image_bitmaps.c). Before j's source opens: for a qcow2 file in a backup
 * set, reads its bitmaps (refusing an image in use), chooses the bitmap to
 * read, and adds the new checkpoint's bitmap. */
int bk_image_prepare(struct vb_backup *b, struct drive_job *j, const struct vb_drive *d,
		     struct vb_error *err);
/* After the mode is decided: reads the source bitmaps an incremental or
 * differential uses instead of a scan; one that cannot be used makes auto
 * mode a full backup (a note) and fails an explicit mode. */
int bk_source_bitmaps(struct vb_backup *b, enum vb_mode asked, struct vb_error *err);

/* prepare.c: removes the run's new state files (digest maps, bitmaps) the
 * state does not name yet. */
void bk_drop_new_files(struct vb_backup *b);

enum bk_outcome { BK_FAILED, BK_PENDING, BK_COMMITTED };
/* After the run (and in vb_backup_free): closes every source, then
 * rotates the images' checkpoint bitmaps (committed), keeps the new one
 * (pending) or removes it (failed). Problems become notes. */
void bk_images_finish(struct vb_backup *b, enum bk_outcome how);

/* A running VM (live_vm.c). Instead of opening the drives: recovery,
 * keeping the bitmap of the set's latest committed checkpoint, and the
 * jobs sized from QEMU's drives. */
int bk_live_prepare(struct vb_backup *b, struct vb_error *err);
/* Once the mode is decided: the point in time, then the exports opened as
 * the drives' sources with the run's bitmap; a drive whose bitmap is gone
 * is read whole (a note), or fails an explicit --mode incremental. */
/* The VM's block layout text, stored as config blob blob of the archive. */
int bk_add_layout(struct vb_backup *b, const char *blob, const char *text, struct vb_error *err);
int bk_live_start(struct vb_backup *b, enum vb_mode asked, struct vb_error *err);
/* Ends QEMU's side once (the sources must be closed): teardown, then the
 * final bitmap transaction. Problems become notes. */
void bk_live_finish(struct vb_backup *b, enum bk_outcome how);
/* After a read of a running VM's drive failed: what may have caused it
 * (a full scratch directory) is added to err's message. */
void bk_live_explain(struct vb_backup *b, struct vb_error *err);

#endif
