/* tempfile.c: the one way vmaback makes a file: a registered hidden
 * temporary beside the final name, published by fsync, rename, fsync of the
 * directory; whatever is still registered is removed at exit and from the
 * handler of a fatal signal, by the process that made it (git's tempfile.c). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/io/io_int.h"

/* A temporary's name: "." + at most TMP_BASE_MAX bytes of the final name +
 * TMP_MARK + 6 random characters, so that it always fits NAME_MAX and only
 * vmaback's own temporaries carry the mark. */
#define TMP_BASE_MAX 200
#define TMP_RANDOM 6

/* Nodes are never freed: a signal handler on any thread may walk the list
 * at any moment, so a node only goes inactive (and is reused later). */
struct vb_tempfile {
	struct vb_tempfile *next;
	volatile sig_atomic_t active;  /* registered: remove at exit or signal */
	pid_t owner;
	int fd;
	int dirfd;
	size_t cap;                     /* bytes of path[] */
	char *final;                    /* the name it is published under */
	char *dir;                      /* for messages */
	char path[];                    /* the temporary (what a handler unlinks) */
};

static struct vb_tempfile *volatile registry;
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static bool atexit_done;

void vb_tempfile_remove_all(void)
{
	pid_t me = getpid();

	for (struct vb_tempfile *t = registry; t; t = t->next)
		if (t->active && t->owner == me)
			(void)unlink(t->path);
}

static void remove_at_exit(void)
{
	vb_tempfile_remove_all();
}

/* A free node with room for len bytes of path, or a new one in the list. */
static struct vb_tempfile *node_get(size_t len)
{
	struct vb_tempfile *t;

	pthread_mutex_lock(&registry_lock);
	for (t = registry; t; t = t->next)
		if (!t->active && t->owner == 0 && t->cap > len)
			break;
	if (t) {
		t->owner = -1; /* taken */
	} else if ((t = calloc(1, sizeof(*t) + len + 1))) {
		t->cap = len + 1;
		t->owner = -1;
		t->next = registry;
		registry = t; /* one pointer store: a handler sees old or new */
	}
	if (t && !atexit_done)
		atexit_done = atexit(remove_at_exit) == 0;
	pthread_mutex_unlock(&registry_lock);
	return t;
}

static void node_put(struct vb_tempfile *t)
{
	t->active = 0;
	if (t->fd >= 0)
		close(t->fd);
	if (t->dirfd >= 0)
		close(t->dirfd);
	free(t->final);
	free(t->dir);
	t->final = t->dir = NULL;
	t->fd = t->dirfd = -1;
	pthread_mutex_lock(&registry_lock);
	t->owner = 0;
	pthread_mutex_unlock(&registry_lock);
}

static int split(const char *final, char **dir, const char **base, struct vb_error *err)
{
	const char *slash = strrchr(final, '/');

	*base = slash ? slash + 1 : final;
	if (**base == '\0' || strcmp(*base, ".") == 0 || strcmp(*base, "..") == 0)
		return vb_error_set(err, VB_E_USAGE, EISDIR, "%s: names a directory, not a file",
				    final);
	if (!slash)
		*dir = strdup(".");
	else if (slash == final)
		*dir = strdup("/");
	else
		*dir = strndup(final, (size_t)(slash - final));
	if (!*dir)
		return vb_error_set(err, VB_E_FAIL, ENOMEM, "%s: out of memory", final);
	return 0;
}

/* Locks a temporary that open() just created: at once, so that a sweep
 * (vb_tempfile_sweep) of another run finds it locked. 0: locked and still
 * the file under t->path; 1: a sweep got there first (it holds the lock,
 * or has removed the name): the caller tries another name; -1: errno. */
static int lock_new(struct vb_tempfile *t)
{
	struct stat fd_st, name_st;

	if (flock(t->fd, LOCK_EX | LOCK_NB) < 0)
		return errno == EWOULDBLOCK ? 1 : -1;
	if (fstat(t->fd, &fd_st) < 0)
		return -1;
	if (fstatat(AT_FDCWD, t->path, &name_st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 1 : -1;
	return fd_st.st_dev == name_st.st_dev && fd_st.st_ino == name_st.st_ino ? 0 : 1;
}

/* Creates t->path (dir/.base.vbtmp.XXXXXX, random) exclusively, locked. */
static int create(struct vb_tempfile *t, const char *base, size_t dirlen, struct vb_error *err)
{
	static const char chars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
	size_t blen = strlen(base) > TMP_BASE_MAX ? TMP_BASE_MAX : strlen(base);
	uint8_t rnd[TMP_RANDOM];
	char suffix[TMP_RANDOM + 1];
	int e = 0;

	for (int tries = 0; tries < 100; tries++) {
		if (RAND_bytes(rnd, sizeof(rnd)) != 1)
			return vb_error_set(err, VB_E_FAIL, 0, "%s: no random bytes", t->final);
		for (int i = 0; i < TMP_RANDOM; i++)
			suffix[i] = chars[rnd[i] % (sizeof(chars) - 1)];
		suffix[TMP_RANDOM] = '\0';
		snprintf(t->path, t->cap, "%.*s.%.*s%s%s", (int)dirlen, t->final, (int)blen, base,
			 VB_TEMPFILE_MARK, suffix);
		t->fd = open(t->path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (t->fd >= 0) {
			int r = lock_new(t);

			if (r == 0)
				return 0;
			e = errno;
			close(t->fd);
			t->fd = -1;
			if (r < 0) {
				(void)unlink(t->path);
				break;
			}
			continue; /* the sweep removes that one */
		}
		e = errno;
		if (e != EEXIST)
			break;
	}
	return vb_error_set(err, (e == ENOENT || e == ENOTDIR || e == EACCES ||
				  e == ENAMETOOLONG) ? VB_E_USAGE : VB_E_FAIL,
			    e, "%s: cannot create a temporary file in %s: %s", t->final, t->dir,
			    strerror(e));
}

struct vb_tempfile *vb_tempfile_new(const char *final, struct vb_error *err)
{
	struct vb_tempfile *t;
	const char *base;
	char *dir = NULL;
	size_t dirlen;

	if (!final || !*final) {
		vb_error_set(err, VB_E_USAGE, EINVAL, "empty file name");
		return NULL;
	}
	if (split(final, &dir, &base, err) < 0)
		return NULL;
	dirlen = (size_t)(base - final);
	t = node_get(dirlen + 1 + TMP_BASE_MAX + strlen(VB_TEMPFILE_MARK) + TMP_RANDOM);
	if (!t) {
		free(dir);
		vb_error_set(err, VB_E_FAIL, ENOMEM, "%s: out of memory", final);
		return NULL;
	}
	t->fd = t->dirfd = -1;
	t->dir = dir;
	t->final = strdup(final);
	if (!t->final) {
		vb_error_set(err, VB_E_FAIL, ENOMEM, "%s: out of memory", final);
		goto fail;
	}
	if (create(t, base, dirlen, err) < 0)
		goto fail;
	t->owner = getpid();
	t->active = 1; /* from here on, exit and signals remove it */
	/* Exactly 0600, whatever the umask. */
	if (fchmod(t->fd, 0600) < 0) {
		vb_error_set(err, VB_E_FAIL, errno, "%s: chmod: %s", t->path, strerror(errno));
		goto fail;
	}
	/* The lock create() took is held while the writer lives (to the
	 * rename): a run that finds it free knows the temporary is an orphan. */
	if ((t->dirfd = open(t->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		vb_error_set(err, VB_E_FAIL, errno, "%s: %s: %s", t->final, t->dir,
			     strerror(errno));
		goto fail;
	}
	return t;
fail:
	vb_tempfile_discard(t);
	return NULL;
}

int vb_tempfile_fd(const struct vb_tempfile *t)
{
	return t->fd;
}

const char *vb_tempfile_path(const struct vb_tempfile *t)
{
	return t->path;
}

const char *vb_tempfile_final(const struct vb_tempfile *t)
{
	return t->final;
}

void vb_tempfile_discard(struct vb_tempfile *t)
{
	if (!t)
		return;
	if (t->active)
		(void)unlink(t->path);
	node_put(t);
}

static int exists_error(const char *path, struct vb_error *err)
{
	return vb_error_set(err, VB_E_USAGE, EEXIST,
			    "%s: file exists (use --force to replace it)", path);
}

/* Renames the temporary to the final name, never replacing a file that
 * appeared meanwhile unless replace. */
static int rename_final(struct vb_tempfile *t, bool replace, struct vb_error *err)
{
	int e;

	if (replace) {
		if (rename(t->path, t->final) == 0)
			return 0;
		e = errno;
		return vb_error_set(err, VB_E_FAIL, e, "%s: cannot rename %s to it: %s", t->final,
				    t->path, strerror(e));
	}
	if (renameat2(AT_FDCWD, t->path, AT_FDCWD, t->final, RENAME_NOREPLACE) == 0)
		return 0;
	e = errno;
	if (e == EEXIST)
		return exists_error(t->final, err);
	if (e != EINVAL && e != ENOSYS)
		return vb_error_set(err, VB_E_FAIL, e, "%s: cannot rename %s to it: %s", t->final,
				    t->path, strerror(e));
	/* The file system cannot rename without replacing: link() cannot either. */
	if (link(t->path, t->final) < 0) {
		e = errno;
		if (e == EEXIST)
			return exists_error(t->final, err);
		return vb_error_set(err, VB_E_FAIL, e, "%s: cannot link %s to it: %s", t->final,
				    t->path, strerror(e));
	}
	/* Published; a failure here only leaves a hidden second name behind. */
	(void)unlink(t->path);
	return 0;
}

int vb_tempfile_publish(struct vb_tempfile *t, bool replace, struct vb_error *err)
{
	int e, rc = -1, hold = -1;

	if (vb_fsync(t->fd) < 0) {
		e = errno;
		vb_error_set(err, VB_E_FAIL, e, "%s: fsync failed: %s", t->final, strerror(e));
		goto out;
	}
	/* The lock belongs to the open file, which a second descriptor keeps
	 * open up to the rename: close() still reports its errors, and no
	 * sweep takes the temporary for an orphan in between. */
	hold = fcntl(t->fd, F_DUPFD_CLOEXEC, 0);
	if (hold < 0) {
		e = errno;
		vb_error_set(err, VB_E_FAIL, e, "%s: %s", t->final, strerror(e));
		goto out;
	}
	e = close(t->fd) < 0 ? errno : 0;
	t->fd = -1;
	if (e != 0 && e != EINTR) { /* EINTR: Linux has closed it anyway */
		vb_error_set(err, VB_E_FAIL, e, "%s: close failed: %s", t->final, strerror(e));
		goto out;
	}
	if (rename_final(t, replace, err) < 0)
		goto out;
	t->active = 0; /* under its final name now: nothing may remove it */
	rc = 0;
	if (vb_fsync(t->dirfd) < 0 && errno != EINVAL) {
		e = errno;
		vb_error_set(err, VB_E_FAIL, e, "%s was written, but the fsync of directory %s "
			     "failed (%s): it may not survive a crash", t->final, t->dir,
			     strerror(e));
		rc = 1;
	}
out:
	vb_tempfile_discard(t); /* unlinks an unpublished one before the lock goes */
	if (hold >= 0)
		close(hold);
	return rc;
}

bool vb_tempfile_is_ours(const char *name)
{
	size_t len = strlen(name), mark = strlen(VB_TEMPFILE_MARK);

	if (name[0] != '.' || len < 1 + mark + TMP_RANDOM)
		return false;
	if (memcmp(name + len - TMP_RANDOM - mark, VB_TEMPFILE_MARK, mark) != 0)
		return false;
	for (size_t i = len - TMP_RANDOM; i < len; i++)
		if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= 'A' && name[i] <= 'Z') ||
		      (name[i] >= '0' && name[i] <= '9')))
			return false;
	return true;
}

/* Removes name in dirfd if it is an orphan: a regular file of this user,
 * not locked (its writer is gone: killed, or the host went down), and still
 * the file that was opened. Returns its size when removed, -1 otherwise. */
static int64_t sweep_one(int dirfd, const char *name, bool dry)
{
	struct stat st, again;
	int64_t size = -1;
	int fd;

	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode) ||
	    st.st_uid != geteuid())
		return -1;
	fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
	    flock(fd, LOCK_EX | LOCK_NB) < 0)
		goto out; /* EWOULDBLOCK: its writer lives */
	/* Held: a writer that created the name meanwhile retries elsewhere;
	 * the name must still be the file that is locked. */
	if (fstatat(dirfd, name, &again, AT_SYMLINK_NOFOLLOW) < 0 ||
	    again.st_dev != st.st_dev || again.st_ino != st.st_ino)
		goto out;
	if (dry || unlinkat(dirfd, name, 0) == 0)
		size = st.st_size;
out:
	close(fd); /* after the unlink: the lock is held to the end */
	return size;
}

int vb_tempfile_sweep(const char *dir, bool dry, struct vb_warnings *w, struct vb_error *err)
{
	int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), n = 0;
	struct dirent *e;
	DIR *d;

	if (dirfd < 0 || !(d = fdopendir(dirfd))) {
		int en = errno;

		if (dirfd >= 0)
			close(dirfd);
		return vb_error_set(err, VB_E_FAIL, en, "%s: %s", dir, strerror(en));
	}
	while ((e = readdir(d))) {
		char shown[4 * 256 + 1];
		int64_t size;

		if (!vb_tempfile_is_ours(e->d_name) ||
		    (size = sweep_one(dirfd, e->d_name, dry)) < 0)
			continue;
		vb_name_printable(e->d_name, shown, sizeof(shown));
		vb_warn(w, VB_WARN_LEFTOVER, NULL, "%s the temporary %s%s%s left by a run that "
			"did not finish (%" PRId64 " bytes)", dry ? "would remove" : "removed",
			     strcmp(dir, ".") == 0 ? "" : dir,
			     strcmp(dir, ".") == 0 || dir[strlen(dir) - 1] == '/' ? "" : "/",
			     shown, size);
		n++;
	}
	if (n && !dry)
		(void)vb_fsync(dirfd);
	closedir(d); /* closes dirfd */
	return n;
}
