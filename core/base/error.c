/* error.c: the error record every core/ function fills: the first error wins,
 * so clean-up after a failure never hides its cause. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/base/base.h"

int vb_error_set(struct vb_error *err, enum vb_errclass cls, int sys_errno,
		 const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	if (err == NULL || err->cls != VB_OK)
		goto out;
	/* An error must read as one, whatever the caller passed. */
	err->cls = cls == VB_OK ? VB_E_FAIL : cls;
	err->sys_errno = sys_errno;
	va_start(ap, fmt);
	if (vsnprintf(err->msg, sizeof(err->msg), fmt, ap) < 0)
		snprintf(err->msg, sizeof(err->msg), "unknown error");
	va_end(ap);
out:
	errno = saved;
	return -1;
}

void vb_error_clear(struct vb_error *err)
{
	if (err == NULL)
		return;
	memset(err, 0, sizeof(*err));
}
