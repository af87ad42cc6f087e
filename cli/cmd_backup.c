/* cmd_backup.c: `vmaback backup`: options into a backup transaction, the
 * output stack (file, stdout, zstd), and the summary. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "cli/cli.h"

#define CMD "backup"

enum {
	OPT_COMPRESS = 256, OPT_ZLEVEL, OPT_ZTHREADS, OPT_JSON, OPT_SET, OPT_STATE_DIR,
	OPT_MODE, OPT_SINCE, OPT_CHECKPOINT, OPT_NO_COMMIT, OPT_BWLIMIT,
};

static const struct option options[] = {
	{ "drive", required_argument, NULL, 'd' },
	{ "config", required_argument, NULL, 'c' },
	{ "output", required_argument, NULL, 'o' },
	{ "force", no_argument, NULL, 'f' },
	{ "compress", required_argument, NULL, OPT_COMPRESS },
	{ "zstd-level", required_argument, NULL, OPT_ZLEVEL },
	{ "zstd-threads", required_argument, NULL, OPT_ZTHREADS },
	{ "quiet", no_argument, NULL, 'q' },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "set", required_argument, NULL, OPT_SET },
	{ "state-dir", required_argument, NULL, OPT_STATE_DIR },
	{ "mode", required_argument, NULL, OPT_MODE },
	{ "since", required_argument, NULL, OPT_SINCE },
	{ "checkpoint", required_argument, NULL, OPT_CHECKPOINT },
	{ "no-commit", no_argument, NULL, OPT_NO_COMMIT },
	{ "bwlimit", required_argument, NULL, OPT_BWLIMIT },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

struct backup_args {
	struct vb_drive *drives;
	size_t ndrives;
	const char **configs;
	size_t nconfigs;
	const char *out;
	bool force, quiet, json;
	int compress;        /* -1 from the name, 0 none, 1 zstd */
	int zlevel, zthreads;
	const char *set, *state_dir, *since, *checkpoint;
	enum vb_mode mode;
	bool no_commit;
	uint64_t bwlimit;
};

static bool ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);

	return a >= b && strcmp(s + a - b, suffix) == 0;
}

static int add_drive(struct backup_args *a, char *arg)
{
	char *eq = strchr(arg, '=');
	struct vb_drive *d;

	if (!eq)
		return cli_usage(CMD, "--drive %s: expected NAME=PATH", arg);
	if (a->ndrives >= VMA_MAX_DEVICES)
		return cli_usage(CMD, "more than %u drives; an archive holds at most %u",
				 VMA_MAX_DEVICES, VMA_MAX_DEVICES);
	d = realloc(a->drives, (a->ndrives + 1) * sizeof(*d));
	if (!d)
		return cli_usage(CMD, "out of memory");
	a->drives = d;
	*eq = '\0';
	a->drives[a->ndrives].name = arg;
	a->drives[a->ndrives].spec = eq + 1;
	a->ndrives++;
	return 0;
}

static int add_config(struct backup_args *a, const char *path)
{
	const char **c = realloc(a->configs, (a->nconfigs + 1) * sizeof(*c));

	if (!c)
		return cli_usage(CMD, "out of memory");
	a->configs = c;
	a->configs[a->nconfigs++] = path;
	return 0;
}

static int parse(struct backup_args *a, int argc, char **argv)
{
	uint64_t v;
	int ch;

	a->compress = -1;
	a->zlevel = 3;
	a->zthreads = (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (a->zthreads < 1)
		a->zthreads = 1;
	while ((ch = getopt_long(argc, argv, "d:c:o:fqh", options, NULL)) != -1) {
		switch (ch) {
		case 'd':
			if (add_drive(a, optarg))
				return EXIT_USAGE;
			break;
		case 'c':
			if (add_config(a, optarg))
				return EXIT_USAGE;
			break;
		case 'o':
			a->out = optarg;
			break;
		case 'f':
			a->force = true;
			break;
		case 'q':
			a->quiet = true;
			break;
		case OPT_JSON:
			a->json = true;
			break;
		case OPT_COMPRESS:
			if (strcmp(optarg, "none") == 0)
				a->compress = 0;
			else if (strcmp(optarg, "zstd") == 0)
				a->compress = 1;
			else
				return cli_usage(CMD, "--compress %s: expected none or zstd", optarg);
			break;
		case OPT_ZLEVEL:
			if (!cli_parse_uint(optarg, 1, 19, &v))
				return cli_usage(CMD, "--zstd-level %s: expected 1 to 19", optarg);
			a->zlevel = (int)v;
			break;
		case OPT_ZTHREADS:
			if (!cli_parse_uint(optarg, 0, 256, &v))
				return cli_usage(CMD, "--zstd-threads %s: expected 0 to 256", optarg);
			a->zthreads = (int)v;
			break;
		case OPT_SET:
			a->set = optarg;
			break;
		case OPT_STATE_DIR:
			a->state_dir = optarg;
			break;
		case OPT_MODE:
			if (cli_parse_mode(optarg, &a->mode) < 0)
				return cli_usage(CMD, "--mode %s: expected full, incremental, "
						 "differential or auto", optarg);
			break;
		case OPT_SINCE:
			a->since = optarg;
			break;
		case OPT_CHECKPOINT:
			a->checkpoint = optarg;
			break;
		case OPT_NO_COMMIT:
			a->no_commit = true;
			break;
		case OPT_BWLIMIT:
			if (cli_parse_rate(optarg, &a->bwlimit) < 0)
				return cli_usage(CMD, "--bwlimit %s: expected a rate such as 50M, "
						 "800K or 1G per second (a bare number is KiB/s)",
						 optarg);
			break;
		case 'h':
			return -1;
		default:
			return cli_usage(CMD, "bad option");
		}
	}
	if (optind < argc)
		return cli_usage(CMD, "unexpected argument '%s'", argv[optind]);
	if (!a->set && (a->state_dir || a->since || a->checkpoint || a->no_commit ||
			a->mode == VB_MODE_INCREMENTAL || a->mode == VB_MODE_DIFFERENTIAL))
		return cli_usage(CMD, "--state-dir, --since, --checkpoint, --no-commit and "
				 "incremental or differential modes need --set NAME");
	if (a->ndrives == 0)
		return cli_usage(CMD, "no drive given (--drive NAME=PATH)");
	if (!a->out)
		return cli_usage(CMD, "no output given (-o FILE, or -o - for standard output)");
	if (strcmp(a->out, "-") == 0 && isatty(STDOUT_FILENO))
		return cli_usage(CMD, "refusing to write an archive to a terminal");
	if (a->compress == -1) {
		if (ends_with(a->out, ".gz") || ends_with(a->out, ".lzo"))
			return cli_usage(CMD, "%s: vmaback compresses with zstd only (.vma.zst)",
					 a->out);
		a->compress = ends_with(a->out, ".zst");
	}
	return 0;
}

/* Where the archive goes: a file (published atomically) or standard output. */
static struct vb_writer *open_sink(const struct backup_args *a, struct vb_error *err)
{
	struct vb_writer *sink;

	if (strcmp(a->out, "-") == 0)
		return vb_sink_fd_new(STDOUT_FILENO, "standard output", err);
	sink = vb_sink_file_new(a->out, a->force, err);
	if (sink)
		cli_set_temp_path(vb_sink_file_temp_path(sink));
	return sink;
}

static void hexstr(const uint8_t *d, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static const char *ckpt_state(const struct vb_backup_result *r)
{
	if (!r->checkpoint[0])
		return "none";
	return r->pending ? "pending" : "committed";
}

static void summary_json(const struct backup_args *a, const struct vb_backup_result *r,
			 const char *uuid, const char *sha)
{
	bool to_stdout = strcmp(a->out, "-") == 0;
	json_object *o = json_object_new_object();

	json_object_object_add(o, "status", json_object_new_string("ok"));
	json_object_object_add(o, "archive", json_object_new_string(a->out));
	json_object_object_add(o, "uuid", json_object_new_string(uuid));
	json_object_object_add(o, "sha256", json_object_new_string(sha));
	json_object_object_add(o, "kind", json_object_new_string(r->kind));
	json_object_object_add(o, "set", a->set ? json_object_new_string(a->set) : NULL);
	json_object_object_add(o, "checkpoint", r->checkpoint[0] ?
			       json_object_new_string(r->checkpoint) : NULL);
	json_object_object_add(o, "checkpoint_state", json_object_new_string(ckpt_state(r)));
	json_object_object_add(o, "drives", json_object_new_int((int)r->drives));
	json_object_object_add(o, "total_size", json_object_new_uint64(r->total_size));
	json_object_object_add(o, "bytes_read", json_object_new_uint64(r->bytes_read));
	json_object_object_add(o, "bytes_zero", json_object_new_uint64(r->bytes_zero));
	json_object_object_add(o, "clusters", json_object_new_uint64(r->clusters));
	json_object_object_add(o, "dirty_clusters", json_object_new_uint64(r->dirty_clusters));
	json_object_object_add(o, "archive_bytes", json_object_new_uint64(r->archive_bytes));
	json_object_object_add(o, "output_bytes", json_object_new_uint64(r->output_bytes));
	json_object_object_add(o, "seconds", json_object_new_double(r->seconds));
	fprintf(to_stdout ? stderr : stdout, "%s\n",
		json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
					       JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
}

static void summary(const struct backup_args *a, const struct vb_backup_result *r)
{
	bool to_stdout = strcmp(a->out, "-") == 0;
	char total[32], rd[32], zero[32], arch[32], uuid[40], sha[65];

	snprintf(uuid, sizeof(uuid), "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
		 "%02x%02x%02x%02x%02x%02x", r->uuid[0], r->uuid[1], r->uuid[2], r->uuid[3],
		 r->uuid[4], r->uuid[5], r->uuid[6], r->uuid[7], r->uuid[8], r->uuid[9],
		 r->uuid[10], r->uuid[11], r->uuid[12], r->uuid[13], r->uuid[14], r->uuid[15]);
	hexstr(r->sha256, 32, sha);
	if (a->json)
		summary_json(a, r, uuid, sha);
	if (a->quiet)
		return;
	cli_format_size(r->total_size, total, sizeof(total));
	cli_format_size(r->bytes_read, rd, sizeof(rd));
	cli_format_size(r->bytes_zero, zero, sizeof(zero));
	cli_format_size(r->output_bytes, arch, sizeof(arch));
	fprintf(stderr, "vmaback: backup: %s backup of %u drive%s (%s) in %.1fs: read %s, "
		"%s zero or holes not stored", r->kind, r->drives, r->drives == 1 ? "" : "s",
		total, r->seconds, rd, zero);
	if (strcmp(r->kind, "full") != 0)
		fprintf(stderr, ", %llu changed clusters", (unsigned long long)r->dirty_clusters);
	fprintf(stderr, "\nvmaback: backup: archive %s, %s, uuid %s\n",
		to_stdout ? "(standard output)" : a->out, arch, uuid);
	if (r->checkpoint[0] && !r->pending)
		fprintf(stderr, "vmaback: backup: checkpoint %s of set %s committed\n",
			r->checkpoint, a->set);
	if (r->pending)
		fprintf(stderr, "vmaback: backup: checkpoint %s of set %s is pending: run "
			"'vmaback commit --set %s %s' once the archive is stored\n",
			r->checkpoint, a->set, a->set, r->checkpoint);
}

static void print_notes(const struct backup_args *a, const char *notes)
{
	const char *p = notes;

	while (!a->quiet && *p) {
		size_t n = strcspn(p, "\n");

		fprintf(stderr, "vmaback: backup: %.*s\n", (int)n, p);
		p += n + (p[n] == '\n');
	}
}

static int run(int argc, char **argv)
{
	struct backup_args a = { 0 };
	struct vb_backup_opts o = { 0 };
	struct vb_backup_result res;
	struct vb_backup *b = NULL;
	struct vb_state *state = NULL;
	struct vb_writer *sink;
	struct vb_error err = { 0 };
	char *dir = NULL;
	int status = parse(&a, argc, argv);

	if (status == -1) {
		status = cli_help(&cmd_backup);
		goto out;
	}
	if (status)
		goto out;
	if (a.set) {
		dir = a.state_dir ? strdup(a.state_dir) : vb_state_default_dir();
		if (!dir) {
			status = cli_usage(CMD, "no state directory: give --state-dir DIR");
			goto out;
		}
		state = vb_state_open(dir, a.set, &err);
		if (!state) {
			status = cli_fail(CMD, &err);
			goto out;
		}
	}
	o.drives = a.drives;
	o.ndrives = a.ndrives;
	o.configs = a.configs;
	o.nconfigs = a.nconfigs;
	o.cancel = &cli_interrupted;
	o.compress = a.compress == 1;
	o.zstd_level = a.zlevel;
	o.zstd_threads = a.zthreads;
	o.archive_path = strcmp(a.out, "-") == 0 ? NULL : a.out;
	o.state = state;
	o.mode = a.mode;
	o.since = a.since;
	o.checkpoint = a.checkpoint;
	o.no_commit = a.no_commit;
	o.bwlimit = a.bwlimit;
	b = vb_backup_prepare(&o, &err);
	if (state)
		print_notes(&a, vb_state_notes(state));
	if (b)
		print_notes(&a, vb_backup_notes(b));
	if (!b || !(sink = open_sink(&a, &err))) {
		status = cli_fail(CMD, &err);
		goto out;
	}
	if (vb_backup_run(b, sink, &res, &err) < 0) {
		cli_set_temp_path(NULL);
		status = cli_fail(CMD, &err);
		goto out;
	}
	cli_set_temp_path(NULL);
	summary(&a, &res);
	status = cli_close_stdout(EXIT_OK);
out:
	vb_backup_free(b);
	vb_state_close(state);
	free(dir);
	free(a.drives);
	free(a.configs);
	return status;
}

const struct command cmd_backup = {
	.name = "backup",
	.run = run,
	.summary = "back up drives into one VMA archive",
	.help =
	"Usage: vmaback backup --drive NAME=PATH [--drive NAME=PATH ...]\n"
	"                      [--config FILE ...] -o OUT [OPTIONS]\n"
	"\n"
	"Backs up every drive, one after the other, into one VMA archive that\n"
	"Proxmox's `vma extract` can read. All drives are opened and sized before\n"
	"anything is written. OUT is written under a hidden temporary name in its\n"
	"directory (mode 0600) and renamed only when the whole backup succeeded;\n"
	"on any failure nothing is left behind.\n"
	"\n"
	"  -d, --drive NAME=PATH  a drive: NAME becomes the archive's device name\n"
	"                         (Proxmox uses drive-scsi0, drive-virtio1, ...),\n"
	"                         PATH a regular file or a block device; repeat\n"
	"                         for each drive (at most 254), in order\n"
	"  -c, --config FILE      store FILE (at most 65535 bytes) in the archive\n"
	"                         under its base name, e.g. qemu-server.conf\n"
	"  -o, --output OUT       the archive; '-' writes to standard output\n"
	"  -f, --force            replace OUT if it exists\n"
	"      --compress none|zstd\n"
	"                         compression (default: zstd when OUT ends in .zst)\n"
	"      --zstd-level N     zstd level, 1 to 19 (default 3)\n"
	"      --zstd-threads N   zstd worker threads, 0 for none (default: CPUs)\n"
	"  -q, --quiet            print only errors\n"
	"      --json             print the summary as JSON (on stdout, or on\n"
	"                         stderr when the archive goes to stdout)\n"
	"  -h, --help             show this help\n"
	"\n"
	"Holes (SEEK_HOLE) are not read and all-zero 4 KiB blocks are not stored.\n"
	"Exit status: 0 success, 1 the backup failed (nothing was published),\n"
	"2 usage error, 130/143 interrupted by SIGINT/SIGTERM.\n"
	"\n"
	"Examples:\n"
	"  vmaback backup --drive drive-scsi0=/dev/vg0/vm-100-disk-0 \\\n"
	"      --config qemu-server.conf -o /backup/vm100.vma.zst\n"
	"  vmaback backup -d drive-scsi0=disk.raw -o - | ssh host 'cat > vm.vma'\n",
};
