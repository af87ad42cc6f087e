/* fuzz_input.c: libFuzzer target for the archive input's detection by
 * content (plain VMA, zstd, gzip; lzop runs a program, left out) and its
 * decompression: a refusal says why, the kind found is the one the first
 * bytes name, and plain VMA comes through byte for byte. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>


#include "core/io/io.h"

#define OUT_MAX (16u << 20) /* a small input may expand a lot: enough seen */

static enum vb_compression named(const uint8_t *d, size_t n)
{
	if (n >= 4 && memcmp(d, "VMA", 4) == 0)
		return VB_COMP_NONE;
	if (n >= 4 && ((memcmp(d, "\x28\xb5\x2f\xfd", 4) == 0) ||
		       ((d[0] & 0xF0) == 0x50 && d[1] == 0x2A && d[2] == 0x4D && d[3] == 0x18)))
		return VB_COMP_ZSTD;
	if (n >= 2 && d[0] == 0x1F && d[1] == 0x8B)
		return VB_COMP_GZIP;
	return VB_COMP_LZO; /* or nothing: either way not run here */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t buf[65536];
	struct vb_error err = { 0 };
	enum vb_compression want = named(data, size);
	struct vb_reader *r;
	size_t total = 0;
	ssize_t n;
	int fd;

	if (size >= 9 && memcmp(data, "\x89LZO\x00\r\n\x1a\n", 9) == 0)
		return 0;
	/* A frame may ask for a window of at most VB_ZSTD_WINDOW_LOG_MAX
	 * (128 MiB, within the fuzzer's memory limit): more is refused. */
	fd = memfd_create("fuzz-input", MFD_CLOEXEC);
	if (fd < 0 || (size && write(fd, data, size) != (ssize_t)size) ||
	    lseek(fd, 0, SEEK_SET) != 0) {
		if (fd >= 0)
			close(fd);
		return 0;
	}
	r = vb_input_open_fd(fd, "fuzz", &err);
	if (!r) {
		if (err.msg[0] == '\0' || err.cls == VB_OK)
			abort(); /* a refusal says why */
		return 0;
	}
	if (size == 0 || want == VB_COMP_LZO || vb_reader_compression(r) != want)
		abort(); /* detected something the first bytes do not name */
	while (total < OUT_MAX && (n = vb_reader_read(r, buf, sizeof(buf), &err)) > 0) {
		if (want == VB_COMP_NONE &&
		    ((size_t)n > size - total || memcmp(buf, data + total, (size_t)n) != 0))
			abort(); /* plain VMA passes unchanged */
		total += (size_t)n;
	}
	if (n < 0 && (err.msg[0] == '\0' || err.cls == VB_OK))
		abort();
	if (want == VB_COMP_NONE && n == 0 && total != size)
		abort();
	vb_reader_free(r);
	return 0;
}
