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

enum { OPT_COMPRESS = 256, OPT_ZLEVEL, OPT_ZTHREADS, OPT_JSON };

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
		case 'h':
			return -1;
		default:
			return cli_usage(CMD, "bad option");
		}
	}
	if (optind < argc)
		return cli_usage(CMD, "unexpected argument '%s'", argv[optind]);
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

/* The output stack: a file or standard output, with zstd in front if asked. */
static struct vb_writer *open_output(const struct backup_args *a, struct vb_error *err)
{
	struct vb_writer *sink, *top;

	if (strcmp(a->out, "-") == 0) {
		sink = vb_sink_fd_new(STDOUT_FILENO, "standard output", err);
	} else {
		sink = vb_sink_file_new(a->out, a->force, err);
		if (sink)
			cli_set_temp_path(vb_sink_file_temp_path(sink));
	}
	if (!sink || !a->compress)
		return sink;
	top = vb_zstd_writer_new(sink, a->zlevel, a->zthreads, err);
	if (!top)
		vb_writer_discard(sink);
	return top;
}

static void summary(const struct backup_args *a, const struct vb_backup_result *r)
{
	bool to_stdout = strcmp(a->out, "-") == 0;
	char total[32], rd[32], zero[32], arch[32], uuid[40];
	struct stat st;
	long long out_bytes = -1;

	if (!to_stdout && stat(a->out, &st) == 0)
		out_bytes = (long long)st.st_size;
	snprintf(uuid, sizeof(uuid), "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
		 "%02x%02x%02x%02x%02x%02x", r->uuid[0], r->uuid[1], r->uuid[2], r->uuid[3],
		 r->uuid[4], r->uuid[5], r->uuid[6], r->uuid[7], r->uuid[8], r->uuid[9],
		 r->uuid[10], r->uuid[11], r->uuid[12], r->uuid[13], r->uuid[14], r->uuid[15]);
	if (a->json) {
		json_object *o = json_object_new_object();

		json_object_object_add(o, "status", json_object_new_string("ok"));
		json_object_object_add(o, "archive", json_object_new_string(a->out));
		json_object_object_add(o, "uuid", json_object_new_string(uuid));
		json_object_object_add(o, "kind", json_object_new_string("full"));
		json_object_object_add(o, "drives", json_object_new_int((int)r->drives));
		json_object_object_add(o, "total_size", json_object_new_uint64(r->total_size));
		json_object_object_add(o, "bytes_read", json_object_new_uint64(r->bytes_read));
		json_object_object_add(o, "bytes_zero", json_object_new_uint64(r->bytes_zero));
		json_object_object_add(o, "clusters", json_object_new_uint64(r->clusters));
		json_object_object_add(o, "archive_bytes",
				       json_object_new_uint64(r->archive_bytes));
		json_object_object_add(o, "output_bytes", out_bytes >= 0 ?
				       json_object_new_int64(out_bytes) : NULL);
		json_object_object_add(o, "seconds", json_object_new_double(r->seconds));
		fprintf(to_stdout ? stderr : stdout, "%s\n",
			json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
						       JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(o);
	}
	if (a->quiet)
		return;
	cli_format_size(r->total_size, total, sizeof(total));
	cli_format_size(r->bytes_read, rd, sizeof(rd));
	cli_format_size(r->bytes_zero, zero, sizeof(zero));
	cli_format_size(out_bytes >= 0 ? (uint64_t)out_bytes : r->archive_bytes, arch,
			sizeof(arch));
	fprintf(stderr, "vmaback: backup: %u drive%s, %s: read %s, %s zero or holes "
		"not stored; archive %s %s in %.1fs\n", r->drives, r->drives == 1 ? "" : "s",
		total, rd, zero, to_stdout ? "(standard output)" : a->out, arch, r->seconds);
}

static int run(int argc, char **argv)
{
	struct backup_args a = { 0 };
	struct vb_backup_opts o = { 0 };
	struct vb_backup_result res;
	struct vb_backup *b = NULL;
	struct vb_writer *out;
	struct vb_error err = { 0 };
	int status = parse(&a, argc, argv);

	if (status == -1) {
		status = cli_help(&cmd_backup);
		goto out;
	}
	if (status)
		goto out;
	o.drives = a.drives;
	o.ndrives = a.ndrives;
	o.configs = a.configs;
	o.nconfigs = a.nconfigs;
	o.cancel = &cli_interrupted;
	b = vb_backup_prepare(&o, &err);
	if (!b || !(out = open_output(&a, &err))) {
		status = cli_fail(CMD, &err);
		goto out;
	}
	if (vb_backup_run(b, out, &res, &err) < 0) {
		cli_set_temp_path(NULL);
		status = cli_fail(CMD, &err);
		goto out;
	}
	cli_set_temp_path(NULL);
	summary(&a, &res);
	status = cli_close_stdout(EXIT_OK);
out:
	vb_backup_free(b);
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
