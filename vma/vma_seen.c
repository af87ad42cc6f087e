/* vma_seen.c: the reader's record of clusters seen per device, sized by the
 * clusters present rather than by declared device sizes (hostile headers). */
#include <stdlib.h>

#include "vma/vma_reader_int.h"

/* cluster number bits: 8 (top) + 8 (mid) + 16 (leaf bitmap of 8 KiB) */
#define LEAF_BITS 16u
#define LEAF_WORDS ((1u << LEAF_BITS) / 64u)
#define FANOUT 256u

struct seen_mid {
	uint64_t *leaf[FANOUT];
};

struct vma_seen {
	struct seen_mid *mid[FANOUT];
	uint64_t count;
};

int vma_seen_mark(struct vma_seen **sp, uint32_t c)
{
	struct vma_seen *s = *sp;
	unsigned top = c >> 24, mid = (c >> 16) & 0xffu, bit = c & 0xffffu;
	uint64_t **leafp, m;

	if (!s) {
		s = calloc(1, sizeof(*s));
		if (!s)
			return -1;
		*sp = s;
	}
	if (!s->mid[top]) {
		s->mid[top] = calloc(1, sizeof(*s->mid[top]));
		if (!s->mid[top])
			return -1;
	}
	leafp = &s->mid[top]->leaf[mid];
	if (!*leafp) {
		*leafp = calloc(LEAF_WORDS, sizeof(uint64_t));
		if (!*leafp)
			return -1;
	}
	m = (uint64_t)1 << (bit % 64);
	if ((*leafp)[bit / 64] & m)
		return 1;
	(*leafp)[bit / 64] |= m;
	s->count++;
	return 0;
}

uint64_t vma_seen_count(const struct vma_seen *s)
{
	return s ? s->count : 0;
}

static const uint64_t *leaf_of(const struct vma_seen *s, uint64_t c)
{
	const struct seen_mid *m;

	if (!s || c > UINT32_MAX)
		return NULL;
	m = s->mid[c >> 24];
	return m ? m->leaf[(c >> 16) & 0xffu] : NULL;
}

int vma_seen_first_missing(const struct vma_seen *s, uint64_t n, uint64_t *first)
{
	uint64_t c = 0;

	while (c < n) {
		const uint64_t *leaf = leaf_of(s, c);
		unsigned w;

		if (!leaf) {
			*first = c;
			return 1;
		}
		/* c is leaf-aligned here */
		for (w = 0; w < LEAF_WORDS && c < n; w++, c += 64) {
			if (leaf[w] != UINT64_MAX) {
				uint64_t miss = c + (uint64_t)__builtin_ctzll(~leaf[w]);

				if (miss < n) {
					*first = miss;
					return 1;
				}
			}
		}
	}
	return 0;
}

void vma_seen_free(struct vma_seen *s)
{
	unsigned i, j;

	if (!s)
		return;
	for (i = 0; i < FANOUT; i++) {
		if (!s->mid[i])
			continue;
		for (j = 0; j < FANOUT; j++)
			free(s->mid[i]->leaf[j]);
		free(s->mid[i]);
	}
	free(s);
}
