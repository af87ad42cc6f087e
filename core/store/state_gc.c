/* state_gc.c: removal of a state directory's leftovers: files state.json
 * does not name. */

#include <dirent.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "core/store/store_int.h"

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
void st_collect_garbage(struct vb_state *s, bool report)
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
