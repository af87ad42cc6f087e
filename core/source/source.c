/* source.c: the generic side of drive sources: choosing the kind from the
 * --drive spec, and dispatching calls to it. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/source/source_int.h"

int vb_source_init(struct vb_source *s, const struct vb_source_ops *ops, const char *drive,
		   const char *spec, struct vb_error *err)
{
	s->ops = ops;
	s->drive = strdup(drive);
	s->spec = strdup(spec);
	if (!s->drive || !s->spec)
		return vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
	return 0;
}

void vb_source_fini(struct vb_source *s)
{
	free(s->drive);
	free(s->spec);
}

struct vb_source *vb_source_open(const char *drive, const char *spec, struct vb_error *err)
{
	return vb_source_open_bitmap(drive, spec, NULL, err);
}

struct vb_source *vb_source_open_bitmap(const char *drive, const char *spec,
					const char *bitmap, struct vb_error *err)
{
	struct vb_spec sp;

	if (spec[0] == '\0') {
		vb_error_set(err, VB_E_USAGE, 0, "drive %s: empty path", drive);
		return NULL;
	}
	if (vb_spec_parse(drive, spec, &sp, err) < 0)
		return NULL;
	switch (sp.kind) {
	case VB_SPEC_NBD:
		return vb_source_nbd_open(drive, spec, spec, bitmap, err);
	case VB_SPEC_IMAGE:
		return vb_source_image_open(drive, spec, &sp, bitmap, err);
	default:
		return vb_source_raw_open(drive, sp.path, err);
	}
}

uint64_t vb_source_size(const struct vb_source *s)
{
	return s->size;
}

const char *vb_source_kind(const struct vb_source *s)
{
	return s->ops->kind;
}

int vb_source_extent(struct vb_source *s, uint64_t off, uint64_t max, uint64_t *len,
		     bool *data, struct vb_error *err)
{
	if (off >= s->size || max == 0)
		return vb_error_set(err, VB_E_FAIL, 0, "drive %s: extent query past the end",
				    s->drive);
	if (max > s->size - off)
		max = s->size - off;
	return s->ops->extent(s, off, max, len, data, err);
}

int vb_source_pread(struct vb_source *s, void *buf, size_t len, uint64_t off,
		    struct vb_error *err)
{
	return s->ops->pread(s, buf, len, off, err);
}

int vb_source_preadv(struct vb_source *s, const struct vb_read_piece *v, size_t n,
		     struct vb_error *err)
{
	if (s->ops->preadv)
		return s->ops->preadv(s, v, n, err);
	for (size_t i = 0; i < n; i++)
		if (s->ops->pread(s, v[i].buf, v[i].len, v[i].off, err) < 0)
			return -1;
	return 0;
}

int vb_source_dirty_bitmap(struct vb_source *s, const char *name, struct bitmap **out,
			   struct vb_error *err)
{
	if (!s->ops->dirty_bitmap)
		return 0;
	return s->ops->dirty_bitmap(s, name, out, err);
}

void vb_source_close(struct vb_source *s)
{
	if (s)
		s->ops->close(s);
}
