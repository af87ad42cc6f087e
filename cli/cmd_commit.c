/* cmd_commit.c: `vmaback commit`: a pending checkpoint becomes the set's
 * latest. */
#include <getopt.h>
#include <stdio.h>

#include "cli/cli.h"

static const struct option options[] = {
	CLI_SET_OPTIONS,
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int commit_run(int argc, char **argv)
{
	struct cli_getopt g = { .cmd = "commit", .shortopts = ":h", .longopts = options };
	struct cli_set_opts a = { 0 };
	struct vb_error err = { 0 };
	struct vb_state *s;
	int ch, status;

	while ((ch = cli_getopt(&g, argc, argv)) != -1) {
		if (cli_set_option(ch, optarg, &a))
			continue;
		if (ch == 'h')
			return cli_help(&cmd_commit);
		return cli_bad_option("commit", argv, ch);
	}
	if (!a.set)
		return cli_usage("commit", "expected --set NAME");
	if (optind + 1 != argc)
		return cli_usage("commit", "expected the name of the pending CHECKPOINT");
	s = cli_open_set("commit", a.set, a.state_dir, true, &status);
	if (!s)
		return status;
	status = vb_state_commit_pending(s, argv[optind], &err);
	if (status < 0) {
		status = cli_fail("commit", &err);
	} else if (status > 0) {
		cli_warn("commit", "checkpoint %s of set %s was committed, but %s", argv[optind],
			 a.set, err.msg);
		status = EXIT_FAIL;
	} else {
		fprintf(stderr, "vmaback: commit: checkpoint %s of set %s committed\n",
			argv[optind], a.set);
		status = EXIT_OK;
	}
	vb_state_close(s);
	return status;
}

const struct command cmd_commit = {
	.name = "commit",
	.options = options,
	.run = commit_run,
	.summary = "commit a pending checkpoint",
	.help =
	"Usage: vmaback commit --set NAME [--state-dir DIR] CHECKPOINT\n"
	"\n"
	"A backup run with --no-commit, or one writing to standard output (-o -,\n"
	"where vmaback cannot know whether the bytes were stored) without\n"
	"--commit, leaves its checkpoint pending. Once the archive is safely stored, commit it: it\n"
	"becomes the base of the next incremental backup. A pending checkpoint\n"
	"that is never committed is discarded when the next backup of the set\n"
	"succeeds; that backup again includes every change since the last\n"
	"committed checkpoint. A backup that fails leaves it pending.\n"
	"\n"
	"If the backup wrote its archive to a file, commit first checks that the file\n"
	"still has the size and digest the backup wrote (SHA-256, or vma-tree-1\n"
	"for a plain archive); if it was truncated,\n"
	"changed, replaced or removed, the checkpoint is not committed (exit 3) and\n"
	"the state is left as it was.\n"
	"\n"
	"      --set NAME        the backup set\n"
	"      --state-dir DIR   where sets keep their state\n"
	"  -h, --help            show this help\n"
	"\n"
	"Exit status: 0 success, 2 no such pending checkpoint, 3 its archive file\n"
	"differs from what was written (or the state is damaged), 4 the set is locked.\n"
	"\n"
	"Example:\n"
	"  vmaback backup --set vm100 --checkpoint n42 -d d=disk.raw -o - \\\n"
	"      | ssh host 'cat > /b/vm100.vma' && vmaback commit --set vm100 n42\n",
};
