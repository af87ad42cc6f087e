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
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "core/source/live_int.h"

bool live_has_prefix(const char *s, const char *prefix)
{
	return s && strncmp(s, prefix, strlen(prefix)) == 0;
}

/* ============================================================== lock */

int live_set_tag(struct vb_live *l, const char *key, struct vb_error *err)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;

	if (!EVP_Digest(key, strlen(key), md, &mdlen, EVP_sha256(), NULL) || mdlen < 8)
		return vb_error_set(err, VB_E_FAIL, 0, "SHA-256 failed");
	vb_hex(md, (sizeof(l->tag) - 1) / 2, l->tag);
	return 0;
}

/* The VM's name: the first 64 bits of SHA-256 of its socket's real path
 * (one QEMU per socket; stable across QEMU restarts). */
static int vm_tag(struct vb_live *l, struct vb_error *err)
{
	char *real = realpath(l->o.qmp, NULL);
	int rc;

	if (!real)
		return vb_error_set(err, VB_E_USAGE, errno, "QMP socket %s: %s", l->o.qmp,
				    strerror(errno));
	rc = live_set_tag(l, real, err);
	free(real);
	return rc;
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
		return live_oom(err);
	}
	if (strlen(l->nbd_path) >= 108) {
		vb_error_set(err, VB_E_USAGE, 0, "%s: too long for a unix socket (at most 107 "
			     "bytes); set XDG_RUNTIME_DIR to a shorter directory", l->nbd_path);
		goto fail;
	}
	/* A holder that ends with nothing to recover removes the file (see
	 * vb_live_close): a lock taken on a file unlinked meanwhile is no
	 * lock, so it is taken again on the file the name now holds. */
	for (int tries = 0;; tries++) {
		struct stat a, b;

		l->lock_fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (l->lock_fd < 0) {
			vb_error_set(err, VB_E_FAIL, errno, "%s: %s", path, strerror(errno));
			goto fail;
		}
		if (flock(l->lock_fd, LOCK_EX | LOCK_NB) < 0) {
			vb_error_set(err, errno == EWOULDBLOCK ? VB_E_LOCKED : VB_E_FAIL, errno,
				     "the VM of QMP socket %s is in use by another vmaback run (%s "
				     "is locked): QEMU has one NBD server", l->o.qmp, path);
			goto fail;
		}
		if (fstat(l->lock_fd, &a) == 0 && lstat(path, &b) == 0 && a.st_dev == b.st_dev &&
		    a.st_ino == b.st_ino)
			break;
		close(l->lock_fd);
		l->lock_fd = -1;
		if (tries == 100) {
			vb_error_set(err, VB_E_LOCKED, 0, "%s keeps being replaced", path);
			goto fail;
		}
	}
	l->lock_path = path;
	read_marks(l);
	return 0;
fail:
	free(path);
	return -1;
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
		return live_oom(err);
	}
	l->d = d;
	d = &l->d[l->n++];
	memset(d, 0, sizeof(*d));
	d->node = strdup(node);
	d->qdev = live_qom_path(qdev);
	d->name = name ? strdup(name) : drive_name(vb_json_str(b, "device"), id, node);
	d->size = (uint64_t)vb_json_int(img, "virtual-size", 0);
	free(id);
	if (!d->node || !d->qdev || !d->name)
		return live_oom(err);
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
		live_oom(err);
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
		live_oom(err);
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
		live_oom(err);
		goto fail;
	}
	if (!o->timeout_ms)
		l->o.timeout_ms = 30000;
	if (asprintf(&l->set_prefix, "vmaback/%s/", o->set) < 0 ||
	    asprintf(&l->tmp, "vmaback-tmp/%s", o->set) < 0) {
		live_oom(err);
		goto fail;
	}
	if (take_lock(l, err) < 0)
		goto fail;
	snprintf(what, sizeof(what), "QMP socket %s", o->qmp);
	if (!(l->what = strdup(what))) {
		live_oom(err);
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

bool vb_live_why(const struct vb_live *l, char *buf, size_t len)
{
	struct statvfs st;
	uint64_t room;

	if (!l->o.scratch_dir || statvfs(l->o.scratch_dir, &st) < 0)
		return false;
	room = (uint64_t)st.f_bavail * st.f_frsize;
	/* A cluster copied before the guest overwrites it needs 64 KiB. */
	if (room >= 4 * 1048576)
		return false;
	snprintf(buf, len, "the scratch directory %s has %llu KiB left: when it fills, the "
		 "point-in-time copy of what the guest overwrites breaks, and the backup with "
		 "it (the guest's writes go on); give --scratch-dir room for the writes made "
		 "during a backup", l->o.scratch_dir, (unsigned long long)(room / 1024));
	return true;
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

void vb_live_on_warning(struct vb_live *l, vb_warn_fn fn, void *opaque)
{
	vb_warnings_to(&l->warn, fn, opaque);
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
	/* The lock file goes with the lock when it records nothing left on
	 * the VM to recover (marks); else it stays for `vmaback recover`.
	 * Unlinked while still locked: take_lock's check sees it. */
	if (l->lock_fd >= 0 && l->lock_path && l->marks == 0)
		unlink(l->lock_path);
	if (l->lock_fd >= 0)
		close(l->lock_fd);
	free(l->lock_path);
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
	vb_warnings_free(&l->warn);
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
