/* extract.c: an archive unpacked the way Proxmox's `vma extract` does it:
 * into a new directory, disk-NAME.raw sparse files and config blobs, all
 * written as temporaries and given their names only when all succeeded. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/restore/restore_int.h"

struct out_file {
	char *name;
	struct vb_outfile out;  /* a temporary until everything succeeded */
	unsigned dev_id;        /* 0 for a config blob */
	bool stream;            /* vmstate: stored blocks appended in order */
	uint64_t next_cluster;  /* stream: the cluster expected next */
	uint64_t stream_off;
};

struct extract {
	struct vb_archive *a;
	const struct vb_extract_opts *o;
	int dirfd;
	struct out_file *files;
	size_t nfiles;
	struct out_file *by_dev[256];
	struct vb_error *err;
};

/* A new file DIR/name, written as a registered temporary: no final name
 * exists before the whole extract succeeded. */
static int create_file(struct extract *x, const char *name, unsigned dev_id, uint64_t size,
		       struct out_file **out)
{
	struct out_file *f = &x->files[x->nfiles];
	char *path = NULL;

	for (size_t i = 0; i < x->nfiles; i++)
		if (strcmp(x->files[i].name, name) == 0)
			return vb_error_set(x->err, VB_E_INVALID, EEXIST, "%s/%s: two archive "
					    "entries with one name", x->o->dir, name);
	memset(f, 0, sizeof(*f));
	f->name = strdup(name);
	if (!f->name || asprintf(&path, "%s/%s", x->o->dir, name) < 0) {
		free(f->name);
		return vb_error_set(x->err, VB_E_FAIL, ENOMEM, "out of memory");
	}
	x->nfiles++;
	f->dev_id = dev_id;
	*out = f;
	if (vb_outfile_open(&f->out, path, size, false, x->err) < 0) {
		free(path);
		return -1;
	}
	free(path);
	return 0;
}

static bool selected(const struct vb_extract_opts *o, const char *name)
{
	if (!o->select || o->nselect == 0)
		return true;
	for (size_t i = 0; i < o->nselect; i++)
		if (strcmp(o->select[i], name) == 0)
			return true;
	return false;
}

/* Refuses what must not be extracted before anything is created. */
static int check_request(struct extract *x)
{
	const struct vb_meta *m = vb_archive_meta(x->a);
	struct vma_reader *vr = vb_archive_vma(x->a);
	const char *path = vb_archive_path(x->a);

	if (!vb_kind_whole(m->kind))
		return vb_error_set(x->err, VB_E_USAGE, 0,
				    "%s is not a full archive (it is %s: only changed clusters); "
				    "restore it with its chain (vmaback restore FULL ... %s --to DIR)",
				    path, vb_kind_name(m->kind), path);
	for (size_t i = 0; i < x->o->nselect; i++) {
		bool found = false;

		for (size_t j = 0; j < m->ndrives; j++)
			found = found || strcmp(m->drives[j].name, x->o->select[i]) == 0;
		if (!found)
			return vb_error_set(x->err, VB_E_USAGE, 0, "%s has no drive named %s", path,
					    x->o->select[i]);
	}
	for (size_t j = 0; j < m->ndrives; j++)
		if (selected(x->o, m->drives[j].name) && !vb_safe_file_name(m->drives[j].name))
			return vb_error_set(x->err, VB_E_INVALID, 0,
					    "%s: drive name '%s' is not a safe file name; refused",
					    path, m->drives[j].name);
	for (size_t j = 0; j < m->ndrives; j++)
		if (selected(x->o, m->drives[j].name) &&
		    strlen(m->drives[j].name) + strlen("disk-.raw") > VB_FILE_NAME_MAX)
			return vb_error_set(x->err, VB_E_USAGE, 0,
					    "%s: drive %.40s... (%zu bytes): disk-NAME.raw would be "
					    "longer than a file name may be (%u bytes); leave it out "
					    "with -d, or restore it with --target NAME=PATH", path,
					    m->drives[j].name, strlen(m->drives[j].name),
					    VB_FILE_NAME_MAX);
	for (unsigned i = 0; i < vma_reader_config_count(vr); i++)
		if (!vb_safe_file_name(vma_reader_config(vr, i)->name))
			return vb_error_set(x->err, VB_E_INVALID, 0,
					    "%s: config name '%s' is not a safe file name; refused",
					    path, vma_reader_config(vr, i)->name);
	return 0;
}

static int write_configs(struct extract *x)
{
	struct vma_reader *vr = vb_archive_vma(x->a);

	for (unsigned i = 0; i < vma_reader_config_count(vr); i++) {
		const struct vma_config_info *ci = vma_reader_config(vr, i);
		struct out_file *f;

		if (create_file(x, ci->name, 0, 0, &f) < 0)
			return -1;
		int rc = vb_pwrite_all(vb_outfile_fd(&f->out), ci->data, ci->len, 0);

		if (rc < 0)
			return vb_error_set(x->err, VB_E_FAIL, -rc, "%s/%s: %s", x->o->dir,
					    ci->name, strerror(-rc));
	}
	return 0;
}

static int open_disks(struct extract *x)
{
	const struct vb_meta *m = vb_archive_meta(x->a);

	for (size_t j = 0; j < m->ndrives; j++) {
		const struct vb_meta_drive *d = &m->drives[j];
		bool stream = strcmp(d->name, "vmstate") == 0;
		char *name = NULL;
		struct out_file *f;
		int rc;

		if (!selected(x->o, d->name))
			continue;
		if (asprintf(&name, stream ? "vmstate.bin" : "disk-%s.raw", d->name) < 0)
			return vb_error_set(x->err, VB_E_FAIL, ENOMEM, "out of memory");
		rc = create_file(x, name, d->dev_id, stream ? 0 : d->size, &f);
		free(name);
		if (rc < 0)
			return -1;
		f->stream = stream;
		x->by_dev[d->dev_id] = f;
	}
	return 0;
}

/* Writes the stored blocks of one cluster; vmstate is a byte stream of the
 * stored blocks in order, as Proxmox writes it. */
static int put_cluster(struct extract *x, struct out_file *f, const struct vma_cluster *c)
{
	int rc = 0;

	if (!f->stream) {
		return vb_outfile_put(&f->out, c, NULL, x->err);
	} else if (c->cluster_num != f->next_cluster) {
		return vb_error_set(x->err, VB_E_INVALID, 0,
				    "%s: vmstate cluster %" PRIu32 " out of order",
				    vb_archive_path(x->a), c->cluster_num);
	} else {
		f->next_cluster++;
		for (unsigned b = 0; b < VMA_BLOCKS_PER_CLUSTER && rc == 0; b++) {
			if (!(c->mask >> b & 1))
				continue;
			rc = vb_pwrite_all(vb_outfile_fd(&f->out),
					   c->data + (size_t)b * VMA_BLOCK_SIZE,
					   VMA_BLOCK_SIZE, f->stream_off);
			f->stream_off += VMA_BLOCK_SIZE;
		}
	}
	if (rc < 0)
		return vb_error_set(x->err, VB_E_FAIL, -rc, "%s/%s: %s", x->o->dir, f->name,
				    strerror(-rc));
	return 0;
}

static int copy_clusters(struct extract *x)
{
	const volatile sig_atomic_t *cancel = x->o->cancel;
	struct vma_cluster c;
	int rc;

	while ((rc = vb_archive_next_cluster(x->a, &c, x->err)) == 1) {
		if (cancel && *cancel)
			return vb_error_set(x->err, VB_E_CANCELED, EINTR, "interrupted");
		if (x->by_dev[c.dev_id] && put_cluster(x, x->by_dev[c.dev_id], &c) < 0)
			return -1;
	}
	if (rc < 0)
		return -1;
	for (unsigned id = 1; id < 256; id++)
		if (x->by_dev[id] && vb_archive_check_drive(x->a, id, x->err) < 0)
			return -1;
	return 0;
}

/* Everything written: every file gets its name, or none does. */
static int finish_files(struct extract *x)
{
	struct vb_outfile **v = calloc(x->nfiles + 1, sizeof(*v));
	int rc;

	if (!v)
		return vb_error_set(x->err, VB_E_FAIL, ENOMEM, "out of memory");
	for (size_t i = 0; i < x->nfiles; i++)
		v[i] = &x->files[i].out;
	rc = vb_outfiles_publish(v, x->nfiles, false, x->err);
	free(v);
	return rc;
}

static int make_dir(struct extract *x)
{
	if (mkdir(x->o->dir, 0700) < 0) {
		if (errno == EEXIST)
			return vb_error_set(x->err, VB_E_USAGE, errno,
					    "%s already exists; extract creates a new directory",
					    x->o->dir);
		return vb_error_set(x->err, errno == ENOENT ? VB_E_USAGE : VB_E_FAIL, errno,
				    "cannot create %s: %s", x->o->dir, strerror(errno));
	}
	x->dirfd = open(x->o->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (x->dirfd < 0) {
		vb_error_set(x->err, VB_E_FAIL, errno, "%s: %s", x->o->dir, strerror(errno));
		rmdir(x->o->dir);
		return -1;
	}
	return 0;
}

int vb_extract(struct vb_archive *a, const struct vb_extract_opts *o, struct vb_error *err)
{
	struct vma_reader *vr = vb_archive_vma(a);
	struct extract x = { .a = a, .o = o, .dirfd = -1, .err = err };
	int rc = -1;

	if (check_request(&x) < 0)
		return -1;
	x.files = calloc(vma_reader_config_count(vr) + vb_archive_meta(a)->ndrives + 1,
			 sizeof(*x.files));
	if (!x.files)
		return vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
	if (make_dir(&x) < 0)
		goto out;
	if (write_configs(&x) < 0 || open_disks(&x) < 0 || copy_clusters(&x) < 0 ||
	    finish_files(&x) < 0)
		goto out;
	rc = 0;
out:
	for (size_t i = 0; i < x.nfiles; i++) {
		vb_outfile_free(&x.files[i].out);
		free(x.files[i].name);
	}
	free(x.files);
	if (x.dirfd >= 0) {
		close(x.dirfd);
		if (rc < 0)
			rmdir(o->dir);
	}
	return rc;
}
