/* merge.c: the synthetic full archive of a chain: the merged stream of the
 * chain written as one sequential full archive, as Proxmox reads it. */
#include <errno.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/backup/backup_int.h"

struct mctx {
	struct vb_writer *out;
	struct vb_error *err;
};

static int write_cb(void *opaque, const void *buf, size_t len)
{
	struct mctx *m = opaque;

	if (vb_writer_write(m->out, buf, len, m->err) < 0)
		return m->err->sys_errno ? -m->err->sys_errno : -EIO;
	return 0;
}

static int start(struct vma_writer *w, struct vb_chain *c, struct vb_error *err)
{
	const struct vb_meta *m = vb_chain_meta(c);
	struct vma_reader *first = vb_archive_vma(vb_chain_archive(c, 0));
	struct vb_meta_archive_in ma = { .kind = "full", .set = m->set,
					 .checkpoint = m->checkpoint };
	struct vb_meta_drive_in *md = calloc(m->ndrives + 1, sizeof(*md));
	uint8_t uuid[VMA_UUID_LEN];
	char *json = NULL;
	int rc = -1;

	if (!md || RAND_bytes(uuid, VMA_UUID_LEN) != 1) {
		vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < m->ndrives; i++) {
		md[i].name = m->drives[i].name;
		md[i].dev_id = m->drives[i].dev_id;
		md[i].size = m->drives[i].size;
		md[i].clusters = vma_clusters_of(m->drives[i].size);
		md[i].source = "merge";
		md[i].path = "";
	}
	json = vb_meta_build(&ma, uuid, m->ctime, md, m->ndrives, err);
	if (!json || vma_writer_set_uuid(w, uuid) < 0)
		goto out;
	vma_writer_set_ctime(w, m->ctime);
	/* The user's config blobs as the full archive carried them. */
	for (unsigned i = 0; i < vma_reader_config_count(first); i++) {
		const struct vma_config_info *ci = vma_reader_config(first, i);

		if (strcmp(ci->name, VB_META_NAME) != 0 &&
		    vma_writer_add_config(w, ci->name, ci->data, ci->len) < 0)
			goto vfail;
	}
	if (vma_writer_add_config(w, VB_META_NAME, json, strlen(json)) < 0)
		goto vfail;
	for (size_t i = 0; i < m->ndrives; i++)
		if (vma_writer_add_device(w, m->drives[i].name, vb_round_sector(m->drives[i].size)) != (int)m->drives[i].dev_id)
			goto vfail;
	if (vma_writer_start(w) < 0)
		goto vfail;
	rc = 0;
	goto out;
vfail:
	vb_error_set(err, VB_E_FAIL, vma_writer_sys_errno(w), "archive: %s", vma_writer_error(w));
out:
	free(json);
	free(md);
	return rc;
}

int vb_merge(const char *const *paths, size_t n, struct vb_writer *sink, bool compress,
	     int zstd_level, int zstd_threads, struct vb_error *err)
{
	struct mctx m = { .out = sink, .err = err };
	struct vb_chain *c = NULL;
	struct vma_writer *w = NULL;
	struct vma_cluster cl;
	int rc = -1, r;

	if (compress) {
		m.out = vb_zstd_writer_new(sink, zstd_level, zstd_threads, err);
		if (!m.out) {
			m.out = sink;
			goto out;
		}
	}
	c = vb_chain_open(paths, n, err);
	w = vma_writer_new(write_cb, &m);
	if (!c || !w) {
		if (!w)
			vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
		goto out;
	}
	if (start(w, c, err) < 0)
		goto out;
	while ((r = vb_chain_next(c, &cl, err)) == 1) {
		if (vma_writer_add_cluster(w, cl.dev_id, cl.cluster_num,
					   cl.mask ? cl.data : NULL, VMA_CLUSTER_SIZE) < 0) {
			vb_error_set(err, VB_E_FAIL, vma_writer_sys_errno(w), "archive: %s",
				     vma_writer_error(w));
			goto out;
		}
	}
	if (r < 0)
		goto out;
	if (vma_writer_finish(w) < 0) {
		vb_error_set(err, VB_E_FAIL, vma_writer_sys_errno(w), "archive: %s",
			     vma_writer_error(w));
		goto out;
	}
	r = vb_writer_close(m.out, err);
	m.out = NULL;
	rc = r;
out:
	if (m.out)
		vb_writer_discard(m.out);
	vma_writer_free(w);
	vb_chain_free(c);
	return rc;
}
