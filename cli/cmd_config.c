/* cmd_config.c: `vmaback config`: one config blob of an archive, raw, on
 * standard output; reads only the header. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static const struct option config_options[] = {
	{ "config", required_argument, NULL, 'c' },
	CLI_KEY_OPTION,
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int config_missing(struct vma_reader *r, const char *name)
{
	char names[1024] = "";
	size_t used = 0;

	for (unsigned i = 0; i < vma_reader_config_count(r) && used < sizeof(names); i++) {
		char shown[300];
		int n;

		vb_name_printable(vma_reader_config(r, i)->name, shown, sizeof(shown));
		n = snprintf(names + used, sizeof(names) - used, "%s%s", i ? ", " : "", shown);
		if (n < 0)
			break;
		used += (size_t)n;
	}
	cli_warn("config", "no config blob named %s (blobs: %s)", name,
		 names[0] ? names : "none");
	return EXIT_FAIL;
}

static int config_run(int argc, char **argv)
{
	struct cli_getopt g = { .cmd = "config", .shortopts = ":c:h",
				  .longopts = config_options };
	const char *name = "qemu-server.conf";
	const struct vma_config_info *c;
	struct vb_error err = { 0 };
	struct vb_archive *a;
	int ch, status;

	while ((ch = cli_getopt(&g, argc, argv)) != -1) {
		if (ch == 'c')
			name = optarg;
		else if (ch == CLI_OPT_KEY && cli_key_load("config", optarg) != EXIT_OK)
			return EXIT_USAGE;
		else if (ch == CLI_OPT_KEY)
			continue;
		else if (ch == 'h')
			return cli_help(&cmd_config);
		else
			return cli_bad_option("config", argv, ch);
	}
	if (optind + 1 != argc)
		return cli_usage("config", "expected one ARCHIVE (a file, or - for standard input)");
	a = vb_archive_open(argv[optind], &err);
	if (!a)
		return cli_fail("config", &err);
	c = vma_reader_config_by_name(vb_archive_vma(a), name);
	if (c) {
		fwrite(c->data, 1, c->len, stdout);
		status = cli_close_stdout(EXIT_OK);
	} else {
		status = config_missing(vb_archive_vma(a), name);
	}
	vb_archive_free(a);
	return status;
}

const struct command cmd_config = {
	.name = "config",
	.options = config_options,
	.run = config_run,
	.summary = "print a config blob of an archive",
	.help =
	"Usage: vmaback config [-c NAME] [--key KEYFILE] ARCHIVE\n"
	"\n"
	"Prints the config blob NAME of the archive, byte for byte, on standard\n"
	"output. ARCHIVE is a file or '-' (any supported compression).\n"
	"\n"
	"  -c, --config NAME  the blob (default qemu-server.conf, as Proxmox's\n"
	"                     `vma config`; vmaback's own metadata is vmaback.json)\n"
	"      --key KEYFILE  the secret key of an encrypted archive\n"
	"  -h, --help         show this help\n"
	"\n"
	"Exit status: 0 success, 1 no such blob, 2 usage error, 3 not a valid archive.\n",
};
