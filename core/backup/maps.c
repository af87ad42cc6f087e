/* maps.c: a job's digest maps: the old one read in cluster order (its
 * content checked as it is read: trailer, recorded root), the new one
 * written as the drive is read, and the check of a map of the state. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/backup/backup_int.h"

static int fd_write_cb(void *opaque, const void *buf, size_t len)
{
	struct fdio *io = opaque;
	int rc = vb_write_whole(io->fd, buf, len);

	if (rc < 0)
		io->err = -rc;
	return rc;
}

int map_in_open(struct run *r, struct map_in *m, const char *file, uint64_t size)
{
	uint64_t msize, nclusters;
	int rc;

	m->io.fd = vb_state_open_file(r->b->o.state, file, r->err);
	m->bad = m->io.fd < 0;
	if (m->io.fd < 0)
		return -1;
	m->rd = digest_reader_new(vb_fd_read_cb, &m->io.fd);
	if (!m->rd)
		return vb_error_set(r->err, VB_E_FAIL, ENOMEM, "out of memory");
	rc = digest_reader_start(m->rd, &msize, &nclusters);
	m->bad = rc < 0 || msize != size;
	if (rc < 0)
		return vb_error_from_bitmap(r->err, rc, 0, "%s/%s", vb_state_path(r->b->o.state),
					    file);
	if (m->bad)
		return vb_error_set(r->err, VB_E_INVALID, 0, "%s/%s: size differs from the "
				    "drive's", vb_state_path(r->b->o.state), file);
	m->next = 0;
	return 0;
}

/* The digest of cluster i (reading past the ones before it). */
int map_in_get(struct run *r, struct map_in *m, uint64_t i, uint8_t d[DIGEST_LEN])
{
	int rc = 0;

	while (m->next <= i) {
		rc = digest_reader_next(m->rd, d);
		if (rc != 1) {
			m->bad = true;
			if (rc < 0)
				return vb_error_from_bitmap(r->err, rc, 0, "%s: a digest map of "
							    "the state is damaged",
							    vb_state_path(r->b->o.state));
			return vb_error_set(r->err, VB_E_INVALID, 0, "%s: a digest map of the state "
					    "is damaged: too short", vb_state_path(r->b->o.state));
		}
		m->next++;
	}
	return 0;
}

/* The map's end: its trailer is checked only once every digest was read,
 * and the old map's root against the one its checkpoint recorded (the one
 * read of that map checks it whole: job_check_map only opened it). */
int map_in_finish(struct run *r, struct map_in *m, uint64_t nclusters)
{
	uint8_t d[DIGEST_LEN], root[DIGEST_LEN];
	char hex[2 * DIGEST_LEN + 1];
	int rc;

	if (nclusters && map_in_get(r, m, nclusters - 1, d) < 0)
		return -1;
	rc = digest_reader_next(m->rd, d);
	m->bad = rc != 0;
	if (rc < 0)
		return vb_error_from_bitmap(r->err, rc, 0, "%s: a digest map of the state is "
					    "damaged", vb_state_path(r->b->o.state));
	if (rc != 0)
		return vb_error_set(r->err, VB_E_INVALID, 0, "%s: a digest map of the state is "
				    "damaged: too long", vb_state_path(r->b->o.state));
	if (!m->root)
		return 0;
	digest_reader_root(m->rd, root);
	vb_hex(root, DIGEST_LEN, hex);
	m->bad = strcmp(hex, m->root) != 0;
	if (m->bad)
		return vb_error_set(r->err, VB_E_INVALID, 0, "%s: a digest map of the state is "
				    "damaged: it does not match its recorded root hash",
				    vb_state_path(r->b->o.state));
	return 0;
}

/* The latest checkpoint's map of j, whose root is checked at its end. */
int old_map_open(struct run *r, struct drive_job *j, struct map_in *m)
{
	m->root = j->latest->digest_root;
	return map_in_open(r, m, j->latest->digests, j->size);
}

void map_in_close(struct map_in *m)
{
	digest_reader_free(m->rd);
	if (m->io.fd >= 0)
		close(m->io.fd);
	m->rd = NULL;
	m->io.fd = -1;
}

int map_out_open(struct run *r, struct drive_job *j, struct map_out *m)
{
	m->io.fd = vb_state_create_file(r->b->o.state, "digests", &j->map_file, r->err);
	if (m->io.fd < 0)
		return -1;
	m->wr = digest_writer_new(j->size, fd_write_cb, &m->io);
	if (!m->wr)
		return vb_error_set(r->err, VB_E_FAIL, ENOMEM, "out of memory");
	return 0;
}

int map_out_finish(struct run *r, struct drive_job *j, struct map_out *m)
{
	int rc = digest_writer_finish(m->wr, j->root);

	if (rc < 0)
		return vb_error_from_bitmap(r->err, rc, m->io.err, "%s/%s",
					    vb_state_path(r->b->o.state), j->map_file);
	if (fsync(m->io.fd) < 0)
		return vb_error_set(r->err, VB_E_FAIL, errno, "%s/%s: %s",
				    vb_state_path(r->b->o.state), j->map_file, strerror(errno));
	return 0;
}

void map_out_close(struct map_out *m)
{
	digest_writer_free(m->wr);
	if (m->io.fd >= 0)
		close(m->io.fd);
	m->wr = NULL;
	m->io.fd = -1;
}

int job_check_map(struct vb_state *s, const struct vb_ckpt_drive *d, uint64_t size,
		  bool whole, struct vb_error *err)
{
	struct fdio io = { .fd = -1 };
	struct digest_reader *rd = NULL;
	uint8_t dg[DIGEST_LEN], root[DIGEST_LEN];
	char roothex[2 * DIGEST_LEN + 1];
	uint64_t msize, n;
	int rc = -1, r;

	if (!d->digests)
		return vb_error_set(err, VB_E_INVALID, 0, "%s: drive %s has no digest map",
				    vb_state_path(s), d->name);
	io.fd = vb_state_open_file(s, d->digests, err);
	if (io.fd < 0)
		return -1;
	rd = digest_reader_new(vb_fd_read_cb, &io.fd);
	if (!rd) {
		vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
		goto out;
	}
	r = digest_reader_start(rd, &msize, &n);
	if (r == 0 && whole)
		while ((r = digest_reader_next(rd, dg)) == 1)
			;
	if (r < 0) {
		vb_error_from_bitmap(err, r, 0, "%s/%s: the digest map of drive %s is damaged",
				     vb_state_path(s), d->digests, d->name);
		goto out;
	}
	if (msize != size) {
		vb_error_set(err, VB_E_INVALID, 0, "%s/%s: the digest map of drive %s is damaged"
			     " (wrong size)", vb_state_path(s), d->digests, d->name);
		goto out;
	}
	if (whole) {
		digest_reader_root(rd, root);
		vb_hex(root, DIGEST_LEN, roothex);
	}
	if (!d->digest_root || (whole && strcmp(roothex, d->digest_root) != 0)) {
		vb_error_set(err, VB_E_INVALID, 0, "%s/%s: the digest map of drive %s does not "
			     "match its recorded root hash", vb_state_path(s), d->digests, d->name);
		goto out;
	}
	rc = 0;
out:
	digest_reader_free(rd);
	close(io.fd);
	return rc;
}
