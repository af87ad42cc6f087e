/* live_int.h: the parts of a running-VM session shared by live.c (lock,
 * connection, recovery, drives) and live_run.c (the point in time, the
 * exports, teardown); private to core/source. */
#ifndef VMABACK_LIVE_INT_H
#define VMABACK_LIVE_INT_H

#ifndef VB_MODULE_source
#error "core/source/live_int.h is private to core/source: include core/source/source.h"
#endif

#include <errno.h>

#include "core/source/qmp_int.h"
#include "core/source/source.h"

/* Object names: at most 31 bytes for a node name, so by drive index. */
#define LIVE_PREFIX "vmaback-"
#define LIVE_SCRATCH "vmaback-scr-"  /* the scratch file's qcow2 node */
#define LIVE_CBW "vmaback-cbw-"      /* the copy-before-write filter */
#define LIVE_ACCESS "vmaback-acc-"   /* snapshot-access: what is exported */
#define LIVE_EXPORT "vmaback-"       /* export ids and NBD export names */
/* How long the guest agent may take to answer (a freeze of many file
 * systems takes a while; an agent that does not answer costs this). */
#define LIVE_AGENT_MS 5000

/* What a run has done that a crash would leave behind, kept in the VM's
 * lock file so that the next run (or `vmaback recover`) undoes it. */
enum live_mark {
	MARK_NBD = 1,     /* vmaback's NBD server runs on nbd_path */
	MARK_PAUSED = 2,  /* vmaback paused the guest */
	MARK_FROZEN = 4,  /* vmaback froze the guest's file systems */
};

/* What a kind of hypervisor does for vb_live_recover, _start, _finish and
 * _close (QMP here; libvirt's API beside it). */
struct live_ops {
	int (*recover)(struct vb_live *l, const char *keep, struct vb_error *err);
	int (*start)(struct vb_live *l, const char *since, const char *ckpt,
		     struct vb_error *err);
	int (*finish)(struct vb_live *l, enum vb_live_end how, struct vb_error *err);
	void (*close)(struct vb_live *l); /* its own part; the rest is common */
};
extern const struct live_ops live_qmp_ops;
extern const struct live_ops live_libvirt_ops;

/* A session: the drives, layout and notes are common to every kind; the
 * rest is QMP's (impl: another kind's own state). */
struct vb_live {
	const struct live_ops *ops;
	void *impl;
	const char *kind;         /* "qmp", "libvirt" */
	const char *layout_name;  /* the layout's config blob */
	char *what;               /* "QMP socket PATH", "domain NAME" */
	struct vb_live_opts o;
	char *own[5];             /* o's strings, copied */
	struct vb_qmp *q;
	int lock_fd;
	char *lock_path;          /* run_dir/qmp-TAG.lock, held by lock_fd */
	unsigned marks;
	char *frozen_qga;         /* the agent that froze (MARK_FROZEN) */
	char tag[17];             /* the VM's name in run_dir and scratch names */
	char *nbd_path;
	struct vb_live_drive *d;
	size_t n;
	char *layout;
	struct vb_warnings warn;
	char *set_prefix;         /* "vmaback/SET/" */
	char *tmp;                /* "vmaback-tmp/SET" */
	char *since, *ckpt;       /* this run's bitmap names, or NULL */
	bool started;             /* vb_live_start was called */
};

/* Bitmap transactions (live_recover.c): node's bitmaps in a listing of
 * live_nodes (NULL: none); an action built from a printf-formatted JSON
 * object added to acts; a removal; the transaction of acts (none when
 * empty: never an empty transaction). */
json_object *live_node_bitmaps(json_object *nodes, const char *node);
int live_action(json_object *acts, struct vb_error *err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int live_bitmap_remove(json_object *acts, const char *node, const char *name,
		       struct vb_error *err);
int live_transaction(struct vb_live *l, json_object *acts, struct vb_error *err);

/* QMP's recovery (live_recover.c), start and finish (live_run.c). */
int qmp_recover(struct vb_live *l, const char *keep, struct vb_error *err);
int qmp_start(struct vb_live *l, const char *since, const char *ckpt, struct vb_error *err);
int qmp_finish(struct vb_live *l, enum vb_live_end how, struct vb_error *err);

/* The lock file's marks, written at once (a crash leaves the last). */
int live_mark(struct vb_live *l, unsigned set, unsigned clear, struct vb_error *err);
/* Removes every vmaback-* object of the VM and its scratch files; resumes,
 * thaws and stops what the marks say a crashed run left. */
int live_cleanup(struct vb_live *l, struct vb_error *err);
/* The node names QEMU has (query-named-block-nodes, flat); json array. */
int live_nodes(struct vb_live *l, json_object **out, struct vb_error *err);
/* scratch file i of the VM: malloc'd. */
char *live_scratch_path(const struct vb_live *l, size_t i);
/* Thaws the guest's file systems through agent path (MARK_FROZEN). */
void live_thaw(struct vb_live *l, const char *path);
bool live_has_prefix(const char *s, const char *prefix);
/* l->tag: the first 64 bits of key's SHA-256 in hex (the VM's name in the
 * run and scratch directories). */
int live_set_tag(struct vb_live *l, const char *key, struct vb_error *err);
/* A device's QOM path from query-block's qdev (an id or a path). */
char *live_qom_path(const char *qdev);
static inline int live_oom(struct vb_error *err)
{
	return vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
}
/* The length of array a; 0 when a is not an array (absent, or QEMU
 * answered something else). */
static inline size_t live_len(json_object *a)
{
	return json_object_is_type(a, json_type_array) ? json_object_array_length(a) : 0;
}

#endif
