/* keys.c: the keys of encrypted archives on the command line: --key of the
 * commands that read archives, `vmaback key` (create, public, id) and
 * `vmaback decrypt`. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "cli/cli.h"

#define MAX_KEYS 8

/* The command line's keys: read once, used by every archive opened. */
static const struct vb_key *keys[MAX_KEYS];
static struct vb_input_opts key_opts = { .keys = keys };

char *cli_read_passphrase(const char *cmd, const char *path)
{
	FILE *f = fopen(path, "re");
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;

	if (!f) {
		cli_usage(cmd, "passphrase file %s: %s", path, strerror(errno));
		return NULL;
	}
	n = getline(&line, &cap, f);
	fclose(f);
	if (n > 0 && line[n - 1] == '\n')
		line[--n] = '\0';
	if (n <= 0) {
		if (line)
			OPENSSL_cleanse(line, cap);
		free(line);
		cli_usage(cmd, "passphrase file %s: empty", path);
		return NULL;
	}
	return line;
}

static struct vb_key *load_key(const char *cmd, const char *path, const char *pass_file,
			       int *status)
{
	const char *env = pass_file ? pass_file : getenv("VMABACK_PASSPHRASE_FILE");
	char *pass = env && *env ? cli_read_passphrase(cmd, env) : NULL;
	struct vb_error err = { 0 };
	struct vb_key *k;

	if (env && *env && !pass) {
		*status = EXIT_USAGE;
		return NULL;
	}
	k = vb_key_load(path, pass, &err);
	if (pass) {
		OPENSSL_cleanse(pass, strlen(pass));
		free(pass);
	}
	if (!k)
		*status = cli_fail(cmd, &err);
	return k;
}

int cli_key_load(const char *cmd, const char *path)
{
	int status = EXIT_OK;
	struct vb_key *k;

	if (key_opts.nkeys == MAX_KEYS)
		return cli_usage(cmd, "--key: at most %d keys", MAX_KEYS);
	k = load_key(cmd, path, NULL, &status);
	if (!k)
		return status;
	keys[key_opts.nkeys++] = k;
	vb_input_set_default(&key_opts);
	return EXIT_OK;
}

struct vb_key *cli_secret_load(const char *cmd, const char *path)
{
	int status;

	return load_key(cmd, path, NULL, &status);
}

const struct vb_input_opts *cli_keys(void)
{
	return key_opts.nkeys ? &key_opts : NULL;
}

struct vb_pubkey *cli_pubkey_load(const char *cmd, const char *path)
{
	struct vb_error err = { 0 };
	struct vb_pubkey *p = vb_pubkey_load(path, &err);
	const char *env = getenv("VMABACK_PASSPHRASE_FILE");
	struct vb_key *k;
	int status;

	if (p || !env || !*env) {
		if (!p)
			cli_fail(cmd, &err);
		return p;
	}
	/* a passphrase-protected secret key */
	if (!(k = load_key(cmd, path, NULL, &status)))
		return NULL;
	p = vb_pubkey_dup(vb_key_public(k));
	vb_key_free(k);
	if (!p)
		cli_warn(cmd, "out of memory");
	return p;
}

/* ------------------------------------------------------------ vmaback key */

enum { OPT_PASSPHRASE_FILE = 256, OPT_PAPER };

static const struct option key_options[] = {
	{ "passphrase-file", required_argument, NULL, OPT_PASSPHRASE_FILE },
	{ "paper", no_argument, NULL, OPT_PAPER },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int key_create(const char *path, const char *pass_file, bool paper)
{
	struct vb_error err = { 0 };
	struct vb_key *k = vb_key_generate(&err);
	char *pass = NULL, id[2 * VB_KEY_ID_LEN + 1];
	int rc;

	if (!k)
		return cli_fail("key", &err);
	if (pass_file && !(pass = cli_read_passphrase("key", pass_file))) {
		vb_key_free(k);
		return EXIT_USAGE;
	}
	rc = vb_key_save(k, path, pass, paper ? stdout : NULL, &err);
	if (pass) {
		OPENSSL_cleanse(pass, strlen(pass));
		free(pass);
	}
	vb_key_id_hex(vb_pubkey_id(vb_key_public(k)), id);
	vb_key_free(k);
	if (rc < 0)
		return cli_fail("key", &err);
	if (!paper)
		printf("%s\n", id);
	return cli_close_stdout(EXIT_OK);
}

static int key_public(const char *path, const char *out, const char *pass_file)
{
	struct vb_error err = { 0 };
	int status = EXIT_OK;
	struct vb_key *k = load_key("key", path, pass_file, &status);

	if (!k)
		return status;
	if (vb_pubkey_save(vb_key_public(k), out, &err) < 0)
		status = cli_fail("key", &err);
	vb_key_free(k);
	return status;
}

static int key_id(const char *path, const char *pass_file)
{
	struct vb_error err = { 0 };
	struct vb_pubkey *p = pass_file ? NULL : vb_pubkey_load(path, &err);
	struct vb_key *k = NULL;
	char id[2 * VB_KEY_ID_LEN + 1];
	int status = EXIT_OK;

	if (!p) {
		/* a passphrase-protected secret key */
		err = (struct vb_error){ 0 };
		if (!(k = load_key("key", path, pass_file, &status)))
			return status;
	}
	vb_key_id_hex(vb_pubkey_id(p ? p : vb_key_public(k)), id);
	vb_pubkey_free(p);
	vb_key_free(k);
	printf("%s\n", id);
	return cli_close_stdout(EXIT_OK);
}

static int key_run(int argc, char **argv)
{
	struct cli_getopt g = { .cmd = "key", .shortopts = ":h", .longopts = key_options };
	const char *pass_file = NULL, *sub;
	bool paper = false;
	int ch, n;

	while ((ch = cli_getopt(&g, argc, argv)) != -1) {
		if (ch == OPT_PASSPHRASE_FILE)
			pass_file = optarg;
		else if (ch == OPT_PAPER)
			paper = true;
		else if (ch == 'h')
			return cli_help(&cmd_key);
		else
			return cli_bad_option("key", argv, ch);
	}
	n = argc - optind;
	sub = n > 0 ? argv[optind] : "";
	if (strcmp(sub, "create") == 0 && n == 2)
		return key_create(argv[optind + 1], pass_file, paper);
	if (paper)
		return cli_usage("key", "--paper is an option of key create");
	if (strcmp(sub, "public") == 0 && n == 3)
		return key_public(argv[optind + 1], argv[optind + 2], pass_file);
	if (strcmp(sub, "id") == 0 && n == 2)
		return key_id(argv[optind + 1], pass_file);
	return cli_usage("key", "expected create KEYFILE, public KEYFILE PUBFILE or id KEYFILE");
}

const struct command cmd_key = {
	.name = "key",
	.options = key_options,
	.run = key_run,
	.summary = "create an encryption key, export its public part, show its id",
	.help =
	"Usage: vmaback key create KEYFILE [--passphrase-file FILE] [--paper]\n"
	"       vmaback key public KEYFILE PUBFILE [--passphrase-file FILE]\n"
	"       vmaback key id KEYFILE|PUBFILE [--passphrase-file FILE]\n"
	"\n"
	"create writes a new random secret key to KEYFILE (mode 0600, never\n"
	"replacing a file) and prints its key id. With --passphrase-file the key\n"
	"is wrapped with the passphrase on the first line of FILE (scrypt,\n"
	"N=2^15, r=8, p=1): reading it then needs that passphrase\n"
	"(VMABACK_PASSPHRASE_FILE for the commands that take --key). --paper\n"
	"prints the key file's text on standard output to keep on paper: typed\n"
	"back into a file (dashes and spaces do not matter), it is the key again.\n"
	"\n"
	"public writes the public part of KEYFILE to PUBFILE: a host that backs\n"
	"up with --recipient PUBFILE can encrypt but never decrypt.\n"
	"\n"
	"id prints the key id of a secret or public key file: the id an\n"
	"encrypted archive names in its header, and the state records.\n"
	"\n"
	"Key files are text; keep a copy of the secret key away from the backups:\n"
	"without it, the encrypted archives cannot be read.\n"
	"\n"
	"      --passphrase-file FILE  the passphrase, on the first line of FILE\n"
	"      --paper           create: print the key to keep on paper\n"
	"  -h, --help            show this help\n"
	"\n"
	"Exit status: 0 success, 1 failure, 2 usage error (a file exists, a wrong\n"
	"passphrase, not a key file).\n"
	"\n"
	"Example:\n"
	"  vmaback key create /root/backup.key --paper | lp\n"
	"  vmaback key public /root/backup.key /etc/vmaback/backup.pub\n",
};

/* ------------------------------------------------------------ vmaback decrypt */

static const struct option decrypt_options[] = {
	CLI_KEY_OPTION,
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int decrypt_run(int argc, char **argv)
{
	struct cli_getopt g = { .cmd = "decrypt", .shortopts = ":h", .longopts = decrypt_options };
	struct vb_error err = { 0 };
	int ch, status;

	while ((ch = cli_getopt(&g, argc, argv)) != -1) {
		if (ch == CLI_OPT_KEY) {
			if ((status = cli_key_load("decrypt", optarg)) != EXIT_OK)
				return status;
		} else if (ch == 'h') {
			return cli_help(&cmd_decrypt);
		} else {
			return cli_bad_option("decrypt", argv, ch);
		}
	}
	if (optind + 1 != argc)
		return cli_usage("decrypt", "expected one ARCHIVE (a file, or - for standard input)");
	if (isatty(STDOUT_FILENO))
		return cli_usage("decrypt", "standard output is a terminal: redirect it");
	if (vb_input_decrypt_to(argv[optind], cli_keys(), STDOUT_FILENO, &err) < 0)
		return cli_fail("decrypt", &err);
	return EXIT_OK;
}

const struct command cmd_decrypt = {
	.name = "decrypt",
	.options = decrypt_options,
	.run = decrypt_run,
	.summary = "write an encrypted archive's plain form to standard output",
	.help =
	"Usage: vmaback decrypt --key KEYFILE ARCHIVE > PLAIN\n"
	"\n"
	"Writes the archive as it was before encryption (a .vma.zst, or a .vma\n"
	"with --compress none) on standard output, for Proxmox's tools (zstd -d |\n"
	"vma extract) or for any reader. ARCHIVE - is standard input. Every chunk\n"
	"is checked before its bytes are written; a wrong key, a damaged, missing\n"
	"or moved chunk stops with exit 3 naming its offset, and what was written\n"
	"so far must be thrown away.\n"
	"\n"
	"      --key KEYFILE     the secret key (see vmaback key)\n"
	"  -h, --help            show this help\n"
	"\n"
	"Exit status: 0 success, 1 failure, 2 usage error (no key for the archive),\n"
	"3 a wrong key, or a damaged or truncated archive.\n"
	"\n"
	"Example:\n"
	"  vmaback decrypt --key backup.key vm100.vma.zst.enc | zstd -d | vma extract - /r\n",
};
