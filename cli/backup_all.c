/* backup_all.c: `vmaback backup --all` (every running libvirt domain;
 * with --include-stopped every domain, the stopped ones read offline from
 * their images) or `--domains A,B`: one domain after the other (as vzdump
 * --all), each a whole run of its own: its own set named after it, its own
 * lock, its own archive and log in the dump directory; one summary line
 * per domain, and a failed exit status when any failed. */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/backup_opts.h"

#define CMD "backup"

/* What names one domain, or one archive, and so cannot go with --all. */
static const char *const refused[] = {
	"--domain", "--set", "--qmp", "--qga", "--drive", "--output", "--output-cmd", "--vmid",
	"--checkpoint", "--since", "--config-file", NULL,
};

static bool is_opt(const char *arg, const char *opt)
{
	size_t n = strlen(opt);

	return strncmp(arg, opt, n) == 0 && (arg[n] == '\0' || arg[n] == '=');
}

bool backup_all_asked(int argc, char **argv)
{
	for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
		if (strcmp(argv[i], "--all") == 0 || is_opt(argv[i], "--domains"))
			return true;
	return false;
}

/* --domains A,B,C: the names, malloc'd; n 0 for an empty list. */
static int split_list(const char *list, char ***names, size_t *n)
{
	char *copy = strdup(list), *save = NULL;

	*names = calloc(strlen(list) / 2 + 2, sizeof(**names));
	*n = 0;
	if (!copy || !*names) {
		free(copy);
		return cli_usage(CMD, "out of memory");
	}
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
		if (!((*names)[(*n)++] = strdup(t))) {
			free(copy);
			return cli_usage(CMD, "out of memory");
		}
	free(copy);
	if (*n == 0)
		return cli_usage(CMD, "--domains %s: no domain named", list);
	return 0;
}

/* The value of option opt on the command line, or NULL. */
static const char *value_of(int argc, char **argv, const char *opt)
{
	const char *v = NULL;
	size_t n = strlen(opt);

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], opt) == 0 && i + 1 < argc)
			v = argv[++i];
		else if (strncmp(argv[i], opt, n) == 0 && argv[i][n] == '=')
			v = argv[i] + n + 1;
	}
	return v;
}

static int check(int argc, char **argv)
{
	bool all = false, list = false;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		all = all || strcmp(a, "--all") == 0;
		list = list || is_opt(a, "--domains");
		for (const char *const *r = refused; *r; r++)
			if (is_opt(a, *r))
				return cli_usage(CMD, "%s does not go with --all: each running domain "
						 "is backed up into its own set, named after it", *r);
		if (a[0] == '-' && (a[1] == 'd' || a[1] == 'o'))
			return cli_usage(CMD, "%.2s does not go with --all: each running domain is "
					 "backed up whole into the dump directory", a);
	}
	if (all && list)
		return cli_usage(CMD, "give either --all or --domains LIST, not both");
	if (!value_of(argc, argv, "--dumpdir"))
		return cli_usage(CMD, "%s needs --dumpdir DIR: one archive per domain",
				 all ? "--all" : "--domains");
	return 0;
}

static void report(bool json, const char *dom, int status)
{
	fprintf(stderr, "vmaback: %s --all: domain %s: %s", CMD, dom, status ? "failed" : "ok");
	if (status)
		fprintf(stderr, " (exit status %d)", status);
	fputc('\n', stderr);
	if (json && status) {
		json_object *o = json_object_new_object();

		json_object_object_add(o, "status", json_object_new_string("failed"));
		json_object_object_add(o, "domain", json_object_new_string(dom));
		json_object_object_add(o, "set", json_object_new_string(dom));
		json_object_object_add(o, "exit_status", json_object_new_int(status));
		cli_json_print(stdout, o, JSON_C_TO_STRING_PLAIN);
		json_object_put(o);
	}
	fflush(stdout);
}

/* One run of one(argc', argv') per domain: the command line without
 * --all, with --domain D --set D (and a name template naming the set,
 * when none is given). */
int backup_all(int argc, char **argv, int (*one)(int, char **))
{
	struct vb_error err = { 0 };
	const char *uri = value_of(argc, argv, "--connect"), *list;
	bool json = false, tmpl = value_of(argc, argv, "--name-template") != NULL, stopped = false;
	char **doms = NULL, **av = NULL;
	size_t n = 0, failed = 0;
	int status = check(argc, argv), ac;

	if (status)
		return status;
	for (int i = 1; i < argc; i++)
		stopped = stopped || strcmp(argv[i], "--include-stopped") == 0;
	list = value_of(argc, argv, "--domains");
	if (list && (status = split_list(list, &doms, &n)) != 0)
		goto out;
	if (!list && vb_libvirt_domains(uri, stopped, &doms, &n, &err) < 0)
		return cli_fail(CMD, &err);
	av = calloc((size_t)argc + 8, sizeof(*av));
	if (!av) {
		status = cli_usage(CMD, "out of memory");
		goto out;
	}
	for (int i = 1; i < argc; i++)
		json = json || strcmp(argv[i], "--json") == 0;
	if (n == 0)
		fprintf(stderr, "vmaback: %s --all: libvirt%s%s %s no domain\n", CMD,
			uri ? " at " : "", uri ? uri : "", stopped ? "has" : "runs");
	for (size_t k = 0; k < n && !cli_interrupted; k++) {
		struct vb_error e = { 0 };

		ac = 0;
		for (int i = 0; i < argc; i++) {
			if (i > 0 && strcmp(argv[i], "--domains") == 0)
				i++;
			else if (i == 0 || (strcmp(argv[i], "--all") != 0 &&
					    !is_opt(argv[i], "--domains")))
				av[ac++] = argv[i];
		}
		av[ac++] = "--domain";
		av[ac++] = doms[k];
		av[ac++] = "--set";
		av[ac++] = doms[k];
		if (!tmpl) {
			av[ac++] = "--name-template";
			av[ac++] = "vmaback-{set}-{date}";
		}
		av[ac] = NULL;
		if (vb_set_name_check(doms[k], &e) < 0)
			status = cli_usage(CMD, "domain %s: %s", doms[k], e.msg);
		else
			status = one(ac, av);
		failed += status != 0;
		report(json, doms[k], status);
	}
	fprintf(stderr, "vmaback: %s --all: %zu domain%s, %zu ok, %zu failed\n", CMD, n,
		n == 1 ? "" : "s", n - failed, failed);
	status = cli_interrupted ? 128 + cli_interrupted : failed ? EXIT_FAIL : EXIT_OK;
out:
	for (size_t k = 0; k < n; k++)
		free(doms[k]);
	free(doms);
	free(av);
	return status;
}
