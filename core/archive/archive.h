/* archive.h: opening and checking archives (one, or a chain of them read as one
 * merged stream), vmaback.json, the archive header builder. Uses io, vma. */
#ifndef VMABACK_ARCHIVE_H
#define VMABACK_ARCHIVE_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/base/base.h"
#include "core/io/io.h"
#include "vma/vma.h"

/* ============================================================== archives */

/* What vmaback.json says about one drive (or, for a foreign archive, what
 * the header says). */
struct vb_meta_drive {
	char *name;
	unsigned dev_id;
	uint64_t size;        /* exact size in bytes */
	uint64_t clusters;    /* clusters the archive holds; UINT64_MAX if unknown */
};

struct vb_meta {
	bool ours;            /* the archive carries vmaback.json */
	enum vb_kind kind;    /* VB_KIND_PROXMOX for archives without vmaback.json */
	char *tool_version;
	char uuid[37];        /* the header's uuid */
	int64_t ctime;
	int64_t time_ns;      /* creation time in ns (vmaback.json), 0 if unknown */
	char *set;            /* backup set, or NULL */
	char *checkpoint;     /* checkpoint this archive created, or NULL */
	char *parent_checkpoint; /* incremental/differential: the base checkpoint */
	char *parent_uuid;    /* ... and the uuid of the archive that made it */
	char **merged;        /* a synthetic full: the uuids of the archives it
			       * stands for, so that their successors follow it */
	size_t nmerged;
	size_t ndrives;
	struct vb_meta_drive *drives;
};

struct vb_archive;

/* Opens an archive (file or "-"), detects compression, reads and checks the
 * header and vmaback.json. Errors: VB_E_USAGE (missing file), VB_E_INVALID. */
struct vb_archive *vb_archive_open(const char *path, struct vb_error *err);
/* The same on an open descriptor, which it owns from here on; path names
 * it in messages. */
struct vb_archive *vb_archive_open_fd(int fd, const char *path, struct vb_error *err);
void vb_archive_free(struct vb_archive *a);
struct vma_reader *vb_archive_vma(struct vb_archive *a);
const struct vb_meta *vb_archive_meta(const struct vb_archive *a);
enum vb_compression vb_archive_compression(const struct vb_archive *a);
const char *vb_archive_path(const struct vb_archive *a);
/* Next cluster: 1, 0 at the end, -1 with a VB_E_INVALID/VB_E_FAIL error. */
int vb_archive_next_cluster(struct vb_archive *a, struct vma_cluster *c, struct vb_error *err);

struct vb_verify_result {
	unsigned drives;        /* disks: the devices but "vmstate" */
	bool vmstate;           /* the archive holds Proxmox's RAM state */
	uint64_t clusters;
	uint64_t stored_bytes;
	uint64_t stream_bytes;
};
/* Reads the whole stream with every check, then checks completeness: every
 * cluster of every drive for full and foreign archives (but "vmstate"), the
 * cluster counts of vmaback.json for every archive of ours. */
int vb_verify(struct vb_archive *a, const volatile sig_atomic_t *cancel,
	      struct vb_verify_result *res, struct vb_error *err);


/* ============================================================== chains
 * A full archive and the incremental/differential archives after it,
 * checked to be one chain before anything is written, read as one merged
 * stream in which each cluster comes once, from the newest archive. */

struct vb_chain;

/* Opens and checks: the first is full, every later one is incremental or
 * differential of the same set and drives, its parent is an earlier archive
 * of the list (or one that an earlier synthetic full of merge stands for),
 * the archives are in time order, none is repeated. A chain of
 * one archive may be any full archive (Proxmox's too). */
struct vb_chain *vb_chain_open(const char *const *paths, size_t n, struct vb_error *err);
void vb_chain_free(struct vb_chain *c);
/* The drives (and kind, set, checkpoint) as of the newest archive. */
const struct vb_meta *vb_chain_meta(const struct vb_chain *c);
size_t vb_chain_length(const struct vb_chain *c);
struct vb_archive *vb_chain_archive(struct vb_chain *c, size_t i);
/* The next cluster of the merged stream: 1, 0 at the end (after every
 * archive's completeness was checked), -1 with err set. */
int vb_chain_next(struct vb_chain *c, struct vma_cluster *out, struct vb_error *err);


/* ============================================================== index
 * Random access to a chain's newest point without restoring it: the chain
 * is opened and checked as vb_chain_open does, then one pass over each
 * archive's extent headers, seeking over the data, maps each cluster to
 * the newest archive holding it. Plain VMA and seekable zstd archives
 * (vb_rafile); anything else is refused. Not for concurrent use. */

struct vb_index;

struct vb_index *vb_index_open(const char *const *paths, size_t n, struct vb_error *err);
void vb_index_free(struct vb_index *x);
/* The index written to fd (its own private format), and read back by
 * vb_index_load for the same chain: the chain is opened and checked again
 * (its headers only), the index file checked against it (the archives'
 * uuids, each entry within its drive and archive), the extents not read
 * again. `vmaback serve` builds the index once this way, for its plugin. */
int vb_index_save(const struct vb_index *x, int fd, struct vb_error *err);
struct vb_index *vb_index_load(const char *const *paths, size_t n, int fd, struct vb_error *err);
/* The newest archive's drives: drive i is meta->drives[i]. */
const struct vb_meta *vb_index_meta(const struct vb_index *x);
/* Clusters of drive i that hold data. */
uint64_t vb_index_clusters(const struct vb_index *x, size_t drive);
/* zstd frames decompressed (started) so far, over the chain. */
uint64_t vb_index_frames_started(const struct vb_index *x);
/* len bytes of drive i at off (within its size); what no archive stores is zeros. */
int vb_index_pread(struct vb_index *x, size_t drive, void *buf, size_t len, uint64_t off,
		   struct vb_error *err);
/* The runs of [off, off + len) in order, each data (stored blocks) or a
 * hole (reads as zeros), to fn (which returns 0 or -1), at 4 KiB grain. */
typedef int (*vb_index_extent_fn)(void *opaque, uint64_t off, uint64_t len, bool data);
int vb_index_extents(struct vb_index *x, size_t drive, uint64_t off, uint64_t len,
		     vb_index_extent_fn fn, void *opaque, struct vb_error *err);

/* A sequential archive (zstd without a seek table, gzip, lzop) decompressed
 * once into dir as the plain VMA file dir/vmaback-cache-UUID.vma (sparse
 * where the stream holds whole zero 4 KiB blocks), published atomically;
 * an existing one with the same first bytes is reused (*reused). fn, if
 * not NULL, hears of the progress: compressed bytes read of the file's
 * size, bytes written. Refused (VB_E_FAIL, ENOSPC) when dir has less room
 * than the compressed file, or fills up. The malloc'd path, or NULL. */
typedef void (*vb_cache_progress_fn)(void *opaque, uint64_t raw_done, uint64_t raw_total,
				     uint64_t out_bytes);
char *vb_archive_cache(const char *path, const char *dir, vb_cache_progress_fn fn, void *opaque,
		       bool *reused, struct vb_error *err);

/* Completeness of one drive after the end of the stream (see vb_verify). */
int vb_archive_check_drive(struct vb_archive *a, unsigned dev_id, struct vb_error *err);

/* ============================================================== writing */

/* A VMA writer whose bytes go into out (which stays the caller's; the
 * caller may change o->out between writes), and whose write errors are
 * kept in *err: the one adapter backup and merge share. */
struct vb_vma_out {
	struct vb_writer *out;
	struct vb_error *err;
};
struct vma_writer *vb_vma_out_writer(struct vb_vma_out *o, struct vb_error *err);
/* The VMA library's error CODE, with its errno and TEXT, as the vb_error
 * "WHAT: TEXT"; -1. A damaged archive (a header, blob, extent or cluster
 * error, a limit of the format) is VB_E_INVALID; VMA_ERR_NOMEM is
 * VB_E_FAIL with ENOMEM; VMA_ERR_USAGE is VB_E_FAIL; VMA_ERR_IO is
 * VB_E_FAIL with its errno unless err already holds the callback's own
 * error, which then stays. The one conversion: no caller maps codes. */
int vb_error_from_vma(struct vb_error *err, enum vma_err code, int sys_errno,
		      const char *text, const char *what);
/* The writer's last error as "archive: ..." (always VB_E_FAIL: what the
 * writer refuses is the backup's failure); the reader's as "PATH: ...". */
int vb_error_vma(struct vb_error *err, const struct vma_writer *w);
int vb_error_vma_reader(struct vb_error *err, const struct vma_reader *r, const char *path);

/* ============================================================== vmaback.json */

#define VB_META_NAME "vmaback.json"

struct vb_meta_drive_in {
	const char *name;
	unsigned dev_id;
	uint64_t size;
	uint64_t clusters;
	const char *source;   /* "file", "block" */
	const char *path;
};

/* What vmaback.json says of the archive as a whole. */
struct vb_meta_archive_in {
	enum vb_kind kind;
	const char *set;                /* NULL: no backup set */
	const char *checkpoint;
	const char *parent_checkpoint;
	const char *parent_uuid;
	const char *const *merged;      /* a synthetic full: the archives it stands for */
	size_t nmerged;
	int64_t time_ns;                /* 0: now; a synthetic full: its newest archive's */
};

/* Builds vmaback.json for an archive. Returns a malloc'd string or NULL. */
char *vb_meta_build(const struct vb_meta_archive_in *a, const uint8_t uuid[VMA_UUID_LEN],
		    int64_t ctime, const struct vb_meta_drive_in *drives, size_t ndrives,
		    struct vb_error *err);
/* Reads the archive's metadata: vmaback.json when present (checked against
 * the header), else the header's devices. */
int vb_meta_load(struct vb_meta *m, struct vma_reader *r, const char *what,
		 struct vb_error *err);
void vb_meta_clear(struct vb_meta *m);

#endif
