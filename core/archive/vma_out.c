/* vma_out.c: the one adapter between the VMA library and vmaback: the
 * writer's bytes go into a vb_writer (backup and merge), and every error of
 * the VMA reader and writer becomes a vb_error here, nowhere else. */
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

int vb_error_from_vma(struct vb_error *err, enum vma_err code, int sys_errno,
		      const char *text, const char *what)
{
	enum vb_errclass cls = VB_E_INVALID;

	switch (code) {
	case VMA_OK:
	case VMA_ERR_USAGE:
		cls = VB_E_FAIL;
		break;
	case VMA_ERR_IO:
		/* The callback's own error (a truncated zstd stream, EIO) says
		 * more than the library's view of it. */
		if (err && err->cls != VB_OK)
			return -1;
		cls = VB_E_FAIL;
		break;
	case VMA_ERR_NOMEM:
		cls = VB_E_FAIL;
		sys_errno = ENOMEM;
		break;
	default:
		break;
	}
	return vb_error_set(err, cls, sys_errno, "%s: %s", what, text ? text : "unknown error");
}

int vb_error_vma(struct vb_error *err, const struct vma_writer *w)
{
	enum vma_err code = vma_writer_errcode(w);

	/* What the writer refuses (too many drives, a blob too long) is the
	 * backup's failure, not a damaged archive. */
	if (code == VMA_ERR_LIMIT)
		code = VMA_ERR_USAGE;
	return vb_error_from_vma(err, code, vma_writer_sys_errno(w), vma_writer_error(w),
				 "archive");
}

int vb_error_vma_reader(struct vb_error *err, const struct vma_reader *r, const char *path)
{
	return vb_error_from_vma(err, vma_reader_errcode(r), vma_reader_sys_errno(r),
				 vma_reader_error(r), path);
}
