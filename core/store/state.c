/* state.c: a backup set's state directory opened and closed: the checkpoint
 * chain in memory, the default directory, what a person should know. */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/store/store_int.h"

char *st_strdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

void st_ckpt_clear(struct vb_ckpt *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->ndrives; i++) {
		free(c->drives[i].name);
		free(c->drives[i].source);
		free(c->drives[i].bitmap);
		free(c->drives[i].digests);
		free(c->drives[i].digest_root);
		free(c->drives[i].archive_digests);
	}
	free(c->drives);
	free(c->name);
	free(c->parent);
	free(c->uuid);
	free(c->base_uuid);
	free(c->archive);
	free(c->archive_sha256);
	free(c->key_id);
	memset(c, 0, sizeof(*c));
}

int st_ckpt_copy(struct vb_ckpt *dst, const struct vb_ckpt *src)
{
	memset(dst, 0, sizeof(*dst));
	dst->time = src->time;
	dst->name = st_strdup(src->name);
	dst->kind = src->kind;
	dst->parent = st_strdup(src->parent);
	dst->uuid = st_strdup(src->uuid);
	dst->base_uuid = st_strdup(src->base_uuid);
	dst->archive = st_strdup(src->archive);
	dst->archive_sha256 = st_strdup(src->archive_sha256);
	dst->key_id = st_strdup(src->key_id);
	dst->archive_size = src->archive_size;
	dst->drives = calloc(src->ndrives ? src->ndrives : 1, sizeof(*dst->drives));
	if (!dst->name || !dst->uuid || !dst->drives)
		goto fail;
	for (size_t i = 0; i < src->ndrives; i++) {
		struct vb_ckpt_drive *d = &dst->drives[i];
		const struct vb_ckpt_drive *e = &src->drives[i];

		dst->ndrives++;
		d->size = e->size;
		d->name = st_strdup(e->name);
		d->source = st_strdup(e->source);
		d->bitmap = st_strdup(e->bitmap);
		d->digests = st_strdup(e->digests);
		d->digest_root = st_strdup(e->digest_root);
		d->archive_digests = st_strdup(e->archive_digests);
		if (!d->name || !d->bitmap)
			goto fail;
	}
	return 0;
fail:
	st_ckpt_clear(dst);
	return -1;
}

char *vb_state_default_dir(void)
{
	const char *xdg = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
	char buf[PATH_MAX];

	if (geteuid() == 0)
		return strdup("/var/lib/vmaback");
	if (xdg && xdg[0] == '/')
		snprintf(buf, sizeof(buf), "%s/vmaback", xdg);
	else if (home && home[0] == '/')
		snprintf(buf, sizeof(buf), "%s/.local/state/vmaback", home);
	else
		return NULL;
	return strdup(buf);
}

void st_pruned_clear(struct vb_state *s)
{
	for (size_t i = 0; i < s->npruned; i++) {
		free(s->pruned[i].checkpoint);
		free(s->pruned[i].uuid);
		free(s->pruned[i].archive);
	}
	free(s->pruned);
	s->pruned = NULL;
	s->npruned = 0;
}

void st_clear_memory(struct vb_state *s)
{
	for (size_t i = 0; i < s->n; i++)
		st_ckpt_clear(&s->ck[i]);
	free(s->ck);
	s->ck = NULL;
	s->n = 0;
	for (size_t i = 0; i < s->nretired; i++)
		st_ckpt_clear(&s->retired[i]);
	free(s->retired);
	s->retired = NULL;
	s->nretired = 0;
	st_ckpt_clear(s->pending);
	free(s->pending);
	s->pending = NULL;
	for (size_t i = 0; i < s->nman; i++)
		free(s->manifests[i]);
	free(s->manifests);
	s->manifests = NULL;
	s->nman = 0;
	st_pruned_clear(s);
}

int st_load(struct vb_state *s, struct vb_error *err)
{
	char *text = NULL;
	size_t len;
	int rc;

	if (s->dirfd < 0)
		return 0;
	if (st_read_whole(s->dirfd, STATE_FILE, &text, &len) < 0) {
		if (errno == ENOENT)
			return 0;
		if (errno == EFBIG)
			return vb_error_set(err, VB_E_INVALID, 0, "%s/%s: damaged: larger than "
					    "%lld MiB, the most it may be", s->path, STATE_FILE,
					    (long long)(ST_MAX_FILE >> 20));
		return vb_error_set(err, VB_E_FAIL, errno, "%s/%s: %s", s->path, STATE_FILE,
				    strerror(errno));
	}
	rc = st_parse(s, text, len, err);
	free(text);
	return rc;
}

static int make_dirs(const char *dir, struct vb_error *err)
{
	char buf[PATH_MAX];
	size_t len = strlen(dir);

	if (len == 0 || len >= sizeof(buf))
		return vb_error_set(err, VB_E_USAGE, 0, "bad state directory '%s'", dir);
	memcpy(buf, dir, len + 1);
	for (char *p = buf + 1; ; p++) {
		if (*p == '/' || *p == '\0') {
			char c = *p;

			*p = '\0';
			if (mkdir(buf, 0700) < 0 && errno != EEXIST)
				return vb_error_set(err, VB_E_FAIL, errno, "cannot create %s: %s",
						    buf, strerror(errno));
			*p = c;
			if (c == '\0')
				break;
		}
	}
	return 0;
}

/* What the state says decides what is deleted and what a restore trusts:
 * a directory another user can write into (or owns) is refused, as ssh
 * refuses a group-writable ~/.ssh. Root may own it (it can do anything). */
static int check_private(const char *path, int fd, struct vb_error *err)
{
	struct stat st;
	uid_t me = geteuid();

	if ((fd >= 0 ? fstat(fd, &st) : stat(path, &st)) < 0)
		return vb_error_set(err, VB_E_FAIL, errno, "%s: %s", path, strerror(errno));
	if (st.st_uid != me && st.st_uid != 0)
		return vb_error_set(err, VB_E_USAGE, 0, "state directory %s belongs to uid %u, "
				    "not to you (uid %u): another user could change the backup "
				    "state; fix: chown %u %s (or give another --state-dir)", path,
				    (unsigned)st.st_uid, (unsigned)me, (unsigned)me, path);
	if (st.st_mode & (S_IWGRP | S_IWOTH))
		return vb_error_set(err, VB_E_USAGE, 0, "state directory %s is writable by %s "
				    "(mode %04o): another user could change the backup state; "
				    "fix: chmod 700 %s", path,
				    (st.st_mode & S_IWOTH) ? "everyone" : "its group",
				    (unsigned)(st.st_mode & 07777), path);
	return 0;
}

/* The --state-dir root and the set directory (open as s->dirfd). */
static int check_dirs(struct vb_state *s, const char *root, struct vb_error *err)
{
	if (check_private(root, -1, err) < 0)
		return -1;
	return check_private(s->path, s->dirfd, err);
}

/* A writer turns only an empty directory, or one that holds nothing but
 * vmaback's files, into a state directory: never a user's directory that a
 * wrong --state-dir or --set names. */
static int check_foreign(struct vb_state *s, struct vb_error *err)
{
	int fd = openat(s->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *e;
	struct stat st;
	char shown[300] = "";

	if (fstatat(s->dirfd, STATE_FILE, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		if (d)
			closedir(d);
		else if (fd >= 0)
			close(fd);
		return 0;
	}
	if (!d) {
		if (fd >= 0)
			close(fd);
		return vb_error_set(err, VB_E_FAIL, errno, "%s: %s", s->path, strerror(errno));
	}
	while ((e = readdir(d)) && !shown[0])
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0 &&
		    strcmp(e->d_name, LOCK_FILE) != 0 && !st_gc_pattern(e->d_name))
			vb_name_printable(e->d_name, shown, sizeof(shown));
	closedir(d);
	if (shown[0])
		return vb_error_set(err, VB_E_USAGE, 0, "%s is not the state directory of a "
				    "backup set: it holds %s and no %s (give another --set or "
				    "--state-dir)", s->path, shown, STATE_FILE);
	return 0;
}

static struct vb_state *state_new(const char *dir, const char *set, bool writer,
				  struct vb_error *err)
{
	struct vb_state *s = calloc(1, sizeof(*s));
	char buf[PATH_MAX];

	if (!s) {
		vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
		return NULL;
	}
	s->dirfd = s->lockfd = -1;
	s->writer = writer;
	if (vb_set_name_check(set, err) < 0)
		goto fail;
	if ((size_t)snprintf(buf, sizeof(buf), "%s/%s", dir, set) >= sizeof(buf)) {
		vb_error_set(err, VB_E_USAGE, 0, "state directory path too long");
		goto fail;
	}
	s->path = strdup(buf);
	s->set = strdup(set);
	if (!s->path || !s->set) {
		vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
		goto fail;
	}
	return s;
fail:
	vb_state_close(s);
	return NULL;
}

struct vb_state *vb_state_open(const char *dir, const char *set, struct vb_error *err)
{
	struct vb_state *s = state_new(dir, set, true, err);

	if (!s)
		return NULL;
	/* Nothing is created inside a root that is not private. */
	if ((stat(dir, &(struct stat){ 0 }) == 0 && check_private(dir, -1, err) < 0) ||
	    make_dirs(s->path, err) < 0)
		goto fail;
	s->dirfd = open(s->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dirfd < 0) {
		vb_error_set(err, VB_E_FAIL, errno, "%s: %s", s->path, strerror(errno));
		goto fail;
	}
	if (check_dirs(s, dir, err) < 0 || check_foreign(s, err) < 0)
		goto fail;
	/* The directory is vmaback's if it holds a state.json, or the lock of an
	 * earlier run (a first run killed before its commit leaves no state.json,
	 * only its lock and its files). */
	s->was_ours = fstatat(s->dirfd, STATE_FILE, &(struct stat){ 0 }, AT_SYMLINK_NOFOLLOW) == 0 ||
		      fstatat(s->dirfd, LOCK_FILE, &(struct stat){ 0 }, AT_SYMLINK_NOFOLLOW) == 0;
	if (st_lock_take(s, err) < 0 || st_load(s, err) < 0)
		goto fail;
	st_collect_garbage(s, true);
	return s;
fail:
	vb_state_close(s);
	return NULL;
}

struct vb_state *vb_state_open_read(const char *dir, const char *set, struct vb_error *err)
{
	struct vb_state *s = state_new(dir, set, false, err);

	if (!s)
		return NULL;
	s->dirfd = open(s->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dirfd < 0 && errno == ENOENT)
		return s; /* no backup of the set yet: an empty chain */
	if (s->dirfd < 0) {
		vb_error_set(err, VB_E_FAIL, errno, "%s: %s", s->path, strerror(errno));
		goto fail;
	}
	if (check_dirs(s, dir, err) < 0 || st_lock_take(s, err) < 0 || st_load(s, err) < 0)
		goto fail;
	return s;
fail:
	vb_state_close(s);
	return NULL;
}

void vb_state_close(struct vb_state *s)
{
	if (!s)
		return;
	st_clear_memory(s);
	st_lock_release(s);
	if (s->dirfd >= 0)
		close(s->dirfd);
	vb_warnings_free(&s->warn);
	free(s->path);
	free(s->set);
	free(s);
}

void vb_state_on_warning(struct vb_state *s, vb_warn_fn fn, void *opaque)
{
	vb_warnings_to(&s->warn, fn, opaque);
}

const char *vb_state_path(const struct vb_state *s)
{
	return s->path;
}

const char *vb_state_set(const struct vb_state *s)
{
	return s->set;
}

size_t vb_state_count(const struct vb_state *s)
{
	return s->n;
}

const struct vb_ckpt *vb_state_get(const struct vb_state *s, size_t i)
{
	return i < s->n ? &s->ck[i] : NULL;
}

const struct vb_ckpt *vb_state_latest(const struct vb_state *s)
{
	return s->n ? &s->ck[s->n - 1] : NULL;
}

const struct vb_ckpt *vb_state_find(const struct vb_state *s, const char *name)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->ck[i].name, name) == 0)
			return &s->ck[i];
	return NULL;
}

const struct vb_ckpt *vb_state_pending(const struct vb_state *s)
{
	return s->pending;
}

/* Whether path (a file that may not exist yet) would be inside dir: its
 * directory, resolved, is dir or below it. */
static bool inside(const char *real_dir, const char *path)
{
	char *copy = strdup(path), *slash, *parent;
	size_t len = strlen(real_dir);
	bool in;

	if (!copy)
		return false;
	slash = strrchr(copy, '/');
	if (slash == copy)
		slash[1] = '\0';
	else if (slash)
		*slash = '\0';
	parent = realpath(slash ? copy : ".", NULL);
	free(copy);
	if (!parent)
		return false; /* opening it fails later, with its own message */
	in = strncmp(parent, real_dir, len) == 0 &&
	     (parent[len] == '\0' || parent[len] == '/' || strcmp(real_dir, "/") == 0);
	free(parent);
	return in;
}

int vb_state_dir_check_output(const char *dir, const char *what, const char *path,
			      struct vb_error *err)
{
	char *real = dir ? realpath(dir, NULL) : NULL;
	bool in = real && path && inside(real, path);

	if (in)
		vb_error_set(err, VB_E_USAGE, 0, "%s %s is inside the state directory %s: "
			     "archives and logs go elsewhere (the state directory holds "
			     "only what vmaback keeps there)", what, path, real);
	free(real);
	return in ? -1 : 0;
}

const struct vb_ckpt *vb_state_by_uuid(const struct vb_state *s, const char *uuid)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->ck[i].uuid, uuid) == 0)
			return &s->ck[i];
	/* a removed checkpoint's archive that a later one still builds on */
	for (size_t i = 0; i < s->nretired; i++)
		if (strcmp(s->retired[i].uuid, uuid) == 0)
			return &s->retired[i];
	if (s->pending && strcmp(s->pending->uuid, uuid) == 0)
		return s->pending;
	return NULL;
}
