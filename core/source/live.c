/* live.c: a running QEMU over QMP: the VM's lock, the connection, finding
 * its drives, and recovery (removing what a crashed run left, keeping only
 * the bitmap of the set's latest committed checkpoint). The run itself,
 * point in time to teardown, is in live_run.c. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "core/source/live_int.h"

bool live_has_prefix(const char *s, const char *prefix)
{
	return s && strncmp(s, prefix, strlen(prefix)) == 0;
}

static int oom(struct vb_error *err)
{
	return vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
}

/* ============================================================== lock */

/* The VM's name: the first 64 bits of SHA-256 of its socket's real path
 * (one QEMU per socket; stable across QEMU restarts). */
static int vm_tag(struct vb_live *l, struct vb_error *err)
{
	char *real = realpath(l->o.qmp, NULL);
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	int ok;

	if (!real)
		return vb_error_set(err, VB_E_USAGE, errno, "QMP socket %s: %s", l->o.qmp,
				    strerror(errno));
	ok = EVP_Digest(real, strlen(real), md, &mdlen, EVP_sha256(), NULL);
	free(real);
	if (!ok || mdlen < 8)
		return vb_error_set(err, VB_E_FAIL, 0, "SHA-256 failed");
	for (unsigned i = 0; i < 8; i++)
		snprintf(l->tag + 2 * i, 3, "%02x", md[i]);
	return 0;
}

static void read_marks(struct vb_live *l)
{
	char buf[PATH_MAX + 64], *qga;
	ssize_t n = pread(l->lock_fd, buf, sizeof(buf) - 1, 0);
	unsigned m = 0;

	if (n <= 0)
		return;
	buf[n] = '\0';
	if (sscanf(buf, "marks=%u", &m) == 1)
		l->marks = m & (MARK_NBD | MARK_PAUSED | MARK_FROZEN);
	qga = strstr(buf, "\nqga=");
	if (qga && (l->marks & MARK_FROZEN)) {
		qga += 5;
		qga[strcspn(qga, "\n")] = '\0';
		l->frozen_qga = strdup(qga);
	}
}

int live_mark(struct vb_live *l, unsigned set, unsigned clear, struct vb_error *err)
{
	char buf[PATH_MAX + 64];
	int len;

	l->marks = (l->marks | set) & ~clear;
	len = snprintf(buf, sizeof(buf), "marks=%u\nqga=%s\n", l->marks,
		       (l->marks & MARK_FROZEN) && l->frozen_qga ? l->frozen_qga : "");
	if (len < 0 || (size_t)len >= sizeof(buf) || ftruncate(l->lock_fd, 0) < 0 ||
	    pwrite(l->lock_fd, buf, (size_t)len, 0) != len)
		return vb_error_set(err, VB_E_FAIL, errno, "the VM's lock file in %s: %s",
				    l->o.run_dir, strerror(errno));
	return 0;
}

static int take_lock(struct vb_live *l, struct vb_error *err)
{
	char *path = NULL;

	if (vm_tag(l, err) < 0)
		return -1;
	if (asprintf(&path, "%s/qmp-%s.lock", l->o.run_dir, l->tag) < 0 ||
	    asprintf(&l->nbd_path, "%s/qmp-%s.nbd", l->o.run_dir, l->tag) < 0) {
		free(path);
		return oom(err);
	}
	if (strlen(l->nbd_path) >= 108) {
		vb_error_set(err, VB_E_USAGE, 0, "%s: too long for a unix socket (at most 107 "
			     "bytes); set XDG_RUNTIME_DIR to a shorter directory", l->nbd_path);
		goto fail;
	}
	l->lock_fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (l->lock_fd < 0) {
		vb_error_set(err, VB_E_FAIL, errno, "%s: %s", path, strerror(errno));
		goto fail;
	}
	if (flock(l->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		vb_error_set(err, errno == EWOULDBLOCK ? VB_E_LOCKED : VB_E_FAIL, errno,
			     "the VM of QMP socket %s is in use by another vmaback run (%s is "
			     "locked): QEMU has one NBD server", l->o.qmp, path);
		goto fail;
	}
	free(path);
	read_marks(l);
	return 0;
fail:
	free(path);
	return -1;
}

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
	struct vb_qmp *g = vb_qmp_connect(VB_QMP_AGENT, path, "guest agent", 10000, &e);

	if (!g || vb_qmp_exec(g, "guest-fsfreeze-thaw", NULL, NULL, &e) < 0)
		vb_notes_add(&l->notes, "%s; the guest's file systems may still be frozen "
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

static char *qom_path(const char *qdev)
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
		path = qom_path(qdev);
		r = path ? vb_qmp_execf(l->q, NULL, err, "qom-set",
					"{\"path\": %s, \"property\": \"drive\", \"value\": %s}",
					vb_qmp_str(path), vb_qmp_str(under)) : oom(err);
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
			vb_notes_add(&l->notes, "resumed the guest, which an interrupted run had "
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

/* ============================================================== drives */

static const char *const proxmox_buses[] = { "ide", "sata", "scsi", "virtio", "efidisk",
					     "tpmstate", NULL };

/* Whether s is BUSN, a Proxmox drive key (virtio0, scsi12, ...). */
static bool proxmox_key(const char *s)
{
	for (const char *const *b = proxmox_buses; s && *b; b++) {
		size_t n = strlen(*b);

		if (strncmp(s, *b, n) == 0 && s[n] && strspn(s + n, "0123456789") == strlen(s + n))
			return true;
	}
	return false;
}

/* The device id in a QOM path /machine/peripheral/ID[/virtio-backend]. */
static char *device_id(const char *qdev)
{
	const char *pre = "/machine/peripheral/", *s = qdev;
	size_t n;

	if (live_has_prefix(qdev, pre))
		s = qdev + strlen(pre);
	else if (qdev[0] == '/')
		return NULL;
	n = strcspn(s, "/");
	if (s[n] && strcmp(s + n, "/virtio-backend") != 0)
		return NULL;
	return strndup(s, n);
}

/* Proxmox's name (drive-virtio0) when the drive or device id allows,
 * else the device id, else the node name. */
static char *drive_name(const char *bb, const char *id, const char *node)
{
	char *p = NULL;

	if (live_has_prefix(bb, "drive-") && proxmox_key(bb + 6))
		return strdup(bb);
	if (proxmox_key(id))
		return asprintf(&p, "drive-%s", id) < 0 ? NULL : p;
	return strdup(id ? id : node);
}

static bool matches(json_object *b, const char *node, const char *id, const char *dev)
{
	const char *bb = vb_json_str(b, "device"), *qdev = vb_json_str(b, "qdev");

	return (id && strcmp(id, dev) == 0) || (qdev && strcmp(qdev, dev) == 0) ||
	       (bb && *bb && strcmp(bb, dev) == 0) || strcmp(node, dev) == 0;
}

static int add_drive(struct vb_live *l, json_object *b, const char *name, struct vb_error *err)
{
	json_object *ins = json_object_object_get(b, "inserted");
	json_object *img = ins ? json_object_object_get(ins, "image") : NULL;
	const char *node = vb_json_str(ins, "node-name"), *qdev = vb_json_str(b, "qdev");
	struct vb_live_drive *d;
	char *id = device_id(qdev);

	d = realloc(l->d, (l->n + 1) * sizeof(*d));
	if (!d) {
		free(id);
		return oom(err);
	}
	l->d = d;
	d = &l->d[l->n++];
	memset(d, 0, sizeof(*d));
	d->node = strdup(node);
	d->qdev = qom_path(qdev);
	d->name = name ? strdup(name) : drive_name(vb_json_str(b, "device"), id, node);
	d->size = (uint64_t)vb_json_int(img, "virtual-size", 0);
	free(id);
	if (!d->node || !d->qdev || !d->name)
		return oom(err);
	if (!img || d->size == 0)
		return vb_error_set(err, VB_E_FAIL, 0, "drive %s: QEMU tells no size of node %s",
				    d->name, node);
	return vb_drive_name_check(d->name, err);
}

/* A disk vmaback backs up: a device writes to it, it has media. */
static bool backed_up(json_object *b, const char **node)
{
	json_object *ins;

	if (!json_object_object_get_ex(b, "inserted", &ins) || !vb_json_str(b, "qdev"))
		return false;
	*node = vb_json_str(ins, "node-name");
	return *node && !vb_json_bool(ins, "ro", false);
}

static int find_drives(struct vb_live *l, const struct vb_live_opts *o, struct vb_error *err)
{
	json_object *bl = NULL;
	const char *node;
	int rc = -1;

	if (vb_qmp_exec(l->q, "query-block", NULL, &bl, err) < 0)
		return -1;
	if (!(l->layout = strdup(json_object_to_json_string_ext(bl, JSON_C_TO_STRING_PRETTY)))) {
		oom(err);
		goto out;
	}
	for (size_t k = 0; k < (o->ndrives ? o->ndrives : 1); k++) {
		bool found = false;

		for (size_t i = 0; i < live_len(bl); i++) {
			json_object *b = json_object_array_get_idx(bl, i);
			char *id;
			bool hit;

			if (!backed_up(b, &node))
				continue;
			id = device_id(vb_json_str(b, "qdev"));
			hit = !o->ndrives || matches(b, node, id, o->devices[k]);
			free(id);
			if (hit && add_drive(l, b, o->ndrives ? o->names[k] : NULL, err) < 0)
				goto out;
			found = found || hit;
			if (hit && o->ndrives)
				break;
		}
		if (o->ndrives && !found) {
			vb_error_set(err, VB_E_USAGE, 0, "drive %s: the VM has no writable disk %s "
				     "(a device id, QOM path, drive id or node name of query-block)",
				     o->names[k], o->devices[k]);
			goto out;
		}
	}
	if (l->n == 0) {
		vb_error_set(err, VB_E_USAGE, 0, "the VM of QMP socket %s has no writable disk "
			     "with media", o->qmp);
		goto out;
	}
	rc = 0;
out:
	json_object_put(bl);
	return rc;
}

struct vb_live *vb_live_open(const struct vb_live_opts *o, struct vb_error *err)
{
	struct vb_live *l = calloc(1, sizeof(*l));
	char what[PATH_MAX + 32];

	if (!l) {
		oom(err);
		return NULL;
	}
	l->o = *o;
	l->ops = &live_qmp_ops;
	l->kind = "qmp";
	l->layout_name = "qmp-block.json";
	l->lock_fd = -1;
	/* Kept: copies of the caller's strings. */
	l->o.qmp = l->own[0] = strdup(o->qmp);
	l->o.set = l->own[1] = strdup(o->set);
	l->o.scratch_dir = l->own[2] = strdup(o->scratch_dir);
	l->o.run_dir = l->own[3] = strdup(o->run_dir);
	l->o.qga = l->own[4] = o->qga ? strdup(o->qga) : NULL;
	l->o.names = l->o.devices = NULL;
	if (!l->own[0] || !l->own[1] || !l->own[2] || !l->own[3] || (o->qga && !l->own[4])) {
		oom(err);
		goto fail;
	}
	if (!o->timeout_ms)
		l->o.timeout_ms = 30000;
	if (asprintf(&l->set_prefix, "vmaback/%s/", o->set) < 0 ||
	    asprintf(&l->tmp, "vmaback-tmp/%s", o->set) < 0) {
		oom(err);
		goto fail;
	}
	if (take_lock(l, err) < 0)
		goto fail;
	snprintf(what, sizeof(what), "QMP socket %s", o->qmp);
	if (!(l->what = strdup(what))) {
		oom(err);
		goto fail;
	}
	l->q = vb_qmp_connect(VB_QMP_MONITOR, o->qmp, what, l->o.timeout_ms, err);
	if (!l->q || live_cleanup(l, err) < 0 || find_drives(l, o, err) < 0)
		goto fail;
	return l;
fail:
	vb_live_close(l);
	return NULL;
}

size_t vb_live_count(const struct vb_live *l)
{
	return l->n;
}

const struct vb_live_drive *vb_live_get(const struct vb_live *l, size_t i)
{
	return i < l->n ? &l->d[i] : NULL;
}

const char *vb_live_layout(const struct vb_live *l)
{
	return l->layout;
}

const char *vb_live_kind(const struct vb_live *l)
{
	return l->kind;
}

const char *vb_live_layout_name(const struct vb_live *l)
{
	return l->layout_name;
}

const char *vb_live_what(const struct vb_live *l)
{
	return l->what ? l->what : "";
}

const char *vb_live_notes(const struct vb_live *l)
{
	return l->notes ? l->notes : "";
}

/* ============================================================== bitmaps */

static json_object *bitmaps_of(json_object *nodes, const char *node)
{
	for (size_t i = 0; i < live_len(nodes); i++) {
		json_object *n = json_object_array_get_idx(nodes, i);
		const char *name = vb_json_str(n, "node-name");

		if (name && strcmp(name, node) == 0)
			return json_object_object_get(n, "dirty-bitmaps");
	}
	return NULL;
}

static int remove_action(json_object *acts, const char *node, const char *name)
{
	char *s = NULL;
	json_object *a;

	if (asprintf(&s, "{\"type\": \"block-dirty-bitmap-remove\", \"data\": {\"node\": %s, "
		     "\"name\": %s}}", vb_qmp_str(node), vb_qmp_str(name)) < 0)
		return -1;
	a = json_tokener_parse(s);
	free(s);
	return a ? json_object_array_add(acts, a) : -1;
}

/* Judges drive d's bitmaps, adding the removals to acts. */
static int judge(struct vb_live *l, struct vb_live_drive *d, json_object *bms,
		 const char *keep, json_object *acts)
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
			return -1;
		if (remove_action(acts, d->node, name) < 0)
			return -1;
	}
	d->has_bitmap = seen;
	if (!seen && keep && !d->why &&
	    asprintf(&d->why, "drive %s: node %s has no bitmap %s%s (QEMU was restarted, or "
		     "the disk is new)", d->name, d->node, l->set_prefix, keep) < 0)
		return -1;
	return 0;
}

static int qmp_recover(struct vb_live *l, const char *keep, struct vb_error *err)
{
	json_object *nodes = NULL, *acts = json_object_new_array();
	int rc = -1;

	if (!acts)
		return oom(err);
	if (live_nodes(l, &nodes, err) < 0)
		goto out;
	for (size_t i = 0; i < l->n; i++) {
		free(l->d[i].why);
		l->d[i].why = NULL;
		if (judge(l, &l->d[i], bitmaps_of(nodes, l->d[i].node), keep, acts) < 0) {
			oom(err);
			goto out;
		}
	}
	/* Never an empty transaction (QEMU 7.2 handles some badly). */
	if (live_len(acts) > 0) {
		json_object *args = json_object_new_object();

		json_object_object_add(args, "actions", json_object_get(acts));
		if (vb_qmp_exec(l->q, "transaction", args, NULL, err) < 0)
			goto out;
	}
	rc = 0;
out:
	json_object_put(acts);
	json_object_put(nodes);
	return rc;
}

static void qmp_close(struct vb_live *l)
{
	vb_qmp_close(l->q);
	l->q = NULL;
}

void vb_live_close(struct vb_live *l)
{
	if (!l)
		return;
	if (l->ops)
		l->ops->close(l);
	if (l->lock_fd >= 0)
		close(l->lock_fd); /* the lock file stays: it is the VM's */
	for (size_t i = 0; i < l->n; i++) {
		free(l->d[i].name);
		free(l->d[i].node);
		free(l->d[i].qdev);
		free(l->d[i].why);
		free(l->d[i].uri);
	}
	free(l->d);
	free(l->layout);
	free(l->what);
	free(l->notes);
	free(l->set_prefix);
	free(l->tmp);
	free(l->since);
	free(l->ckpt);
	free(l->frozen_qga);
	free(l->nbd_path);
	for (size_t i = 0; i < 5; i++)
		free(l->own[i]);
	free(l);
}

const struct live_ops live_qmp_ops = {
	.recover = qmp_recover,
	.start = qmp_start,
	.finish = qmp_finish,
	.close = qmp_close,
};

/* ============================================================== the interface */

int vb_live_recover(struct vb_live *l, const char *keep, struct vb_error *err)
{
	return l->ops->recover(l, keep, err);
}

int vb_live_start(struct vb_live *l, const char *since, const char *ckpt, struct vb_error *err)
{
	l->started = true;
	return l->ops->start(l, since, ckpt, err);
}

int vb_live_finish(struct vb_live *l, enum vb_live_end how, struct vb_error *err)
{
	int rc = l->ops->finish(l, how, err);

	l->started = false;
	return rc;
}
