/* state_gc.c: removal of a state directory's leftovers: vmaback's own
 * files (by their name patterns) that state.json does not name. */

#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/store/store_int.h"

static bool referenced(const struct vb_state *s, const char *f)
{
	for (size_t i = 0; i < s->nman; i++)
		if (strcmp(s->manifests[i], f) == 0)
			return true;
	for (size_t i = 0; i <= s->n + s->nretired; i++) {
		const struct vb_ckpt *c = i < s->n ? &s->ck[i] :
					  i < s->n + s->nretired ? &s->retired[i - s->n] :
					  s->pending;

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

/* The prefixes vb_state_create_file is called with in vmaback. */
static const char *const prefixes[] = { "bitmap", "digests", "manifest", "adigests", NULL };

bool st_gc_pattern(const char *f)
{
	size_t len = strlen(f), tmp = strlen("." STATE_FILE ".");

	for (size_t i = 0; prefixes[i]; i++) {
		size_t p = strlen(prefixes[i]);

		/* PREFIX-<16 hex>.bin, as vb_state_create_file names them */
		if (len != p + 1 + 16 + 4 || strncmp(f, prefixes[i], p) != 0 || f[p] != '-' ||
		    strcmp(f + len - 4, ".bin") != 0)
			continue;
		for (size_t k = p + 1; k < p + 17; k++)
			if (!((f[k] >= '0' && f[k] <= '9') || (f[k] >= 'a' && f[k] <= 'f')))
				return false;
		return true;
	}
	/* Temporaries of state.json: mkostemp's .state.json.XXXXXX, or the io
	 * module's .state.json.vbtmp.XXXXXX. */
	if (strncmp(f, "." STATE_FILE ".", tmp) != 0)
		return false;
	if (vb_tempfile_is_ours(f))
		return true;
	if (len != tmp + 6)
		return false;
	for (size_t k = tmp; k < len; k++)
		if (!((f[k] >= '0' && f[k] <= '9') || (f[k] >= 'a' && f[k] <= 'z') ||
		      (f[k] >= 'A' && f[k] <= 'Z')))
			return false;
	return true;
}

/* Removes vmaback's own files that state.json does not name: leftovers of a
 * run killed before it published, and files a newer state made obsolete.
 * Only a writer calls it (under the set's lock), and only in a directory
 * that held a state.json, or vmaback's lock and nothing but vmaback's own
 * files (vb_state_open refuses any other), before this run opened it: a
 * directory that is not a state is never touched, whatever files it holds. */
void st_collect_garbage(struct vb_state *s, bool report)
{
	struct stat st;
	int fd;
	DIR *d;
	struct dirent *e;
	unsigned removed = 0;
	bool synced = false;

	if (!s->writer || s->dirfd < 0 || !s->was_ours ||
	    (fstatat(s->dirfd, STATE_FILE, &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISREG(st.st_mode)))
		return;
	fd = openat(s->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((e = readdir(d))) {
		if (!st_gc_pattern(e->d_name) || referenced(s, e->d_name))
			continue;
		if (fstatat(s->dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(st.st_mode))
			continue;
		/* The state.json that does not name it may not be durable yet (a
		 * directory fsync failed after its rename): a crash would bring
		 * back one that does. */
		if (!synced && fsync(s->dirfd) < 0)
			break;
		synced = true;
		if (unlinkat(s->dirfd, e->d_name, 0) == 0)
			removed++;
	}
	closedir(d);
	if (removed && report)
		vb_warn(&s->warn, VB_WARN_LEFTOVER, NULL, "removed %u leftover file%s of an "
			"interrupted run from %s", removed, removed == 1 ? "" : "s", s->path);
}
