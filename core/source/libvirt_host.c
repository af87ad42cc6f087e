/* libvirt_host.c: what concerns the host rather than one domain's backup:
 * the running domains (backup --all), and a domain defined from an
 * archive's libvirt-domain.xml with the restored images as its disks
 * (restore --define). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/source/libvirt_int.h"

static void set_prop(xmlNodePtr n, const char *name, const char *value);

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int vb_libvirt_domains(const char *uri, bool stopped, char ***names, size_t *n,
		       struct vb_error *err)
{
	virConnectPtr conn;
	virDomainPtr *doms = NULL;
	int k, rc = 0;

	*names = NULL;
	*n = 0;
	if (lv_dl_load(err) < 0)
		return -1;
	virSetErrorFunc(NULL, lv_quiet);
	if (!(conn = virConnectOpen(uri)))
		return lv_fail(err, VB_E_FAIL, "connecting to libvirt%s%s", uri ? " at " : "",
			       uri ? uri : "");
	k = virConnectListAllDomains(conn, &doms, stopped ? 0 : VIR_CONNECT_LIST_DOMAINS_ACTIVE);
	if (k < 0)
		rc = lv_fail(err, VB_E_FAIL, "listing libvirt's %sdomains", stopped ? "" : "running ");
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

/* ============================================================== drives */

/* <metadata><vmaback:drives xmlns:vmaback=LV_DRIVES_NS><drive name='data'
 * dev='vdb'/>...</vmaback:drives></metadata> in the archive's copy of the
 * domain XML: which drive of the archive each disk is, whatever names -d
 * gave them, for restore --define. */
#define LV_DRIVES_NS "urn:vmaback:drives:1"

static xmlNodePtr drives_node(xmlNodePtr meta)
{
	for (xmlNodePtr c = meta ? meta->children : NULL; c; c = c->next)
		if (c->type == XML_ELEMENT_NODE && c->ns && c->ns->href &&
		    xmlStrcmp(c->ns->href, (const xmlChar *)LV_DRIVES_NS) == 0 &&
		    xmlStrcmp(c->name, (const xmlChar *)"drives") == 0)
			return c;
	return NULL;
}

char *lv_xml_with_drives(const char *xml, char *const *devs, char *const *names, size_t n)
{
	xmlDocPtr doc = lv_parse(xml);
	xmlNodePtr root = doc ? xmlDocGetRootElement(doc) : NULL, meta, old, dr;
	xmlNsPtr ns;
	xmlChar *mem = NULL;
	char *out = NULL;
	int len = 0;

	if (!root) {
		xmlFreeDoc(doc);
		return strdup(xml);
	}
	if (!(meta = lv_child(root, "metadata")))
		meta = xmlNewChild(root, NULL, (const xmlChar *)"metadata", NULL);
	if ((old = drives_node(meta))) {
		xmlUnlinkNode(old);
		xmlFreeNode(old);
	}
	dr = xmlNewChild(meta, NULL, (const xmlChar *)"drives", NULL);
	ns = xmlNewNs(dr, (const xmlChar *)LV_DRIVES_NS, (const xmlChar *)"vmaback");
	xmlSetNs(dr, ns);
	for (size_t k = 0; k < n; k++) {
		xmlNodePtr d = xmlNewChild(dr, ns, (const xmlChar *)"drive", NULL);

		set_prop(d, "name", names[k]);
		set_prop(d, "dev", devs[k]);
	}
	xmlDocDumpMemory(doc, &mem, &len);
	if (mem)
		out = strdup((const char *)mem);
	xmlFree(mem);
	xmlFreeDoc(doc);
	return out;
}

/* The drive of target dev in the stored XML's vmaback:drives, malloc'd;
 * NULL when it names none (an archive of an older vmaback). */
static char *stored_drive(xmlDocPtr doc, const char *target)
{
	xmlNodePtr root = xmlDocGetRootElement(doc);
	xmlNodePtr dr = drives_node(lv_child(root, "metadata"));

	for (xmlNodePtr c = dr ? dr->children : NULL; c; c = c->next) {
		char *dev, *name;

		if (c->type != XML_ELEMENT_NODE || xmlStrcmp(c->name, (const xmlChar *)"drive"))
			continue;
		dev = lv_prop(c, "dev");
		name = dev && strcmp(dev, target) == 0 ? lv_prop(c, "name") : NULL;
		free(dev);
		if (name)
			return name;
	}
	return NULL;
}

/* ============================================================== offline */

void vb_libvirt_offline_free(struct vb_libvirt_offline *o)
{
	for (size_t i = 0; i < o->n; i++) {
		free(o->names[i]);
		free(o->specs[i]);
		free(o->devs[i]);
	}
	free(o->names);
	free(o->specs);
	free(o->devs);
	free(o->xml);
	memset(o, 0, sizeof(*o));
}

/* One disk of a stopped domain: NAME=qcow2:PATH or NAME=raw:PATH. */
static int offline_disk(struct vb_libvirt_offline *o, const struct disk_xml *x,
			const char *domain, struct vb_error *err)
{
	const char *fmt = x->format ? x->format : "raw";
	size_t i = o->n;
	char **p;

	if (strcmp(fmt, "qcow2") != 0 && strcmp(fmt, "raw") != 0)
		return vb_error_set(err, VB_E_USAGE, 0, "domain %s is not running, and its disk "
				    "%s is %s: vmaback reads stopped domains' raw and qcow2 "
				    "images", domain, x->target, fmt);
	if (x->source[0] != '/')
		return vb_error_set(err, VB_E_USAGE, 0, "domain %s is not running, and its disk "
				    "%s is no local file or device (%s)", domain, x->target,
				    x->source);
	if (!(p = realloc(o->names, (i + 1) * sizeof(*p))))
		return lv_oom(err);
	o->names = p;
	if (!(p = realloc(o->specs, (i + 1) * sizeof(*p))))
		return lv_oom(err);
	o->specs = p;
	if (!(p = realloc(o->devs, (i + 1) * sizeof(*p))))
		return lv_oom(err);
	o->devs = p;
	o->n++;
	o->names[i] = lv_drive_name(x->bus, x->target);
	o->devs[i] = strdup(x->target);
	if (asprintf(&o->specs[i], "%s:%s", fmt, x->source) < 0)
		o->specs[i] = NULL;
	if (!o->names[i] || !o->devs[i] || !o->specs[i])
		return lv_oom(err);
	return 0;
}

/* The disks to read: every eligible one, or those sel's drives name
 * (their target devs), under their names. */
static int offline_disks(struct vb_libvirt_offline *o, const char *xml, const char *domain,
			 const struct vb_live_libvirt_opts *sel, struct vb_error *err)
{
	xmlDocPtr doc = lv_parse(xml);
	xmlXPathObjectPtr disks = lv_xpath(doc, "/domain/devices/disk");
	size_t nx = disks ? (size_t)disks->nodesetval->nodeNr : 0;
	int rc = 0;

	if (!doc)
		rc = vb_error_set(err, VB_E_FAIL, 0, "domain %s: libvirt's XML does not parse",
				  domain);
	for (size_t k = 0; rc == 0 && k < (sel->ndrives ? sel->ndrives : 1); k++) {
		bool found = false;

		for (size_t i = 0; rc == 0 && i < nx && !found; i++) {
			struct disk_xml x;

			lv_disk_xml_read(disks->nodesetval->nodeTab[i], &x);
			if (lv_disk_eligible(&x) && (!sel->ndrives || strcmp(x.target, sel->devices[k]) == 0)) {
				rc = offline_disk(o, &x, domain, err);
				found = sel->ndrives > 0;
				if (rc == 0 && found) {
					free(o->names[o->n - 1]);
					if (!(o->names[o->n - 1] = strdup(sel->names[k])))
						rc = lv_oom(err);
				}
			}
			lv_disk_xml_free(&x);
		}
		if (rc == 0 && sel->ndrives && !found)
			rc = vb_error_set(err, VB_E_USAGE, 0, "drive %s: stopped domain %s has no "
					  "writable disk %s (a target dev such as vda)",
					  sel->names[k], domain, sel->devices[k]);
	}
	if (rc == 0 && o->n == 0)
		rc = vb_error_set(err, VB_E_USAGE, 0, "domain %s has no writable disk with a "
				  "source", domain);
	xmlXPathFreeObject(disks);
	xmlFreeDoc(doc);
	return rc;
}

int lv_offline(struct vb_live *l, const struct vb_live_libvirt_opts *sel, struct vb_error *err)
{
	struct lv *v = lv_of(l);
	struct vb_libvirt_offline *o = calloc(1, sizeof(*o));
	char *xml = virDomainGetXMLDesc(v->dom, VIR_DOMAIN_XML_INACTIVE);
	int rc = -1;

	if (!o) {
		lv_oom(err);
		goto out;
	}
	v->off = o;
	if (!xml) {
		lv_fail(err, VB_E_FAIL, "domain %s: its XML", v->domain);
		goto out;
	}
	if (offline_disks(o, xml, v->domain, sel, err) < 0)
		goto out;
	if (!(o->xml = lv_xml_with_drives(xml, o->devs, o->names, o->n))) {
		lv_oom(err);
		goto out;
	}
	rc = 0;
out:
	free(xml);
	return rc;
}

const struct vb_libvirt_offline *vb_live_libvirt_offline(const struct vb_live *l)
{
	return l && l->ops == &live_libvirt_ops ? lv_of((struct vb_live *)l)->off : NULL;
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
static bool define_disk(xmlNodePtr n, const char *dir, bool mapped, struct vb_warnings *w)
{
	bool restored = false;
	struct disk_xml x;
	char *name = NULL, *path = NULL;
	struct stat st;

	lv_disk_xml_read(n, &x);
	if (x.target && (!x.device || strcmp(x.device, "disk") == 0))
		name = mapped ? stored_drive(n->doc, x.target) : lv_drive_name(x.bus, x.target);
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
	} else if (name || (mapped && x.target)) {
		if (name)
			vb_warn(w, VB_WARN_DEFINE, name, "disk %s (drive %s) was not restored: "
				"left out of the domain", x.target, name);
		else
			vb_warn(w, VB_WARN_DEFINE, NULL, "disk %s was not backed up: left out of "
				"the domain", x.target);
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
	bool loaded = lv_dl_load(err) == 0;
	xmlDocPtr doc = loaded ? lv_parse(xml) : NULL;
	xmlXPathObjectPtr o;
	virConnectPtr conn = NULL;
	virDomainPtr dom = NULL;
	char *real = realpath(dir, NULL), *out = NULL;
	xmlChar *mem = NULL;
	int len = 0, rc = -1, n = 0;
	bool mapped;

	if (!loaded)
		goto out;
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
	mapped = drives_node(lv_child(xmlDocGetRootElement(doc), "metadata")) != NULL;
	if ((o = lv_xpath(doc, "/domain/devices/disk"))) {
		for (int i = 0; i < o->nodesetval->nodeNr; i++) {
			xmlNodePtr d = o->nodesetval->nodeTab[i];

			o->nodesetval->nodeTab[i] = NULL; /* define_disk may free it */
			n += define_disk(d, real, mapped, w);
		}
		xmlXPathFreeObject(o);
	}
	if (n == 0) {
		vb_error_set(err, VB_E_USAGE, 0, "--define: none of the domain's disks is in %s "
			     "under the name the backup gave it (disk-NAME.raw, NAME its drive); "
			     "nothing defined", dir);
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
