/* io_int.h: helpers shared by the output and input stacks of core/ (private
 * to core/ and its unit tests). */
#ifndef VMABACK_CORE_IO_INT_H
#define VMABACK_CORE_IO_INT_H

#include <stddef.h>
#include <sys/types.h>

/* Size of the buffers of the I/O layers: large, as the VMA writer and reader
 * move extents of up to ~3.8 MiB. */
#define VB_IO_BUFSIZE ((size_t)1 << 20)

/* Reads until len bytes or the end of the file, looping on short reads and
 * EINTR. Returns the count (less than len only at the end) or -1 with errno
 * set; bytes read before an error are lost, which is fine as it is fatal. */
ssize_t vb_io_read_full(int fd, void *buf, size_t len);

#endif
