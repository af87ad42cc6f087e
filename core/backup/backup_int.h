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
	bool old_map;              /* latest->digests was opened and can be used (its
				    * content is checked where it is read) */
	bool map_damaged;          /* the scan found latest->digests damaged */
	struct bitmap *extra;      /* differential: changes between since and latest */
	struct bitmap *plan;       /* clusters to copy; NULL: all */
	struct bitmap *dirty;      /* changes since the latest checkpoint */
	char *map_file;            /* the new digest map (a state file) */
	char *bitmap_file;         /* the new checkpoint's bitmap (a state file) */
	struct vb_adigests_out *ad; /* the archive's cluster digests, being written */
	char *ad_file;             /* ... and written (a state file), or NULL */
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
	struct vb_qbitmap *qbitmaps; /* the image's bitmaps before the add (the one */
	size_t nqbitmaps;          /* qemu-img info of a run: rotate uses it too) */
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
	uint8_t *buf2;               /* CHUNK_SIZE, with a hasher: the next chunk */
	uint8_t zero_digest[DIGEST_LEN]; /* of a whole zero cluster */
	uint8_t digests[CHUNK_CLUSTERS][DIGEST_LEN]; /* of the chunk in buf */
	uint8_t digests2[CHUNK_CLUSTERS][DIGEST_LEN]; /* of the chunk in buf2 */
	struct chunk_hasher *hasher; /* a second CPU for them, or NULL */
	struct vma_tree *tree;       /* the archive digest is vma-tree-1, or NULL */
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
/* The same started on the helper, while the caller goes on (reading the
 * next chunk, writing the one before): false when there is no helper (then
 * call chunk_digests); else chunk_digests_wait, which hashes what the
 * helper has not taken yet, before data or out is touched. */
bool chunk_digests_start(struct run *r, const uint8_t *data, size_t len, uint64_t mask,
			 uint8_t (*out)[DIGEST_LEN]);
int chunk_digests_wait(struct run *r);

/* Pass 1 of an incremental or differential backup: reads the whole drive,
 * writes its new digest map, and sets j->dirty to the clusters that differ
 * from the latest checkpoint's map. */
int job_scan(struct run *r, struct drive_job *j);
/* Copies the clusters of j->plan (all when NULL) into the archive. A full
 * backup with a state also writes the digest map and j->dirty on the way;
 * an incremental one checks each cluster against the map of its scan. */
int job_copy(struct run *r, struct drive_job *j);
/* gather.c: clusters cl[0..n) (ascending, n <= CHUNK_CLUSTERS) read into
 * r->buf one after the other, in one gathered read: *len the bytes they
 * cover (64 KiB each, the drive's last one perhaps less), bit k of
 * *data_mask set when cluster k holds data (as read_chunk). */
int gather_read(struct run *r, struct drive_job *j, const uint64_t *cl, size_t n,
		size_t *len, uint64_t *data_mask);

/* maps.c: digest maps in a job (job.c uses them). */
struct fdio {
	int fd;
	int err;        /* errno of a failed write: the map writer keeps only "I/O error" */
};

/* A digest map being read in cluster order. */
struct map_in {
	struct fdio io;
	struct digest_reader *rd;
	uint64_t next;          /* index of the digest rd returns next */
	const char *root;       /* hex root it must have (the old map), or NULL */
	bool bad;               /* its content is damaged */
};

/* The new digest map of a drive, written as the drive is read. */
struct map_out {
	struct fdio io;
	struct digest_writer *wr;
};

int map_in_open(struct run *r, struct map_in *m, const char *file, uint64_t size);
/* The digest of cluster i (reading past the ones before it). */
int map_in_get(struct run *r, struct map_in *m, uint64_t i, uint8_t d[DIGEST_LEN]);
int map_in_finish(struct run *r, struct map_in *m, uint64_t nclusters);
/* The latest checkpoint's map of j, whose root is checked at its end. */
int old_map_open(struct run *r, struct drive_job *j, struct map_in *m);
void map_in_close(struct map_in *m);
int map_out_open(struct run *r, struct drive_job *j, struct map_out *m);
int map_out_finish(struct run *r, struct drive_job *j, struct map_out *m);
void map_out_close(struct map_out *m);

/* Opens a digest map of the state and checks its header and size; whole:
 * also reads it all and checks it against its recorded root hash (a
 * damaged map must never steer an incremental backup). A scanned drive's
 * map is checked whole as the scan reads it (one read per run); a drive
 * whose source bitmap replaces the scan is checked whole before the copy,
 * which patches the map after the archive started. */
int job_check_map(struct vb_state *s, const struct vb_ckpt_drive *d, uint64_t size,
		  bool whole, struct vb_error *err);

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
