/* libvirt_host.c: what concerns the host rather than one domain's backup:
 * the running domains (backup --all), and a domain defined from an
 * archive's libvirt-domain.xml with the restored images as its disks
 * (restore --define). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/source/libvirt_int.h"

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int vb_libvirt_running(const char *uri, char ***names, size_t *n, struct vb_error *err)
{
	virConnectPtr conn;
	virDomainPtr *doms = NULL;
	int k, rc = 0;

	*names = NULL;
	*n = 0;
	virSetErrorFunc(NULL, lv_quiet);
	if (!(conn = virConnectOpen(uri)))
		return lv_fail(err, VB_E_FAIL, "connecting to libvirt%s%s", uri ? " at " : "",
			       uri ? uri : "");
	k = virConnectListAllDomains(conn, &doms, VIR_CONNECT_LIST_DOMAINS_ACTIVE);
	if (k < 0)
		rc = lv_fail(err, VB_E_FAIL, "listing libvirt's running domains");
	if (k > 0 && !(*names = calloc((size_t)k, sizeof(**names))))
		rc = lv_oom(err);
	for (int i = 0; i < k; i++) {
		const char *name = virDomainGetName(doms[i]);

		if (rc == 0 && !((*names)[(*n)++] = strdup(name ? name : "")))
			rc = lv_oom(err);
		virDomainFree(doms[i]);
	}
	free(doms);
	virConnectClose(conn);
	if (rc == 0 && *n > 1)
		qsort(*names, *n, sizeof(**names), by_name);
	if (rc < 0) {
		for (size_t i = 0; i < *n; i++)
			free((*names)[i]);
		free(*names);
		*names = NULL;
		*n = 0;
	}
	return rc;
}

/* ============================================================== define */

static void set_prop(xmlNodePtr n, const char *name, const char *value)
{
	xmlSetProp(n, (const xmlChar *)name, (const xmlChar *)value);
}

static void drop_children(xmlNodePtr n, const char *name)
{
	xmlNodePtr c;

	while ((c = lv_child(n, name))) {
		xmlUnlinkNode(c);
		xmlFreeNode(c);
	}
}

/* One <disk> of the stored XML: its restored image, or gone. */
static bool define_disk(xmlNodePtr n, const char *dir, struct vb_warnings *w)
{
	bool restored = false;
	struct disk_xml x;
	char *name = NULL, *path = NULL;
	struct stat st;

	lv_disk_xml_read(n, &x);
	if (x.target && (!x.device || strcmp(x.device, "disk") == 0))
		name = lv_drive_name(x.bus, x.target);
	if (name && asprintf(&path, "%s/disk-%s.raw", dir, name) < 0)
		path = NULL;
	if (path && stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
		xmlNodePtr drv = lv_child(n, "driver"), src;

		set_prop(n, "type", "file");
		if (!drv)
			drv = xmlNewChild(n, NULL, (const xmlChar *)"driver", NULL);
		set_prop(drv, "name", "qemu");
		set_prop(drv, "type", "raw");
		drop_children(n, "source");
		drop_children(n, "backingStore");
		src = xmlNewChild(n, NULL, (const xmlChar *)"source", NULL);
		set_prop(src, "file", path);
		restored = true;
	} else if (name) {
		vb_warn(w, VB_WARN_DEFINE, name, "disk %s (drive %s) was not restored: left out "
			"of the domain", x.target, name);
		xmlUnlinkNode(n);
		xmlFreeNode(n);
	}
	free(name);
	free(path);
	lv_disk_xml_free(&x);
	return restored;
}

int vb_libvirt_define(const char *uri, const char *xml, const char *name, const char *dir,
		      struct vb_warnings *w, struct vb_error *err)
{
	xmlDocPtr doc = lv_parse(xml);
	xmlXPathObjectPtr o;
	virConnectPtr conn = NULL;
	virDomainPtr dom = NULL;
	char *real = realpath(dir, NULL), *out = NULL;
	xmlChar *mem = NULL;
	int len = 0, rc = -1, n = 0;

	if (!doc || !real) {
		vb_error_set(err, VB_E_INVALID, 0, "%s", !doc ? "the archive's libvirt-domain.xml "
			     "does not parse" : "the restore directory is gone");
		goto out;
	}
	if ((o = lv_xpath(doc, "/domain/name"))) {
		xmlNodeSetContent(o->nodesetval->nodeTab[0], NULL);
		xmlNodeAddContent(o->nodesetval->nodeTab[0], (const xmlChar *)name);
		xmlXPathFreeObject(o);
	}
	/* A new domain beside the old one: its own UUID and MAC addresses. */
	if ((o = lv_xpath(doc, "/domain/uuid | /domain/devices/interface/mac"))) {
		/* Each out of the node set first: freeing the set reads them. */
		for (int i = 0; i < o->nodesetval->nodeNr; i++) {
			xmlNodePtr x = o->nodesetval->nodeTab[i];

			o->nodesetval->nodeTab[i] = NULL;
			xmlUnlinkNode(x);
			xmlFreeNode(x);
		}
		xmlXPathFreeObject(o);
	}
	if ((o = lv_xpath(doc, "/domain/devices/disk"))) {
		for (int i = 0; i < o->nodesetval->nodeNr; i++) {
			xmlNodePtr d = o->nodesetval->nodeTab[i];

			o->nodesetval->nodeTab[i] = NULL; /* define_disk may free it */
			n += define_disk(d, real, w);
		}
		xmlXPathFreeObject(o);
	}
	if (n == 0) {
		vb_error_set(err, VB_E_USAGE, 0, "--define: none of the domain's disks is in %s "
			     "under the name a --domain backup gives it (disk-drive-virtio0.raw, "
			     "...); nothing defined", dir);
		goto out;
	}
	xmlDocDumpMemory(doc, &mem, &len);
	if (!mem || !(out = strdup((const char *)mem))) {
		lv_oom(err);
		goto out;
	}
	virSetErrorFunc(NULL, lv_quiet);
	if (!(conn = virConnectOpen(uri))) {
		lv_fail(err, VB_E_FAIL, "connecting to libvirt%s%s", uri ? " at " : "",
			uri ? uri : "");
		goto out;
	}
	if ((dom = virDomainLookupByName(conn, name))) {
		vb_error_set(err, VB_E_USAGE, 0, "libvirt has a domain %s already: choose another "
			     "name for --define", name);
		goto out;
	}
	if (!(dom = virDomainDefineXML(conn, out))) {
		lv_fail(err, VB_E_FAIL, "defining domain %s", name);
		goto out;
	}
	rc = 0;
out:
	if (dom)
		virDomainFree(dom);
	if (conn)
		virConnectClose(conn);
	xmlFree(mem);
	xmlFreeDoc(doc);
	free(out);
	free(real);
	return rc;
}
