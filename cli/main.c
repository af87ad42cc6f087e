/* main.c: vmaback's entry point: global options, then the subcommand from
 * the dispatch table, which parses its own options. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"


static const struct command *find(const char *name)
{
	for (const struct command *const *c = cli_commands; *c; c++)
		if (strcmp((*c)->name, name) == 0)
			return *c;
	return NULL;
}

static int usage(FILE *f)
{
	fprintf(f, "Usage: vmaback COMMAND [OPTIONS]\n"
		   "Back up the disks of a virtual machine into one Proxmox-compatible\n"
		   "VMA archive, and read such archives.\n\nCommands:\n");
	for (const struct command *const *c = cli_commands; *c; c++)
		fprintf(f, "  %-12s %s\n", (*c)->name, (*c)->summary);
	fprintf(f, "  %-12s %s\n", "help", "show the help of a command");
	fprintf(f, "\nOptions: --help, --version.  'vmaback help COMMAND' or\n"
		   "'vmaback COMMAND --help' describes a command.\n\n"
		   "Exit status: 0 success, 1 failure, 2 usage error, 3 invalid or corrupt\n"
		   "archive, 4 locked by another run, 128+N interrupted by signal N.\n");
	return f == stdout ? cli_close_stdout(EXIT_OK) : EXIT_USAGE;
}

static int help(int argc, char **argv)
{
	const struct command *c;

	if (argc < 2 || strcmp(argv[1], "help") == 0)
		return usage(stdout);
	c = find(argv[1]);
	if (!c)
		return cli_usage(NULL, "unknown command '%s'", argv[1]);
	return cli_help(c);
}

int main(int argc, char **argv)
{
	const struct command *c;
	static char prog[64];
	int rc;

	cli_signals_install();
	opterr = 0; /* commands report bad options themselves, once */
	if (argc < 2)
		return usage(stderr);
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
		return usage(stdout);
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
		printf("vmaback %s\n", VB_VERSION);
		return cli_close_stdout(EXIT_OK);
	}
	if (strcmp(argv[1], "help") == 0)
		return help(argc - 1, argv + 1);
	c = find(argv[1]);
	if (!c)
		return cli_usage(NULL, "unknown command '%s'", argv[1]);
	/* getopt names the program in its messages: "vmaback backup: ..." */
	snprintf(prog, sizeof(prog), "vmaback %s", c->name);
	argv[1] = prog;
	cli_signals_engine_polls(c->polls_cancel);
	cli_warnings_style(c->name, false);
	rc = c->run(argc - 1, argv + 1);
	cli_warnings_end();
	/* A signal that came once the work was done (the archive published,
	 * the checkpoint committed) changes nothing: say so, and exit 0, so that
	 * no caller takes a committed backup for a failed one. */
	if (cli_interrupted && rc == EXIT_OK)
		fprintf(stderr, "vmaback: %s: signal %d came after the work was done; it is "
			"complete\n", c->name, (int)cli_interrupted);
	return rc;
}
