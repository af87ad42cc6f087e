/* source_raw.c: a drive read from a regular file or a block device, with
 * holes found by SEEK_DATA/SEEK_HOLE so that nothing is read for them. */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/core.h"

struct vb_source {
	char *drive;
	char *path;
	int fd;
	bool block;
	bool seek_data;     /* SEEK_DATA/SEEK_HOLE usable */
	uint64_t size;
};

static int open_checked(struct vb_source *s, struct vb_error *err)
{
	struct stat st;

	/* O_NONBLOCK so a FIFO cannot make open() hang; refused just below. */
	s->fd = open(s->path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (s->fd < 0)
		return vb_error_set(err, VB_E_USAGE, errno, "drive %s: cannot open %s: %s",
				    s->drive, s->path, strerror(errno));
	if (fstat(s->fd, &st) < 0)
		return vb_error_set(err, VB_E_FAIL, errno, "drive %s: cannot stat %s: %s",
				    s->drive, s->path, strerror(errno));
	if (S_ISDIR(st.st_mode))
		return vb_error_set(err, VB_E_USAGE, EISDIR, "drive %s: %s is a directory",
				    s->drive, s->path);
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
		return vb_error_set(err, VB_E_USAGE, 0,
				    "drive %s: %s is not a regular file or a block device",
				    s->drive, s->path);
	if (fcntl(s->fd, F_SETFL, 0) < 0)
		return vb_error_set(err, VB_E_FAIL, errno, "drive %s: %s: %s", s->drive,
				    s->path, strerror(errno));
	s->block = S_ISBLK(st.st_mode);
	if (s->block) {
		uint64_t sz = 0;

		if (ioctl(s->fd, BLKGETSIZE64, &sz) < 0)
			return vb_error_set(err, VB_E_FAIL, errno,
					    "drive %s: cannot size block device %s: %s",
					    s->drive, s->path, strerror(errno));
		s->size = sz;
	} else {
		s->size = (uint64_t)st.st_size;
	}
	if (s->size == 0)
		return vb_error_set(err, VB_E_USAGE, 0, "drive %s: %s is empty (0 bytes)",
				    s->drive, s->path);
	if (s->size > VMA_MAX_DEVICE_SIZE)
		return vb_error_set(err, VB_E_USAGE, 0,
				    "drive %s: %s is larger than a VMA archive can hold",
				    s->drive, s->path);
	/* Block devices do not support SEEK_DATA (EINVAL): all of it is data. */
	s->seek_data = !s->block && lseek(s->fd, 0, SEEK_DATA) >= 0;
	if (!s->block && !s->seek_data && errno == ENXIO)
		s->seek_data = true; /* the whole file is one hole */
	(void)posix_fadvise(s->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	return 0;
}

struct vb_source *vb_source_open(const char *drive, const char *spec, struct vb_error *err)
{
	struct vb_source *s = calloc(1, sizeof(*s));

	if (!s) {
		vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
		return NULL;
	}
	s->fd = -1;
	s->drive = strdup(drive);
	s->path = strdup(spec);
	if (!s->drive || !s->path) {
		vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
		goto fail;
	}
	if (spec[0] == '\0') {
		vb_error_set(err, VB_E_USAGE, 0, "drive %s: empty path", drive);
		goto fail;
	}
	if (open_checked(s, err) < 0)
		goto fail;
	return s;
fail:
	vb_source_close(s);
	return NULL;
}

uint64_t vb_source_size(const struct vb_source *s)
{
	return s->size;
}

const char *vb_source_kind(const struct vb_source *s)
{
	(void)s;
	return "raw";
}

int vb_source_extent(struct vb_source *s, uint64_t off, uint64_t max, uint64_t *len,
		     bool *data, struct vb_error *err)
{
	uint64_t end = off + max;
	off_t next;

	if (end > s->size)
		end = s->size;
	if (off >= end)
		return vb_error_set(err, VB_E_FAIL, 0, "drive %s: extent query past the end",
				    s->drive);
	*data = true;
	*len = end - off;
	if (!s->seek_data)
		return 0;
	next = lseek(s->fd, (off_t)off, SEEK_DATA);
	if (next < 0 && errno == ENXIO) {
		struct stat st;

		/* Only a hole remains, or the file shrank: the two look alike. */
		if (fstat(s->fd, &st) < 0 || (uint64_t)st.st_size < s->size)
			return vb_error_set(err, VB_E_FAIL, 0,
					    "drive %s: %s is now %lld bytes, less than its size "
					    "%llu (it shrank during the backup)", s->drive, s->path,
					    (long long)st.st_size, (unsigned long long)s->size);
		*data = false;
		return 0;
	}
	if (next < 0)
		return vb_error_set(err, VB_E_FAIL, errno, "drive %s: SEEK_DATA at %llu: %s",
				    s->drive, (unsigned long long)off, strerror(errno));
	if ((uint64_t)next > off) {
		*data = false;
		if ((uint64_t)next < end)
			*len = (uint64_t)next - off;
		return 0;
	}
	next = lseek(s->fd, (off_t)off, SEEK_HOLE);
	if (next < 0)
		return vb_error_set(err, VB_E_FAIL, errno, "drive %s: SEEK_HOLE at %llu: %s",
				    s->drive, (unsigned long long)off, strerror(errno));
	if ((uint64_t)next > off && (uint64_t)next < end)
		*len = (uint64_t)next - off;
	return 0;
}

int vb_source_pread(struct vb_source *s, void *buf, size_t len, uint64_t off,
		    struct vb_error *err)
{
	uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = pread(s->fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return vb_error_set(err, VB_E_FAIL, errno,
					    "drive %s: read error at offset %llu: %s",
					    s->drive, (unsigned long long)off, strerror(errno));
		if (n == 0)
			return vb_error_set(err, VB_E_FAIL, 0,
					    "drive %s: %s ended at offset %llu, before its size "
					    "%llu (it shrank during the backup)",
					    s->drive, s->path, (unsigned long long)off,
					    (unsigned long long)s->size);
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

void vb_source_close(struct vb_source *s)
{
	if (!s)
		return;
	if (s->fd >= 0)
		close(s->fd);
	free(s->drive);
	free(s->path);
	free(s);
}
