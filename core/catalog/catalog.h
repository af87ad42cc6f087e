/* catalog.h: many backups: dump directories (vzdump's names and sibling files),
 * listing the backups of a directory or a set, pruning them by Proxmox's
 * rules. Uses archive, store. */
#ifndef VMABACK_CATALOG_H
#define VMABACK_CATALOG_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/base/base.h"
#include "core/store/store.h"

/* The name of an archive in a dump directory: template with {vmid}, {set}
 * and {date} (YYYY_MM_DD-HH_MM_SS, local time, as vzdump) replaced, then
 * ".vma" or ".vma.zst", and ".enc" after it when encrypted. NULL
 * template: vzdump-qemu-{vmid}-{date}. The result must be a plain file
 * name. malloc'd, or NULL with err set. */
char *vb_dumpdir_name(const char *tmpl, const char *vmid, const char *set, int64_t time,
		      bool zstd, bool encrypted, struct vb_error *err);
/* The name an archive of kind (full, incremental, differential)
 * takes instead of the full's name path (from vb_dumpdir_name): a full
 * keeps it, an incremental ends in .vmainc[.zst], a differential in
 * .vmadiff[.zst], names Proxmox does not list as backups; a trailing .enc
 * stays. malloc'd; NULL when path does not end in .vma or .vma.zst
 * (either followed by .enc), or out of memory. */
char *vb_dumpdir_kind_name(const char *path, enum vb_kind kind);
/* Sibling files: ARCHIVE.notes, ARCHIVE.protected (Proxmox), and the log,
 * the archive's name without .vma[.zst|.gz|.lzo][.enc] plus .log (vzdump).
 * malloc'd. */
char *vb_dumpdir_sibling(const char *archive, const char *what);
/* The archive looks like one by name (.vma, .vma.zst, .vma.gz, .vma.lzo,
 * and vmaback's .vmainc[.zst], .vmadiff[.zst]; each also with .enc). */
bool vb_dumpdir_is_archive_name(const char *name);

/* One backup: an archive file, a checkpoint of a set, or both. */
struct vb_backup_info {
	char *path;             /* the archive file, or NULL */
	char *checkpoint;       /* NULL for archives of no set */
	char *set;
	enum vb_kind kind;      /* VB_KIND_UNKNOWN: the archive did not open */
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
	bool retired;           /* in_state too: a removed checkpoint whose archive
				 * a later one builds on (checkpoints --remove) */
	bool pruned;            /* its checkpoint was pruned; the file is to go */
	bool complete;          /* every archive of its chain is present */
	/* prune */
	int keep;               /* enum vb_keep_why; 0: remove */
	size_t needed_by;       /* keep == VB_KEEP_NEEDED: the kept backup */
};

struct vb_backup_list {
	struct vb_backup_info *v;   /* oldest first */
	size_t n;
	/* Files with an archive's name that are no regular file (a FIFO, a
	 * device, a symbolic link), left alone: one message each, to warn. */
	char **skipped;
	size_t nskipped;
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
 * pruned: vb_prune_finish then deletes their files. Both return 1 when the
 * state changed but could not be made durable (vb_state_prune): then no
 * archive may be deleted yet, and err says why. */
int vb_prune_apply(struct vb_state *s, const struct vb_backup_list *l,
		   struct vb_prune_result *res, struct vb_error *err);
/* Deletes the archives of the state's pruned records, then drops them. */
int vb_prune_finish(struct vb_state *s, struct vb_prune_result *res, struct vb_error *err);

#endif
