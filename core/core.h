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

/* zstd compression filter in front of next: one frame, checksum on,
 * level 1..19, threads 0 (single) or more workers. */
struct vb_writer *vb_zstd_writer_new(struct vb_writer *next, int level, int threads,
				     struct vb_error *err);

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
/* A name that is safe as one file name inside a directory. */
bool vb_safe_file_name(const char *name);

/* ============================================================== sources */

struct vb_source;

/* Opens a drive's source read-only: a regular file or a block device. A
 * directory, FIFO, socket or character device, a missing file or a 0-byte
 * source is a VB_E_USAGE error naming the drive. */
struct vb_source *vb_source_open(const char *drive, const char *spec, struct vb_error *err);
uint64_t vb_source_size(const struct vb_source *s);
const char *vb_source_kind(const struct vb_source *s);   /* "file", "block" */
/* Describes the range starting at off: *len bytes (>= 1, up to max) that are
 * all data (*data true) or all known zero (holes). */
int vb_source_extent(struct vb_source *s, uint64_t off, uint64_t max, uint64_t *len,
		     bool *data, struct vb_error *err);
/* Reads exactly len bytes at off; a short read (the source shrank) or an I/O
 * error is a VB_E_FAIL naming the drive and offset. */
int vb_source_pread(struct vb_source *s, void *buf, size_t len, uint64_t off,
		    struct vb_error *err);
void vb_source_close(struct vb_source *s);

/* ============================================================== backup */

struct vb_drive {
	const char *name;
	const char *spec;   /* source path */
};

struct vb_progress {
	unsigned drive_index;       /* 0-based */
	unsigned drive_count;
	const char *drive_name;
	uint64_t drive_done;        /* bytes of this drive processed */
	uint64_t drive_size;
	uint64_t total_done;        /* bytes of all drives processed */
	uint64_t total_size;
	uint64_t bytes_read;        /* read from sources so far */
	uint64_t bytes_zero;        /* holes and zero blocks not stored */
	uint64_t bytes_out;         /* archive bytes produced (before compression) */
};

typedef void (*vb_progress_fn)(void *opaque, const struct vb_progress *p);

struct vb_backup_opts {
	const struct vb_drive *drives;
	size_t ndrives;
	const char *const *configs; /* user config files, stored by basename */
	size_t nconfigs;
	const volatile sig_atomic_t *cancel; /* non-zero: stop at the next cluster */
	vb_progress_fn progress;     /* called about every MiB; may be NULL */
	void *progress_opaque;
};

struct vb_backup_result {
	unsigned drives;
	uint64_t total_size;     /* sum of drive sizes */
	uint64_t bytes_read;     /* read from the sources */
	uint64_t bytes_zero;     /* holes and all-zero blocks, not stored */
	uint64_t clusters;       /* clusters in the archive */
	uint64_t archive_bytes;  /* VMA bytes, before compression */
	uint8_t uuid[VMA_UUID_LEN];
	double seconds;
};

struct vb_backup;

/* Prepares the transaction: checks every drive name, opens and sizes every
 * source, reads every config file. Nothing is written. */
struct vb_backup *vb_backup_prepare(const struct vb_backup_opts *o, struct vb_error *err);
/* Runs one job per drive, in order, into out, which it consumes: closed
 * (published) only when every job succeeded, discarded otherwise. */
int vb_backup_run(struct vb_backup *b, struct vb_writer *out, struct vb_backup_result *res,
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
	char *kind;           /* "full" (or "proxmox" for foreign archives) */
	char *tool_version;
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

#endif
