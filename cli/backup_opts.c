/* backup_opts.c: the options of `vmaback backup`, from the command line and
 * from a --config-file, which is the same options written as JSON. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "cli/backup_opts.h"

#define CMD "backup"

enum {
	OPT_COMPRESS = 256, OPT_ZLEVEL, OPT_ZTHREADS, OPT_JSON, OPT_SET, OPT_STATE_DIR,
	OPT_MODE, OPT_SINCE, OPT_CHECKPOINT, OPT_NO_COMMIT, OPT_COMMIT, OPT_BWLIMIT, OPT_OUTPUT_CMD,
	OPT_LOG_FILE, OPT_PROGRESS, OPT_CONFIG_FILE, OPT_BITMAP, OPT_NO_BITMAP,
	OPT_DUMPDIR, OPT_VMID, OPT_NAME_TEMPLATE, OPT_NOTES, OPT_PROTECTED, OPT_HOOK,
	OPT_MAX_CHAIN, OPT_FULL_EVERY, OPT_LOCKWAIT, OPT_THRESHOLD, OPT_QMP, OPT_SCRATCH_DIR,
	OPT_FSFREEZE, OPT_QGA, OPT_DOMAIN, OPT_CONNECT, OPT_INCLUDE_STOPPED, OPT_DOMAINS,
	OPT_ENCRYPT, OPT_RECIPIENT, OPT_SIGN,
};

const struct option backup_options[] = {
	{ "drive", required_argument, NULL, 'd' },
	{ "config", required_argument, NULL, 'c' },
	{ "output", required_argument, NULL, 'o' },
	{ "output-cmd", required_argument, NULL, OPT_OUTPUT_CMD },
	{ "force", no_argument, NULL, 'f' },
	{ "dumpdir", required_argument, NULL, OPT_DUMPDIR },
	{ "vmid", required_argument, NULL, OPT_VMID },
	{ "name-template", required_argument, NULL, OPT_NAME_TEMPLATE },
	{ "notes", required_argument, NULL, OPT_NOTES },
	{ "protected", no_argument, NULL, OPT_PROTECTED },
	{ "compress", required_argument, NULL, OPT_COMPRESS },
	{ "zstd-level", required_argument, NULL, OPT_ZLEVEL },
	{ "zstd-threads", required_argument, NULL, OPT_ZTHREADS },
	{ "bwlimit", required_argument, NULL, OPT_BWLIMIT },
	{ "set", required_argument, NULL, OPT_SET },
	{ "state-dir", required_argument, NULL, OPT_STATE_DIR },
	{ "mode", required_argument, NULL, OPT_MODE },
	{ "since", required_argument, NULL, OPT_SINCE },
	{ "checkpoint", required_argument, NULL, OPT_CHECKPOINT },
	{ "no-commit", no_argument, NULL, OPT_NO_COMMIT },
	{ "commit", no_argument, NULL, OPT_COMMIT },
	{ "bitmap", required_argument, NULL, OPT_BITMAP },
	{ "no-bitmap", no_argument, NULL, OPT_NO_BITMAP },
	{ "quiet", no_argument, NULL, 'q' },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "progress", required_argument, NULL, OPT_PROGRESS },
	{ "log-file", required_argument, NULL, OPT_LOG_FILE },
	{ "config-file", required_argument, NULL, OPT_CONFIG_FILE },
	{ "hook", required_argument, NULL, OPT_HOOK },
	{ "max-chain", required_argument, NULL, OPT_MAX_CHAIN },
	{ "full-every", required_argument, NULL, OPT_FULL_EVERY },
	{ "lockwait", required_argument, NULL, OPT_LOCKWAIT },
	{ "threshold", required_argument, NULL, OPT_THRESHOLD },
	{ "qmp", required_argument, NULL, OPT_QMP },
	{ "scratch-dir", required_argument, NULL, OPT_SCRATCH_DIR },
	{ "fsfreeze", no_argument, NULL, OPT_FSFREEZE },
	{ "qga", required_argument, NULL, OPT_QGA },
	{ "domain", required_argument, NULL, OPT_DOMAIN },
	{ "connect", required_argument, NULL, OPT_CONNECT },
	{ "all", no_argument, NULL, OPT_DOMAINS },
	{ "domains", required_argument, NULL, OPT_DOMAINS },
	{ "include-stopped", no_argument, NULL, OPT_INCLUDE_STOPPED },
	{ "encrypt", required_argument, NULL, OPT_ENCRYPT },
	{ "recipient", required_argument, NULL, OPT_RECIPIENT },
	{ "sign", required_argument, NULL, OPT_SIGN },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/* A usage error in an option's value; one from the --config-file names the
 * file and the key. */
int backup_opt_usage(const struct backup_args *a, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (a->file_key)
		return cli_usage(CMD, "--config-file %s: setting \"%s\": %s", a->config_file,
				 a->file_key, msg);
	return cli_usage(CMD, "%s", msg);
}


static int push(void **arr, size_t *n, size_t size)
{
	void *p = realloc(*arr, (*n + 1) * size);

	if (!p)
		return cli_usage(CMD, "out of memory");
	*arr = p;
	return 0;
}

static int add_drive(struct backup_args *a, char *arg)
{
	char *eq = strchr(arg, '=');

	if (!eq)
		return backup_opt_usage(a, "--drive %s: expected NAME=PATH", arg);
	if (a->drives_from_file) {
		a->ndrives = 0; /* drives on the command line replace the file's */
		a->drives_from_file = false;
	}
	if (a->ndrives >= VMA_MAX_DEVICES)
		return backup_opt_usage(a, "more than %u drives; an archive holds at most %u",
				 VMA_MAX_DEVICES, VMA_MAX_DEVICES);
	if (push((void **)&a->drives, &a->ndrives, sizeof(*a->drives)))
		return EXIT_USAGE;
	*eq = '\0';
	a->drives[a->ndrives].name = arg;
	a->drives[a->ndrives].spec = eq + 1;
	a->drives[a->ndrives].bitmap = NULL;
	a->ndrives++;
	return 0;
}

static int add_config(struct backup_args *a, const char *path)
{
	if (a->configs_from_file) {
		a->nconfigs = 0;
		a->configs_from_file = false;
	}
	if (push((void **)&a->configs, &a->nconfigs, sizeof(*a->configs)))
		return EXIT_USAGE;
	a->configs[a->nconfigs++] = path;
	return 0;
}

static int parse_progress(const char *s, enum cli_progress_mode *m)
{
	static const char *const names[] = { "auto", "bar", "log", "none" };

	for (int i = 0; i < 4; i++)
		if (strcmp(s, names[i]) == 0) {
			*m = (enum cli_progress_mode)i;
			return 0;
		}
	return -1;
}

static int add_bitmap(struct backup_args *a, char *arg)
{
	if (a->bitmaps_from_file) {
		a->nbitmaps = 0;
		a->bitmaps_from_file = false;
	}
	if (!arg[0] || arg[0] == '=' || arg[strlen(arg) - 1] == '=')
		return backup_opt_usage(a, "--bitmap '%s': expected NAME or DRIVE=NAME", arg);
	if (push((void **)&a->bitmaps, &a->nbitmaps, sizeof(*a->bitmaps)))
		return EXIT_USAGE;
	a->bitmaps[a->nbitmaps++] = arg;
	return 0;
}

/* One option; returns 0, -1 for --help, or an exit status. */
static int option(struct backup_args *a, int ch, char *arg)
{
	uint64_t v;

	switch (ch) {
	case 'd':
		return add_drive(a, arg);
	case 'c':
		return add_config(a, arg);
	case 'o':
		a->out = arg;
		return 0;
	case OPT_OUTPUT_CMD:
		a->output_cmd = arg;
		return 0;
	case OPT_DUMPDIR:
		a->dumpdir = arg;
		return 0;
	case OPT_VMID:
		if (!cli_parse_uint(arg, 1, 999999999, &v))
			return backup_opt_usage(a, "--vmid %s: expected a number, 1 to 999999999", arg);
		a->vmid = arg;
		return 0;
	case OPT_NAME_TEMPLATE:
		a->name_template = arg;
		return 0;
	case OPT_NOTES:
		a->notes = arg;
		return 0;
	case OPT_PROTECTED:
		a->protect = true;
		return 0;
	case 'f':
		a->force = true;
		return 0;
	case 'q':
		a->quiet = true;
		return 0;
	case OPT_JSON:
		a->json = true;
		return 0;
	case OPT_COMPRESS:
		if (strcmp(arg, "none") != 0 && strcmp(arg, "zstd") != 0)
			return backup_opt_usage(a, "--compress %s: expected none or zstd", arg);
		a->compress = strcmp(arg, "zstd") == 0;
		return 0;
	case OPT_ZLEVEL:
		if (!cli_parse_uint(arg, 1, 19, &v))
			return backup_opt_usage(a, "--zstd-level %s: expected 1 to 19", arg);
		a->zlevel = (int)v;
		return 0;
	case OPT_ZTHREADS:
		if (!cli_parse_uint(arg, 0, 256, &v))
			return backup_opt_usage(a, "--zstd-threads %s: expected 0 to 256", arg);
		a->zthreads = (int)v;
		return 0;
	case OPT_BWLIMIT:
		if (cli_parse_rate(arg, &a->bwlimit) < 0)
			return backup_opt_usage(a, "--bwlimit %s: expected a rate such as 50M, 800K or 1G "
					 "per second (a bare number is KiB/s)", arg);
		return 0;
	case OPT_SET:
		a->set = arg;
		return 0;
	case OPT_STATE_DIR:
		a->state_dir = arg;
		return 0;
	case OPT_MODE:
		if (cli_parse_mode(arg, &a->mode) < 0)
			return backup_opt_usage(a, "--mode %s: expected full, incremental, differential or "
					 "auto", arg);
		return 0;
	case OPT_SINCE:
		a->since = arg;
		return 0;
	case OPT_CHECKPOINT:
		a->checkpoint = arg;
		return 0;
	case OPT_NO_COMMIT:
		a->no_commit = true;
		return 0;
	case OPT_COMMIT:
		a->commit = true;
		return 0;
	case OPT_BITMAP:
		return add_bitmap(a, arg);
	case OPT_NO_BITMAP:
		a->no_bitmap = true;
		return 0;
	case OPT_PROGRESS:
		if (parse_progress(arg, &a->progress) < 0)
			return backup_opt_usage(a, "--progress %s: expected auto, bar, log or none", arg);
		return 0;
	case OPT_LOG_FILE:
		a->log_file = arg;
		return 0;
	case OPT_CONFIG_FILE:
		return 0; /* read before the command line */
	case OPT_HOOK:
		if (!arg[0])
			return cli_usage(CMD, "--hook: empty command");
		a->hook = arg;
		return 0;
	case OPT_MAX_CHAIN:
		if (!cli_parse_uint(arg, 1, 100000, &v))
			return cli_usage(CMD, "--max-chain %s: expected a number of backups, 1 to "
					 "100000", arg);
		a->max_chain = (unsigned)v;
		return 0;
	case OPT_FULL_EVERY:
		if (!cli_parse_uint(arg, 1, 36500, &v))
			return cli_usage(CMD, "--full-every %s: expected a number of days, 1 to "
					 "36500", arg);
		a->full_every = (int64_t)v * 86400;
		return 0;
	case OPT_THRESHOLD:
		if (cli_parse_rate(arg, &a->threshold) < 0)
			return cli_usage(CMD, "--threshold %s: expected a size such as 100M, 800K or "
					 "1G (a bare number is KiB)", arg);
		return 0;
	case OPT_LOCKWAIT: {
		char *end;

		errno = 0;
		a->lockwait = strtod(arg, &end);
		if (errno || end == arg || *end || !(a->lockwait >= 0 && a->lockwait <= 10080))
			return cli_usage(CMD, "--lockwait %s: expected minutes, 0 to 10080 (1.5 is "
					 "90 seconds)", arg);
		return 0;
	}
	case OPT_QMP:
		a->live.qmp = arg;
		return 0;
	case OPT_SCRATCH_DIR:
		a->live.scratch_dir = arg;
		return 0;
	case OPT_FSFREEZE:
		a->fsfreeze = true;
		return 0;
	case OPT_QGA:
		a->live.qga = arg;
		return 0;
	case OPT_DOMAIN:
		a->live.domain = arg;
		return 0;
	case OPT_CONNECT:
		a->live.connect = arg;
		return 0;
	case OPT_INCLUDE_STOPPED:
		a->include_stopped = true;
		return 0;
	case OPT_DOMAINS: /* backup_all.c's, before these: not from a --config-file */
		return backup_opt_usage(a, "--all and --domains go on the command line only");
	case OPT_ENCRYPT:
		a->encrypt = arg;
		return 0;
	case OPT_RECIPIENT:
		a->recipient = arg;
		return 0;
	case OPT_SIGN:
		a->sign = arg;
		return 0;
	case 'h':
		return -1;
	default:
		return backup_opt_usage(a, "unknown option or missing argument");
	}
}


/* The file's key for the option named opt: lists have plural keys. */
static const char *list_key(const char *opt)
{
	if (strcmp(opt, "drive") == 0)
		return "drives";
	if (strcmp(opt, "config") == 0)
		return "configs";
	if (strcmp(opt, "bitmap") == 0)
		return "bitmaps";
	return opt;
}

/* The JSON key of a --config-file setting that became option val. */
static const char *file_key(int val)
{
	for (const struct option *o = backup_options; o->name; o++)
		if (o->val == val)
			return list_key(o->name);
	return "?";
}

static int getopt_all(struct backup_args *a, int argc, char **argv, bool from_file)
{
	static const int repeatable[] = { 'd', 'c', OPT_BITMAP, 0 };
	struct cli_getopt g = { .cmd = CMD, .shortopts = ":d:c:o:fqh", .longopts = backup_options,
				.repeatable = repeatable };
	int ch, rc;

	optind = 0; /* glibc: start over, this argv may be the second one */
	while ((ch = cli_getopt(&g, argc, argv)) != -1) {
		if (from_file && (ch == '?' || ch == ':'))
			return cli_usage(CMD, "--config-file %s: setting \"%s\" needs a value",
					 a->config_file, argv[optind - 1] + 2);
		if (ch == '?' || ch == ':' || ch == CLI_OPT_TWICE)
			return cli_bad_option(CMD, argv, ch);
		a->file_key = from_file ? file_key(ch) : NULL;
		rc = option(a, ch, optarg);
		a->file_key = NULL;
		if (rc != 0)
			return rc;
	}
	if (optind < argc)
		return cli_usage(CMD, "unexpected argument '%s'", argv[optind]);
	return 0;
}

/* ------------------------------------------------------------ config file */

static int file_arg(struct backup_args *a, const char *key, json_object *v)
{
	char *opt = NULL, *val = NULL;
	char **p;
	int n;

	const struct option *o = backup_options;

	while (o->name && strcmp(o->name, key) != 0)
		o++;
	if (o->name && (o->has_arg == no_argument) != json_object_is_type(v, json_type_boolean))
		return cli_usage(CMD, "--config-file %s: setting \"%s\" %s", a->config_file,
				 list_key(key), o->has_arg == no_argument ? "is true or false" :
				 "needs a value (a string or a number)");
	if (json_object_is_type(v, json_type_boolean)) {
		if (!json_object_get_boolean(v))
			return 0;
	} else if (json_object_is_type(v, json_type_string) ||
		   json_object_is_type(v, json_type_int)) {
		val = strdup(json_object_get_string(v));
	} else {
		return cli_usage(CMD, "--config-file %s: setting \"%s\" must be a string, a "
				 "number or true/false", a->config_file, list_key(key));
	}
	n = asprintf(&opt, "--%s", key);
	p = realloc(a->file_argv, (size_t)(a->file_argc + 3) * sizeof(*p));
	if (n < 0 || !p || (json_object_is_type(v, json_type_string) && !val)) {
		free(opt);
		free(val);
		return cli_usage(CMD, "out of memory");
	}
	a->file_argv = p;
	a->file_argv[a->file_argc++] = opt;
	if (val)
		a->file_argv[a->file_argc++] = val;
	a->file_argv[a->file_argc] = NULL;
	return 0;
}

static bool known_key(const char *key)
{
	for (const struct option *o = backup_options; o->name; o++)
		if (strcmp(o->name, key) == 0 && strcmp(key, "config-file") != 0 &&
		    strcmp(key, "help") != 0)
			return true;
	return false;
}

static int file_to_argv(struct backup_args *a, json_object *root)
{
	static const struct { const char *key, *opt; } lists[] = {
		{ "drives", "drive" }, { "configs", "config" }, { "bitmaps", "bitmap" },
	};

	json_object_object_foreach(root, key, v) {
		const char *opt = key;
		bool list = false;

		for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++)
			if (strcmp(key, lists[i].key) == 0) {
				opt = lists[i].opt;
				list = true;
			}
		if (!known_key(opt))
			return cli_usage(CMD, "%s: unknown setting \"%s\"", a->config_file, key);
		if (!list || !json_object_is_type(v, json_type_array)) {
			if (list)
				return cli_usage(CMD, "%s: \"%s\" must be a list", a->config_file, key);
			if (file_arg(a, opt, v))
				return EXIT_USAGE;
			continue;
		}
		for (size_t i = 0; i < json_object_array_length(v); i++)
			if (file_arg(a, opt, json_object_array_get_idx(v, i)))
				return EXIT_USAGE;
	}
	return 0;
}

static int read_config_file(struct backup_args *a)
{
	json_object *root = cli_load_json_file(CMD, a->config_file);
	int rc;

	if (!root)
		return EXIT_USAGE;
	if (!json_object_is_type(root, json_type_object)) {
		json_object_put(root);
		return cli_usage(CMD, "%s: expected a JSON object of settings", a->config_file);
	}
	a->file_argc = 1;
	a->file_argv = calloc(2, sizeof(char *));
	if (!a->file_argv) {
		json_object_put(root);
		return cli_usage(CMD, "out of memory");
	}
	a->file_argv[0] = strdup("vmaback-config-file");
	rc = file_to_argv(a, root);
	json_object_put(root);
	if (rc)
		return rc;
	rc = getopt_all(a, a->file_argc, a->file_argv, true);
	a->drives_from_file = a->ndrives > 0;
	a->configs_from_file = a->nconfigs > 0;
	a->bitmaps_from_file = a->nbitmaps > 0;
	return rc;
}

/* --config-file is read first, so the command line overrides it. */
static const char *find_config_file(int argc, char **argv)
{
	const char *found = NULL;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			break;
		if (strcmp(argv[i], "--config-file") == 0 && i + 1 < argc)
			found = argv[++i];
		else if (strncmp(argv[i], "--config-file=", 14) == 0)
			found = argv[i] + 14;
	}
	return found;
}

int backup_args_parse(struct backup_args *a, int argc, char **argv)
{
	int rc;

	memset(a, 0, sizeof(*a));
	a->compress = -1;
	a->zlevel = 3;
	a->zthreads = (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (a->zthreads < 1)
		a->zthreads = 1;
	a->config_file = find_config_file(argc, argv);
	if (a->config_file && (rc = read_config_file(a)) != 0)
		return rc;
	rc = getopt_all(a, argc, argv, false);
	return rc ? rc : backup_args_check(a);
}

void backup_args_free(struct backup_args *a)
{
	for (int i = 0; i < a->file_argc; i++)
		free(a->file_argv[i]);
	free(a->file_argv);
	free(a->drives);
	free(a->configs);
	free(a->bitmaps);
	free(a->live.names);
	free(a->live.devices);
	free(a->generated_out);
	free(a->generated_log);
	vb_pubkey_free(a->pubkey);
	vb_key_free(a->sign_key);
}
