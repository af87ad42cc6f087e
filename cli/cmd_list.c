/* cmd_list.c: `vmaback list`: Proxmox's `vma list` lines, or JSON; reads
 * only the header. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "cli/cli.h"

static const struct option list_options[] = {
	{ "json", no_argument, NULL, 'j' },
	CLI_KEY_OPTION,
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};


static void list_text(struct vb_archive *a)
{
	struct vma_reader *r = vb_archive_vma(a);
	time_t t = (time_t)vma_reader_ctime(r);
	char tbuf[64];

	for (unsigned i = 0; i < vma_reader_config_count(r); i++) {
		const struct vma_config_info *c = vma_reader_config(r, i);

		printf("CFG: size: %zu name: ", c->len);
		cli_put_esc(stdout, c->name);
		putchar('\n');
	}
	for (unsigned i = 0; i < vma_reader_device_count(r); i++) {
		const struct vma_device_info *d = vma_reader_device(r, i);

		/* as Proxmox's `vma list`: the RAM state is no drive */
		if (strcmp(d->name, "vmstate") == 0) {
			printf("VMSTATE: dev_id=%u memory: %llu\n", d->dev_id,
			       (unsigned long long)d->size);
			continue;
		}
		printf("DEV: dev_id=%u size: %llu devname: ", d->dev_id,
		       (unsigned long long)d->size);
		cli_put_esc(stdout, d->name);
		putchar('\n');
	}
	if (!ctime_r(&t, tbuf))
		snprintf(tbuf, sizeof(tbuf), "%lld\n", (long long)t);
	printf("CTIME: %s", tbuf);
}

static json_object *meta_json(struct vma_reader *r)
{
	const struct vma_config_info *c = vma_reader_config_by_name(r, "vmaback.json");

	if (!c)
		return NULL;
	return json_tokener_parse(c->len ? (const char *)c->data : "null");
}

static void list_json(struct vb_archive *a)
{
	struct vma_reader *r = vb_archive_vma(a);
	json_object *o = json_object_new_object();
	json_object *cfgs = json_object_new_array(), *devs = json_object_new_array();
	char u[37];
	uint8_t uuid[VMA_UUID_LEN];

	vma_reader_uuid(r, uuid);
	vb_uuid_format(uuid, u);
	json_object_object_add(o, "uuid", json_object_new_string(u));
	json_object_object_add(o, "ctime", json_object_new_int64(vma_reader_ctime(r)));
	json_object_object_add(o, "compression", json_object_new_string(
				       vb_compression_name(vb_archive_compression(a))));
	for (unsigned i = 0; i < vma_reader_config_count(r); i++) {
		const struct vma_config_info *c = vma_reader_config(r, i);
		json_object *x = json_object_new_object();

		json_object_object_add(x, "name", json_object_new_string(c->name));
		json_object_object_add(x, "size", json_object_new_uint64(c->len));
		json_object_array_add(cfgs, x);
	}
	for (unsigned i = 0; i < vma_reader_device_count(r); i++) {
		const struct vma_device_info *d = vma_reader_device(r, i);
		json_object *x = json_object_new_object();

		json_object_object_add(x, "dev_id", json_object_new_int((int)d->dev_id));
		json_object_object_add(x, "name", json_object_new_string(d->name));
		json_object_object_add(x, "type", json_object_new_string(
					       strcmp(d->name, "vmstate") == 0 ? "vmstate" : "drive"));
		json_object_object_add(x, "size", json_object_new_uint64(d->size));
		json_object_array_add(devs, x);
	}
	json_object_object_add(o, "configs", cfgs);
	json_object_object_add(o, "devices", devs);
	json_object_object_add(o, "vmaback", meta_json(r));
	cli_json_print(stdout, o, JSON_C_TO_STRING_PRETTY);
	json_object_put(o);
}

static int list_run(int argc, char **argv)
{
	struct cli_getopt g = { .cmd = "list", .shortopts = ":jh", .longopts = list_options };
	struct vb_error err = { 0 };
	struct vb_archive *a;
	bool json = false;
	int ch;

	while ((ch = cli_getopt(&g, argc, argv)) != -1) {
		if (ch == 'j')
			json = true;
		else if (ch == CLI_OPT_KEY && cli_key_load("list", optarg) != EXIT_OK)
			return EXIT_USAGE;
		else if (ch == CLI_OPT_KEY)
			continue;
		else if (ch == 'h')
			return cli_help(&cmd_list);
		else
			return cli_bad_option("list", argv, ch);
	}
	if (optind + 1 != argc)
		return cli_usage("list", "expected one ARCHIVE (a file, or - for standard input)");
	a = vb_archive_open(argv[optind], &err);
	if (!a)
		return cli_fail("list", &err);
	if (json)
		list_json(a);
	else
		list_text(a);
	vb_archive_free(a);
	return cli_close_stdout(EXIT_OK);
}

const struct command cmd_list = {
	.name = "list",
	.options = list_options,
	.run = list_run,
	.summary = "list the configs and drives of an archive",
	.help =
	"Usage: vmaback list [--json] [--key KEYFILE] ARCHIVE\n"
	"\n"
	"Prints what an archive holds, in the lines of Proxmox's `vma list`:\n"
	"  CFG: size: LEN name: NAME\n"
	"  DEV: dev_id=ID size: BYTES devname: NAME\n"
	"  VMSTATE: dev_id=ID memory: BYTES   (Proxmox's RAM state, not a drive)\n"
	"  CTIME: TIME\n"
	"Sizes are as the header declares them (rounded up to 512 bytes); the\n"
	"exact sizes are in the vmaback.json config of vmaback's archives.\n"
	"ARCHIVE is a file or '-' for standard input, plain VMA or compressed\n"
	"with zstd, gzip or lzop (detected by content). Only the header is read.\n"
	"Names are printed escaped: control characters, '\\', bytes that are not\n"
	"UTF-8 and C1 controls as \\xNN (one per byte), so each entry is one line.\n"
	"\n"
	"      --json   one JSON object: uuid, ctime, compression, configs,\n"
	"               devices (dev_id, name, size, type: drive or vmstate),\n"
	"               and the vmaback.json metadata (or null); valid\n"
	"               UTF-8: a byte that is not UTF-8 becomes U+FFFD\n"
	"      --key KEYFILE\n"
	"               the secret key of an encrypted archive\n"
	"  -h, --help   show this help\n"
	"\n"
	"Exit status: 0 success, 2 usage error, 3 not a valid archive.\n",
};
