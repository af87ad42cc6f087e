/* state_commit.c: changes of the chain, each published by one atomic rename
 * of state.json: commit, commit of a pending checkpoint, removal, prune. */

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bitmap/bitmap.h"
#include "core/store/store_int.h"


/* Writes state.json through a registered temporary (core/io's publish:
 * fsync, rename, fsync of the dir): 0; 1 when the rename happened but the
 * directory's fsync failed (the new state is the current one, err says it
 * may not survive a crash); -1 when state.json was not replaced. */
static int publish(struct vb_state *s, struct vb_error *err)
{
	char final[PATH_MAX], *text = st_state_text(s);
	struct vb_tempfile *t;
	int rc = -1, e;

	if (!text)
		return vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
	snprintf(final, sizeof(final), "%s/%s", s->path, STATE_FILE);
	t = vb_tempfile_new(final, err);
	if (!t)
		goto out;
	/* vb_write_whole, not vb_write_all: a change of the state, once begun
	 * (the archive is published by then), is completed, then the signal
	 * takes effect */
	if ((e = -vb_write_whole(vb_tempfile_fd(t), text, strlen(text))) != 0) {
		vb_error_set(err, VB_E_FAIL, e, "%s: %s", final, strerror(e));
		vb_tempfile_discard(t);
		goto out;
	}
	rc = vb_tempfile_publish(t, true, err);
	if (rc > 0) {
		e = err->sys_errno;
		vb_error_clear(err);
		vb_error_set(err, VB_E_FAIL, e, "the state directory %s could not be made "
			     "durable after %s was replaced (fsync: %s): after a crash the set "
			     "may be back at its previous state", s->path, STATE_FILE,
			     strerror(e));
	}
out:
	free(text);
	return rc;
}

static int add_manifest(struct vb_state *s, const struct vb_ckpt *c, struct vb_error *err)
{
	char *text = st_manifest_text(s, c), *name = NULL, **m;
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

/* Publishes the state in memory; on failure memory goes back to what the
 * disk holds, so both always agree. 1: published, not durable (publish). */
static int publish_or_reload(struct vb_state *s, struct vb_error *err)
{
	struct vb_error ignored = { 0 };
	int r;

	if (!s->writer) {
		vb_error_set(err, VB_E_FAIL, EBADF, "%s: opened for reading only", s->path);
	} else if ((r = publish(s, err)) >= 0) {
		/* Not durable: after a crash the previous state.json may be back,
		 * with the files it names; the next run's clean-up removes them. */
		if (r == 0)
			st_collect_garbage(s, false);
		return r;
	}
	st_clear_memory(s);
	(void)st_load(s, &ignored);
	return -1;
}

int vb_state_commit(struct vb_state *s, const struct vb_ckpt *c, bool pending,
		    struct vb_error *err)
{
	struct vb_ckpt copy, *grown;

	if (st_ckpt_copy(&copy, c) < 0)
		return vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
	/* Best effort: without them, verify --deep still finds damage, but
	 * names the drive and offset only where the chain's data is hit. */
	for (size_t i = 0; i < copy.ndrives && !copy.drives[i].archive_digests; i++)
		(void)vb_adigests_write(s, &copy, i, &copy.drives[i].archive_digests,
					&(struct vb_error){ 0 });
	grown = realloc(s->ck, (s->n + 2) * sizeof(*s->ck));
	if (!grown) {
		st_ckpt_clear(&copy);
		return vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
	}
	s->ck = grown;
	if (add_manifest(s, c, err) < 0) {
		st_ckpt_clear(&copy);
		return -1;
	}
	if (s->pending) {
		/* Replaced only now that a newer backup succeeded: a failed run
		 * leaves it, still committable. */
		vb_warn(&s->warn, VB_WARN_DISCARDED, NULL, "discarded checkpoint %s of set %s: "
			"it was never committed (vmaback commit)", s->pending->name, s->set);
		st_ckpt_clear(s->pending);
		free(s->pending);
		s->pending = NULL;
	}
	if (pending) {
		s->pending = malloc(sizeof(*s->pending));
		if (!s->pending) {
			st_ckpt_clear(&copy);
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
	struct vb_error why = { 0 };
	struct vb_ckpt *grown;

	if (!s->pending || strcmp(s->pending->name, name) != 0)
		return vb_error_set(err, VB_E_USAGE, 0,
				    "backup set '%s' has no pending checkpoint named %s%s%s%s",
				    s->set, name, s->pending ? " (pending: " : "",
				    s->pending ? s->pending->name : "", s->pending ? ")" : "");
	/* A pending checkpoint becomes the base of every later incremental: an
	 * archive cut short or changed since would make them unrestorable. */
	if (vb_ckpt_check_archive(s->pending, &why) < 0)
		return vb_error_set(err, why.cls, why.sys_errno, "checkpoint %s of set '%s' "
				    "was not committed: %s", name, s->set, why.msg);
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


/* Whether some record of the state builds on the archive with this uuid:
 * restoring it (or a checkpoint after it) reads that archive. */
static bool built_on(const struct vb_state *s, const char *uuid)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->ck[i].base_uuid && strcmp(s->ck[i].base_uuid, uuid) == 0)
			return true;
	for (size_t i = 0; i < s->nretired; i++)
		if (s->retired[i].base_uuid && strcmp(s->retired[i].base_uuid, uuid) == 0)
			return true;
	return s->pending && s->pending->base_uuid && strcmp(s->pending->base_uuid, uuid) == 0;
}

/* Keeps the record of a removed checkpoint (it moves out of *gone) whose
 * archive a kept checkpoint's restore needs: no longer a checkpoint (not
 * found by name, no base for backups), but the dependency walk by base uuid
 * still reaches it and the full behind it, so prune keeps them. */
static int retire(struct vb_state *s, struct vb_ckpt *gone)
{
	struct vb_ckpt *r = realloc(s->retired, (s->nretired + 1) * sizeof(*r));

	if (!r)
		return -1;
	s->retired = r;
	drop_digests(gone);
	s->retired[s->nretired++] = *gone;
	memset(gone, 0, sizeof(*gone));
	return 0;
}

/* Removes checkpoint name in memory only (keeping its record as a retired
 * one if keep and something builds on it); on failure the caller reloads. */
static int remove_one(struct vb_state *s, const char *name, bool keep, struct vb_error *err)
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
	child->parent = st_strdup(gone->parent);
	if (gone->parent && !child->parent)
		return vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
	if (keep && built_on(s, gone->uuid) && retire(s, gone) < 0)
		return vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
	st_ckpt_clear(gone);
	memmove(gone, gone + 1, (size_t)(s->n - i) * sizeof(*gone));
	s->n--;
	return 0;
}

static void reload(struct vb_state *s)
{
	st_clear_memory(s);
	(void)st_load(s, &(struct vb_error){ 0 });
}

/* A full checkpoint followed by one that is not a full starts the chain that
 * every later checkpoint, up to the next full, is restored from: removing
 * it from the state would leave them without their base. (A prune removes
 * such a full together with everything that needs it, so it may.) */
static int refuse_chain_start(const struct vb_state *s, const char *name,
			      struct vb_error *err)
{
	size_t i, last;

	for (i = 0; i + 1 < s->n && strcmp(s->ck[i].name, name) != 0; i++)
		;
	if (i + 1 >= s->n || s->ck[i].kind != VB_KIND_FULL || s->ck[i + 1].kind == VB_KIND_FULL)
		return 0;
	for (last = i + 1; last + 1 < s->n && s->ck[last + 1].kind != VB_KIND_FULL; last++)
		;
	return vb_error_set(err, VB_E_USAGE, 0,
			    "%s is the full checkpoint of set '%s' that %s%s%s build%s on: "
			    "restoring %s needs its archive, so it cannot be removed; to "
			    "start afresh, run a backup with --mode full, then `vmaback "
			    "prune` removes the old chain once no kept backup needs it",
			    name, s->set, s->ck[i + 1].name, last > i + 1 ? " ... " : "",
			    last > i + 1 ? s->ck[last].name : "", last > i + 1 ? "" : "s",
			    last > i + 1 ? "every one of them" : "it");
}

int vb_state_remove(struct vb_state *s, const char *name, struct vb_error *err)
{
	if (refuse_chain_start(s, name, err) < 0)
		return -1;
	if (remove_one(s, name, true, err) < 0) {
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
	p->checkpoint = st_strdup(c->name);
	p->uuid = st_strdup(c->uuid);
	p->archive = st_strdup(c->archive);
	s->npruned++;
	return p->checkpoint && p->uuid && (p->archive || !c->archive) ? 0 : -1;
}

int vb_state_prune(struct vb_state *s, const char *const *names, size_t n,
		   struct vb_error *err)
{
	for (size_t i = 0; i < n; i++) {
		const struct vb_ckpt *c = vb_state_find(s, names[i]);
		size_t r = s->nretired;

		for (size_t j = 0; !c && j < s->nretired && r == s->nretired; j++)
			if (strcmp(s->retired[j].uuid, names[i]) == 0)
				r = j;
		if (r < s->nretired)
			c = &s->retired[r];
		if (c && add_pruned(s, c) < 0) {
			reload(s);
			return vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
		}
		if (r < s->nretired) {
			st_ckpt_clear(&s->retired[r]);
			memmove(&s->retired[r], &s->retired[r + 1],
				(s->nretired - r - 1) * sizeof(*s->retired));
			s->nretired--;
			continue;
		}
		if (remove_one(s, names[i], false, err) < 0) {
			reload(s);
			return -1;
		}
	}
	return publish_or_reload(s, err);
}

size_t vb_state_retired_count(const struct vb_state *s)
{
	return s->nretired;
}

const struct vb_ckpt *vb_state_retired_get(const struct vb_state *s, size_t i)
{
	return i < s->nretired ? &s->retired[i] : NULL;
}

size_t vb_state_pruned_count(const struct vb_state *s)
{
	return s->npruned;
}

const struct vb_pruned *vb_state_pruned_get(const struct vb_state *s, size_t i)
{
	return i < s->npruned ? &s->pruned[i] : NULL;
}

int vb_state_sync(struct vb_state *s, struct vb_error *err)
{
	if (fsync(s->dirfd) < 0)
		return vb_error_set(err, VB_E_FAIL, errno, "the state directory %s could not "
				    "be made durable (fsync: %s)", s->path, strerror(errno));
	return 0;
}

int vb_state_forget_pruned(struct vb_state *s, struct vb_error *err)
{
	if (!s->npruned)
		return 0;
	st_pruned_clear(s);
	return publish_or_reload(s, err);
}
