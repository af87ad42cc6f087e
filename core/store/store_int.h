/* store_int.h: what the files of core/store share, and its fuzz-only entry
 * points; private to core/store (its unit test and the state loader's fuzz
 * target build as part of it). */
#ifndef VMABACK_STORE_INT_H
#define VMABACK_STORE_INT_H

#ifndef VB_MODULE_store
#error "core/store/store_int.h is private to core/store: include core/store/store.h"
#endif

#include "core/store/store.h"

#define STATE_FILE "state.json"
#define LOCK_FILE "lock"
#define STATE_VERSION 1

struct vb_state {
	char *path;             /* DIR/SET */
	char *set;
	int dirfd;              /* -1: a reader of a set that has no directory */
	int lockfd;
	bool writer;            /* opened to change the state: may clean up */
	bool was_ours;          /* a state.json or lock was there before this run */
	struct vb_ckpt *ck;
	size_t n;
	struct vb_ckpt *retired;   /* removed checkpoints a kept one's restore needs */
	size_t nretired;
	struct vb_ckpt *pending;
	char **manifests;
	size_t nman;
	struct vb_pruned *pruned;  /* removed checkpoints whose archives may remain */
	size_t npruned;
	struct vb_warnings warn;
};

/* state.c: memory */
char *st_strdup(const char *s);          /* NULL stays NULL */
void st_ckpt_clear(struct vb_ckpt *c);
int st_ckpt_copy(struct vb_ckpt *dst, const struct vb_ckpt *src);
void st_pruned_clear(struct vb_state *s);
/* Forgets the chain in memory (before a reload). */
void st_clear_memory(struct vb_state *s);
/* Reads state.json into s (no file: an empty chain). */
int st_load(struct vb_state *s, struct vb_error *err);

/* state_json.c */
/* The checks of a loaded state.json, on its text (len bytes, NUL after). */
int st_parse(struct vb_state *s, const char *text, size_t len, struct vb_error *err);
/* The text of state.json, or of checkpoint c's manifest; malloc'd or NULL. */
char *st_state_text(const struct vb_state *s);
char *st_manifest_text(const struct vb_state *s, const struct vb_ckpt *c);

/* state_files.c */
/* A name state.json may give a file of its directory. */
bool st_file_name_ok(const char *f);
/* A whole regular file (at most ST_MAX_FILE) of dirfd, NUL-terminated; -1
 * with errno (EFBIG when larger: a damaged file never sizes an allocation). */
#define ST_MAX_FILE ((off_t)64 << 20)
int st_read_whole(int dirfd, const char *name, char **out, size_t *len);

/* state_lock.c */
int st_lock_take(struct vb_state *s, struct vb_error *err);
void st_lock_release(struct vb_state *s);

/* state_gc.c: removes vmaback's files state.json does not name (writers
 * only, in a directory with a state.json); report: a note. */
void st_collect_garbage(struct vb_state *s, bool report);
/* A name vmaback's state files (or temporaries of state.json) have. */
bool st_gc_pattern(const char *f);

/* The state of set parsed from the text of a state.json (len bytes and a
 * NUL), with every check vb_state_open makes, but no directory or lock:
 * for the fuzz target. vb_state_text: the state.json text it would write
 * (malloc'd). */
struct vb_state *vb_state_parse(const char *set, const char *text, size_t len,
				struct vb_error *err);
char *vb_state_text(const struct vb_state *s);

/* The checks vb_adigests_load makes, on the bytes of such a file: for the
 * fuzz target. */
int vb_adigests_parse(const uint8_t *buf, size_t len, struct vb_adigests *out,
		      struct vb_error *err);

/* Writes the archive-digest list for drive di of checkpoint c (from its
 * digest map and the state's bitmaps) into a new state file; *name NULL
 * without a digest map. */
int vb_adigests_write(struct vb_state *s, const struct vb_ckpt *c, size_t di, char **name,
		      struct vb_error *err);

#endif
