/* live_run.c: one backup of a running VM inside QEMU: scratch files, the
 * point in time (copy-before-write filters and one bitmap transaction for
 * every drive, the guest paused for the switch and frozen when asked), the
 * NBD exports the jobs read, then teardown and the final bitmap
 * transaction. The order and why: live-vm.md. */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/source/live_int.h"

/* ============================================================== scratch */

/* A qcow2 file of the disk's size, made by vmaback (0600, never an
 * existing file), opened by QEMU as node vmaback-scr-I. */
static int add_scratch(struct vb_live *l, size_t i, struct vb_error *err)
{
	char *path = live_scratch_path(l, i), what[600];
	int fd, rc = -1;

	if (!path)
		return live_oom(err);
	snprintf(what, sizeof(what), "drive %s: scratch file %s", l->d[i].name, path);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		vb_error_set(err, VB_E_FAIL, errno, "%s: %s", what, strerror(errno));
		goto out;
	}
	close(fd);
	if (vb_qemu_img_create(what, "qcow2", path, l->d[i].size, err) < 0 ||
	    vb_qmp_execf(l->q, NULL, err, "blockdev-add",
			 "{\"driver\": \"qcow2\", \"node-name\": \"" LIVE_SCRATCH "%zu\", "
			 "\"discard\": \"unmap\", \"file\": {\"driver\": \"file\", "
			 "\"filename\": %s}}", i, vb_qmp_str(path)) < 0)
		goto out;
	rc = 0;
out:
	free(path);
	return rc;
}

/* ============================================================== the point in time */

static int switch_devices(struct vb_live *l, struct vb_error *err)
{
	for (size_t i = 0; i < l->n; i++) {
		if (vb_qmp_execf(l->q, NULL, err, "blockdev-add",
				 "{\"driver\": \"copy-before-write\", \"node-name\": \"" LIVE_CBW
				 "%zu\", \"file\": %s, \"target\": \"" LIVE_SCRATCH "%zu\", "
				 "\"on-cbw-error\": \"break-snapshot\", \"cbw-timeout\": 30}", i,
				 vb_qmp_str(l->d[i].node), i) < 0 ||
		    vb_qmp_execf(l->q, NULL, err, "qom-set",
				 "{\"path\": %s, \"property\": \"drive\", \"value\": \"" LIVE_CBW
				 "%zu\"}", vb_qmp_str(l->d[i].qdev), i) < 0)
			return -1;
	}
	return 0;
}

/* The bitmaps of the point in time, for every drive at once. */
static int bitmap_transaction(struct vb_live *l, struct vb_error *err)
{
	json_object *acts = json_object_new_array();
	int rc = -1;

	if (!acts)
		return live_oom(err);
	for (size_t i = 0; i < l->n; i++) {
		const char *node = vb_qmp_str(l->d[i].node);

		if (live_action(acts, err, "{\"type\": \"block-dirty-bitmap-add\", \"data\": {\"node\": "
			   "%s, \"name\": %s, \"persistent\": true, \"granularity\": 65536}}",
			   node, vb_qmp_str(l->ckpt)) < 0)
			goto out;
		if (!l->since || !l->d[i].has_bitmap)
			continue;
		/* Never a merge of an empty list: it crashes QEMU 7.2. */
		node = vb_qmp_str(l->d[i].node);
		if (live_action(acts, err, "{\"type\": \"block-dirty-bitmap-add\", \"data\": {\"node\": "
			   "%s, \"name\": %s, \"persistent\": false, \"disabled\": true, "
			   "\"granularity\": 65536}}", node, vb_qmp_str(l->tmp)) < 0)
			goto out;
		node = vb_qmp_str(l->d[i].node);
		if (live_action(acts, err, "{\"type\": \"block-dirty-bitmap-merge\", \"data\": {\"node\": "
			   "%s, \"target\": %s, \"bitmaps\": [%s]}}", node, vb_qmp_str(l->tmp),
			   vb_qmp_str(l->since)) < 0)
			goto out;
	}
	rc = live_transaction(l, acts, err);
out:
	json_object_put(acts);
	return rc;
}

static void freeze(struct vb_live *l, struct vb_qmp **agent)
{
	struct vb_error e = { 0 };

	free(l->frozen_qga);
	l->frozen_qga = strdup(l->o.qga);
	*agent = vb_qmp_connect(VB_QMP_AGENT, l->o.qga, "guest agent", LIVE_AGENT_MS, &e);
	if (*agent && live_mark(l, MARK_FROZEN, 0, &e) == 0 &&
	    vb_qmp_exec(*agent, "guest-fsfreeze-freeze", NULL, NULL, &e) == 0)
		return;
	vb_warn(&l->warn, VB_WARN_GUEST, NULL, "--fsfreeze: %s; the backup is crash-consistent (as after a "
		     "power cut), not file-system consistent", e.msg);
}

static void thaw(struct vb_live *l, struct vb_qmp *agent)
{
	struct vb_error e = { 0 };

	if (!(l->marks & MARK_FROZEN))
		return;
	if (agent && vb_qmp_exec(agent, "guest-fsfreeze-thaw", NULL, NULL, &e) == 0) {
		live_mark(l, 0, MARK_FROZEN, &e);
		return;
	}
	live_thaw(l, l->o.qga); /* a new connection; notes when that fails too */
}

/* The guest paused (if it ran) and frozen (if asked) only for the switch
 * to the filters and the bitmap transaction: a few milliseconds. */
static int point_in_time(struct vb_live *l, struct vb_error *err)
{
	struct vb_qmp *agent = NULL;
	json_object *st = NULL;
	bool running;
	int rc = -1;

	if (vb_qmp_exec(l->q, "query-status", NULL, &st, err) < 0)
		return -1;
	running = vb_json_bool(st, "running", false);
	json_object_put(st);
	if (l->o.qga && running)
		freeze(l, &agent);
	if (running && (live_mark(l, MARK_PAUSED, 0, err) < 0 ||
			vb_qmp_exec(l->q, "stop", NULL, NULL, err) < 0))
		goto resume;
	vb_crash_point("while-paused");
	if (switch_devices(l, err) < 0 || bitmap_transaction(l, err) < 0)
		goto resume;
	rc = 0;
resume:
	if (running) {
		struct vb_error e = { 0 };

		if (vb_qmp_exec(l->q, "cont", NULL, NULL, &e) < 0 ||
		    live_mark(l, 0, MARK_PAUSED, &e) < 0) {
			if (rc == 0)
				vb_error_set(err, e.cls, e.sys_errno, "%s", e.msg);
			rc = -1;
		}
	}
	thaw(l, agent);
	vb_qmp_close(agent);
	return rc;
}

/* ============================================================== exports */

static int add_exports(struct vb_live *l, struct vb_error *err)
{
	/* Marked first: a crash right after the start must stop it. */
	if (live_mark(l, MARK_NBD, 0, err) < 0)
		return -1;
	unlink(l->nbd_path); /* a crashed run's socket: the path is the VM's */
	if (vb_qmp_execf(l->q, NULL, err, "nbd-server-start",
			 "{\"addr\": {\"type\": \"unix\", \"data\": {\"path\": %s}}}",
			 vb_qmp_str(l->nbd_path)) < 0) {
		struct vb_error e = { 0 };

		/* Not started: whatever server runs is not vmaback's to stop. */
		live_mark(l, 0, MARK_NBD, &e);
		if (strstr(err->msg, "already running")) {
			char why[sizeof(err->msg)];

			snprintf(why, sizeof(why), "%s", err->msg);
			vb_error_clear(err);
			/* Recovery stopped vmaback's own: this one is not ours. */
			vb_error_set(err, VB_E_LOCKED, 0, "%s: QEMU has one NBD server, and another "
				     "program started it; vmaback needs it for the backup (stop it "
				     "with nbd-server-stop, or back up through that program)", why);
		}
		return -1;
	}
	for (size_t i = 0; i < l->n; i++) {
		struct vb_live_drive *d = &l->d[i];
		char bitmaps[1200] = "";

		if (vb_qmp_execf(l->q, NULL, err, "blockdev-add",
				 "{\"driver\": \"snapshot-access\", \"node-name\": \"" LIVE_ACCESS
				 "%zu\", \"file\": \"" LIVE_CBW "%zu\"}", i, i) < 0)
			return -1;
		d->bitmap = l->since && d->has_bitmap ? l->tmp : NULL;
		if (d->bitmap)
			snprintf(bitmaps, sizeof(bitmaps), ", \"bitmaps\": [{\"node\": %s, "
				 "\"name\": %s}]", vb_qmp_str(d->node), vb_qmp_str(l->tmp));
		if (vb_qmp_execf(l->q, NULL, err, "block-export-add",
				 "{\"type\": \"nbd\", \"id\": \"" LIVE_EXPORT "%zu\", \"node-name\": \""
				 LIVE_ACCESS "%zu\", \"name\": \"" LIVE_EXPORT "%zu\", "
				 "\"writable\": false%s}", i, i, i, bitmaps) < 0)
			return -1;
		free(d->uri);
		if (asprintf(&d->uri, "nbd+unix:///" LIVE_EXPORT "%zu?socket=%s", i,
			     l->nbd_path) < 0) {
			d->uri = NULL;
			return live_oom(err);
		}
	}
	return 0;
}

int qmp_start(struct vb_live *l, const char *since, const char *ckpt, struct vb_error *err)
{
	free(l->since);
	free(l->ckpt);
	l->since = l->ckpt = NULL;
	if ((since && asprintf(&l->since, "%s%s", l->set_prefix, since) < 0) ||
	    asprintf(&l->ckpt, "%s%s", l->set_prefix, ckpt) < 0) {
		l->since = l->ckpt = NULL;
		return live_oom(err);
	}
	for (size_t i = 0; i < l->n; i++)
		if (add_scratch(l, i, err) < 0)
			return -1;
	vb_crash_point("after-scratch");
	if (point_in_time(l, err) < 0)
		return -1;
	vb_crash_point("after-transaction");
	if (add_exports(l, err) < 0)
		return -1;
	vb_crash_point("after-exports");
	return 0;
}

/* ============================================================== the end */

/* Whether the end removes bitmap name of the set: the run's temporary one
 * always; committed: every checkpoint bitmap of the set but the new one
 * (a full backup has no since, and the state names only the new one);
 * failed: the new one; pending: none else, the next run keeps the one the
 * state then names. */
static bool goes(const struct vb_live *l, enum vb_live_end how, const char *name)
{
	if (strcmp(name, l->tmp) == 0)
		return true;
	if (!l->ckpt || !live_has_prefix(name, l->set_prefix))
		return false;
	if (how == VB_LIVE_COMMITTED)
		return strcmp(name, l->ckpt) != 0;
	return how == VB_LIVE_FAILED && strcmp(name, l->ckpt) == 0;
}

/* The last transaction, for every drive at once. */
static int final_bitmaps(struct vb_live *l, enum vb_live_end how, struct vb_error *err)
{
	json_object *nodes = NULL, *acts = json_object_new_array();
	int rc = -1;

	if (!acts)
		return live_oom(err);
	if (live_nodes(l, &nodes, err) < 0)
		goto out;
	for (size_t i = 0; i < l->n; i++) {
		json_object *bms = live_node_bitmaps(nodes, l->d[i].node);

		for (size_t k = 0; k < live_len(bms); k++) {
			const char *b = vb_json_str(json_object_array_get_idx(bms, k), "name");

			if (!b || !goes(l, how, b))
				continue;
			if (live_bitmap_remove(acts, l->d[i].node, b, err) < 0)
				goto out;
		}
	}
	rc = live_transaction(l, acts, err);
out:
	json_object_put(nodes);
	json_object_put(acts);
	return rc;
}

int qmp_finish(struct vb_live *l, enum vb_live_end how, struct vb_error *err)
{
	struct vb_error e = { 0 };

	if (live_cleanup(l, err) < 0)
		return -1;
	vb_crash_point("after-teardown");
	if (final_bitmaps(l, how, &e) < 0)
		vb_warn(&l->warn, VB_WARN_CLEANUP, NULL, "%s; the next run removes the bitmaps the state does "
			     "not name", e.msg);
	return 0;
}
