/* prune.c: which backups a set keeps (Proxmox's and borg's keep-* rules,
 * then everything a kept backup's restore needs), and removing the rest:
 * first from the state, atomically, then their archive files. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>
#include <libgen.h>

#include "core/catalog/catalog_int.h"

const char *vb_keep_why_name(int why)
{
	static const char *const names[] = {
		[VB_KEEP_NO] = "remove", [VB_KEEP_LAST] = "keep-last",
		[VB_KEEP_HOURLY] = "keep-hourly", [VB_KEEP_DAILY] = "keep-daily",
		[VB_KEEP_WEEKLY] = "keep-weekly", [VB_KEEP_MONTHLY] = "keep-monthly",
		[VB_KEEP_YEARLY] = "keep-yearly", [VB_KEEP_ALL] = "keep-all",
		[VB_KEEP_PROTECTED] = "protected", [VB_KEEP_LATEST] = "latest",
		[VB_KEEP_PENDING] = "pending", [VB_KEEP_NEEDED] = "needed",
		[VB_KEEP_OTHER] = "not-in-set",
	};

	return why >= 0 && why <= VB_KEEP_OTHER ? names[why] : "?";
}

/* ------------------------------------------------------------ selection */

/* The period a time falls in, for one rule: equal keys, same period. */
static int64_t period(int rule, int64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;
	char buf[16];

	if (rule == VB_KEEP_LAST || !localtime_r(&tt, &tm))
		return t;
	switch (rule) {
	case VB_KEEP_HOURLY:
		return ((int64_t)(tm.tm_year * 12 + tm.tm_mon) * 31 + tm.tm_mday) * 24 + tm.tm_hour;
	case VB_KEEP_DAILY:
		return (int64_t)(tm.tm_year * 12 + tm.tm_mon) * 31 + tm.tm_mday;
	case VB_KEEP_WEEKLY:
		/* ISO 8601 week and its year, as Proxmox's %V/%G */
		strftime(buf, sizeof(buf), "%G%V", &tm);
		return strtoll(buf, NULL, 10);
	case VB_KEEP_MONTHLY:
		return (int64_t)tm.tm_year * 12 + tm.tm_mon;
	default:
		return tm.tm_year;
	}
}

static int newest_first(const void *a, const void *b, void *arg)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	const int64_t *sort_times = arg;

	if (sort_times[x] != sort_times[y])
		return sort_times[x] > sort_times[y] ? -1 : 1;
	return x > y ? -1 : x < y; /* the later one in the list is newer */
}

static bool contains(const int64_t *v, size_t n, int64_t x)
{
	for (size_t i = 0; i < n; i++)
		if (v[i] == x)
			return true;
	return false;
}

/* One rule over the backups, newest first: a backup not yet marked keeps its
 * period's slot unless a backup kept by an earlier rule holds that period;
 * the other backups of a period taken by this rule are marked for removal,
 * so no later rule keeps them. As pve-common's prune_mark. */
static void mark_rule(const size_t *ord, const int64_t *times, size_t n, unsigned keep,
		      int rule, int *mark, int64_t *ids, int64_t *newly)
{
	size_t nids = 0, nnew = 0;

	if (!keep)
		return;
	for (size_t i = 0; i < n; i++)
		if (mark[ord[i]] > 0 && mark[ord[i]] != VB_KEEP_PROTECTED)
			ids[nids++] = period(rule, times[ord[i]]);
	for (size_t i = 0; i < n; i++) {
		size_t b = ord[i];
		int64_t id = period(rule, times[b]);

		if (mark[b] != 0 || contains(ids, nids, id))
			continue;
		if (!contains(newly, nnew, id)) {
			if (nnew >= keep)
				break;
			newly[nnew++] = id;
			mark[b] = rule;
		} else {
			mark[b] = -1; /* removed: its period is another's */
		}
	}
}

void vb_prune_select(const int64_t *times, const bool *protected, size_t n,
		     const struct vb_keep *k, int *why)
{
	const unsigned keeps[] = { k->last, k->hourly, k->daily, k->weekly, k->monthly,
				   k->yearly };
	size_t *ord = calloc(n + 1, sizeof(*ord));
	int64_t *ids = calloc(n + 1, sizeof(*ids)), *newly = calloc(n + 1, sizeof(*newly));
	bool any = false;

	for (size_t r = 0; r < 6; r++)
		any |= keeps[r] > 0;
	for (size_t i = 0; i < n; i++)
		why[i] = protected && protected[i] ? VB_KEEP_PROTECTED : any ? 0 : VB_KEEP_ALL;
	if (!ord || !ids || !newly) {
		for (size_t i = 0; i < n; i++)
			why[i] = VB_KEEP_ALL; /* out of memory: remove nothing */
		goto out;
	}
	if (!any)
		goto out;
	for (size_t i = 0; i < n; i++)
		ord[i] = i;
	qsort_r(ord, n, sizeof(*ord), newest_first, (void *)times);
	for (int r = 0; r < 6; r++)
		mark_rule(ord, times, n, keeps[r], VB_KEEP_LAST + r, why, ids, newly);
	for (size_t i = 0; i < n; i++)
		if (why[i] < 0)
			why[i] = VB_KEEP_NO;
out:
	free(ord);
	free(ids);
	free(newly);
}

/* ------------------------------------------------------------ the plan */

static size_t find_uuid(const struct vb_backup_list *l, const char *uuid)
{
	for (size_t i = 0; uuid && i < l->n; i++)
		if (l->v[i].uuid && strcmp(l->v[i].uuid, uuid) == 0)
			return i;
	return l->n;
}

void vb_prune_plan(struct vb_backup_list *l, const struct vb_keep *k)
{
	int64_t *times = calloc(l->n + 1, sizeof(*times));
	bool *prot = calloc(l->n + 1, sizeof(*prot));
	int *why = calloc(l->n + 1, sizeof(*why));
	size_t *idx = calloc(l->n + 1, sizeof(*idx)), n = 0;

	if (!times || !prot || !why || !idx) {
		for (size_t i = 0; i < l->n; i++)
			l->v[i].keep = VB_KEEP_ALL; /* out of memory: remove nothing */
		goto out;
	}
	for (size_t i = 0; i < l->n; i++) {
		struct vb_backup_info *b = &l->v[i];

		b->needed_by = l->n;
		b->keep = b->pruned ? VB_KEEP_NO : b->pending ? VB_KEEP_PENDING : VB_KEEP_OTHER;
		if (!b->in_state)
			continue;
		/* removed by the user: kept only while a kept backup needs it */
		if (b->retired && !b->protected) {
			b->keep = VB_KEEP_NO;
			continue;
		}
		times[n] = b->time;
		prot[n] = b->protected;
		idx[n++] = i;
	}
	vb_prune_select(times, prot, n, k, why);
	for (size_t j = 0; j < n; j++) {
		struct vb_backup_info *b = &l->v[idx[j]];

		b->keep = why[j];
		if (b->latest && b->keep == VB_KEEP_NO)
			b->keep = VB_KEEP_LATEST;
	}
	/* Newest first, so each dependency names the newest backup needing it. */
	for (size_t i = l->n; i-- > 0; ) {
		size_t cur = i, steps = 0;

		if (l->v[i].keep == VB_KEEP_NO)
			continue;
		while (steps++ <= l->n) {
			size_t base = find_uuid(l, l->v[cur].base_uuid);

			if (base == l->n || base == cur)
				break;
			if (l->v[base].keep == VB_KEEP_NO) {
				l->v[base].keep = VB_KEEP_NEEDED;
				l->v[base].needed_by = i;
			}
			cur = base;
		}
	}
out:
	free(times);
	free(prot);
	free(why);
	free(idx);
}

/* ------------------------------------------------------------ removing */

static void fsync_dir_of(const char *path)
{
	char *copy = strdup(path);
	int fd = copy ? open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;

	if (fd >= 0) {
		(void)fsync(fd);
		close(fd);
	}
	free(copy);
}

/* The file at path is still the archive uuid (a later backup may have
 * taken its name). */
static bool same_archive(const char *path, const char *uuid)
{
	struct vb_error err = { 0 };
	const char *skip;
	struct vb_archive *a = vb_catalog_open(path, &skip, &err);
	bool same = a && strcmp(vb_archive_meta(a)->uuid, uuid) == 0;

	vb_archive_free(a);
	return same;
}

static int unlink_sibling(const char *archive, const char *what, struct vb_error *err)
{
	char *p = vb_dumpdir_sibling(archive, what);
	int rc = 0;

	if (!p)
		return vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
	if (unlink(p) < 0 && errno != ENOENT)
		rc = vb_error_set(err, VB_E_FAIL, errno, "%s: %s", p, strerror(errno));
	free(p);
	return rc;
}

int vb_prune_finish(struct vb_state *s, struct vb_prune_result *res, struct vb_error *err)
{
	/* The records may come from a state change that was not made durable:
	 * an archive goes only once no crash can bring back a state naming it. */
	if (vb_state_pruned_count(s) && vb_state_sync(s, err) < 0)
		return -1;
	for (size_t i = 0; i < vb_state_pruned_count(s); i++) {
		const struct vb_pruned *p = vb_state_pruned_get(s, i);

		char *prot = p->archive ? vb_dumpdir_sibling(p->archive, "protected") : NULL;
		bool keep = prot && access(prot, F_OK) == 0;

		free(prot);
		/* Gone already, not ours to delete, or protected since the plan
		 * (then it stays as an archive outside the set's state). */
		if (!p->archive || keep || access(p->archive, F_OK) != 0 ||
		    !same_archive(p->archive, p->uuid))
			continue;
		if (unlink(p->archive) < 0)
			return vb_error_set(err, VB_E_FAIL, errno, "%s: %s", p->archive,
					    strerror(errno));
		res->files++;
		if (unlink_sibling(p->archive, "notes", err) < 0 ||
		    unlink_sibling(p->archive, "log", err) < 0)
			return -1;
		fsync_dir_of(p->archive);
	}
	return vb_state_forget_pruned(s, err);
}

int vb_prune_apply(struct vb_state *s, const struct vb_backup_list *l,
		   struct vb_prune_result *res, struct vb_error *err)
{
	const char **names = calloc(l->n + 1, sizeof(*names));
	size_t n = 0;
	int rc = -1;

	memset(res, 0, sizeof(*res));
	if (!names)
		return vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
	if ((rc = vb_prune_finish(s, res, err)) != 0)
		goto out;
	rc = -1;
	for (size_t i = 0; i < l->n; i++) {
		const struct vb_backup_info *b = &l->v[i];

		if (b->in_state && b->keep == VB_KEEP_NO && !b->latest &&
		    (b->retired || vb_state_find(s, b->checkpoint)))
			/* a retired record goes by uuid: its name may be reused */
			names[n++] = b->retired ? b->uuid : b->checkpoint;
	}
	/* 1: removed from the state, which may not be durable: the caller
	 * must not delete their archives now (vb_prune_finish, next time). */
	if (n && (rc = vb_state_prune(s, names, n, err)) < 0)
		goto out;
	res->removed = n;
	rc = n ? rc : 0;
out:
	free(names);
	return rc;
}
