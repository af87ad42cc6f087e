/* cmd_merge.c: `vmaback merge`: a chain of archives into one synthetic full
 * archive. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"

enum { OPT_COMPRESS = 256, OPT_ZLEVEL, OPT_RECIPIENT };

static const struct option merge_options[] = {
	{ "output", required_argument, NULL, 'o' },
	{ "force", no_argument, NULL, 'f' },
	{ "compress", required_argument, NULL, OPT_COMPRESS },
	{ "zstd-level", required_argument, NULL, OPT_ZLEVEL },
	{ "quiet", no_argument, NULL, 'q' },
	CLI_KEY_OPTION,
	{ "recipient", required_argument, NULL, OPT_RECIPIENT },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int merge_run(int argc, char **argv)
{
	static const int repeatable[] = { CLI_OPT_KEY, 0 };
	struct cli_getopt g = { .cmd = "merge", .shortopts = ":o:fqh",
				  .longopts = merge_options, .repeatable = repeatable };
	const char *out = NULL, *recipient = NULL;
	struct vb_pubkey *pub = NULL;
	const struct vb_input_opts *keys;
	bool force = false, quiet = false;
	int compress = -1, ch;
	uint64_t level = 3;
	struct vb_writer *sink;
	struct vb_error err = { 0 };

	while ((ch = cli_getopt(&g, argc, argv)) != -1) {
		switch (ch) {
		case 'o':
			out = optarg;
			break;
		case 'f':
			force = true;
			break;
		case 'q':
			quiet = true;
			break;
		case OPT_COMPRESS:
			if (strcmp(optarg, "none") != 0 && strcmp(optarg, "zstd") != 0)
				return cli_usage("merge", "--compress %s: expected none or zstd",
						 optarg);
			compress = strcmp(optarg, "zstd") == 0;
			break;
		case OPT_ZLEVEL:
			if (!cli_parse_uint(optarg, 1, 19, &level))
				return cli_usage("merge", "--zstd-level %s: expected 1 to 19", optarg);
			break;
		case CLI_OPT_KEY: {
			int st = cli_key_load("merge", optarg);

			if (st != EXIT_OK)
				return st;
			break;
		}
		case OPT_RECIPIENT:
			recipient = optarg;
			break;
		case 'h':
			return cli_help(&cmd_merge);
		default:
			return cli_bad_option("merge", argv, ch);
		}
	}
	if (!out || optind >= argc)
		return cli_usage("merge", "expected -o OUT and the archives of a chain");
	if (strcmp(out, "-") == 0 && isatty(STDOUT_FILENO))
		return cli_usage("merge", "refusing to write an archive to a terminal");
	if (compress < 0)
		compress = strlen(out) > 4 && strcmp(out + strlen(out) - 4, ".zst") == 0;
	if (strcmp(out, "-") == 0) {
		sink = vb_sink_fd_new(STDOUT_FILENO, "standard output", &err);
	} else {
		sink = vb_sink_file_new(out, force, &err);
	}
	/* encrypted archives merge into an encrypted one: to --recipient, or
	 * to the first --key */
	keys = cli_keys();
	if (recipient && !(pub = cli_pubkey_load("merge", recipient))) {
		vb_writer_discard(sink);
		return EXIT_USAGE;
	}
	if (sink && (pub || keys)) {
		const struct vb_pubkey *to = pub ? pub : vb_key_public(keys->keys[0]);
		struct vb_writer *x = vb_crypt_writer_new(sink, to, NULL, NULL, &err);

		if (!x)
			vb_writer_discard(sink);
		sink = x;
	}
	vb_pubkey_free(pub);
	if (!sink)
		return cli_fail("merge", &err);
	if (vb_merge((const char *const *)argv + optind, (size_t)(argc - optind), sink,
		     compress, (int)level, (int)sysconf(_SC_NPROCESSORS_ONLN), &err) != 0) {
		/* 1: written, not durable, which err says */
		return cli_fail("merge", &err);
	}
	if (!quiet)
		fprintf(stderr, "vmaback: merge: synthetic full archive %s written\n",
			strcmp(out, "-") == 0 ? "(standard output)" : out);
	return cli_close_stdout(EXIT_OK);
}

const struct command cmd_merge = {
	.name = "merge",
	.options = merge_options,
	.run = merge_run,
	.summary = "merge a chain into one synthetic full archive",
	.help =
	"Usage: vmaback merge -o OUT [--key KEYFILE] FULL [INCREMENTAL|DIFFERENTIAL ...]\n"
	"\n"
	"Writes the full archive of the drives as they were at the newest archive\n"
	"of the chain, without reading the drives again. The result is a normal\n"
	"full archive: Proxmox's `vma extract` reads it, and it can start a new\n"
	"chain for restores: the set's later incrementals and differentials\n"
	"follow it (vmaback.json lists the archives it stands for). The chain is\n"
	"checked as `vmaback restore` does; names that `extract` refuses are\n"
	"refused.\n"
	"\n"
	"  -o, --output OUT        the new archive ('-' for standard output); written\n"
	"                          under a temporary name, renamed on success\n"
	"  -f, --force             replace OUT if it exists\n"
	"      --compress none|zstd  (default: zstd when OUT ends in .zst)\n"
	"      --zstd-level N      1 to 19 (default 3)\n"
	"  -q, --quiet             print only errors\n"
	"      --key KEYFILE       the secret key of encrypted archives (repeated: a\n"
	"                          chain whose key changed); the merged archive is\n"
	"                          encrypted to the first (never written plain)\n"
	"      --recipient PUBFILE encrypt the merged archive to this public key\n"
	"  -h, --help              show this help\n"
	"\n"
	"Exit status: 0 success, 1 failure, 2 usage error or a broken chain,\n"
	"3 invalid or corrupt archive.\n",
};
