/* cmd_restore.c: `vmaback restore`: a chain of archives onto files,
 * devices, images or NBD exports. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"

enum { OPT_TO = 256, OPT_TARGET, OPT_DEFINE, OPT_CONNECT };

#define DOMAIN_BLOB "libvirt-domain.xml"

static const struct option restore_options[] = {
	{ "to", required_argument, NULL, OPT_TO },
	{ "target", required_argument, NULL, OPT_TARGET },
	{ "drive", required_argument, NULL, 'd' },
	{ "define", required_argument, NULL, OPT_DEFINE },
	{ "connect", required_argument, NULL, OPT_CONNECT },
	{ "force", no_argument, NULL, 'f' },
	{ "quiet", no_argument, NULL, 'q' },
	CLI_KEY_OPTION,
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int grow(void **arr, size_t n, size_t size)
{
	void *p = realloc(*arr, (n + 1) * size);

	if (!p)
		return -1;
	*arr = p;
	return 0;
}

/* A --target that would do nothing, or not what it seems to, is refused
 * before anything is read. */
static int check_targets(const struct vb_restore_target *t, size_t n, const char **select,
			 size_t nselect)
{
	for (size_t i = 0; i < n; i++) {
		size_t j = 0;

		if (strcmp(t[i].path, "-") == 0)
			return cli_usage("restore", "--target %s=-: a drive cannot be restored to "
					 "standard output; name a file (./- for one named '-')",
					 t[i].name);
		while (j < nselect && strcmp(select[j], t[i].name) != 0)
			j++;
		if (nselect && j == nselect)
			return cli_usage("restore", "--target %s: drive %s is not selected by -d; "
					 "add it to -d or drop the --target", t[i].name, t[i].name);
	}
	return 0;
}

/* --define: the domain XML a --domain backup stored, from the newest
 * archive (read before the restore: a bad archive fails it early). */
static int domain_xml(const char *path, char **xml)
{
	struct vb_error err = { 0 };
	struct vb_archive *a;
	const struct vma_config_info *c;

	if (strcmp(path, "-") == 0)
		return cli_usage("restore", "--define reads the newest archive's %s first: "
				 "give it as a file, not -", DOMAIN_BLOB);
	if (!(a = vb_archive_open(path, &err)))
		return cli_fail("restore", &err);
	c = vma_reader_config_by_name(vb_archive_vma(a), DOMAIN_BLOB);
	*xml = c ? strndup((const char *)c->data, c->len) : NULL;
	vb_archive_free(a);
	if (!c)
		return cli_usage("restore", "--define: %s holds no %s (not a backup of a libvirt "
				 "domain, --domain)", path, DOMAIN_BLOB);
	return *xml ? 0 : cli_usage("restore", "out of memory");
}

/* Defines the domain after the restore: the images are in place. */
static int define(const char *uri, const char *xml, const char *name, const char *dir)
{
	struct vb_error err = { 0 };
	struct vb_warnings w = { .fn = cli_on_warning };
	int rc = vb_libvirt_define(uri, xml, name, dir, &w, &err);

	if (rc < 0)
		return cli_fail("restore", &err);
	fprintf(stderr, "vmaback: restore: defined domain %s in libvirt, its disks the restored "
		"images in %s\n", name, dir);
	return 0;
}

static int restore_run(int argc, char **argv)
{
	static const int repeatable[] = { OPT_TARGET, 'd', CLI_OPT_KEY, 0 };
	struct cli_getopt g = { .cmd = "restore", .shortopts = ":d:fqh",
				  .longopts = restore_options, .repeatable = repeatable };
	struct vb_restore_opts o = { .cancel = &cli_interrupted };
	struct vb_restore_target *targets = NULL;
	const char **select = NULL;
	struct vb_restore_result res;
	struct vb_error err = { 0 };
	bool quiet = false;
	int ch, status = EXIT_OK;
	char written[32], *xml = NULL;
	const char *def = NULL, *uri = NULL;

	while ((ch = cli_getopt(&g, argc, argv)) != -1) {
		switch (ch) {
		case OPT_TO:
			o.dir = optarg;
			break;
		case OPT_TARGET: {
			char *eq = strchr(optarg, '=');

			if (!eq || eq == optarg || !eq[1]) {
				status = cli_usage("restore", "--target %s: expected NAME=PATH", optarg);
				goto out;
			}
			if (grow((void **)&targets, o.ntargets, sizeof(*targets)) < 0)
				goto nomem;
			*eq = '\0';
			targets[o.ntargets].name = optarg;
			targets[o.ntargets++].path = eq + 1;
			break;
		}
		case 'd':
			if ((status = cli_add_names("restore", "-d", &select, &o.nselect, optarg)))
				goto out;
			break;
		case OPT_DEFINE:
			def = optarg;
			break;
		case OPT_CONNECT:
			uri = optarg;
			break;
		case 'f':
			o.force = true;
			break;
		case 'q':
			quiet = true;
			break;
		case CLI_OPT_KEY:
			if ((status = cli_key_load("restore", optarg)) != EXIT_OK)
				goto out;
			break;
		case 'h':
			status = cli_help(&cmd_restore);
			goto out;
		default:
			status = cli_bad_option("restore", argv, ch);
			goto out;
		}
	}
	if (optind >= argc) {
		status = cli_usage("restore", "expected the archives of a chain, oldest first");
		goto out;
	}
	if (!o.dir && o.ntargets == 0) {
		status = cli_usage("restore", "expected --to DIR or --target NAME=PATH");
		goto out;
	}
	if ((status = check_targets(targets, o.ntargets, select, o.nselect)) != 0)
		goto out;
	if ((def || uri) && (!def || !o.dir || o.ntargets)) {
		status = cli_usage("restore", "%s", !def ? "--connect goes with --define NAME" :
				   "--define NAME needs --to DIR (and no --target): the domain's "
				   "disks are DIR/disk-DRIVE.raw");
		goto out;
	}
	if (def && (status = domain_xml(argv[argc - 1], &xml)) != 0)
		goto out;
	o.archives = (const char *const *)argv + optind;
	o.narchives = (size_t)(argc - optind);
	o.targets = targets;
	o.select = select;
	if (vb_restore(&o, &res, &err) < 0) {
		status = cli_fail("restore", &err);
		goto out;
	}
	if (!quiet) {
		cli_format_size(res.bytes_written, written, sizeof(written));
		fprintf(stderr, "vmaback: restore: %u drive%s restored from %u archive%s (%llu "
			"clusters, %s written)%s%s\n", res.drives, res.drives == 1 ? "" : "s",
			res.archives, res.archives == 1 ? "" : "s",
			(unsigned long long)res.clusters, written, o.dir ? " into " : "",
			o.dir ? o.dir : "");
	}
	if (def && (status = define(uri, xml, def, o.dir)) != 0)
		goto out;
	status = cli_close_stdout(EXIT_OK);
	goto out;
nomem:
	status = cli_usage("restore", "out of memory");
out:
	free(xml);
	free(targets);
	free(select);
	return status;
}

const struct command cmd_restore = {
	.name = "restore",
	.options = restore_options,
	.run = restore_run,
	.polls_cancel = true,
	.summary = "restore a full archive and its incrementals",
	.help =
	"Usage: vmaback restore [OPTIONS] FULL [INCREMENTAL|DIFFERENTIAL ...]\n"
	"                       (--to DIR | --target NAME=PATH ...)\n"
	"       vmaback restore [OPTIONS] FULL [...] --to DIR --define NAME [--connect URI]\n"
	"\n"
	"Restores the drives as they were at the newest archive given: a full\n"
	"archive followed by incremental or differential archives of the same\n"
	"backup set, oldest first. The chain is checked before anything is\n"
	"written (each archive's parent is among the ones before it, the order is\n"
	"right, no archive is given twice, the drives match). The archives are\n"
	"read once, side by side, and each cluster is written once, from the\n"
	"newest archive that holds it. Archives are files or '-' (one of them),\n"
	"plain or compressed.\n"
	"\n"
	"      --to DIR            write DIR/disk-NAME.raw sparse files (DIR is\n"
	"                          created if missing)\n"
	"      --target NAME=PATH  write drive NAME to PATH: a block device (all of\n"
	"                          the drive is written, zeros included) or a file;\n"
	"                          qcow2:PATH (also vmdk:, vdi:, vhdx:) creates a new\n"
	"                          image of the drive's size with qemu-img and\n"
	"                          writes it through qemu-nbd, zeros as NBD zero\n"
	"                          requests (as sparse as the source); an NBD URI\n"
	"                          overwrites that export (needs --force)\n"
	"  -d, --drive NAME[,...]  restore only these drives\n"
	"      --define NAME       then define libvirt domain NAME from the newest\n"
	"                          archive's libvirt-domain.xml (a --domain backup):\n"
	"                          its own UUID and MAC addresses, its disks the\n"
	"                          restored raw images in DIR, found through the\n"
	"                          archive's vmaback:drives whatever -d named them\n"
	"                          (a disk not restored is left out, with a note);\n"
	"                          never replaces a domain of that name\n"
	"      --connect URI       libvirt's connection URI for --define\n"
	"  -f, --force             replace existing files; write to block devices\n"
	"  -q, --quiet             print only errors\n"
	"      --key KEYFILE       the secret key of encrypted archives (repeated:\n"
	"                          a chain whose key changed)\n"
	"  -h, --help              show this help\n"
	"\n"
	"New files are written under hidden temporary names and renamed only when\n"
	"the whole restore succeeded; existing files are never replaced without\n"
	"--force. Two drives onto one file or device (by path, inode or the\n"
	"device a node names) are refused, --force or not. A block device that\n"
	"fails halfway holds a partial restore.\n"
	"Exit status: 0 success, 1 failure, 2 usage error or a broken chain,\n"
	"3 invalid or corrupt archive.\n"
	"\n"
	"Example:\n"
	"  vmaback restore full.vma.zst inc1.vma.zst inc2.vma.zst --to /restore\n"
	"  vmaback restore web1-full.vma.zst web1-inc.vmainc.zst \\\n"
	"      --to /srv/restore/web1 --define web1-restored\n",
};
