/* fuzz_digest_reader.c: libFuzzer target for the digest map reader over a
 * pipe-like source: it must fail safely, and a map it accepts must be exactly
 * what the writer produces for the same size and digests. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "bitmap/bitmap.h"

struct src {
	const uint8_t *data;
	size_t size, pos;
	uint64_t rnd;
};

/* Short reads of 1..97 bytes and an -EINTR now and then. */
static ssize_t src_read(void *opaque, void *buf, size_t len)
{
	struct src *s = opaque;
	size_t n;

	s->rnd ^= s->rnd << 13;
	s->rnd ^= s->rnd >> 7;
	s->rnd ^= s->rnd << 17;
	if (s->rnd % 11 == 0)
		return -EINTR;
	n = 1 + s->rnd % 97;
	if (n > len)
		n = len;
	if (n > s->size - s->pos)
		n = s->size - s->pos;
	memcpy(buf, s->data + s->pos, n);
	s->pos += n;
	return (ssize_t)n;
}

struct out {
	const uint8_t *want;
	size_t size, pos;
};

static int out_write(void *opaque, const void *buf, size_t len)
{
	struct out *o = opaque;

	if (len > o->size - o->pos || memcmp(o->want + o->pos, buf, len) != 0)
		abort();
	o->pos += len;
	return 0;
}

/* The writer must reproduce an accepted map byte for byte. */
static void rewrite(const uint8_t *data, size_t size, uint64_t drive_size, const uint8_t *dg,
		    uint64_t n, const uint8_t root[DIGEST_LEN])
{
	struct out o = { data, size, 0 };
	struct digest_writer *w = digest_writer_new(drive_size, out_write, &o);
	uint8_t root2[DIGEST_LEN];

	if (!w)
		abort();
	for (uint64_t i = 0; i < n; i++)
		if (digest_writer_add(w, dg + i * DIGEST_LEN) != BITMAP_OK)
			abort();
	if (digest_writer_finish(w, root2) != BITMAP_OK || o.pos != size ||
	    memcmp(root, root2, DIGEST_LEN) != 0)
		abort();
	digest_writer_free(w);
}

static void check(const uint8_t *data, size_t size)
{
	struct src s = { data, size, 0, 0x9e3779b97f4a7c15ull ^ size };
	struct digest_reader *r = digest_reader_new(src_read, &s);
	uint8_t d[DIGEST_LEN], root[DIGEST_LEN], *dg;
	uint64_t drive_size = 0, clusters = 0, n = 0;
	int rc;

	/* Every digest sits in the input: at most size / 32 of them. */
	dg = malloc(size / DIGEST_LEN * DIGEST_LEN + 1);
	if (!r || !dg)
		abort();
	rc = digest_reader_start(r, &drive_size, &clusters);
	while (rc == BITMAP_OK && (rc = digest_reader_next(r, d)) == 1) {
		if (n >= size / DIGEST_LEN || n >= clusters)
			abort();
		memcpy(dg + n * DIGEST_LEN, d, DIGEST_LEN);
		n++;
		rc = BITMAP_OK;
	}
	if (rc == BITMAP_OK) {
		if (n != clusters || s.pos != size)
			abort();
		digest_reader_root(r, root);
		rewrite(data, size, drive_size, dg, n, root);
	} else if (rc < BITMAP_ERR_IO || rc == BITMAP_ERR_IO || rc == BITMAP_ERR_RANGE ||
		   rc == BITMAP_ERR_SIZE || digest_reader_next(r, d) != rc) {
		abort();
	}
	digest_reader_free(r);
	free(dg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *copy;

	check(data, size);
	/* Again with the trailer made right, to reach the accepting path. */
	if (size < DIGEST_LEN)
		return 0;
	copy = malloc(size);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	if (digest_cluster(copy, size - DIGEST_LEN, copy + size - DIGEST_LEN) == BITMAP_OK)
		check(copy, size);
	free(copy);
	return 0;
}
