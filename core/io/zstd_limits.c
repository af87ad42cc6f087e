/* zstd_limits.c: what a zstd archive may ask of the memory of its reader,
 * the sequential one (input.c) and the random-access one (rafile.c): the
 * window is bounded by VB_ZSTD_WINDOW_LOG_MAX, and a frame that asks for
 * more is refused with a message naming its window. */
#include <stdio.h>

#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_getFrameHeader */
#include <zstd.h>

#include "common/byteorder.h"
#include "core/io/io_int.h"

/* n bytes as "2 GiB", "256 MiB", "1.5 KiB". */
static void human(unsigned long long n, char *out, size_t size)
{
	static const char *const unit[] = { "bytes", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)n;
	unsigned u = 0;

	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	snprintf(out, size, v == (double)(unsigned long long)v ? "%.0f %s" : "%.1f %s", v,
		 unit[u]);
}

int vb_zstd_window_error(const void *frame, size_t len, const char *name,
			 struct vb_error *err)
{
	ZSTD_frameHeader fh;
	char asked[32] = "", limit[32];

	const unsigned char *p = frame;
	unsigned long long window = 0;

	human((unsigned long long)1 << VB_ZSTD_WINDOW_LOG_MAX, limit, sizeof(limit));
	/* RFC 8878 3.1.1.1.2: the window descriptor follows the frame header
	 * descriptor unless the frame is single-segment; libzstd refuses to
	 * parse one past its own maximum, so it is read here. */
	if (len >= 6 && get_le32(p) == ZSTD_MAGICNUMBER && !(p[4] & 0x20)) {
		unsigned long long base = 1ull << (10 + (p[5] >> 3));

		window = base + base / 8 * (p[5] & 7);
	} else if (ZSTD_getFrameHeader(&fh, frame, len) == 0 && fh.frameType == ZSTD_frame) {
		window = fh.windowSize;
	}
	if (window > (1ull << VB_ZSTD_WINDOW_LOG_MAX)) {
		char h[24];

		human(window, h, sizeof(h));
		snprintf(asked, sizeof(asked), " of %s", h);
	}
	return vb_error_set(err, VB_E_INVALID, 0,
			    "%s: the zstd stream asks for a window%s, more than the limit of %s "
			    "(2^%d bytes: zstd's default, what every level and --long write; "
			    "vmaback and Proxmox write at most 8 MiB): damaged, or written with "
			    "zstd --long=N above %d: read it through `zstd -d --long=31 -c FILE "
			    "| vmaback COMMAND -`",
			    name, asked, limit, VB_ZSTD_WINDOW_LOG_MAX, VB_ZSTD_WINDOW_LOG_MAX);
}
