/* backup_check.c: the checks `vmaback backup` makes of its options once
 * they are all read (command line and --config-file): what goes together,
 * the drives of a running VM, a dump directory's generated names. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/backup_opts.h"

#define CMD "backup"

static bool ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);

	return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* --bitmap NAME is every drive's bitmap, --bitmap DRIVE=NAME one drive's. */
static int apply_bitmaps(struct backup_args *a)
{
	const char *all = NULL;

	for (size_t i = 0; i < a->nbitmaps; i++) {
		char *eq = strchr(a->bitmaps[i], '=');
		size_t d;

		if (!eq) {
			if (all)
				return backup_opt_usage(a, "--bitmap NAME given twice (%s, %s)", all,
						 a->bitmaps[i]);
			all = a->bitmaps[i];
			continue;
		}
		for (d = 0; d < a->ndrives; d++)
			if (strlen(a->drives[d].name) == (size_t)(eq - a->bitmaps[i]) &&
			    strncmp(a->drives[d].name, a->bitmaps[i], (size_t)(eq - a->bitmaps[i])) == 0)
				break;
		if (d == a->ndrives)
			return backup_opt_usage(a, "--bitmap %s: no --drive named %.*s", a->bitmaps[i],
					 (int)(eq - a->bitmaps[i]), a->bitmaps[i]);
		if (a->drives[d].bitmap)
			return backup_opt_usage(a, "--bitmap %s: drive %s has a bitmap already",
					 a->bitmaps[i], a->drives[d].name);
		a->drives[d].bitmap = eq + 1;
	}
	for (size_t d = 0; all && d < a->ndrives; d++)
		if (!a->drives[d].bitmap)
			a->drives[d].bitmap = all;
	return 0;
}

/* --dumpdir: the archive's name from the template and the time. */
static int dumpdir_name(struct backup_args *a)
{
	struct vb_error err = { 0 };
	char *name, *dir;
	int n;

	if (!a->vmid && !a->name_template)
		return cli_usage(CMD, "--dumpdir needs --vmid ID (vzdump's names) or "
				 "--name-template TEMPLATE");
	if (a->compress == -1)
		a->compress = 1;
	name = vb_dumpdir_name(a->name_template, a->vmid, a->set, vb_clock_now(),
			       a->compress == 1, a->encrypt || a->recipient, &err);
	if (!name)
		return cli_fail(CMD, &err);
	/* The state records where the archive is: an absolute path, so prune
	 * finds it from any directory. */
	dir = realpath(a->dumpdir, NULL);
	if (!dir) {
		free(name);
		return cli_usage(CMD, "--dumpdir %s: %s", a->dumpdir, strerror(errno));
	}
	n = asprintf(&a->generated_out, "%s/%s", dir, name);
	free(dir);
	free(name);
	if (n < 0)
		return cli_usage(CMD, "out of memory");
	a->out = a->generated_out;
	if (!a->log_file) {
		a->generated_log = vb_dumpdir_sibling(a->out, "log");
		a->log_file = a->generated_log;
	}
	return 0;
}

/* --qmp or --domain: the drives are the VM's, or those --drive
 * NAME=qmp:DEVICE (NAME=libvirt:DEV) names. */
static int check_live(struct backup_args *a)
{
	struct cli_live_args *l = &a->live;
	const char *kind = l->qmp ? "qmp:" : l->domain ? "libvirt:" : NULL;
	size_t klen = kind ? strlen(kind) : 0;

	if (l->qmp && l->domain)
		return cli_usage(CMD, "give either --qmp SOCKET (plain QEMU) or --domain NAME "
				 "(libvirt), not both");
	if (l->connect && !l->domain)
		return cli_usage(CMD, "--connect goes with --domain NAME");
	if (a->include_stopped && !l->domain)
		return cli_usage(CMD, "--include-stopped goes with --domain NAME, --domains or "
				 "--all");
	for (size_t i = 0; i < a->ndrives; i++) {
		const char *spec = a->drives[i].spec;
		bool qmp = strncmp(spec, "qmp:", 4) == 0, lv = strncmp(spec, "libvirt:", 8) == 0;

		if ((qmp || lv) && !kind)
			return cli_usage(CMD, "--drive %s=%s: a %s drive needs %s", a->drives[i].name,
					 spec, qmp ? "qmp:DEVICE" : "libvirt:DEV",
					 qmp ? "--qmp SOCKET" : "--domain NAME");
		if (kind && strncmp(spec, kind, klen) != 0)
			return cli_usage(CMD, "--drive %s=%s: with %s every drive is NAME=%sDEVICE",
					 a->drives[i].name, spec, l->qmp ? "--qmp" : "--domain", kind);
	}
	if (!kind) {
		if (l->scratch_dir || l->qga || a->fsfreeze)
			return cli_usage(CMD, "--scratch-dir, --fsfreeze and --qga go with --qmp "
					 "SOCKET or --domain NAME");
		return 0;
	}
	if (!a->set)
		return cli_usage(CMD, "%s needs --set NAME: the VM's dirty bitmaps are named for "
				 "the set", l->qmp ? "--qmp" : "--domain");
	if (a->nbitmaps)
		return cli_usage(CMD, "--bitmap does not go with %s: vmaback keeps the VM's "
				 "bitmaps itself", l->qmp ? "--qmp" : "--domain");
	if (l->domain && l->qga)
		return cli_usage(CMD, "--qga goes with --qmp: with --domain, libvirt talks to the "
				 "guest agent");
	if (l->qmp && a->fsfreeze != !!l->qga)
		return cli_usage(CMD, "--fsfreeze needs --qga SOCKET (the guest agent's "
				 "socket), and --qga goes with --fsfreeze");
	l->fsfreeze = a->fsfreeze;
	l->include_stopped = a->include_stopped;
	l->ndrives = a->ndrives;
	l->names = calloc(a->ndrives + 1, sizeof(*l->names));
	l->devices = calloc(a->ndrives + 1, sizeof(*l->devices));
	if (!l->names || !l->devices)
		return cli_usage(CMD, "out of memory");
	for (size_t i = 0; i < a->ndrives; i++) {
		l->names[i] = a->drives[i].name;
		l->devices[i] = a->drives[i].spec + klen;
		if (!l->devices[i][0])
			return cli_usage(CMD, "--drive %s=%s names no device", l->names[i], kind);
	}
	return 0;
}

int backup_args_check(struct backup_args *a)
{
	int targets = !!a->out + !!a->output_cmd + !!a->dumpdir;
	int rc;

	if ((rc = check_live(a)) != 0)
		return rc;
	if (a->ndrives == 0 && !a->live.qmp && !a->live.domain)
		return cli_usage(CMD, "no drive given (--drive NAME=PATH, or --qmp SOCKET or "
				 "--domain NAME for a running VM)");
	if (!a->dumpdir && (a->vmid || a->name_template))
		return cli_usage(CMD, "--vmid and --name-template go with --dumpdir DIR");
	if ((a->notes || a->protect) && (a->output_cmd || (a->out && strcmp(a->out, "-") == 0)))
		return cli_usage(CMD, "--notes and --protected need an archive file (-o FILE or "
				 "--dumpdir DIR)");
	if (targets > 1)
		return cli_usage(CMD, "give one of -o, --output-cmd and --dumpdir");
	if (a->dumpdir && (rc = dumpdir_name(a)) != 0)
		return rc;
	if (targets != 1)
		return cli_usage(CMD, "%s", targets ? "give either -o or --output-cmd, not both" :
				 "no output given (-o FILE, -o - for standard output, or "
				 "--output-cmd COMMAND)");
	if (!a->set && (a->state_dir || a->since || a->checkpoint || a->no_commit || a->commit ||
			a->nbitmaps || a->no_bitmap ||
			a->mode == VB_MODE_INCREMENTAL || a->mode == VB_MODE_DIFFERENTIAL))
		return cli_usage(CMD, "--state-dir, --since, --checkpoint, --commit, --no-commit, "
				 "--bitmap, --no-bitmap and incremental or differential modes "
				 "need --set NAME");
	if (a->commit && a->no_commit)
		return cli_usage(CMD, "give either --commit or --no-commit, not both");
	if ((a->max_chain || a->full_every || a->lockwait) && !a->set)
		return cli_usage(CMD, "--max-chain, --full-every and --lockwait need --set NAME");
	if (a->threshold && !a->set)
		return cli_usage(CMD, "--threshold needs --set NAME");
	if (a->threshold && (a->output_cmd || strcmp(a->out, "-") == 0))
		return cli_usage(CMD, "--threshold needs -o FILE or --dumpdir: a stream sent to "
				 "standard output or a command cannot be taken back");
	if (a->threshold && a->mode == VB_MODE_FULL)
		return cli_usage(CMD, "--threshold skips small incremental and differential "
				 "backups; --mode full is never skipped");
	if ((a->max_chain || a->full_every) && a->mode != VB_MODE_AUTO)
		return cli_usage(CMD, "--max-chain and --full-every choose between a full and an "
				 "incremental backup: they go with --mode auto");
	/* vmaback cannot know whether a pipeline stored what went to standard
	 * output: the checkpoint waits for `vmaback commit` unless told. */
	if (a->set && a->out && strcmp(a->out, "-") == 0 && !a->commit)
		a->no_commit = true;
	if (a->nbitmaps && a->no_bitmap)
		return cli_usage(CMD, "give either --bitmap or --no-bitmap, not both");
	if (apply_bitmaps(a))
		return EXIT_USAGE;
	if (a->out && strcmp(a->out, "-") == 0 && isatty(STDOUT_FILENO))
		return cli_usage(CMD, "refusing to write an archive to a terminal");
	if (a->compress == -1) {
		const char *name = a->out ? a->out : "";

		if (ends_with(name, ".gz") || ends_with(name, ".lzo"))
			return cli_usage(CMD, "%s: vmaback compresses with zstd only (.vma.zst)",
					 name);
		a->compress = ends_with(name, ".zst") || ends_with(name, ".zst.enc");
	}
	if (a->encrypt && a->recipient)
		return cli_usage(CMD, "give either --encrypt KEYFILE or --recipient PUBFILE, not both");
	if ((a->encrypt || a->recipient) && !(a->pubkey = cli_pubkey_load(CMD, a->encrypt ?
								  a->encrypt : a->recipient)))
		return EXIT_USAGE;
	if (a->sign && a->compress == 0 && !a->pubkey)
		return cli_usage(CMD, "--sign: a plain VMA archive has no room for a signature: "
				 "compress it (--compress zstd) or encrypt it");
	if (a->sign && !(a->sign_key = cli_secret_load(CMD, a->sign)))
		return EXIT_USAGE;
	if (a->quiet)
		a->progress = CLI_PROGRESS_NONE;
	return 0;
}
