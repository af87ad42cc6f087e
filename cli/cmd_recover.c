/* cmd_recover.c: `vmaback recover`: removes from a running VM what an
 * interrupted backup left there (every backup over QMP starts with the
 * same recovery). */
#include <getopt.h>
#include <stdio.h>

#include "cli/cli.h"

#define CMD "recover"

enum { OPT_QMP = 256, OPT_SCRATCH_DIR, OPT_DOMAIN, OPT_CONNECT };

static const struct option options[] = {
	CLI_SET_OPTIONS,
	{ "qmp", required_argument, NULL, OPT_QMP },
	{ "scratch-dir", required_argument, NULL, OPT_SCRATCH_DIR },
	{ "domain", required_argument, NULL, OPT_DOMAIN },
	{ "connect", required_argument, NULL, OPT_CONNECT },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int recover_run(int argc, char **argv)
{
	struct cli_getopt g = { .cmd = CMD, .shortopts = ":h", .longopts = options };
	struct cli_set_opts a = { 0 };
	struct cli_live_args la = { 0 };
	struct vb_error err = { 0 };
	const struct vb_ckpt *latest;
	struct vb_live *l = NULL;
	struct vb_state *s;
	int ch, status;

	while ((ch = cli_getopt(&g, argc, argv)) != -1) {
		if (cli_set_option(ch, optarg, &a))
			continue;
		if (ch == OPT_QMP)
			la.qmp = optarg;
		else if (ch == OPT_SCRATCH_DIR)
			la.scratch_dir = optarg;
		else if (ch == OPT_DOMAIN)
			la.domain = optarg;
		else if (ch == OPT_CONNECT)
			la.connect = optarg;
		else if (ch == 'h')
			return cli_help(&cmd_recover);
		else
			return cli_bad_option(CMD, argv, ch);
	}
	if (!a.set || !!la.qmp == !!la.domain)
		return cli_usage(CMD, "expected --qmp SOCKET or --domain NAME, and --set NAME");
	if (la.connect && !la.domain)
		return cli_usage(CMD, "--connect goes with --domain NAME");
	if (optind != argc)
		return cli_usage(CMD, "unexpected argument '%s'", argv[optind]);
	s = cli_open_set(CMD, a.set, a.state_dir, true, &status);
	if (!s)
		return status;
	latest = vb_state_latest(s);
	l = cli_live_open(&la, s, &err);
	if (!l || vb_live_recover(l, latest ? latest->name : NULL, &err) < 0) {
		status = cli_fail(CMD, &err);
		goto out;
	}
	for (size_t i = 0; i < vb_live_count(l); i++) {
		const struct vb_live_drive *d = vb_live_get(l, i);

		if (d->has_bitmap && la.domain)
			fprintf(stderr, "vmaback: %s: drive %s: kept the bitmap of checkpoint %s\n",
				CMD, d->name, latest->name);
		else if (d->has_bitmap)
			fprintf(stderr, "vmaback: %s: drive %s: kept bitmap vmaback/%s/%s\n", CMD,
				d->name, a.set, latest->name);
		else if (d->why)
			fprintf(stderr, "vmaback: %s: %s; the next backup reads it whole\n", CMD,
				d->why);
	}
	fprintf(stderr, "vmaback: %s: nothing of vmaback's is left in %s but the %s of set "
		"%s's latest checkpoint\n", CMD, vb_live_what(l),
		la.domain ? "libvirt checkpoint" : "bitmaps", a.set);
	status = EXIT_OK;
out:
	vb_live_close(l);
	vb_state_close(s);
	return status;
}

const struct command cmd_recover = {
	.name = "recover",
	.options = options,
	.run = recover_run,
	.summary = "remove what an interrupted backup left in a running VM",
	.help =
	"Usage: vmaback recover --qmp SOCKET --set NAME [--state-dir DIR]\n"
	"                       [--scratch-dir DIR]\n"
	"       vmaback recover --domain NAME [--connect URI] --set NAME\n"
	"                       [--state-dir DIR] [--scratch-dir DIR]\n"
	"\n"
	"Every `vmaback backup --qmp` starts with this recovery; run it by hand after\n"
	"a backup was killed to leave the VM clean at once. It removes from QEMU\n"
	"what vmaback made there and nothing else: its NBD exports and server, its\n"
	"block nodes (vmaback-*), with the disks' devices pointed back at their\n"
	"disks, its scratch files, the set's temporary bitmap and every bitmap of\n"
	"the set but that of its latest committed checkpoint. A guest an\n"
	"interrupted run paused is resumed, one it froze (--fsfreeze) is thawed. A\n"
	"bitmap that QEMU marks inconsistent (QEMU was killed) is removed too: the\n"
	"next backup reads that drive whole.\n"
	"\n"
	"With --domain (libvirt), it ends vmaback's backup job of the domain, thaws\n"
	"a guest an interrupted run froze, removes its scratch files and deletes\n"
	"every libvirt checkpoint of the set (vmaback.SET.*) but that of its latest\n"
	"committed checkpoint; that one, if libvirt lost it, is defined again from\n"
	"vmaback's copy of its XML (the state root's .libvirt/).\n"
	"\n"
	"      --qmp SOCKET       the VM's QMP socket (QEMU's -qmp unix:SOCKET,server=on)\n"
	"      --domain NAME      the libvirt domain (its name or UUID)\n"
	"      --connect URI      libvirt's connection URI (default: libvirt's own)\n"
	"      --set NAME         the backup set\n"
	"      --state-dir DIR    where sets keep their state\n"
	"      --scratch-dir DIR  where the backup put its scratch files (if not the\n"
	"                         default: the state root's .scratch/, /var/tmp with\n"
	"                         --domain)\n"
	"  -h, --help             show this help\n"
	"\n"
	"Exit status: 0 success, 1 QEMU refused a command, 2 usage error, 4 the set or\n"
	"the VM is locked by a running backup.\n"
	"\n"
	"Example:\n"
	"  vmaback recover --qmp /run/qemu/vm100.qmp --set vm100\n"
	"  vmaback recover --domain web1 --set web1\n",
};
