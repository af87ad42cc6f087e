/* test_bitmap.c: unit tests of the bitmap/ library: every bitmap operation
 * against a bool-array model, every decode error, digest map streams. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bitmap/bitmap.h"
#include "common/byteorder.h"

/* ------------------------------------------------------------ helpers */

static uint64_t xrand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* The model: one bool per bit. */
static void check_model(const struct bitmap *b, const bool *m, uint64_t n)
{
	uint64_t cnt = 0, from = 0, s, l, i;

	assert_int_equal(bitmap_size(b), n);
	for (i = 0; i < n; i++) {
		assert_int_equal(bitmap_test(b, i), m[i]);
		cnt += m[i];
	}
	assert_false(bitmap_test(b, n));
	assert_int_equal(bitmap_count(b), cnt);
	/* next_run must list exactly the maximal runs of the model. */
	i = 0;
	while (bitmap_next_run(b, from, &s, &l)) {
		while (i < n && !m[i])
			i++;
		assert_int_equal(s, i);
		assert_true(l > 0);
		for (; i < s + l; i++)
			assert_true(m[i]);
		assert_true(i == n || !m[i]);
		from = s + l;
	}
	for (; i < n; i++)
		assert_false(m[i]);
}

static void model_range(bool *m, uint64_t start, uint64_t count, bool v)
{
	for (uint64_t i = start; i < start + count; i++)
		m[i] = v;
}

struct membuf {
	uint8_t *data;
	size_t len, cap;
	unsigned calls, fail_at_call;  /* 1-based call that fails; 0 never */
};

static int mem_write(void *opaque, const void *buf, size_t len)
{
	struct membuf *m = opaque;

	m->calls++;
	if (m->fail_at_call && m->calls >= m->fail_at_call)
		return -ENOSPC;
	if (m->len + len > m->cap) {
		m->cap = (m->len + len) * 2;
		m->data = realloc(m->data, m->cap);
		assert_non_null(m->data);
	}
	memcpy(m->data + m->len, buf, len);
	m->len += len;
	return 0;
}

/* A pipe: short chunks of 1..maxchunk bytes, -EINTR now and then, -EIO at
 * err_at (SIZE_MAX: never). */
struct memsrc {
	const uint8_t *data;
	size_t len, pos, maxchunk, err_at;
	uint64_t rnd;
	unsigned eintrs;
};

static ssize_t chunk_read(void *opaque, void *buf, size_t len)
{
	struct memsrc *s = opaque;
	size_t n = 1 + xrand(&s->rnd) % s->maxchunk;

	if (s->pos >= s->err_at)
		return -EIO;
	if (xrand(&s->rnd) % 16 == 0) {
		s->eintrs++;
		return -EINTR;
	}
	if (n > len)
		n = len;
	if (n > s->len - s->pos)
		n = s->len - s->pos;
	if (n > s->err_at - s->pos)
		n = s->err_at - s->pos;
	memcpy(buf, s->data + s->pos, n);
	s->pos += n;
	return (ssize_t)n;
}

/* Reads a whole digest map: 0 or the first error. digests may be NULL. */
static int read_map(const uint8_t *data, size_t len, size_t maxchunk, uint64_t *size,
		    uint64_t *clusters, uint8_t *digests, uint8_t root[DIGEST_LEN])
{
	struct memsrc src = { data, len, 0, maxchunk, SIZE_MAX, 0x9e3779b97f4a7c15ull ^ len, 0 };
	struct digest_reader *r = digest_reader_new(chunk_read, &src);
	uint8_t d[DIGEST_LEN];
	uint64_t i = 0;
	int rc;

	assert_non_null(r);
	rc = digest_reader_start(r, size, clusters);
	while (rc == 0 && (rc = digest_reader_next(r, d)) == 1) {
		assert_true(i < *clusters);
		if (digests)
			memcpy(digests + i * DIGEST_LEN, d, DIGEST_LEN);
		i++;
		rc = 0;
	}
	if (rc == 0) {
		assert_int_equal(i, *clusters);
		assert_int_equal(digest_reader_next(r, d), 0);
		digest_reader_root(r, root);
	} else {
		/* Errors stick. */
		assert_int_equal(digest_reader_next(r, d), rc);
	}
	digest_reader_free(r);
	return rc;
}

/* A digest map of a drive of `size` bytes with digests derived from seed. */
static void write_map(struct membuf *m, uint64_t size, uint64_t seed, uint8_t **digests,
		      uint8_t root[DIGEST_LEN])
{
	uint64_t n = bitmap_clusters(size), s = seed | 1;
	struct digest_writer *w;

	memset(m, 0, sizeof(*m));
	w = digest_writer_new(size, mem_write, m);
	assert_non_null(w);
	*digests = malloc(n * DIGEST_LEN + 1);
	assert_non_null(*digests);
	for (uint64_t i = 0; i < n; i++) {
		uint64_t v = xrand(&s);

		assert_int_equal(digest_cluster(&v, sizeof(v), *digests + i * DIGEST_LEN), 0);
		assert_int_equal(digest_writer_add(w, *digests + i * DIGEST_LEN), 0);
	}
	assert_int_equal(digest_writer_finish(w, root), 0);
	digest_writer_free(w);
}

/* Replaces the last 32 bytes by SHA-256 of the bytes before them. */
static void reseal(uint8_t *buf, size_t len)
{
	assert_int_equal(digest_cluster(buf, len - DIGEST_LEN, buf + len - DIGEST_LEN), 0);
}

/* ------------------------------------------------------------ bitmap ops */

static void test_empty_bitmap(void **state)
{
	struct bitmap *b = bitmap_new(0), *d;
	uint64_t s = 7, l = 7;
	uint8_t *enc;
	size_t len;

	assert_non_null(b);
	assert_int_equal(bitmap_size(b), 0);
	assert_int_equal(bitmap_count(b), 0);
	assert_false(bitmap_test(b, 0));
	assert_false(bitmap_next_run(b, 0, &s, &l));
	assert_int_equal(bitmap_set_range(b, 0, 0), 0);
	assert_int_equal(bitmap_set_range(b, 0, 1), BITMAP_ERR_RANGE);
	assert_int_equal(bitmap_clear_range(b, 1, 0), BITMAP_ERR_RANGE);
	assert_int_equal(bitmap_set_bytes(b, 0, 100000), 0);
	bitmap_set_all(b);
	assert_int_equal(bitmap_count(b), 0);
	d = bitmap_dup(b);
	assert_non_null(d);
	assert_int_equal(bitmap_union(d, b), 0);
	assert_int_equal(bitmap_intersect(d, b), 0);
	assert_int_equal(bitmap_encode(b, &enc, &len), 0);
	assert_int_equal(len, 24 + DIGEST_LEN);
	bitmap_free(d);
	assert_int_equal(bitmap_decode(enc, len, &d), 0);
	assert_int_equal(bitmap_size(d), 0);
	free(enc);
	bitmap_free(d);
	bitmap_free(b);
}

static void test_limits_and_null(void **state)
{
	assert_null(bitmap_new(BITMAP_MAX_BITS + 1));
	assert_null(bitmap_new(UINT64_MAX));
	assert_null(bitmap_dup(NULL));
	assert_int_equal(bitmap_size(NULL), 0);
	bitmap_free(NULL);
	digest_writer_free(NULL);
	digest_reader_free(NULL);
	assert_int_equal(bitmap_clusters(0), 0);
	assert_int_equal(bitmap_clusters(1), 1);
	assert_int_equal(bitmap_clusters(65536), 1);
	assert_int_equal(bitmap_clusters(65537), 2);
	assert_int_equal(bitmap_clusters(UINT64_MAX), UINT64_C(1) << 48);
}

/* Every (start, count) on sizes around word boundaries, set on an empty
 * map and cleared on a full one; then the out-of-range cases. */
static void test_ranges_exhaustive(void **state)
{
	static const uint64_t sizes[] = { 1, 63, 64, 65, 127, 128, 129, 193 };
	bool m[200];

	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		uint64_t n = sizes[k];
		struct bitmap *b = bitmap_new(n);

		assert_non_null(b);
		for (uint64_t st = 0; st <= n; st++) {
			for (uint64_t c = 0; st + c <= n; c++) {
				bool v = (st + c) % 2;

				if (v) {
					assert_int_equal(bitmap_clear_range(b, 0, n), 0);
					assert_int_equal(bitmap_set_range(b, st, c), 0);
				} else {
					bitmap_set_all(b);
					assert_int_equal(bitmap_clear_range(b, st, c), 0);
				}
				for (uint64_t i = 0; i < n; i++)
					assert_int_equal(bitmap_test(b, i), (i >= st && i < st + c) == v);
				assert_int_equal(bitmap_count(b), v ? c : n - c);
			}
		}
		memset(m, 0, sizeof(m));
		assert_int_equal(bitmap_clear_range(b, 0, n), 0);
		assert_int_equal(bitmap_set_range(b, 0, n + 1), BITMAP_ERR_RANGE);
		assert_int_equal(bitmap_set_range(b, n + 1, 0), BITMAP_ERR_RANGE);
		assert_int_equal(bitmap_set_range(b, n, 1), BITMAP_ERR_RANGE);
		assert_int_equal(bitmap_set_range(b, 1, UINT64_MAX), BITMAP_ERR_RANGE);
		assert_int_equal(bitmap_clear_range(b, UINT64_MAX, 2), BITMAP_ERR_RANGE);
		assert_int_equal(bitmap_set_range(b, n, 0), 0);
		check_model(b, m, n);
		bitmap_set_all(b);
		model_range(m, 0, n, true);
		check_model(b, m, n);
		assert_false(bitmap_test(b, UINT64_MAX));
		bitmap_free(b);
	}
}

static void test_next_run_patterns(void **state)
{
	struct bitmap *b = bitmap_new(300);
	uint64_t s, l, i;

	assert_non_null(b);
	for (i = 0; i < 300; i += 2)
		assert_int_equal(bitmap_set_range(b, i, 1), 0);
	for (i = 0; i < 299; i++) {
		assert_true(bitmap_next_run(b, i, &s, &l));
		assert_int_equal(s, i + i % 2);
		assert_int_equal(l, 1);
	}
	assert_false(bitmap_next_run(b, 299, &s, &l));
	assert_false(bitmap_next_run(b, 300, &s, &l));
	assert_false(bitmap_next_run(b, UINT64_MAX, &s, &l));
	/* A run across words, asked from its middle; a run to the very end. */
	assert_int_equal(bitmap_clear_range(b, 0, 300), 0);
	assert_int_equal(bitmap_set_range(b, 60, 140), 0);
	assert_int_equal(bitmap_set_range(b, 250, 50), 0);
	assert_true(bitmap_next_run(b, 0, &s, &l));
	assert_true(s == 60 && l == 140);
	assert_true(bitmap_next_run(b, 130, &s, &l));
	assert_true(s == 130 && l == 70);
	assert_true(bitmap_next_run(b, 200, &s, &l));
	assert_true(s == 250 && l == 50);
	assert_true(bitmap_next_run(b, 0, NULL, NULL));
	bitmap_free(b);

	/* 1 TiB of clusters, sparse: the scan skips empty words quickly. */
	b = bitmap_new(UINT64_C(1) << 24);
	assert_non_null(b);
	for (i = 0; i < 1000; i++)
		assert_int_equal(bitmap_set_range(b, i * 16000 + 7, i % 70 + 1), 0);
	bitmap_set_bytes(b, (UINT64_C(1) << 40) - 1, 1);
	for (s = l = 0, i = 0; bitmap_next_run(b, s + l, &s, &l); i++)
		;
	assert_int_equal(i, 1001);
	assert_int_equal(s, (UINT64_C(1) << 24) - 1);
	bitmap_free(b);
}

static void test_union_intersect(void **state)
{
	struct bitmap *a = bitmap_new(130), *b = bitmap_new(130), *c = bitmap_new(131);

	assert_true(a && b && c);
	assert_int_equal(bitmap_set_range(a, 0, 70), 0);
	assert_int_equal(bitmap_set_range(b, 60, 70), 0);
	assert_int_equal(bitmap_union(a, c), BITMAP_ERR_SIZE);
	assert_int_equal(bitmap_intersect(a, c), BITMAP_ERR_SIZE);
	assert_int_equal(bitmap_count(a), 70);
	assert_int_equal(bitmap_intersect(a, b), 0);
	assert_int_equal(bitmap_count(a), 10);
	assert_true(bitmap_test(a, 60) && bitmap_test(a, 69) && !bitmap_test(a, 70));
	assert_int_equal(bitmap_set_range(a, 0, 1), 0);
	assert_int_equal(bitmap_union(a, b), 0);
	assert_int_equal(bitmap_count(a), 71);
	assert_true(bitmap_test(a, 0) && bitmap_test(a, 129));
	bitmap_free(a);
	bitmap_free(b);
	bitmap_free(c);
}

static void test_set_bytes(void **state)
{
	const uint64_t C = BITMAP_CLUSTER_SIZE;
	struct bitmap *b = bitmap_new(100);
	uint64_t s, l;

	assert_non_null(b);
	/* 512-byte extents: any byte of a cluster dirties it. */
	assert_int_equal(bitmap_set_bytes(b, 3 * C + 512, 512), 0);
	assert_int_equal(bitmap_set_bytes(b, 5 * C - 512, 1024), 0);
	assert_int_equal(bitmap_count(b), 3);
	assert_true(bitmap_test(b, 3) && bitmap_test(b, 4) && bitmap_test(b, 5));
	/* Exactly one cluster, then 1 MiB = 16 clusters, aligned. */
	assert_int_equal(bitmap_clear_range(b, 0, 100), 0);
	assert_int_equal(bitmap_set_bytes(b, 10 * C, C), 0);
	assert_int_equal(bitmap_count(b), 1);
	assert_int_equal(bitmap_set_bytes(b, 1 << 20, 1 << 20), 0);
	assert_true(bitmap_next_run(b, 11, &s, &l));
	assert_true(s == 16 && l == 16);
	assert_int_equal(bitmap_count(b), 17);
	/* Unaligned: 1 byte, a range straddling 3 clusters, len 0. */
	assert_int_equal(bitmap_clear_range(b, 0, 100), 0);
	assert_int_equal(bitmap_set_bytes(b, 40 * C + 12345, 0), 0);
	assert_int_equal(bitmap_count(b), 0);
	assert_int_equal(bitmap_set_bytes(b, 40 * C - 1, 1), 0);
	assert_true(bitmap_test(b, 39) && bitmap_count(b) == 1);
	assert_int_equal(bitmap_set_bytes(b, 50 * C - 1, C + 2), 0);
	assert_true(bitmap_next_run(b, 40, &s, &l));
	assert_true(s == 49 && l == 3);
	/* Past the end is ignored; a range running to 2^64 saturates. */
	assert_int_equal(bitmap_clear_range(b, 0, 100), 0);
	assert_int_equal(bitmap_set_bytes(b, 100 * C, 1), 0);
	assert_int_equal(bitmap_set_bytes(b, UINT64_MAX, UINT64_MAX), 0);
	assert_int_equal(bitmap_count(b), 0);
	assert_int_equal(bitmap_set_bytes(b, 99 * C + 7, 5 * C), 0);
	assert_true(bitmap_test(b, 99) && bitmap_count(b) == 1);
	assert_int_equal(bitmap_set_bytes(b, 98 * C, UINT64_MAX), 0);
	assert_int_equal(bitmap_count(b), 2);
	assert_int_equal(bitmap_set_bytes(b, 0, UINT64_MAX), 0);
	assert_int_equal(bitmap_count(b), 100);
	bitmap_free(b);
}

static void test_dup(void **state)
{
	struct bitmap *a = bitmap_new(77), *d;

	assert_non_null(a);
	assert_int_equal(bitmap_set_range(a, 5, 66), 0);
	d = bitmap_dup(a);
	assert_non_null(d);
	assert_int_equal(bitmap_size(d), 77);
	assert_int_equal(bitmap_count(d), 66);
	assert_int_equal(bitmap_clear_range(a, 0, 77), 0);
	assert_int_equal(bitmap_count(d), 66);
	bitmap_free(a);
	bitmap_free(d);
}

/* Random operations on sizes around word boundaries against the model. */
static void test_model_random(void **state)
{
	static const uint64_t sizes[] = { 1, 5, 64, 100, 128, 200, 1000, 4097 };
	uint64_t seed = 20240611;

	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		uint64_t n = sizes[k];
		struct bitmap *b = bitmap_new(n), *o = bitmap_new(n), *d;
		bool *m = calloc(n, 1), *mo = calloc(n, 1);

		assert_true(b && o && m && mo);
		for (int op = 0; op < 600; op++) {
			uint64_t st = xrand(&seed) % (n + 1), c = xrand(&seed) % (n - st + 1);
			uint64_t off, len, i;
			uint8_t *enc;
			size_t elen;

			switch (xrand(&seed) % 8) {
			case 0: case 1:
				assert_int_equal(bitmap_set_range(b, st, c), 0);
				model_range(m, st, c, true);
				break;
			case 2:
				assert_int_equal(bitmap_clear_range(b, st, c), 0);
				model_range(m, st, c, false);
				break;
			case 3:
				off = xrand(&seed) % ((n + 2) * BITMAP_CLUSTER_SIZE);
				len = xrand(&seed) % (4 * BITMAP_CLUSTER_SIZE);
				assert_int_equal(bitmap_set_bytes(b, off, len), 0);
				for (i = off; len && i <= off + len - 1 && i / BITMAP_CLUSTER_SIZE < n;
				     i = (i / BITMAP_CLUSTER_SIZE + 1) * BITMAP_CLUSTER_SIZE)
					m[i / BITMAP_CLUSTER_SIZE] = true;
				break;
			case 4:
				assert_int_equal(bitmap_set_range(o, st, c), 0);
				model_range(mo, st, c, true);
				if (xrand(&seed) % 2) {
					assert_int_equal(bitmap_clear_range(o, st / 2, c / 2), 0);
					model_range(mo, st / 2, c / 2, false);
				}
				break;
			case 5:
				assert_int_equal(bitmap_union(b, o), 0);
				for (i = 0; i < n; i++)
					m[i] |= mo[i];
				break;
			case 6:
				assert_int_equal(bitmap_intersect(b, o), 0);
				for (i = 0; i < n; i++)
					m[i] &= mo[i];
				break;
			default:
				assert_int_equal(bitmap_encode(b, &enc, &elen), 0);
				assert_int_equal(bitmap_decode(enc, elen, &d), 0);
				free(enc);
				bitmap_free(b);
				b = d;
				break;
			}
			check_model(b, m, n);
		}
		check_model(o, mo, n);
		bitmap_free(b);
		bitmap_free(o);
		free(m);
		free(mo);
	}
}

/* ------------------------------------------------------------ encoding */

static void roundtrip(const struct bitmap *b)
{
	struct bitmap *d;
	uint8_t *enc, *enc2;
	size_t len, len2;
	uint64_t from = 0, s, l, s2, l2;

	assert_int_equal(bitmap_encode(b, &enc, &len), 0);
	assert_int_equal(bitmap_decode(enc, len, &d), 0);
	assert_int_equal(bitmap_size(d), bitmap_size(b));
	assert_int_equal(bitmap_count(d), bitmap_count(b));
	while (bitmap_next_run(b, from, &s, &l)) {
		assert_true(bitmap_next_run(d, from, &s2, &l2));
		assert_true(s == s2 && l == l2);
		from = s + l;
	}
	assert_false(bitmap_next_run(d, from, &s2, &l2));
	assert_int_equal(bitmap_encode(d, &enc2, &len2), 0);
	assert_int_equal(len, len2);
	assert_memory_equal(enc, enc2, len);
	free(enc);
	free(enc2);
	bitmap_free(d);
}

static void test_encode_roundtrips(void **state)
{
	static const uint64_t sizes[] = { 0, 1, 63, 64, 65, 1000, 100003 };
	uint64_t seed = 77;

	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		uint64_t n = sizes[k];
		struct bitmap *b = bitmap_new(n);

		assert_non_null(b);
		roundtrip(b);                           /* empty */
		bitmap_set_all(b);
		roundtrip(b);                           /* full */
		assert_int_equal(bitmap_clear_range(b, 0, n), 0);
		for (uint64_t i = 0; i < n; i += 2)
			assert_int_equal(bitmap_set_range(b, i, 1), 0);
		roundtrip(b);                           /* alternating */
		for (uint64_t i = 0; i < n; i++) {
			if (xrand(&seed) % 3 == 0)
				assert_int_equal(bitmap_clear_range(b, i, 1), 0);
			else if (xrand(&seed) % 2)
				assert_int_equal(bitmap_set_range(b, i, 1), 0);
		}
		roundtrip(b);                           /* random */
		bitmap_free(b);
	}
}

/* The format, byte for byte: 10 bits with {2,3,4} and {7} set. */
static const uint8_t small_body[] = {
	'V', 'B', 'B', 'M', 1, 0, 0, 0, 10, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0,
	2, 3, 2, 1,
};
#define SMALL_LEN (sizeof(small_body) + DIGEST_LEN)

static void small_encoding(uint8_t out[SMALL_LEN])
{
	memcpy(out, small_body, sizeof(small_body));
	reseal(out, SMALL_LEN);
}

static void test_encode_format(void **state)
{
	struct bitmap *b = bitmap_new(10);
	uint8_t want[SMALL_LEN], *enc;
	size_t len;

	assert_non_null(b);
	assert_int_equal(bitmap_set_range(b, 2, 3), 0);
	assert_int_equal(bitmap_set_range(b, 7, 1), 0);
	assert_int_equal(bitmap_encode(b, &enc, &len), 0);
	small_encoding(want);
	assert_int_equal(len, SMALL_LEN);
	assert_memory_equal(enc, want, SMALL_LEN);
	free(enc);
	bitmap_free(b);
}

static void test_decode_truncated(void **state)
{
	uint8_t enc[SMALL_LEN];
	struct bitmap *b = (struct bitmap *)enc;

	small_encoding(enc);
	for (size_t l = 0; l < SMALL_LEN; l++) {
		int want = l < 24 + DIGEST_LEN ? BITMAP_ERR_TRUNCATED : BITMAP_ERR_CHECKSUM;

		assert_int_equal(bitmap_decode(enc, l, &b), want);
		assert_null(b);
	}
	assert_int_equal(bitmap_decode(enc, SMALL_LEN, &b), 0);
	bitmap_free(b);
}

static void test_decode_flipped_bits(void **state)
{
	uint8_t enc[SMALL_LEN];
	struct bitmap *b;

	small_encoding(enc);
	for (size_t i = 0; i < SMALL_LEN; i++) {
		for (int bit = 0; bit < 8; bit++) {
			int want = i < 4 ? BITMAP_ERR_MAGIC : i < 8 ? BITMAP_ERR_VERSION : BITMAP_ERR_CHECKSUM;

			enc[i] ^= (uint8_t)(1u << bit);
			assert_int_equal(bitmap_decode(enc, SMALL_LEN, &b), want);
			assert_null(b);
			enc[i] ^= (uint8_t)(1u << bit);
		}
	}
}

static void test_decode_version(void **state)
{
	uint8_t enc[SMALL_LEN];
	struct bitmap *b;
	static const uint32_t versions[] = { 0, 2, 0xffffffffu };

	for (size_t k = 0; k < 3; k++) {
		small_encoding(enc);
		put_le32(enc + 4, (uint32_t)versions[k]);
		reseal(enc, SMALL_LEN);
		assert_int_equal(bitmap_decode(enc, SMALL_LEN, &b), BITMAP_ERR_VERSION);
		/* Short input of a newer version: still the version that is refused. */
		assert_int_equal(bitmap_decode(enc, 8, &b), BITMAP_ERR_VERSION);
	}
	memcpy(enc, "VBDM", 4);   /* a digest map is not a bitmap */
	assert_int_equal(bitmap_decode(enc, SMALL_LEN, &b), BITMAP_ERR_MAGIC);
}

/* A correctly sealed encoding with header (nbits, nruns) and the given run
 * bytes: decode's result. */
static int decode_crafted(uint64_t nbits, uint64_t nruns, const uint8_t *runs, size_t nrb)
{
	uint8_t buf[128];
	size_t len = 24 + nrb + DIGEST_LEN;
	struct bitmap *b = NULL;
	int rc;

	assert_true(len <= sizeof(buf));
	memcpy(buf, "VBBM", 4);
	put_le32(buf + 4, 1);
	put_le64(buf + 8, nbits);
	put_le64(buf + 16, nruns);
	if (nrb)
		memcpy(buf + 24, runs, nrb);
	reseal(buf, len);
	rc = bitmap_decode(buf, len, &b);
	assert_true(rc == 0 ? b != NULL : b == NULL);
	bitmap_free(b);
	return rc;
}

static void test_decode_corrupt(void **state)
{
	static const uint8_t ok[] = { 0, 3, 2, 1 };
	static const uint8_t gap_past[] = { 11, 1 };
	static const uint8_t len_past[] = { 8, 3 };
	static const uint8_t zero_run[] = { 2, 0 };
	static const uint8_t adjacent[] = { 0, 3, 0, 1 };
	static const uint8_t overlong[] = { 0x82, 0x00, 1 };
	static const uint8_t overlong_len[] = { 1, 0x81, 0x80, 0x00 };
	static const uint8_t too_wide[] = { 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02, 1 };
	static const uint8_t too_long[] = { 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 1 };
	/* gap = 2^63 + 5, len = 2^63: the sum wraps; both are far past nbits. */
	static const uint8_t wrap[] = { 0x85, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01,
					0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01 };
	static const uint8_t cut_varint[] = { 1, 0x81 };

	assert_int_equal(decode_crafted(10, 2, ok, sizeof(ok)), 0);
	assert_int_equal(decode_crafted(4, 1, ok, 2), 0);                /* run to the end */
	assert_int_equal(decode_crafted(0, 0, NULL, 0), 0);
	assert_int_equal(decode_crafted(BITMAP_MAX_BITS + 1, 0, NULL, 0), BITMAP_ERR_CORRUPT);
	assert_int_equal(decode_crafted(UINT64_MAX, 0, NULL, 0), BITMAP_ERR_CORRUPT);
	assert_int_equal(decode_crafted(10, 1, gap_past, 2), BITMAP_ERR_CORRUPT);
	assert_int_equal(decode_crafted(10, 1, len_past, 2), BITMAP_ERR_CORRUPT);
	assert_int_equal(decode_crafted(2, 1, ok, 2), BITMAP_ERR_CORRUPT);  /* [0, 3) in 2 bits */
	assert_int_equal(decode_crafted(0, 1, ok, 2), BITMAP_ERR_CORRUPT);
	assert_int_equal(decode_crafted(10, 1, zero_run, 2), BITMAP_ERR_CORRUPT);
	assert_int_equal(decode_crafted(10, 2, adjacent, 4), BITMAP_ERR_CORRUPT);
	assert_int_equal(decode_crafted(10, 1, overlong, 3), BITMAP_ERR_CORRUPT);
	assert_int_equal(decode_crafted(10, 1, overlong_len, 4), BITMAP_ERR_CORRUPT);
	assert_int_equal(decode_crafted(10, 1, too_wide, sizeof(too_wide)), BITMAP_ERR_CORRUPT);
	assert_int_equal(decode_crafted(10, 1, too_long, sizeof(too_long)), BITMAP_ERR_CORRUPT);
	assert_int_equal(decode_crafted(BITMAP_MAX_BITS, 1, wrap, sizeof(wrap)), BITMAP_ERR_CORRUPT);
	assert_int_equal(decode_crafted(10, 1, cut_varint, 2), BITMAP_ERR_CORRUPT);
	assert_int_equal(decode_crafted(10, 3, ok, sizeof(ok)), BITMAP_ERR_CORRUPT);  /* count high */
	assert_int_equal(decode_crafted(10, 1, ok, sizeof(ok)), BITMAP_ERR_CORRUPT);  /* trailing */
	assert_int_equal(decode_crafted(10, 0, ok, 1), BITMAP_ERR_CORRUPT);           /* trailing */
	assert_int_equal(decode_crafted(10, UINT64_MAX, ok, sizeof(ok)), BITMAP_ERR_CORRUPT);
}

static void test_strerror(void **state)
{
	for (int c = 0; c >= BITMAP_ERR_IO; c--) {
		assert_non_null(bitmap_strerror(c));
		for (int d = c + 1; d <= 0; d++)
			assert_string_not_equal(bitmap_strerror(c), bitmap_strerror(d));
	}
	assert_string_equal(bitmap_strerror(-100), "unknown bitmap error");
}

/* ------------------------------------------------------------ digest maps */

static void test_digest_cluster(void **state)
{
	static const uint8_t abc[DIGEST_LEN] = {
		0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22, 0x23,
		0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad,
	};
	static const uint8_t zeros64k[DIGEST_LEN] = {
		0xde, 0x2f, 0x25, 0x60, 0x64, 0xa0, 0xaf, 0x79, 0x77, 0x47, 0xc2, 0xb9, 0x75, 0x05, 0xdc, 0x0b,
		0x9f, 0x3d, 0xf0, 0xde, 0x4f, 0x48, 0x9e, 0xac, 0x73, 0x1c, 0x23, 0xae, 0x9c, 0xa9, 0xcc, 0x31,
	};
	uint8_t *buf = calloc(1, BITMAP_CLUSTER_SIZE), d[DIGEST_LEN];

	assert_non_null(buf);
	assert_int_equal(digest_cluster("abc", 3, d), 0);
	assert_memory_equal(d, abc, DIGEST_LEN);
	assert_int_equal(digest_cluster(buf, BITMAP_CLUSTER_SIZE, d), 0);
	assert_memory_equal(d, zeros64k, DIGEST_LEN);
	free(buf);
}

static void test_digest_roundtrip(void **state)
{
	/* 2047 clusters fill the writer's buffer exactly; 5000 need several. */
	static const uint64_t sizes[] = { 0, 1, 65535, 65536, 65537, 10 * 65536, 2047 * 65536,
					  5000 * 65536 + 3 };

	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		uint64_t n = bitmap_clusters(sizes[k]), size, clusters;
		uint8_t root[DIGEST_LEN], root2[DIGEST_LEN], *dg, *dg2;
		struct membuf m;
		static const size_t chunks[] = { 1, 7, 100, 70000 };

		write_map(&m, sizes[k], k + 1, &dg, root);
		assert_int_equal(m.len, 24 + n * DIGEST_LEN + DIGEST_LEN);
		assert_memory_equal(m.data, "VBDM\1\0\0\0", 8);
		/* The root is the trailer, SHA-256 over header and digests. */
		assert_memory_equal(m.data + m.len - DIGEST_LEN, root, DIGEST_LEN);
		reseal(m.data, m.len);
		assert_memory_equal(m.data + m.len - DIGEST_LEN, root, DIGEST_LEN);
		dg2 = malloc(n * DIGEST_LEN + 1);
		assert_non_null(dg2);
		for (size_t c = 0; c < 4; c++) {
			if (n > 100 && chunks[c] < 7)
				continue;
			memset(root2, 0, DIGEST_LEN);
			assert_int_equal(read_map(m.data, m.len, chunks[c], &size, &clusters, dg2, root2), 0);
			assert_int_equal(size, sizes[k]);
			assert_int_equal(clusters, n);
			if (n)
				assert_memory_equal(dg, dg2, n * DIGEST_LEN);
			assert_memory_equal(root, root2, DIGEST_LEN);
		}
		free(dg);
		free(dg2);
		free(m.data);
	}
}

static void test_digest_reader_truncated(void **state)
{
	uint8_t root[DIGEST_LEN], *dg;
	uint64_t size, clusters;
	struct membuf m;

	write_map(&m, 150000, 9, &dg, root);
	for (size_t l = 0; l < m.len; l++)
		for (size_t chunk = 1; chunk <= 64; chunk *= 4)
			assert_int_equal(read_map(m.data, l, chunk, &size, &clusters, NULL, root),
					 BITMAP_ERR_TRUNCATED);
	free(dg);
	free(m.data);
}

static void test_digest_reader_flipped(void **state)
{
	uint8_t root[DIGEST_LEN], *dg;
	uint64_t size, clusters;
	struct membuf m;

	write_map(&m, 150000, 9, &dg, root);
	for (size_t i = 0; i < m.len; i++) {
		int want = BITMAP_ERR_CHECKSUM;

		m.data[i] ^= 0xff;
		if (i < 4)
			want = BITMAP_ERR_MAGIC;
		else if (i < 8)
			want = BITMAP_ERR_VERSION;
		else if (i < 24) {
			uint64_t s = 0, c = 0;

			for (int j = 7; j >= 0; j--) {
				s = (s << 8) | m.data[8 + j];
				c = (c << 8) | m.data[16 + j];
			}
			if (bitmap_clusters(s) != c)
				want = BITMAP_ERR_CORRUPT;
		}
		assert_int_equal(read_map(m.data, m.len, 13, &size, &clusters, NULL, root), want);
		m.data[i] ^= 0xff;
	}
	free(dg);
	free(m.data);
}

static void test_digest_reader_bad_header(void **state)
{
	uint8_t root[DIGEST_LEN], *dg, *buf;
	uint64_t size, clusters;
	struct membuf m;

	write_map(&m, 150000, 9, &dg, root);
	buf = malloc(m.len + 1);
	assert_non_null(buf);
	/* A wrong cluster count, sealed with a correct trailer. */
	memcpy(buf, m.data, m.len);
	put_le64(buf + 16, 4);
	reseal(buf, m.len);
	assert_int_equal(read_map(buf, m.len, 5, &size, &clusters, NULL, root), BITMAP_ERR_CORRUPT);
	put_le64(buf + 16, 2);
	reseal(buf, m.len);
	assert_int_equal(read_map(buf, m.len, 5, &size, &clusters, NULL, root), BITMAP_ERR_CORRUPT);
	/* A newer version, sealed; a bitmap instead of a digest map. */
	memcpy(buf, m.data, m.len);
	put_le32(buf + 4, 2);
	reseal(buf, m.len);
	assert_int_equal(read_map(buf, m.len, 5, &size, &clusters, NULL, root), BITMAP_ERR_VERSION);
	assert_int_equal(read_map(buf, 8, 5, &size, &clusters, NULL, root), BITMAP_ERR_VERSION);
	memcpy(buf, "VBBM", 4);
	assert_int_equal(read_map(buf, m.len, 5, &size, &clusters, NULL, root), BITMAP_ERR_MAGIC);
	/* Trailing bytes, arriving with the trailer or in a later read. */
	memcpy(buf, m.data, m.len);
	buf[m.len] = 0;
	assert_int_equal(read_map(buf, m.len + 1, 1, &size, &clusters, NULL, root), BITMAP_ERR_CORRUPT);
	assert_int_equal(read_map(buf, m.len + 1, 5000, &size, &clusters, NULL, root),
			 BITMAP_ERR_CORRUPT);
	assert_int_equal(read_map(buf, m.len, 5000, &size, &clusters, NULL, root), 0);
	free(buf);
	free(dg);
	free(m.data);
}

static void test_digest_writer_errors(void **state)
{
	uint8_t d[DIGEST_LEN] = { 1 }, root[DIGEST_LEN];
	struct membuf m = { 0 };
	struct digest_writer *w = digest_writer_new(3 * 65536 + 1, mem_write, &m);
	int rc = 0, i;

	assert_non_null(w);
	for (i = 0; i < 3; i++)
		assert_int_equal(digest_writer_add(w, d), 0);
	assert_int_equal(digest_writer_finish(w, root), BITMAP_ERR_RANGE);  /* one missing */
	assert_int_equal(m.len, 0);
	assert_int_equal(digest_writer_add(w, d), 0);
	assert_int_equal(digest_writer_add(w, d), BITMAP_ERR_RANGE);        /* one too many */
	assert_int_equal(digest_writer_finish(w, NULL), 0);
	assert_int_equal(digest_writer_finish(w, NULL), BITMAP_ERR_RANGE);
	digest_writer_free(w);
	free(m.data);

	/* A failing sink: the error sticks. */
	memset(&m, 0, sizeof(m));
	m.fail_at_call = 1;
	w = digest_writer_new(4000 * 65536, mem_write, &m);
	assert_non_null(w);
	for (i = 0; i < 4000 && rc == 0; i++)
		rc = digest_writer_add(w, d);
	assert_int_equal(rc, BITMAP_ERR_IO);
	assert_true(i < 4000);
	assert_int_equal(digest_writer_add(w, d), BITMAP_ERR_IO);
	assert_int_equal(digest_writer_finish(w, root), BITMAP_ERR_IO);
	digest_writer_free(w);
	/* The trailer's write fails. */
	memset(&m, 0, sizeof(m));
	m.fail_at_call = 2;
	w = digest_writer_new(1, mem_write, &m);
	assert_non_null(w);
	assert_int_equal(digest_writer_add(w, d), 0);
	assert_int_equal(digest_writer_finish(w, root), BITMAP_ERR_IO);
	digest_writer_free(w);
	free(m.data);
}

static void test_digest_reader_errors(void **state)
{
	uint8_t root[DIGEST_LEN], *dg, d[DIGEST_LEN];
	struct membuf m;
	struct memsrc src;
	struct digest_reader *r;
	uint64_t size, clusters;
	int rc = 0;

	write_map(&m, 5 * 65536, 3, &dg, root);
	/* Misuse: next before start, root before the end. */
	r = digest_reader_new(chunk_read, &src);
	assert_non_null(r);
	assert_int_equal(digest_reader_next(r, d), BITMAP_ERR_RANGE);
	src = (struct memsrc){ m.data, m.len, 0, 50, SIZE_MAX, 1, 0 };
	assert_int_equal(digest_reader_start(r, &size, &clusters), 0);
	assert_int_equal(digest_reader_start(r, &size, &clusters), BITMAP_ERR_RANGE);
	assert_int_equal(digest_reader_next(r, d), 1);
	memset(root, 0xee, DIGEST_LEN);
	digest_reader_root(r, root);
	for (unsigned i = 0; i < DIGEST_LEN; i++)
		assert_int_equal(root[i], 0);
	digest_reader_free(r);
	/* A failing source at every offset: IO, and it sticks. */
	for (size_t at = 0; at <= m.len; at++) {
		memset(&src, 0, sizeof(src));
		src = (struct memsrc){ m.data, m.len, 0, 50, at, at + 1, 0 };
		r = digest_reader_new(chunk_read, &src);
		assert_non_null(r);
		rc = digest_reader_start(r, &size, &clusters);
		while (rc == 0 && (rc = digest_reader_next(r, d)) == 1)
			rc = 0;
		assert_int_equal(rc, BITMAP_ERR_IO);
		assert_int_equal(digest_reader_next(r, d), BITMAP_ERR_IO);
		assert_int_equal(digest_reader_start(r, &size, &clusters), BITMAP_ERR_IO);
		digest_reader_free(r);
	}
	free(dg);
	free(m.data);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty_bitmap),
		cmocka_unit_test(test_limits_and_null),
		cmocka_unit_test(test_ranges_exhaustive),
		cmocka_unit_test(test_next_run_patterns),
		cmocka_unit_test(test_union_intersect),
		cmocka_unit_test(test_set_bytes),
		cmocka_unit_test(test_dup),
		cmocka_unit_test(test_model_random),
		cmocka_unit_test(test_encode_roundtrips),
		cmocka_unit_test(test_encode_format),
		cmocka_unit_test(test_decode_truncated),
		cmocka_unit_test(test_decode_flipped_bits),
		cmocka_unit_test(test_decode_version),
		cmocka_unit_test(test_decode_corrupt),
		cmocka_unit_test(test_strerror),
		cmocka_unit_test(test_digest_cluster),
		cmocka_unit_test(test_digest_roundtrip),
		cmocka_unit_test(test_digest_reader_truncated),
		cmocka_unit_test(test_digest_reader_flipped),
		cmocka_unit_test(test_digest_reader_bad_header),
		cmocka_unit_test(test_digest_writer_errors),
		cmocka_unit_test(test_digest_reader_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
