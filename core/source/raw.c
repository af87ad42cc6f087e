/* raw.c: a drive read from a regular file or a block device, with
 * holes found by SEEK_DATA/SEEK_HOLE so that nothing is read for them. */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/source/source_int.h"

struct raw_source {
	struct vb_source s;     /* first: the generic part */
	int fd;
	bool block;
	bool seek_data;         /* SEEK_DATA/SEEK_HOLE usable */
	/* The last extent the file system reported, whole: the job asks about
	 * 4 MiB at a time, and on tmpfs each SEEK_HOLE walks the page cache up
	 * to the next hole, so asking again inside a long data extent would
	 * read the cache's index quadratically often. */
	uint64_t ext_start, ext_end;
	bool ext_data;
};

static int raw_extent(struct vb_source *src, uint64_t off, uint64_t max, uint64_t *len,
		      bool *data, struct vb_error *err);
static int raw_pread(struct vb_source *src, void *buf, size_t len, uint64_t off,
		     struct vb_error *err);
static void raw_close(struct vb_source *src);

static const struct vb_source_ops raw_ops = {
	.kind = "raw",
	.extent = raw_extent,
	.pread = raw_pread,
	.close = raw_close,
};

static int open_checked(struct raw_source *r, struct vb_error *err)
{
	struct vb_source *s = &r->s;
	struct stat st;

	/* O_NONBLOCK so a FIFO cannot make open() hang; refused just below. */
	r->fd = open(s->spec, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (r->fd < 0)
		return vb_error_set(err, VB_E_USAGE, errno, "drive %s: cannot open %s: %s",
				    s->drive, s->spec, strerror(errno));
	if (fstat(r->fd, &st) < 0)
		return vb_error_set(err, VB_E_FAIL, errno, "drive %s: cannot stat %s: %s",
				    s->drive, s->spec, strerror(errno));
	if (S_ISDIR(st.st_mode))
		return vb_error_set(err, VB_E_USAGE, EISDIR, "drive %s: %s is a directory",
				    s->drive, s->spec);
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
		return vb_error_set(err, VB_E_USAGE, 0,
				    "drive %s: %s is not a regular file or a block device",
				    s->drive, s->spec);
	if (fcntl(r->fd, F_SETFL, 0) < 0)
		return vb_error_set(err, VB_E_FAIL, errno, "drive %s: %s: %s", s->drive,
				    s->spec, strerror(errno));
	r->block = S_ISBLK(st.st_mode);
	if (r->block) {
		uint64_t sz = 0;

		if (ioctl(r->fd, BLKGETSIZE64, &sz) < 0)
			return vb_error_set(err, VB_E_FAIL, errno,
					    "drive %s: cannot size block device %s: %s",
					    s->drive, s->spec, strerror(errno));
		s->size = sz;
	} else {
		s->size = (uint64_t)st.st_size;
	}
	if (s->size == 0)
		return vb_error_set(err, VB_E_USAGE, 0, "drive %s: %s is empty (0 bytes)",
				    s->drive, s->spec);
	/* Block devices do not support SEEK_DATA (EINVAL): all of it is data. */
	r->seek_data = !r->block && lseek(r->fd, 0, SEEK_DATA) >= 0;
	if (!r->block && !r->seek_data && errno == ENXIO)
		r->seek_data = true; /* the whole file is one hole */
	(void)posix_fadvise(r->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	return 0;
}

struct vb_source *vb_source_raw_open(const char *drive, const char *path, struct vb_error *err)
{
	struct raw_source *r = calloc(1, sizeof(*r));

	if (!r) {
		vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
		return NULL;
	}
	r->fd = -1;
	if (vb_source_init(&r->s, &raw_ops, drive, path, err) < 0 || open_checked(r, err) < 0) {
		raw_close(&r->s);
		return NULL;
	}
	return &r->s;
}

/* A file can shrink while it is read; inside a hole that looks like the end. */
static int check_not_shrunk(struct raw_source *r, struct vb_error *err)
{
	struct stat st;

	if (fstat(r->fd, &st) < 0 || (uint64_t)st.st_size < r->s.size)
		return vb_error_set(err, VB_E_FAIL, 0, "drive %s: %s is now %lld bytes, less "
				    "than its size %llu (it shrank during the backup)",
				    r->s.drive, r->s.spec, (long long)st.st_size,
				    (unsigned long long)r->s.size);
	return 0;
}

static int raw_extent(struct vb_source *src, uint64_t off, uint64_t max, uint64_t *len,
		      bool *data, struct vb_error *err)
{
	struct raw_source *r = (struct raw_source *)src;
	uint64_t end = off + max;
	off_t next;

	*data = true;
	*len = max;
	if (!r->seek_data)
		return 0;
	if (off >= r->ext_start && off < r->ext_end) {
		*data = r->ext_data;
		if (r->ext_end < end)
			*len = r->ext_end - off;
		return 0;
	}
	next = lseek(r->fd, (off_t)off, SEEK_DATA);
	if (next < 0 && errno == ENXIO) {
		*data = false; /* only a hole remains, unless the file shrank */
		return check_not_shrunk(r, err);
	}
	if (next < 0)
		return vb_error_set(err, VB_E_FAIL, errno, "drive %s: SEEK_DATA at %llu: %s",
				    src->drive, (unsigned long long)off, strerror(errno));
	if ((uint64_t)next > off) {
		*data = false;
		if ((uint64_t)next < end)
			*len = (uint64_t)next - off;
		r->ext_start = off;
		r->ext_end = (uint64_t)next;
		r->ext_data = false;
		return 0;
	}
	next = lseek(r->fd, (off_t)off, SEEK_HOLE);
	if (next < 0)
		return vb_error_set(err, VB_E_FAIL, errno, "drive %s: SEEK_HOLE at %llu: %s",
				    src->drive, (unsigned long long)off, strerror(errno));
	if ((uint64_t)next > off && (uint64_t)next < end)
		*len = (uint64_t)next - off;
	if ((uint64_t)next > off) {
		r->ext_start = off;
		r->ext_end = (uint64_t)next;
		r->ext_data = true;
	}
	return 0;
}

static int raw_pread(struct vb_source *src, void *buf, size_t len, uint64_t off,
		     struct vb_error *err)
{
	struct raw_source *r = (struct raw_source *)src;
	uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = pread(r->fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return vb_error_set(err, VB_E_FAIL, errno,
					    "drive %s: read error at offset %llu: %s",
					    src->drive, (unsigned long long)off, strerror(errno));
		if (n == 0)
			return vb_error_set(err, VB_E_FAIL, 0,
					    "drive %s: %s ended at offset %llu, before its size "
					    "%llu (it shrank during the backup)",
					    src->drive, src->spec, (unsigned long long)off,
					    (unsigned long long)src->size);
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

static void raw_close(struct vb_source *src)
{
	struct raw_source *r = (struct raw_source *)src;

	if (r->fd >= 0)
		close(r->fd);
	vb_source_fini(src);
	free(r);
}
