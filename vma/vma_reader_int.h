/* vma_reader_int.h: the VMA reader's private state, shared by the header
 * parser (vma_header.c), the extent decoder (vma_reader.c) and vma_seen.c. */
#ifndef VMABACK_VMA_READER_INT_H
#define VMABACK_VMA_READER_INT_H

#ifndef VB_MODULE_vma
#error "vma/vma_reader_int.h is private to vma/: include vma/vma.h"
#endif

#include "vma/vma_int.h"

/* Seen clusters of one device: a three-level radix of bitmaps allocated on
 * first use, so memory follows the clusters present in the stream (at most
 * about 12 KiB per new cluster, typically 8 KiB per 4 GiB of device), never
 * the sizes a header declares. */
struct vma_seen;

/* Marks cluster c. Returns 1 when it was already marked, 0 when newly
 * marked, -1 when out of memory. *s is allocated on first use. */
int vma_seen_mark(struct vma_seen **s, uint32_t c);
uint64_t vma_seen_count(const struct vma_seen *s);
/* The first cluster of 0..n-1 not marked: returns 1 and sets *first, or 0
 * when all are marked. */
int vma_seen_first_missing(const struct vma_seen *s, uint64_t n, uint64_t *first);
void vma_seen_free(struct vma_seen *s);

enum rstate { R_NEW, R_READY, R_END, R_FAILED };

struct rslot {
	unsigned dev_id;
	uint32_t cluster_num;
	uint16_t mask;
	size_t data_off;    /* offset in ext of the slot's first stored block */
	uint32_t dev_bytes; /* bytes of the device in this cluster (1..65536) */
};

struct vma_reader {
	vma_read_fn fn;
	void *opaque;
	EVP_MD_CTX *md;
	enum rstate state;
	uint64_t offset;    /* bytes consumed */

	uint8_t *head;      /* the whole header; names and configs point into it */
	uint32_t header_size;
	uint8_t uuid[VMA_UUID_LEN];
	int64_t ctime;
	struct vma_device_info devices[VMA_DEV_SLOTS];
	unsigned ndevices;
	uint8_t index_of[VMA_DEV_SLOTS]; /* dev_id -> index + 1, 0 = no device */
	struct vma_config_info configs[VMA_MAX_CONFIGS];
	unsigned nconfigs;

	struct vma_seen *seen[VMA_DEV_SLOTS];
	uint8_t *ext;       /* current extent, header and data */
	size_t ext_cap;
	uint64_t ext_offset;
	struct rslot slots[VMA_BLOCKINFO_PER_EXTENT];
	unsigned nslots, next_slot;
	uint8_t *cbuf;      /* cluster being delivered */
	uint16_t cbuf_dirty; /* blocks of cbuf that may be non-zero */

	struct vma_errslot err;
};

/* Reads up to len bytes, looping over short reads; *got < len only at the end
 * of the stream. Returns 0, or -1 with VMA_ERR_IO set (the reader fails). */
int vma_reader_fill(struct vma_reader *r, void *buf, size_t len, size_t *got);
/* Sets an error that ends the stream for this reader; returns -1. */
int vma_reader_fail(struct vma_reader *r, enum vma_err code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

int vma_header_parse(struct vma_reader *r);

#endif
