/* store.h: a backup set's state directory: checkpoints, bitmaps, digest maps,
 * manifests, archive digests, the lock, the atomic commit. Uses io, bitmap. */
#ifndef VMABACK_STORE_H
#define VMABACK_STORE_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/base/base.h"
#include "core/io/io.h"

/* ============================================================== state
 * A backup set's state directory: the checkpoint chain (state.json), per
 * checkpoint and drive the dirty bitmap since its parent, per drive the
 * digest map of the latest checkpoint, a manifest per backup, a lock. Every
 * change is published by one rename of state.json; vmaback's files it does
 * not name are leftovers of an interrupted run and are removed by the next
 * writer. */

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
	enum vb_kind kind;      /* full, incremental or differential */
	char *parent;           /* previous checkpoint in the chain, or NULL */
	char *uuid;             /* archive uuid */
	char *base_uuid;        /* archive the new archive's content builds on, or NULL */
	char *archive;          /* where it was written, or NULL (stdout, command) */
	char *archive_sha256;   /* of the bytes as written */
	char *key_id;           /* the key it is encrypted to (hex), or NULL */
	uint64_t archive_size;  /* bytes as written; 0: not recorded (older states) */
	size_t ndrives;
	struct vb_ckpt_drive *drives;
};

struct vb_state;

/* For a command that changes the state: creates (0700) and locks DIR/SET;
 * VB_E_LOCKED when another run holds it. Refuses a directory that holds
 * files other than vmaback's and no state.json. Removes vmaback's own
 * leftovers of interrupted runs (by their name patterns, only where a
 * state.json is). */
struct vb_state *vb_state_open(const char *dir, const char *set, struct vb_error *err);
/* For a command that only reads: creates, changes and deletes nothing; a
 * set without a directory is an empty chain. Shares the lock with other
 * readers (VB_E_LOCKED while a writer holds it). */
struct vb_state *vb_state_open_read(const char *dir, const char *set, struct vb_error *err);
void vb_state_close(struct vb_state *s);
/* Refuses (VB_E_USAGE, naming what, e.g. "--log-file") a file path that is
 * inside the state directory dir (or below it): 0 when it is not. */
int vb_state_dir_check_output(const char *dir, const char *what, const char *path,
			      struct vb_error *err);
/* Default state directory: /var/lib/vmaback for root, else
 * $XDG_STATE_HOME/vmaback or ~/.local/state/vmaback. malloc'd. */
char *vb_state_default_dir(void);
/* Where the state's warnings go (leftovers removed at opening, a pending
 * checkpoint discarded): those of the opening at once, then each as it
 * comes. Until it is called they wait. */
void vb_state_on_warning(struct vb_state *s, vb_warn_fn fn, void *opaque);
const char *vb_state_path(const struct vb_state *s);
const char *vb_state_set(const struct vb_state *s);

/* The committed chain, oldest first, and the checkpoint awaiting commit. */
size_t vb_state_count(const struct vb_state *s);
const struct vb_ckpt *vb_state_get(const struct vb_state *s, size_t i);
const struct vb_ckpt *vb_state_latest(const struct vb_state *s);
const struct vb_ckpt *vb_state_find(const struct vb_state *s, const char *name);
/* The record of archive uuid: a committed checkpoint, a retired record or
 * the pending one. */
const struct vb_ckpt *vb_state_by_uuid(const struct vb_state *s, const char *uuid);
const struct vb_ckpt *vb_state_pending(const struct vb_state *s);

/* bitmap/'s error CODE (< 0, from a bitmap or a digest map) as the
 * vb_error "WHAT: TEXT" (WHAT from fmt); -1. A damaged encoding (MAGIC,
 * VERSION, CHECKSUM, TRUNCATED, CORRUPT) is VB_E_INVALID; NOMEM is
 * VB_E_FAIL with ENOMEM; IO is VB_E_FAIL with io_errno (EIO when 0) and
 * its text; RANGE and SIZE (a caller's mistake) are VB_E_FAIL. The one
 * conversion: no caller maps codes by hand. */
int vb_error_from_bitmap(struct vb_error *err, int code, int io_errno, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

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

/* Every change of the chain below (commit, commit_pending, remove, prune,
 * forget_pruned) is published by one rename of state.json and returns 0
 * when it is durable; 1 when state.json was replaced but the fsync of the
 * directory failed: the change happened (the state in memory and on disk
 * is the new one, and owns every file it names: nothing of it may be
 * removed), err says that it may not survive a crash; -1 when nothing
 * changed. */

/* Publishes c as the new latest checkpoint (or as the pending one): writes
 * its manifest, state.json through a temporary, fsync, rename, fsync of the
 * directory. The state object takes a copy. */
int vb_state_commit(struct vb_state *s, const struct vb_ckpt *c, bool pending,
		    struct vb_error *err);
/* Commits the pending checkpoint NAME, once its archive file (when it was
 * written to one) still holds what was written: its size and SHA-256 as
 * recorded (VB_E_INVALID, naming the file, expected and found, and nothing
 * changes otherwise). */
int vb_state_commit_pending(struct vb_state *s, const char *name, struct vb_error *err);
/* Checks the archive file of checkpoint c against its record (size, then
 * SHA-256): 0 when it matches or nothing was recorded to compare with. A
 * missing file or one that is not a regular file is VB_E_INVALID too. */
int vb_ckpt_check_archive(const struct vb_ckpt *c, struct vb_error *err);
/* The same for the file at path (a copy of c's archive, say): 0 when it
 * matches or c recorded no SHA-256 (an archive not written to a file can
 * still be checked when its manifest has one). */
int vb_ckpt_check_file(const struct vb_ckpt *c, const char *path, struct vb_error *err);
/* Removes checkpoint NAME from the chain, merging its bitmaps into its
 * child's so later differentials stay right. The latest cannot be removed,
 * nor a full that the next checkpoint builds on. When a later record builds
 * on its archive, its record is kept as a retired one: no checkpoint any
 * more (vb_state_find does not see it, nothing new builds on it), but its
 * archive stays known, so the restore chain of every later checkpoint stays
 * walkable by base uuid and prune keeps what a kept checkpoint needs. */
int vb_state_remove(struct vb_state *s, const char *name, struct vb_error *err);
size_t vb_state_retired_count(const struct vb_state *s);
const struct vb_ckpt *vb_state_retired_get(const struct vb_state *s, size_t i);

/* A checkpoint that a prune removed from the state; its archive is deleted
 * after the state change is durable, then the record is dropped. */
struct vb_pruned {
	char *checkpoint;
	char *uuid;
	char *archive;          /* NULL: not written to a file by vmaback */
};

/* Removes the checkpoints names (never the latest) in one atomic state
 * change, each as vb_state_remove does but with nothing retired, and
 * records them as pruned. An entry that names no checkpoint but is the
 * uuid of a retired record drops that record (recorded as pruned too). */
int vb_state_prune(struct vb_state *s, const char *const *names, size_t n,
		   struct vb_error *err);
size_t vb_state_pruned_count(const struct vb_state *s);
const struct vb_pruned *vb_state_pruned_get(const struct vb_state *s, size_t i);
/* fsync of the state directory: before deleting what an earlier change
 * (perhaps not durable, see above) dropped from the state. */
int vb_state_sync(struct vb_state *s, struct vb_error *err);
/* Drops the pruned records (their archives are gone). */
int vb_state_forget_pruned(struct vb_state *s, struct vb_error *err);


/* ============================================================== archive digests
 * The digests of the clusters one archive holds, per drive (written at
 * commit from the digest map and the bitmaps; read by verify --deep). */
struct vb_adigests {
	uint64_t size;          /* the drive's size */
	uint64_t n;
	uint8_t *entries;       /* n x (u64 cluster, digest), by cluster */
};
int vb_adigests_load(struct vb_state *s, const char *file, struct vb_adigests *out,
		     struct vb_error *err);
const uint8_t *vb_adigests_find(const struct vb_adigests *a, uint64_t i);

#endif
