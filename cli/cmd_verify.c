/* cmd_verify.c: `vmaback verify`: reads the whole archive with every check
 * of the format, and checks that no cluster is missing. */
#include <getopt.h>
#include <stdio.h>

#include "cli/cli.h"

static const struct option options[] = {
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int run(int argc, char **argv)
{
	struct vb_verify_result res;
	struct vb_error err = { 0 };
	struct vb_archive *a;
	bool quiet = false;
	char stored[32];
	int ch;

	while ((ch = getopt_long(argc, argv, "qh", options, NULL)) != -1) {
		if (ch == 'q')
			quiet = true;
		else if (ch == 'h')
			return cli_help(&cmd_verify);
		else
			return cli_usage("verify", "bad option");
	}
	if (optind + 1 != argc)
		return cli_usage("verify", "expected one ARCHIVE (a file, or - for standard input)");
	a = vb_archive_open(argv[optind], &err);
	if (!a)
		return cli_fail("verify", &err);
	if (vb_verify(a, &cli_interrupted, &res, &err) < 0) {
		vb_archive_free(a);
		return cli_fail("verify", &err);
	}
	if (!quiet) {
		cli_format_size(res.stored_bytes, stored, sizeof(stored));
		printf("%s: OK (%s, %u drive%s, %llu clusters, %s stored)\n",
		       vb_archive_path(a), vb_archive_meta(a)->kind, res.drives,
		       res.drives == 1 ? "" : "s", (unsigned long long)res.clusters, stored);
	}
	vb_archive_free(a);
	return cli_close_stdout(EXIT_OK);
}

const struct command cmd_verify = {
	.name = "verify",
	.run = run,
	.summary = "check a whole archive",
	.help =
	"Usage: vmaback verify [--quiet] ARCHIVE\n"
	"\n"
	"Reads the whole archive (a file or '-', any supported compression) and\n"
	"runs every check of the VMA format: header and extent checksums, uuids,\n"
	"device ids, duplicate clusters, blocks past a device's end, block\n"
	"counts, the compressed stream's own checksum; then checks that every\n"
	"cluster of every drive is present (unlike Proxmox's `vma verify`, an\n"
	"archive cut at an extent boundary fails) and, for vmaback's archives,\n"
	"that each drive holds the cluster count its vmaback.json records.\n"
	"\n"
	"  -q, --quiet  print nothing on success\n"
	"  -h, --help   show this help\n"
	"\n"
	"Exit status: 0 the archive is good, 2 usage error, 3 invalid, corrupt\n"
	"or truncated archive, 1 a read error.\n",
};
