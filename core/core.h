/* core.h: vmaback's engine (sources, output and input stacks, backup
 * transaction, extraction); returns errors, never prints or exits. */
#ifndef VMABACK_CORE_H
#define VMABACK_CORE_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "vma/vma.h"

#define VB_VERSION "0.1.0"

/* ============================================================== errors */

/* Error classes: decide the exit status in cli/. */
enum vb_errclass {
	VB_OK = 0,
	VB_E_FAIL = 1,      /* an operation failed (I/O, source, output, consumer) */
	VB_E_USAGE = 2,     /* bad arguments or bad input given by the user */
	VB_E_INVALID = 3,   /* an archive is corrupt, truncated, or not an archive */
	VB_E_LOCKED = 4,    /* another run holds the lock */
	VB_E_CANCELED = 5,  /* stopped by a signal */
};

struct vb_error {
	enum vb_errclass cls;
	int sys_errno;      /* 0 when not a system error */
	char msg[1024];
};

/* Sets err (when err is not NULL and holds no error yet: the first error
 * wins) and returns -1. */
int vb_error_set(struct vb_error *err, enum vb_errclass cls, int sys_errno,
		 const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void vb_error_clear(struct vb_error *err);

/* ============================================================== output stack
 * A writer is one layer of the output: a filter (zstd) or a sink (file,
 * fd, command). Layers own the layer below them. */

struct vb_writer;

struct vb_writer_ops {
	int (*write)(struct vb_writer *w, const void *buf, size_t len, struct vb_error *err);
	/* success: flush, make durable, publish; releases the layer */
	int (*close)(struct vb_writer *w, struct vb_error *err);
	/* failure: remove anything that could look valid; releases the layer */
	void (*discard)(struct vb_writer *w);
};

struct vb_writer {
	const struct vb_writer_ops *ops;
	uint64_t bytes_in;  /* bytes given to this layer */
};

/* All of buf or an error; returns 0 or -1. */
int vb_writer_write(struct vb_writer *w, const void *buf, size_t len, struct vb_error *err);
/* Finishes the whole stack from this layer down; on failure the rest of the
 * stack is discarded. Frees w in every case. */
int vb_writer_close(struct vb_writer *w, struct vb_error *err);
/* Discards the stack from this layer down and frees it; NULL is a no-op. */
void vb_writer_discard(struct vb_writer *w);

/* A regular file published atomically: written as a hidden temporary in the
 * same directory (mode 0600), fsynced, renamed to path (refusing to replace
 * an existing file unless force), then the directory is fsynced. The file
 * is created at once, so a missing directory fails here. */
struct vb_writer *vb_sink_file_new(const char *path, bool force, struct vb_error *err);
/* The temporary's path (for a signal handler's last-resort unlink()). */
const char *vb_sink_file_temp_path(const struct vb_writer *w);

/* A file descriptor that is not owned (standard output). close flushes and
 * reports EPIPE and write errors; it does not close fd. */
struct vb_writer *vb_sink_fd_new(int fd, const char *what, struct vb_error *err);

/* `/bin/sh -c command` in its own process group, reading the stream on its
 * standard input (stdout and stderr are inherited). SIGPIPE must be ignored
 * (cli/ does): a command that stops reading is an EPIPE error naming it.
 * close succeeds only if the command exits 0; discard sends SIGTERM to its
 * process group before closing the pipe (SIGKILL after 5 s) and reaps it. */
struct vb_writer *vb_sink_cmd_new(const char *command, struct vb_error *err);
/* The command's process id, also its process group (for a last-resort kill). */
pid_t vb_sink_cmd_pid(const struct vb_writer *w);

/* zstd compression filter in front of next: one frame, checksum on,
 * level 1..19, threads 0 (single) or more workers. Owns next on success;
 * on failure next stays the caller's (to discard). */
struct vb_writer *vb_zstd_writer_new(struct vb_writer *next, int level, int threads,
				     struct vb_error *err);

/* SHA-256 of the bytes passing through, written to digest (32 bytes), and
 * their count to *bytes (if not NULL), when the stack closes successfully.
 * Owns next on success; on failure next stays the caller's. */
struct vb_writer *vb_hash_writer_new(struct vb_writer *next, uint8_t digest[32],
				     uint64_t *bytes, struct vb_error *err);

/* ============================================================== input stack */

enum vb_compression {
	VB_COMP_NONE = 0,
	VB_COMP_ZSTD,
	VB_COMP_GZIP,
	VB_COMP_LZO,
};
const char *vb_compression_name(enum vb_compression c);

struct vb_reader;

/* Opens path ("-" is standard input) and detects by content whether it is
 * plain VMA, zstd, gzip or lzop; fails with VB_E_INVALID for anything else,
 * including an empty input. */
struct vb_reader *vb_input_open(const char *path, struct vb_error *err);
/* Decompressed bytes: returns the count (0 only at the end) or -1 with err set.
 * A truncated or corrupt compressed stream is VB_E_INVALID. */
ssize_t vb_reader_read(struct vb_reader *r, void *buf, size_t len, struct vb_error *err);
enum vb_compression vb_reader_compression(const struct vb_reader *r);
/* Compressed bytes consumed from the underlying file so far. */
uint64_t vb_reader_raw_bytes(const struct vb_reader *r);
void vb_reader_free(struct vb_reader *r);

/* ============================================================== names */

/* Drive names become archive device names and file names on extraction:
 * 1..255 bytes, no '/', no control characters, not "." or "..", and not
 * "vmstate" (Proxmox's RAM state). Returns 0 or -1 with a VB_E_USAGE error. */
int vb_drive_name_check(const char *name, struct vb_error *err);
/* NAME with control characters and '\\' shown as \\xNN, cut to fit SIZE:
 * for messages and logs. */
void vb_name_printable(const char *name, char *out, size_t size);
/* A name that is safe as one file name inside a directory. */
bool vb_safe_file_name(const char *name);

/* ============================================================== sources */

struct vb_source;
struct bitmap;

/* Opens a drive's source read-only. spec is
 *   PATH         a regular file or a block device ("raw"), or a qcow2 image
 *                when its content starts with the qcow2 magic (refused if it
 *                names a backing or data file: give qcow2:PATH for those);
 *   raw:PATH     a raw file or device, never probed;
 *   qcow2:PATH, vmdk:PATH, vdi:PATH, vhdx:PATH
 *                an image file read through a qemu-nbd that libnbd starts
 *                (read-only, socket activation) and stops at close; kind
 *                "qcow2", ...; backing chains are read as QEMU reads them;
 *   nbd://HOST[:PORT]/EXPORT, nbd+unix:///EXPORT?socket=PATH, nbds://...
 *                an NBD export ("nbd").
 * Holes and zeros (SEEK_HOLE, NBD base:allocation) are never read.
 * A directory, FIFO, socket or character device, a missing file or a
 * 0-byte source is a VB_E_USAGE error naming the drive; an image another
 * program writes (a running VM) is VB_E_LOCKED. */
struct vb_source *vb_source_open(const char *drive, const char *spec, struct vb_error *err);
/* Like vb_source_open, and negotiates the source's dirty bitmap NAME at
 * connection time (qemu-nbd -B NAME, the qemu:dirty-bitmap:NAME metadata
 * context), which vb_source_dirty_bitmap then reads; bitmap NULL is
 * vb_source_open. Sources without bitmaps ignore it. */
struct vb_source *vb_source_open_bitmap(const char *drive, const char *spec,
					const char *bitmap, struct vb_error *err);
uint64_t vb_source_size(const struct vb_source *s);
const char *vb_source_kind(const struct vb_source *s);   /* "raw", ... */
/* Describes the range starting at off: *len bytes (>= 1, up to max) that are
 * all data (*data true) or all known zero (holes). */
int vb_source_extent(struct vb_source *s, uint64_t off, uint64_t max, uint64_t *len,
		     bool *data, struct vb_error *err);
/* Reads exactly len bytes at off; a short read (the source shrank) or an I/O
 * error is a VB_E_FAIL naming the drive and offset. */
int vb_source_pread(struct vb_source *s, void *buf, size_t len, uint64_t off,
		    struct vb_error *err);
/* The source's own dirty bitmap NAME (clusters changed since the bitmap was
 * started), mapped onto 64 KiB clusters: 1 with *out set, 0 when this kind
 * of source has no bitmaps, -1 on error (no such bitmap, or one that was not
 * negotiated by vb_source_open_bitmap: VB_E_USAGE). Reads only the bitmap
 * (NBD block status), never the data. */
int vb_source_dirty_bitmap(struct vb_source *s, const char *name, struct bitmap **out,
			   struct vb_error *err);
void vb_source_close(struct vb_source *s);

/* ============================================================== rate limit */

struct vb_ratelimit;
typedef double (*vb_clock_fn)(void *opaque);              /* monotonic seconds */
typedef void (*vb_sleep_fn)(void *opaque, double seconds);

/* The process's cancel flag (set by a signal handler): a write blocked on a
 * pipe whose reader stalls returns at the signal instead of resuming, when
 * the handler is installed without SA_RESTART. */
void vb_set_cancel(const volatile sig_atomic_t *flag);
bool vb_canceled(void);

/* A token bucket of rate bytes per second that saves up at most burst bytes
 * while idle; NULL clock/sleep use the real ones. rate 0 returns NULL. */
struct vb_ratelimit *vb_ratelimit_new(uint64_t rate, uint64_t burst, vb_clock_fn clock,
				      vb_sleep_fn sleep_fn, void *opaque);
/* Accounts n bytes, sleeping as long as the rate requires; -1 if cancel was
 * set while waiting. NULL rl is no limit. */
int vb_ratelimit_take(struct vb_ratelimit *rl, uint64_t n, const volatile sig_atomic_t *cancel);
void vb_ratelimit_free(struct vb_ratelimit *rl);

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

enum vb_mode {
	VB_MODE_AUTO = 0,    /* full when there is no usable checkpoint, else incremental */
	VB_MODE_FULL,
	VB_MODE_INCREMENTAL, /* changes since the latest checkpoint */
	VB_MODE_DIFFERENTIAL /* changes since an older checkpoint (since) */
};
const char *vb_mode_name(enum vb_mode m);

struct vb_backup_opts {
	const struct vb_drive *drives;
	size_t ndrives;
	const char *const *configs; /* user config files, stored by basename */
	size_t nconfigs;
	const volatile sig_atomic_t *cancel; /* non-zero: stop at the next cluster */
	vb_progress_fn progress;     /* called about every 4 MiB; may be NULL */
	void *progress_opaque;
	/* output */
	bool compress;               /* zstd */
	int zstd_level, zstd_threads;
	const char *archive_path;    /* recorded in the state; NULL if not a file */
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
};

struct vb_backup_result {
	const char *kind;        /* "full", "incremental", "differential" */
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
	bool committed;          /* the checkpoint is now the latest */
	bool pending;            /* the checkpoint waits for `vmaback commit` */
	double seconds;
};

struct vb_backup;

/* Prepares the transaction: checks every drive name, opens and sizes every
 * source, reads every config file, decides the mode and loads the state it
 * needs. Nothing is written. */
struct vb_backup *vb_backup_prepare(const struct vb_backup_opts *o, struct vb_error *err);
/* What prepare decided that a person should know, one line each, or "". */
const char *vb_backup_notes(const struct vb_backup *b);
/* Runs one job per drive, in order, into sink (consumed: published only when
 * every job succeeded, discarded otherwise), then commits the checkpoint.
 * If the archive was published but the commit failed, res->committed is
 * false and -1 is returned. */
int vb_backup_run(struct vb_backup *b, struct vb_writer *sink, struct vb_backup_result *res,
		  struct vb_error *err);
void vb_backup_free(struct vb_backup *b);

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
	char *kind;           /* "full", "incremental", "differential"; "proxmox"
			       * for archives without vmaback.json */
	char *tool_version;
	char uuid[37];        /* the header's uuid */
	int64_t ctime;
	int64_t time_ns;      /* creation time in ns (vmaback.json), 0 if unknown */
	char *set;            /* backup set, or NULL */
	char *checkpoint;     /* checkpoint this archive created, or NULL */
	char *parent_checkpoint; /* incremental/differential: the base checkpoint */
	char *parent_uuid;    /* ... and the uuid of the archive that made it */
	size_t ndrives;
	struct vb_meta_drive *drives;
};

struct vb_archive;

/* Opens an archive (file or "-"), detects compression, reads and checks the
 * header and vmaback.json. Errors: VB_E_USAGE (missing file), VB_E_INVALID. */
struct vb_archive *vb_archive_open(const char *path, struct vb_error *err);
void vb_archive_free(struct vb_archive *a);
struct vma_reader *vb_archive_vma(struct vb_archive *a);
const struct vb_meta *vb_archive_meta(const struct vb_archive *a);
enum vb_compression vb_archive_compression(const struct vb_archive *a);
const char *vb_archive_path(const struct vb_archive *a);
/* Next cluster: 1, 0 at the end, -1 with a VB_E_INVALID/VB_E_FAIL error. */
int vb_archive_next_cluster(struct vb_archive *a, struct vma_cluster *c, struct vb_error *err);

struct vb_verify_result {
	unsigned drives;
	uint64_t clusters;
	uint64_t stored_bytes;
	uint64_t stream_bytes;
};
/* Reads the whole stream with every check, then checks completeness: every
 * cluster of every drive for full and foreign archives (but "vmstate"), the
 * cluster counts of vmaback.json for every archive of ours. */
int vb_verify(struct vb_archive *a, const volatile sig_atomic_t *cancel,
	      struct vb_verify_result *res, struct vb_error *err);

struct vb_extract_opts {
	const char *dir;                 /* must not exist; created 0700 */
	const char *const *select;       /* drive names; NULL/0 = all */
	size_t nselect;
	const volatile sig_atomic_t *cancel;
};
/* Proxmox's layout: DIR/disk-NAME.raw (sparse, 0600) and each config blob
 * under its name. On failure everything written is removed, DIR too. */
int vb_extract(struct vb_archive *a, const struct vb_extract_opts *o, struct vb_error *err);

/* ============================================================== state
 * A backup set's state directory: the checkpoint chain (state.json), per
 * checkpoint and drive the dirty bitmap since its parent, per drive the
 * digest map of the latest checkpoint, a manifest per backup, a lock. Every
 * change is published by one rename of state.json; files it does not name
 * are leftovers of an interrupted run and are removed by the next one. */

struct bitmap;

struct vb_ckpt_drive {
	char *name;
	uint64_t size;
	char *source;           /* what --drive said */
	char *bitmap;           /* file in the state directory: changes since parent */
	char *digests;          /* digest map file (latest and pending only), or NULL */
	char *digest_root;      /* hex SHA-256 root of the digest map */
	char *archive_digests;  /* digests of the clusters its archive holds, or NULL */
};

struct vb_ckpt {
	char *name;
	int64_t time;
	char *kind;             /* "full", "incremental", "differential" */
	char *parent;           /* previous checkpoint in the chain, or NULL */
	char *uuid;             /* archive uuid */
	char *base_uuid;        /* archive the new archive's content builds on, or NULL */
	char *archive;          /* where it was written, or NULL (stdout, command) */
	char *archive_sha256;   /* of the bytes as written */
	size_t ndrives;
	struct vb_ckpt_drive *drives;
};

struct vb_state;

/* Creates (0700) and locks DIR/SET; VB_E_LOCKED when another run holds it.
 * Removes leftovers of interrupted runs. */
struct vb_state *vb_state_open(const char *dir, const char *set, struct vb_error *err);
void vb_state_close(struct vb_state *s);
/* The state of set parsed from the text of a state.json (len bytes and a
 * NUL), with every check vb_state_open makes, but no directory or lock:
 * for the fuzz target. vb_state_text: the state.json text it would write
 * (malloc'd). */
struct vb_state *vb_state_parse(const char *set, const char *text, size_t len,
				struct vb_error *err);
char *vb_state_text(const struct vb_state *s);
/* Default state directory: /var/lib/vmaback for root, else
 * $XDG_STATE_HOME/vmaback or ~/.local/state/vmaback. malloc'd. */
char *vb_state_default_dir(void);
int vb_set_name_check(const char *set, struct vb_error *err);
/* What opening did that a person should know (leftovers removed, a pending
 * checkpoint discarded), one line each, or "" . */
const char *vb_state_notes(const struct vb_state *s);
const char *vb_state_path(const struct vb_state *s);
const char *vb_state_set(const struct vb_state *s);

/* The committed chain, oldest first, and the checkpoint awaiting commit. */
size_t vb_state_count(const struct vb_state *s);
const struct vb_ckpt *vb_state_get(const struct vb_state *s, size_t i);
const struct vb_ckpt *vb_state_latest(const struct vb_state *s);
const struct vb_ckpt *vb_state_find(const struct vb_state *s, const char *name);
const struct vb_ckpt *vb_state_pending(const struct vb_state *s);
int vb_ckpt_name_check(const char *name, struct vb_error *err);

/* Reading state files. */
int vb_state_load_bitmap(struct vb_state *s, const char *file, struct bitmap **out,
			 struct vb_error *err);
/* Opens a state file for reading; returns an fd or -1. */
int vb_state_open_file(struct vb_state *s, const char *file, struct vb_error *err);
/* Creates a new state file (unreferenced until published); returns an fd
 * and its malloc'd name in *name. */
int vb_state_create_file(struct vb_state *s, const char *prefix, char **name,
			 struct vb_error *err);
/* Writes a whole new file from a buffer, fsynced. */
int vb_state_write_file(struct vb_state *s, const char *prefix, const void *buf, size_t len,
			char **name, struct vb_error *err);
/* Removes a file this run created and did not publish. */
void vb_state_unlink(struct vb_state *s, const char *file);

/* Publishes c as the new latest checkpoint (or as the pending one): writes
 * its manifest, state.json through a temporary, fsync, rename, fsync of the
 * directory. The state object takes a copy. */
int vb_state_commit(struct vb_state *s, const struct vb_ckpt *c, bool pending,
		    struct vb_error *err);
/* Commits the pending checkpoint NAME. */
int vb_state_commit_pending(struct vb_state *s, const char *name, struct vb_error *err);
/* Removes checkpoint NAME from the chain, merging its bitmaps into its
 * child's so later differentials stay right. The latest cannot be removed. */
int vb_state_remove(struct vb_state *s, const char *name, struct vb_error *err);

/* ============================================================== chains
 * A full archive and the incremental/differential archives after it,
 * checked to be one chain before anything is written, read as one merged
 * stream in which each cluster comes once, from the newest archive. */

struct vb_chain;

/* Opens and checks: the first is full, every later one is incremental or
 * differential of the same set and drives, its parent is an earlier archive
 * of the list, the archives are in time order, none is repeated. A chain of
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

/* Writes the synthetic full archive of a chain into sink (consumed), which
 * Proxmox's `vma extract` reads like any full backup. */
int vb_merge(const char *const *paths, size_t n, struct vb_writer *sink, bool compress,
	     int zstd_level, int zstd_threads, struct vb_error *err);

struct vb_deep_opts {
	struct vb_state *state;
	const char *checkpoint;          /* NULL: the latest */
	const char *const *archives;     /* NULL/0: the archives the state records */
	size_t narchives;
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
 * checkpoint) or the map's root hash (older ones). */
int vb_verify_deep(const struct vb_deep_opts *o, struct vb_deep_result *res,
		   struct vb_error *err);

/* ============================================================== clock */

/* Now, in seconds and nanoseconds since the epoch: the time backups
 * record. For tests only, VMABACK_TEST_NOW=SECONDS sets it. */
int64_t vb_clock_now(void);
int64_t vb_clock_now_ns(void);

/* ============================================================== many backups
 * Dump directories (vzdump's names and sibling files), listing the backups
 * of a directory or a set, and pruning them by Proxmox's rules. */

/* A checkpoint that a prune removed from the state; its archive is deleted
 * after the state change is durable, then the record is dropped. */
struct vb_pruned {
	char *checkpoint;
	char *uuid;
	char *archive;          /* NULL: not written to a file by vmaback */
};

/* Removes the checkpoints names (never the latest) in one atomic state
 * change, each as vb_state_remove does, and records them as pruned. */
int vb_state_prune(struct vb_state *s, const char *const *names, size_t n,
		   struct vb_error *err);
size_t vb_state_pruned_count(const struct vb_state *s);
const struct vb_pruned *vb_state_pruned_get(const struct vb_state *s, size_t i);
/* Drops the pruned records (their archives are gone). */
int vb_state_forget_pruned(struct vb_state *s, struct vb_error *err);

/* The name of an archive in a dump directory: template with {vmid}, {set}
 * and {date} (YYYY_MM_DD-HH_MM_SS, local time, as vzdump) replaced, then
 * ".vma" or ".vma.zst". NULL template: vzdump-qemu-{vmid}-{date}. The
 * result must be a plain file name. malloc'd, or NULL with err set. */
char *vb_dumpdir_name(const char *tmpl, const char *vmid, const char *set, int64_t time,
		      bool zstd, struct vb_error *err);
/* Sibling files: ARCHIVE.notes, ARCHIVE.protected (Proxmox), and the log,
 * the archive's name without .vma[.zst|.gz|.lzo] plus .log (vzdump).
 * malloc'd. */
char *vb_dumpdir_sibling(const char *archive, const char *what);
/* The archive looks like one by name (.vma, .vma.zst, .vma.gz, .vma.lzo). */
bool vb_dumpdir_is_archive_name(const char *name);

/* One backup: an archive file, a checkpoint of a set, or both. */
struct vb_backup_info {
	char *path;             /* the archive file, or NULL */
	char *checkpoint;       /* NULL for archives of no set */
	char *set;
	char *kind;             /* full, incremental, differential, proxmox, "?" */
	char *uuid;
	char *base_uuid;        /* the archive it builds on, or NULL */
	char *error;            /* why the archive could not be read, or NULL */
	int64_t time;           /* seconds */
	int64_t time_ns;        /* for ordering; time * 1e9 if unknown */
	uint64_t size;          /* bytes of the file */
	bool present;           /* the file exists */
	bool protected;         /* ARCHIVE.protected exists */
	bool notes;             /* ARCHIVE.notes exists */
	bool in_state;          /* a committed checkpoint of the set */
	bool latest, pending;
	bool pruned;            /* its checkpoint was pruned; the file is to go */
	bool complete;          /* every archive of its chain is present */
	/* prune */
	int keep;               /* enum vb_keep_why; 0: remove */
	size_t needed_by;       /* keep == VB_KEEP_NEEDED: the kept backup */
};

struct vb_backup_list {
	struct vb_backup_info *v;   /* oldest first */
	size_t n;
};

/* The set's checkpoints (state, may be NULL) and the archives of dir (may
 * be NULL; with a state, only the set's archives). Unreadable archives are
 * listed with their error. */
int vb_backups_collect(struct vb_state *s, const char *dir, struct vb_backup_list *out,
		       struct vb_error *err);
void vb_backups_free(struct vb_backup_list *l);

enum vb_keep_why {
	VB_KEEP_NO = 0,
	VB_KEEP_LAST, VB_KEEP_HOURLY, VB_KEEP_DAILY, VB_KEEP_WEEKLY, VB_KEEP_MONTHLY,
	VB_KEEP_YEARLY,
	VB_KEEP_ALL,            /* no rule given: everything stays */
	VB_KEEP_PROTECTED,
	VB_KEEP_LATEST,         /* the next incremental builds on it */
	VB_KEEP_PENDING,        /* a pending checkpoint (and what it builds on) */
	VB_KEEP_NEEDED,         /* a kept backup's restore needs it */
	VB_KEEP_OTHER,          /* not the set's (not in its state): left alone */
};
const char *vb_keep_why_name(int why);

struct vb_keep {
	unsigned last, hourly, daily, weekly, monthly, yearly;
};

/* Proxmox's (and borg's) selection: times[] of n backups in any order,
 * protected[] may be NULL; why[i] receives the rule keeping backup i or
 * VB_KEEP_NO. Periods are local time; weeks are ISO weeks. Protected
 * backups are kept and take no rule's slot. */
void vb_prune_select(const int64_t *times, const bool *protected, size_t n,
		     const struct vb_keep *k, int *why);
/* Marks every backup of a set's list: the rules over its committed
 * checkpoints, then the latest, the pending, and every backup a kept one
 * builds on. */
void vb_prune_plan(struct vb_backup_list *l, const struct vb_keep *k);

/* What a prune did. */
struct vb_prune_result {
	size_t removed;         /* checkpoints removed from the state */
	size_t files;           /* archive files deleted */
};
/* Finishes what an interrupted prune left (vb_prune_finish), then removes
 * the checkpoints marked VB_KEEP_NO in one state change, recording them as
 * pruned: vb_prune_finish then deletes their files. */
int vb_prune_apply(struct vb_state *s, const struct vb_backup_list *l,
		   struct vb_prune_result *res, struct vb_error *err);
/* Deletes the archives of the state's pruned records, then drops them. */
int vb_prune_finish(struct vb_state *s, struct vb_prune_result *res, struct vb_error *err);

#endif
