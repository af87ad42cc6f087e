/* backup.c: the backup transaction: prepare every job (open and size every
 * drive, read configs), then one job per drive, in order, into one archive. */
#include <errno.h>
#include <fcntl.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/core_int.h"

/* Bytes read per step: whole clusters, large enough for sequential I/O. */
#define CHUNK_SIZE (4u * 1024u * 1024u)
#define CHUNK_CLUSTERS (CHUNK_SIZE / VMA_CLUSTER_SIZE)

struct config_blob {
	char *name;
	uint8_t *data;
	size_t len;
};

struct vb_backup {
	struct vb_backup_opts o;
	struct vb_source **src;
	size_t nsrc;
	struct config_blob *cfg;
	size_t ncfg;
};

/* The state of one run, shared by the jobs and the write callback. */
struct run {
	struct vb_backup *b;
	struct vb_writer *out;
	struct vma_writer *vw;
	struct vb_error *err;
	struct vb_backup_result *res;
	struct vb_progress prog;
	uint8_t *buf;
};

static double now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int read_config(struct config_blob *c, const char *path, struct vb_error *err)
{
	const char *base = strrchr(path, '/');
	struct stat st;
	size_t got = 0;
	int fd, rc = -1;

	base = base ? base + 1 : path;
	if (!vb_safe_file_name(base))
		return vb_error_set(err, VB_E_USAGE, 0, "config %s: not a usable file name", path);
	if (strcmp(base, VB_META_NAME) == 0)
		return vb_error_set(err, VB_E_USAGE, 0,
				    "config %s: the name %s is reserved for vmaback", path,
				    VB_META_NAME);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return vb_error_set(err, VB_E_USAGE, errno, "config %s: %s", path,
				    strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		vb_error_set(err, VB_E_USAGE, 0, "config %s: not a regular file", path);
		goto out;
	}
	if (st.st_size > (off_t)VMA_MAX_BLOB_LEN) {
		vb_error_set(err, VB_E_USAGE, 0,
			     "config %s is %lld bytes; a config blob holds at most %u", path,
			     (long long)st.st_size, VMA_MAX_BLOB_LEN);
		goto out;
	}
	c->name = strdup(base);
	c->data = malloc((size_t)st.st_size + 1);
	if (!c->name || !c->data) {
		vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
		goto out;
	}
	/* Read one byte more than stat said, to notice a file that grew. */
	for (;;) {
		ssize_t n = read(fd, c->data + got, (size_t)st.st_size + 1 - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			vb_error_set(err, VB_E_FAIL, errno, "config %s: %s", path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		got += (size_t)n;
		if (got > (size_t)st.st_size) {
			vb_error_set(err, VB_E_FAIL, 0, "config %s changed while being read", path);
			goto out;
		}
	}
	c->len = got;
	rc = 0;
out:
	close(fd);
	return rc;
}

static int prepare_configs(struct vb_backup *b, struct vb_error *err)
{
	if (b->o.nconfigs > VMA_MAX_CONFIGS - 1)
		return vb_error_set(err, VB_E_USAGE, 0, "at most %u config files",
				    VMA_MAX_CONFIGS - 1);
	b->cfg = calloc(b->o.nconfigs ? b->o.nconfigs : 1, sizeof(*b->cfg));
	if (!b->cfg)
		return vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
	for (size_t i = 0; i < b->o.nconfigs; i++) {
		if (read_config(&b->cfg[i], b->o.configs[i], err) < 0) {
			b->ncfg = i + 1;
			return -1;
		}
		b->ncfg = i + 1;
		for (size_t j = 0; j < i; j++)
			if (strcmp(b->cfg[j].name, b->cfg[i].name) == 0)
				return vb_error_set(err, VB_E_USAGE, 0,
						    "two config files named %s", b->cfg[i].name);
	}
	return 0;
}

static int prepare_drives(struct vb_backup *b, struct vb_error *err)
{
	const struct vb_backup_opts *o = &b->o;

	if (o->ndrives == 0)
		return vb_error_set(err, VB_E_USAGE, 0, "no drive given (--drive NAME=PATH)");
	if (o->ndrives > VMA_MAX_DEVICES)
		return vb_error_set(err, VB_E_USAGE, 0, "%zu drives; an archive holds at most %u",
				    o->ndrives, VMA_MAX_DEVICES);
	for (size_t i = 0; i < o->ndrives; i++) {
		if (vb_drive_name_check(o->drives[i].name, err) < 0)
			return -1;
		for (size_t j = 0; j < i; j++)
			if (strcmp(o->drives[i].name, o->drives[j].name) == 0)
				return vb_error_set(err, VB_E_USAGE, 0, "drive name %s given twice",
						    o->drives[i].name);
	}
	b->src = calloc(o->ndrives, sizeof(*b->src));
	if (!b->src)
		return vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
	for (size_t i = 0; i < o->ndrives; i++) {
		b->src[i] = vb_source_open(o->drives[i].name, o->drives[i].spec, err);
		if (!b->src[i])
			return -1;
		b->nsrc = i + 1;
	}
	return 0;
}

struct vb_backup *vb_backup_prepare(const struct vb_backup_opts *o, struct vb_error *err)
{
	struct vb_backup *b = calloc(1, sizeof(*b));

	if (!b) {
		vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
		return NULL;
	}
	b->o = *o;
	if (prepare_drives(b, err) < 0 || prepare_configs(b, err) < 0) {
		vb_backup_free(b);
		return NULL;
	}
	return b;
}

void vb_backup_free(struct vb_backup *b)
{
	if (!b)
		return;
	for (size_t i = 0; i < b->nsrc; i++)
		vb_source_close(b->src[i]);
	free(b->src);
	for (size_t i = 0; i < b->ncfg; i++) {
		free(b->cfg[i].name);
		free(b->cfg[i].data);
	}
	free(b->cfg);
	free(b);
}

static int write_cb(void *opaque, const void *buf, size_t len)
{
	struct run *r = opaque;

	if (vb_writer_write(r->out, buf, len, r->err) < 0)
		return r->err->sys_errno ? -r->err->sys_errno : -EIO;
	return 0;
}

/* Maps a failure of the VMA writer to err, unless the output already said why. */
static int vma_fail(struct run *r)
{
	return vb_error_set(r->err, VB_E_FAIL, vma_writer_sys_errno(r->vw), "archive: %s",
			    vma_writer_error(r->vw));
}

static int start_archive(struct run *r, int64_t ctime)
{
	struct vb_backup *b = r->b;
	struct vb_meta_drive_in *md;
	char *json = NULL;
	int rc = -1;

	if (RAND_bytes(r->res->uuid, VMA_UUID_LEN) != 1)
		return vb_error_set(r->err, VB_E_FAIL, 0, "no random bytes for the archive uuid");
	md = calloc(b->nsrc, sizeof(*md));
	if (!md)
		return vb_error_set(r->err, VB_E_FAIL, ENOMEM, "out of memory");
	for (size_t i = 0; i < b->nsrc; i++) {
		md[i].name = b->o.drives[i].name;
		md[i].dev_id = (unsigned)i + 1;
		md[i].size = vb_source_size(b->src[i]);
		md[i].clusters = vma_clusters_of(md[i].size);
		md[i].source = vb_source_kind(b->src[i]);
		md[i].path = b->o.drives[i].spec;
	}
	json = vb_meta_build("full", r->res->uuid, ctime, md, b->nsrc, r->err);
	if (!json)
		goto out;
	if (vma_writer_set_uuid(r->vw, r->res->uuid) < 0)
		goto vfail;
	vma_writer_set_ctime(r->vw, ctime);
	for (size_t i = 0; i < b->ncfg; i++)
		if (vma_writer_add_config(r->vw, b->cfg[i].name, b->cfg[i].data, b->cfg[i].len) < 0)
			goto vfail;
	if (vma_writer_add_config(r->vw, VB_META_NAME, json, strlen(json)) < 0)
		goto vfail;
	for (size_t i = 0; i < b->nsrc; i++)
		if (vma_writer_add_device(r->vw, md[i].name, vb_round_sector(md[i].size)) < 0)
			goto vfail;
	if (vma_writer_start(r->vw) < 0)
		goto vfail;
	rc = 0;
	goto out;
vfail:
	vma_fail(r);
out:
	free(json);
	free(md);
	return rc;
}

/* Fills buf with [off, off+len) of the drive: data extents are read, holes
 * are zeroed. Sets bit i of *data_mask when cluster i of the chunk has data. */
static int read_chunk(struct run *r, struct vb_source *s, uint64_t off, size_t len,
		      uint64_t *data_mask)
{
	uint64_t pos = off, end = off + len;

	*data_mask = 0;
	while (pos < end) {
		uint64_t elen;
		bool data;

		if (vb_source_extent(s, pos, end - pos, &elen, &data, r->err) < 0)
			return -1;
		if (data) {
			uint64_t first = (pos - off) / VMA_CLUSTER_SIZE;
			uint64_t last = (pos + elen - 1 - off) / VMA_CLUSTER_SIZE;

			if (vb_source_pread(s, r->buf + (pos - off), elen, pos, r->err) < 0)
				return -1;
			for (uint64_t c = first; c <= last; c++)
				*data_mask |= UINT64_C(1) << c;
			r->res->bytes_read += elen;
		} else {
			memset(r->buf + (pos - off), 0, elen);
		}
		pos += elen;
	}
	return 0;
}

static void report(struct run *r)
{
	r->prog.bytes_read = r->res->bytes_read;
	r->prog.bytes_out = vma_writer_bytes(r->vw);
	r->prog.bytes_zero = r->prog.total_done -
		vma_writer_stored_blocks(r->vw) * (uint64_t)VMA_BLOCK_SIZE;
	if (r->prog.total_done < vma_writer_stored_blocks(r->vw) * (uint64_t)VMA_BLOCK_SIZE)
		r->prog.bytes_zero = 0;
	if (r->b->o.progress)
		r->b->o.progress(r->b->o.progress_opaque, &r->prog);
}

static int run_job(struct run *r, size_t i)
{
	struct vb_source *s = r->b->src[i];
	uint64_t size = vb_source_size(s);
	const volatile sig_atomic_t *cancel = r->b->o.cancel;

	r->prog.drive_index = (unsigned)i;
	r->prog.drive_name = r->b->o.drives[i].name;
	r->prog.drive_size = size;
	r->prog.drive_done = 0;
	for (uint64_t off = 0; off < size; off += CHUNK_SIZE) {
		size_t len = size - off < CHUNK_SIZE ? (size_t)(size - off) : CHUNK_SIZE;
		uint64_t data_mask;

		if (cancel && *cancel)
			return vb_error_set(r->err, VB_E_CANCELED, EINTR,
					    "drive %s: interrupted at offset %llu",
					    r->prog.drive_name, (unsigned long long)off);
		if (read_chunk(r, s, off, len, &data_mask) < 0)
			return -1;
		for (size_t c = 0; c * VMA_CLUSTER_SIZE < len; c++) {
			size_t coff = c * VMA_CLUSTER_SIZE;
			size_t clen = len - coff < VMA_CLUSTER_SIZE ? len - coff : VMA_CLUSTER_SIZE;
			uint32_t num = (uint32_t)((off + coff) / VMA_CLUSTER_SIZE);
			const void *data = (data_mask >> c) & 1 ? r->buf + coff : NULL;

			if (vma_writer_add_cluster(r->vw, (unsigned)i + 1, num, data, clen) < 0)
				return vma_fail(r);
			r->res->clusters++;
		}
		r->prog.drive_done += len;
		r->prog.total_done += len;
		report(r);
	}
	return 0;
}

int vb_backup_run(struct vb_backup *b, struct vb_writer *out, struct vb_backup_result *res,
		  struct vb_error *err)
{
	struct run r = { .b = b, .out = out, .err = err, .res = res };
	double t0 = now_seconds();
	int rc = -1;

	memset(res, 0, sizeof(*res));
	res->drives = (unsigned)b->nsrc;
	for (size_t i = 0; i < b->nsrc; i++)
		res->total_size += vb_source_size(b->src[i]);
	r.prog.drive_count = (unsigned)b->nsrc;
	r.prog.total_size = res->total_size;
	r.buf = aligned_alloc(4096, CHUNK_SIZE);
	r.vw = vma_writer_new(write_cb, &r);
	if (!r.buf || !r.vw) {
		vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
		goto fail;
	}
	if (start_archive(&r, (int64_t)time(NULL)) < 0)
		goto fail;
	for (size_t i = 0; i < b->nsrc; i++)
		if (run_job(&r, i) < 0)
			goto fail;
	if (vma_writer_finish(r.vw) < 0) {
		vma_fail(&r);
		goto fail;
	}
	res->archive_bytes = vma_writer_bytes(r.vw);
	res->bytes_zero = res->total_size -
		vma_writer_stored_blocks(r.vw) * (uint64_t)VMA_BLOCK_SIZE;
	if (res->total_size < vma_writer_stored_blocks(r.vw) * (uint64_t)VMA_BLOCK_SIZE)
		res->bytes_zero = 0;
	r.out = NULL;
	if (vb_writer_close(out, err) < 0)
		goto fail;
	rc = 0;
fail:
	if (r.out)
		vb_writer_discard(r.out);
	vma_writer_free(r.vw);
	free(r.buf);
	res->seconds = now_seconds() - t0;
	return rc;
}
