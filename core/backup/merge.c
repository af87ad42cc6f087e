/* merge.c: the synthetic full archive of a chain: the merged stream of the
 * chain written as one sequential full archive, as Proxmox reads it. */
#include <errno.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/backup/backup_int.h"


/* What extract refuses, merge does not write: a name that is not a safe
 * file name, a drive whose disk-NAME.raw would not fit a file name. */
static int check_names(struct vb_chain *c, struct vb_error *err)
{
	struct vb_archive *a = vb_chain_archive(c, 0);
	struct vma_reader *first = vb_archive_vma(a);
	const struct vb_meta *m = vb_chain_meta(c);
	char shown[200];

	for (size_t i = 0; i < m->ndrives; i++) {
		vb_name_printable(m->drives[i].name, shown, sizeof(shown));
		if (!vb_safe_file_name(m->drives[i].name) ||
		    strlen(m->drives[i].name) + strlen("disk-.raw") > VB_FILE_NAME_MAX)
			return vb_error_set(err, VB_E_INVALID, 0,
					    "%s: drive name '%s' cannot be extracted as "
					    "disk-NAME.raw; not merged", vb_archive_path(a), shown);
	}
	for (unsigned i = 0; i < vma_reader_config_count(first); i++) {
		const char *name = vma_reader_config(first, i)->name;

		vb_name_printable(name, shown, sizeof(shown));
		if (!vb_safe_file_name(name))
			return vb_error_set(err, VB_E_INVALID, 0,
					    "%s: config name '%s' is not a safe file name; not merged",
					    vb_archive_path(a), shown);
	}
	return 0;
}

/* The uuids a synthetic full stands for: every archive of the chain, and
 * what each earlier synthetic full stood for. Borrowed strings. */
static const char **merged_uuids(struct vb_chain *c, size_t *n)
{
	size_t total = 0, k = 0;
	const char **v;

	for (size_t i = 0; i < vb_chain_length(c); i++)
		total += 1 + vb_archive_meta(vb_chain_archive(c, i))->nmerged;
	v = calloc(total, sizeof(*v));
	if (!v)
		return NULL;
	for (size_t i = 0; i < vb_chain_length(c); i++) {
		const struct vb_meta *m = vb_archive_meta(vb_chain_archive(c, i));

		for (size_t j = 0; j < m->nmerged; j++)
			v[k++] = m->merged[j];
		v[k++] = m->uuid;
	}
	*n = k;
	return v;
}

/* The header: the drives renumbered 1..n in order (dev_map: old id to new),
 * as a foreign full may leave gaps; vmaback.json with the newest archive's
 * checkpoint and time, so that the chain's later archives follow it. */
static int start(struct vma_writer *w, struct vb_chain *c, uint8_t dev_map[256],
		 struct vb_error *err)
{
	const struct vb_meta *m = vb_chain_meta(c);
	struct vma_reader *first = vb_archive_vma(vb_chain_archive(c, 0));
	struct vb_meta_archive_in ma = { .kind = VB_KIND_FULL, .set = m->set,
					 .checkpoint = m->checkpoint, .time_ns = m->time_ns };
	struct vb_meta_drive_in *md = calloc(m->ndrives + 1, sizeof(*md));
	const char **merged = m->ours ? merged_uuids(c, &ma.nmerged) : NULL;
	uint8_t uuid[VMA_UUID_LEN];
	char *json = NULL;
	int rc = -1;

	ma.merged = merged;
	if (!md || (m->ours && !merged) || RAND_bytes(uuid, VMA_UUID_LEN) != 1) {
		vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < m->ndrives; i++) {
		md[i].name = m->drives[i].name;
		md[i].dev_id = (unsigned)i + 1;
		md[i].size = m->drives[i].size;
		md[i].clusters = vma_clusters_of(m->drives[i].size);
		md[i].source = "merge";
		md[i].path = "";
		dev_map[m->drives[i].dev_id] = (uint8_t)(i + 1);
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
	for (size_t i = 0; i < m->ndrives; i++) {
		int id = vma_writer_add_device(w, m->drives[i].name,
					       vb_round_sector(m->drives[i].size));

		if (id < 0)
			goto vfail;
		if (id != (int)i + 1) {
			vb_error_set(err, VB_E_FAIL, 0, "archive: drive %s got device id %d, not %zu",
				     m->drives[i].name, id, i + 1);
			goto out;
		}
	}
	if (vma_writer_start(w) < 0)
		goto vfail;
	rc = 0;
	goto out;
vfail:
	vb_error_vma(err, w);
out:
	free(json);
	free(md);
	free(merged);
	return rc;
}

int vb_merge(const char *const *paths, size_t n, struct vb_writer *sink, bool compress,
	     int zstd_level, int zstd_threads, struct vb_error *err)
{
	struct vb_vma_out m = { .err = err };
	struct vb_chain *c = NULL;
	struct vma_writer *w = NULL;
	struct vma_cluster cl;
	uint8_t dev_map[256] = { 0 };
	int rc = -1, r;

	m.out = vb_output_stack(sink, &(struct vb_output_opts){
		.compress = compress, .zstd_level = zstd_level, .zstd_threads = zstd_threads },
		err);
	if (!m.out)
		goto out;
	c = vb_chain_open(paths, n, err);
	if (!c || !(w = vb_vma_out_writer(&m, err)))
		goto out;
	if (check_names(c, err) < 0 || start(w, c, dev_map, err) < 0)
		goto out;
	while ((r = vb_chain_next(c, &cl, err)) == 1) {
		if (vma_writer_add_cluster(w, dev_map[cl.dev_id], cl.cluster_num,
					   cl.mask ? cl.data : NULL, VMA_CLUSTER_SIZE) < 0) {
			vb_error_vma(err, w);
			goto out;
		}
	}
	if (r < 0)
		goto out;
	if (vma_writer_finish(w) < 0) {
		vb_error_vma(err, w);
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
