/* bitmap_err.c: the one conversion of bitmap/'s error codes (bitmaps and
 * digest maps of the state) into vb_errors: store and backup, which read
 * and write them, call it; none maps codes by hand. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "bitmap/bitmap.h"
#include "core/store/store.h"

int vb_error_from_bitmap(struct vb_error *err, int code, int io_errno, const char *fmt, ...)
{
	enum vb_errclass cls = VB_E_FAIL;
	const char *text = bitmap_strerror(code);
	char what[512];
	int sys_errno = 0;
	va_list ap;

	va_start(ap, fmt);
	if (vsnprintf(what, sizeof(what), fmt, ap) < 0)
		snprintf(what, sizeof(what), "bitmap");
	va_end(ap);
	switch (code) {
	case BITMAP_ERR_NOMEM:
		sys_errno = ENOMEM;
		break;
	case BITMAP_ERR_IO:
		sys_errno = io_errno ? io_errno : EIO;
		text = strerror(sys_errno);
		break;
	case BITMAP_ERR_MAGIC:
	case BITMAP_ERR_VERSION:
	case BITMAP_ERR_CHECKSUM:
	case BITMAP_ERR_TRUNCATED:
	case BITMAP_ERR_CORRUPT:
		cls = VB_E_INVALID;
		break;
	default: /* RANGE, SIZE: a caller's mistake, not damage */
		break;
	}
	return vb_error_set(err, cls, sys_errno, "%s: %s", what, text);
}
