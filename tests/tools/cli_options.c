/* cli_options.c: prints each command's real option table (its getopt_long
 * array, struct command's options), "COMMAND --NAME" a line, for the
 * completion tests (t_completions.sh): what they check is what the CLI
 * parses, not a list kept by hand. Usage: cli_options [COMMAND]. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

int main(int argc, char **argv)
{
	int found = 0;

	for (const struct command *const *c = cli_commands; *c; c++) {
		if (argc > 1 && strcmp(argv[1], (*c)->name) != 0)
			continue;
		found = 1;
		for (const struct option *o = (*c)->options; o && o->name; o++)
			printf("%s --%s\n", (*c)->name, o->name);
	}
	if (!found) {
		fprintf(stderr, "cli_options: no command %s\n", argc > 1 ? argv[1] : "");
		return 2;
	}
	return fflush(stdout) == 0 ? 0 : 1;
}
