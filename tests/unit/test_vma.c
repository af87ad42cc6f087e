/* test_vma.c: unit tests of the vma/ library: writer/reader round trips over
 * a pipe-like chunked reader, limits, and one test per reader check. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "vma/vma.h"
#include "vma/vma_int.h"

/* ------------------------------------------------------------ helpers */

struct membuf {
	uint8_t *data;
	size_t len, cap;
	unsigned calls;
	int fail_at_call;   /* 1-based call that fails with -fail_errno; 0 never */
	int fail_errno;
};

static int mem_write(void *opaque, const void *buf, size_t len)
{
	struct membuf *m = opaque;

	m->calls++;
	if (m->fail_at_call && (int)m->calls >= m->fail_at_call)
		return -m->fail_errno;
	if (m->len + len > m->cap) {
		size_t cap = (m->len + len) * 2;

		m->data = realloc(m->data, cap);
		assert_non_null(m->data);
		m->cap = cap;
	}
	memcpy(m->data + m->len, buf, len);
	m->len += len;
	return 0;
}

/* A pipe: returns random short chunks, an error at a given offset. */
struct memsrc {
	const uint8_t *data;
	size_t len, pos;
	uint64_t rnd;
	size_t err_at;      /* return -err_errno once pos reaches this; SIZE_MAX never */
	int err_errno;
};

static uint64_t xrand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static ssize_t chunk_read(void *opaque, void *buf, size_t len)
{
	struct memsrc *s = opaque;
	size_t n = 1 + xrand(&s->rnd) % 9000;

	if (s->pos >= s->err_at)
		return -s->err_errno;
	if (n > len)
		n = len;
	if (n > s->len - s->pos)
		n = s->len - s->pos;
	if (s->err_at != SIZE_MAX && n > s->err_at - s->pos)
		n = s->err_at - s->pos;
	memcpy(buf, s->data + s->pos, n);
	s->pos += n;
	return (ssize_t)n;
}

static void src_init(struct memsrc *s, const uint8_t *data, size_t len)
{
	memset(s, 0, sizeof(*s));
	s->data = data;
	s->len = len;
	s->rnd = 0x9e3779b97f4a7c15ull ^ len;
	s->err_at = SIZE_MAX;
}

struct dev {
	const char *name;
	uint64_t size;
	uint8_t *img;       /* whole clusters; bytes past size are garbage */
};

/* Random data with zero clusters, zero blocks and garbage past the end. */
static void dev_fill(struct dev *d, uint64_t seed)
{
	uint64_t n = vma_clusters_of(d->size), s = seed | 1, c, i;

	d->img = malloc(n * VMA_CLUSTER_SIZE);
	assert_non_null(d->img);
	for (c = 0; c < n; c++) {
		uint8_t *p = d->img + c * VMA_CLUSTER_SIZE;
		unsigned kind = (unsigned)(xrand(&s) % 6);

		for (i = 0; i < VMA_BLOCKS_PER_CLUSTER; i++) {
			uint8_t *b = p + i * VMA_BLOCK_SIZE;
			size_t k;

			if (kind < 2 || (kind > 3 && xrand(&s) % 3 == 0)) {
				memset(b, 0, VMA_BLOCK_SIZE);
				continue;
			}
			for (k = 0; k < VMA_BLOCK_SIZE; k += 8) {
				uint64_t v = xrand(&s);

				memcpy(b + k, &v, 8);
			}
		}
	}
	for (i = d->size; i < n * VMA_CLUSTER_SIZE; i++)
		d->img[i] = 0xa5;
}

enum order { SEQ, SHUFFLE, INTERLEAVE };

struct job {
	unsigned dev;
	uint32_t cluster;
};

static struct job *make_jobs(struct dev *devs, unsigned ndev, enum order o, size_t *njobs)
{
	size_t total = 0, k = 0, i;
	uint64_t s = 12345, c;
	struct job *j;
	unsigned d;

	for (d = 0; d < ndev; d++)
		total += vma_clusters_of(devs[d].size);
	j = calloc(total ? total : 1, sizeof(*j));
	assert_non_null(j);
	if (o == INTERLEAVE) {
		for (c = 0; k < total; c++)
			for (d = 0; d < ndev; d++)
				if (c < vma_clusters_of(devs[d].size))
					j[k++] = (struct job){ d + 1, (uint32_t)c };
	} else {
		for (d = 0; d < ndev; d++)
			for (c = 0; c < vma_clusters_of(devs[d].size); c++)
				j[k++] = (struct job){ d + 1, (uint32_t)c };
	}
	if (o == SHUFFLE)
		for (i = total; i > 1; i--) {
			size_t r = xrand(&s) % i;
			struct job t = j[i - 1];

			j[i - 1] = j[r];
			j[r] = t;
		}
	*njobs = total;
	return j;
}

static void write_archive(struct dev *devs, unsigned ndev, enum order o, unsigned per_extent,
			  struct membuf *out)
{
	struct vma_writer *w = vma_writer_new(mem_write, out);
	size_t njobs, i;
	struct job *jobs;
	unsigned d;

	assert_non_null(w);
	assert_int_equal(vma_writer_set_extent_clusters(w, per_extent), 0);
	assert_int_equal(vma_writer_add_config(w, "qemu-server.conf", "memory: 512\n", 12), 0);
	for (d = 0; d < ndev; d++)
		assert_int_equal(vma_writer_add_device(w, devs[d].name, devs[d].size), (int)d + 1);
	assert_int_equal(vma_writer_start(w), 0);
	jobs = make_jobs(devs, ndev, o, &njobs);
	for (i = 0; i < njobs; i++) {
		const uint8_t *p = devs[jobs[i].dev - 1].img + (size_t)jobs[i].cluster * VMA_CLUSTER_SIZE;

		/* zero clusters go in as NULL every other time */
		if (i % 2 && vma_is_zero(p, VMA_BLOCK_SIZE) &&
		    memcmp(p, p + VMA_BLOCK_SIZE, VMA_CLUSTER_SIZE - VMA_BLOCK_SIZE) == 0)
			p = NULL;
		assert_int_equal(vma_writer_add_cluster(w, jobs[i].dev, jobs[i].cluster, p,
							VMA_CLUSTER_SIZE), 0);
	}
	assert_int_equal(vma_writer_finish(w), 0);
	assert_int_equal(vma_writer_bytes(w), out->len);
	/* the header, then one call per extent */
	assert_int_equal(out->calls, 1 + (njobs ? (njobs + per_extent - 1) / per_extent : 1));
	free(jobs);
	vma_writer_free(w);
}

/* What the writer must store: the blocks starting inside the device that
 * hold a non-zero byte before the device end. */
static uint16_t expected_mask(const struct dev *d, uint32_t c)
{
	uint16_t mask = 0;
	unsigned i;

	for (i = 0; i < VMA_BLOCKS_PER_CLUSTER; i++) {
		uint64_t start = (uint64_t)c * VMA_CLUSTER_SIZE + i * VMA_BLOCK_SIZE;
		uint64_t n = d->size - start < VMA_BLOCK_SIZE ? d->size - start : VMA_BLOCK_SIZE;

		if (start < d->size && !vma_is_zero(d->img + start, (size_t)n))
			mask |= (uint16_t)(1u << i);
	}
	return mask;
}

/* Decodes buf through the chunked reader and compares with the devices. */
static void check_archive(const uint8_t *buf, size_t len, struct dev *devs, unsigned ndev)
{
	struct memsrc src;
	struct vma_reader *r;
	struct vma_cluster c;
	uint8_t **out = calloc(ndev + 1, sizeof(*out));
	unsigned d;
	int rc;

	src_init(&src, buf, len);
	r = vma_reader_new(chunk_read, &src);
	assert_non_null(r);
	assert_int_equal(vma_reader_read_header(r), 0);
	assert_int_equal(vma_reader_device_count(r), ndev);
	for (d = 0; d < ndev; d++) {
		const struct vma_device_info *di = vma_reader_device(r, d);

		assert_int_equal(di->dev_id, d + 1);
		assert_string_equal(di->name, devs[d].name);
		assert_int_equal(di->size, devs[d].size);
		out[d] = calloc(vma_clusters_of(devs[d].size), VMA_CLUSTER_SIZE);
		assert_non_null(out[d]);
	}
	while ((rc = vma_reader_next_cluster(r, &c)) == 1) {
		const struct dev *dv;
		uint64_t start, end, i;

		assert_true(c.dev_id >= 1 && c.dev_id <= ndev);
		dv = &devs[c.dev_id - 1];
		start = (uint64_t)c.cluster_num * VMA_CLUSTER_SIZE;
		assert_true(start < dv->size);
		assert_int_equal(c.mask, expected_mask(dv, c.cluster_num));
		end = dv->size - start < VMA_CLUSTER_SIZE ? dv->size - start : VMA_CLUSTER_SIZE;
		for (i = end; i < VMA_CLUSTER_SIZE; i++)
			assert_int_equal(c.data[i], 0); /* nothing past the end leaks */
		for (i = 0; i < VMA_BLOCKS_PER_CLUSTER; i++)
			if (!(c.mask & (1u << i)))
				assert_true(vma_is_zero(c.data + i * VMA_BLOCK_SIZE, VMA_BLOCK_SIZE));
		memcpy(out[c.dev_id - 1] + start, c.data, VMA_CLUSTER_SIZE);
	}
	assert_int_equal(rc, 0);
	assert_int_equal(vma_reader_next_cluster(r, &c), 0);
	assert_int_equal(vma_reader_check_complete(r, 0), 0);
	assert_int_equal(vma_reader_offset(r), len);
	for (d = 0; d < ndev; d++) {
		assert_int_equal(vma_reader_clusters_seen(r, d + 1), vma_clusters_of(devs[d].size));
		assert_memory_equal(out[d], devs[d].img, (size_t)devs[d].size);
		free(out[d]);
	}
	free(out);
	vma_reader_free(r);
}

static void free_devs(struct dev *devs, unsigned n)
{
	unsigned d;

	for (d = 0; d < n; d++)
		free(devs[d].img);
}

/* ------------------------------------------------------------ round trips */

static void roundtrip(struct dev *devs, unsigned ndev, enum order o, unsigned per_extent)
{
	struct membuf m = { 0 };

	write_archive(devs, ndev, o, per_extent, &m);
	check_archive(m.data, m.len, devs, ndev);
	free(m.data);
}

static void test_roundtrip_devices(void **state)
{
	struct dev devs[] = { { "drive-scsi0", 40 * VMA_CLUSTER_SIZE, NULL },
			      { "drive-virtio1", 7 * VMA_CLUSTER_SIZE + 1024, NULL },
			      { "drive-efidisk0", 528 * 1024, NULL } };
	unsigned d;

	for (d = 0; d < 3; d++)
		dev_fill(&devs[d], 100 + d);
	roundtrip(devs, 3, SEQ, 59);
	roundtrip(devs, 3, SHUFFLE, 58);
	roundtrip(devs, 3, INTERLEAVE, 58);
	roundtrip(devs, 3, SHUFFLE, 1);
	free_devs(devs, 3);
}

static void test_odd_sizes(void **state)
{
	static const uint64_t sizes[] = { 1, 511, 512, 4095, 4097, 65535, 65536, 65537,
					  130 * (uint64_t)VMA_CLUSTER_SIZE,
					  130 * (uint64_t)VMA_CLUSTER_SIZE + 4097 };
	unsigned i;

	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		struct dev d = { "drive-scsi0", sizes[i], NULL };
		struct membuf m = { 0 };
		size_t k;

		dev_fill(&d, 7 + i);
		/* the first block is never zero here, so at least one is stored */
		for (k = 0; k < (d.size < 16 ? d.size : 16); k++)
			d.img[k] = (uint8_t)(k + 1);
		write_archive(&d, 1, SEQ, 59, &m);
		check_archive(m.data, m.len, &d, 1);
		/* nothing of the garbage after the end made it into the archive */
		if (d.size % VMA_CLUSTER_SIZE) {
			static const uint8_t junk[8] = { 0xa5, 0xa5, 0xa5, 0xa5,
							 0xa5, 0xa5, 0xa5, 0xa5 };

			assert_null(memmem(m.data, m.len, junk, sizeof(junk)));
		}
		free(m.data);
		free(d.img);
	}
}

/* A 4097-byte device: block 1 straddles the end and is stored with its tail
 * zeroed; blocks 2..15 are never stored. */
static void test_straddle_layout(void **state)
{
	struct dev d = { "drive-scsi0", 4097, NULL };
	struct membuf m = { 0 };
	uint32_t hs;
	uint8_t *e;

	d.img = malloc(VMA_CLUSTER_SIZE);
	memset(d.img, 0x11, VMA_CLUSTER_SIZE);
	write_archive(&d, 1, SEQ, 59, &m);
	hs = get_be32(m.data + VMA_H_HEADER_SIZE);
	e = m.data + hs;
	assert_int_equal(get_be16(e + VMA_E_BLOCK_COUNT), 2);
	assert_int_equal(get_be64(e + VMA_E_BLOCKINFO), vma_blockinfo(0x0003, 1, 0));
	assert_int_equal(m.len, hs + 512 + 2 * 4096);
	assert_int_equal(e[512 + 4096], 0x11);
	assert_true(vma_is_zero(e + 512 + 4097, 4095));
	check_archive(m.data, m.len, &d, 1);
	/* a foreign archive with junk past the end: the reader zeroes it
	 * (found by fuzz_vma_reader) */
	e[512 + 4096 + 2000] = 0x77;
	e[512 + 4096 + 4095] = 0x77;
	check_archive(m.data, m.len, &d, 1);
	free(m.data);
	free(d.img);
}

static void test_header_layout(void **state)
{
	struct membuf m = { 0 };
	struct vma_writer *w = vma_writer_new(mem_write, &m);
	static const uint8_t uuid[16] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 };
	uint8_t got[16], *b;

	assert_int_equal(vma_writer_set_uuid(w, uuid), 0);
	vma_writer_set_ctime(w, 1700000000);
	assert_int_equal(vma_writer_add_config(w, "a.conf", "xy", 2), 0);
	assert_int_equal(vma_writer_add_device(w, "drive-scsi0", 512), 1);
	assert_int_equal(vma_writer_add_device(w, "drive-scsi1", 1024), 2);
	assert_int_equal(vma_writer_start(w), 0);
	assert_int_equal(m.calls, 1);
	assert_int_equal(m.len, 12800);
	assert_memory_equal(m.data, "VMA\0\0\0\0\1", 8);
	assert_memory_equal(m.data + 8, uuid, 16);
	assert_int_equal(get_be64(m.data + VMA_H_CTIME), 1700000000);
	assert_int_equal(get_be32(m.data + VMA_H_BLOB_OFFSET), 12288);
	/* pad, "a.conf\0" (2+7), "xy" (2+2), two names (2+12 each) */
	assert_int_equal(get_be32(m.data + VMA_H_BLOB_SIZE), 1 + 9 + 4 + 14 + 14);
	assert_int_equal(get_be32(m.data + VMA_H_HEADER_SIZE), 12800);
	assert_int_equal(get_be32(m.data + VMA_H_CONFIG_NAMES), 1);
	assert_int_equal(get_be32(m.data + VMA_H_CONFIG_DATA), 10);
	assert_int_equal(get_be32(m.data + 4096 + 32), 14);
	assert_int_equal(get_be64(m.data + 4096 + 32 + 8), 512);
	assert_int_equal(get_be32(m.data + 4096 + 64), 28);
	b = m.data + 12288;
	assert_int_equal(b[0], 0);
	assert_memory_equal(b + 1, "\x07\x00" "a.conf\0" "\x02\x00xy", 13);
	assert_memory_equal(b + 14, "\x0c\x00" "drive-scsi0\0", 14);
	vma_writer_uuid(w, got);
	assert_memory_equal(got, uuid, 16);
	assert_int_equal(vma_writer_add_cluster(w, 1, 0, "z", 1), 0);
	assert_int_equal(vma_writer_add_cluster(w, 2, 0, NULL, 0), 0);
	assert_int_equal(vma_writer_finish(w), 0);
	assert_int_equal(m.calls, 2); /* one extent, one call */
	assert_int_equal(m.len, 12800 + 512 + 4096);
	assert_int_equal(vma_writer_bytes(w), m.len);
	vma_writer_free(w);
	free(m.data);
}

static void test_empty_archive(void **state)
{
	struct membuf m = { 0 };
	struct vma_writer *w = vma_writer_new(mem_write, &m);
	struct vma_reader *r;
	struct vma_cluster c;
	struct memsrc src;
	uint8_t u1[16], u2[16];

	vma_writer_set_ctime(w, -5);
	assert_int_equal(vma_writer_start(w), 0);
	assert_int_equal(vma_writer_finish(w), 0);
	assert_int_equal(m.len, 12800 + 512);
	src_init(&src, m.data, m.len);
	r = vma_reader_new(chunk_read, &src);
	assert_int_equal(vma_reader_read_header(r), 0);
	assert_int_equal(vma_reader_device_count(r), 0);
	assert_int_equal(vma_reader_ctime(r), -5);
	assert_int_equal(vma_reader_header_size(r), 12800);
	assert_int_equal(vma_reader_next_cluster(r, &c), 0);
	assert_int_equal(vma_reader_check_complete(r, 0), 0);
	vma_writer_uuid(w, u1);
	vma_reader_uuid(r, u2);
	assert_memory_equal(u1, u2, 16);
	assert_int_equal(vma_reader_offset(r), m.len);
	vma_reader_free(r);
	vma_writer_free(w);
	free(m.data);
}

static void test_limits_devices(void **state)
{
	struct membuf m = { 0 };
	struct vma_writer *w = vma_writer_new(mem_write, &m);
	struct vma_reader *r;
	struct vma_cluster c;
	struct memsrc src;
	char name[32];
	unsigned i, n = 0;

	for (i = 1; i <= 254; i++) {
		snprintf(name, sizeof(name), "drive-scsi%u", i);
		assert_int_equal(vma_writer_add_device(w, name, 512), (int)i);
	}
	assert_int_equal(vma_writer_add_device(w, "drive-extra", 512), -1);
	assert_int_equal(vma_writer_errcode(w), VMA_ERR_LIMIT);
	assert_int_equal(vma_writer_start(w), 0);
	for (i = 1; i <= 254; i++)
		assert_int_equal(vma_writer_add_cluster(w, i, 0, "x", 1), 0);
	assert_int_equal(vma_writer_finish(w), 0);
	src_init(&src, m.data, m.len);
	r = vma_reader_new(chunk_read, &src);
	assert_int_equal(vma_reader_read_header(r), 0);
	assert_int_equal(vma_reader_device_count(r), 254);
	assert_string_equal(vma_reader_device_by_id(r, 254)->name, "drive-scsi254");
	assert_null(vma_reader_device_by_id(r, 255));
	while (vma_reader_next_cluster(r, &c) == 1)
		n++;
	assert_int_equal(n, 254);
	assert_int_equal(vma_reader_check_complete(r, 0), 0);
	vma_reader_free(r);
	vma_writer_free(w);
	free(m.data);
}

static void test_limits_configs_blobs(void **state)
{
	struct membuf m = { 0 };
	struct vma_writer *w = vma_writer_new(mem_write, &m);
	uint8_t *big = calloc(1, 65536);
	struct vma_reader *r;
	struct memsrc src;
	char name[32];
	unsigned i;

	memset(big, 'b', 65536);
	for (i = 0; i < 255; i++) {
		snprintf(name, sizeof(name), "c%u.conf", i);
		assert_int_equal(vma_writer_add_config(w, name, "v", 1), 0);
	}
	assert_int_equal(vma_writer_add_config(w, "big.conf", big, 65536), -1);
	assert_int_equal(vma_writer_errcode(w), VMA_ERR_LIMIT);
	assert_int_equal(vma_writer_add_config(w, "big.conf", big, 65535), 0); /* 256th */
	assert_int_equal(vma_writer_add_config(w, "one-more.conf", "v", 1), -1);
	assert_int_equal(vma_writer_errcode(w), VMA_ERR_LIMIT);
	assert_int_equal(vma_writer_add_device(w, "drive-scsi0", 4096), 1);
	assert_int_equal(vma_writer_start(w), 0);
	assert_int_equal(vma_writer_finish(w), 0);
	src_init(&src, m.data, m.len);
	r = vma_reader_new(chunk_read, &src);
	assert_int_equal(vma_reader_read_header(r), 0);
	assert_int_equal(vma_reader_config_count(r), 256);
	assert_int_equal(vma_reader_config_by_name(r, "big.conf")->len, 65535);
	assert_memory_equal(vma_reader_config_by_name(r, "big.conf")->data, big, 65535);
	assert_string_equal(vma_reader_config(r, 7)->name, "c7.conf");
	vma_reader_free(r);
	vma_writer_free(w);
	free(m.data);

	/* a header past 4 MiB is refused */
	m = (struct membuf){ 0 };
	w = vma_writer_new(mem_write, &m);
	for (i = 0; i < 64; i++) {
		snprintf(name, sizeof(name), "c%u.conf", i);
		if (vma_writer_add_config(w, name, big, 65535) < 0)
			break;
	}
	assert_int_equal(i, 63);
	assert_int_equal(vma_writer_errcode(w), VMA_ERR_LIMIT);
	assert_int_equal(vma_writer_start(w), 0);
	assert_true(m.len <= VMA_MAX_HEADER_SIZE);
	vma_writer_free(w);
	free(m.data);
	free(big);
}

static void test_writer_usage(void **state)
{
	struct membuf m = { 0 };
	struct vma_writer *w = vma_writer_new(mem_write, &m);
	uint8_t blk[VMA_BLOCK_SIZE] = { 1 };
	char longname[65536];

	memset(longname, 'n', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = 0;
	assert_int_equal(vma_writer_add_device(w, "", 512), -1);
	assert_int_equal(vma_writer_errcode(w), VMA_ERR_USAGE);
	assert_int_equal(vma_writer_add_device(w, longname, 512), -1);
	assert_int_equal(vma_writer_errcode(w), VMA_ERR_LIMIT);
	longname[65534] = 0;
	assert_int_equal(vma_writer_add_device(w, longname, 512), 1);
	assert_int_equal(vma_writer_add_device(w, "vmstate", 512), -1);
	assert_int_equal(vma_writer_add_device(w, "d0", 0), -1);
	assert_int_equal(vma_writer_errcode(w), VMA_ERR_LIMIT);
	assert_int_equal(vma_writer_add_device(w, "d0", VMA_MAX_DEVICE_SIZE + 1), -1);
	assert_int_equal(vma_writer_add_device(w, "d1", VMA_MAX_DEVICE_SIZE), 2);
	assert_int_equal(vma_writer_add_device(w, "d2", 10000), 3);
	assert_int_equal(vma_writer_add_device(w, "d2", 10000), -1);
	assert_int_equal(vma_writer_add_config(w, "", "x", 1), -1);
	assert_int_equal(vma_writer_set_extent_clusters(w, 0), -1);
	assert_int_equal(vma_writer_set_extent_clusters(w, 60), -1);
	assert_int_equal(vma_writer_add_cluster(w, 1, 0, NULL, 0), -1); /* not started */
	assert_int_equal(vma_writer_errcode(w), VMA_ERR_USAGE);
	assert_int_equal(vma_writer_start(w), 0);
	assert_int_equal(vma_writer_add_device(w, "late", 512), -1);
	assert_int_equal(vma_writer_add_cluster(w, 0, 0, NULL, 0), -1);
	assert_int_equal(vma_writer_add_cluster(w, 4, 0, NULL, 0), -1);
	assert_int_equal(vma_writer_add_cluster(w, 3, 1, NULL, 0), -1); /* past the end */
	assert_int_equal(vma_writer_add_cluster(w, 3, 0, blk, 65537), -1);
	assert_int_equal(vma_writer_add_cluster(w, 2, UINT32_MAX, blk, sizeof(blk)), 0);
	assert_int_equal(vma_writer_add_cluster_masked(w, 3, 0, 0x0008, blk), -1);
	assert_int_equal(vma_writer_errcode(w), VMA_ERR_USAGE);
	assert_int_equal(vma_writer_add_cluster_masked(w, 3, 0, 0x0004, blk), 0);
	assert_int_equal(vma_writer_finish(w), 0);
	assert_int_equal(vma_writer_finish(w), -1);
	vma_writer_free(w);
	vma_writer_free(NULL);
	vma_reader_free(NULL);
	free(m.data);
}

static void test_write_failure(void **state)
{
	struct membuf m = { .fail_at_call = 1, .fail_errno = ENOSPC };
	struct vma_writer *w = vma_writer_new(mem_write, &m);

	assert_int_equal(vma_writer_add_device(w, "drive-scsi0", 65536 * 3), 1);
	assert_int_equal(vma_writer_start(w), -1);
	assert_int_equal(vma_writer_errcode(w), VMA_ERR_IO);
	assert_int_equal(vma_writer_sys_errno(w), ENOSPC);
	assert_non_null(strstr(vma_writer_error(w), "header"));
	assert_int_equal(vma_writer_add_cluster(w, 1, 0, NULL, 0), -1);
	assert_int_equal(vma_writer_errcode(w), VMA_ERR_IO); /* the first error stays */
	assert_int_equal(vma_writer_add_cluster(w, 1, 0, NULL, 70000), -1);
	assert_int_equal(vma_writer_add_cluster_masked(w, 1, 0, 1, NULL), -1);
	assert_int_equal(vma_writer_finish(w), -1);
	assert_int_equal(vma_writer_errcode(w), VMA_ERR_IO);
	assert_int_equal(vma_writer_sys_errno(w), ENOSPC);
	vma_writer_free(w);

	m = (struct membuf){ .fail_at_call = 2, .fail_errno = EPIPE };
	w = vma_writer_new(mem_write, &m);
	assert_int_equal(vma_writer_set_extent_clusters(w, 2), 0);
	assert_int_equal(vma_writer_add_device(w, "drive-scsi0", 65536 * 3), 1);
	assert_int_equal(vma_writer_start(w), 0);
	assert_int_equal(vma_writer_add_cluster(w, 1, 0, NULL, 0), 0);
	assert_int_equal(vma_writer_add_cluster(w, 1, 1, NULL, 0), -1);
	assert_int_equal(vma_writer_errcode(w), VMA_ERR_IO);
	assert_int_equal(vma_writer_sys_errno(w), EPIPE);
	assert_int_equal(vma_writer_finish(w), -1);
	vma_writer_free(w);
	free(m.data);
}

/* Copies archive A into B through add_cluster_masked; B decodes the same. */
static void test_masked_roundtrip(void **state)
{
	struct dev devs[] = { { "drive-scsi0", 20 * VMA_CLUSTER_SIZE + 12345, NULL },
			      { "drive-scsi1", 3 * VMA_CLUSTER_SIZE, NULL } };
	struct membuf a = { 0 }, b = { 0 };
	struct vma_writer *w = vma_writer_new(mem_write, &b);
	uint8_t *packed = malloc(VMA_CLUSTER_SIZE);
	struct vma_reader *r;
	struct vma_cluster c;
	struct memsrc src;

	dev_fill(&devs[0], 5);
	dev_fill(&devs[1], 6);
	write_archive(devs, 2, SHUFFLE, 58, &a);
	src_init(&src, a.data, a.len);
	r = vma_reader_new(chunk_read, &src);
	assert_int_equal(vma_reader_read_header(r), 0);
	assert_int_equal(vma_writer_add_device(w, "drive-scsi0", devs[0].size), 1);
	assert_int_equal(vma_writer_add_device(w, "drive-scsi1", devs[1].size), 2);
	assert_int_equal(vma_writer_add_config(w, "qemu-server.conf", "memory: 512\n", 12), 0);
	assert_int_equal(vma_writer_set_extent_clusters(w, 58), 0);
	assert_int_equal(vma_writer_start(w), 0);
	while (vma_reader_next_cluster(r, &c) == 1) {
		unsigned i, n = 0;

		for (i = 0; i < 16; i++)
			if (c.mask & (1u << i))
				memcpy(packed + VMA_BLOCK_SIZE * n++, c.data + VMA_BLOCK_SIZE * i,
				       VMA_BLOCK_SIZE);
		assert_int_equal(vma_writer_add_cluster_masked(w, c.dev_id, c.cluster_num,
							       c.mask, packed), 0);
	}
	assert_int_equal(vma_reader_errcode(r), VMA_OK);
	assert_int_equal(vma_writer_finish(w), 0);
	/* same header size, blocks and extents */
	assert_int_equal(b.len, a.len);
	check_archive(b.data, b.len, devs, 2);
	vma_reader_free(r);
	vma_writer_free(w);
	free(packed);
	free(a.data);
	free(b.data);
	free_devs(devs, 2);
}


/* ------------------------------------------------------------ reader checks
 * A good base archive is patched so that exactly the intended check trips;
 * MD5s are recomputed where the patch would otherwise trip them first. */

#define BASE_HS 12800u
#define BASE_EXT BASE_HS

/* drive-scsi0: 3 clusters (full, zero, blocks 0-7), drive-scsi1: 1 cluster
 * (block 0). Slots in that order; block_count 25. */
static void make_base(struct membuf *m, unsigned per_extent, int skip_d1c1)
{
	struct vma_writer *w = vma_writer_new(mem_write, m);
	uint8_t *buf = malloc(VMA_CLUSTER_SIZE);

	memset(m, 0, sizeof(*m));
	assert_int_equal(vma_writer_set_extent_clusters(w, per_extent), 0);
	assert_int_equal(vma_writer_add_config(w, "qemu-server.conf", "memory: 512\n", 12), 0);
	assert_int_equal(vma_writer_add_device(w, "drive-scsi0", 3 * VMA_CLUSTER_SIZE), 1);
	assert_int_equal(vma_writer_add_device(w, "drive-scsi1", VMA_CLUSTER_SIZE), 2);
	assert_int_equal(vma_writer_start(w), 0);
	assert_int_equal(m->len, BASE_HS);
	memset(buf, 0x11, VMA_CLUSTER_SIZE);
	assert_int_equal(vma_writer_add_cluster(w, 1, 0, buf, VMA_CLUSTER_SIZE), 0);
	if (!skip_d1c1)
		assert_int_equal(vma_writer_add_cluster(w, 1, 1, NULL, 0), 0);
	memset(buf, 0x22, 8 * VMA_BLOCK_SIZE);
	assert_int_equal(vma_writer_add_cluster(w, 1, 2, buf, 8 * VMA_BLOCK_SIZE), 0);
	memset(buf, 0x33, VMA_BLOCK_SIZE);
	assert_int_equal(vma_writer_add_cluster(w, 2, 0, buf, VMA_BLOCK_SIZE), 0);
	assert_int_equal(vma_writer_finish(w), 0);
	vma_writer_free(w);
	free(buf);
}

static void md5_into(const uint8_t *p, size_t len, uint8_t *out)
{
	assert_int_equal(EVP_Digest(p, len, out, NULL, EVP_md5(), NULL), 1);
}

static void fix_hdr(uint8_t *b)
{
	uint8_t md5[16];

	memset(b + VMA_H_MD5, 0, 16);
	md5_into(b, get_be32(b + VMA_H_HEADER_SIZE), md5);
	memcpy(b + VMA_H_MD5, md5, 16);
}

static void fix_ext(uint8_t *e)
{
	uint8_t md5[16];

	memset(e + VMA_E_MD5, 0, 16);
	md5_into(e, 512, md5);
	memcpy(e + VMA_E_MD5, md5, 16);
}

static uint8_t *slot_word(uint8_t *e, unsigned s)
{
	return e + VMA_E_BLOCKINFO + 8 * s;
}

/* Runs header, clusters and check_complete over src; returns the reader. */
static struct vma_reader *run_reader(struct memsrc *src, unsigned *clusters)
{
	struct vma_reader *r;
	struct vma_cluster c;
	int rc;

	r = vma_reader_new(chunk_read, src);
	assert_non_null(r);
	*clusters = 0;
	if (vma_reader_read_header(r) < 0)
		return r;
	while ((rc = vma_reader_next_cluster(r, &c)) == 1)
		(*clusters)++;
	if (rc == 0)
		vma_reader_check_complete(r, 0);
	return r;
}

static void expect_err(const uint8_t *buf, size_t len, enum vma_err code, const char *text)
{
	struct memsrc src;
	unsigned n;
	struct vma_reader *r;

	src_init(&src, buf, len);
	r = run_reader(&src, &n);

	if (vma_reader_errcode(r) != code || !strstr(vma_reader_error(r), text))
		fail_msg("want %s \"%s\", got %s \"%s\"", vma_err_name(code), text,
			 vma_err_name(vma_reader_errcode(r)), vma_reader_error(r));
	vma_reader_free(r);
}

static void test_base_ok(void **state)
{
	struct membuf m;
	struct memsrc src;
	unsigned n;
	struct vma_reader *r;

	make_base(&m, 59, 0);
	assert_int_equal(m.len, BASE_EXT + 512 + 25 * 4096);
	assert_int_equal(get_be16(m.data + BASE_EXT + VMA_E_BLOCK_COUNT), 25);
	src_init(&src, m.data, m.len);
	r = run_reader(&src, &n);
	assert_int_equal(vma_reader_errcode(r), VMA_OK);
	assert_int_equal(n, 4);
	assert_int_equal(vma_reader_config(r, 0)->len, 12);
	assert_memory_equal(vma_reader_config(r, 0)->data, "memory: 512\n", 12);
	vma_reader_free(r);
	free(m.data);
}

static void test_err_header_short(void **state)
{
	struct membuf m;

	make_base(&m, 59, 0);
	expect_err(m.data, 0, VMA_ERR_HEADER_SHORT, "header: stream ended after 0 of 12288 bytes");
	expect_err(m.data, 100, VMA_ERR_HEADER_SHORT, "after 100 of 12288");
	expect_err(m.data, BASE_HS - 1, VMA_ERR_HEADER_SHORT, "after 12799 of 12800 bytes");
	free(m.data);
}

static void test_err_header_magic(void **state)
{
	struct membuf m;

	make_base(&m, 59, 0);
	m.data[1] = 'X';
	expect_err(m.data, m.len, VMA_ERR_HEADER_MAGIC, "header: bad magic 56584100");
	free(m.data);
}

static void test_err_header_version(void **state)
{
	struct membuf m;

	make_base(&m, 59, 0);
	put_be32(m.data + VMA_H_VERSION, 2);
	fix_hdr(m.data);
	expect_err(m.data, m.len, VMA_ERR_HEADER_VERSION, "header: version 2");
	free(m.data);
}

static void test_err_header_size(void **state)
{
	static const uint32_t bad[] = { 0, 12288, 12800 + 1, 12800 - 512 + 256,
					VMA_MAX_HEADER_SIZE + 512 };
	struct membuf m;
	unsigned i;

	make_base(&m, 59, 0);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		put_be32(m.data + VMA_H_HEADER_SIZE, bad[i]);
		expect_err(m.data, m.len, VMA_ERR_HEADER_SIZE, "header: header_size");
	}
	free(m.data);
}

static void test_err_header_md5(void **state)
{
	struct membuf m;

	make_base(&m, 59, 0);
	m.data[BASE_HS - 1] ^= 1; /* the zero padding is covered too */
	expect_err(m.data, m.len, VMA_ERR_HEADER_MD5, "header: checksum mismatch");
	free(m.data);
}

static void test_err_blob_bounds(void **state)
{
	struct membuf m;

	make_base(&m, 59, 0);
	put_be32(m.data + VMA_H_BLOB_SIZE, BASE_HS - 12288 + 1);
	fix_hdr(m.data);
	expect_err(m.data, m.len, VMA_ERR_BLOB_BOUNDS, "header: blob buffer at 12288 of 513 bytes");
	put_be32(m.data + VMA_H_BLOB_SIZE, 62);
	put_be32(m.data + VMA_H_BLOB_OFFSET, 12287);
	fix_hdr(m.data);
	expect_err(m.data, m.len, VMA_ERR_BLOB_BOUNDS, "outside [12288, 12800)");
	put_be32(m.data + VMA_H_BLOB_OFFSET, UINT32_MAX);
	fix_hdr(m.data);
	expect_err(m.data, m.len, VMA_ERR_BLOB_BOUNDS, "blob buffer");
	free(m.data);
}

static void test_err_blob_ptr(void **state)
{
	struct membuf m;
	uint8_t *cd, *dev1, *dev2;

	make_base(&m, 59, 0);
	cd = m.data + VMA_H_CONFIG_DATA;
	dev1 = m.data + VMA_H_DEV_INFO + 32;
	dev2 = m.data + VMA_H_DEV_INFO + 64;
	/* config data pointer into the middle of a blob */
	put_be32(cd, get_be32(cd) + 1);
	fix_hdr(m.data);
	expect_err(m.data, m.len, VMA_ERR_BLOB_PTR, "header: config qemu-server.conf: data pointer 21");
	/* half a config slot */
	put_be32(cd, 0);
	fix_hdr(m.data);
	expect_err(m.data, m.len, VMA_ERR_BLOB_PTR, "header: config slot 0: name pointer 1 with data pointer 0");
	put_be32(cd, 20);
	put_be32(m.data + VMA_H_CONFIG_NAMES + 4 * 9, 5000);
	put_be32(m.data + VMA_H_CONFIG_DATA + 4 * 9, 20);
	fix_hdr(m.data);
	expect_err(m.data, m.len, VMA_ERR_BLOB_PTR, "header: config slot 9: name pointer 5000 does not resolve");
	put_be32(m.data + VMA_H_CONFIG_NAMES + 4 * 9, 0);
	put_be32(m.data + VMA_H_CONFIG_DATA + 4 * 9, 0);
	/* device name pointer past the used blob area */
	put_be32(dev1, 62);
	fix_hdr(m.data);
	expect_err(m.data, m.len, VMA_ERR_BLOB_PTR, "header: device 1: name pointer 62 does not resolve");
	put_be32(dev1, 35);
	fix_hdr(m.data);
	expect_err(m.data, m.len, VMA_ERR_BLOB_PTR, "header: device 1: name pointer 35 does not resolve");
	put_be32(dev1, 0); /* size but no name: no device, as in Proxmox */
	fix_hdr(m.data);
	expect_err(m.data, m.len, VMA_ERR_EXTENT_DEV, "slot 0: cluster 0 of unknown device 1");
	put_be32(dev1, 34);
	put_be64(dev2 + 8, 0); /* name but no size: no device */
	put_be32(dev2, 7777);
	fix_hdr(m.data);
	expect_err(m.data, m.len, VMA_ERR_EXTENT_DEV, "slot 3: cluster 0 of unknown device 2");
	free(m.data);
}

static void test_err_blob_string(void **state)
{
	struct membuf m;
	uint8_t *blobs;

	make_base(&m, 59, 0);
	blobs = m.data + 12288;
	/* blob at 34: "drive-scsi0\0" (12 bytes) */
	assert_memory_equal(blobs + 36, "drive-scsi0", 12);
	blobs[36 + 11] = 'x';
	fix_hdr(m.data);
	expect_err(m.data, m.len, VMA_ERR_BLOB_STRING,
		   "header: device 1: name blob at 34 is not a NUL-terminated string");
	blobs[36 + 11] = 0;
	blobs[36 + 5] = 0;
	fix_hdr(m.data);
	expect_err(m.data, m.len, VMA_ERR_BLOB_STRING, "header: device 1: name blob at 34");
	blobs[36 + 5] = 's';
	blobs[3 + 16] = 'x'; /* config name "qemu-server.conf\0" at 1 */
	fix_hdr(m.data);
	expect_err(m.data, m.len, VMA_ERR_BLOB_STRING, "header: config slot 0: name blob at 1");
	free(m.data);
}

/* Two devices of one name: a restore would write both into one file. */
static void test_err_dev_dup(void **state)
{
	struct membuf m;
	uint8_t *dev1, *dev2;

	make_base(&m, 59, 0);
	dev1 = m.data + VMA_H_DEV_INFO + 32;
	dev2 = m.data + VMA_H_DEV_INFO + 64;
	memcpy(dev2, dev1, 4);
	fix_hdr(m.data);
	expect_err(m.data, m.len, VMA_ERR_DEV_DUP,
		   "header: devices 1 and 2 are both named drive-scsi0");
	free(m.data);
}

/* Sizes past 2^32 clusters: refused (UINT64_MAX also overflows rounding). */
static void test_err_dev_size(void **state)
{
	static const uint64_t sizes[] = { VMA_MAX_DEVICE_SIZE + 1, VMA_MAX_DEVICE_SIZE + 512,
					  UINT64_MAX - 511, UINT64_MAX };
	struct membuf m;
	uint8_t *dev2;
	char want[160];

	make_base(&m, 59, 0);
	dev2 = m.data + VMA_H_DEV_INFO + 64;
	for (unsigned i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		put_be64(dev2 + 8, sizes[i]);
		fix_hdr(m.data);
		snprintf(want, sizeof(want),
			 "header: device 2 (drive-scsi1): size %llu is larger than a VMA archive can address (281474976710656 bytes",
			 (unsigned long long)sizes[i]);
		expect_err(m.data, m.len, VMA_ERR_LIMIT, want);
	}
	free(m.data);
}

static void test_err_extent_short(void **state)
{
	struct membuf m;

	make_base(&m, 59, 0);
	expect_err(m.data, BASE_EXT + 100, VMA_ERR_EXTENT_SHORT,
		   "extent at offset 12800: stream ended after 100 of 512 header bytes");
	expect_err(m.data, BASE_EXT + 511, VMA_ERR_EXTENT_SHORT, "after 511 of 512 header");
	expect_err(m.data, m.len - 1, VMA_ERR_EXTENT_SHORT,
		   "extent at offset 12800: stream ended after 102399 of 102400 data bytes");
	expect_err(m.data, BASE_EXT + 512, VMA_ERR_EXTENT_SHORT, "after 0 of 102400 data");
	free(m.data);
}

static void test_err_extent_md5(void **state)
{
	struct membuf m;

	make_base(&m, 59, 0);
	slot_word(m.data + BASE_EXT, 58)[7] = 1;
	expect_err(m.data, m.len, VMA_ERR_EXTENT_MD5, "extent at offset 12800: header checksum mismatch");
	/* checked before the magic */
	m.data[BASE_EXT] = 'X';
	expect_err(m.data, m.len, VMA_ERR_EXTENT_MD5, "checksum mismatch");
	free(m.data);
}

static void test_err_extent_uuid(void **state)
{
	struct membuf m;

	make_base(&m, 59, 0);
	m.data[BASE_EXT + VMA_E_UUID + 15] ^= 0x80;
	fix_ext(m.data + BASE_EXT);
	expect_err(m.data, m.len, VMA_ERR_EXTENT_UUID, "extent at offset 12800: uuid differs");
	free(m.data);
}

static void test_err_extent_magic(void **state)
{
	struct membuf m;

	make_base(&m, 59, 0);
	m.data[BASE_EXT + 3] = 'F';
	fix_ext(m.data + BASE_EXT);
	expect_err(m.data, m.len, VMA_ERR_EXTENT_MAGIC, "extent at offset 12800: bad magic 564d4146");
	free(m.data);
}

static void test_err_extent_reserved(void **state)
{
	struct membuf m;

	make_base(&m, 59, 0);
	m.data[BASE_EXT + VMA_E_RESERVED + 1] = 1;
	fix_ext(m.data + BASE_EXT);
	expect_err(m.data, m.len, VMA_ERR_EXTENT_MAGIC,
		   "extent at offset 12800: reserved field 0x1 is not 0");
	free(m.data);
}

static void test_err_extent_dev(void **state)
{
	struct membuf m;

	make_base(&m, 59, 0);
	slot_word(m.data + BASE_EXT, 3)[3] = 9;
	fix_ext(m.data + BASE_EXT);
	expect_err(m.data, m.len, VMA_ERR_EXTENT_DEV,
		   "extent at offset 12800, slot 3: cluster 0 of unknown device 9");
	free(m.data);
}

static void test_err_extent_dup(void **state)
{
	struct membuf m;

	make_base(&m, 59, 0);
	slot_word(m.data + BASE_EXT, 1)[7] = 0; /* cluster 1 -> 0 */
	fix_ext(m.data + BASE_EXT);
	expect_err(m.data, m.len, VMA_ERR_EXTENT_DUP,
		   "extent at offset 12800, slot 1: duplicate cluster 0 of device 1 (drive-scsi0)");
	free(m.data);

	/* also across extents */
	make_base(&m, 2, 0);
	slot_word(m.data + BASE_EXT + 512 + 16 * 4096, 0)[7] = 1; /* cluster 2 -> 1 */
	fix_ext(m.data + BASE_EXT + 512 + 16 * 4096);
	expect_err(m.data, m.len, VMA_ERR_EXTENT_DUP,
		   "extent at offset 78848, slot 0: duplicate cluster 1 of device 1");
	free(m.data);
}

static void test_err_extent_beyond(void **state)
{
	struct membuf m;

	make_base(&m, 59, 0);
	/* cluster 2 stores blocks 0-7; block 1 starts at 135168 */
	put_be64(m.data + VMA_H_DEV_INFO + 32 + 8, 2 * 65536 + 4096);
	fix_hdr(m.data);
	expect_err(m.data, m.len, VMA_ERR_EXTENT_BEYOND,
		   "extent at offset 12800, slot 2: block 1 of cluster 2 of device 1 (drive-scsi0) starts at byte 135168, past the device end (size 135168)");
	/* one byte more and block 1 straddles: fine */
	put_be64(m.data + VMA_H_DEV_INFO + 32 + 8, 2 * 65536 + 4097 + 7 * 4096);
	fix_hdr(m.data);
	expect_err(m.data, m.len, VMA_OK, "");
	free(m.data);

	/* an empty cluster past the end */
	make_base(&m, 59, 0);
	slot_word(m.data + BASE_EXT, 1)[7] = 3;
	fix_ext(m.data + BASE_EXT);
	expect_err(m.data, m.len, VMA_ERR_EXTENT_BEYOND,
		   "slot 1: cluster 3 of device 1 (drive-scsi0) is past the device end (size 196608)");
	free(m.data);
}

static void test_err_extent_count(void **state)
{
	struct membuf m;
	uint8_t *e;

	make_base(&m, 59, 0);
	e = m.data + BASE_EXT;
	slot_word(e, 1)[1] = 0x01; /* the empty cluster claims block 0 */
	fix_ext(e);
	expect_err(m.data, m.len, VMA_ERR_EXTENT_COUNT,
		   "extent at offset 12800, slot 3: masks claim more than block_count 25 blocks");
	slot_word(e, 1)[1] = 0;
	slot_word(e, 2)[1] = 0x7f; /* cluster 2 loses block 7 */
	fix_ext(e);
	expect_err(m.data, m.len, VMA_ERR_EXTENT_COUNT,
		   "extent at offset 12800: masks account for 24 of block_count 25 blocks");
	slot_word(e, 2)[1] = 0xff;
	put_be16(e + VMA_E_BLOCK_COUNT, 945);
	fix_ext(e);
	expect_err(m.data, m.len, VMA_ERR_EXTENT_COUNT,
		   "extent at offset 12800: block_count 945 is more than 59 clusters hold");
	free(m.data);
}

static void test_err_missing_cluster(void **state)
{
	struct membuf m;

	make_base(&m, 59, 1);
	expect_err(m.data, m.len, VMA_ERR_MISSING_CLUSTER,
		   "device 1 (drive-scsi0): missing cluster 1 of 3");
	free(m.data);
}

/* A zero slot between used ones is skipped, as Proxmox does. */
static void test_zero_slot_skipped(void **state)
{
	struct membuf m;
	struct memsrc src;
	struct vma_reader *r;
	unsigned n;

	make_base(&m, 59, 0);
	memset(slot_word(m.data + BASE_EXT, 1), 0, 8);
	fix_ext(m.data + BASE_EXT);
	src_init(&src, m.data, m.len);
	r = run_reader(&src, &n);
	assert_int_equal(n, 3);
	assert_int_equal(vma_reader_errcode(r), VMA_ERR_MISSING_CLUSTER);
	assert_int_equal(vma_reader_check_complete(r, 2), 0);
	assert_int_equal(vma_reader_clusters_seen(r, 1), 2);
	vma_reader_free(r);
	free(m.data);
}

static void test_eof_at_extent_boundary(void **state)
{
	struct membuf m;
	struct memsrc src;
	struct vma_reader *r;
	unsigned n;
	size_t cut = BASE_EXT + 512 + 16 * 4096;

	make_base(&m, 2, 0);
	src_init(&src, m.data, cut);
	r = run_reader(&src, &n);
	assert_int_equal(n, 2);
	assert_int_equal(vma_reader_offset(r), cut);
	assert_int_equal(vma_reader_errcode(r), VMA_ERR_MISSING_CLUSTER);
	assert_string_equal(vma_reader_error(r), "device 1 (drive-scsi0): missing cluster 2 of 3");
	vma_reader_free(r);
	src_init(&src, m.data, m.len);
	r = run_reader(&src, &n);
	assert_int_equal(vma_reader_errcode(r), VMA_OK);
	assert_int_equal(n, 4);
	vma_reader_free(r);
	free(m.data);
}

static void test_err_read_io(void **state)
{
	static const size_t at[] = { 0, 5000, 12290, BASE_EXT + 10, BASE_EXT + 600 };
	struct membuf m;
	unsigned i, n;

	make_base(&m, 59, 0);
	for (i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
		struct memsrc src;
		struct vma_reader *r;

		src_init(&src, m.data, m.len);
		src.err_at = at[i];
		src.err_errno = EIO;
		r = run_reader(&src, &n);
		assert_int_equal(vma_reader_errcode(r), VMA_ERR_IO);
		assert_int_equal(vma_reader_sys_errno(r), EIO);
		assert_int_equal(vma_reader_offset(r), at[i]);
		assert_non_null(strstr(vma_reader_error(r), "failed: Input/output error"));
		vma_reader_free(r);
	}
	free(m.data);
}

/* Declared sizes cost nothing: memory follows the clusters present. */
static void test_huge_devices(void **state)
{
	struct membuf m = { 0 };
	struct vma_writer *w = vma_writer_new(mem_write, &m);
	static const uint32_t clusters[] = { 0, 1, 65536, UINT32_MAX };
	struct memsrc src;
	struct vma_reader *r;
	struct vma_cluster c;
	char name[32];
	unsigned d, i, n = 0;

	for (d = 1; d <= 254; d++) {
		snprintf(name, sizeof(name), "drive-scsi%u", d);
		assert_int_equal(vma_writer_add_device(w, name, VMA_MAX_DEVICE_SIZE), (int)d);
	}
	assert_int_equal(vma_writer_start(w), 0);
	for (d = 1; d <= 254; d++)
		for (i = 0; i < 4; i++)
			assert_int_equal(vma_writer_add_cluster(w, d, clusters[i], "x", 1), 0);
	assert_int_equal(vma_writer_finish(w), 0);
	src_init(&src, m.data, m.len);
	r = vma_reader_new(chunk_read, &src);
	assert_int_equal(vma_reader_read_header(r), 0);
	while (vma_reader_next_cluster(r, &c) == 1)
		n++;
	assert_int_equal(n, 254 * 4);
	assert_int_equal(vma_reader_clusters_seen(r, 254), 4);
	assert_int_equal(vma_reader_check_complete(r, 0), -1);
	assert_string_equal(vma_reader_error(r),
			    "device 1 (drive-scsi1): missing cluster 2 of 4294967296");
	vma_reader_free(r);
	vma_writer_free(w);
	free(m.data);
}

static ssize_t greedy_read(void *opaque, void *buf, size_t len)
{
	return (ssize_t)len + 1;
}

static void test_reader_usage(void **state)
{
	struct membuf m;
	struct memsrc src;
	struct vma_reader *r;
	struct vma_cluster c;

	make_base(&m, 1, 0); /* one cluster per extent */
	src_init(&src, m.data, m.len);
	r = vma_reader_new(chunk_read, &src);
	assert_int_equal(vma_reader_next_cluster(r, &c), -1);
	assert_int_equal(vma_reader_errcode(r), VMA_ERR_USAGE);
	assert_int_equal(vma_reader_check_complete(r, 0), -1);
	assert_int_equal(vma_reader_read_header(r), 0);
	assert_int_equal(vma_reader_read_header(r), -1);
	assert_int_equal(vma_reader_errcode(r), VMA_ERR_USAGE);
	assert_int_equal(vma_reader_check_complete(r, 3), -1);
	assert_int_equal(vma_reader_errcode(r), VMA_ERR_USAGE);
	assert_null(vma_reader_device(r, 2));
	assert_null(vma_reader_config(r, 1));
	assert_null(vma_reader_config_by_name(r, "nope"));
	assert_int_equal(vma_reader_clusters_seen(r, 300), 0);
	/* before the end, check_complete judges what was seen so far */
	assert_int_equal(vma_reader_next_cluster(r, &c), 1);
	assert_int_equal(vma_reader_check_complete(r, 2), -1);
	assert_int_equal(vma_reader_errcode(r), VMA_ERR_MISSING_CLUSTER);
	while (vma_reader_next_cluster(r, &c) == 1)
		;
	assert_int_equal(vma_reader_check_complete(r, 2), 0);
	vma_reader_free(r);

	r = vma_reader_new(greedy_read, NULL);
	assert_int_equal(vma_reader_read_header(r), -1);
	assert_int_equal(vma_reader_errcode(r), VMA_ERR_IO);
	assert_int_equal(vma_reader_sys_errno(r), EIO);
	vma_reader_free(r);
	assert_null(vma_reader_new(NULL, NULL));
	assert_null(vma_writer_new(NULL, NULL));
	free(m.data);
}

static void test_err_names(void **state)
{
	int e;

	for (e = 0; e < VMA_ERR__COUNT; e++)
		assert_non_null(vma_err_name((enum vma_err)e));
	assert_string_equal(vma_err_name(VMA_ERR_EXTENT_MD5), "extent-md5");
	assert_string_equal(vma_err_name(VMA_ERR__COUNT), "unknown");
}

/* ------------------------------------------------------------ vma-tree-1 */

/* An archive of two devices (one of an odd size) written with a tree: the
 * digests given for some clusters, computed by the writer for the others
 * (and for masked clusters). */
static void tree_archive(struct membuf *m, uint8_t tree[VMA_TREE_LEN], bool give)
{
	static uint8_t cl[VMA_CLUSTER_SIZE];
	struct vma_writer *w = vma_writer_new(mem_write, m);
	struct vma_tree *t = vma_tree_new();
	uint64_t sizes[2] = { 5 * (uint64_t)VMA_CLUSTER_SIZE, 3 * (uint64_t)VMA_CLUSTER_SIZE + 1000 };
	uint64_t rnd = 7;

	assert_non_null(w);
	assert_non_null(t);
	vma_writer_set_tree(w, t);
	assert_int_equal(vma_writer_set_uuid(w, (const uint8_t *)"0123456789abcdef"), 0);
	vma_writer_set_ctime(w, 1700000000);
	assert_int_equal(vma_writer_add_config(w, "qemu-server.conf", "x", 1), 0);
	assert_int_equal(vma_writer_add_device(w, "d1", sizes[0]), 1);
	assert_int_equal(vma_writer_add_device(w, "d2", sizes[1]), 2);
	assert_int_equal(vma_writer_set_extent_clusters(w, 3), 0);
	assert_int_equal(vma_writer_start(w), 0);
	for (unsigned d = 0; d < 2; d++)
		for (uint32_t c = 0; c < vma_clusters_of(sizes[d]); c++) {
			uint64_t left = sizes[d] - (uint64_t)c * VMA_CLUSTER_SIZE;
			size_t len = left < VMA_CLUSTER_SIZE ? (size_t)left : VMA_CLUSTER_SIZE;
			uint8_t dg[VMA_TREE_LEN];

			for (size_t i = 0; i < sizeof(cl); i += 8) {
				uint64_t v = xrand(&rnd);

				memcpy(cl + i, &v, 8);
			}
			memset(cl + VMA_BLOCK_SIZE, 0, VMA_BLOCK_SIZE); /* a zero block */
			if (c == 1)
				memset(cl, 0, sizeof(cl)); /* a zero cluster */
			assert_int_equal(vma_tree_cluster_digest(cl, (uint32_t)len, dg), 0);
			assert_int_equal(vma_writer_add_cluster_digest(w, d + 1, c, cl, len,
								       give && c % 2 ? dg : NULL), 0);
		}
	assert_int_equal(vma_writer_finish(w), 0);
	assert_int_equal(vma_tree_final(t, tree), 0);
	vma_tree_free(t);
	vma_writer_free(w);
}

static void tree_of(const uint8_t *buf, size_t len, int want, uint8_t out[VMA_TREE_LEN])
{
	struct memsrc src;
	uint64_t size = 0;

	src_init(&src, buf, len);
	assert_int_equal(vma_tree_of_stream(chunk_read, &src, out, &size), want);
	assert_int_equal(size, len);
}

static void test_tree_digest(void **state)
{
	struct membuf a = { 0 }, b = { 0 };
	uint8_t ta[VMA_TREE_LEN], tb[VMA_TREE_LEN], got[VMA_TREE_LEN], sha[VMA_TREE_LEN];
	uint8_t *x;
	size_t ext;

	(void)state;
	tree_archive(&a, ta, true);
	tree_archive(&b, tb, false);
	/* the digests given and those the writer computes are the same */
	assert_int_equal(a.len, b.len);
	assert_memory_equal(a.data, b.data, a.len);
	tree_of(b.data, b.len, 0, got);
	assert_memory_equal(got, tb, VMA_TREE_LEN);
	assert_memory_equal(ta, tb, VMA_TREE_LEN);
	tree_of(a.data, a.len, 0, got);
	assert_memory_equal(got, ta, VMA_TREE_LEN);
	/* it is not the SHA-256 of the bytes */
	assert_int_equal(vma_tree_cluster_digest(a.data, (uint32_t)a.len, sha), 0);
	assert_memory_not_equal(sha, ta, VMA_TREE_LEN);
	x = malloc(a.len + 1);
	assert_non_null(x);
	/* every byte counts: in the header, an extent header, a cluster; a
	 * byte past the device end, in the last stored block, must be zero */
	ext = get_be32(a.data + VMA_H_HEADER_SIZE);
	size_t at[] = { 100, ext + 300, ext + VMA_EXTENT_HEADER_SIZE + 5, a.len - 1 };
	int rc[] = { 0, 0, 0, 1 };
	for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
		memcpy(x, a.data, a.len);
		x[at[i]] ^= 0x40;
		tree_of(x, a.len, rc[i], got);
		if (rc[i] == 0)
			assert_memory_not_equal(got, ta, VMA_TREE_LEN);
	}
	/* cut short, grown, not VMA: no digest */
	memcpy(x, a.data, a.len);
	tree_of(x, a.len - 1, 1, got);
	x[a.len] = 0;
	tree_of(x, a.len + 1, 1, got);
	x[0] = 'X';
	tree_of(x, a.len, 1, got);
	free(x);
	free(a.data);
	free(b.data);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip_devices),
		cmocka_unit_test(test_odd_sizes),
		cmocka_unit_test(test_straddle_layout),
		cmocka_unit_test(test_header_layout),
		cmocka_unit_test(test_empty_archive),
		cmocka_unit_test(test_limits_devices),
		cmocka_unit_test(test_limits_configs_blobs),
		cmocka_unit_test(test_writer_usage),
		cmocka_unit_test(test_write_failure),
		cmocka_unit_test(test_masked_roundtrip),
		cmocka_unit_test(test_base_ok),
		cmocka_unit_test(test_err_header_short),
		cmocka_unit_test(test_err_header_magic),
		cmocka_unit_test(test_err_header_version),
		cmocka_unit_test(test_err_header_size),
		cmocka_unit_test(test_err_header_md5),
		cmocka_unit_test(test_err_blob_bounds),
		cmocka_unit_test(test_err_blob_ptr),
		cmocka_unit_test(test_err_blob_string),
		cmocka_unit_test(test_err_dev_dup),
		cmocka_unit_test(test_err_dev_size),
		cmocka_unit_test(test_err_extent_short),
		cmocka_unit_test(test_err_extent_md5),
		cmocka_unit_test(test_err_extent_uuid),
		cmocka_unit_test(test_err_extent_magic),
		cmocka_unit_test(test_err_extent_reserved),
		cmocka_unit_test(test_err_extent_dev),
		cmocka_unit_test(test_err_extent_dup),
		cmocka_unit_test(test_err_extent_beyond),
		cmocka_unit_test(test_err_extent_count),
		cmocka_unit_test(test_err_missing_cluster),
		cmocka_unit_test(test_zero_slot_skipped),
		cmocka_unit_test(test_eof_at_extent_boundary),
		cmocka_unit_test(test_err_read_io),
		cmocka_unit_test(test_huge_devices),
		cmocka_unit_test(test_reader_usage),
		cmocka_unit_test(test_err_names),
		cmocka_unit_test(test_tree_digest),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
