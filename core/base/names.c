/* names.c: which drive and config names vmaback accepts, so that every name
 * in an archive is also a safe single file name on extraction. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/base/base.h"

bool vb_safe_file_name(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len > 255)
		return false;
	if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return false;
	for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
		if (*p == '/' || *p < 0x20 || *p == 0x7f)
			return false;
	}
	return true;
}

size_t vb_utf8_len(const unsigned char *p, size_t left)
{
	size_t n;
	uint32_t c;

	if (left == 0)
		return 0;
	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		n = 2, c = p[0] & 0x1f;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		n = 3, c = p[0] & 0x0f;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		n = 4, c = p[0] & 0x07;
	else
		return 0;
	if (left < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (p[i] & 0x3f);
	}
	/* overlong forms, UTF-16 surrogates, beyond U+10FFFF */
	if ((n == 3 && c < 0x800) || (n == 4 && (c < 0x10000 || c > 0x10ffff)) ||
	    (c >= 0xd800 && c <= 0xdfff))
		return 0;
	return n;
}

void vb_printable(const char *s, bool backslash, char *out, size_t size)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t o = 0, left = strlen(s);

	if (size == 0)
		return;
	while (left) {
		size_t n = vb_utf8_len(p, left);
		/* C1 controls (U+0080..U+009F) act on terminals as ESC [ does */
		bool esc = n == 0 || (n == 1 && (*p < 0x20 || *p == 0x7f ||
						 (backslash && *p == '\\'))) ||
			   (n == 2 && p[0] == 0xc2 && p[1] < 0xa0);

		if (esc) {
			n = n ? n : 1;
			if (o + 4 * n >= size)
				break;
			for (size_t i = 0; i < n; i++)
				o += (size_t)snprintf(out + o, size - o, "\\x%02x", p[i]);
		} else {
			if (o + n >= size)
				break;
			memcpy(out + o, p, n);
			o += n;
		}
		p += n;
		left -= n;
	}
	out[o] = '\0';
}

void vb_name_printable(const char *name, char *out, size_t size)
{
	vb_printable(name, true, out, size);
}

int vb_drive_name_check(const char *name, struct vb_error *err)
{
	char shown[200];

	if (name[0] == '\0')
		return vb_error_set(err, VB_E_USAGE, 0, "empty drive name");
	if (strcmp(name, "vmstate") == 0)
		return vb_error_set(err, VB_E_USAGE, 0,
				    "drive name 'vmstate' is reserved (Proxmox's VM state)");
	if (strlen(name) > VB_DRIVE_NAME_MAX)
		return vb_error_set(err, VB_E_USAGE, 0,
				    "drive name of %zu bytes is too long: at most %u bytes, so "
				    "that disk-NAME.raw and Proxmox's tmp-disk-NAME.raw fit a "
				    "%u-byte file name", strlen(name), VB_DRIVE_NAME_MAX,
				    VB_FILE_NAME_MAX);
	/* A name with a newline must not forge a second line of the log. */
	vb_name_printable(name, shown, sizeof(shown));
	if (!vb_safe_file_name(name))
		return vb_error_set(err, VB_E_USAGE, 0,
				    "drive name '%s' is not allowed (no '/', control "
				    "characters, '.' or '..')", shown);
	return 0;
}

static int name_check(const char *what, const char *name, struct vb_error *err)
{
	if (!name[0] || strlen(name) > 128)
		return vb_error_set(err, VB_E_USAGE, 0, "%s name must be 1 to 128 characters",
				    what);
	for (const char *p = name; *p; p++) {
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.' ||
		      *p == ':' || *p == '+'))
			return vb_error_set(err, VB_E_USAGE, 0,
					    "%s name '%s': only letters, digits and - _ . : + "
					    "are allowed", what, name);
	}
	if (name[0] == '.' || name[0] == '-')
		return vb_error_set(err, VB_E_USAGE, 0, "%s name '%s' may not start with '%c'",
				    what, name, name[0]);
	return 0;
}

int vb_set_name_check(const char *set, struct vb_error *err)
{
	return name_check("backup set", set, err);
}

int vb_ckpt_name_check(const char *name, struct vb_error *err)
{
	return name_check("checkpoint", name, err);
}
