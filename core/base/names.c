/* names.c: which drive and config names vmaback accepts, so that every name
 * in an archive is also a safe single file name on extraction. */
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

void vb_name_printable(const char *name, char *out, size_t size)
{
	size_t o = 0;

	if (size == 0)
		return;
	for (const unsigned char *p = (const unsigned char *)name; *p && o + 5 < size; p++) {
		if (*p < 0x20 || *p == 0x7f || *p == '\\')
			o += (size_t)snprintf(out + o, size - o, "\\x%02x", *p);
		else
			out[o++] = (char)*p;
	}
	out[o] = '\0';
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
