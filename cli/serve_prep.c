/* serve_prep.c: what `vmaback serve` prepares before nbdkit starts: a
 * cache of sequential archives (--cache-dir), qcow2 overlays of the
 * exports (--overlay). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/serve.h"

/* A directory of ours, made 0700 when missing. */
static int ensure_dir(const char *opt, const char *dir)
{
	struct stat st;

	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return cli_usage("serve", "%s %s: %s", opt, dir, strerror(errno));
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
		return cli_usage("serve", "%s %s: not a directory", opt, dir);
	return EXIT_OK;
}

static void cache_progress(void *opaque, uint64_t raw_done, uint64_t raw_total, uint64_t out)
{
	const struct cli_serve *s = opaque;
	char a[32], b[32];

	cli_format_size(out, a, sizeof(a));
	cli_format_size(raw_total, b, sizeof(b));
	cli_info(s->quiet, "INFO: caching: %3u%% of %s read, %s decompressed",
		 raw_total ? (unsigned)(raw_done * 100 / raw_total) : 100, b, a);
}

/* Whether path starts as an encrypted archive (doc/encryption.md). */
static bool encrypted(const char *path)
{
	FILE *f = fopen(path, "re");
	char magic[8] = "";
	bool yes = f && fread(magic, 1, sizeof(magic), f) == sizeof(magic) &&
		   memcmp(magic, "VBCRYPT", sizeof(magic)) == 0;

	if (f)
		fclose(f);
	return yes;
}

int cli_serve_cache(struct cli_serve *s)
{
	int status;

	for (size_t i = 0; i < s->narchives; i++) {
		struct vb_error err = { 0 };
		struct vb_rafile *f = vb_rafile_open(s->archives[i], &err);
		char *cached;
		bool reused;

		if (f) {
			vb_rafile_free(f);
			continue;
		}
		if (err.cls != VB_E_USAGE)
			return cli_fail("serve", &err);
		if (encrypted(s->archives[i])) {
			cli_warn("serve", "%s; an encrypted archive is not cached (the copy would "
				 "hold it decrypted)", err.msg);
			return EXIT_USAGE;
		}
		if (!s->cache_dir) {
			cli_warn("serve", "%s; give --cache-dir DIR to serve it from a "
				 "decompressed copy", err.msg);
			return EXIT_USAGE;
		}
		if ((status = ensure_dir("--cache-dir", s->cache_dir)) != EXIT_OK)
			return status;
		cli_info(s->quiet, "INFO: %s can only be read from the start: serving a "
			 "decompressed copy in %s", s->archives[i], s->cache_dir);
		vb_error_clear(&err);
		cached = vb_archive_cache(s->archives[i], s->cache_dir, cache_progress, s, &reused,
					  &err);
		if (!cached)
			return cli_fail("serve", &err);
		if (reused)
			cli_info(s->quiet, "INFO: using %s, decompressed before", cached);
		free(s->archives[i]);
		s->archives[i] = cached;
	}
	return EXIT_OK;
}

int cli_serve_overlays(const struct cli_serve *s)
{
	int status = ensure_dir("--overlay", s->overlay);

	for (size_t i = 0; i < s->nserved && status == EXIT_OK; i++) {
		struct vb_error err = { 0 };
		struct vb_tempfile *t;
		char *path = NULL;
		int pr;

		if (asprintf(&path, "%s/%s.qcow2", s->overlay, s->served[i]) < 0)
			return cli_usage("serve", "out of memory");
		if (access(path, F_OK) == 0) {
			status = cli_usage("serve", "--overlay: %s exists: remove it first", path);
			free(path);
			break;
		}
		/* a registered temporary, made by qemu-img, then renamed */
		t = vb_tempfile_new(path, &err);
		if (!t || vb_qemu_img_overlay(path, vb_tempfile_path(t), s->uris[i],
					      s->sizes[i], &err) < 0) {
			vb_tempfile_discard(t);
			status = cli_fail("serve", &err);
			free(path);
			break;
		}
		pr = vb_tempfile_publish(t, false, &err);
		if (pr < 0)
			status = cli_fail("serve", &err);
		else
			cli_info(s->quiet, "INFO: overlay %s on %s", path, s->uris[i]);
		free(path);
	}
	return status;
}
