/* warn.c: warnings as records (kind, drive, message) for a callback, queued
 * until the caller gives one; the CLI prints them and --json lists them. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/base.h"

const char *vb_warn_kind_name(enum vb_warn_kind k)
{
	static const char *const names[] = {
		[VB_WARN_NOTE] = "note",           [VB_WARN_LEFTOVER] = "leftover",
		[VB_WARN_DISCARDED] = "discarded", [VB_WARN_FULL] = "full-backup",
		[VB_WARN_BITMAP] = "bitmap",       [VB_WARN_GUEST] = "guest",
		[VB_WARN_CLEANUP] = "cleanup",     [VB_WARN_CHECKPOINT] = "checkpoint",
		[VB_WARN_DEFINE] = "define",
	};

	return (size_t)k < sizeof(names) / sizeof(names[0]) && names[k] ? names[k] : "note";
}

static void free_one(struct vb_warning *w)
{
	free((char *)w->drive);
	free((char *)w->msg);
}

void vb_warn(struct vb_warnings *w, enum vb_warn_kind kind, const char *drive,
	     const char *fmt, ...)
{
	struct vb_warning one = { .kind = kind, .drive = drive }, *q;
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	if (vsnprintf(line, sizeof(line), fmt, ap) < 0)
		line[0] = '\0';
	va_end(ap);
	one.msg = line;
	if (w->fn) {
		w->fn(w->opaque, &one);
		return;
	}
	/* A warning is advice: losing it is better than failing. */
	q = realloc(w->q, (w->n + 1) * sizeof(*q));
	if (!q)
		return;
	w->q = q;
	q[w->n] = (struct vb_warning){ .kind = kind, .drive = drive ? strdup(drive) : NULL,
				       .msg = strdup(line) };
	if (!q[w->n].msg || (drive && !q[w->n].drive)) {
		free_one(&q[w->n]);
		return;
	}
	w->n++;
}

void vb_warnings_to(struct vb_warnings *w, vb_warn_fn fn, void *opaque)
{
	w->fn = fn;
	w->opaque = opaque;
	if (!fn)
		return;
	for (size_t i = 0; i < w->n; i++)
		fn(opaque, &w->q[i]);
	vb_warnings_free(w);
}

void vb_warnings_free(struct vb_warnings *w)
{
	for (size_t i = 0; i < w->n; i++)
		free_one(&w->q[i]);
	free(w->q);
	w->q = NULL;
	w->n = 0;
}
