/* bitmap_int.h: helpers shared by the bitmap/ sources (little-endian field
 * access, the encodings' constants); not part of the public interface. */
#ifndef VMABACK_BITMAP_INT_H
#define VMABACK_BITMAP_INT_H

#ifndef VB_MODULE_bitmap
#error "bitmap/bitmap_int.h is private to bitmap/: include bitmap/bitmap.h"
#endif

#include <stdint.h>

#define BITMAP_MAGIC "VBBM"
#define BITMAP_VERSION 1u
#define BITMAP_HDR_LEN 24u      /* magic, version, nbits, nruns */
#define DIGEST_MAGIC "VBDM"
#define DIGEST_VERSION 1u
#define DIGEST_HDR_LEN 24u      /* magic, version, drive size, clusters */
#define ENC_MIN_LEN 8u          /* magic + version: enough to tell what it is */

static inline void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint32_t get_le32(const uint8_t *p)
{
	uint32_t v = 0;

	for (int i = 3; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static inline uint64_t get_le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

#endif
