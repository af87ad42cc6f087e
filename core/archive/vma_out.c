/* vma_out.c: the one adapter between the VMA writer and vmaback's writer
 * stacks (backup and merge): the writer's bytes go into a vb_writer, its
 * errors become vb_errors. */
#include <errno.h>

#include "core/archive/archive.h"

static int write_cb(void *opaque, const void *buf, size_t len)
{
	struct vb_vma_out *o = opaque;

	if (vb_writer_write(o->out, buf, len, o->err) < 0)
		return o->err->sys_errno ? -o->err->sys_errno : -EIO;
	return 0;
}

struct vma_writer *vb_vma_out_writer(struct vb_vma_out *o, struct vb_error *err)
{
	struct vma_writer *w = vma_writer_new(write_cb, o);

	if (!w)
		vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
	return w;
}

int vb_error_vma(struct vb_error *err, const struct vma_writer *w)
{
	return vb_error_set(err, VB_E_FAIL, vma_writer_sys_errno(w), "archive: %s",
			    vma_writer_error(w));
}
