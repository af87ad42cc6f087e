/* cmd_extract.c: `vmaback extract`: an archive into a new directory, in
 * the layout of Proxmox's `vma extract`. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static const struct option options[] = {
	{ "drive", required_argument, NULL, 'd' },
	{ "quiet", no_argument, NULL, 'q' },
	CLI_KEY_OPTION,
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int run(int argc, char **argv)
{
	static const int repeatable[] = { 'd', 0 };
	struct cli_getopt g = { .cmd = "extract", .shortopts = ":d:qh",
				  .longopts = options, .repeatable = repeatable };
	struct vb_extract_opts o = { .cancel = &cli_interrupted };
	struct vb_error err = { 0 };
	const char **names = NULL;
	size_t nnames = 0;
	struct vb_archive *a = NULL;
	bool quiet = false;
	int ch, status;

	while ((ch = cli_getopt(&g, argc, argv)) != -1) {
		switch (ch) {
		case 'd':
			if ((status = cli_add_names("extract", "-d", &names, &nnames, optarg)))
				goto out;
			break;
		case 'q':
			quiet = true;
			break;
		case CLI_OPT_KEY:
			if ((status = cli_key_load("extract", optarg)) != EXIT_OK)
				goto out;
			break;
		case 'h':
			status = cli_help(&cmd_extract);
			goto out;
		default:
			status = cli_bad_option("extract", argv, ch);
			goto out;
		}
	}
	if (optind + 2 != argc) {
		status = cli_usage("extract", "expected ARCHIVE and DIR");
		goto out;
	}
	o.dir = argv[optind + 1];
	o.select = names;
	o.nselect = nnames;
	a = vb_archive_open(argv[optind], &err);
	if (!a || vb_extract(a, &o, &err) < 0) {
		status = cli_fail("extract", &err);
		goto out;
	}
	if (!quiet)
		fprintf(stderr, "vmaback: extract: %s extracted into %s\n", vb_archive_path(a),
			o.dir);
	status = cli_close_stdout(EXIT_OK);
out:
	vb_archive_free(a);
	free(names);
	return status;
}

const struct command cmd_extract = {
	.name = "extract",
	.options = options,
	.run = run,
	.polls_cancel = true,
	.summary = "extract an archive into a new directory",
	.help =
	"Usage: vmaback extract [-d NAME[,NAME...]] [--key KEYFILE] ARCHIVE DIR\n"
	"\n"
	"Extracts a full archive the way Proxmox's `vma extract` does: DIR must\n"
	"not exist and is created (mode 0700); each drive becomes the sparse file\n"
	"DIR/disk-NAME.raw (mode 0600) and each config blob DIR/NAME. Drives of\n"
	"vmaback's archives get their exact size back; other archives' drives\n"
	"get the size the header declares. Proxmox's RAM state (vmstate) becomes\n"
	"DIR/vmstate.bin. Names that are not safe file names are refused, and if\n"
	"anything fails (a corrupt or truncated archive, a missing cluster, a\n"
	"full disk) everything extract wrote is removed, DIR included.\n"
	"ARCHIVE is a file or '-' (any supported compression).\n"
	"\n"
	"  -d, --drive NAME[,NAME...]  extract only these drives (configs always)\n"
	"  -q, --quiet                 print only errors\n"
	"      --key KEYFILE           the secret key of an encrypted archive\n"
	"  -h, --help                  show this help\n"
	"\n"
	"Exit status: 0 success, 1 failure (e.g. disk full), 2 usage error (DIR\n"
	"exists, unknown drive), 3 invalid, corrupt or truncated archive,\n"
	"128+N interrupted by signal N (nothing is left under a final name).\n",
};
