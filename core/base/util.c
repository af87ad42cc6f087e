/* util.c: small helpers every module needs alike: the cancel flag, hex
 * and uuid formatting, notes for a person to read. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/base.h"

static const volatile sig_atomic_t *cancel_flag;

void vb_set_cancel(const volatile sig_atomic_t *flag)
{
	cancel_flag = flag;
}

bool vb_canceled(void)
{
	return cancel_flag && *cancel_flag;
}

void vb_hex(const uint8_t *d, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[d[i] >> 4];
		out[2 * i + 1] = digits[d[i] & 15];
	}
	out[2 * n] = '\0';
}

void vb_uuid_format(const uint8_t u[16], char out[37])
{
	snprintf(out, 37,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11],
		 u[12], u[13], u[14], u[15]);
}

const char *vb_mode_name(enum vb_mode m)
{
	switch (m) {
	case VB_MODE_FULL:
		return "full";
	case VB_MODE_INCREMENTAL:
		return "incremental";
	case VB_MODE_DIFFERENTIAL:
		return "differential";
	default:
		return "auto";
	}
}

const char *vb_kind_name(enum vb_kind k)
{
	switch (k) {
	case VB_KIND_FULL:
	case VB_KIND_INCREMENTAL:
	case VB_KIND_DIFFERENTIAL:
		return vb_mode_name((enum vb_mode)k);
	case VB_KIND_PROXMOX:
		return "proxmox";
	default:
		return "?";
	}
}

int vb_kind_parse(const char *s, enum vb_kind *k)
{
	static const enum vb_kind ours[] = { VB_KIND_FULL, VB_KIND_INCREMENTAL,
					     VB_KIND_DIFFERENTIAL };

	for (size_t i = 0; s && i < sizeof(ours) / sizeof(ours[0]); i++)
		if (strcmp(s, vb_kind_name(ours[i])) == 0) {
			*k = ours[i];
			return 0;
		}
	return -1;
}

int vb_thread_start(pthread_t *t, void *(*fn)(void *), void *arg)
{
	sigset_t all, old;
	int rc;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	rc = pthread_create(t, NULL, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return rc;
}
