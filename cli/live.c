/* live.c: what `backup --qmp` and `recover` share: where the VM's lock and
 * NBD socket live, the scratch directory, and opening the VM. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"

/* A directory of ours: made 0700 if missing; an existing one must be a
 * real directory (not a link) owned by us and closed to others. */
static int own_dir(const char *path, const char *what, struct vb_error *err)
{
	struct stat st;

	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return vb_error_set(err, VB_E_FAIL, errno, "%s %s: %s", what, path,
				    strerror(errno));
	if (lstat(path, &st) < 0)
		return vb_error_set(err, VB_E_FAIL, errno, "%s %s: %s", what, path,
				    strerror(errno));
	if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077))
		return vb_error_set(err, VB_E_USAGE, 0, "%s %s: not a directory of this user "
				    "closed to others (mode 0700); refused", what, path);
	return 0;
}

/* /run/vmaback for root, else $XDG_RUNTIME_DIR/vmaback, else
 * /tmp/vmaback-UID: short, so the NBD socket's path fits. */
static char *run_dir(struct vb_error *err)
{
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	char *p = NULL;
	int n;

	if (geteuid() == 0)
		n = asprintf(&p, "/run/vmaback");
	else if (xdg && xdg[0] == '/')
		n = asprintf(&p, "%s/vmaback", xdg);
	else
		n = asprintf(&p, "/tmp/vmaback-%u", (unsigned)geteuid());
	if (n < 0) {
		vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
		return NULL;
	}
	if (own_dir(p, "run directory", err) < 0) {
		free(p);
		return NULL;
	}
	return p;
}

/* The state root's NAME directory (.scratch, .libvirt): never a set's
 * name (no set starts with '.'), and nothing inside a set's own directory
 * but its state. */
static char *root_dir(struct vb_state *state, const char *name)
{
	const char *set_dir = vb_state_path(state), *slash = strrchr(set_dir, '/');
	int len = slash ? (int)(slash - set_dir) : 1;
	char *p = NULL;

	if (asprintf(&p, "%.*s/%s", len, slash ? set_dir : ".", name) < 0)
		p = NULL;
	return p;
}

/* --domain: scratch files where libvirt's QEMU user reaches them (not
 * /run, see live-vm.md); vmaback's copies of its checkpoints' XML in the
 * state root's .libvirt/. */
static struct vb_live *open_libvirt(const struct cli_live_args *a, struct vb_state *state,
				    const char *rdir, struct vb_error *err)
{
	struct vb_live_libvirt_opts o = {
		.uri = a->connect, .domain = a->domain, .set = vb_state_set(state),
		.scratch_dir = a->scratch_dir ? a->scratch_dir : "/var/tmp", .run_dir = rdir,
		.fsfreeze = a->fsfreeze, .names = a->names, .devices = a->devices,
		.ndrives = a->ndrives, .offline_ok = a->include_stopped,
	};
	char *meta = root_dir(state, ".libvirt");
	struct vb_live *l = NULL;

	if (!meta) {
		vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
		return NULL;
	}
	if (own_dir(meta, "checkpoint directory", err) == 0) {
		o.meta_dir = meta;
		l = vb_live_open_libvirt(&o, err);
	}
	free(meta);
	return l;
}

struct vb_live *cli_live_open(const struct cli_live_args *a, struct vb_state *state,
			      struct vb_error *err)
{
	struct vb_live_opts o = {
		.qmp = a->qmp, .set = vb_state_set(state), .qga = a->qga,
		.names = a->names, .devices = a->devices, .ndrives = a->ndrives,
	};
	char *rdir = run_dir(err), *sdir = NULL;
	struct vb_live *l = NULL;

	if (!rdir)
		return NULL;
	if (a->domain) {
		l = open_libvirt(a, state, rdir, err);
		goto out;
	}
	sdir = a->scratch_dir ? strdup(a->scratch_dir) : root_dir(state, ".scratch");
	if (!sdir) {
		vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
		goto out;
	}
	/* --scratch-dir must exist (it may be a mount of its own); the
	 * default is made. */
	if (!a->scratch_dir && own_dir(sdir, "scratch directory", err) < 0)
		goto out;
	o.run_dir = rdir;
	o.scratch_dir = sdir;
	l = vb_live_open(&o, err);
out:
	free(rdir);
	free(sdir);
	if (l)
		vb_live_on_warning(l, cli_on_warning, NULL);
	return l;
}
