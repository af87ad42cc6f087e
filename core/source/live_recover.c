/* live_recover.c: undoing what a run left in QEMU: the clean-up every run
 * starts and ends with (exports, vmaback's NBD server, nodes, the devices
 * pointed back at their disks, scratch files, a paused or frozen guest),
 * and the bitmap recovery that keeps only the set's latest checkpoint's. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/source/live_int.h"

/* ============================================================== recovery */

int live_nodes(struct vb_live *l, json_object **out, struct vb_error *err)
{
	return vb_qmp_execf(l->q, out, err, "query-named-block-nodes", "{\"flat\": true}");
}

char *live_scratch_path(const struct vb_live *l, size_t i)
{
	char *p = NULL;

	if (asprintf(&p, "%s/vmaback-scratch.%s.%zu.qcow2", l->o.scratch_dir, l->tag, i) < 0)
		return NULL;
	return p;
}

void live_thaw(struct vb_live *l, const char *path)
{
	struct vb_error e = { 0 };
	struct vb_qmp *g = vb_qmp_connect(VB_QMP_AGENT, path, "guest agent", LIVE_AGENT_MS, &e);

	if (!g || vb_qmp_exec(g, "guest-fsfreeze-thaw", NULL, NULL, &e) < 0)
		vb_warn(&l->warn, VB_WARN_GUEST, NULL, "%s; the guest's file systems may still be frozen "
			     "(thaw them: guest-fsfreeze-thaw)", e.msg);
	vb_qmp_close(g);
	if (!e.cls)
		live_mark(l, 0, MARK_FROZEN, &e);
}

/* Deletes every export vmaback-* and waits until QEMU has let it go. */
static int drop_exports(struct vb_live *l, struct vb_error *err)
{
	json_object *ex = NULL;
	int rc = -1;

	if (vb_qmp_exec(l->q, "query-block-exports", NULL, &ex, err) < 0)
		return -1;
	for (size_t i = 0; i < live_len(ex); i++) {
		const char *id = vb_json_str(json_object_array_get_idx(ex, i), "id");

		if (!live_has_prefix(id, LIVE_EXPORT))
			continue;
		if (vb_qmp_execf(l->q, NULL, err, "block-export-del",
				 "{\"id\": %s, \"mode\": \"hard\"}", vb_qmp_str(id)) < 0 ||
		    vb_qmp_wait_event(l->q, "BLOCK_EXPORT_DELETED", "id", id, 10000, NULL,
				      err) < 0)
			goto out;
	}
	rc = 0;
out:
	json_object_put(ex);
	return rc;
}

/* The node the filter named cbw sits on (its "file" child), from QEMU's
 * block graph, or NULL. */
static char *filtered_node(struct vb_live *l, json_object **g, const char *cbw,
			   struct vb_error *err)
{
	json_object *nodes, *edges;
	int64_t pid = -1, cid = -1;
	char *child = NULL;

	if (!*g && vb_qmp_exec(l->q, "x-debug-query-block-graph", NULL, g, err) < 0)
		return NULL;
	if (!json_object_object_get_ex(*g, "nodes", &nodes) ||
	    !json_object_object_get_ex(*g, "edges", &edges))
		goto out;
	for (size_t i = 0; i < live_len(nodes); i++) {
		json_object *n = json_object_array_get_idx(nodes, i);
		const char *name = vb_json_str(n, "name");

		if (name && strcmp(name, cbw) == 0)
			pid = vb_json_int(n, "id", -1);
	}
	for (size_t i = 0; pid >= 0 && i < live_len(edges); i++) {
		json_object *e = json_object_array_get_idx(edges, i);
		const char *name = vb_json_str(e, "name");

		if (vb_json_int(e, "parent", -2) == pid && name && strcmp(name, "file") == 0)
			cid = vb_json_int(e, "child", -1);
	}
	for (size_t i = 0; cid >= 0 && i < live_len(nodes); i++) {
		json_object *n = json_object_array_get_idx(nodes, i);

		if (vb_json_int(n, "id", -2) == cid && vb_json_str(n, "name"))
			child = strdup(vb_json_str(n, "name"));
	}
out:
	if (!child)
		vb_error_set(err, VB_E_FAIL, 0, "QMP: cannot find the node under filter %s",
			     cbw);
	return child;
}

char *live_qom_path(const char *qdev)
{
	char *p = NULL;

	if (qdev[0] == '/')
		return strdup(qdev);
	if (asprintf(&p, "/machine/peripheral/%s", qdev) < 0)
		return NULL;
	return p;
}

/* Points every device that writes through a vmaback-cbw-* filter back to
 * the node under it (the filter's readers must be gone: they keep it from
 * sharing writes). */
static int restore_devices(struct vb_live *l, struct vb_error *err)
{
	json_object *bl = NULL, *graph = NULL;
	int rc = -1;

	if (vb_qmp_exec(l->q, "query-block", NULL, &bl, err) < 0)
		return -1;
	for (size_t i = 0; i < live_len(bl); i++) {
		json_object *b = json_object_array_get_idx(bl, i), *ins;
		const char *node, *qdev = vb_json_str(b, "qdev");
		char *under, *path;
		int r;

		if (!json_object_object_get_ex(b, "inserted", &ins))
			continue;
		node = vb_json_str(ins, "node-name");
		if (!live_has_prefix(node, LIVE_CBW) || !qdev)
			continue;
		if (!(under = filtered_node(l, &graph, node, err)))
			goto out;
		path = live_qom_path(qdev);
		r = path ? vb_qmp_execf(l->q, NULL, err, "qom-set",
					"{\"path\": %s, \"property\": \"drive\", \"value\": %s}",
					vb_qmp_str(path), vb_qmp_str(under)) : live_oom(err);
		free(path);
		free(under);
		if (r < 0)
			goto out;
	}
	rc = 0;
out:
	json_object_put(graph);
	json_object_put(bl);
	return rc;
}

/* blockdev-del of every node of the listing named prefix*. */
static int drop_nodes(struct vb_live *l, json_object *nodes, const char *prefix,
		      struct vb_error *err)
{
	for (size_t i = 0; i < live_len(nodes); i++) {
		const char *n = vb_json_str(json_object_array_get_idx(nodes, i), "node-name");

		if (live_has_prefix(n, prefix) &&
		    vb_qmp_execf(l->q, NULL, err, "blockdev-del", "{\"node-name\": %s}",
				 vb_qmp_str(n)) < 0)
			return -1;
	}
	return 0;
}

/* The nodes, the devices' filters and the scratch files of a run, in the
 * order QEMU lets them go. */
static int drop_objects(struct vb_live *l, struct vb_error *err)
{
	json_object *nodes = NULL;
	bool any = false;
	int rc = -1;

	if (live_nodes(l, &nodes, err) < 0)
		return -1;
	for (size_t i = 0; i < live_len(nodes); i++)
		any = any || live_has_prefix(vb_json_str(json_object_array_get_idx(nodes, i),
							 "node-name"), LIVE_PREFIX);
	if (any && (drop_nodes(l, nodes, LIVE_ACCESS, err) < 0 || restore_devices(l, err) < 0 ||
		    drop_nodes(l, nodes, LIVE_CBW, err) < 0 ||
		    drop_nodes(l, nodes, LIVE_SCRATCH, err) < 0))
		goto out;
	rc = 0;
out:
	json_object_put(nodes);
	return rc;
}

/* This VM's scratch files, by their exact name pattern only. */
static void drop_scratch_files(struct vb_live *l)
{
	for (size_t i = 0; i < 256; i++) {
		char *p = live_scratch_path(l, i);

		if (p && unlink(p) < 0 && errno == ENOENT && i >= l->n) {
			free(p);
			break;
		}
		free(p);
	}
}

int live_cleanup(struct vb_live *l, struct vb_error *err)
{
	if (drop_exports(l, err) < 0)
		return -1;
	if (l->marks & MARK_NBD) {
		struct vb_error e = { 0 };

		/* "not running" after a QEMU restart: nothing to stop. */
		vb_qmp_exec(l->q, "nbd-server-stop", NULL, NULL, &e);
		unlink(l->nbd_path);
		if (live_mark(l, 0, MARK_NBD, err) < 0)
			return -1;
	}
	if (drop_objects(l, err) < 0)
		return -1;
	drop_scratch_files(l);
	if (l->marks & MARK_PAUSED) {
		json_object *st = NULL;

		if (vb_qmp_exec(l->q, "query-status", NULL, &st, err) < 0)
			return -1;
		if (!vb_json_bool(st, "running", true) &&
		    strcmp(vb_json_str(st, "status") ? vb_json_str(st, "status") : "", "paused") == 0) {
			if (vb_qmp_exec(l->q, "cont", NULL, NULL, err) < 0) {
				json_object_put(st);
				return -1;
			}
			vb_warn(&l->warn, VB_WARN_GUEST, NULL, "resumed the guest, which an interrupted run had "
				     "paused");
		}
		json_object_put(st);
		if (live_mark(l, 0, MARK_PAUSED, err) < 0)
			return -1;
	}
	if (l->marks & MARK_FROZEN)
		live_thaw(l, l->frozen_qga ? l->frozen_qga : "");
	return 0;
}


/* ============================================================== bitmaps */

json_object *live_node_bitmaps(json_object *nodes, const char *node)
{
	for (size_t i = 0; i < live_len(nodes); i++) {
		json_object *n = json_object_array_get_idx(nodes, i);
		const char *name = vb_json_str(n, "node-name");

		if (name && strcmp(name, node) == 0)
			return json_object_object_get(n, "dirty-bitmaps");
	}
	return NULL;
}

int live_action(json_object *acts, struct vb_error *err, const char *fmt, ...)
{
	char *s = NULL;
	json_object *a;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		return live_oom(err);
	a = json_tokener_parse(s);
	free(s);
	if (!a || json_object_array_add(acts, a) < 0) {
		json_object_put(a);
		return vb_error_set(err, VB_E_FAIL, 0, "QMP: a transaction action did not build");
	}
	return 0;
}

int live_bitmap_remove(json_object *acts, const char *node, const char *name,
		       struct vb_error *err)
{
	return live_action(acts, err, "{\"type\": \"block-dirty-bitmap-remove\", \"data\": "
			   "{\"node\": %s, \"name\": %s}}", vb_qmp_str(node), vb_qmp_str(name));
}

int live_transaction(struct vb_live *l, json_object *acts, struct vb_error *err)
{
	json_object *args;

	if (live_len(acts) == 0)
		return 0; /* never an empty transaction (QEMU 7.2 handles some badly) */
	if (!(args = json_object_new_object()))
		return live_oom(err);
	json_object_object_add(args, "actions", json_object_get(acts));
	return vb_qmp_exec(l->q, "transaction", args, NULL, err);
}

/* Judges drive d's bitmaps, adding the removals to acts. */
static int judge(struct vb_live *l, struct vb_live_drive *d, json_object *bms,
		 const char *keep, json_object *acts, struct vb_error *err)
{
	bool seen = false;

	for (size_t i = 0; i < live_len(bms); i++) {
		json_object *b = json_object_array_get_idx(bms, i);
		const char *name = vb_json_str(b, "name");
		bool own = live_has_prefix(name, l->set_prefix) || (name && strcmp(name, l->tmp) == 0);
		bool kept = keep && live_has_prefix(name, l->set_prefix) &&
			    strcmp(name + strlen(l->set_prefix), keep) == 0;

		if (!own)
			continue;
		if (kept && !vb_json_bool(b, "inconsistent", false) &&
		    vb_json_bool(b, "recording", false) && !vb_json_bool(b, "busy", false) &&
		    vb_json_int(b, "granularity", 0) <= 65536) {
			seen = true;
			continue;
		}
		if (kept && asprintf(&d->why, "drive %s: bitmap %s is %s", d->name, name,
				     vb_json_bool(b, "inconsistent", false) ?
				     "inconsistent (QEMU was killed while it recorded)" :
				     "not recording (disabled by another program)") < 0)
			return live_oom(err);
		if (live_bitmap_remove(acts, d->node, name, err) < 0)
			return -1;
	}
	d->has_bitmap = seen;
	if (!seen && keep && !d->why &&
	    asprintf(&d->why, "drive %s: node %s has no bitmap %s%s (QEMU was restarted, or "
		     "the disk is new)", d->name, d->node, l->set_prefix, keep) < 0)
		return live_oom(err);
	return 0;
}

int qmp_recover(struct vb_live *l, const char *keep, struct vb_error *err)
{
	json_object *nodes = NULL, *acts = json_object_new_array();
	int rc = -1;

	if (!acts)
		return live_oom(err);
	if (live_nodes(l, &nodes, err) < 0)
		goto out;
	for (size_t i = 0; i < l->n; i++) {
		free(l->d[i].why);
		l->d[i].why = NULL;
		if (judge(l, &l->d[i], live_node_bitmaps(nodes, l->d[i].node), keep, acts,
			  err) < 0)
			goto out;
	}
	rc = live_transaction(l, acts, err);
out:
	json_object_put(acts);
	json_object_put(nodes);
	return rc;
}
