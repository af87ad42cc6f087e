/* vmaback_plugin.c: the nbdkit plugin behind `vmaback serve`: every chosen
 * drive of a chain's newest point as a read-only export named after the
 * drive, read through the chain's index (core/archive index.c): only the
 * blocks a request needs are read (and only the zstd frames holding them
 * decompressed); block status reports the holes and zeros.
 *
 *   nbdkit -r nbdkit-vmaback-plugin.so archive=FULL [archive=INC ...] [drive=NAME ...]
 *          [key=KEYFILE ...] [index=FILE]
 *
 * Encrypted archives are read with the keys given (a passphrase-protected
 * one unlocked with the first line of the file $VMABACK_PASSPHRASE_FILE).
 * index=FILE: the index `vmaback serve` built (vb_index_save), read instead
 * of building it again; the chain's headers are still checked against it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include "core/archive/archive.h"

/* The index's readers are shared by every connection. */
#define THREAD_MODEL NBDKIT_THREAD_MODEL_SERIALIZE_ALL_REQUESTS

static const char **archives;
static size_t narchives;
static const char **selected;   /* drive names; none: every disk */
static size_t nselected;
static const char *index_file;  /* index=: built by vmaback serve */
static struct vb_index *idx;
static size_t *served;          /* indexes of the served drives */
static size_t nserved;
#define MAX_KEYS 8
static const struct vb_key *keys[MAX_KEYS];
static struct vb_input_opts key_opts = { .keys = keys };

struct handle {
	size_t drive;
};

static int append(const char ***v, size_t *n, const char *s)
{
	const char **p = realloc(*v, (*n + 1) * sizeof(*p));

	if (!p) {
		nbdkit_error("out of memory");
		return -1;
	}
	*v = p;
	p[(*n)++] = s;
	return 0;
}

static void vb_unload(void)
{
	vb_index_free(idx);
	free(served);
	free(archives);
	free(selected);
	for (size_t i = 0; i < key_opts.nkeys; i++)
		vb_key_free((struct vb_key *)keys[i]);
}

/* The first line of $VMABACK_PASSPHRASE_FILE (malloc'd), or NULL. */
static char *passphrase(void)
{
	const char *path = getenv("VMABACK_PASSPHRASE_FILE");
	char *line = NULL;
	size_t cap = 0;
	ssize_t n = -1;
	FILE *f;

	if (!path || !*path || !(f = fopen(path, "re")))
		return NULL;
	n = getline(&line, &cap, f);
	fclose(f);
	if (n > 0 && line[n - 1] == '\n')
		line[n - 1] = '\0';
	return line;
}

static int add_key(const char *path)
{
	struct vb_error err = { 0 };
	char *pass = passphrase();
	struct vb_key *k;

	if (key_opts.nkeys == MAX_KEYS) {
		free(pass);
		nbdkit_error("at most %d keys", MAX_KEYS);
		return -1;
	}
	k = vb_key_load(path, pass, &err);
	if (pass) {
		memset(pass, 0, strlen(pass));
		free(pass);
	}
	if (!k) {
		nbdkit_error("%s", err.msg);
		return -1;
	}
	keys[key_opts.nkeys++] = k;
	vb_input_set_default(&key_opts);
	return 0;
}

static int vb_config(const char *key, const char *value)
{
	if (strcmp(key, "archive") == 0)
		return append(&archives, &narchives, value);
	if (strcmp(key, "drive") == 0)
		return append(&selected, &nselected, value);
	if (strcmp(key, "key") == 0)
		return add_key(value);
	if (strcmp(key, "index") == 0) {
		index_file = value;
		return 0;
	}
	nbdkit_error("unknown parameter '%s' (archive=PATH, drive=NAME, key=KEYFILE, "
		     "index=FILE)", key);
	return -1;
}

static int vb_config_complete(void)
{
	if (narchives == 0) {
		nbdkit_error("no archive=PATH given");
		return -1;
	}
	return 0;
}

static int find_drive(const char *name)
{
	const struct vb_meta *m = vb_index_meta(idx);

	for (size_t i = 0; i < m->ndrives; i++)
		if (strcmp(m->drives[i].name, name) == 0)
			return (int)i;
	return -1;
}

/* The index of index=FILE, else built from the archives. */
static struct vb_index *index_get(struct vb_error *err)
{
	struct vb_index *x;
	int fd;

	if (!index_file)
		return vb_index_open(archives, narchives, err);
	fd = open(index_file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		vb_error_set(err, VB_E_FAIL, errno, "%s: %s", index_file, strerror(errno));
		return NULL;
	}
	x = vb_index_load(archives, narchives, fd, err);
	close(fd);
	return x;
}

/* The index is there once, before the first connection. */
static int vb_get_ready(void)
{
	struct vb_error err = { 0 };
	const struct vb_meta *m;

	idx = index_get(&err);
	if (!idx) {
		nbdkit_error("%s", err.msg);
		return -1;
	}
	m = vb_index_meta(idx);
	served = calloc(m->ndrives ? m->ndrives : 1, sizeof(*served));
	if (!served) {
		nbdkit_error("out of memory");
		return -1;
	}
	for (size_t i = 0; i < nselected; i++) {
		int d = find_drive(selected[i]);

		if (d < 0) {
			nbdkit_error("the archive has no drive named %s", selected[i]);
			return -1;
		}
		served[nserved++] = (size_t)d;
	}
	for (size_t i = 0; nselected == 0 && i < m->ndrives; i++)
		if (strcmp(m->drives[i].name, "vmstate") != 0)
			served[nserved++] = i;
	if (nserved == 0) {
		nbdkit_error("the archive holds no drive to serve");
		return -1;
	}
	return 0;
}

static int vb_list_exports(int readonly, int is_tls, struct nbdkit_exports *exports)
{
	const struct vb_meta *m = vb_index_meta(idx);

	for (size_t i = 0; i < nserved; i++) {
		char desc[256];

		snprintf(desc, sizeof(desc), "drive %s of %s (%llu bytes)",
			 m->drives[served[i]].name, m->checkpoint ? m->checkpoint : m->uuid,
			 (unsigned long long)m->drives[served[i]].size);
		if (nbdkit_add_export(exports, m->drives[served[i]].name, desc) < 0)
			return -1;
	}
	return 0;
}

/* The default export ("") is the first served drive. */
static const char *vb_default_export(int readonly, int is_tls)
{
	return vb_index_meta(idx)->drives[served[0]].name;
}

static void *vb_open(int readonly)
{
	const char *name = nbdkit_export_name();
	struct handle *h;
	int d = -1;

	if (!name || !*name)
		d = (int)served[0];
	for (size_t i = 0; d < 0 && i < nserved; i++)
		if (strcmp(vb_index_meta(idx)->drives[served[i]].name, name) == 0)
			d = (int)served[i];
	if (d < 0) {
		nbdkit_error("no export named '%s'", name);
		return NULL;
	}
	h = malloc(sizeof(*h));
	if (!h) {
		nbdkit_error("out of memory");
		return NULL;
	}
	h->drive = (size_t)d;
	return h;
}

static void vb_close(void *handle)
{
	free(handle);
}

static int64_t vb_get_size(void *handle)
{
	const struct handle *h = handle;

	return (int64_t)vb_index_meta(idx)->drives[h->drive].size;
}

static int vb_yes(void *handle)
{
	return 1;
}

static int vb_pread(void *handle, void *buf, uint32_t count, uint64_t offset, uint32_t flags)
{
	const struct handle *h = handle;
	struct vb_error err = { 0 };

	if (vb_index_pread(idx, h->drive, buf, count, offset, &err) < 0) {
		nbdkit_error("%s", err.msg);
		errno = err.sys_errno ? err.sys_errno : EIO;
		return -1;
	}
	return 0;
}

struct ext_ctx {
	struct nbdkit_extents *e;
	bool one;                    /* NBDKIT_FLAG_REQ_ONE: the first run is enough */
	bool done;
};

static int add_extent(void *opaque, uint64_t off, uint64_t len, bool data)
{
	struct ext_ctx *c = opaque;

	if (c->done)
		return 0;
	c->done = c->one;
	return nbdkit_add_extent(c->e, off, len,
				 data ? 0 : NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO);
}

static int vb_extents(void *handle, uint32_t count, uint64_t offset, uint32_t flags,
		      struct nbdkit_extents *extents)
{
	const struct handle *h = handle;
	struct ext_ctx c = { extents, flags & NBDKIT_FLAG_REQ_ONE, false };
	struct vb_error err = { 0 };

	if (vb_index_extents(idx, h->drive, offset, count, add_extent, &c, &err) < 0) {
		nbdkit_error("%s", err.msg);
		return -1;
	}
	return 0;
}

static struct nbdkit_plugin plugin = {
	.name = "vmaback",
	.longname = "vmaback: a backup chain's newest point, read-only",
	.version = VB_VERSION,
	.description = "Serves the drives of a chain of VMA archives (plain or seekable zstd).",
	.unload = vb_unload,
	.config = vb_config,
	.config_complete = vb_config_complete,
	.config_help = "archive=PATH   (repeated) the full archive, then its successors\n"
		       "drive=NAME     (repeated) serve only these drives\n"
		       "key=KEYFILE    (repeated) the secret key of encrypted archives\n"
		       "index=FILE     the index vmaback serve built (else built here)",
	.get_ready = vb_get_ready,
	.list_exports = vb_list_exports,
	.default_export = vb_default_export,
	.open = vb_open,
	.close = vb_close,
	.get_size = vb_get_size,
	.can_multi_conn = vb_yes,
	.can_extents = vb_yes,
	.pread = vb_pread,
	.extents = vb_extents,
};

NBDKIT_REGISTER_PLUGIN(plugin)
