/* sink_file.c: the generic output-stack calls and its two plain sinks: a
 * regular file published atomically, and a borrowed descriptor (stdout). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "core/io/io_int.h"

/* ------------------------------------------------------------ generic */

int vb_writer_write(struct vb_writer *w, const void *buf, size_t len, struct vb_error *err)
{
	if (w == NULL || (buf == NULL && len > 0))
		return vb_error_set(err, VB_E_FAIL, EINVAL, "output: invalid write request");
	if (len == 0)
		return 0;
	if (w->ops->write(w, buf, len, err) < 0)
		return -1;
	w->bytes_in += len;
	return 0;
}

int vb_writer_close(struct vb_writer *w, struct vb_error *err)
{
	if (w == NULL)
		return vb_error_set(err, VB_E_FAIL, EINVAL, "output: close of no writer");
	return w->ops->close(w, err);
}

void vb_writer_discard(struct vb_writer *w)
{
	if (w != NULL)
		w->ops->discard(w);
}

/* ------------------------------------------------------------ file sink */

/* On a disk, the pages of the archive are sent to it while the backup goes
 * on (sync_file_range every window), and once a window is on the disk its
 * pages leave the page cache: the final fsync then has almost nothing left
 * to write, and a backup larger than RAM does not push out the cache of
 * everything else (the archive is not read back). tmpfs has no disk behind
 * it: nothing to do there. */
#define WB_WINDOW ((uint64_t)32 << 20)
#ifndef TMPFS_MAGIC
#define TMPFS_MAGIC 0x01021994
#endif
#ifndef RAMFS_MAGIC
#define RAMFS_MAGIC 0x858458f6
#endif

struct file_sink {
	struct vb_writer w;     /* first: the layer is cast from it */
	struct vb_tempfile *t;
	bool force;
	bool failed;            /* a write failed: never publish */
	bool writeback;         /* sync_file_range works on this file */
	uint64_t pos;           /* bytes written */
	uint64_t started;       /* writeback started for [0, started) */
	uint64_t done;          /* ... and finished (dropped from the cache) for [0, done) */
};

static int file_write(struct vb_writer *w, const void *buf, size_t len, struct vb_error *err);
static int file_close(struct vb_writer *w, struct vb_error *err);
static void file_discard(struct vb_writer *w);

static const struct vb_writer_ops file_ops = {
	.write = file_write,
	.close = file_close,
	.discard = file_discard,
};

/* Fails early, before any data is produced, when path cannot be replaced. */
static int file_check_target(const char *path, bool force, struct vb_error *err)
{
	struct stat st;

	if (fstatat(AT_FDCWD, path, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return 0; /* absent, or a problem creating the temporary will name */
	if (S_ISDIR(st.st_mode))
		return vb_error_set(err, VB_E_USAGE, EISDIR, "%s: is a directory", path);
	if (!force)
		return vb_error_set(err, VB_E_USAGE, EEXIST,
				    "%s: file exists (use --force to replace it)", path);
	if (!S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode))
		return vb_error_set(err, VB_E_USAGE, 0,
				    "%s: not a regular file, refusing to replace it", path);
	return 0;
}

struct vb_writer *vb_sink_file_new(const char *path, bool force, struct vb_error *err)
{
	struct file_sink *s;

	if (path == NULL || *path == '\0') {
		vb_error_set(err, VB_E_USAGE, EINVAL, "empty output file name");
		return NULL;
	}
	if (file_check_target(path, force, err) < 0)
		return NULL;
	s = calloc(1, sizeof(*s));
	if (s == NULL) {
		vb_error_set(err, VB_E_FAIL, ENOMEM, "%s: out of memory", path);
		return NULL;
	}
	s->w.ops = &file_ops;
	s->force = force;
	s->t = vb_tempfile_new(path, err);
	if (!s->t) {
		free(s);
		return NULL;
	}
	{
		struct statfs fs;

		s->writeback = fstatfs(vb_tempfile_fd(s->t), &fs) == 0 &&
			       fs.f_type != TMPFS_MAGIC && fs.f_type != RAMFS_MAGIC;
	}
	return &s->w;
}

const char *vb_sink_file_temp_path(const struct vb_writer *w)
{
	if (w == NULL || w->ops != &file_ops)
		return NULL;
	return vb_tempfile_path(((const struct file_sink *)w)->t);
}

/* Starts the writeback of the last window, waits for the one before it and
 * drops its pages. An error here is a write error: the kernel reports it
 * once per file, so the final fsync would no longer see it. Returns 0 or
 * an errno; a file system without the call just gets no writeback. */
static int file_writeback(struct file_sink *s)
{
	int fd = vb_tempfile_fd(s->t);

	if (!s->writeback || s->pos - s->started < WB_WINDOW)
		return 0;
	if (sync_file_range(fd, (off_t)s->started, (off_t)(s->pos - s->started),
			    SYNC_FILE_RANGE_WRITE) < 0)
		goto fail;
	if (s->started > s->done) {
		if (sync_file_range(fd, (off_t)s->done, (off_t)(s->started - s->done),
				    SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
				    SYNC_FILE_RANGE_WAIT_AFTER) < 0)
			goto fail;
		(void)posix_fadvise(fd, (off_t)s->done, (off_t)(s->started - s->done),
				    POSIX_FADV_DONTNEED);
		s->done = s->started;
	}
	s->started = s->pos;
	return 0;
fail:
	if (errno == ENOSYS || errno == EINVAL || errno == ESPIPE || errno == EOPNOTSUPP) {
		s->writeback = false;
		return 0;
	}
	return errno == EINTR ? 0 : errno;
}

static int file_write(struct vb_writer *w, const void *buf, size_t len, struct vb_error *err)
{
	struct file_sink *s = (struct file_sink *)w;
	int e;

	if (s->failed)
		return vb_error_set(err, VB_E_FAIL, 0, "%s: write after a failed write",
				    vb_tempfile_final(s->t));
	e = -vb_write_all(vb_tempfile_fd(s->t), buf, len);
	if (e == 0) {
		s->pos += len;
		e = file_writeback(s);
	}
	if (e != 0) {
		s->failed = true;
		return vb_error_set(err, e == ECANCELED ? VB_E_CANCELED : VB_E_FAIL, e,
				    "%s: write failed: %s", vb_tempfile_final(s->t), strerror(e));
	}
	return 0;
}

static int file_close(struct vb_writer *w, struct vb_error *err)
{
	struct file_sink *s = (struct file_sink *)w;
	int rc;

	if (s->failed) {
		vb_error_set(err, VB_E_FAIL, 0, "%s: not published after a failed write",
			     vb_tempfile_final(s->t));
		vb_tempfile_discard(s->t);
		rc = -1;
	} else {
		rc = vb_tempfile_publish(s->t, s->force, err); /* 1: published, not durable */
	}
	free(s);
	return rc;
}

static void file_discard(struct vb_writer *w)
{
	struct file_sink *s = (struct file_sink *)w;

	vb_tempfile_discard(s->t);
	free(s);
}

/* ------------------------------------------------------------ fd sink */

struct fd_sink {
	struct vb_writer w;
	int fd;                 /* borrowed: never closed here */
	char *what;             /* "standard output" */
};

static int fd_write(struct vb_writer *w, const void *buf, size_t len, struct vb_error *err);
static int fd_close(struct vb_writer *w, struct vb_error *err);
static void fd_discard(struct vb_writer *w);

static const struct vb_writer_ops fd_ops = {
	.write = fd_write,
	.close = fd_close,
	.discard = fd_discard,
};

struct vb_writer *vb_sink_fd_new(int fd, const char *what, struct vb_error *err)
{
	struct fd_sink *s;

	if (what == NULL)
		what = "output";
	if (fd < 0 || fcntl(fd, F_GETFL) < 0) {
		vb_error_set(err, VB_E_FAIL, EBADF, "%s: not an open file descriptor", what);
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (s == NULL || (s->what = strdup(what)) == NULL) {
		free(s);
		vb_error_set(err, VB_E_FAIL, ENOMEM, "%s: out of memory", what);
		return NULL;
	}
	s->w.ops = &fd_ops;
	s->fd = fd;
	return &s->w;
}

static int fd_write(struct vb_writer *w, const void *buf, size_t len, struct vb_error *err)
{
	struct fd_sink *s = (struct fd_sink *)w;
	int e = -vb_write_all(s->fd, buf, len);

	if (e == ECANCELED)
		return vb_error_set(err, VB_E_CANCELED, e, "%s: interrupted", s->what);
	if (e == EPIPE)
		return vb_error_set(err, VB_E_FAIL, e,
				    "%s: the reader closed the pipe (EPIPE)", s->what);
	if (e != 0)
		return vb_error_set(err, VB_E_FAIL, e, "%s: write failed: %s",
				    s->what, strerror(e));
	return 0;
}

static int fd_close(struct vb_writer *w, struct vb_error *err)
{
	struct fd_sink *s = (struct fd_sink *)w;
	struct stat st;
	int ret = -1, e;

	if (fstat(s->fd, &st) < 0) {
		e = errno;
		vb_error_set(err, VB_E_FAIL, e, "%s: %s", s->what, strerror(e));
		goto out;
	}
	/* A pipe's reader that stopped early left the rest unread. */
	if (S_ISFIFO(st.st_mode)) {
		uint64_t unread;
		int r = vb_pipe_wait_drained(s->fd, &unread);

		if (r == -ECANCELED) {
			vb_error_set(err, VB_E_CANCELED, ECANCELED, "%s: interrupted", s->what);
			goto out;
		}
		if (r == 1) {
			vb_error_set(err, VB_E_FAIL, 0, "%s: the reader of the pipe went away "
				     "without reading the whole archive: %llu of its %llu bytes "
				     "were never read", s->what, (unsigned long long)unread,
				     (unsigned long long)w->bytes_in);
			goto out;
		}
	}
	/* Durable when it is a file or a disk; pipes and ttys cannot be synced. */
	if ((S_ISREG(st.st_mode) || S_ISBLK(st.st_mode)) && vb_fsync(s->fd) < 0 &&
	    errno != EINVAL && errno != EROFS) {
		e = errno;
		vb_error_set(err, VB_E_FAIL, e, "%s: fsync failed: %s", s->what, strerror(e));
		goto out;
	}
	ret = 0;
out:
	fd_discard(w);
	return ret;
}

static void fd_discard(struct vb_writer *w)
{
	struct fd_sink *s = (struct fd_sink *)w;

	free(s->what);
	free(s);
}
