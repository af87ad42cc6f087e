/* bitmap.h: dirty bitmaps (one bit per 64 KiB cluster) and cluster digest
 * maps (SHA-256 per cluster), with their checked file encodings. */
#ifndef VMABACK_BITMAP_H
#define VMABACK_BITMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define BITMAP_CLUSTER_SIZE 65536u
#define DIGEST_LEN 32u   /* SHA-256 */
/* The largest bitmap: 2^32 clusters (256 TiB drives, a 512 MiB bitmap).
 * bitmap_new refuses more, so no bitmap is ever encoded that decode would
 * refuse, and a hostile encoding cannot make decode allocate more. */
#define BITMAP_MAX_BITS (UINT64_C(1) << 32)

/* ceil(bytes / BITMAP_CLUSTER_SIZE): the clusters of a drive of that size. */
uint64_t bitmap_clusters(uint64_t bytes);

/* Error codes (negative returns). */
enum bitmap_err {
	BITMAP_OK = 0,
	BITMAP_ERR_NOMEM = -1,
	BITMAP_ERR_RANGE = -2,     /* index or range outside the bitmap */
	BITMAP_ERR_SIZE = -3,      /* two bitmaps/maps of different sizes */
	BITMAP_ERR_MAGIC = -4,     /* not a vmaback bitmap/digest-map encoding */
	BITMAP_ERR_VERSION = -5,   /* a version this build does not know */
	BITMAP_ERR_CHECKSUM = -6,  /* the encoding's SHA-256 does not match */
	BITMAP_ERR_TRUNCATED = -7, /* the encoding ends early */
	BITMAP_ERR_CORRUPT = -8,   /* checksum right but content inconsistent */
	BITMAP_ERR_IO = -9,        /* a callback failed */
};
const char *bitmap_strerror(int code);

/* ------------------------------------------------------------ dirty bitmap */

struct bitmap;

/* nbits clusters, all clear. nbits may be 0; NULL if out of memory or
 * nbits > BITMAP_MAX_BITS. */
struct bitmap *bitmap_new(uint64_t nbits);
struct bitmap *bitmap_dup(const struct bitmap *b);
void bitmap_free(struct bitmap *b);
uint64_t bitmap_size(const struct bitmap *b);

/* [start, start+count) must lie inside the bitmap, else BITMAP_ERR_RANGE. */
int bitmap_set_range(struct bitmap *b, uint64_t start, uint64_t count);
int bitmap_clear_range(struct bitmap *b, uint64_t start, uint64_t count);
void bitmap_set_all(struct bitmap *b);
bool bitmap_test(const struct bitmap *b, uint64_t i);   /* false past the end */
uint64_t bitmap_count(const struct bitmap *b);          /* set bits */

/* The first run of set bits at or after from: returns true with *start and
 * *len (maximal run), false when no bit is set at or after from. */
bool bitmap_next_run(const struct bitmap *b, uint64_t from, uint64_t *start, uint64_t *len);

/* dst |= src, dst &= src; sizes must be equal (BITMAP_ERR_SIZE). */
int bitmap_union(struct bitmap *dst, const struct bitmap *src);
int bitmap_intersect(struct bitmap *dst, const struct bitmap *src);

/* Sets every cluster touched by the byte range [off, off+len): for mapping a
 * source's own dirty extents (any granularity) onto 64 KiB clusters.
 * Bytes past the end of the bitmap are ignored. */
int bitmap_set_bytes(struct bitmap *b, uint64_t off, uint64_t len);

/* Encoding (all integers little-endian):
 *   "VBBM", u32 version (1), u64 nbits, u64 number of runs,
 *   per run of set bits: LEB128 gap (from the end of the previous run, or
 *   from 0 for the first run), LEB128 run length,
 *   SHA-256 of all the bytes before it.
 * The encoding of a bitmap is unique: runs are maximal and ascending, varints
 * minimal. encode allocates *out (free()); BITMAP_ERR_NOMEM.
 * decode refuses anything damaged or foreign, never misreads it; it checks,
 * in this order: at least magic+version (TRUNCATED), magic (MAGIC), version
 * (VERSION: a newer version is refused, never guessed), at least header +
 * checksum (TRUNCATED), checksum (CHECKSUM), then the content (CORRUPT:
 * nbits > BITMAP_MAX_BITS, a run past nbits, an empty run, a gap of 0 after
 * a run, an overlong varint, a run count that does not match, trailing
 * bytes). It allocates only after the checksum matched. */
int bitmap_encode(const struct bitmap *b, uint8_t **out, size_t *len);
int bitmap_decode(const uint8_t *buf, size_t len, struct bitmap **out);

/* ------------------------------------------------------------ digest maps
 * A digest map records SHA-256 of each 64 KiB cluster of a drive at a
 * checkpoint. It is handled as a stream, so memory does not grow with the
 * drive: a writer appends digests in cluster order, a reader returns them
 * in order. The stream (integers little-endian):
 *   "VBDM", u32 version (1), u64 drive size in bytes, u64 cluster count
 *   (= bitmap_clusters(drive size)), the 32-byte digests in cluster order,
 *   a trailer: SHA-256 over everything before it.
 * The map's root hash is that trailer value. The stream ends after the
 * trailer: more bytes make it CORRUPT. */

/* SHA-256 of one cluster's bytes (len <= 65536; the last cluster of a drive
 * is shorter: only its bytes are hashed). 0, or BITMAP_ERR_NOMEM when
 * libcrypto fails (out is then all zeros: do not store or compare it). */
int digest_cluster(const void *data, size_t len, uint8_t out[DIGEST_LEN]);

typedef int (*digest_write_fn)(void *opaque, const void *buf, size_t len); /* 0 or -errno */
typedef ssize_t (*digest_read_fn)(void *opaque, void *buf, size_t len);   /* >0, 0 EOF, -errno */

/* The writer buffers 64 KiB and writes through fn; an fn failure makes every
 * later call fail with BITMAP_ERR_IO. */
struct digest_writer;
struct digest_writer *digest_writer_new(uint64_t drive_size, digest_write_fn fn, void *opaque);
/* Appends the digest of the next cluster (exactly bitmap_clusters(drive_size)
 * calls; one more is BITMAP_ERR_RANGE). */
int digest_writer_add(struct digest_writer *w, const uint8_t digest[DIGEST_LEN]);
/* Writes the trailer; fails with BITMAP_ERR_RANGE if a cluster is missing.
 * root (may be NULL) receives the map's root hash: SHA-256 over the header
 * and the digests, the value a manifest records. */
int digest_writer_finish(struct digest_writer *w, uint8_t root[DIGEST_LEN]);
void digest_writer_free(struct digest_writer *w);

/* The reader loops on short reads (pipes) and retries -EINTR; it reads the
 * stream to its end (EOF), checking nothing follows the trailer. A failed
 * fn is BITMAP_ERR_IO, an early EOF BITMAP_ERR_TRUNCATED; errors stick. */
struct digest_reader;
struct digest_reader *digest_reader_new(digest_read_fn fn, void *opaque);
/* Reads the header (once; again is BITMAP_ERR_RANGE, as is next before
 * start): returns 0 or a negative bitmap_err (TRUNCATED, MAGIC,
 * VERSION in the same order as bitmap_decode, CORRUPT if the cluster count
 * is not bitmap_clusters(drive size)). */
int digest_reader_start(struct digest_reader *r, uint64_t *drive_size, uint64_t *clusters);
/* The next cluster's digest: 1, 0 after the last one (the trailer has then
 * been checked), or a negative bitmap_err (a damaged map is never half-used:
 * callers must treat an error at any point as "no map"). */
int digest_reader_next(struct digest_reader *r, uint8_t digest[DIGEST_LEN]);
/* After next returned 0: the root hash, same definition as the writer's
 * (all zeros before that). */
void digest_reader_root(const struct digest_reader *r, uint8_t root[DIGEST_LEN]);
void digest_reader_free(struct digest_reader *r);

#endif
