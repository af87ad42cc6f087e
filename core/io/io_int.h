/* io_int.h: the implementer interface of the output stack and what the
 * layers of core/io share; private to core/io (and its unit test). */
#ifndef VMABACK_IO_INT_H
#define VMABACK_IO_INT_H

#ifndef VB_MODULE_io
#error "core/io/io_int.h is private to core/io: include core/io/io.h"
#endif

#include "core/io/io.h"

/* Size of the buffers of the I/O layers: large, as the VMA writer and reader
 * move extents of up to ~3.8 MiB. */
#define VB_IO_BUFSIZE ((size_t)1 << 20)

/* zstd's seekable format (contrib/seekable_format): the seek table is a
 * skippable frame of entries (compressed size, decompressed size, [XXH64
 * low 32 bits]) and a footer (frame count, descriptor, magic), all LE. */
#define VB_SEEK_SKIPPABLE 0x184D2A5Eu
#define VB_SEEK_MAGIC 0x8F92EAB1u
#define VB_SEEK_FOOTER_SIZE 9u
#define VB_SEEK_MAX_FRAMES 0x8000000u
/* The most a frame of a seek table may hold: vmaback ends a frame at the
 * first write after 1 MiB (one VMA extent, at most 3.8 MiB, or the header,
 * at most 4 MiB), so 64 MiB is far beyond what it writes and keeps a crafted
 * table from asking for 4 GiB buffers. */
#define VB_SEEK_MAX_FRAME_BYTES ((uint32_t)64 << 20)

/* The largest zstd window a reader accepts: 2^27 (128 MiB), libzstd's own
 * default limit, which covers every compression level (level 19: 2^23;
 * --ultra -22: 2^27) and --long without a number (2^27). vmaback writes
 * windows of at most 2^23 and Proxmox's vzdump (zstd level 3) 2^21. A
 * frame asking for more (zstd --long=28..31, or a hostile archive asking
 * for up to 2 GiB per archive of a chain) is refused by name; such a stream
 * is read through `zstd -d --long=31 -c FILE | vmaback ... -`. */
#define VB_ZSTD_WINDOW_LOG_MAX 27
/* The error of a frame whose window is over the limit (its header at
 * frame[0, len) names the window asked for, when it is there); -1. */
int vb_zstd_window_error(const void *frame, size_t len, const char *name,
			 struct vb_error *err);

struct vb_writer_ops {
	int (*write)(struct vb_writer *w, const void *buf, size_t len, struct vb_error *err);
	/* success: flush, make durable, publish; releases the layer */
	int (*close)(struct vb_writer *w, struct vb_error *err);
	/* failure: remove anything that could look valid; releases the layer */
	void (*discard)(struct vb_writer *w);
};

/* Every layer starts with this. */
struct vb_writer {
	const struct vb_writer_ops *ops;
	uint64_t bytes_in;  /* bytes given to this layer */
};

/* Waits until the reader of the pipe fd (our write end) has read every
 * byte still in it: 0 when drained (or fd is not a pipe), 1 when the last
 * reader went away with *unread bytes never read, -ECANCELED on a signal,
 * -errno when the pipe cannot be asked. */
int vb_pipe_wait_drained(int fd, uint64_t *unread);

#endif
