/* chain.c: a full archive and its incremental/differential successors,
 * checked as one chain and read as one merged, sorted stream in which the
 * newest archive holding a cluster wins. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "core/archive/archive_int.h"

struct member {
	struct vb_archive *a;
	struct vma_cluster cur;
	bool has;           /* cur holds this archive's next cluster */
	bool done;
	uint64_t last_key;  /* to check that the archive is sorted */
	bool any;
};

struct vb_chain {
	struct member *m;
	size_t n;
	struct vma_cluster out;
};

static uint64_t key_of(const struct vma_cluster *c)
{
	return (uint64_t)c->dev_id << 32 | c->cluster_num;
}

void vb_chain_free(struct vb_chain *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n; i++)
		vb_archive_free(c->m[i].a);
	free(c->m);
	free(c);
}

static bool same_drives(const struct vb_meta *a, const struct vb_meta *b)
{
	if (a->ndrives != b->ndrives)
		return false;
	for (size_t i = 0; i < a->ndrives; i++) {
		if (strcmp(a->drives[i].name, b->drives[i].name) != 0 ||
		    a->drives[i].dev_id != b->drives[i].dev_id ||
		    a->drives[i].size != b->drives[i].size)
			return false;
	}
	return true;
}

/* Archive i fits after archives 0..i-1. */
static int check_link(struct vb_chain *c, size_t i, struct vb_error *err)
{
	const struct vb_meta *m = vb_archive_meta(c->m[i].a);
	const struct vb_meta *first = vb_archive_meta(c->m[0].a);
	const struct vb_meta *prev = vb_archive_meta(c->m[i - 1].a);
	const char *path = vb_archive_path(c->m[i].a);
	bool parent = false;

	if (vb_kind_whole(m->kind))
		return vb_error_set(err, VB_E_USAGE, 0,
				    "%s is a full archive: only the first archive of a chain "
				    "may be full", path);
	if (!m->set || !first->set || strcmp(m->set, first->set) != 0)
		return vb_error_set(err, VB_E_USAGE, 0, "%s belongs to backup set '%s', the "
				    "chain's full archive to '%s'", path, m->set ? m->set : "?",
				    first->set ? first->set : "?");
	if (!same_drives(m, first))
		return vb_error_set(err, VB_E_USAGE, 0, "%s has other drives than %s", path,
				    vb_archive_path(c->m[0].a));
	for (size_t j = 0; j < i; j++) {
		const struct vb_meta *e = vb_archive_meta(c->m[j].a);

		if (strcmp(e->uuid, m->uuid) == 0)
			return vb_error_set(err, VB_E_USAGE, 0, "%s is given twice (uuid %s)",
					    path, m->uuid);
		parent = parent || strcmp(e->uuid, m->parent_uuid) == 0;
		/* a synthetic full holds the state of its newest archive; what
		 * followed any of its archives holds every change since then */
		for (size_t k = 0; k < e->nmerged && !parent; k++)
			parent = strcmp(e->merged[k], m->parent_uuid) == 0;
	}
	if (!parent)
		return vb_error_set(err, VB_E_USAGE, 0,
				    "%s builds on checkpoint %s (archive %s), which is not "
				    "among the archives before it: a gap in the chain", path,
				    m->parent_checkpoint ? m->parent_checkpoint : "?",
				    m->parent_uuid);
	if (m->time_ns <= prev->time_ns)
		return vb_error_set(err, VB_E_USAGE, 0, "%s is older than %s: give the archives "
				    "oldest first", path, vb_archive_path(c->m[i - 1].a));
	return 0;
}

struct vb_chain *vb_chain_open(const char *const *paths, size_t n, struct vb_error *err)
{
	struct vb_chain *c = calloc(1, sizeof(*c));
	const struct vb_meta *first;

	if (!c || n == 0 || !(c->m = calloc(n, sizeof(*c->m)))) {
		vb_error_set(err, n ? VB_E_FAIL : VB_E_USAGE, n ? ENOMEM : 0,
			     n ? "out of memory" : "no archive given");
		free(c);
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		size_t stdin_uses = 0;

		for (size_t j = 0; j <= i; j++)
			stdin_uses += strcmp(paths[j], "-") == 0;
		if (stdin_uses > 1) {
			vb_error_set(err, VB_E_USAGE, 0, "standard input can carry one archive only");
			goto fail;
		}
		c->m[i].a = vb_archive_open(paths[i], err);
		if (!c->m[i].a)
			goto fail;
		c->n = i + 1;
	}
	first = vb_archive_meta(c->m[0].a);
	if (!vb_kind_whole(first->kind)) {
		vb_error_set(err, VB_E_USAGE, 0, "%s is %s: a chain starts with a full archive",
			     vb_archive_path(c->m[0].a), vb_kind_name(first->kind));
		goto fail;
	}
	if (n > 1 && !first->ours) {
		vb_error_set(err, VB_E_USAGE, 0, "%s was not written by vmaback: it cannot start "
			     "a chain", vb_archive_path(c->m[0].a));
		goto fail;
	}
	for (size_t i = 1; i < n; i++)
		if (check_link(c, i, err) < 0)
			goto fail;
	return c;
fail:
	vb_chain_free(c);
	return NULL;
}

const struct vb_meta *vb_chain_meta(const struct vb_chain *c)
{
	return vb_archive_meta(c->m[c->n - 1].a);
}

size_t vb_chain_length(const struct vb_chain *c)
{
	return c->n;
}

struct vb_archive *vb_chain_archive(struct vb_chain *c, size_t i)
{
	return i < c->n ? c->m[i].a : NULL;
}

/* At the end of one archive: its own completeness checks. */
static int member_end(struct vb_chain *c, struct member *m, struct vb_error *err)
{
	const struct vb_meta *meta = vb_archive_meta(m->a);

	m->done = true;
	for (size_t i = 0; i < meta->ndrives; i++)
		if (vb_archive_check_drive(m->a, meta->drives[i].dev_id, err) < 0)
			return -1;
	(void)c;
	return 0;
}

static int member_fill(struct vb_chain *c, struct member *m, struct vb_error *err)
{
	int rc;

	if (m->has || m->done)
		return 0;
	rc = vb_archive_next_cluster(m->a, &m->cur, err);
	if (rc < 0)
		return -1;
	if (rc == 0)
		return member_end(c, m, err);
	if (c->n > 1 && m->any && key_of(&m->cur) <= m->last_key)
		return vb_error_set(err, VB_E_INVALID, 0, "%s: clusters are not in ascending "
				    "order (drive %u, cluster %" PRIu32 "); only vmaback's own "
				    "archives can be merged into a chain", vb_archive_path(m->a),
				    m->cur.dev_id, m->cur.cluster_num);
	m->last_key = key_of(&m->cur);
	m->any = true;
	m->has = true;
	return 0;
}

int vb_chain_next(struct vb_chain *c, struct vma_cluster *out, struct vb_error *err)
{
	uint64_t best = UINT64_MAX;
	size_t winner = SIZE_MAX;

	for (size_t i = 0; i < c->n; i++) {
		if (member_fill(c, &c->m[i], err) < 0)
			return -1;
		if (c->m[i].has && key_of(&c->m[i].cur) <= best) {
			best = key_of(&c->m[i].cur);
			winner = i; /* on a tie the later (newer) archive wins */
		}
	}
	if (winner == SIZE_MAX)
		return 0;
	*out = c->m[winner].cur;
	/* The winner's buffer stays valid until its reader moves on, which
	 * happens at the next call; the others holding this key are skipped. */
	for (size_t i = 0; i < c->n; i++)
		if (c->m[i].has && key_of(&c->m[i].cur) == best)
			c->m[i].has = false;
	return 1;
}
