/* sink_file.c: the generic output-stack calls and its two plain sinks: a
 * regular file published atomically, and a borrowed descriptor (stdout). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/io/io_int.h"

/* ------------------------------------------------------------ helpers */

static int fsync_retry(int fd)
{
	int r;

	do
		r = fsync(fd);
	while (r < 0 && errno == EINTR);
	return r;
}

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

struct file_sink {
	struct vb_writer w;     /* first: the layer is cast from it */
	char *path;             /* final name */
	char *dir;              /* its directory, for messages */
	char *tmp;              /* hidden temporary in dir */
	int fd;                 /* the temporary, -1 once closed */
	int dirfd;              /* dir, fsynced after the rename */
	bool force;
	bool failed;            /* a write failed: never publish */
	bool published;         /* tmp is now path: do not unlink it */
};

static int file_write(struct vb_writer *w, const void *buf, size_t len, struct vb_error *err);
static int file_close(struct vb_writer *w, struct vb_error *err);
static void file_discard(struct vb_writer *w);

static const struct vb_writer_ops file_ops = {
	.write = file_write,
	.close = file_close,
	.discard = file_discard,
};

static void file_release(struct file_sink *s)
{
	if (s->fd >= 0)
		close(s->fd);
	if (s->tmp != NULL && !s->published)
		unlink(s->tmp);
	if (s->dirfd >= 0)
		close(s->dirfd);
	free(s->path);
	free(s->dir);
	free(s->tmp);
	free(s);
}

static int exists_error(const char *path, struct vb_error *err)
{
	return vb_error_set(err, VB_E_USAGE, EEXIST,
			    "%s: file exists (use --force to replace it)", path);
}

/* Fails early, before any data is produced, when path cannot be replaced. */
static int file_check_target(const char *path, bool force, struct vb_error *err)
{
	struct stat st;

	if (fstatat(AT_FDCWD, path, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return 0; /* absent, or a problem creating the temporary will name */
	if (S_ISDIR(st.st_mode))
		return vb_error_set(err, VB_E_USAGE, EISDIR, "%s: is a directory", path);
	if (!force)
		return exists_error(path, err);
	if (!S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode))
		return vb_error_set(err, VB_E_USAGE, 0,
				    "%s: not a regular file, refusing to replace it", path);
	return 0;
}

/* Splits path into the directory and the temporary's template. */
static int file_names(struct file_sink *s, char **tmpl, struct vb_error *err)
{
	const char *slash = strrchr(s->path, '/');
	const char *base = slash != NULL ? slash + 1 : s->path;
	int n;

	if (*base == '\0')
		return vb_error_set(err, VB_E_USAGE, EISDIR,
				    "%s: names a directory, not a file", s->path);
	if (slash == NULL)
		s->dir = strdup(".");
	else if (slash == s->path)
		s->dir = strdup("/");
	else
		s->dir = strndup(s->path, (size_t)(slash - s->path));
	if (s->dir == NULL)
		return vb_error_set(err, VB_E_FAIL, ENOMEM, "%s: out of memory", s->path);
	n = asprintf(tmpl, "%.*s.%s.XXXXXX", (int)(base - s->path), s->path, base);
	if (n < 0) {
		*tmpl = NULL;
		return vb_error_set(err, VB_E_FAIL, ENOMEM, "%s: out of memory", s->path);
	}
	return 0;
}

static int file_create(struct file_sink *s, char *tmpl, struct vb_error *err)
{
	int e;

	s->fd = mkostemp(tmpl, O_CLOEXEC);
	if (s->fd < 0) {
		e = errno;
		return vb_error_set(err, (e == ENOENT || e == ENOTDIR || e == EACCES ||
					  e == ENAMETOOLONG) ? VB_E_USAGE : VB_E_FAIL,
				    e, "%s: cannot create a temporary file in %s: %s",
				    s->path, s->dir, strerror(e));
	}
	s->tmp = tmpl; /* from now on, release() unlinks it */
	/* mkostemp's mode depends on the umask: make it exactly 0600 */
	if (fchmod(s->fd, 0600) < 0) {
		e = errno;
		return vb_error_set(err, VB_E_FAIL, e, "%s: cannot chmod %s: %s",
				    s->path, s->tmp, strerror(e));
	}
	s->dirfd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dirfd < 0) {
		e = errno;
		return vb_error_set(err, VB_E_FAIL, e, "%s: cannot open directory %s: %s",
				    s->path, s->dir, strerror(e));
	}
	return 0;
}

struct vb_writer *vb_sink_file_new(const char *path, bool force, struct vb_error *err)
{
	struct file_sink *s = NULL;
	char *tmpl = NULL;

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
	s->fd = -1;
	s->dirfd = -1;
	s->force = force;
	s->path = strdup(path);
	if (s->path == NULL) {
		vb_error_set(err, VB_E_FAIL, ENOMEM, "%s: out of memory", path);
		goto fail;
	}
	if (file_names(s, &tmpl, err) < 0)
		goto fail;
	if (file_create(s, tmpl, err) < 0) {
		if (s->tmp == NULL)
			free(tmpl);
		goto fail;
	}
	return &s->w;
fail:
	file_release(s);
	return NULL;
}

const char *vb_sink_file_temp_path(const struct vb_writer *w)
{
	if (w == NULL || w->ops != &file_ops)
		return NULL;
	return ((const struct file_sink *)w)->tmp;
}

static int file_write(struct vb_writer *w, const void *buf, size_t len, struct vb_error *err)
{
	struct file_sink *s = (struct file_sink *)w;
	int e;

	if (s->failed)
		return vb_error_set(err, VB_E_FAIL, 0, "%s: write after a failed write", s->path);
	e = -vb_write_all(s->fd, buf, len);
	if (e != 0) {
		s->failed = true;
		return vb_error_set(err, e == ECANCELED ? VB_E_CANCELED : VB_E_FAIL, e,
				    "%s: write failed: %s", s->path, strerror(e));
	}
	return 0;
}

/* Renames the temporary to the final name, never replacing a file that
 * appeared meanwhile unless force. */
static int file_publish(struct file_sink *s, struct vb_error *err)
{
	int e;

	if (s->force) {
		if (rename(s->tmp, s->path) == 0)
			return 0;
		e = errno;
		return vb_error_set(err, VB_E_FAIL, e, "%s: cannot rename %s to it: %s",
				    s->path, s->tmp, strerror(e));
	}
	if (renameat2(AT_FDCWD, s->tmp, AT_FDCWD, s->path, RENAME_NOREPLACE) == 0)
		return 0;
	e = errno;
	if (e == EEXIST)
		return exists_error(s->path, err);
	if (e != EINVAL && e != ENOSYS)
		return vb_error_set(err, VB_E_FAIL, e, "%s: cannot rename %s to it: %s",
				    s->path, s->tmp, strerror(e));
	/* The file system cannot rename without replacing: link() cannot either. */
	if (link(s->tmp, s->path) < 0) {
		e = errno;
		if (e == EEXIST)
			return exists_error(s->path, err);
		return vb_error_set(err, VB_E_FAIL, e, "%s: cannot link %s to it: %s",
				    s->path, s->tmp, strerror(e));
	}
	/* Published; a failure here only leaves a hidden second name behind. */
	(void)unlink(s->tmp);
	return 0;
}

static int file_close(struct vb_writer *w, struct vb_error *err)
{
	struct file_sink *s = (struct file_sink *)w;
	int ret = -1, e;

	if (s->failed) {
		vb_error_set(err, VB_E_FAIL, 0, "%s: not published after a failed write", s->path);
		goto out;
	}
	if (fsync_retry(s->fd) < 0) {
		e = errno;
		vb_error_set(err, VB_E_FAIL, e, "%s: fsync failed: %s", s->path, strerror(e));
		goto out;
	}
	e = close(s->fd) < 0 ? errno : 0;
	s->fd = -1;
	if (e != 0 && e != EINTR) { /* EINTR: Linux has closed it anyway */
		vb_error_set(err, VB_E_FAIL, e, "%s: close failed: %s", s->path, strerror(e));
		goto out;
	}
	if (file_publish(s, err) < 0)
		goto out;
	s->published = true;
	if (fsync_retry(s->dirfd) < 0 && errno != EINVAL) {
		e = errno;
		vb_error_set(err, VB_E_FAIL, e, "%s: fsync of directory %s failed: %s",
			     s->path, s->dir, strerror(e));
		goto out;
	}
	ret = 0;
out:
	file_release(s);
	return ret;
}

static void file_discard(struct vb_writer *w)
{
	file_release((struct file_sink *)w);
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
	/* Durable when it is a file or a disk; pipes and ttys cannot be synced. */
	if ((S_ISREG(st.st_mode) || S_ISBLK(st.st_mode)) && fsync_retry(s->fd) < 0 &&
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
