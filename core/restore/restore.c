/* restore.c: a chain of archives restored into sparse files in a
 * directory or onto existing block devices and files, each byte written
 * once, new files published (all or none) only when everything succeeded. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/restore/restore_int.h"

struct rtarget {
	const struct vb_meta_drive *drive;
	char *spec;         /* the --target spec, or DIR/disk-NAME.raw */
	char *final;        /* the path the user sees */
	struct vb_outfile *nf; /* a new file (under a temporary name), or NULL */
	int fd;             /* an existing device, written in place, or -1 */
	struct vb_nbd_target *nt; /* written over NBD instead of fd */
};

struct restore {
	const struct vb_restore_opts *o;
	struct vb_chain *chain;
	struct rtarget *t;
	size_t nt;
	struct rtarget *by_dev[256];
	struct vb_error *err;
	bool made_dir;      /* --to DIR was created: removed again on failure */
};

/* 1: something is there, a dangling symbolic link included (access()
 * follows links, so it would let a planted link be replaced without
 * --force); 0: nothing; -1: lstat failed otherwise (errno), which says
 * nothing about whether a file is there. */
static int taken(const char *path)
{
	struct stat st;

	if (lstat(path, &st) == 0)
		return 1;
	return errno == ENOENT ? 0 : -1;
}

static bool wanted(const struct vb_restore_opts *o, const char *name)
{
	if (o->nselect == 0)
		return true;
	for (size_t i = 0; i < o->nselect; i++)
		if (strcmp(o->select[i], name) == 0)
			return true;
	return false;
}

static const char *target_of(const struct vb_restore_opts *o, const char *name)
{
	for (size_t i = 0; i < o->ntargets; i++)
		if (strcmp(o->targets[i].name, name) == 0)
			return o->targets[i].path;
	return NULL;
}

static bool has_drive(const struct vb_meta *m, const char *name)
{
	for (size_t i = 0; i < m->ndrives; i++)
		if (strcmp(m->drives[i].name, name) == 0)
			return true;
	return false;
}

static int check_names(struct restore *x)
{
	const struct vb_meta *m = vb_chain_meta(x->chain);

	for (size_t i = 0; i < x->o->nselect; i++)
		if (!has_drive(m, x->o->select[i]))
			return vb_error_set(x->err, VB_E_USAGE, 0, "the archive has no drive named %s",
					    x->o->select[i]);
	for (size_t i = 0; i < x->o->ntargets; i++) {
		if (!has_drive(m, x->o->targets[i].name))
			return vb_error_set(x->err, VB_E_USAGE, 0, "--target %s: the archive has no "
					    "drive named %s", x->o->targets[i].name,
					    x->o->targets[i].name);
		for (size_t j = 0; j < i; j++)
			if (strcmp(x->o->targets[i].name, x->o->targets[j].name) == 0)
				return vb_error_set(x->err, VB_E_USAGE, 0, "two targets for drive %s",
						    x->o->targets[i].name);
	}
	return 0;
}

/* A new file at path: a registered temporary beside it, published with
 * all the others only when the whole restore succeeded. */
static int new_file(struct restore *x, struct rtarget *t, const char *path, uint64_t size)
{
	int existed = taken(path);

	if (existed < 0)
		return vb_error_set(x->err, VB_E_USAGE, errno, "%s: %s", path, strerror(errno));
	if (!x->o->force && existed)
		return vb_error_set(x->err, VB_E_USAGE, EEXIST, "%s exists (use --force to "
				    "replace it)", path);
	t->final = strdup(path);
	t->nf = calloc(1, sizeof(*t->nf));
	if (!t->final || !t->nf)
		return vb_error_set(x->err, VB_E_FAIL, ENOMEM, "out of memory");
	return vb_outfile_open(t->nf, path, size, existed == 1, x->err);
}

/* An existing block device, overwritten in place. */
static int open_device(struct restore *x, struct rtarget *t, const char *path)
{
	uint64_t size = 0;
	struct stat st;

	if (!x->o->force)
		return vb_error_set(x->err, VB_E_USAGE, 0, "%s is a block device: restoring "
				    "drive %s onto it overwrites it; add --force", path,
				    t->drive->name);
	/* Symbolic links are followed (/dev/vg0/lv is one), but what was opened
	 * must still be the block device the caller saw, not a file swapped in. */
	t->fd = open(path, O_WRONLY | O_CLOEXEC | O_NOCTTY);
	if (t->fd < 0)
		return vb_error_set(x->err, VB_E_USAGE, errno, "%s: %s", path, strerror(errno));
	if (fstat(t->fd, &st) < 0 || !S_ISBLK(st.st_mode))
		return vb_error_set(x->err, VB_E_USAGE, 0, "%s: no longer a block device", path);
	if (ioctl(t->fd, BLKGETSIZE64, &size) < 0)
		return vb_error_set(x->err, VB_E_FAIL, errno, "%s: %s", path, strerror(errno));
	if (size < t->drive->size)
		return vb_error_set(x->err, VB_E_USAGE, 0, "%s holds %llu bytes, drive %s needs "
				    "%llu", path, (unsigned long long)size, t->drive->name,
				    (unsigned long long)t->drive->size);
	t->final = strdup(path);
	if (!t->final)
		return vb_error_set(x->err, VB_E_FAIL, ENOMEM, "out of memory");
	return 0;
}

/* An existing NBD export, overwritten. */
static int open_nbd(struct restore *x, struct rtarget *t, const char *uri)
{
	char what[512];

	if (!x->o->force)
		return vb_error_set(x->err, VB_E_USAGE, 0, "restoring drive %s onto the NBD export "
				    "%s overwrites it; add --force", t->drive->name, uri);
	snprintf(what, sizeof(what), "drive %s: %s", t->drive->name, uri);
	t->final = strdup(uri);
	if (!t->final)
		return vb_error_set(x->err, VB_E_FAIL, ENOMEM, "out of memory");
	t->nt = vb_nbd_target_uri(what, uri, t->drive->size, x->err);
	return t->nt ? 0 : -1;
}

/* A new image file (qcow2, ...): created by qemu-img under the temporary
 * name, written through qemu-nbd, renamed at the end like a raw file. */
static int open_image(struct restore *x, struct rtarget *t, const char *format,
		      const char *path)
{
	char what[PATH_MAX + 64];

	if (new_file(x, t, path, 0) < 0)
		return -1;
	snprintf(what, sizeof(what), "drive %s: %s", t->drive->name, path);
	t->nt = vb_nbd_target_image(what, format, vb_tempfile_path(t->nf->tmp), t->drive->size,
				    x->err);
	return t->nt ? 0 : -1;
}

/* Where drive t goes: its --target spec, or DIR/disk-NAME.raw (malloc'd in
 * t->spec). Nothing is looked at or written. */
static int target_spec(struct restore *x, struct rtarget *t)
{
	const char *path = target_of(x->o, t->drive->name);

	if (path) {
		struct vb_spec sp;

		vb_spec_split(path, &sp);
		if (sp.path[0] == '\0')
			return vb_error_set(x->err, VB_E_USAGE, 0, "--target %s=%s: no path after "
					    "the format", t->drive->name, path);
		t->spec = strdup(path);
	} else {
		if (!x->o->dir)
			return vb_error_set(x->err, VB_E_USAGE, 0, "drive %s has no target: give "
					    "--to DIR or --target %s=PATH", t->drive->name,
					    t->drive->name);
		if (!vb_safe_file_name(t->drive->name))
			return vb_error_set(x->err, VB_E_INVALID, 0, "drive name '%s' is not a safe "
					    "file name; refused", t->drive->name);
		if (strlen(t->drive->name) + strlen("disk-.raw") > VB_FILE_NAME_MAX)
			return vb_error_set(x->err, VB_E_USAGE, 0,
					    "drive %.40s... (%zu bytes): disk-NAME.raw would be longer "
					    "than a file name may be (%u bytes); restore it with "
					    "--target NAME=PATH", t->drive->name,
					    strlen(t->drive->name), VB_FILE_NAME_MAX);
		if (asprintf(&t->spec, "%s/disk-%s.raw", x->o->dir, t->drive->name) < 0)
			t->spec = NULL;
	}
	if (!t->spec)
		return vb_error_set(x->err, VB_E_FAIL, ENOMEM, "out of memory");
	return 0;
}

static int open_target(struct restore *x, struct rtarget *t)
{
	struct stat st;
	struct vb_spec sp;

	vb_spec_split(t->spec, &sp);
	if (sp.kind == VB_SPEC_NBD)
		return open_nbd(x, t, t->spec);
	if (sp.kind == VB_SPEC_IMAGE)
		return open_image(x, t, sp.format, sp.path);
	if (stat(sp.path, &st) == 0 && S_ISBLK(st.st_mode))
		return open_device(x, t, sp.path);
	if (stat(sp.path, &st) == 0 && !S_ISREG(st.st_mode))
		return vb_error_set(x->err, VB_E_USAGE, 0, "%s is not a regular file or a "
				    "block device", sp.path);
	if (strlen(sp.path) >= PATH_MAX)
		return vb_error_set(x->err, VB_E_USAGE, 0, "%s: path too long", sp.path);
	return new_file(x, t, sp.path, t->drive->size);
}

/* What a target is on the system: an existing object (vb_same_object), a
 * new name in an existing directory, or (directory missing) its text. */
struct tkey {
	int kind;             /* 'o' object, 'n' new name, 's' text */
	struct stat st;
	const char *name;
};

static void target_key(const char *spec, struct tkey *k)
{
	struct vb_spec sp;
	const char *slash;
	char *dir;

	vb_spec_split(spec, &sp);
	*k = (struct tkey){ .kind = 's', .name = spec };
	if (sp.kind == VB_SPEC_NBD)
		return;
	if (stat(sp.path, &k->st) == 0) {
		k->kind = 'o';
		return;
	}
	slash = strrchr(sp.path, '/');
	dir = slash ? strndup(sp.path, (size_t)(slash - sp.path + 1)) : strdup(".");
	if (dir && stat(dir, &k->st) == 0) {
		k->kind = 'n';
		k->name = slash ? slash + 1 : sp.path;
	}
	free(dir);
}

static bool same_key(const struct tkey *a, const struct tkey *b)
{
	if (a->kind != b->kind)
		return false;
	if (a->kind == 'o')
		return vb_same_object(&a->st, &b->st);
	if (a->kind == 'n')
		return a->st.st_dev == b->st.st_dev && a->st.st_ino == b->st.st_ino &&
		       strcmp(a->name, b->name) == 0;
	return strcmp(a->name, b->name) == 0;
}

/* Two drives onto one file or device would lose one of them: refused,
 * --force or not, before anything is created or written. */
static int check_distinct(struct restore *x)
{
	struct tkey *k = calloc(x->nt + 1, sizeof(*k));

	if (!k)
		return vb_error_set(x->err, VB_E_FAIL, ENOMEM, "out of memory");
	for (size_t i = 0; i < x->nt; i++) {
		target_key(x->t[i].spec, &k[i]);
		for (size_t j = 0; j < i; j++)
			if (same_key(&k[i], &k[j])) {
				vb_error_set(x->err, VB_E_USAGE, 0, "drives %s and %s have the same "
					     "target (%s, %s); refused", x->t[j].drive->name,
					     x->t[i].drive->name, x->t[j].spec, x->t[i].spec);
				free(k);
				return -1;
			}
	}
	free(k);
	return 0;
}

static int open_targets(struct restore *x)
{
	const struct vb_meta *m = vb_chain_meta(x->chain);

	x->t = calloc(m->ndrives + 1, sizeof(*x->t));
	if (!x->t)
		return vb_error_set(x->err, VB_E_FAIL, ENOMEM, "out of memory");
	for (size_t i = 0; i < m->ndrives; i++) {
		struct rtarget *t = &x->t[x->nt];

		if (!wanted(x->o, m->drives[i].name) || strcmp(m->drives[i].name, "vmstate") == 0)
			continue;
		t->fd = -1;
		t->drive = &m->drives[i];
		x->nt++;
		if (target_spec(x, t) < 0)
			return -1;
	}
	if (check_distinct(x) < 0)
		return -1;
	if (x->o->dir && mkdir(x->o->dir, 0700) == 0)
		x->made_dir = true;
	else if (x->o->dir && errno != EEXIST)
		return vb_error_set(x->err, errno == ENOENT ? VB_E_USAGE : VB_E_FAIL, errno,
				    "cannot create %s: %s", x->o->dir, strerror(errno));
	for (size_t i = 0; i < x->nt; i++) {
		if (open_target(x, &x->t[i]) < 0)
			return -1;
		x->by_dev[x->t[i].drive->dev_id] = &x->t[i];
	}
	return 0;
}

static int copy(struct restore *x, struct vb_restore_result *res)
{
	struct vma_cluster c;
	int rc;

	while ((rc = vb_chain_next(x->chain, &c, x->err)) == 1) {
		struct rtarget *t = x->by_dev[c.dev_id];

		if (x->o->cancel && *x->o->cancel)
			return vb_error_set(x->err, VB_E_CANCELED, EINTR, "interrupted");
		if (!t)
			continue;
		res->clusters++;
		if (t->nt) {
			if (vb_nbd_target_put(t->nt, &c, &res->bytes_written, x->err) < 0)
				return -1;
			continue;
		}
		if (t->nf) {
			if (vb_outfile_put(t->nf, &c, &res->bytes_written, x->err) < 0)
				return -1;
			continue;
		}
		rc = vb_put_cluster(t->fd, &c, t->drive->size, true, &res->bytes_written);
		if (rc < 0)
			return vb_error_set(x->err, VB_E_FAIL, -rc, "%s: %s", t->final, strerror(-rc));
	}
	return rc;
}

/* Everything written: flush the devices and exports, then give the new
 * files their names, all of them or none. */
static int publish(struct restore *x)
{
	struct vb_outfile **nf = calloc(x->nt + 1, sizeof(*nf));
	size_t n = 0;
	int rc = 0;

	if (!nf)
		return vb_error_set(x->err, VB_E_FAIL, ENOMEM, "out of memory");
	for (size_t i = 0; i < x->nt && rc == 0; i++) {
		struct rtarget *t = &x->t[i];

		if (t->nt) {
			rc = vb_nbd_target_close(t->nt, x->err);
			t->nt = NULL;
		} else if (t->fd >= 0) {
			rc = vb_fsync(t->fd);
			if (close(t->fd) < 0)
				rc = -1;
			t->fd = -1;
			if (rc < 0)
				vb_error_set(x->err, VB_E_FAIL, errno, "%s: %s", t->final,
					     strerror(errno));
		}
		if (t->nf)
			nf[n++] = t->nf;
	}
	if (rc == 0)
		rc = vb_outfiles_publish(nf, n, x->o->force, x->err);
	free(nf);
	return rc;
}

int vb_restore(const struct vb_restore_opts *o, struct vb_restore_result *res,
	       struct vb_error *err)
{
	struct restore x = { .o = o, .err = err };
	int rc = -1;

	memset(res, 0, sizeof(*res));
	x.chain = vb_chain_open(o->archives, o->narchives, err);
	if (!x.chain)
		return -1;
	res->archives = (unsigned)vb_chain_length(x.chain);
	if (check_names(&x) < 0 || open_targets(&x) < 0 || copy(&x, res) < 0 || publish(&x) < 0)
		goto out;
	res->drives = (unsigned)x.nt;
	rc = 0;
out:
	for (size_t i = 0; i < x.nt; i++) {
		vb_nbd_target_abort(x.t[i].nt);
		if (x.t[i].fd >= 0)
			close(x.t[i].fd);
		if (x.t[i].nf)
			vb_outfile_free(x.t[i].nf);
		free(x.t[i].nf);
		free(x.t[i].final);
		free(x.t[i].spec);
	}
	free(x.t);
	if (rc < 0 && x.made_dir)
		rmdir(x.o->dir); /* only if empty: nothing of another program goes */
	vb_chain_free(x.chain);
	return rc;
}
