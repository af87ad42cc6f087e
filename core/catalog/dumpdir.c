/* dumpdir.c: dump directories as vzdump keeps them (generated archive
 * names, .notes/.log/.protected siblings), and the list of a set's or a
 * directory's backups with their chains. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/catalog/catalog_int.h"

#define DEFAULT_TEMPLATE "vzdump-qemu-{vmid}-{date}"

/* Longest first: the log's name strips the first that matches. ".vmainc"
 * and ".vmadiff" are vmaback's incrementals and differentials: Proxmox's
 * storage layer lists only *.vma[.zst|.gz|.lzo] as backups, and a person
 * or a third-party reader must not take a partial archive for a full one. */
static const char *const archive_exts[] = { ".vmainc.zst", ".vmadiff.zst", ".vma.zst",
					    ".vma.gz", ".vma.lzo", ".vmainc", ".vmadiff", ".vma" };

/* An encrypted archive's name ends in ".enc" after its archive extension:
 * Proxmox, which cannot read it, does not list it as a backup either. */
#define ENC_EXT ".enc"

/* Whether the first len bytes of s end with suffix. */
static bool ends_with_n(const char *s, size_t len, const char *suffix)
{
	size_t b = strlen(suffix);

	return len >= b && memcmp(s + len - b, suffix, b) == 0;
}

/* The length of name without a trailing ".enc". */
static size_t plain_len(const char *name)
{
	size_t len = strlen(name);

	return ends_with_n(name, len, ENC_EXT) ? len - strlen(ENC_EXT) : len;
}

bool vb_dumpdir_is_archive_name(const char *name)
{
	if (name[0] == '.')
		return false; /* hidden: a temporary of a running backup */
	size_t len = plain_len(name);

	for (size_t i = 0; i < sizeof(archive_exts) / sizeof(archive_exts[0]); i++)
		if (ends_with_n(name, len, archive_exts[i]) && len > strlen(archive_exts[i]))
			return true;
	return false;
}

char *vb_dumpdir_sibling(const char *archive, const char *what)
{
	char *out = NULL;
	size_t len = strlen(archive);

	if (strcmp(what, "log") == 0) {
		len = plain_len(archive);
		for (size_t i = 0; i < sizeof(archive_exts) / sizeof(archive_exts[0]); i++)
			if (ends_with_n(archive, len, archive_exts[i])) {
				len -= strlen(archive_exts[i]);
				break;
			}
		if (asprintf(&out, "%.*s.log", (int)len, archive) < 0)
			return NULL;
		return out;
	}
	if (asprintf(&out, "%s.%s", archive, what) < 0)
		return NULL;
	return out;
}

char *vb_dumpdir_kind_name(const char *path, enum vb_kind kind)
{
	const char *ext = NULL;
	size_t len = plain_len(path);
	bool enc = len != strlen(path);
	bool zst = ends_with_n(path, len, ".vma.zst");
	char *out = NULL;

	if (!zst && !ends_with_n(path, len, ".vma"))
		return NULL;
	len -= zst ? 8 : 4;
	if (kind == VB_KIND_INCREMENTAL)
		ext = ".vmainc";
	else if (kind == VB_KIND_DIFFERENTIAL)
		ext = ".vmadiff";
	else
		ext = ".vma";
	if (asprintf(&out, "%.*s%s%s%s", (int)len, path, ext, zst ? ".zst" : "",
		     enc ? ENC_EXT : "") < 0)
		return NULL;
	return out;
}

/* Appends s to the growing buffer; false when it would not fit. */
static bool put(char *buf, size_t size, size_t *len, const char *s)
{
	size_t n = strlen(s);

	if (*len + n >= size)
		return false;
	memcpy(buf + *len, s, n + 1);
	*len += n;
	return true;
}

char *vb_dumpdir_name(const char *tmpl, const char *vmid, const char *set, int64_t time,
		      bool zstd, bool encrypted, struct vb_error *err)
{
	char buf[NAME_MAX + 1], date[32];
	time_t t = (time_t)time;
	struct tm tm;
	size_t len = 0;
	const char *p;

	buf[0] = '\0';
	if (!tmpl)
		tmpl = DEFAULT_TEMPLATE;
	if (!localtime_r(&t, &tm) || strftime(date, sizeof(date), "%Y_%m_%d-%H_%M_%S", &tm) == 0) {
		vb_error_set(err, VB_E_FAIL, 0, "cannot format the time %lld", (long long)time);
		return NULL;
	}
	for (p = tmpl; *p; ) {
		const char *v = NULL, *key = NULL;
		char one[2] = { *p, 0 };

		if (strncmp(p, "{vmid}", 6) == 0)
			v = vmid, key = "{vmid}";
		else if (strncmp(p, "{set}", 5) == 0)
			v = set, key = "{set}";
		else if (strncmp(p, "{date}", 6) == 0)
			v = date, key = "{date}";
		if (key && !v) {
			vb_error_set(err, VB_E_USAGE, 0, "name template '%s' uses %s: give %s",
				     tmpl, key, strcmp(key, "{vmid}") == 0 ? "--vmid ID" : "--set NAME");
			return NULL;
		}
		if (!put(buf, sizeof(buf) - 16, &len, key ? v : one)) {
			vb_error_set(err, VB_E_USAGE, 0, "name template '%s': the name is too long",
				     tmpl);
			return NULL;
		}
		p += key ? strlen(key) : 1;
	}
	put(buf, sizeof(buf), &len, zstd ? ".vma.zst" : ".vma");
	if (encrypted)
		put(buf, sizeof(buf), &len, ENC_EXT);
	if (!vb_safe_file_name(buf) || buf[0] == '.' || strchr(buf, '{')) {
		vb_error_set(err, VB_E_USAGE, 0, "name template '%s' gives '%s', which is not a "
			     "plain file name", tmpl, buf);
		return NULL;
	}
	return strdup(buf);
}

/* ------------------------------------------------------------ opening */

static const char *file_type(mode_t m)
{
	if (S_ISFIFO(m))
		return "a FIFO";
	if (S_ISCHR(m))
		return "a character device";
	if (S_ISBLK(m))
		return "a block device";
	if (S_ISSOCK(m))
		return "a socket";
	if (S_ISDIR(m))
		return "a directory";
	if (S_ISLNK(m))
		return "a symbolic link";
	return "not a regular file";
}

struct vb_archive *vb_catalog_open(const char *path, const char **skip, struct vb_error *err)
{
	/* O_NONBLOCK: opening a FIFO for reading would wait for a writer
	 * forever; on a regular file it changes nothing. */
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY), e;
	struct stat st;

	*skip = NULL;
	if (fd < 0) {
		e = errno;
		if (e == ELOOP) {
			*skip = "a symbolic link";
			return NULL;
		}
		vb_error_set(err, e == ENOENT ? VB_E_USAGE : VB_E_FAIL, e, "%s: %s", path,
			     strerror(e));
		return NULL;
	}
	if (fstat(fd, &st) < 0) {
		e = errno;
		close(fd);
		vb_error_set(err, VB_E_FAIL, e, "%s: %s", path, strerror(e));
		return NULL;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		*skip = file_type(st.st_mode);
		return NULL;
	}
	return vb_archive_open_fd(fd, path, err);
}

/* ------------------------------------------------------------ listing */

static void info_clear(struct vb_backup_info *b)
{
	free(b->path);
	free(b->checkpoint);
	free(b->set);
	free(b->uuid);
	free(b->base_uuid);
	free(b->error);
}

static int add_skipped(struct vb_backup_list *l, const char *path, const char *what,
		       struct vb_error *err)
{
	char **grown = realloc(l->skipped, (l->nskipped + 1) * sizeof(*grown));
	size_t size = strlen(path) * 4 + 1;
	char *shown = malloc(size);
	int n;

	if (grown)
		l->skipped = grown;
	if (!grown || !shown) {
		free(shown);
		return vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
	}
	vb_name_printable(path, shown, size); /* the name is anyone's: escape it */
	n = asprintf(&grown[l->nskipped], "%s: %s, not an archive file: skipped", shown, what);
	free(shown);
	if (n < 0)
		return vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
	l->nskipped++;
	return 0;
}

void vb_backups_free(struct vb_backup_list *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++)
		info_clear(&l->v[i]);
	free(l->v);
	for (size_t i = 0; i < l->nskipped; i++)
		free(l->skipped[i]);
	free(l->skipped);
}

static char *dup0(const char *s)
{
	return s ? strdup(s) : NULL;
}

static struct vb_backup_info *grow(struct vb_backup_list *l, struct vb_error *err)
{
	struct vb_backup_info *v = realloc(l->v, (l->n + 1) * sizeof(*v));

	if (!v) {
		vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
		return NULL;
	}
	l->v = v;
	memset(&v[l->n], 0, sizeof(*v));
	return &v[l->n++];
}

static bool exists(const char *path, const char *what)
{
	char *p = vb_dumpdir_sibling(path, what);
	bool yes = p && access(p, F_OK) == 0;

	free(p);
	return yes;
}

/* Size, presence and sibling files of b->path. */
static void stat_file(struct vb_backup_info *b)
{
	struct stat st;

	if (!b->path || stat(b->path, &st) < 0 || !S_ISREG(st.st_mode))
		return;
	b->present = true;
	b->size = (uint64_t)st.st_size;
	b->protected = exists(b->path, "protected");
	b->notes = exists(b->path, "notes");
}

static struct vb_backup_info *by_uuid(struct vb_backup_list *l, const char *uuid)
{
	for (size_t i = 0; uuid && i < l->n; i++)
		if (l->v[i].uuid && strcmp(l->v[i].uuid, uuid) == 0)
			return &l->v[i];
	return NULL;
}

static int add_ckpt(struct vb_backup_list *l, const struct vb_state *s, const struct vb_ckpt *c,
		    bool pending, struct vb_error *err)
{
	struct vb_backup_info *b = grow(l, err);

	if (!b)
		return -1;
	b->path = dup0(c->archive);
	b->checkpoint = dup0(c->name);
	b->set = dup0(vb_state_set(s));
	b->kind = c->kind;
	b->uuid = dup0(c->uuid);
	b->base_uuid = dup0(c->base_uuid);
	b->time = c->time;
	b->time_ns = c->time * 1000000000;
	b->in_state = !pending;
	b->pending = pending;
	b->latest = !pending && c == vb_state_latest(s);
	stat_file(b);
	return 0;
}

static int add_pruned(struct vb_backup_list *l, const struct vb_state *s,
		      const struct vb_pruned *p, struct vb_error *err)
{
	struct vb_backup_info *b;

	if (!p->archive || access(p->archive, F_OK) != 0 || by_uuid(l, p->uuid))
		return 0;
	if (!(b = grow(l, err)))
		return -1;
	b->path = strdup(p->archive);
	b->checkpoint = dup0(p->checkpoint);
	b->set = dup0(vb_state_set(s));
	b->kind = VB_KIND_UNKNOWN;
	b->uuid = dup0(p->uuid);
	b->pruned = true;
	stat_file(b);
	return 0;
}

/* One archive file of the directory: its vmaback.json (or header). */
static int add_file(struct vb_backup_list *l, const struct vb_state *s, const char *path,
		    struct vb_error *err)
{
	struct vb_error aerr = { 0 };
	const char *skip;
	struct vb_archive *a = vb_catalog_open(path, &skip, &aerr);
	const struct vb_meta *m = a ? vb_archive_meta(a) : NULL;
	struct vb_backup_info *b, *known = m ? by_uuid(l, m->uuid) : NULL;
	int rc = 0;

	if (skip)
		return add_skipped(l, path, skip, err);
	if (known) {
		/* A checkpoint of the state: fill in what only the file knows. */
		if (!known->present) {
			free(known->path);
			known->path = strdup(path);
			stat_file(known);
		}
		goto out;
	}
	if (s && (!m || !m->set || strcmp(m->set, vb_state_set(s)) != 0))
		goto out; /* another set's, or none's */
	if (!(b = grow(l, err))) {
		rc = -1;
		goto out;
	}
	b->path = strdup(path);
	stat_file(b);
	if (!m) {
		b->kind = VB_KIND_UNKNOWN;
		b->error = strdup(aerr.msg);
		b->time = b->time_ns = 0;
		goto out;
	}
	b->kind = m->kind;
	b->set = dup0(m->set);
	b->checkpoint = dup0(m->checkpoint);
	b->uuid = strdup(m->uuid);
	b->base_uuid = dup0(m->parent_uuid);
	b->time = m->ctime;
	b->time_ns = m->time_ns ? m->time_ns : m->ctime * 1000000000;
	for (size_t i = 0; s && i < vb_state_pruned_count(s); i++)
		if (strcmp(vb_state_pruned_get(s, i)->uuid, m->uuid) == 0)
			b->pruned = true;
out:
	vb_archive_free(a);
	return rc;
}

static int scan_dir(struct vb_backup_list *l, const struct vb_state *s, const char *dir,
		    struct vb_error *err)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char **names = NULL;
	size_t n = 0;
	int rc = 0;

	if (!d)
		return vb_error_set(err, errno == ENOENT ? VB_E_USAGE : VB_E_FAIL, errno, "%s: %s",
				    dir, strerror(errno));
	while ((e = readdir(d))) {
		char **grown;

		if (!vb_dumpdir_is_archive_name(e->d_name))
			continue;
		grown = realloc(names, (n + 1) * sizeof(*names));
		if (!grown || asprintf(&grown[n], "%s/%s", dir, e->d_name) < 0) {
			names = grown ? grown : names;
			rc = vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
			break;
		}
		names = grown;
		n++;
	}
	closedir(d);
	for (size_t i = 0; i < n; i++) {
		if (rc == 0)
			rc = add_file(l, s, names[i], err);
		free(names[i]);
	}
	free(names);
	return rc;
}

static int by_time(const void *a, const void *b)
{
	const struct vb_backup_info *x = a, *y = b;

	if (x->time_ns != y->time_ns)
		return x->time_ns < y->time_ns ? -1 : 1;
	return x->path && y->path ? strcmp(x->path, y->path) : 0;
}

/* complete: the archive and every one it builds on are present. */
static void mark_complete(struct vb_backup_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		struct vb_backup_info *b = &l->v[i];
		size_t steps = 0;

		while (b && b->present && !b->error && steps++ <= l->n) {
			if (!b->base_uuid) {
				l->v[i].complete = vb_kind_whole(b->kind);
				break;
			}
			b = by_uuid(l, b->base_uuid);
		}
	}
}

int vb_backups_collect(struct vb_state *s, const char *dir, struct vb_backup_list *out,
		       struct vb_error *err)
{
	struct vb_backup_list l = { 0 };
	size_t ord = 0;

	for (size_t i = 0; s && i < vb_state_count(s); i++)
		if (add_ckpt(&l, s, vb_state_get(s, i), false, err) < 0)
			goto fail;
	/* Retired records: their archives are links of kept chains. */
	for (size_t i = 0; s && i < vb_state_retired_count(s); i++) {
		if (add_ckpt(&l, s, vb_state_retired_get(s, i), false, err) < 0)
			goto fail;
		l.v[l.n - 1].retired = true;
	}
	if (s && vb_state_pending(s) && add_ckpt(&l, s, vb_state_pending(s), true, err) < 0)
		goto fail;
	for (size_t i = 0; s && i < vb_state_pruned_count(s); i++)
		if (add_pruned(&l, s, vb_state_pruned_get(s, i), err) < 0)
			goto fail;
	if (dir && scan_dir(&l, s, dir, err) < 0)
		goto fail;
	/* The state's order is the chain's: keep it for equal times. */
	for (size_t i = 0; i < l.n; i++, ord++)
		if (l.v[i].in_state || l.v[i].pending)
			l.v[i].time_ns = l.v[i].time_ns / 1000000000 * 1000000000 +
					 (int64_t)(ord % 1000000000);
	qsort(l.v, l.n, sizeof(*l.v), by_time);
	mark_complete(&l);
	*out = l;
	return 0;
fail:
	vb_backups_free(&l);
	return -1;
}
