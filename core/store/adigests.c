/* adigests.c: per archive and drive, the digests of the clusters that
 * archive holds (a sparse list kept in the state), so verify --deep can
 * name the drive and offset of damage even in clusters later archives
 * replace, for which the latest digest map says nothing. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bitmap/bitmap.h"
#include "common/byteorder.h"
#include "core/store/store_int.h"

#define AD_MAGIC "VBADIG1\n"
#define AD_ENTRY (8 + DIGEST_LEN)

static const struct vb_ckpt_drive *drive_of(const struct vb_ckpt *c, const char *name)
{
	for (size_t i = 0; c && i < c->ndrives; i++)
		if (strcmp(c->drives[i].name, name) == 0)
			return &c->drives[i];
	return NULL;
}

/* ORs the bitmap file into *acc (all set when sizes differ). */
static int add_bitmap(struct vb_state *s, const char *file, uint64_t nbits, struct bitmap *acc,
		      struct vb_error *err)
{
	struct bitmap *b = NULL;

	if (vb_state_load_bitmap(s, file, &b, err) < 0)
		return -1;
	if (bitmap_size(b) == nbits)
		bitmap_union(acc, b);
	else
		bitmap_set_all(acc);
	bitmap_free(b);
	return 0;
}

/* The clusters the archive of c holds for drive d: all of them (full), the
 * changes since its parent (incremental), or since its base: the union of
 * the bitmaps of the checkpoints after the base (differential). */
static struct bitmap *archive_clusters(struct vb_state *s, const struct vb_ckpt *c,
				       const struct vb_ckpt_drive *d, struct vb_error *err)
{
	uint64_t n = bitmap_clusters(d->size);
	struct bitmap *acc = bitmap_new(n);
	size_t i, count = vb_state_count(s);
	bool after = false;

	if (!acc) {
		vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
		return NULL;
	}
	if (c->kind == VB_KIND_FULL || !c->base_uuid) {
		bitmap_set_all(acc);
		return acc;
	}
	if (add_bitmap(s, d->bitmap, n, acc, err) < 0)
		goto fail;
	if (c->kind != VB_KIND_DIFFERENTIAL)
		return acc;
	for (i = 0; i < count; i++) {
		const struct vb_ckpt *k = vb_state_get(s, i);
		const struct vb_ckpt_drive *kd = drive_of(k, d->name);

		if (after && k != c && (!kd || add_bitmap(s, kd->bitmap, n, acc, err) < 0)) {
			if (!kd)
				bitmap_set_all(acc);
			else
				goto fail;
		}
		if (strcmp(k->uuid, c->base_uuid) == 0)
			after = true;
	}
	if (!after) {
		vb_error_set(err, VB_E_USAGE, 0, "the base of %s is not in the state", c->name);
		goto fail;
	}
	return acc;
fail:
	bitmap_free(acc);
	return NULL;
}

/* Entries go out through a buffer of this many bytes: a full backup of a
 * 1 TiB drive has 16 Mi entries (640 MiB), which must not sit in memory. */
#define AD_BUF (4096 * AD_ENTRY)

struct vb_adigests_out {
	struct vb_state *s;
	char *name;
	int fd;
	int err;                /* the first write's errno */
	uint64_t size, count;
	size_t len;
	uint8_t buf[AD_BUF];
};

struct vb_adigests_out *vb_adigests_begin(struct vb_state *s, uint64_t size,
					  struct vb_error *err)
{
	struct vb_adigests_out *o = calloc(1, sizeof(*o));
	uint8_t head[24] = { 0 };

	if (!o) {
		vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
		return NULL;
	}
	o->s = s;
	o->size = size;
	o->fd = vb_state_create_file(s, "adigests", &o->name, err);
	if (o->fd < 0) {
		free(o);
		return NULL;
	}
	/* the header, with the count, is written last at offset 0 */
	o->err = -vb_pwrite_all(o->fd, head, sizeof(head), 0);
	return o;
}

static void ad_flush(struct vb_adigests_out *o)
{
	if (!o->err && o->len)
		o->err = -vb_pwrite_all(o->fd, o->buf, o->len,
					24 + (o->count - o->len / AD_ENTRY) * AD_ENTRY);
	o->len = 0;
}

void vb_adigests_add(struct vb_adigests_out *o, uint64_t cluster, const uint8_t d[DIGEST_LEN])
{
	put_le64(o->buf + o->len, cluster);
	memcpy(o->buf + o->len + 8, d, DIGEST_LEN);
	o->len += AD_ENTRY;
	o->count++;
	if (o->len == AD_BUF)
		ad_flush(o);
}

void vb_adigests_abort(struct vb_adigests_out *o)
{
	if (!o)
		return;
	close(o->fd);
	vb_state_unlink(o->s, o->name);
	free(o->name);
	free(o);
}

int vb_adigests_end(struct vb_adigests_out *o, char **name, struct vb_error *err)
{
	uint8_t head[24];
	int e;

	*name = NULL;
	ad_flush(o);
	memcpy(head, AD_MAGIC, 8);
	put_le64(head + 8, o->size);
	put_le64(head + 16, o->count);
	e = o->err;
	if (!e)
		e = -vb_pwrite_all(o->fd, head, sizeof(head), 0);
	if (!e && fsync(o->fd) < 0)
		e = errno;
	if (e) {
		vb_error_set(err, VB_E_FAIL, e, "%s/%s: %s", vb_state_path(o->s), o->name,
			     strerror(e));
		vb_adigests_abort(o);
		return -1;
	}
	close(o->fd);
	*name = o->name;
	free(o);
	return 0;
}

int vb_adigests_write(struct vb_state *s, const struct vb_ckpt *c, size_t di, char **name,
		      struct vb_error *err)
{
	const struct vb_ckpt_drive *d = &c->drives[di];
	struct digest_reader *rd = NULL;
	struct vb_adigests_out *o = NULL;
	struct bitmap *set = NULL;
	uint8_t dg[DIGEST_LEN];
	uint64_t size, n;
	int fd = -1, rc = -1;

	*name = NULL;
	if (!d->digests)
		return 0;
	if (!(set = archive_clusters(s, c, d, err)))
		goto out;
	fd = vb_state_open_file(s, d->digests, err);
	if (fd < 0)
		goto out;
	rd = digest_reader_new(vb_fd_read_cb, &fd);
	if (!rd || digest_reader_start(rd, &size, &n) < 0 || size != d->size) {
		vb_error_set(err, VB_E_INVALID, 0, "drive %s: the digest map is damaged", d->name);
		goto out;
	}
	if (!(o = vb_adigests_begin(s, d->size, err)))
		goto out;
	for (uint64_t i = 0; i < n; i++) {
		if (digest_reader_next(rd, dg) != 1) {
			vb_error_set(err, VB_E_INVALID, 0, "drive %s: the digest map is damaged",
				     d->name);
			goto out;
		}
		if (bitmap_test(set, i))
			vb_adigests_add(o, i, dg);
	}
	/* the trailer checks every digest read: a damaged map is never used */
	if (digest_reader_next(rd, dg) != 0) {
		vb_error_set(err, VB_E_INVALID, 0, "drive %s: the digest map is damaged", d->name);
		goto out;
	}
	rc = vb_adigests_end(o, name, err);
	o = NULL;
out:
	vb_adigests_abort(o);
	if (fd >= 0)
		close(fd);
	digest_reader_free(rd);
	bitmap_free(set);
	return rc;
}

/* The header of an archive-digest file of len bytes: the magic, and a
 * count that is what the length holds, so nothing is allocated for
 * entries the file does not have. */
static int ad_check_head(const uint8_t *head, uint64_t len, uint64_t *n)
{
	if (len < 24 || memcmp(head, AD_MAGIC, 8) != 0)
		return -1;
	*n = get_le64(head + 16);
	if ((len - 24) % AD_ENTRY != 0 || (len - 24) / AD_ENTRY != *n)
		return -1;
	return 0;
}

/* The entries name clusters of the drive, in ascending order, each once
 * (vb_adigests_find searches them by halves). */
static int ad_check_entries(const struct vb_adigests *a)
{
	uint64_t ncl = bitmap_clusters(a->size), prev = 0;

	for (uint64_t i = 0; i < a->n; i++) {
		uint64_t k = get_le64(a->entries + i * AD_ENTRY);

		if (k >= ncl || (i > 0 && k <= prev))
			return -1;
		prev = k;
	}
	return 0;
}

static int ad_damaged(struct vb_adigests *out, const char *file, struct vb_error *err)
{
	free(out->entries);
	memset(out, 0, sizeof(*out));
	return vb_error_set(err, VB_E_INVALID, 0, "%s: damaged archive digests", file);
}

int vb_adigests_load(struct vb_state *s, const char *file, struct vb_adigests *out,
		     struct vb_error *err)
{
	int fd = vb_state_open_file(s, file, err);
	uint8_t head[24];
	struct stat st;
	uint64_t n;
	size_t want;
	ssize_t got;

	memset(out, 0, sizeof(*out));
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    vb_io_read_full(fd, head, sizeof(head)) != (ssize_t)sizeof(head) ||
	    ad_check_head(head, (uint64_t)st.st_size, &n) < 0 || n > SIZE_MAX / AD_ENTRY - 1) {
		close(fd);
		return ad_damaged(out, file, err);
	}
	out->size = get_le64(head + 8);
	out->n = n;
	want = (size_t)n * AD_ENTRY;
	out->entries = malloc(want + 1);
	if (!out->entries) {
		close(fd);
		return vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
	}
	/* one byte more than counted: a file that grew is damaged too */
	got = vb_io_read_full(fd, out->entries, want + 1);
	close(fd);
	if (got != (ssize_t)want || ad_check_entries(out) < 0)
		return ad_damaged(out, file, err);
	return 0;
}

int vb_adigests_parse(const uint8_t *buf, size_t len, struct vb_adigests *out,
		      struct vb_error *err)
{
	uint64_t n;

	memset(out, 0, sizeof(*out));
	if (ad_check_head(buf, len, &n) < 0)
		return ad_damaged(out, "(buffer)", err);
	out->size = get_le64(buf + 8);
	out->n = n;
	out->entries = malloc(len - 24 + 1);
	if (!out->entries)
		return vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
	memcpy(out->entries, buf + 24, len - 24);
	if (ad_check_entries(out) < 0)
		return ad_damaged(out, "(buffer)", err);
	return 0;
}

/* The digest recorded for cluster i, or NULL (entries are sorted). */
const uint8_t *vb_adigests_find(const struct vb_adigests *a, uint64_t i)
{
	uint64_t lo = 0, hi = a->n;

	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2, k = get_le64(a->entries + mid * AD_ENTRY);

		if (k == i)
			return a->entries + mid * AD_ENTRY + 8;
		if (k < i)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}
