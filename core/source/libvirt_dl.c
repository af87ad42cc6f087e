/* libvirt_dl.c: libvirt.so.0 and libxml2.so.2 opened at the first libvirt
 * call, and the table of their functions filled (libvirt_dl.h). */
#define LV_DL_TABLE
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "core/source/libvirt_dl.h"

struct lv_dl lv_dl;

static int state;        /* 0: not tried, 1: loaded, -1: failed */
static char why[600];

static bool sym(void *h, const char *lib, const char *name, void **slot)
{
	*slot = dlsym(h, name);
	if (*slot)
		return true;
	snprintf(why, sizeof(why), "%s has no %s (vmaback needs libvirt 6.0 or later)", lib,
		 name);
	return false;
}

static bool open_lib(const char *lib, const char *pkg, void **h)
{
	/* RTLD_NODELETE: libvirt's threads outlive no dlclose (none is done) */
	*h = dlopen(lib, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
	if (*h)
		return true;
	snprintf(why, sizeof(why), "libvirt is needed for this and cannot be loaded: %s "
		 "(install the Debian package %s)", dlerror(), pkg);
	return false;
}

static bool load(void)
{
	void *xml, *virt;

	if (!open_lib("libxml2.so.2", "libxml2", &xml) || !open_lib("libvirt.so.0", "libvirt0",
								      &virt))
		return false;
#define LV_DL_SYM(f) if (!sym(virt, "libvirt.so.0", #f, (void **)&lv_dl.p_##f)) return false;
	LV_DL_VIRT(LV_DL_SYM)
#undef LV_DL_SYM
#define LV_DL_SYM(f) if (!sym(xml, "libxml2.so.2", #f, (void **)&lv_dl.p_##f)) return false;
	LV_DL_XML(LV_DL_SYM)
#undef LV_DL_SYM
	return true;
}

int lv_dl_load(struct vb_error *err)
{
	if (state == 0)
		state = load() ? 1 : -1;
	if (state > 0)
		return 0;
	return vb_error_set(err, VB_E_FAIL, 0, "%s", why);
}
