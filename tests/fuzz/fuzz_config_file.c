/* fuzz_config_file.c: libFuzzer target for `backup --config-file`: any file
 * is refused as a usage error or parsed to options that pass the command
 * line's own checks. The parser's messages go to /dev/null (stdio's stderr
 * only: the sanitizers and libFuzzer write to descriptor 2). */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/backup_opts.h"

/* tmpfs where there is one: ext4 writes a truncated file back at close */
static char dir[] = "/dev/shm/vb-fuzz-config.XXXXXX";
static char path[sizeof(dir) + 16];

static void cleanup(void)
{
	unlink(path);
	rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	FILE *null = fopen("/dev/null", "w");

	(void)argc;
	(void)argv;
	if (!null)
		abort();
	if (!mkdtemp(dir)) {
		memcpy(dir, "/tmp/vb-fuzz-config.XXXXXX", sizeof("/tmp/vb-fuzz-config.XXXXXX"));
		if (!mkdtemp(dir))
			abort();
	}
	snprintf(path, sizeof(path), "%s/config.json", dir);
	atexit(cleanup);
	stderr = null;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *argv[4] = { strdup("backup"), strdup("--config-file"), strdup(path), NULL };
	struct backup_args a;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	int rc;

	if (fd < 0 || !argv[0] || !argv[1] || !argv[2] ||
	    write(fd, data, size) != (ssize_t)size || close(fd) < 0)
		abort();
	rc = backup_args_parse(&a, 3, argv);
	if (rc != 0 && rc != EXIT_USAGE && rc != EXIT_FAIL)
		abort();
	if (rc == 0) {
		if (a.ndrives == 0 || (!a.out == !a.output_cmd))
			abort(); /* one output, at least one drive */
		/* (an empty drive name passes here: the backup refuses it, with
		 * every other name check, in vb_drive_name_check) */
		for (size_t i = 0; i < a.ndrives; i++)
			if (!a.drives[i].name || !a.drives[i].spec)
				abort();
	}
	backup_args_free(&a);
	for (int i = 0; i < 3; i++)
		free(argv[i]);
	return 0;
}
