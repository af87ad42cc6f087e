/* util.c: small helpers every part of core/ needs alike: whole writes,
 * file-descriptor callbacks for the streaming libraries, hex, notes. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/core_int.h"

static const volatile sig_atomic_t *cancel_flag;

void vb_set_cancel(const volatile sig_atomic_t *flag)
{
	cancel_flag = flag;
}

bool vb_canceled(void)
{
	return cancel_flag && *cancel_flag;
}

/* Writes all of buf at off, or at the file position when off < 0. */
static int write_loop(int fd, const void *buf, size_t len, int64_t off)
{
	const uint8_t *p = buf;

	/* A signal that came before this write cannot end it: the write may
	 * block for good on a stalled pipe. */
	if (len > 0 && vb_canceled())
		return -ECANCELED;
	while (len > 0) {
		ssize_t n = off < 0 ? write(fd, p, len) : pwrite(fd, p, len, (off_t)off);

		/* A pipe whose reader stalls blocks until a signal, which ends
		 * the write early: EINTR, or a short count if some went. */
		if (n < 0 && errno == EINTR) {
			if (vb_canceled())
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
		if (len > 0 && vb_canceled())
			return -ECANCELED;
	}
	return 0;
}

int vb_write_all(int fd, const void *buf, size_t len)
{
	return write_loop(fd, buf, len, -1);
}

int vb_pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
	if (off > INT64_MAX)
		return -EFBIG;
	return write_loop(fd, buf, len, (int64_t)off);
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

void vb_hex(const uint8_t *d, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[d[i] >> 4];
		out[2 * i + 1] = digits[d[i] & 15];
	}
	out[2 * n] = '\0';
}

void vb_notes_add(char **notes, const char *fmt, ...)
{
	size_t old = *notes ? strlen(*notes) : 0;
	char line[512];
	va_list ap;
	char *p;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	p = realloc(*notes, old + strlen(line) + 2);
	if (!p)
		return; /* a note is advice: losing it is better than failing */
	memcpy(p + old, line, strlen(line));
	p[old + strlen(line)] = '\n';
	p[old + strlen(line) + 1] = '\0';
	*notes = p;
}
