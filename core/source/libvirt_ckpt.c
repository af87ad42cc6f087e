/* libvirt_ckpt.c: a set's libvirt checkpoints: at the start of a run,
 * every one but that of the set's latest committed checkpoint is deleted,
 * and that one, if libvirt lost it, is defined again (from vmaback's copy
 * of its XML, or as vmaback makes it) and judged: which drives it holds a
 * bitmap of. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/source/libvirt_int.h"

void lv_delete_ckpt(struct vb_live *l, virDomainCheckpointPtr cp)
{
	struct lv *v = lv_of(l);
	const char *name = virDomainCheckpointGetName(cp);
	char *meta = lv_meta_path(v, name);
	struct vb_error e = { 0 };

	if (virDomainCheckpointDelete(cp, 0) < 0) {
		lv_fail(&e, VB_E_FAIL, "domain %s: deleting checkpoint %s", v->domain, name);
		if (virDomainCheckpointDelete(cp, VIR_DOMAIN_CHECKPOINT_DELETE_METADATA_ONLY) == 0)
			vb_warn(&l->warn, VB_WARN_CLEANUP, NULL, "%s; deleted only libvirt's record of it", e.msg);
		else
			vb_warn(&l->warn, VB_WARN_CLEANUP, NULL, "%s", e.msg);
	}
	if (meta)
		unlink(meta);
	free(meta);
}

/* vmaback's copies of checkpoint XML of the set, but keep's. */
static void drop_meta(struct lv *v, const char *keep)
{
	DIR *d = opendir(v->meta_dir);
	struct dirent *e;

	while (d && (e = readdir(d))) {
		size_t n = strlen(e->d_name);

		if (!live_has_prefix(e->d_name, v->prefix) || n < 4 ||
		    strcmp(e->d_name + n - 4, ".xml") != 0)
			continue;
		if (keep && strlen(keep) == n - 4 && strncmp(e->d_name, keep, n - 4) == 0)
			continue;
		unlinkat(dirfd(d), e->d_name, 0);
	}
	if (d)
		closedir(d);
}

/* The checkpoint's XML as vmaback would have made it: when its copy is
 * gone too, libvirt may still find the bitmaps in QEMU. */
static char *synthesize(struct vb_live *l, const char *name)
{
	struct lv *v = lv_of(l);
	xmlDocPtr doc = xmlNewDoc((const xmlChar *)"1.0");
	xmlNodePtr root = xmlNewNode(NULL, (const xmlChar *)"domaincheckpoint"), disks;
	xmlChar *mem = NULL;
	char *s;
	int len = 0;
	char now[32];

	xmlDocSetRootElement(doc, root);
	xmlNewTextChild(root, NULL, (const xmlChar *)"name", (const xmlChar *)name);
	/* A redefinition needs one; the true one is lost with the metadata. */
	snprintf(now, sizeof(now), "%lld", (long long)time(NULL));
	xmlNewTextChild(root, NULL, (const xmlChar *)"creationTime", (const xmlChar *)now);
	disks = xmlNewChild(root, NULL, (const xmlChar *)"disks", NULL);
	for (size_t k = 0; k < v->ndisks; k++) {
		xmlNodePtr dk = xmlNewChild(disks, NULL, (const xmlChar *)"disk", NULL);

		xmlNewProp(dk, (const xmlChar *)"name", (const xmlChar *)v->disks[k].target);
		xmlNewProp(dk, (const xmlChar *)"checkpoint", (const xmlChar *)
			   (v->disks[k].drive >= 0 && !v->disks[k].raw ? "bitmap" : "no"));
	}
	xmlDocDumpMemory(doc, &mem, &len);
	s = mem ? strdup((const char *)mem) : NULL;
	xmlFree(mem);
	xmlFreeDoc(doc);
	return s;
}

/* Checkpoint name again in libvirt (libvirt lost its metadata: the domain
 * was defined again, the host reinstalled), from vmaback's copy of its XML
 * or, without one, as vmaback makes it; libvirt checks that the disks
 * still have its bitmaps. */
static virDomainCheckpointPtr redefine(struct vb_live *l, const char *name, char **why)
{
	struct lv *v = lv_of(l);
	char *path = lv_meta_path(v, name), buf[65536], *xml = NULL;
	virDomainCheckpointPtr cp = NULL;
	struct vb_error e = { 0 };
	ssize_t n = -1;
	int fd = path ? open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC) : -1;
	bool copy;

	if (fd >= 0) {
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
	}
	copy = n > 0 && (size_t)n < sizeof(buf) - 1;
	if (copy) {
		buf[n] = '\0';
		xml = strdup(buf);
	} else {
		xml = synthesize(l, name);
	}
	if (xml)
		cp = virDomainCheckpointCreateXML(v->dom, xml,
						  VIR_DOMAIN_CHECKPOINT_CREATE_REDEFINE |
						  VIR_DOMAIN_CHECKPOINT_CREATE_REDEFINE_VALIDATE);
	if (!cp) {
		if (xml)
			lv_fail(&e, VB_E_FAIL, "libvirt has no checkpoint %s, and redefining it "
				"%s failed", name, copy ? "from vmaback's copy" :
				"(vmaback kept no copy of it)");
		else
			lv_oom(&e);
		if (!(*why = strdup(e.msg)))
			*why = NULL;
	} else {
		vb_warn(&l->warn, VB_WARN_CHECKPOINT, NULL, "domain %s: libvirt had lost checkpoint %s; redefined it "
			     "%s", v->domain, name, copy ? "from vmaback's copy" :
			     "from its bitmaps in the disks (vmaback kept no copy of it)");
	}
	free(xml);
	free(path);
	return cp;
}

/* Which drives checkpoint cp holds a bitmap of (libvirt reads their
 * sizes from QEMU, so a bitmap QEMU lost fails here). */
static void judge(struct vb_live *l, virDomainCheckpointPtr cp, const char *name)
{
	struct lv *v = lv_of(l);
	char *xml = virDomainCheckpointGetXMLDesc(cp, VIR_DOMAIN_CHECKPOINT_XML_NO_DOMAIN |
						  VIR_DOMAIN_CHECKPOINT_XML_SIZE);
	xmlDocPtr doc = xml ? lv_parse(xml) : NULL;
	xmlXPathObjectPtr o = lv_xpath(doc, "/domaincheckpoint/disks/disk[@checkpoint='bitmap']");
	struct vb_error e = { 0 };

	if (!xml)
		lv_fail(&e, VB_E_FAIL, "libvirt cannot read checkpoint %s", name);
	for (int i = 0; o && i < o->nodesetval->nodeNr; i++) {
		char *t = lv_prop(o->nodesetval->nodeTab[i], "name");

		for (size_t k = 0; t && k < v->ndisks; k++)
			if (v->disks[k].drive >= 0 && strcmp(v->disks[k].target, t) == 0)
				l->d[v->disks[k].drive].has_bitmap = !v->disks[k].raw;
		free(t);
	}
	for (size_t i = 0; i < l->n; i++) {
		struct vb_live_drive *d = &l->d[i];

		bool raw = false;

		for (size_t k = 0; k < v->ndisks; k++)
			raw = raw || (v->disks[k].drive == (int)i && v->disks[k].raw);
		if (d->has_bitmap)
			continue;
		if (raw) {
			if (asprintf(&d->why, "drive %s: disk %s is not qcow2: libvirt keeps no "
				     "bitmap of it", d->name, d->node) < 0)
				d->why = NULL;
			continue;
		}
		if (asprintf(&d->why, "drive %s: %s%s%s", d->name, xml ? "libvirt's checkpoint " :
			     e.msg, xml ? name : "", xml ? " has no bitmap of this disk (the disk "
			     "is new, or not qcow2)" : "") < 0)
			d->why = NULL;
	}
	xmlXPathFreeObject(o);
	xmlFreeDoc(doc);
	free(xml);
}

int lv_drop_others(struct vb_live *l, const char *keepname, virDomainCheckpointPtr *found,
		   struct vb_error *err)
{
	struct lv *v = lv_of(l);
	virDomainCheckpointPtr *cps = NULL;
	int n = virDomainListAllCheckpoints(v->dom, &cps, 0);

	if (found)
		*found = NULL;
	if (n < 0)
		return lv_fail(err, VB_E_FAIL, "domain %s: listing its checkpoints", v->domain);
	for (int i = 0; i < n; i++) {
		const char *name = virDomainCheckpointGetName(cps[i]);

		if (!live_has_prefix(name, v->prefix)) {
			virDomainCheckpointFree(cps[i]);
		} else if (keepname && strcmp(name, keepname) == 0 && found) {
			*found = cps[i];
		} else if (keepname && strcmp(name, keepname) == 0) {
			virDomainCheckpointFree(cps[i]);
		} else {
			lv_delete_ckpt(l, cps[i]);
			virDomainCheckpointFree(cps[i]);
		}
	}
	free(cps);
	drop_meta(v, keepname);
	return 0;
}

int lv_recover(struct vb_live *l, const char *keep, struct vb_error *err)
{
	virDomainCheckpointPtr found = NULL;
	char *keepname = keep ? lv_name(lv_of(l), keep) : NULL, *why = NULL;

	if (keep && !keepname)
		return lv_oom(err);
	if (lv_drop_others(l, keepname, &found, err) < 0) {
		free(keepname);
		return -1;
	}
	for (size_t i = 0; i < l->n; i++) {
		free(l->d[i].why);
		l->d[i].why = NULL;
		l->d[i].has_bitmap = false;
	}
	if (keepname && !found)
		found = redefine(l, keepname, &why);
	if (found) {
		judge(l, found, keepname);
		virDomainCheckpointFree(found);
	}
	for (size_t i = 0; why && i < l->n; i++)
		if (asprintf(&l->d[i].why, "drive %s: %s", l->d[i].name, why) < 0)
			l->d[i].why = NULL;
	free(why);
	free(keepname);
	return 0;
}
