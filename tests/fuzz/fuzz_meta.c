/* fuzz_meta.c: libFuzzer target for the vmaback.json parser: the input is
 * the blob of an archive header with three devices; it is refused with a
 * message or loaded to metadata that matches the header, and what
 * vb_meta_build writes for that metadata loads back to the same. The
 * header is laid out here (vma's private field offsets). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/archive/archive.h"
#include "vma/vma_int.h"

struct mem {
	const uint8_t *p;
	size_t len, pos;
};

static ssize_t mem_read(void *opaque, void *buf, size_t len)
{
	struct mem *m = opaque;

	if (len > m->len - m->pos)
		len = m->len - m->pos;
	memcpy(buf, m->p + m->pos, len);
	m->pos += len;
	return (ssize_t)len;
}

static const struct {
	const char *name;
	uint64_t size;
} devs[] = { { "a", 196608 }, { "b", 66560 }, { "drive-scsi0", 512 } };
#define NDEVS (sizeof(devs) / sizeof(devs[0]))
static const uint8_t uuid[16] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 };

/* Room for the fixed part and the largest blob area. */
static uint8_t hbuf[2][VMA_HEADER_FIXED_SIZE + 2 * 65536 + 512];

static uint32_t put_blob(uint8_t *blobs, uint32_t *pos, const void *data, size_t len)
{
	uint32_t at = *pos;

	put_le16(blobs + at, (uint16_t)len);
	if (len)
		memcpy(blobs + at + 2, data, len);
	*pos = at + 2 + (uint32_t)len;
	return at;
}

/* A header (vma-format.md section 2) holding blob as vmaback.json and the
 * three devices, opened for reading; built here as the VMA writer lays it
 * out (the writer's 4 MiB extent buffer made each run 20 times slower). */
static struct vma_reader *header_with(const void *blob, size_t len, int slot, struct mem *m)
{
	uint8_t *h = hbuf[slot], *blobs = h + VMA_HEADER_FIXED_SIZE, md5[EVP_MAX_MD_SIZE];
	uint32_t pos = 1, hsize;
	unsigned dl = 0;
	struct vma_reader *r;

	memset(h, 0, VMA_HEADER_FIXED_SIZE);
	memcpy(h + VMA_H_MAGIC, vma_magic, VMA_MAGIC_LEN);
	put_be32(h + VMA_H_VERSION, 1);
	memcpy(h + VMA_H_UUID, uuid, VMA_UUID_LEN);
	put_be64(h + VMA_H_CTIME, 1704067200);
	put_be32(h + VMA_H_CONFIG_NAMES, put_blob(blobs, &pos, VB_META_NAME,
						      sizeof(VB_META_NAME)));
	put_be32(h + VMA_H_CONFIG_DATA, put_blob(blobs, &pos, blob, len));
	for (unsigned i = 1; i <= NDEVS; i++) {
		uint8_t *e = h + VMA_H_DEV_INFO + VMA_H_DEV_ENTRY * i;

		put_be32(e, put_blob(blobs, &pos, devs[i - 1].name,
					 strlen(devs[i - 1].name) + 1));
		put_be64(e + 8, devs[i - 1].size);
	}
	hsize = VMA_HEADER_FIXED_SIZE + (pos + 511) / 512 * 512;
	memset(blobs + pos, 0, hsize - VMA_HEADER_FIXED_SIZE - pos);
	put_be32(h + VMA_H_BLOB_OFFSET, VMA_HEADER_FIXED_SIZE);
	put_be32(h + VMA_H_BLOB_SIZE, pos);
	put_be32(h + VMA_H_HEADER_SIZE, hsize);
	if (EVP_Digest(h, hsize, md5, &dl, EVP_md5(), NULL) != 1)
		abort();
	memcpy(h + VMA_H_MD5, md5, VMA_MD5_LEN);
	*m = (struct mem){ .p = h, .len = hsize };
	r = vma_reader_new(mem_read, m);
	if (!r || vma_reader_read_header(r) < 0)
		abort(); /* the layout above is wrong, not the parser */
	return r;
}

static bool same(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* What a loaded vmaback.json promises. */
static void check(const struct vb_meta *m, struct vma_reader *r)
{
	char u[37];

	vb_uuid_format(uuid, u);
	if (!m->ours || strcmp(m->uuid, u) != 0 || m->ndrives != NDEVS)
		abort();
	if (m->kind != VB_KIND_FULL && m->kind != VB_KIND_INCREMENTAL &&
	    m->kind != VB_KIND_DIFFERENTIAL)
		abort();
	if (m->kind != VB_KIND_FULL && (!m->parent_uuid || !m->set))
		abort();
	for (size_t i = 0; i < m->nmerged; i++)
		if (strlen(m->merged[i]) != 36)
			abort();
	for (size_t i = 0; i < m->ndrives; i++) {
		const struct vb_meta_drive *d = &m->drives[i];
		const struct vma_device_info *di = vma_reader_device_by_id(r, d->dev_id);

		if (!di || strcmp(di->name, d->name) != 0 || d->size == 0 || d->size > di->size ||
		    vb_round_sector(d->size) != di->size || d->clusters > vma_clusters_of(d->size))
			abort();
		for (size_t j = 0; j < i; j++)
			if (m->drives[j].dev_id == d->dev_id)
				abort();
	}
}

/* vb_meta_build of m, loaded again: the same metadata. */
static void round_trip(const struct vb_meta *m)
{
	struct vb_meta_drive_in in[NDEVS];
	struct vb_meta_archive_in a = {
		.kind = m->kind, .set = m->set, .checkpoint = m->checkpoint,
		.parent_checkpoint = m->parent_checkpoint, .parent_uuid = m->parent_uuid,
		.merged = (const char *const *)m->merged, .nmerged = m->nmerged,
		.time_ns = m->time_ns ? m->time_ns : 1,
	};
	struct vb_error err = { 0 };
	struct vb_meta m2;
	struct mem mem;
	struct vma_reader *r;
	char *json;

	for (size_t i = 0; i < m->ndrives; i++)
		in[i] = (struct vb_meta_drive_in){ m->drives[i].name, m->drives[i].dev_id,
						   m->drives[i].size, m->drives[i].clusters,
						   "file", "/x" };
	json = vb_meta_build(&a, uuid, m->ctime, in, m->ndrives, &err);
	if (!json)
		abort();
	r = header_with(json, strlen(json), 1, &mem);
	if (vb_meta_load(&m2, r, "again", &err) < 0)
		abort();
	if (m->kind != m2.kind || !same(m->set, m2.set) ||
	    !same(m->checkpoint, m2.checkpoint) || !same(m->parent_uuid, m2.parent_uuid) ||
	    !same(m->parent_checkpoint, m2.parent_checkpoint) || m2.time_ns != a.time_ns ||
	    m->nmerged != m2.nmerged || m->ndrives != m2.ndrives)
		abort();
	for (size_t i = 0; i < m->nmerged; i++)
		if (strcmp(m->merged[i], m2.merged[i]) != 0)
			abort();
	for (size_t i = 0; i < m->ndrives; i++)
		if (strcmp(m->drives[i].name, m2.drives[i].name) != 0 ||
		    m->drives[i].size != m2.drives[i].size ||
		    m->drives[i].clusters != m2.drives[i].clusters)
			abort();
	vb_meta_clear(&m2);
	vma_reader_free(r);
	free(json);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vb_error err = { 0 };
	struct mem mem;
	struct vma_reader *r;
	struct vb_meta m;

	if (size > 65535)
		return 0; /* the largest blob a header holds */
	r = header_with(data, size, 0, &mem);
	if (vb_meta_load(&m, r, "fuzz", &err) < 0) {
		if (err.msg[0] == '\0' || m.ndrives != 0 || m.kind != VB_KIND_UNKNOWN)
			abort(); /* a refusal says why and keeps nothing */
	} else {
		check(&m, r);
		round_trip(&m);
		vb_meta_clear(&m);
	}
	vma_reader_free(r);
	return 0;
}
