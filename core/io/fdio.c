/* fdio.c: the one write loop (whole writes and positioned writes, EINTR
 * and the cancel flag) and the file-descriptor callbacks of the streaming
 * readers and writers. */
#include <errno.h>
#include <stdint.h>
#include <limits.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/io/io_int.h"

/* How often a drain wait looks at the pipe again. */
#define DRAIN_POLL_MS 20

/* Writes all of buf at off, or at the file position when off < 0; stops
 * at the cancel flag when cancelable. */
static int write_loop(int fd, const void *buf, size_t len, int64_t off, bool cancelable)
{
	const uint8_t *p = buf;

	/* A signal that came before this write cannot end it: the write may
	 * block for good on a stalled pipe. */
	if (len > 0 && cancelable && vb_canceled())
		return -ECANCELED;
	while (len > 0) {
		ssize_t n = off < 0 ? write(fd, p, len) : pwrite(fd, p, len, (off_t)off);

		/* A pipe whose reader stalls blocks until a signal, which ends
		 * the write early: EINTR, or a short count if some went. */
		if (n < 0 && errno == EINTR) {
			if (cancelable && vb_canceled())
				return -ECANCELED;
			continue;
		}
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
		if (off >= 0)
			off += n;
		if (len > 0 && cancelable && vb_canceled())
			return -ECANCELED;
	}
	return 0;
}

int vb_write_all(int fd, const void *buf, size_t len)
{
	return write_loop(fd, buf, len, -1, true);
}

int vb_write_whole(int fd, const void *buf, size_t len)
{
	return write_loop(fd, buf, len, -1, false);
}

int vb_pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
	if (off > INT64_MAX)
		return -EFBIG;
	return write_loop(fd, buf, len, (int64_t)off, true);
}

ssize_t vb_fd_read_cb(void *opaque, void *buf, size_t len)
{
	const int *fd = opaque;
	ssize_t n;

	do
		n = read(*fd, buf, len);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

int vb_fd_write_cb(void *opaque, const void *buf, size_t len)
{
	return vb_write_all(*(const int *)opaque, buf, len);
}

ssize_t vb_io_read_full(int fd, void *buf, size_t len)
{
	unsigned char *p = buf;
	size_t done = 0;

	if (len > SSIZE_MAX)
		len = SSIZE_MAX;
	while (done < len) {
		ssize_t n = read(fd, p + done, len - done);

		if (n < 0) {
			/* a stalled pipe blocks until a signal: one that
			 * cancels ends the read */
			if (errno == EINTR && !vb_canceled())
				continue;
			if (errno == EINTR)
				errno = ECANCELED;
			return -1;
		}
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

int vb_fsync(int fd)
{
	int r;

	do
		r = fsync(fd);
	while (r < 0 && errno == EINTR);
	return r;
}

/* A reader that exits 0 after part of the stream leaves the rest in the
 * pipe: only the pipe itself knows (FIONREAD counts what is buffered, a
 * write end polls POLLERR once no reader is left). */
int vb_pipe_wait_drained(int fd, uint64_t *unread)
{
	struct stat st;

	*unread = 0;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISFIFO(st.st_mode))
		return 0;
	for (;;) {
		struct pollfd p = { .fd = fd, .events = 0 };
		int n = 0, r;

		if (ioctl(fd, FIONREAD, &n) < 0)
			return -errno;
		if (n <= 0)
			return 0;
		if (vb_canceled())
			return -ECANCELED;
		/* events 0: wakes only when the last reader leaves; a reader
		 * that keeps reading is seen at the next look */
		r = poll(&p, 1, DRAIN_POLL_MS);
		if (r < 0 && errno != EINTR)
			return -errno;
		if (r > 0 && (p.revents & (POLLERR | POLLHUP | POLLNVAL))) {
			if (ioctl(fd, FIONREAD, &n) < 0)
				return -errno;
			*unread = n > 0 ? (uint64_t)n : 0;
			return n > 0 ? 1 : 0;
		}
	}
}
