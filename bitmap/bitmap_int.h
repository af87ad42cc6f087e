/* bitmap_int.h: helpers shared by the bitmap/ sources (the encodings'
 * constants); not part of the public interface. */
#ifndef VMABACK_BITMAP_INT_H
#define VMABACK_BITMAP_INT_H

#ifndef VB_MODULE_bitmap
#error "bitmap/bitmap_int.h is private to bitmap/: include bitmap/bitmap.h"
#endif

#include <stdint.h>

#include "common/byteorder.h"

#define BITMAP_MAGIC "VBBM"
#define BITMAP_VERSION 1u
#define BITMAP_HDR_LEN 24u      /* magic, version, nbits, nruns */
#define DIGEST_MAGIC "VBDM"
#define DIGEST_VERSION 1u
#define DIGEST_HDR_LEN 24u      /* magic, version, drive size, clusters */
#define ENC_MIN_LEN 8u          /* magic + version: enough to tell what it is */

#endif
