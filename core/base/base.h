/* base.h: what every module of vmaback needs: errors, the clock, names and
 * their checks, the kinds and modes, hex and uuid formatting. Uses libc only. */
#ifndef VMABACK_BASE_H
#define VMABACK_BASE_H

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

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

/* ============================================================== clock */

/* Now, in seconds and nanoseconds since the epoch: the time backups
 * record. For tests only, VMABACK_TEST_NOW=SECONDS sets it. */
int64_t vb_clock_now(void);
int64_t vb_clock_now_ns(void);
/* Seconds on the monotonic clock, for durations and deadlines (never set
 * by VMABACK_TEST_NOW: a wait must end whatever the wall clock says). */
double vb_clock_monotonic(void);
/* For tests only: with VMABACK_TEST_CRASH=POINT in the environment, the
 * process SIGKILLs itself when it reaches POINT (a crash there). The
 * variable is read once, at the first call (a later setenv is not seen). */
void vb_crash_point(const char *point);

/* ============================================================== cancel */

/* The process's cancel flag (set by a signal handler): a write blocked on a
 * pipe whose reader stalls returns at the signal instead of resuming, when
 * the handler is installed without SA_RESTART. */
void vb_set_cancel(const volatile sig_atomic_t *flag);
bool vb_canceled(void);

/* ============================================================== names */

/* A drive is extracted as disk-NAME.raw, and Proxmox's vma extract first
 * writes tmp-disk-NAME.raw: both must fit a 255-byte file name (NAME_MAX). */
#define VB_DRIVE_NAME_MAX 242u
/* The longest file name in a directory (NAME_MAX of Linux file systems). */
#define VB_FILE_NAME_MAX 255u
/* Drive names become archive device names and file names on extraction:
 * 1..VB_DRIVE_NAME_MAX bytes, no '/', no control characters, not "." or
 * "..", and not "vmstate" (Proxmox's RAM state). Returns 0 or -1 with a
 * VB_E_USAGE error. */
int vb_drive_name_check(const char *name, struct vb_error *err);
/* NAME with control characters, '\\', bytes that are not UTF-8 and C1
 * controls (U+0080..U+009F) shown as \\xNN (each byte), cut to fit SIZE
 * (never inside a character): for output, messages and logs. A name in
 * that form cannot add a line or reach the terminal as an escape sequence.
 * 4 * strlen(name) + 1 bytes always suffice. */
void vb_name_printable(const char *name, char *out, size_t size);
/* The same, '\\' kept when !backslash (whole messages, whose names are
 * already escaped). */
void vb_printable(const char *s, bool backslash, char *out, size_t size);
/* The length (1..4) of the valid UTF-8 character at p, 0 when the bytes at
 * p are not one (overlong, surrogate, cut off, beyond U+10FFFF). */
size_t vb_utf8_len(const unsigned char *p, size_t left);
/* A name that is safe as one file name inside a directory. */
bool vb_safe_file_name(const char *name);
/* Backup set and checkpoint names: 1..128 letters, digits and - _ . : +,
 * not starting with '.' or '-'. 0 or -1 with a VB_E_USAGE error. */
int vb_set_name_check(const char *set, struct vb_error *err);
int vb_ckpt_name_check(const char *name, struct vb_error *err);

/* ============================================================== modes */

enum vb_mode {
	VB_MODE_AUTO = 0,    /* full when there is no usable checkpoint, else incremental */
	VB_MODE_FULL,
	VB_MODE_INCREMENTAL, /* changes since the latest checkpoint */
	VB_MODE_DIFFERENTIAL /* changes since an older checkpoint (since) */
};
/* "auto", "full", ...: the CLI's words (cli_parse_mode reads them). */
const char *vb_mode_name(enum vb_mode m);

/* What an archive or a checkpoint is; a string only in vmaback.json,
 * state.json and what the CLI prints (vb_kind_name, vb_kind_parse). A
 * resolved mode is a kind (vb_kind_of_mode). */
enum vb_kind {
	VB_KIND_UNKNOWN = 0,                         /* "?": an archive that did not open */
	VB_KIND_FULL = VB_MODE_FULL,                 /* "full" */
	VB_KIND_INCREMENTAL = VB_MODE_INCREMENTAL,   /* "incremental" */
	VB_KIND_DIFFERENTIAL = VB_MODE_DIFFERENTIAL, /* "differential" */
	VB_KIND_PROXMOX,     /* "proxmox": no vmaback.json, a full backup of Proxmox's */
};
const char *vb_kind_name(enum vb_kind k);
/* "full", "incremental" or "differential" (what vmaback writes): 0, else -1. */
int vb_kind_parse(const char *s, enum vb_kind *k);
/* VB_MODE_FULL, _INCREMENTAL or _DIFFERENTIAL (never AUTO) as a kind. */
static inline enum vb_kind vb_kind_of_mode(enum vb_mode m)
{
	return (enum vb_kind)m;
}
/* Holds every cluster of its drives: a full backup (vmaback's or Proxmox's). */
static inline bool vb_kind_whole(enum vb_kind k)
{
	return k == VB_KIND_FULL || k == VB_KIND_PROXMOX;
}

/* ============================================================== formatting */

/* n bytes as 2n lowercase hex digits and a NUL. */
void vb_hex(const uint8_t *d, size_t n, char *out);
/* Formats a 16-byte uuid as 8-4-4-4-12 lowercase hex into out[37]. */
void vb_uuid_format(const uint8_t uuid[16], char out[37]);

/* ============================================================== warnings */

/* What a run noted that a person should know; it went on (never an error).
 * The kinds, as JSON names them (vb_warn_kind_name). */
enum vb_warn_kind {
	VB_WARN_NOTE = 0,     /* "note": anything else */
	VB_WARN_LEFTOVER,     /* "leftover": a file of an interrupted run removed */
	VB_WARN_DISCARDED,    /* "discarded": a pending checkpoint replaced */
	VB_WARN_FULL,         /* "full-backup": a drive read whole, or a full backup */
	VB_WARN_BITMAP,       /* "bitmap": a dirty bitmap left as it was */
	VB_WARN_GUEST,        /* "guest": frozen, thawed or resumed as it should not be */
	VB_WARN_CLEANUP,      /* "cleanup": left for the next run (or recover) to remove */
	VB_WARN_CHECKPOINT,   /* "checkpoint": libvirt's record of a checkpoint redefined */
	VB_WARN_DEFINE,       /* "define": a disk left out of a defined domain */
};
const char *vb_warn_kind_name(enum vb_warn_kind k);

struct vb_warning {
	enum vb_warn_kind kind;
	const char *drive;    /* the drive it concerns, or NULL */
	const char *msg;      /* one line for a person */
};
typedef void (*vb_warn_fn)(void *opaque, const struct vb_warning *w);

/* Where an object's warnings go: to fn, or, until there is one, a queue
 * of them (an object that warns while it opens: the state's leftovers). */
struct vb_warnings {
	vb_warn_fn fn;
	void *opaque;
	struct vb_warning *q;
	size_t n;
};
void vb_warn(struct vb_warnings *w, enum vb_warn_kind kind, const char *drive,
	     const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Sends the queued warnings to fn, then every later one. */
void vb_warnings_to(struct vb_warnings *w, vb_warn_fn fn, void *opaque);
void vb_warnings_free(struct vb_warnings *w);

/* Starts a helper thread (pthread_create's result) with every signal
 * blocked in it: signals go to the calling thread, whose blocked I/O they
 * interrupt and whose handler sees the command's state. */
int vb_thread_start(pthread_t *t, void *(*fn)(void *), void *arg);

/* Rounds a drive size up to a whole 512-byte sector, as Proxmox declares it. */
static inline uint64_t vb_round_sector(uint64_t size)
{
	return (size + 511) & ~(uint64_t)511;
}

#endif
