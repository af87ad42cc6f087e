/* bitmap.c: the dense dirty bitmap (64-bit words, one bit per 64 KiB cluster)
 * and its checked, run-length coded encoding. */
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "bitmap/bitmap.h"
#include "bitmap/bitmap_int.h"

/* Bits at or past nbits in the last word are always zero: count, next_run
 * and encode rely on it. */
struct bitmap {
	uint64_t nbits;
	size_t nwords;
	uint64_t *w;
};

const char *bitmap_strerror(int code)
{
	switch (code) {
	case BITMAP_OK: return "success";
	case BITMAP_ERR_NOMEM: return "out of memory";
	case BITMAP_ERR_RANGE: return "index or range outside the bitmap";
	case BITMAP_ERR_SIZE: return "sizes differ";
	case BITMAP_ERR_MAGIC: return "not a vmaback bitmap or digest map";
	case BITMAP_ERR_VERSION: return "unsupported format version";
	case BITMAP_ERR_CHECKSUM: return "checksum mismatch";
	case BITMAP_ERR_TRUNCATED: return "truncated";
	case BITMAP_ERR_CORRUPT: return "inconsistent content";
	case BITMAP_ERR_IO: return "I/O error";
	default: return "unknown bitmap error";
	}
}

uint64_t bitmap_clusters(uint64_t bytes)
{
	return bytes / BITMAP_CLUSTER_SIZE + (bytes % BITMAP_CLUSTER_SIZE != 0);
}

struct bitmap *bitmap_new(uint64_t nbits)
{
	struct bitmap *b;

	if (nbits > BITMAP_MAX_BITS)
		return NULL;
	b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	b->nbits = nbits;
	b->nwords = (size_t)((nbits + 63) / 64);
	if (b->nwords) {
		b->w = calloc(b->nwords, sizeof(uint64_t));
		if (!b->w) {
			free(b);
			return NULL;
		}
	}
	return b;
}

struct bitmap *bitmap_dup(const struct bitmap *b)
{
	struct bitmap *d;

	if (!b)
		return NULL;
	d = bitmap_new(b->nbits);
	if (d && b->nwords)
		memcpy(d->w, b->w, b->nwords * sizeof(uint64_t));
	return d;
}

void bitmap_free(struct bitmap *b)
{
	if (!b)
		return;
	free(b->w);
	free(b);
}

uint64_t bitmap_size(const struct bitmap *b)
{
	return b ? b->nbits : 0;
}

static int apply_range(struct bitmap *b, uint64_t start, uint64_t count, bool set)
{
	uint64_t end, first, last, i;
	uint64_t fmask, lmask;

	if (start > b->nbits || count > b->nbits - start)
		return BITMAP_ERR_RANGE;
	if (count == 0)
		return BITMAP_OK;
	end = start + count;
	first = start / 64;
	last = (end - 1) / 64;
	fmask = ~UINT64_C(0) << (start % 64);
	lmask = ~UINT64_C(0) >> (63 - (end - 1) % 64);
	if (first == last)
		fmask &= lmask;
	if (set)
		b->w[first] |= fmask;
	else
		b->w[first] &= ~fmask;
	if (first == last)
		return BITMAP_OK;
	i = first + 1;
	if (last > i)
		memset(&b->w[i], set ? 0xff : 0, (size_t)(last - i) * sizeof(uint64_t));
	if (set)
		b->w[last] |= lmask;
	else
		b->w[last] &= ~lmask;
	return BITMAP_OK;
}

int bitmap_set_range(struct bitmap *b, uint64_t start, uint64_t count)
{
	return apply_range(b, start, count, true);
}

int bitmap_clear_range(struct bitmap *b, uint64_t start, uint64_t count)
{
	return apply_range(b, start, count, false);
}

void bitmap_set_all(struct bitmap *b)
{
	if (!b->nwords)
		return;
	memset(b->w, 0xff, b->nwords * sizeof(uint64_t));
	if (b->nbits % 64)
		b->w[b->nwords - 1] = (UINT64_C(1) << (b->nbits % 64)) - 1;
}

bool bitmap_test(const struct bitmap *b, uint64_t i)
{
	if (i >= b->nbits)
		return false;
	return (b->w[i / 64] >> (i % 64)) & 1;
}

uint64_t bitmap_count(const struct bitmap *b)
{
	uint64_t n = 0;

	for (size_t i = 0; i < b->nwords; i++)
		n += (uint64_t)__builtin_popcountll(b->w[i]);
	return n;
}

bool bitmap_next_run(const struct bitmap *b, uint64_t from, uint64_t *start, uint64_t *len)
{
	size_t wi;
	uint64_t word, s, e;

	if (from >= b->nbits)
		return false;
	wi = (size_t)(from / 64);
	word = b->w[wi] & (~UINT64_C(0) << (from % 64));
	while (!word) {
		if (++wi >= b->nwords)
			return false;
		word = b->w[wi];
	}
	s = (uint64_t)wi * 64 + (uint64_t)__builtin_ctzll(word);
	/* The run ends at the first clear bit after s; the zero padding past
	 * nbits ends it at nbits at the latest. */
	word = ~b->w[wi] & (~UINT64_C(0) << (s % 64));
	while (!word) {
		if (++wi >= b->nwords)
			break;
		word = ~b->w[wi];
	}
	e = word ? (uint64_t)wi * 64 + (uint64_t)__builtin_ctzll(word) : b->nbits;
	if (e > b->nbits)
		e = b->nbits;
	if (start)
		*start = s;
	if (len)
		*len = e - s;
	return true;
}

int bitmap_union(struct bitmap *dst, const struct bitmap *src)
{
	if (dst->nbits != src->nbits)
		return BITMAP_ERR_SIZE;
	for (size_t i = 0; i < dst->nwords; i++)
		dst->w[i] |= src->w[i];
	return BITMAP_OK;
}

int bitmap_intersect(struct bitmap *dst, const struct bitmap *src)
{
	if (dst->nbits != src->nbits)
		return BITMAP_ERR_SIZE;
	for (size_t i = 0; i < dst->nwords; i++)
		dst->w[i] &= src->w[i];
	return BITMAP_OK;
}

int bitmap_set_bytes(struct bitmap *b, uint64_t off, uint64_t len)
{
	uint64_t first, last, last_byte;

	if (len == 0)
		return BITMAP_OK;
	first = off / BITMAP_CLUSTER_SIZE;
	if (first >= b->nbits)
		return BITMAP_OK;
	/* The last byte, saturated: a range running past 2^64 ends there. */
	last_byte = len - 1 > UINT64_MAX - off ? UINT64_MAX : off + (len - 1);
	last = last_byte / BITMAP_CLUSTER_SIZE;
	if (last >= b->nbits)
		last = b->nbits - 1;
	return bitmap_set_range(b, first, last - first + 1);
}

/* ------------------------------------------------------------ encoding */

static size_t varint_len(uint64_t v)
{
	size_t n = 1;

	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

static uint8_t *put_varint(uint8_t *p, uint64_t v)
{
	while (v >= 0x80) {
		*p++ = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	*p++ = (uint8_t)v;
	return p;
}

/* Reads one minimal LEB128 u64 from [*pp, end): 0, or -1 if it runs past
 * end, is longer than needed (ends in a zero byte) or exceeds 64 bits. */
static int get_varint(const uint8_t **pp, const uint8_t *end, uint64_t *out)
{
	const uint8_t *p = *pp;
	uint64_t v = 0;
	unsigned shift = 0;

	for (;;) {
		uint8_t c;

		if (p == end)
			return -1;
		c = *p++;
		if (shift == 63 && c > 1)
			return -1;
		v |= (uint64_t)(c & 0x7f) << shift;
		if (!(c & 0x80)) {
			if (c == 0 && shift > 0)
				return -1;
			break;
		}
		shift += 7;
	}
	*pp = p;
	*out = v;
	return 0;
}

static int sha256(const uint8_t *buf, size_t len, uint8_t out[DIGEST_LEN])
{
	unsigned int n = 0;

	if (!EVP_Digest(buf, len, out, &n, EVP_sha256(), NULL) || n != DIGEST_LEN)
		return BITMAP_ERR_NOMEM;
	return BITMAP_OK;
}

int bitmap_encode(const struct bitmap *b, uint8_t **out, size_t *len)
{
	uint64_t from = 0, s, n, prev_end = 0, nruns = 0;
	size_t size = BITMAP_HDR_LEN + DIGEST_LEN;
	uint8_t *buf, *p;

	*out = NULL;
	*len = 0;
	if (b->nbits > BITMAP_MAX_BITS)
		return BITMAP_ERR_RANGE;
	/* Two passes: size the buffer exactly, then fill it. The size cannot
	 * overflow: at most 2^31 runs of at most 2 * 5 bytes. */
	while (bitmap_next_run(b, from, &s, &n)) {
		size += varint_len(s - prev_end) + varint_len(n);
		nruns++;
		prev_end = from = s + n;
	}
	buf = malloc(size);
	if (!buf)
		return BITMAP_ERR_NOMEM;
	memcpy(buf, BITMAP_MAGIC, 4);
	put_le32(buf + 4, BITMAP_VERSION);
	put_le64(buf + 8, b->nbits);
	put_le64(buf + 16, nruns);
	p = buf + BITMAP_HDR_LEN;
	from = prev_end = 0;
	while (bitmap_next_run(b, from, &s, &n)) {
		p = put_varint(p, s - prev_end);
		p = put_varint(p, n);
		prev_end = from = s + n;
	}
	if (sha256(buf, size - DIGEST_LEN, p) != BITMAP_OK) {
		free(buf);
		return BITMAP_ERR_NOMEM;
	}
	*out = buf;
	*len = size;
	return BITMAP_OK;
}

/* The runs after a good checksum: every inconsistency is CORRUPT. */
static int decode_runs(struct bitmap *b, uint64_t nruns, const uint8_t *p, const uint8_t *end)
{
	uint64_t pos = 0, gap, run;

	for (uint64_t i = 0; i < nruns; i++) {
		if (get_varint(&p, end, &gap) || get_varint(&p, end, &run))
			return BITMAP_ERR_CORRUPT;
		if ((i > 0 && gap == 0) || run == 0)
			return BITMAP_ERR_CORRUPT;
		if (gap > b->nbits - pos)
			return BITMAP_ERR_CORRUPT;
		pos += gap;
		if (run > b->nbits - pos)
			return BITMAP_ERR_CORRUPT;
		if (bitmap_set_range(b, pos, run) != BITMAP_OK)
			return BITMAP_ERR_CORRUPT;
		pos += run;
	}
	return p == end ? BITMAP_OK : BITMAP_ERR_CORRUPT;
}

int bitmap_decode(const uint8_t *buf, size_t len, struct bitmap **out)
{
	uint8_t sum[DIGEST_LEN];
	const uint8_t *body, *end;
	uint64_t nbits, nruns;
	struct bitmap *b;
	int rc;

	*out = NULL;
	if (len < ENC_MIN_LEN)
		return BITMAP_ERR_TRUNCATED;
	if (memcmp(buf, BITMAP_MAGIC, 4) != 0)
		return BITMAP_ERR_MAGIC;
	if (get_le32(buf + 4) != BITMAP_VERSION)
		return BITMAP_ERR_VERSION;
	if (len < BITMAP_HDR_LEN + DIGEST_LEN)
		return BITMAP_ERR_TRUNCATED;
	rc = sha256(buf, len - DIGEST_LEN, sum);
	if (rc != BITMAP_OK)
		return rc;
	if (memcmp(sum, buf + len - DIGEST_LEN, DIGEST_LEN) != 0)
		return BITMAP_ERR_CHECKSUM;
	nbits = get_le64(buf + 8);
	nruns = get_le64(buf + 16);
	body = buf + BITMAP_HDR_LEN;
	end = buf + len - DIGEST_LEN;
	/* A run takes two bytes at least; nbits is capped: no hostile size
	 * reaches the allocation. */
	if (nbits > BITMAP_MAX_BITS || nruns > (uint64_t)(end - body) / 2)
		return BITMAP_ERR_CORRUPT;
	b = bitmap_new(nbits);
	if (!b)
		return BITMAP_ERR_NOMEM;
	rc = decode_runs(b, nruns, body, end);
	if (rc != BITMAP_OK) {
		bitmap_free(b);
		return rc;
	}
	*out = b;
	return BITMAP_OK;
}
