/* libvirt_run.c: one backup of a libvirt domain: the private directory of
 * its scratch files and NBD socket, the point in time (the guest frozen
 * when asked, virDomainBackupBegin in pull mode with a new checkpoint),
 * the exports the jobs read, then the end of the job and of the checkpoint
 * the state no longer names. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/io/io.h"
#include "core/source/libvirt_int.h"

/* ============================================================== the directory */

/* scratch_dir/vmaback.TAG, mode 0700, owned by QEMU's user: QEMU makes
 * the socket there and writes the scratch files, nobody else reaches
 * them (a scratch file holds the guest's data). */
static int make_dir(struct vb_live *l, struct vb_error *err)
{
	struct lv *v = lv_of(l);
	struct stat st, parent;
	uid_t uid = geteuid();
	gid_t gid = getegid();
	int fd, rc = -1;

	if (v->chown) {
		uid = v->uid;
		gid = v->gid;
	} else if (stat(l->o.scratch_dir, &parent) == 0 && !(parent.st_mode & S_ISVTX)) {
		/* No DAC label (a session daemon): the directory's owner. */
		uid = parent.st_uid;
		gid = parent.st_gid;
	}
	if (mkdir(v->dir, 0700) < 0 && errno != EEXIST)
		return vb_error_set(err, VB_E_FAIL, errno, "scratch directory %s: %s", v->dir,
				    strerror(errno));
	fd = open(v->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return vb_error_set(err, VB_E_FAIL, errno, "scratch directory %s: %s", v->dir,
				    strerror(errno));
	if (fstat(fd, &st) < 0) {
		vb_error_set(err, VB_E_FAIL, errno, "scratch directory %s: %s", v->dir,
			     strerror(errno));
		goto out;
	}
	if ((st.st_uid != geteuid() && st.st_uid != uid) || (st.st_mode & 077)) {
		vb_error_set(err, VB_E_USAGE, 0, "scratch directory %s: not vmaback's (owner %u, "
			     "mode %03o); refused", v->dir, (unsigned)st.st_uid,
			     (unsigned)(st.st_mode & 0777));
		goto out;
	}
	if ((st.st_uid != uid || st.st_gid != gid) && fchown(fd, uid, gid) < 0) {
		vb_error_set(err, VB_E_FAIL, errno, "scratch directory %s: giving it to QEMU's "
			     "user %u: %s", v->dir, (unsigned)uid, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	close(fd);
	return rc;
}

/* ============================================================== the XML */

static xmlNodePtr add(xmlNodePtr parent, const char *name)
{
	return xmlNewChild(parent, NULL, (const xmlChar *)name, NULL);
}

static void prop(xmlNodePtr n, const char *name, const char *value)
{
	xmlNewProp(n, (const xmlChar *)name, (const xmlChar *)value);
}

static char *dump(xmlDocPtr doc)
{
	xmlChar *mem = NULL;
	char *s;
	int len = 0;

	xmlDocDumpMemory(doc, &mem, &len);
	s = mem ? strdup((const char *)mem) : NULL;
	xmlFree(mem);
	xmlFreeDoc(doc);
	return s;
}

/* Every disk of the domain is named, with backup='yes' or 'no'. */
static char *backup_xml(struct vb_live *l)
{
	struct lv *v = lv_of(l);
	xmlDocPtr doc = xmlNewDoc((const xmlChar *)"1.0");
	xmlNodePtr root = xmlNewNode(NULL, (const xmlChar *)"domainbackup"), srv, disks;

	xmlDocSetRootElement(doc, root);
	prop(root, "mode", "pull");
	srv = add(root, "server");
	prop(srv, "transport", "unix");
	prop(srv, "socket", v->sock);
	disks = add(root, "disks");
	for (size_t k = 0; k < v->ndisks; k++) {
		xmlNodePtr dk = add(disks, "disk");
		int i = v->disks[k].drive;
		char *file;

		prop(dk, "name", v->disks[k].target);
		if (i < 0) {
			prop(dk, "backup", "no");
			continue;
		}
		prop(dk, "backup", "yes");
		prop(dk, "type", "file");
		if (l->since && l->d[i].has_bitmap) {
			prop(dk, "backupmode", "incremental");
			prop(dk, "incremental", l->since);
		} else {
			prop(dk, "backupmode", "full");
		}
		file = lv_scratch(v, (size_t)i);
		if (!file) {
			xmlFreeDoc(doc);
			return NULL;
		}
		prop(add(dk, "scratch"), "file", file);
		free(file);
	}
	return dump(doc);
}

/* The new checkpoint: a bitmap of every backed-up qcow2 disk. */
static char *checkpoint_xml(struct vb_live *l)
{
	struct lv *v = lv_of(l);
	xmlDocPtr doc = xmlNewDoc((const xmlChar *)"1.0");
	xmlNodePtr root = xmlNewNode(NULL, (const xmlChar *)"domaincheckpoint"), disks;
	char desc[300];

	xmlDocSetRootElement(doc, root);
	xmlNewTextChild(root, NULL, (const xmlChar *)"name", (const xmlChar *)l->ckpt);
	snprintf(desc, sizeof(desc), "vmaback, backup set %s", l->o.set);
	xmlNewTextChild(root, NULL, (const xmlChar *)"description", (const xmlChar *)desc);
	disks = add(root, "disks");
	for (size_t k = 0; k < v->ndisks; k++) {
		xmlNodePtr dk = add(disks, "disk");

		prop(dk, "name", v->disks[k].target);
		prop(dk, "checkpoint", v->disks[k].drive >= 0 && !v->disks[k].raw ? "bitmap" : "no");
	}
	return dump(doc);
}

/* vmaback's copy of the new checkpoint's XML, to redefine it if libvirt
 * loses it; without <parent>, which the next commit deletes. Published
 * through core/io's tempfile (fsync, rename, fsync of the directory). */
static int save_meta(struct vb_live *l, struct vb_error *err)
{
	struct lv *v = lv_of(l);
	virDomainCheckpointPtr cp = virDomainCheckpointLookupByName(v->dom, l->ckpt, 0);
	char *xml = cp ? virDomainCheckpointGetXMLDesc(cp, VIR_DOMAIN_CHECKPOINT_XML_NO_DOMAIN) :
		    NULL;
	xmlDocPtr doc = xml ? lv_parse(xml) : NULL;
	xmlXPathObjectPtr par = lv_xpath(doc, "/domaincheckpoint/parent");
	char *path = lv_meta_path(v, l->ckpt), *text;
	struct vb_tempfile *t;
	int rc = -1, e;

	if (cp)
		virDomainCheckpointFree(cp);
	if (!doc) {
		rc = xml ? vb_error_set(err, VB_E_FAIL, 0, "checkpoint %s: libvirt's XML does not "
					"parse", l->ckpt) :
			   lv_fail(err, VB_E_FAIL, "domain %s: checkpoint %s", v->domain, l->ckpt);
		goto out;
	}
	if (par) {
		/* Out of the node set first: freeing the set reads its nodes. */
		xmlNodePtr n = par->nodesetval->nodeTab[0];

		par->nodesetval->nodeTab[0] = NULL;
		xmlUnlinkNode(n);
		xmlFreeNode(n);
		xmlXPathFreeObject(par);
		par = NULL;
	}
	text = dump(doc);
	doc = NULL;
	if (!text || !path) {
		free(text);
		rc = lv_oom(err);
		goto out;
	}
	t = vb_tempfile_new(path, err);
	if (t && (e = vb_write_all(vb_tempfile_fd(t), text, strlen(text))) < 0) {
		vb_error_set(err, VB_E_FAIL, -e, "%s: %s", path, strerror(-e));
		vb_tempfile_discard(t);
		t = NULL;
	}
	/* 1: renamed, the directory's fsync failed: the copy is there (a
	 * crash may lose it; libvirt still has the checkpoint) */
	if (t && vb_tempfile_publish(t, true, err) >= 0) {
		vb_error_clear(err);
		rc = 0;
	}
	free(text);
out:
	xmlXPathFreeObject(par);
	xmlFreeDoc(doc);
	free(xml);
	free(path);
	return rc;
}

/* ============================================================== exports */

static int read_exports(struct vb_live *l, struct vb_error *err)
{
	struct lv *v = lv_of(l);
	char *xml = virDomainBackupGetXMLDesc(v->dom, 0);
	xmlDocPtr doc = xml ? lv_parse(xml) : NULL;
	xmlXPathObjectPtr o = lv_xpath(doc, "/domainbackup/disks/disk[@backup='yes']");
	int rc = -1;

	if (!xml) {
		lv_fail(err, VB_E_FAIL, "domain %s: the backup job", v->domain);
		goto out;
	}
	if (!(v->export_bitmap = calloc(l->n, sizeof(*v->export_bitmap)))) {
		lv_oom(err);
		goto out;
	}
	for (int k = 0; o && k < o->nodesetval->nodeNr; k++) {
		xmlNodePtr n = o->nodesetval->nodeTab[k];
		char *t = lv_prop(n, "name"), *ex = lv_prop(n, "exportname");
		char *bm = lv_prop(n, "exportbitmap");

		for (size_t j = 0; t && ex && j < v->ndisks; j++) {
			struct vb_live_drive *d;
			int i = v->disks[j].drive;

			if (i < 0 || strcmp(v->disks[j].target, t) != 0)
				continue;
			d = &l->d[i];
			free(d->uri);
			if (asprintf(&d->uri, "nbd+unix:///%s?socket=%s", ex, v->sock) < 0)
				d->uri = NULL;
			if (l->since && d->has_bitmap && bm) {
				v->export_bitmap[i] = bm;
				d->bitmap = bm;
				bm = NULL;
			}
		}
		free(t);
		free(ex);
		free(bm);
	}
	for (size_t i = 0; i < l->n; i++) {
		if (!l->d[i].uri) {
			vb_error_set(err, VB_E_FAIL, 0, "drive %s: libvirt's backup job exports no "
				     "disk %s", l->d[i].name, l->d[i].node);
			goto out;
		}
		if (l->since && l->d[i].has_bitmap && !l->d[i].bitmap) {
			vb_error_set(err, VB_E_FAIL, 0, "drive %s: libvirt's backup job exports no "
				     "bitmap of disk %s", l->d[i].name, l->d[i].node);
			goto out;
		}
	}
	rc = 0;
out:
	xmlXPathFreeObject(o);
	xmlFreeDoc(doc);
	free(xml);
	return rc;
}

/* ============================================================== start */

static bool freeze(struct vb_live *l)
{
	struct lv *v = lv_of(l);
	struct vb_error e = { 0 };

	if (live_mark(l, MARK_FROZEN, 0, &e) == 0 && virDomainFSFreeze(v->dom, NULL, 0, 0) >= 0)
		return true;
	if (!e.cls)
		lv_fail(&e, VB_E_FAIL, "domain %s: virDomainFSFreeze", v->domain);
	vb_warn(&l->warn, VB_WARN_GUEST, NULL, "--fsfreeze: %s; the backup is crash-consistent (as after a "
		     "power cut), not file-system consistent", e.msg);
	live_mark(l, 0, MARK_FROZEN, &e);
	return false;
}

static void unfreeze(struct vb_live *l)
{
	struct lv *v = lv_of(l);
	struct vb_error e = { 0 };

	if (virDomainFSThaw(v->dom, NULL, 0, 0) < 0) {
		lv_fail(&e, VB_E_FAIL, "domain %s: virDomainFSThaw", v->domain);
		vb_warn(&l->warn, VB_WARN_GUEST, NULL, "%s; the next run (or vmaback recover) thaws it", e.msg);
		return;
	}
	live_mark(l, 0, MARK_FROZEN, &e);
}

int lv_start(struct vb_live *l, const char *since, const char *ckpt, struct vb_error *err)
{
	struct lv *v = lv_of(l);
	virDomainCheckpointPtr cp;
	char *name = lv_name(v, ckpt), *bx = NULL, *cx = NULL;
	bool frozen = false;
	int rc = -1, r;

	free(l->since);
	free(l->ckpt);
	l->ckpt = NULL;
	l->since = since ? lv_name(v, since) : NULL;
	if (!name || (since && !l->since)) {
		free(name);
		return lv_oom(err);
	}
	/* Refused before anything is made: the failure path would delete it. */
	if ((cp = virDomainCheckpointLookupByName(v->dom, name, 0))) {
		virDomainCheckpointFree(cp);
		vb_error_set(err, VB_E_USAGE, 0, "domain %s already has a checkpoint %s",
			     v->domain, name);
		free(name);
		return -1;
	}
	l->ckpt = name;
	if (make_dir(l, err) < 0)
		return -1;
	lv_drop_files(l);
	if (!(bx = backup_xml(l)) || !(cx = checkpoint_xml(l))) {
		lv_oom(err);
		goto out;
	}
	vb_crash_point("after-scratch");
	if (v->fsfreeze)
		frozen = freeze(l);
	r = virDomainBackupBegin(v->dom, bx, cx, 0);
	if (r < 0)
		lv_fail(err, VB_E_FAIL, "domain %s: starting the backup job", v->domain);
	if (frozen)
		unfreeze(l);
	if (r < 0)
		goto out;
	vb_crash_point("after-transaction");
	if (save_meta(l, err) < 0 || read_exports(l, err) < 0)
		goto out;
	vb_crash_point("after-exports");
	rc = 0;
out:
	free(bx);
	free(cx);
	return rc;
}

/* ============================================================== the end */

int lv_finish(struct vb_live *l, enum vb_live_end how, struct vb_error *err)
{
	struct lv *v = lv_of(l);
	virDomainCheckpointPtr cp;
	struct vb_error e = { 0 };

	if (lv_end_job(l, err) < 0)
		return -1;
	lv_drop_files(l);
	vb_crash_point("after-teardown");
	/* Committed: only the new checkpoint stays, whatever the mode (a full
	 * backup too leaves none of the set's older ones). */
	if (how == VB_LIVE_COMMITTED && l->ckpt && lv_drop_others(l, l->ckpt, NULL, &e) < 0)
		vb_warn(&l->warn, VB_WARN_CLEANUP, NULL, "%s; the next run deletes them", e.msg);
	if (how != VB_LIVE_FAILED || !l->ckpt)
		return 0;
	if ((cp = virDomainCheckpointLookupByName(v->dom, l->ckpt, 0))) {
		lv_delete_ckpt(l, cp);
		virDomainCheckpointFree(cp);
	} else {
		char *meta = lv_meta_path(v, l->ckpt);

		if (meta)
			unlink(meta);
		free(meta);
	}
	return 0;
}
