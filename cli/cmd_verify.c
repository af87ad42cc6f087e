/* cmd_verify.c: `vmaback verify`: reads a whole archive with every check
 * of the format and its completeness; --deep also compares a checkpoint's
 * restored chain with the digests the backup recorded. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

enum { OPT_DEEP = 256, OPT_SET, OPT_STATE_DIR, OPT_CHECKPOINT, OPT_PUBKEY };

static const struct option options[] = {
	{ "quiet", no_argument, NULL, 'q' },
	{ "deep", no_argument, NULL, OPT_DEEP },
	{ "set", required_argument, NULL, OPT_SET },
	{ "state-dir", required_argument, NULL, OPT_STATE_DIR },
	{ "checkpoint", required_argument, NULL, OPT_CHECKPOINT },
	CLI_KEY_OPTION,
	{ "pubkey", required_argument, NULL, OPT_PUBKEY },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/* verify --pubkey: the signature only (no key, even if encrypted). */
static int verify_signature(const char *pubfile, const char *path, bool quiet)
{
	struct vb_pubkey *p = cli_pubkey_load("verify", pubfile);
	struct vb_error err = { 0 };
	struct vb_signature sig;
	char id[2 * VB_KEY_ID_LEN + 1], sha[65];
	int rc;

	if (!p)
		return EXIT_USAGE;
	rc = vb_signature_check(path, p, &sig, &err);
	vb_pubkey_free(p);
	if (rc < 0)
		return cli_fail("verify", &err);
	vb_key_id_hex(sig.key_id, id);
	vb_hex(sig.sha256, 32, sha);
	if (!quiet) {
		printf("%s: signature OK: signed by key %s, %llu bytes, sha256 %s\n",
		       strcmp(path, "-") == 0 ? "standard input" : path, id,
		       (unsigned long long)sig.length, sha);
	}
	return cli_close_stdout(EXIT_OK);
}

static int verify_one(const char *path, bool quiet)
{
	struct vb_verify_result res;
	struct vb_error err = { 0 };
	struct vb_archive *a = vb_archive_open(path, &err);
	char stored[32];

	if (!a)
		return cli_fail("verify", &err);
	if (vb_verify(a, &cli_interrupted, &res, &err) < 0) {
		vb_archive_free(a);
		return cli_fail("verify", &err);
	}
	if (!quiet) {
		cli_format_size(res.stored_bytes, stored, sizeof(stored));
		printf("%s: OK (%s, %u drive%s%s, %llu clusters, %s stored)\n",
		       vb_archive_path(a), vb_kind_name(vb_archive_meta(a)->kind), res.drives,
		       res.drives == 1 ? "" : "s", res.vmstate ? " and a RAM state" : "",
		       (unsigned long long)res.clusters, stored);
	}
	vb_archive_free(a);
	return cli_close_stdout(EXIT_OK);
}

static int verify_deep(const char *set, const char *state_dir, const char *ckpt,
		       char **archives, size_t n, const char *file, bool quiet)
{
	struct vb_deep_opts o = { .checkpoint = ckpt, .archives = (const char *const *)archives,
				  .narchives = n, .file = file, .cancel = &cli_interrupted };
	struct vb_deep_result res;
	struct vb_error err = { 0 };
	char *dir = state_dir ? strdup(state_dir) : vb_state_default_dir();
	int status;

	if (!dir)
		return cli_usage("verify", "no state directory: give --state-dir DIR");
	o.state = vb_state_open_read(dir, set, &err);
	free(dir);
	if (!o.state)
		return cli_fail("verify", &err);
	if (vb_verify_deep(&o, &res, &err) < 0) {
		status = cli_fail("verify", &err);
	} else {
		if (!quiet)
			printf("checkpoint %s of set %s: OK (%u archive%s, %llu clusters compared "
			       "%s)\n", res.checkpoint, set, res.archives,
			       res.archives == 1 ? "" : "s", (unsigned long long)res.clusters,
			       res.per_cluster ? "cluster by cluster" : "by digest root");
		status = cli_close_stdout(EXIT_OK);
	}
	vb_state_close(o.state);
	return status;
}

/* --deep ARCHIVE: the set and checkpoint come from the archive's
 * vmaback.json, and its chain from the state (one archive given) or the
 * archives given. */
static int deep_args(const char *set, const char *state_dir, const char *ckpt, char **archives,
		     size_t n, bool quiet)
{
	struct vb_error err = { 0 };
	struct vb_archive *a;
	const struct vb_meta *m;
	char *aset = NULL, *ack = NULL;
	int status;

	if (n == 0) {
		if (!set)
			return cli_usage("verify", "--deep needs --set NAME or an ARCHIVE of a "
					 "backup set (the digests are in the set's state)");
		return verify_deep(set, state_dir, ckpt, archives, 0, NULL, quiet);
	}
	if (!(a = vb_archive_open(archives[n - 1], &err)))
		return cli_fail("verify", &err);
	m = vb_archive_meta(a);
	if (!set && (!m->set || !m->checkpoint)) {
		vb_archive_free(a);
		return cli_usage("verify", "%s is not an archive of a backup set: --deep needs "
				 "--set NAME", archives[n - 1]);
	}
	aset = m->set ? strdup(m->set) : NULL;
	ack = m->checkpoint ? strdup(m->checkpoint) : NULL;
	vb_archive_free(a);
	/* One archive: that file, in its checkpoint's chain as the state
	 * records it. */
	if (n == 1)
		status = verify_deep(set ? set : aset, state_dir, ckpt, NULL, 0, archives[0],
				     quiet);
	else
		status = verify_deep(set ? set : aset, state_dir, ckpt ? ckpt : ack, archives, n,
				     NULL, quiet);
	free(aset);
	free(ack);
	return status;
}

static int run(int argc, char **argv)
{
	static const int repeatable[] = { CLI_OPT_KEY, 0 };
	struct cli_getopt g = { .cmd = "verify", .shortopts = ":qh", .longopts = options,
				.repeatable = repeatable };
	const char *set = NULL, *state_dir = NULL, *ckpt = NULL, *pubkey = NULL;
	bool quiet = false, deep = false;
	int ch;

	while ((ch = cli_getopt(&g, argc, argv)) != -1) {
		switch (ch) {
		case 'q':
			quiet = true;
			break;
		case OPT_DEEP:
			deep = true;
			break;
		case OPT_SET:
			set = optarg;
			break;
		case OPT_STATE_DIR:
			state_dir = optarg;
			break;
		case OPT_CHECKPOINT:
			ckpt = optarg;
			break;
		case CLI_OPT_KEY: {
			int st = cli_key_load("verify", optarg);

			if (st != EXIT_OK)
				return st;
			break;
		}
		case OPT_PUBKEY:
			pubkey = optarg;
			break;
		case 'h':
			return cli_help(&cmd_verify);
		default:
			return cli_bad_option("verify", argv, ch);
		}
	}
	if (pubkey && (deep || optind + 1 != argc))
		return cli_usage("verify", "--pubkey checks the signature of one ARCHIVE");
	if (pubkey)
		return verify_signature(pubkey, argv[optind], quiet);
	if (deep)
		return deep_args(set, state_dir, ckpt, argv + optind, (size_t)(argc - optind),
				 quiet);
	if (set || state_dir || ckpt)
		return cli_usage("verify", "--set, --state-dir and --checkpoint go with --deep");
	if (optind + 1 != argc)
		return cli_usage("verify", "expected one ARCHIVE (a file, or - for standard input)");
	return verify_one(argv[optind], quiet);
}

const struct command cmd_verify = {
	.name = "verify",
	.options = options,
	.run = run,
	.summary = "check an archive, or a checkpoint's whole chain",
	.help =
	"Usage: vmaback verify [--quiet] [--key KEYFILE] ARCHIVE\n"
	"       vmaback verify --deep --set NAME [--state-dir DIR] [--checkpoint C]\n"
	"                      [ARCHIVE...]\n"
	"       vmaback verify --deep [--state-dir DIR] ARCHIVE\n"
	"       vmaback verify --pubkey PUBFILE ARCHIVE\n"
	"\n"
	"Reads the whole archive (a file or '-', any supported compression) and\n"
	"runs every check of the VMA format: header and extent checksums, uuids,\n"
	"device ids, duplicate clusters, blocks past a device's end, block\n"
	"counts, the compressed stream's own checksum; then checks that no\n"
	"cluster is missing (unlike Proxmox's `vma verify`, an archive cut at an\n"
	"extent boundary fails) and, for vmaback's archives, that each drive\n"
	"holds the cluster count its vmaback.json records.\n"
	"\n"
	"With --deep, the chain of a checkpoint (default: the latest) is restored\n"
	"in memory, streaming, and compared with what the backup recorded: each\n"
	"archive file's SHA-256 with its manifest, and every cluster with the\n"
	"digest map (the latest checkpoint: a difference is reported with its\n"
	"drive and offset) or with the map's root hash (older checkpoints). The\n"
	"archives are those the state recorded, or the chain given, oldest first.\n"
	"One ARCHIVE of a set (e.g. in a dump directory, or a copy) names its\n"
	"set and checkpoint itself: that file is read, its size and SHA-256\n"
	"against its checkpoint's manifest, then its clusters, with the rest of\n"
	"the chain as the state records it (also for a full written with -o - or\n"
	"--output-cmd). A file that is not an archive of the set's state (of\n"
	"another set, of none, pruned) is exit 3, saying what it is. A file whose\n"
	"SHA-256 differs does not stop the check: the chain is still decoded, and\n"
	"that file's clusters are compared with the digests the state keeps for\n"
	"its archive, so damage is reported with its drive and offset even where\n"
	"a later archive replaces those clusters (or as a damaged header).\n"
	"\n"
	"With --pubkey, the signature of an archive written with backup --sign\n"
	"is checked, with the public key only (even for an encrypted archive):\n"
	"the SHA-256 and the length of every byte before it, as its key signed\n"
	"them (Ed25519). It proves that a copy, on storage you do not control, is\n"
	"the archive that was written; the content is not decoded.\n"
	"\n"
	"      --deep             verify a checkpoint's chain against the state\n"
	"      --set NAME         the backup set (with --deep)\n"
	"      --state-dir DIR    where sets keep their state\n"
	"      --checkpoint C     the checkpoint to verify (default: the latest)\n"
	"  -q, --quiet            print nothing on success\n"
	"      --key KEYFILE      the secret key of encrypted archives (repeated:\n"
	"                         a chain whose key changed)\n"
	"      --pubkey PUBFILE   check the archive's signature with this public key\n"
	"  -h, --help             show this help\n"
	"\n"
	"Exit status: 0 good, 1 a read error, 2 usage error, 3 invalid, corrupt,\n"
	"truncated or changed archive, or data that differs from the backup (or\n"
	"from what was signed; an archive not signed, or by another key).\n",
};
