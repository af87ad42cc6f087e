/* cmd_backup.c: `vmaback backup`: options into a backup transaction, the
 * output stack (file, stdout, zstd), and the summary. */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <json-c/json.h>

#include "cli/backup_opts.h"

#define CMD "backup"

/* Where the archive goes: a file (published atomically), standard output,
 * or a command's standard input. */
static struct vb_writer *open_sink(const struct backup_args *a, struct vb_error *err)
{
	struct vb_writer *sink;

	if (a->output_cmd) {
		sink = vb_sink_cmd_new(a->output_cmd, err);
		if (sink)
			cli_set_consumer(vb_sink_cmd_pid(sink));
		return sink;
	}
	if (strcmp(a->out, "-") == 0)
		return vb_sink_fd_new(STDOUT_FILENO, "standard output", err);
	return vb_sink_file_new(a->out, a->force, err);
}

/* ARCHIVE.notes (as Proxmox: the text and a newline) and ARCHIVE.protected:
 * the engine publishes them with the archive, before the commit. */
struct siblings {
	struct vb_sibling f[2];
	size_t n;
	char *notes_path, *protected_path, *text;
};

static int siblings_of(const struct backup_args *a, struct siblings *sb)
{
	memset(sb, 0, sizeof(*sb));
	if (a->notes) {
		size_t len = strlen(a->notes);
		bool nl = len && a->notes[len - 1] == '\n';

		sb->notes_path = vb_dumpdir_sibling(a->out, "notes");
		if (!sb->notes_path || asprintf(&sb->text, "%s%s", a->notes, nl ? "" : "\n") < 0)
			return cli_usage(CMD, "out of memory");
		sb->f[sb->n++] = (struct vb_sibling){ sb->notes_path, sb->text, strlen(sb->text) };
	}
	if (a->protect) {
		sb->protected_path = vb_dumpdir_sibling(a->out, "protected");
		if (!sb->protected_path)
			return cli_usage(CMD, "out of memory");
		sb->f[sb->n++] = (struct vb_sibling){ sb->protected_path, NULL, 0 };
	}
	return 0;
}

static void siblings_free(struct siblings *sb)
{
	free(sb->notes_path);
	free(sb->protected_path);
	free(sb->text);
}

/* Archives and logs are never written into the state directory, whose
 * clean-up owns its files. */
static int outside_state(const struct backup_args *a)
{
	struct vb_error err = { 0 };
	char *dir;
	int rc = 0;

	if (!a->set)
		return 0;
	dir = a->state_dir ? strdup(a->state_dir) : vb_state_default_dir();
	if (a->out && strcmp(a->out, "-") != 0)
		rc = vb_state_dir_check_output(dir, a->dumpdir ? "--dumpdir: the archive" : "-o",
					       a->out, &err);
	if (rc == 0 && a->log_file)
		rc = vb_state_dir_check_output(dir, "--log-file", a->log_file, &err);
	free(dir);
	return rc < 0 ? cli_fail(CMD, &err) : 0;
}

/* What waits for a lock: the set's state or the VM. */
struct lock_wait {
	const struct backup_args *a;
	const char *what;           /* "backup set 'S'", "the VM of QMP socket P" */
	void *(*open)(struct lock_wait *w, struct vb_error *err);
	const char *dir;            /* open_set's */
	struct vb_state *state;     /* open_vm's */
};

/* w->open, and with --lockwait, while it fails with VB_E_LOCKED, again
 * (every second, every 0.1 s for a wait under 10 s) until the wait is
 * over; a signal ends the wait. */
static void *wait_lock(struct lock_wait *w, struct vb_error *err)
{
	const struct backup_args *a = w->a;
	double until = vb_clock_monotonic() + a->lockwait * 60.0;
	bool said = false;
	void *p;

	for (;;) {
		p = w->open(w, err);
		if (p || err->cls != VB_E_LOCKED || !a->lockwait || cli_interrupted ||
		    vb_clock_monotonic() >= until)
			break;
		if (!said)
			cli_info(a->quiet, "INFO: %s; waiting for it, up to %g minute%s (--lockwait)",
				 err->msg, a->lockwait, a->lockwait == 1 ? "" : "s");
		said = true;
		vb_error_clear(err);
		usleep(a->lockwait * 60 < 10 ? 100000 : 1000000);
	}
	if (!p && said && err->cls == VB_E_LOCKED) {
		vb_error_clear(err);
		if (cli_interrupted)
			vb_error_set(err, VB_E_CANCELED, 0, "interrupted while waiting for the lock "
				     "of %s", w->what);
		else
			vb_error_set(err, VB_E_LOCKED, 0, "%s is still locked after %g minute%s "
				     "(--lockwait)", w->what, a->lockwait, a->lockwait == 1 ? "" : "s");
	}
	return p;
}

static void *open_set(struct lock_wait *w, struct vb_error *err)
{
	struct vb_state *s = vb_state_open(w->dir, w->a->set, err);

	if (s)
		vb_state_on_warning(s, cli_on_warning, NULL);
	return s;
}

static void *open_vm(struct lock_wait *w, struct vb_error *err)
{
	return cli_live_open(&w->a->live, w->state, err);
}

/* In a dump directory, an incremental or differential is not named like a
 * full vzdump backup (vb_dumpdir_kind_name); the log keeps the base name. */
static int kind_name(struct backup_args *a, struct vb_backup *b, struct vb_error *err)
{
	char *path;

	if (!a->dumpdir)
		return 0;
	path = vb_dumpdir_kind_name(a->generated_out, vb_backup_kind(b));
	if (!path)
		return vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
	free(a->generated_out);
	a->generated_out = path;
	a->out = path;
	return vb_backup_set_archive_path(b, path, err);
}

static int prepare(struct backup_args *a, struct vb_backup_opts *o, struct vb_state **state,
		   struct vb_live **live, struct vb_backup **b, struct vb_error *err)
{
	char *dir = NULL;

	if (a->set) {
		dir = a->state_dir ? strdup(a->state_dir) : vb_state_default_dir();
		if (!dir)
			return cli_usage(CMD, "no state directory: give --state-dir DIR");
		char what[300];
		struct lock_wait w = { .a = a, .what = what, .open = open_set, .dir = dir };

		snprintf(what, sizeof(what), "backup set '%s'", a->set);
		*state = wait_lock(&w, err);
		free(dir);
		if (!*state)
			return cli_fail(CMD, err);
	}
	/* The set's lock first, then the VM's (and its recovery). */
	if (a->live.qmp || a->live.domain) {
		char what[PATH_MAX + 40];
		struct lock_wait w = { .a = a, .what = what, .open = open_vm, .state = *state };

		if (a->live.qmp)
			snprintf(what, sizeof(what), "the VM of QMP socket %s", a->live.qmp);
		else
			snprintf(what, sizeof(what), "domain %s", a->live.domain);
		if (!(*live = wait_lock(&w, err)))
			return cli_fail(CMD, err);
	}
	o->live = *live;
	o->drives = *live ? NULL : a->drives;
	o->ndrives = *live ? 0 : a->ndrives;
	o->configs = a->configs;
	o->nconfigs = a->nconfigs;
	o->cancel = &cli_interrupted;
	o->compress = a->compress == 1;
	o->zstd_level = a->zlevel;
	o->zstd_threads = a->zthreads;
	o->archive_path = a->out && strcmp(a->out, "-") != 0 ? a->out : NULL;
	o->state = *state;
	o->mode = a->mode;
	o->since = a->since;
	o->checkpoint = a->checkpoint;
	o->no_commit = a->no_commit;
	o->no_source_bitmaps = a->no_bitmap;
	o->bwlimit = a->bwlimit;
	o->max_chain = a->max_chain;
	o->threshold = a->threshold;
	o->full_every = a->full_every;
	o->warn = cli_on_warning;
	backup_start_line(a, o);
	cli_warnings_hold(false); /* those of the opening after the start line */
	*b = vb_backup_prepare(o, err);
	if (!*b || kind_name(a, *b, err) < 0)
		return cli_fail(CMD, err);
	return 0;
}

/* A file output's directory: the temporaries of runs into it that did not
 * finish (SIGKILL, a crash of the host) go, each with a line; those of
 * live writers stay (vb_tempfile_sweep). */
static void sweep_output_dir(const struct backup_args *a)
{
	const char *slash;
	struct vb_warnings w = { .fn = cli_on_warning };
	char *dir;

	if (a->output_cmd || !a->out || strcmp(a->out, "-") == 0)
		return;
	slash = strrchr(a->out, '/');
	dir = !slash ? strdup(".") : strndup(a->out, (size_t)(slash - a->out) + (slash == a->out));
	if (!dir)
		return;
	(void)vb_tempfile_sweep(dir, false, &w, &(struct vb_error){ 0 });
	free(dir);
}

/* The hook's view of the job (cli_hook_run); res once the backup ran. */
static void hook_job(const struct backup_args *a, const struct vb_backup_result *res,
		     const char *status, struct cli_hook_job *j)
{
	*j = (struct cli_hook_job){
		.set = a->set, .vmid = a->vmid, .checkpoint = a->checkpoint,
		.archive = a->out, .output_cmd = a->output_cmd, .log_file = a->log_file,
		.status = status,
	};
	if (res && res->checkpoint[0])
		j->checkpoint = res->checkpoint;
	if (res)
		j->kind = vb_kind_name(res->kind);
}

/* One hook phase: 0, or EXIT_FAIL when the hook failed. */
static int hook(const struct backup_args *a, const char *phase,
		const struct vb_backup_result *res, const char *status)
{
	struct cli_hook_job j;

	if (!a->hook)
		return 0;
	hook_job(a, res, status, &j);
	return cli_hook_run(a->hook, phase, &j) < 0 ? EXIT_FAIL : 0;
}

/* The backup itself, between the hook's backup-start and backup-end or
 * backup-abort; *started says whether backup-start ran. */
static int backup(struct backup_args *a, struct vb_backup_result *res, bool *started)
{
	struct vb_backup_opts o = { 0 };
	struct vb_backup *b = NULL;
	struct vb_state *state = NULL;
	struct vb_live *live = NULL;
	struct vb_writer *sink;
	struct vb_error err = { 0 };
	struct cli_progress prog;
	struct siblings sb = { 0 };
	int status;

	cli_progress_init(&prog, a->progress);
	o.progress = cli_progress_cb;
	o.progress_opaque = &prog;
	cli_warnings_end(); /* backup --all: each domain's run its own */
	cli_warnings_style(NULL, a->quiet);
	cli_warnings_hold(true);
	if ((status = prepare(a, &o, &state, &live, &b, &err)) != 0)
		goto out;
	/* after prepare: in a dump directory the archive's name follows its kind */
	if ((status = siblings_of(a, &sb)) != 0)
		goto out;
	vb_backup_set_siblings(b, sb.f, sb.n);
	/* Everything is sized and locked, nothing written yet: a hook that
	 * fails here stops the backup before its first byte. */
	*started = true;
	if ((status = hook(a, "backup-start", NULL, NULL)) != 0) {
		cli_info(a->quiet, "INFO: backup aborted by the hook at backup-start: nothing "
			 "was written%s", a->set ? " and the checkpoints are unchanged" : "");
		goto out;
	}
	sweep_output_dir(a);
	sink = open_sink(a, &err);
	if (!sink) {
		status = cli_fail(CMD, &err);
		goto out;
	}
	cli_warnings_hold(true); /* not across the progress bar */
	if (vb_backup_run(b, sink, res, &err) < 0) {
		cli_set_consumer(0);
		cli_progress_done(&prog);
		cli_warnings_hold(false);
		status = cli_fail(CMD, &err);
		backup_failed_note(a, res, status);
		goto out;
	}
	cli_set_consumer(0);
	cli_progress_done(&prog);
	/* What the run noted (the VM's teardown, a pending checkpoint the
	 * commit replaced). */
	cli_warnings_hold(false);
	if (res->skipped) {
		backup_skipped(a, res);
		goto out;
	}
	backup_summary(a, res);
	status = 0;
out:
	cli_warnings_hold(false);
	vb_backup_free(b);
	vb_live_close(live);
	vb_state_close(state);
	siblings_free(&sb);
	return status;
}

static int run(int argc, char **argv)
{
	struct backup_args a;
	struct vb_backup_result res;
	bool started = false, ok;
	const char *why;
	int status;

	if (backup_all_asked(argc, argv))
		return backup_all(argc, argv, run);
	status = backup_args_parse(&a, argc, argv);

	memset(&res, 0, sizeof(res));
	if (status == -1) {
		status = cli_help(&cmd_backup);
		goto out;
	}
	if (status)
		goto out;
	if ((status = outside_state(&a)) != 0)
		goto out;
	if (a.log_file && cli_log_open(a.log_file, &why) < 0) {
		status = cli_usage(CMD, "%s %s: %s", a.generated_log ? "log file" : "--log-file",
				   a.log_file, why);
		goto out;
	}
	status = hook(&a, "job-start", NULL, NULL);
	if (status == 0)
		status = backup(&a, &res, &started);
	ok = status == 0;
	if (ok) {
		/* Committed: a hook that fails now makes the run fail, the backup stays. */
		if (hook(&a, "backup-end", &res, res.skipped ? "skipped" : "ok") != 0) {
			cli_warn(CMD, "the backup is published%s; only the hook failed",
				 res.checkpoint[0] ? " and its checkpoint recorded" : "");
			status = EXIT_FAIL;
		}
	} else if (started) {
		hook(&a, "backup-abort", &res, "failed");
	}
	if (hook(&a, "job-end", ok ? &res : NULL, ok ? "ok" : "failed") != 0 && status == 0)
		status = EXIT_FAIL;
	if (status == 0)
		status = cli_close_stdout(EXIT_OK);
	cli_log_close();
	/* A skipped run's log in a dump directory would name no archive. */
	if (ok && res.skipped && a.generated_log)
		unlink(a.generated_log);
	if (hook(&a, "log-end", ok ? &res : NULL, status == 0 ? "ok" : "failed") != 0 &&
	    status == 0)
		status = EXIT_FAIL;
	if (cli_interrupted && status != 0)
		status = 128 + cli_interrupted;
out:
	cli_log_close();
	backup_args_free(&a);
	return status;
}

const struct command cmd_backup = {
	.name = "backup",
	.run = run,
	.polls_cancel = true,
	.summary = "back up drives into one VMA archive",
	.help =
	"Usage: vmaback backup --drive NAME=SPEC [--drive NAME=SPEC ...]\n"
	"                      [--config FILE ...] (-o OUT | --output-cmd CMD) [OPTIONS]\n"
	"       vmaback backup --qmp SOCKET --set NAME (-o OUT | ...) [OPTIONS]\n"
	"       vmaback backup --domain NAME [--connect URI] --set NAME (-o OUT | ...)\n"
	"                      [OPTIONS]\n"
	"       vmaback backup --all [--connect URI] --dumpdir DIR [OPTIONS]\n"
	"       vmaback backup --config-file FILE [OPTIONS]\n"
	"\n"
	"Backs up every drive, one after the other, into one VMA archive that\n"
	"Proxmox's `vma extract` can read (full backups). All drives are opened\n"
	"and sized before anything is written; if any drive fails, the backup\n"
	"fails as a whole and nothing is published.\n"
	"\n"
	"What to back up:\n"
	"  -d, --drive NAME=SPEC  a drive: NAME becomes the archive's device name\n"
	"                         (Proxmox uses drive-scsi0, drive-virtio1, ...;\n"
	"                         at most 242 bytes, so that disk-NAME.raw can be\n"
	"                         restored); repeat for each drive (at most 254),\n"
	"                         in order.\n"
	"                         SPEC is one of:\n"
	"                           PATH         a regular file or a block device,\n"
	"                                        raw; a regular file named *.qcow2,\n"
	"                                        *.vmdk, *.vdi, *.vhdx is that image\n"
	"                                        format (never decided by content)\n"
	"                           raw:PATH     a raw file or device, whatever its name\n"
	"                           qcow2:PATH   an image file read through qemu-nbd\n"
	"                                        (also vmdk:, vdi:, vhdx:), with its\n"
	"                                        backing chain\n"
	"                           nbd://HOST[:PORT]/EXPORT\n"
	"                           nbd+unix:///EXPORT?socket=PATH\n"
	"                                        an NBD export (e.g. a running VM's)\n"
	"  -c, --config FILE      store FILE (at most 65535 bytes) in the archive\n"
	"                         under its base name, e.g. qemu-server.conf\n"
	"\n"
	"A running VM (plain QEMU; vmaback drives it over QMP):\n"
	"      --qmp SOCKET       the VM's QMP socket (-qmp unix:SOCKET,server=on):\n"
	"                         every writable disk with media a device uses is\n"
	"                         backed up at one point in time for all of them,\n"
	"                         named as Proxmox does (device virtio0: drive\n"
	"                         drive-virtio0; scsi0, ide0, sata0, efidisk0, ...)\n"
	"                         or by the device id; needs --set\n"
	"  -d, --drive NAME=qmp:DEVICE\n"
	"                         with --qmp: back up only these disks, in this\n"
	"                         order, under these names (DEVICE: a device id,\n"
	"                         QOM path, drive id or node name)\n"
	"      --scratch-dir DIR  where the point-in-time copies of blocks the\n"
	"                         guest overwrites during the backup go (default:\n"
	"                         the state directory's .scratch/); each disk's\n"
	"                         file can grow to the disk's size. When it fills,\n"
	"                         the backup fails, never a guest write\n"
	"      --fsfreeze         freeze the guest's file systems for the point in\n"
	"                         time (milliseconds), through --qga SOCKET, the\n"
	"                         guest agent's socket; an agent that does not answer\n"
	"                         makes a crash-consistent backup and a note\n"
	"      --qga SOCKET       the guest agent's socket (with --fsfreeze)\n"
	"\n"
	"A running libvirt domain (vmaback drives it through libvirt's API):\n"
	"      --domain NAME      the domain (its name or UUID): every writable disk\n"
	"                         with a source is backed up at one point in time\n"
	"                         (a pull-mode backup job with a new checkpoint),\n"
	"                         named as Proxmox does (target vda on bus virtio:\n"
	"                         drive-virtio0; sda on scsi: drive-scsi0; sata,\n"
	"                         ide) or by the target dev; needs --set\n"
	"      --connect URI      libvirt's connection URI (default: libvirt's own,\n"
	"                         qemu:///system for root)\n"
	"  -d, --drive NAME=libvirt:DEV\n"
	"                         with --domain: back up only these disks, in this\n"
	"                         order, under these names (DEV: a target dev such\n"
	"                         as vda, or a device alias); every other disk is\n"
	"                         listed in the job as backup='no'\n"
	"      --scratch-dir DIR  with --domain: default /var/tmp; vmaback makes\n"
	"                         DIR/vmaback.TAG/ (0700, owned by QEMU's user)\n"
	"                         for the scratch files and the NBD socket\n"
	"      --fsfreeze         with --domain: through libvirt's guest agent\n"
	"                         channel (virDomainFSFreeze), no --qga\n"
	"      --all              every running domain of libvirt, one after the\n"
	"                         other, each in its own set named after it (its\n"
	"                         own lock and checkpoints) and its own archive in\n"
	"                         --dumpdir (named vmaback-{set}-{date} unless\n"
	"                         --name-template); a line per domain, exit 1 if any\n"
	"                         failed; with --json one object per domain\n"
	"\n"
	"Where the archive goes:\n"
	"  -o, --output OUT       a file, written under a hidden temporary name (mode\n"
	"                         0600) and renamed when the backup succeeded; '-'\n"
	"                         writes to standard output\n"
	"      --output-cmd CMD   run `/bin/sh -c CMD` and write the archive to its\n"
	"                         standard input; the backup succeeds only if CMD\n"
	"                         exits 0 (it is killed if the backup fails)\n"
	"  -f, --force            replace OUT if it exists (never one of the\n"
	"                         drives' own sources)\n"
	"      --dumpdir DIR      write the archive into DIR under a generated name,\n"
	"                         by default vzdump's vzdump-qemu-ID-YYYY_MM_DD-\n"
	"                         HH_MM_SS.vma.zst (local time; zstd unless\n"
	"                         --compress none), with the run's log beside it\n"
	"                         (vzdump-qemu-ID-YYYY_MM_DD-HH_MM_SS.log)\n"
	"                         An incremental ends in .vmainc[.zst], a\n"
	"                         differential in .vmadiff[.zst]: Proxmox does not\n"
	"                         list them as vzdump backups\n"
	"      --vmid ID          the VM id in generated names\n"
	"      --name-template T  the name without .vma[.zst]: {vmid}, {set} and\n"
	"                         {date} are replaced\n"
	"      --notes TEXT       write ARCHIVE.notes (Proxmox's notes), published\n"
	"                         with the archive, before the commit\n"
	"      --protected        create ARCHIVE.protected: prune never removes it\n"
	"      --compress none|zstd\n"
	"                         compression (default: zstd when OUT ends in .zst)\n"
	"      --zstd-level N     zstd level, 1 to 19 (default 3)\n"
	"      --zstd-threads N   zstd worker threads, 0 for none (default: CPUs)\n"
	"      --bwlimit RATE     read the drives at most RATE per second: 50M, 800K,\n"
	"                         1G; a bare number is KiB/s (as vzdump's bwlimit);\n"
	"                         holes and unchanged clusters cost nothing\n"
	"\n"
	"Incremental backups (a backup set keeps checkpoints in its state):\n"
	"      --set NAME         the backup set (its disk set and checkpoint chain)\n"
	"      --state-dir DIR    where sets keep their state (default\n"
	"                         /var/lib/vmaback for root, else\n"
	"                         $XDG_STATE_HOME/vmaback or ~/.local/state/vmaback);\n"
	"                         the archive and the log must be outside it; it\n"
	"                         and the set's directory must be yours (or root's)\n"
	"                         and writable by no one else\n"
	"      --mode MODE        auto (default: full when the set has no checkpoint\n"
	"                         or its drives changed, else incremental), full,\n"
	"                         incremental (changes since the latest checkpoint),\n"
	"                         differential (changes since --since CHECKPOINT)\n"
	"      --since CKPT       the base checkpoint of a differential backup\n"
	"      --checkpoint NAME  name of the new checkpoint (default: the UTC time)\n"
	"      --no-commit        leave the new checkpoint pending until\n"
	"                         `vmaback commit`; the default with -o -, where\n"
	"                         vmaback cannot know that the bytes were stored\n"
	"      --commit           commit the checkpoint after -o - too, trusting\n"
	"                         that the pipeline stored every byte\n"
	"      --bitmap NAME      the sources' dirty bitmap NAME holds the changes\n"
	"                         since the set's latest checkpoint: only its dirty\n"
	"                         clusters are read (an NBD export's\n"
	"                         qemu:dirty-bitmap:NAME, a qcow2 file's persistent\n"
	"                         bitmap); --bitmap DRIVE=NAME for one drive\n"
	"      --no-bitmap        find changes by reading the drives (digest maps)\n"
	"                         even where a source has a dirty bitmap\n"
	"\n"
	"Run from a scheduler:\n"
	"      --hook CMD         run CMD PHASE through /bin/sh at each phase, as\n"
	"                         vzdump's --script: job-start, backup-start,\n"
	"                         backup-end or backup-abort, job-end, log-end; the\n"
	"                         job is in VMABACK_PHASE, VMABACK_SET, VMABACK_VMID,\n"
	"                         VMABACK_CHECKPOINT, VMABACK_KIND, VMABACK_ARCHIVE,\n"
	"                         VMABACK_OUTPUT_CMD, VMABACK_LOG_FILE, VMABACK_STATUS\n"
	"                         (ok, skipped or failed); its output goes to\n"
	"                         stderr. A hook failing at job-start or\n"
	"                         backup-start stops the backup before it writes\n"
	"                         anything; later, it makes the exit status 1 and\n"
	"                         the backup stays committed\n"
	"      --lockwait MIN     wait up to MIN minutes (1.5 is 90 s) for a set, or a\n"
	"                         VM (--qmp), that another run holds, instead of\n"
	"                         failing at once\n"
	"      --max-chain N      --mode auto: a full backup once the chain since the\n"
	"                         latest full holds N backups (the full included)\n"
	"      --threshold SIZE   keep an incremental or differential only if at\n"
	"                         least SIZE changed (100M, 1G); below it the run\n"
	"                         exits 0 keeping nothing, and the next one holds\n"
	"                         the changes (needs -o FILE or --dumpdir)\n"
	"      --full-every DAYS  --mode auto: a full backup once the latest full is\n"
	"                         DAYS days old, so restores never read a year of\n"
	"                         incrementals and prune can free old chains\n"
	"\n"
	"What you see:\n"
	"  -q, --quiet            print only errors\n"
	"      --progress MODE    auto (a line per drive on a terminal, else an INFO\n"
	"                         line every 10 s or 10%), bar, log or none\n"
	"      --log-file FILE    append every message, with timestamps, to FILE\n"
	"                         (a regular file, created 0600; a symbolic link,\n"
	"                         FIFO or device there is refused)\n"
	"      --json             print the summary as JSON (on stdout, or on stderr\n"
	"                         when the archive goes to stdout), its warnings\n"
	"                         as records (kind, drive, message)\n"
	"      --config-file FILE read options from a JSON object whose keys are the\n"
	"                         long options (\"drives\" and \"configs\" are lists);\n"
	"                         the command line overrides it\n"
	"  -h, --help             show this help\n"
	"\n"
	"Holes (SEEK_HOLE, NBD base:allocation) are not read and all-zero 4 KiB\n"
	"blocks are not stored.\n"
	"\n"
	"qcow2 files in a backup set keep one persistent bitmap per checkpoint,\n"
	"named vmaback/SET/CHECKPOINT: the new one is added before the file is\n"
	"read, the older ones are disabled after the commit, and the next\n"
	"incremental reads only what the latest one marks. An image that a\n"
	"running VM holds is refused (exit 4): back up a running VM through an\n"
	"NBD export of it with --bitmap, or with --qmp. A source bitmap that cannot be used\n"
	"(missing, or inconsistent after a crash) makes --mode auto take a full\n"
	"backup; an explicit --mode incremental or differential fails instead\n"
	"(exit 2 when it is missing, 3 when it is inconsistent).\n"
	"With --qmp, each disk keeps one persistent dirty bitmap in QEMU,\n"
	"vmaback/SET/CHECKPOINT, for the set's latest committed checkpoint: an\n"
	"incremental reads only what it marks, through a copy of it taken at the\n"
	"point in time. Every run first removes what an interrupted run left in\n"
	"QEMU (as `vmaback recover`); a bitmap gone or inconsistent (QEMU was\n"
	"restarted or killed) makes --mode auto read that disk whole and compare\n"
	"it with the digest maps (a note), and fails --mode incremental (exit 2).\n"
	"One run per VM at a time (exit 4 otherwise). The VM's query-block\n"
	"answer is stored in the archive as qmp-block.json.\n"
	"With --domain, the set keeps one libvirt checkpoint, vmaback.SET.CKPT (with\n"
	"every character of SET and CKPT but letters, digits and '-' written _XX),\n"
	"that of its latest committed checkpoint: an incremental reads what its\n"
	"bitmaps mark. After the commit the previous checkpoint is deleted in\n"
	"libvirt, after a failure the new one. Every run first ends a backup job an\n"
	"interrupted run left and deletes the set's other checkpoints; one that\n"
	"libvirt lost (the domain was defined again) is redefined from vmaback's\n"
	"copy of its XML in the state root's .libvirt/, or else from the disks'\n"
	"bitmaps, or the disks are read whole (a note). The domain's XML is stored\n"
	"in the archive as libvirt-domain.xml.\n"
	"The checkpoint is committed only after the archive is durable (fsync and\n"
	"rename, or the output command read every byte and exited 0; a command\n"
	"or pipe reader that stops early fails the backup, saying how many bytes\n"
	"it never read); on any failure every bitmap and checkpoint stays as it\n"
	"was.\n"
	"\n"
	"Exit status: 0 success; 1 the backup failed (nothing published, nothing\n"
	"committed; or, as the message says, the archive or the checkpoint was\n"
	"published but a directory's fsync failed, so it may not survive a\n"
	"crash); 2 usage error; 3 damaged state or an inconsistent source\n"
	"bitmap; 4 the set or the VM is locked by another run, or an image file\n"
	"is in use;\n"
	"128+N interrupted by signal N (HUP, INT, QUIT, TERM, USR1, USR2, ALRM,\n"
	"XCPU, XFSZ: the output command is stopped, nothing is committed).\n"
	"\n"
	"Examples:\n"
	"  vmaback backup --drive drive-scsi0=/dev/vg0/vm-100-disk-0 \\\n"
	"      --config qemu-server.conf -o /backup/vm100.vma.zst\n"
	"  vmaback backup --set vm100 -d drive-scsi0=disk.raw -o - \\\n"
	"      | ssh host 'cat > vm100.vma'\n"
	"  vmaback backup --set vm100 --dumpdir /backup --vmid 100 \\\n"
	"      -d drive-scsi0=/dev/vg0/vm-100-disk-0 --notes 'nightly'\n"
	"  vmaback backup --set vm100 -d drive-scsi0=qcow2:/var/lib/vm100.qcow2 \\\n"
	"      -o /backup/vm100-$(date +%F).vma.zst\n"
	"  vmaback backup --set vm100 --qmp /run/qemu/vm100.qmp --dumpdir /backup \\\n"
	"      --vmid 100 --bwlimit 100M\n"
	"  vmaback backup --set web1 --domain web1 --dumpdir /backup --vmid 101\n"
	"  vmaback backup --set vm100 --bitmap backup-vda \\\n"
	"      -d drive-scsi0='nbd+unix:///vda?socket=/run/vm100-nbd.sock' -o inc.vma\n",
};
