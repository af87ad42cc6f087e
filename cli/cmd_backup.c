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

/* --include-stopped, a stopped domain (its session holds only its lock):
 * its disks read offline from their images as -d NAME=qcow2:PATH would
 * (only those -d NAME=libvirt:DEV names, under its names), with its XML
 * as the archive's libvirt-domain.xml. */
static int offline(struct backup_args *a, const struct vb_libvirt_offline *off,
		   struct vb_backup_opts *o)
{
	struct vb_drive *d = calloc(off->n, sizeof(*d));

	if (!d)
		return cli_usage(CMD, "out of memory");
	for (size_t i = 0; i < off->n; i++) {
		d[i].name = off->names[i];
		d[i].spec = off->specs[i];
	}
	free(a->drives);
	a->drives = d;
	a->ndrives = off->n;
	cli_info(a->quiet, "INFO: domain %s is not running: reading its images", a->live.domain);
	a->live.domain = NULL;
	o->layout_name = "libvirt-domain.xml";
	o->layout = off->xml;
	return 0;
}

static int prepare(struct backup_args *a, struct vb_backup_opts *o, struct vb_state **state,
		   struct vb_live **live, struct vb_backup **b, struct vb_error *err)
{
	const struct vb_libvirt_offline *off;
	char *dir = NULL;
	int rc;

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
	off = vb_live_libvirt_offline(*live);
	if (off && (rc = offline(a, off, o)) != 0)
		return rc;
	o->live = off ? NULL : *live;
	o->drives = o->live ? NULL : a->drives;
	o->ndrives = o->live ? 0 : a->ndrives;
	o->configs = a->configs;
	o->nconfigs = a->nconfigs;
	o->cancel = &cli_interrupted;
	o->compress = a->compress == 1;
	o->zstd_level = a->zlevel;
	o->zstd_threads = a->zthreads;
	o->archive_path = a->out && strcmp(a->out, "-") != 0 ? a->out : NULL;
	o->encrypt_to = a->pubkey;
	o->sign = a->sign_key;
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
	.options = backup_options,
	.run = run,
	.polls_cancel = true,
	.summary = "back up drives into one VMA archive",
	.help = backup_help,
};
