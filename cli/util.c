/* util.c: messages, exit statuses and parsers shared by every command of
 * the command line. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <getopt.h>
#include <limits.h>
#include <sys/stat.h>

#include "cli/cli.h"

void cli_warn(const char *cmd, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;

	char shown[4 * sizeof(msg)];

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* Names in messages come from archives and directories too: no control
	 * character reaches the terminal or starts a line of its own. */
	vb_printable(msg, false, shown, sizeof(shown));
	fflush(stdout);
	fprintf(stderr, "vmaback: %s%s%s\n", cmd ? cmd : "", cmd ? ": " : "", shown);
	cli_log_line("ERROR: %s%s%s", cmd ? cmd : "", cmd ? ": " : "", shown);
}

int cli_fail(const char *cmd, const struct vb_error *err)
{
	cli_warn(cmd, "%s", err->msg[0] ? err->msg : "failed");
	if (cli_interrupted) /* whatever failed, the signal is why */
		return 128 + cli_interrupted;
	switch (err->cls) {
	case VB_E_USAGE:
		return EXIT_USAGE;
	case VB_E_INVALID:
		return EXIT_INVALID;
	case VB_E_LOCKED:
		return EXIT_LOCKED;
	case VB_E_CANCELED:
		return 128 + (cli_interrupted ? cli_interrupted : SIGINT);
	default:
		return EXIT_FAIL;
	}
}

int cli_usage(const char *cmd, const char *fmt, ...)
{
	char msg[2048], shown[4 * sizeof(msg)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	vb_printable(msg, false, shown, sizeof(shown));
	fprintf(stderr, "vmaback: %s%s%s", cmd ? cmd : "", cmd ? ": " : "", shown);
	fprintf(stderr, "\nTry 'vmaback %s%s--help'.\n", cmd ? cmd : "", cmd ? " " : "");
	return EXIT_USAGE;
}

int cli_help(const struct command *c)
{
	fputs(c->help, stdout);
	return cli_close_stdout(EXIT_OK);
}

bool cli_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!s || *s < '0' || *s > '9')
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end != '\0' || v < min || v > max)
		return false;
	*out = v;
	return true;
}

void cli_format_size(uint64_t bytes, char *buf, size_t len)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
	double v = (double)bytes;
	unsigned u = 0;

	while (v >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%llu B", (unsigned long long)bytes);
	else
		snprintf(buf, len, "%.1f %s", v, units[u]);
}

int cli_close_stdout(int status)
{
	if (fflush(stdout) != 0 || ferror(stdout)) {
		if (status == EXIT_OK) {
			fprintf(stderr, "vmaback: write error on standard output: %s\n",
				strerror(errno));
			return EXIT_FAIL;
		}
	}
	return status;
}

int cli_parse_mode(const char *s, enum vb_mode *m)
{
	static const enum vb_mode all[] = { VB_MODE_AUTO, VB_MODE_FULL, VB_MODE_INCREMENTAL,
					    VB_MODE_DIFFERENTIAL };

	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		if (strcmp(s, vb_mode_name(all[i])) == 0) {
			*m = all[i];
			return 0;
		}
	}
	return -1;
}

int cli_parse_rate(const char *s, uint64_t *bytes_per_second)
{
	uint64_t v, mult = 1024; /* a bare number is KiB/s, as vzdump's bwlimit */
	const char *p = s;
	char num[32];
	size_t n = 0;

	while (*p >= '0' && *p <= '9' && n + 1 < sizeof(num))
		num[n++] = *p++;
	num[n] = '\0';
	if (!cli_parse_uint(num, 1, UINT64_C(1) << 40, &v))
		return -1;
	switch (*p) {
	case 'k': case 'K': mult = UINT64_C(1) << 10; p++; break;
	case 'm': case 'M': mult = UINT64_C(1) << 20; p++; break;
	case 'g': case 'G': mult = UINT64_C(1) << 30; p++; break;
	case 't': case 'T': mult = UINT64_C(1) << 40; p++; break;
	case 'b': case 'B': mult = 1; p++; break;
	default: break;
	}
	if (mult != 1 && (strncmp(p, "iB", 2) == 0 || *p == 'B'))
		p += *p == 'B' ? 1 : 2;
	if (strcmp(p, "/s") == 0)
		p += 2;
	if (*p != '\0' || v > UINT64_MAX / mult)
		return -1;
	*bytes_per_second = v * mult;
	return 0;
}

int cli_bad_option(const char *cmd, char **argv, int ch)
{
	const char *arg = optind > 0 ? argv[optind - 1] : "?";

	if (ch == CLI_OPT_TWICE) /* cli_getopt said why */
		return EXIT_USAGE;

	/* getopt is quiet (opterr = 0, optstrings start with ':'): one
	 * message, naming the option. */
	if (ch == ':')
		return cli_usage(cmd, "option '%s' needs an argument", arg);
	if (arg[0] == '-' && arg[1] == '-' && strchr(arg, '='))
		return cli_usage(cmd, "option '%.*s' takes no argument or is unknown",
				 (int)(strchr(arg, '=') - arg), arg);
	if (optopt && !(arg[0] == '-' && arg[1] == '-'))
		return cli_usage(cmd, "unrecognized option '-%c'", optopt);
	return cli_usage(cmd, "unrecognized option '%s'", arg);
}

int cli_open_write(const char *path, int flags, const char **why)
{
	/* O_NONBLOCK: opening a FIFO for writing would otherwise wait for a
	 * reader; it is cleared again once the file is known to be regular. */
	int fd = open(path, flags | O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY |
		      O_NONBLOCK, 0600);
	struct stat st;

	*why = NULL;
	if (fd < 0) {
		*why = errno == ELOOP ? "is a symbolic link (vmaback writes through none: "
					"remove it or name the file itself)" :
		       errno == ENXIO ? "is not a regular file (vmaback writes only into "
					"regular files)" : strerror(errno);
		return -1;
	}
	if (fstat(fd, &st) < 0) {
		*why = strerror(errno);
	} else if (!S_ISREG(st.st_mode)) {
		*why = "is not a regular file (vmaback writes only into regular files)";
	} else if (fcntl(fd, F_SETFL, flags & O_APPEND) < 0) {
		*why = strerror(errno);
	} else {
		return fd;
	}
	close(fd);
	return -1;
}

/* "-o/--output", "--set" or "-q": how the user may have written it. */
static void option_name(const struct cli_getopt *g, int val, char *buf, size_t len)
{
	const char *lng = NULL;

	for (const struct option *o = g->longopts; o->name; o++)
		if (o->val == val) {
			lng = o->name;
			break;
		}
	if (val < 256 && lng)
		snprintf(buf, len, "-%c/--%s", val, lng);
	else if (lng)
		snprintf(buf, len, "--%s", lng);
	else
		snprintf(buf, len, "-%c", val);
}

int cli_getopt(struct cli_getopt *g, int argc, char **argv)
{
	int ch = getopt_long(argc, argv, g->shortopts, g->longopts, NULL);
	size_t i;
	char name[64];

	if (ch == -1 || ch == '?' || ch == ':' || !optarg)
		return ch; /* flags may repeat: a second --quiet changes nothing */
	for (i = 0; g->repeatable && g->repeatable[i]; i++)
		if (g->repeatable[i] == ch)
			return ch;
	for (i = 0; i < g->nseen; i++)
		if (g->seen[i].val == ch)
			break;
	if (i < g->nseen) {
		/* A second value would silently replace the first: which one the
		 * user meant is not ours to guess. */
		option_name(g, ch, name, sizeof(name));
		cli_usage(g->cmd, "%s given twice ('%s' and '%s'); give it once", name,
			  g->seen[i].arg, optarg);
		return CLI_OPT_TWICE;
	}
	if (g->nseen < sizeof(g->seen) / sizeof(g->seen[0])) {
		g->seen[g->nseen].val = ch;
		g->seen[g->nseen++].arg = optarg;
	}
	return ch;
}

int cli_add_names(const char *cmd, const char *opt, const char ***names, size_t *n, char *arg)
{
	const char *given = arg;
	char *save = NULL;

	/* -d '' or -d a,,b would select nothing more than without them: the
	 * user meant a name that is not there. */
	if (!*arg || *arg == ',' || arg[strlen(arg) - 1] == ',' || strstr(arg, ",,"))
		return cli_usage(cmd, "%s '%s': an empty drive name", opt, given);
	for (char *tok = strtok_r(arg, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		const char **p;

		for (size_t i = 0; i < *n; i++)
			if (strcmp((*names)[i], tok) == 0)
				return cli_usage(cmd, "%s: drive %s given twice", opt, tok);
		p = realloc(*names, (*n + 1) * sizeof(*p));
		if (!p)
			return cli_usage(cmd, "out of memory");
		*names = p;
		(*names)[(*n)++] = tok;
	}
	return 0;
}
