/* state.c: a backup set's state directory: lock, state.json (the checkpoint
 * chain) published by one atomic rename, and removal of leftovers. */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "bitmap/bitmap.h"
#include "core/store/store_int.h"

#define STATE_FILE "state.json"
#define LOCK_FILE "lock"
#define STATE_VERSION 1

struct vb_state {
	char *path;             /* DIR/SET */
	char *set;
	int dirfd;
	int lockfd;
	struct vb_ckpt *ck;
	size_t n;
	struct vb_ckpt *pending;
	char **manifests;
	size_t nman;
	struct vb_pruned *pruned;  /* removed checkpoints whose archives may remain */
	size_t npruned;
	char *notes;
};

static char *xstrdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

static void ckpt_clear(struct vb_ckpt *c)
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
	free(c->kind);
	free(c->parent);
	free(c->uuid);
	free(c->base_uuid);
	free(c->archive);
	free(c->archive_sha256);
	memset(c, 0, sizeof(*c));
}

static int ckpt_copy(struct vb_ckpt *dst, const struct vb_ckpt *src)
{
	memset(dst, 0, sizeof(*dst));
	dst->time = src->time;
	dst->name = xstrdup(src->name);
	dst->kind = xstrdup(src->kind);
	dst->parent = xstrdup(src->parent);
	dst->uuid = xstrdup(src->uuid);
	dst->base_uuid = xstrdup(src->base_uuid);
	dst->archive = xstrdup(src->archive);
	dst->archive_sha256 = xstrdup(src->archive_sha256);
	dst->drives = calloc(src->ndrives ? src->ndrives : 1, sizeof(*dst->drives));
	if (!dst->name || !dst->kind || !dst->uuid || !dst->drives)
		goto fail;
	for (size_t i = 0; i < src->ndrives; i++) {
		struct vb_ckpt_drive *d = &dst->drives[i];
		const struct vb_ckpt_drive *e = &src->drives[i];

		dst->ndrives++;
		d->size = e->size;
		d->name = xstrdup(e->name);
		d->source = xstrdup(e->source);
		d->bitmap = xstrdup(e->bitmap);
		d->digests = xstrdup(e->digests);
		d->digest_root = xstrdup(e->digest_root);
		d->archive_digests = xstrdup(e->archive_digests);
		if (!d->name || !d->bitmap)
			goto fail;
	}
	return 0;
fail:
	ckpt_clear(dst);
	return -1;
}

/* ------------------------------------------------------------ names */

static int name_check(const char *what, const char *name, struct vb_error *err)
{
	if (!name[0] || strlen(name) > 128)
		return vb_error_set(err, VB_E_USAGE, 0, "%s name must be 1 to 128 characters",
				    what);
	for (const char *p = name; *p; p++) {
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.' ||
		      *p == ':' || *p == '+'))
			return vb_error_set(err, VB_E_USAGE, 0,
					    "%s name '%s': only letters, digits and - _ . : + "
					    "are allowed", what, name);
	}
	if (name[0] == '.' || name[0] == '-')
		return vb_error_set(err, VB_E_USAGE, 0, "%s name '%s' may not start with '%c'",
				    what, name, name[0]);
	return 0;
}

int vb_set_name_check(const char *set, struct vb_error *err)
{
	return name_check("backup set", set, err);
}

int vb_ckpt_name_check(const char *name, struct vb_error *err)
{
	return name_check("checkpoint", name, err);
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

/* ------------------------------------------------------------ JSON */

static const char *jstr(json_object *o, const char *key)
{
	json_object *x;

	if (!json_object_object_get_ex(o, key, &x) || !json_object_is_type(x, json_type_string))
		return NULL;
	return json_object_get_string(x);
}

static int jint(json_object *o, const char *key, int64_t *v)
{
	json_object *x;

	if (!json_object_object_get_ex(o, key, &x) || !json_object_is_type(x, json_type_int))
		return -1;
	*v = json_object_get_int64(x);
	return 0;
}

static void jadd(json_object *o, const char *key, const char *v)
{
	json_object_object_add(o, key, v ? json_object_new_string(v) : NULL);
}

static json_object *ckpt_to_json(const struct vb_ckpt *c)
{
	json_object *o = json_object_new_object(), *arr = json_object_new_array();

	jadd(o, "name", c->name);
	json_object_object_add(o, "time", json_object_new_int64(c->time));
	jadd(o, "kind", c->kind);
	jadd(o, "parent", c->parent);
	jadd(o, "uuid", c->uuid);
	jadd(o, "base_uuid", c->base_uuid);
	jadd(o, "archive", c->archive);
	jadd(o, "archive_sha256", c->archive_sha256);
	for (size_t i = 0; i < c->ndrives; i++) {
		const struct vb_ckpt_drive *d = &c->drives[i];
		json_object *x = json_object_new_object();

		jadd(x, "name", d->name);
		json_object_object_add(x, "size", json_object_new_int64((int64_t)d->size));
		jadd(x, "source", d->source);
		jadd(x, "bitmap", d->bitmap);
		jadd(x, "digests", d->digests);
		jadd(x, "digest_root", d->digest_root);
		if (d->archive_digests)
			jadd(x, "archive_digests", d->archive_digests);
		json_object_array_add(arr, x);
	}
	json_object_object_add(o, "drives", arr);
	return o;
}

static bool file_name_ok(const char *f)
{
	return f && vb_safe_file_name(f) && strcmp(f, STATE_FILE) != 0 &&
	       strcmp(f, LOCK_FILE) != 0;
}

static int ckpt_from_json(struct vb_ckpt *c, json_object *o)
{
	json_object *arr;
	int64_t t;

	memset(c, 0, sizeof(*c));
	if (!jstr(o, "name") || !jstr(o, "kind") || !jstr(o, "uuid") || jint(o, "time", &t) < 0 ||
	    !json_object_object_get_ex(o, "drives", &arr) ||
	    !json_object_is_type(arr, json_type_array))
		return -1;
	c->time = t;
	c->name = xstrdup(jstr(o, "name"));
	c->kind = xstrdup(jstr(o, "kind"));
	c->parent = xstrdup(jstr(o, "parent"));
	c->uuid = xstrdup(jstr(o, "uuid"));
	c->base_uuid = xstrdup(jstr(o, "base_uuid"));
	c->archive = xstrdup(jstr(o, "archive"));
	c->archive_sha256 = xstrdup(jstr(o, "archive_sha256"));
	c->drives = calloc(json_object_array_length(arr) + 1, sizeof(*c->drives));
	if (!c->name || !c->kind || !c->uuid || !c->drives)
		goto fail;
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		json_object *x = json_object_array_get_idx(arr, i);
		struct vb_ckpt_drive *d = &c->drives[i];
		int64_t size;

		c->ndrives++;
		if (!jstr(x, "name") || !file_name_ok(jstr(x, "bitmap")) ||
		    jint(x, "size", &size) < 0 || size <= 0)
			goto fail;
		if ((jstr(x, "digests") && !file_name_ok(jstr(x, "digests"))) ||
		    (jstr(x, "archive_digests") && !file_name_ok(jstr(x, "archive_digests"))))
			goto fail;
		d->size = (uint64_t)size;
		d->name = xstrdup(jstr(x, "name"));
		d->source = xstrdup(jstr(x, "source"));
		d->bitmap = xstrdup(jstr(x, "bitmap"));
		d->digests = xstrdup(jstr(x, "digests"));
		d->digest_root = xstrdup(jstr(x, "digest_root"));
		d->archive_digests = xstrdup(jstr(x, "archive_digests"));
		if (!d->name || !d->bitmap)
			goto fail;
	}
	return 0;
fail:
	ckpt_clear(c);
	return -1;
}

static json_object *pruned_to_json(const struct vb_state *s)
{
	json_object *arr = json_object_new_array();

	for (size_t i = 0; i < s->npruned; i++) {
		json_object *x = json_object_new_object();

		jadd(x, "checkpoint", s->pruned[i].checkpoint);
		jadd(x, "uuid", s->pruned[i].uuid);
		jadd(x, "archive", s->pruned[i].archive);
		json_object_array_add(arr, x);
	}
	return arr;
}

static char *state_to_string(const struct vb_state *s)
{
	json_object *o = json_object_new_object(), *arr = json_object_new_array();
	json_object *man = json_object_new_array();
	char *out;

	jadd(o, "format", "vmaback-state");
	json_object_object_add(o, "version", json_object_new_int(STATE_VERSION));
	jadd(o, "set", s->set);
	for (size_t i = 0; i < s->n; i++)
		json_object_array_add(arr, ckpt_to_json(&s->ck[i]));
	json_object_object_add(o, "checkpoints", arr);
	json_object_object_add(o, "pending", s->pending ? ckpt_to_json(s->pending) : NULL);
	for (size_t i = 0; i < s->nman; i++)
		json_object_array_add(man, json_object_new_string(s->manifests[i]));
	json_object_object_add(o, "manifests", man);
	if (s->npruned)
		json_object_object_add(o, "pruned", pruned_to_json(s));
	out = xstrdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
							JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	return out;
}

/* ------------------------------------------------------------ loading */

static int read_whole(int dirfd, const char *name, char **out, size_t *len)
{
	struct stat st;
	size_t got = 0;
	char *buf;
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > 64 * 1024 * 1024) {
		close(fd);
		errno = EINVAL;
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

static void pruned_clear(struct vb_state *s)
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

/* "pruned": checkpoints a prune removed, whose archives it had still to
 * delete; absent in states of older versions and when there are none. */
static int load_pruned(struct vb_state *s, json_object *root)
{
	json_object *arr;
	size_t n;

	if (!json_object_object_get_ex(root, "pruned", &arr) || !arr)
		return 0;
	if (!json_object_is_type(arr, json_type_array))
		return -1;
	n = json_object_array_length(arr);
	s->pruned = calloc(n + 1, sizeof(*s->pruned));
	if (!s->pruned)
		return -1;
	for (size_t i = 0; i < n; i++) {
		json_object *x = json_object_array_get_idx(arr, i);
		struct vb_pruned *p = &s->pruned[s->npruned];

		if (!jstr(x, "checkpoint") || !jstr(x, "uuid"))
			return -1;
		p->checkpoint = xstrdup(jstr(x, "checkpoint"));
		p->uuid = xstrdup(jstr(x, "uuid"));
		p->archive = xstrdup(jstr(x, "archive"));
		s->npruned++;
		if (!p->checkpoint || !p->uuid)
			return -1;
	}
	return 0;
}

static int load_checkpoints(struct vb_state *s, json_object *root, struct vb_error *err)
{
	json_object *arr, *p, *man;
	size_t n;

	if (!json_object_object_get_ex(root, "checkpoints", &arr) ||
	    !json_object_is_type(arr, json_type_array))
		return -1;
	n = json_object_array_length(arr);
	s->ck = calloc(n + 1, sizeof(*s->ck));
	if (!s->ck)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (ckpt_from_json(&s->ck[i], json_object_array_get_idx(arr, i)) < 0)
			return -1;
		s->n++;
	}
	if (json_object_object_get_ex(root, "pending", &p) && p) {
		s->pending = calloc(1, sizeof(*s->pending));
		if (!s->pending || ckpt_from_json(s->pending, p) < 0) {
			free(s->pending);
			s->pending = NULL;
			return -1;
		}
	}
	if (json_object_object_get_ex(root, "manifests", &man) &&
	    json_object_is_type(man, json_type_array)) {
		size_t m = json_object_array_length(man);

		s->manifests = calloc(m + 1, sizeof(char *));
		if (!s->manifests)
			return -1;
		for (size_t i = 0; i < m; i++) {
			const char *f = json_object_get_string(json_object_array_get_idx(man, i));

			if (!file_name_ok(f))
				return -1;
			s->manifests[s->nman++] = xstrdup(f);
		}
	}
	(void)err;
	return load_pruned(s, root);
}

/* The checks of a loaded state.json, on its text (len bytes, NUL after). */
static int parse_state(struct vb_state *s, const char *text, size_t len, struct vb_error *err)
{
	json_object *root = NULL;
	struct json_tokener *tok;
	const char *fmt, *set;
	int64_t version;
	int rc = -1;

	if (len > INT_MAX)
		return vb_error_set(err, VB_E_INVALID, 0, "%s/%s is damaged (too large)",
				    s->path, STATE_FILE);
	tok = json_tokener_new();
	if (tok)
		root = json_tokener_parse_ex(tok, text, (int)len);
	if (!tok || !root || json_tokener_get_parse_end(tok) != len ||
	    !json_object_is_type(root, json_type_object)) {
		vb_error_set(err, VB_E_INVALID, 0, "%s/%s is damaged (not valid JSON); "
			     "move the set's directory away to start a new chain",
			     s->path, STATE_FILE);
		goto out;
	}
	fmt = jstr(root, "format");
	set = jstr(root, "set");
	if (!fmt || strcmp(fmt, "vmaback-state") != 0 || jint(root, "version", &version) < 0) {
		vb_error_set(err, VB_E_INVALID, 0, "%s/%s is not a vmaback state file",
			     s->path, STATE_FILE);
		goto out;
	}
	if (version > STATE_VERSION) {
		vb_error_set(err, VB_E_INVALID, 0, "%s/%s was written by a newer vmaback "
			     "(state version %lld); this one knows version %d", s->path,
			     STATE_FILE, (long long)version, STATE_VERSION);
		goto out;
	}
	if (!set || strcmp(set, s->set) != 0) {
		vb_error_set(err, VB_E_INVALID, 0, "%s/%s belongs to set '%s', not '%s'",
			     s->path, STATE_FILE, set ? set : "?", s->set);
		goto out;
	}
	if (load_checkpoints(s, root, err) < 0) {
		vb_error_set(err, VB_E_INVALID, 0, "%s/%s is damaged (bad checkpoint entry)",
			     s->path, STATE_FILE);
		goto out;
	}
	rc = 0;
out:
	json_object_put(root);
	json_tokener_free(tok);
	return rc;
}

static int load_state(struct vb_state *s, struct vb_error *err)
{
	char *text = NULL;
	size_t len;
	int rc;

	if (read_whole(s->dirfd, STATE_FILE, &text, &len) < 0) {
		if (errno == ENOENT)
			return 0;
		return vb_error_set(err, VB_E_FAIL, errno, "%s/%s: %s", s->path, STATE_FILE,
				    strerror(errno));
	}
	rc = parse_state(s, text, len, err);
	free(text);
	return rc;
}

struct vb_state *vb_state_parse(const char *set, const char *text, size_t len,
				struct vb_error *err)
{
	struct vb_state *s = calloc(1, sizeof(*s));

	if (!s) {
		vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
		return NULL;
	}
	s->dirfd = s->lockfd = -1;
	s->path = strdup("(text)");
	s->set = strdup(set);
	if (!s->path || !s->set) {
		vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
		goto fail;
	}
	if (parse_state(s, text, len, err) < 0)
		goto fail;
	return s;
fail:
	vb_state_close(s);
	return NULL;
}

char *vb_state_text(const struct vb_state *s)
{
	return state_to_string(s);
}

static bool referenced(const struct vb_state *s, const char *f)
{
	const struct vb_ckpt *all[2] = { NULL, s->pending };

	for (size_t i = 0; i < s->nman; i++)
		if (strcmp(s->manifests[i], f) == 0)
			return true;
	for (size_t i = 0; i <= s->n; i++) {
		const struct vb_ckpt *c = i < s->n ? &s->ck[i] : all[1];

		for (size_t j = 0; c && j < c->ndrives; j++) {
			if (strcmp(c->drives[j].bitmap, f) == 0 ||
			    (c->drives[j].digests && strcmp(c->drives[j].digests, f) == 0) ||
			    (c->drives[j].archive_digests &&
			     strcmp(c->drives[j].archive_digests, f) == 0))
				return true;
		}
	}
	return false;
}

/* Removes every file state.json does not name: leftovers of a run that was
 * killed before it published, and files a newer state made obsolete. */
static void collect_garbage(struct vb_state *s, bool report)
{
	int fd = openat(s->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *e;
	unsigned removed = 0;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
		    strcmp(e->d_name, STATE_FILE) == 0 || strcmp(e->d_name, LOCK_FILE) == 0 ||
		    referenced(s, e->d_name))
			continue;
		if (unlinkat(s->dirfd, e->d_name, 0) == 0)
			removed++;
	}
	closedir(d);
	if (removed && report)
		vb_notes_add(&s->notes, "removed %u leftover file%s of an interrupted run from %s", removed,
		     removed == 1 ? "" : "s", s->path);
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

static bool pid_running(const char *text)
{
	char *end;
	long pid;

	errno = 0;
	pid = strtol(text, &end, 10);
	if (errno || end == text || *end != '\0' || pid <= 0 || (pid_t)pid != pid)
		return false;
	return kill((pid_t)pid, 0) == 0 || errno == EPERM;
}

static int take_lock(struct vb_state *s, struct vb_error *err)
{
	char pid[32], held[32] = "";
	ssize_t n;

	s->lockfd = openat(s->dirfd, LOCK_FILE, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (s->lockfd < 0)
		return vb_error_set(err, VB_E_FAIL, errno, "%s/%s: %s", s->path, LOCK_FILE,
				    strerror(errno));
	if (flock(s->lockfd, LOCK_EX | LOCK_NB) < 0) {
		if (errno != EWOULDBLOCK)
			return vb_error_set(err, VB_E_FAIL, errno, "%s/%s: %s", s->path,
					    LOCK_FILE, strerror(errno));
		n = pread(s->lockfd, held, sizeof(held) - 1, 0);
		held[n > 0 ? n : 0] = '\0';
		held[strcspn(held, "\n")] = '\0';
		/* The holder may be another program, or vmaback killed before
		 * it could clear its pid: name only a pid that still runs. */
		if (!pid_running(held))
			held[0] = '\0';
		return vb_error_set(err, VB_E_LOCKED, EWOULDBLOCK,
				    "backup set '%s' is locked by another vmaback run%s%s%s",
				    s->set, held[0] ? " (pid " : "", held, held[0] ? ")" : "");
	}
	n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(s->lockfd, 0) == 0)
		(void)!pwrite(s->lockfd, pid, (size_t)n, 0);
	return 0;
}

struct vb_state *vb_state_open(const char *dir, const char *set, struct vb_error *err)
{
	struct vb_state *s = calloc(1, sizeof(*s));
	char buf[PATH_MAX];

	if (!s) {
		vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
		return NULL;
	}
	s->dirfd = s->lockfd = -1;
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
	if (make_dirs(s->path, err) < 0)
		goto fail;
	s->dirfd = open(s->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dirfd < 0) {
		vb_error_set(err, VB_E_FAIL, errno, "%s: %s", s->path, strerror(errno));
		goto fail;
	}
	if (take_lock(s, err) < 0 || load_state(s, err) < 0)
		goto fail;
	collect_garbage(s, true);
	return s;
fail:
	vb_state_close(s);
	return NULL;
}

void vb_state_close(struct vb_state *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++)
		ckpt_clear(&s->ck[i]);
	free(s->ck);
	ckpt_clear(s->pending);
	free(s->pending);
	for (size_t i = 0; i < s->nman; i++)
		free(s->manifests[i]);
	free(s->manifests);
	pruned_clear(s);
	if (s->lockfd >= 0) {
		/* Only the holder writes the pid: clear it, then let go. */
		if (flock(s->lockfd, LOCK_EX | LOCK_NB) == 0)
			(void)!ftruncate(s->lockfd, 0);
		close(s->lockfd); /* releases the flock */
	}
	if (s->dirfd >= 0)
		close(s->dirfd);
	free(s->notes);
	free(s->path);
	free(s->set);
	free(s);
}

const char *vb_state_notes(const struct vb_state *s)
{
	return s->notes ? s->notes : "";
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

/* ------------------------------------------------------------ files */

int vb_state_open_file(struct vb_state *s, const char *file, struct vb_error *err)
{
	int fd;

	if (!file_name_ok(file))
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
	int rc;

	if (fd < 0)
		return -1;
	rc = vb_write_all(fd, buf, len) < 0 || fsync(fd) < 0 ? -1 : 0;
	if (close(fd) < 0)
		rc = -1;
	if (rc < 0) {
		vb_error_set(err, VB_E_FAIL, errno, "%s/%s: %s", s->path, *name, strerror(errno));
		unlinkat(s->dirfd, *name, 0);
		free(*name);
		*name = NULL;
	}
	return rc;
}

void vb_state_unlink(struct vb_state *s, const char *file)
{
	if (file && file_name_ok(file))
		unlinkat(s->dirfd, file, 0);
}

int vb_state_load_bitmap(struct vb_state *s, const char *file, struct bitmap **out,
			 struct vb_error *err)
{
	char *buf;
	size_t len;
	int rc;

	if (!file_name_ok(file) || read_whole(s->dirfd, file, &buf, &len) < 0)
		return vb_error_set(err, VB_E_INVALID, errno, "%s/%s: cannot read: %s",
				    s->path, file ? file : "?", strerror(errno));
	rc = bitmap_decode((const uint8_t *)buf, len, out);
	free(buf);
	if (rc < 0)
		return vb_error_set(err, VB_E_INVALID, 0, "%s/%s: %s", s->path, file,
				    bitmap_strerror(rc));
	return 0;
}

/* ------------------------------------------------------------ publishing */

/* Writes state.json through a temporary, fsync, rename, fsync of the dir. */
static int publish(struct vb_state *s, struct vb_error *err)
{
	char tmp[PATH_MAX], *text = state_to_string(s);
	int fd, rc = -1;

	if (!text)
		return vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
	snprintf(tmp, sizeof(tmp), "%s/.%s.XXXXXX", s->path, STATE_FILE);
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		vb_error_set(err, VB_E_FAIL, errno, "%s: %s", s->path, strerror(errno));
		goto out;
	}
	if (fchmod(fd, 0600) < 0 || vb_write_all(fd, text, strlen(text)) < 0 || fsync(fd) < 0) {
		vb_error_set(err, VB_E_FAIL, errno, "%s/%s: %s", s->path, STATE_FILE,
			     strerror(errno));
		close(fd);
		unlink(tmp);
		goto out;
	}
	if (close(fd) < 0 || renameat(AT_FDCWD, tmp, s->dirfd, STATE_FILE) < 0) {
		vb_error_set(err, VB_E_FAIL, errno, "%s/%s: %s", s->path, STATE_FILE,
			     strerror(errno));
		unlink(tmp);
		goto out;
	}
	if (fsync(s->dirfd) < 0) {
		vb_error_set(err, VB_E_FAIL, errno, "%s: fsync: %s", s->path, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	free(text);
	return rc;
}

static char *manifest_text(const struct vb_state *s, const struct vb_ckpt *c)
{
	json_object *o = json_object_new_object(), *arr = json_object_new_array();
	char *out;

	jadd(o, "format", "vmaback-manifest");
	json_object_object_add(o, "version", json_object_new_int(1));
	jadd(o, "set", s->set);
	jadd(o, "checkpoint", c->name);
	jadd(o, "kind", c->kind);
	jadd(o, "uuid", c->uuid);
	jadd(o, "base_uuid", c->base_uuid);
	jadd(o, "archive", c->archive);
	jadd(o, "archive_sha256", c->archive_sha256);
	json_object_object_add(o, "time", json_object_new_int64(c->time));
	for (size_t i = 0; i < c->ndrives; i++) {
		json_object *x = json_object_new_object();

		jadd(x, "name", c->drives[i].name);
		json_object_object_add(x, "size", json_object_new_int64((int64_t)c->drives[i].size));
		jadd(x, "digest_root", c->drives[i].digest_root);
		json_object_array_add(arr, x);
	}
	json_object_object_add(o, "drives", arr);
	out = xstrdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
							JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	return out;
}

static int add_manifest(struct vb_state *s, const struct vb_ckpt *c, struct vb_error *err)
{
	char *text = manifest_text(s, c), *name = NULL, **m;
	int rc;

	if (!text)
		return vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
	rc = vb_state_write_file(s, "manifest", text, strlen(text), &name, err);
	free(text);
	if (rc < 0)
		return -1;
	m = realloc(s->manifests, (s->nman + 1) * sizeof(*m));
	if (!m) {
		vb_state_unlink(s, name);
		free(name);
		return vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
	}
	s->manifests = m;
	s->manifests[s->nman++] = name;
	return 0;
}

/* Digest maps belong to the latest checkpoint (and a pending one) only. */
static void drop_digests(struct vb_ckpt *c)
{
	for (size_t i = 0; c && i < c->ndrives; i++) {
		free(c->drives[i].digests);
		c->drives[i].digests = NULL;
	}
}

static void clear_memory(struct vb_state *s)
{
	for (size_t i = 0; i < s->n; i++)
		ckpt_clear(&s->ck[i]);
	free(s->ck);
	s->ck = NULL;
	s->n = 0;
	ckpt_clear(s->pending);
	free(s->pending);
	s->pending = NULL;
	for (size_t i = 0; i < s->nman; i++)
		free(s->manifests[i]);
	free(s->manifests);
	s->manifests = NULL;
	s->nman = 0;
	pruned_clear(s);
}

/* Publishes the state in memory; on failure memory goes back to what the
 * disk holds, so both always agree. */
static int publish_or_reload(struct vb_state *s, struct vb_error *err)
{
	struct vb_error ignored = { 0 };

	if (publish(s, err) == 0) {
		collect_garbage(s, false);
		return 0;
	}
	clear_memory(s);
	(void)load_state(s, &ignored);
	return -1;
}

int vb_state_commit(struct vb_state *s, const struct vb_ckpt *c, bool pending,
		    struct vb_error *err)
{
	struct vb_ckpt copy, *grown;

	if (ckpt_copy(&copy, c) < 0)
		return vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
	/* Best effort: without them, verify --deep still finds damage, but
	 * names the drive and offset only where the chain's data is hit. */
	for (size_t i = 0; i < copy.ndrives && !copy.drives[i].archive_digests; i++)
		(void)vb_adigests_write(s, &copy, i, &copy.drives[i].archive_digests,
					&(struct vb_error){ 0 });
	grown = realloc(s->ck, (s->n + 2) * sizeof(*s->ck));
	if (!grown) {
		ckpt_clear(&copy);
		return vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
	}
	s->ck = grown;
	if (add_manifest(s, c, err) < 0) {
		ckpt_clear(&copy);
		return -1;
	}
	if (s->pending) {
		/* Replaced only now that a newer backup succeeded: a failed run
		 * leaves it, still committable. */
		vb_notes_add(&s->notes, "discarded checkpoint %s of set %s: it was never "
			     "committed (vmaback commit)", s->pending->name, s->set);
		ckpt_clear(s->pending);
		free(s->pending);
		s->pending = NULL;
	}
	if (pending) {
		s->pending = malloc(sizeof(*s->pending));
		if (!s->pending) {
			ckpt_clear(&copy);
			return vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
		}
		*s->pending = copy;
	} else {
		if (s->n)
			drop_digests(&s->ck[s->n - 1]);
		s->ck[s->n++] = copy;
	}
	return publish_or_reload(s, err);
}

int vb_state_commit_pending(struct vb_state *s, const char *name, struct vb_error *err)
{
	struct vb_ckpt *grown;

	if (!s->pending || strcmp(s->pending->name, name) != 0)
		return vb_error_set(err, VB_E_USAGE, 0,
				    "backup set '%s' has no pending checkpoint named %s%s%s%s",
				    s->set, name, s->pending ? " (pending: " : "",
				    s->pending ? s->pending->name : "", s->pending ? ")" : "");
	grown = realloc(s->ck, (s->n + 1) * sizeof(*s->ck));
	if (!grown)
		return vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
	s->ck = grown;
	if (s->n)
		drop_digests(&s->ck[s->n - 1]);
	s->ck[s->n++] = *s->pending;
	free(s->pending);
	s->pending = NULL;
	return publish_or_reload(s, err);
}

/* child.bitmap |= removed.bitmap for one drive, into a new file. */
static int merge_bitmap(struct vb_state *s, struct vb_ckpt_drive *child,
			const struct vb_ckpt_drive *gone, struct vb_error *err)
{
	struct bitmap *a = NULL, *b = NULL;
	uint8_t *enc = NULL;
	size_t len;
	char *name = NULL;
	int rc = -1;

	if (vb_state_load_bitmap(s, child->bitmap, &a, err) < 0 ||
	    vb_state_load_bitmap(s, gone->bitmap, &b, err) < 0)
		goto out;
	if (bitmap_size(a) == bitmap_size(b))
		bitmap_union(a, b);
	else
		bitmap_set_all(a); /* the drive changed size: all of it changed */
	if (bitmap_encode(a, &enc, &len) < 0) {
		vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
		goto out;
	}
	if (vb_state_write_file(s, "bitmap", enc, len, &name, err) < 0)
		goto out;
	free(child->bitmap);
	child->bitmap = name;
	rc = 0;
out:
	free(enc);
	bitmap_free(a);
	bitmap_free(b);
	return rc;
}

/* Removes checkpoint name in memory only; on failure the caller reloads. */
static int remove_one(struct vb_state *s, const char *name, struct vb_error *err)
{
	struct vb_ckpt *gone = NULL, *child;
	size_t i;

	for (i = 0; i < s->n && !gone; i++)
		if (strcmp(s->ck[i].name, name) == 0)
			gone = &s->ck[i];
	if (!gone)
		return vb_error_set(err, VB_E_USAGE, 0, "backup set '%s' has no checkpoint %s",
				    s->set, name);
	if (i == s->n)
		return vb_error_set(err, VB_E_USAGE, 0,
				    "%s is the latest checkpoint of set '%s': the next "
				    "incremental backup builds on it, so it cannot be removed",
				    name, s->set);
	child = &s->ck[i];
	for (size_t j = 0; j < child->ndrives; j++) {
		for (size_t k = 0; k < gone->ndrives; k++) {
			if (strcmp(child->drives[j].name, gone->drives[k].name) != 0)
				continue;
			if (merge_bitmap(s, &child->drives[j], &gone->drives[k], err) < 0)
				return -1;
		}
	}
	free(child->parent);
	child->parent = xstrdup(gone->parent);
	ckpt_clear(gone);
	memmove(gone, gone + 1, (size_t)(s->n - i) * sizeof(*gone));
	s->n--;
	return 0;
}

static void reload(struct vb_state *s)
{
	clear_memory(s);
	(void)load_state(s, &(struct vb_error){ 0 });
}

int vb_state_remove(struct vb_state *s, const char *name, struct vb_error *err)
{
	if (remove_one(s, name, err) < 0) {
		reload(s);
		return -1;
	}
	return publish_or_reload(s, err);
}

static int add_pruned(struct vb_state *s, const struct vb_ckpt *c)
{
	struct vb_pruned *p = realloc(s->pruned, (s->npruned + 1) * sizeof(*p));

	if (!p)
		return -1;
	s->pruned = p;
	p = &s->pruned[s->npruned];
	p->checkpoint = xstrdup(c->name);
	p->uuid = xstrdup(c->uuid);
	p->archive = xstrdup(c->archive);
	s->npruned++;
	return p->checkpoint && p->uuid && (p->archive || !c->archive) ? 0 : -1;
}

int vb_state_prune(struct vb_state *s, const char *const *names, size_t n,
		   struct vb_error *err)
{
	for (size_t i = 0; i < n; i++) {
		const struct vb_ckpt *c = vb_state_find(s, names[i]);

		if (c && add_pruned(s, c) < 0) {
			reload(s);
			return vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
		}
		if (remove_one(s, names[i], err) < 0) {
			reload(s);
			return -1;
		}
	}
	return publish_or_reload(s, err);
}

size_t vb_state_pruned_count(const struct vb_state *s)
{
	return s->npruned;
}

const struct vb_pruned *vb_state_pruned_get(const struct vb_state *s, size_t i)
{
	return i < s->npruned ? &s->pruned[i] : NULL;
}

int vb_state_forget_pruned(struct vb_state *s, struct vb_error *err)
{
	if (!s->npruned)
		return 0;
	pruned_clear(s);
	return publish_or_reload(s, err);
}
