/* state_files.c: the files of a state directory: names it accepts, whole
 * reads, new files (random names, 0600, O_NOFOLLOW), bitmaps. */

#include <errno.h>
#include <fcntl.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bitmap/bitmap.h"
#include "core/store/store_int.h"

bool st_file_name_ok(const char *f)
{
	return f && vb_safe_file_name(f) && strcmp(f, STATE_FILE) != 0 &&
	       strcmp(f, LOCK_FILE) != 0;
}

int st_read_whole(int dirfd, const char *name, char **out, size_t *len)
{
	struct stat st;
	size_t got = 0;
	char *buf;
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > ST_MAX_FILE) {
		errno = S_ISREG(st.st_mode) ? EFBIG : EINVAL;
		close(fd);
		return -1;
	}
	buf = malloc((size_t)st.st_size + 1);
	while (buf && got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	if (!buf || got != (size_t)st.st_size) {
		free(buf);
		errno = EIO;
		return -1;
	}
	buf[got] = '\0';
	*out = buf;
	*len = got;
	return 0;
}

int vb_state_open_file(struct vb_state *s, const char *file, struct vb_error *err)
{
	int fd;

	if (!st_file_name_ok(file))
		return vb_error_set(err, VB_E_INVALID, 0, "%s: bad file name in %s", s->path,
				    STATE_FILE);
	fd = openat(s->dirfd, file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return vb_error_set(err, VB_E_INVALID, errno, "%s/%s: %s (the state is damaged)",
				    s->path, file, strerror(errno));
	return fd;
}

int vb_state_create_file(struct vb_state *s, const char *prefix, char **name,
			 struct vb_error *err)
{
	uint8_t rnd[8];
	char buf[128], hex[17];
	int fd;

	if (!s->writer)
		return vb_error_set(err, VB_E_FAIL, EBADF, "%s: opened for reading only", s->path);
	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		return vb_error_set(err, VB_E_FAIL, 0, "no random bytes");
	vb_hex(rnd, sizeof(rnd), hex);
	snprintf(buf, sizeof(buf), "%s-%s.bin", prefix, hex);
	fd = openat(s->dirfd, buf, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return vb_error_set(err, VB_E_FAIL, errno, "%s/%s: %s", s->path, buf,
				    strerror(errno));
	*name = strdup(buf);
	if (!*name) {
		close(fd);
		unlinkat(s->dirfd, buf, 0);
		return vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
	}
	return fd;
}

int vb_state_write_file(struct vb_state *s, const char *prefix, const void *buf, size_t len,
			char **name, struct vb_error *err)
{
	int fd = vb_state_create_file(s, prefix, name, err);
	int e;

	if (fd < 0)
		return -1;
	e = -vb_write_whole(fd, buf, len);
	if (e == 0 && fsync(fd) < 0)
		e = errno;
	if (close(fd) < 0 && e == 0)
		e = errno;
	if (e != 0) {
		vb_error_set(err, VB_E_FAIL, e, "%s/%s: %s", s->path, *name, strerror(e));
		unlinkat(s->dirfd, *name, 0);
		free(*name);
		*name = NULL;
	}
	return e ? -1 : 0;
}

void vb_state_unlink(struct vb_state *s, const char *file)
{
	if (s->writer && file && st_file_name_ok(file))
		unlinkat(s->dirfd, file, 0);
}

int vb_state_load_bitmap(struct vb_state *s, const char *file, struct bitmap **out,
			 struct vb_error *err)
{
	char *buf;
	size_t len;
	int rc;

	if (!st_file_name_ok(file) || st_read_whole(s->dirfd, file, &buf, &len) < 0)
		return vb_error_set(err, VB_E_INVALID, errno, "%s/%s: cannot read: %s",
				    s->path, file ? file : "?", strerror(errno));
	rc = bitmap_decode((const uint8_t *)buf, len, out);
	free(buf);
	if (rc < 0)
		return vb_error_from_bitmap(err, rc, 0, "%s/%s", s->path, file);
	return 0;
}
