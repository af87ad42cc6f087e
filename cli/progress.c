/* progress.c: what a person sees while a backup runs: a progress line per
 * drive on a terminal, vzdump-like INFO lines every 10 s or 10% otherwise,
 * and the same lines with timestamps in --log-file. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"

static FILE *log_file;

int cli_log_open(const char *path, const char **why)
{
	int fd = cli_open_write(path, O_APPEND, why);

	if (fd < 0)
		return -1;
	if (!(log_file = fdopen(fd, "a"))) {
		*why = strerror(errno);
		close(fd);
		return -1;
	}
	return 0;
}

void cli_log_close(void)
{
	if (log_file)
		fclose(log_file);
	log_file = NULL;
}

static __attribute__((format(printf, 1, 0))) void cli_log_vline(const char *fmt, va_list ap)
{
	time_t t = time(NULL);
	struct tm tm;
	char when[32];

	if (!log_file)
		return;
	localtime_r(&t, &tm);
	strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
	fprintf(log_file, "%s ", when);
	vfprintf(log_file, fmt, ap);
	fputc('\n', log_file);
	fflush(log_file);
}

void cli_log_line(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	cli_log_vline(fmt, ap);
	va_end(ap);
}

void cli_info(bool quiet, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	cli_log_vline(fmt, ap);
	va_end(ap);
	if (quiet)
		return;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void cli_progress_init(struct cli_progress *p, enum cli_progress_mode mode)
{
	memset(p, 0, sizeof(*p));
	if (mode == CLI_PROGRESS_AUTO)
		mode = isatty(STDERR_FILENO) ? CLI_PROGRESS_BAR : CLI_PROGRESS_LOG;
	p->mode = mode;
	p->start = vb_clock_monotonic();
	p->last_drive = -1;
	p->phase = "";
}

static void rate(uint64_t bytes, double secs, char *buf, size_t len)
{
	char s[24];

	cli_format_size(secs > 0 ? (uint64_t)((double)bytes / secs) : 0, s, sizeof(s));
	snprintf(buf, len, "%s/s", s);
}

static void log_line(struct cli_progress *p, const struct vb_progress *g, unsigned pct,
		     double el)
{
	char done[32], total[32], rd[48], wr[48];
	bool scan = strcmp(g->phase, "scan") == 0;

	cli_format_size(g->total_done, done, sizeof(done));
	cli_format_size(g->total_size, total, sizeof(total));
	rate(g->bytes_read, el, rd, sizeof(rd));
	rate(g->bytes_out, el, wr, sizeof(wr));
	cli_info(p->mode == CLI_PROGRESS_NONE, "INFO: %s%u%% (%s of %s) in %.0fs, read: %s, "
		 "write: %s", scan ? "finding changes: " : "", pct, done, total, el, rd, wr);
}

static void bar_line(struct cli_progress *p, const struct vb_progress *g, double el)
{
	char done[32], size[32], rt[48], zero[32], eta[32] = "--:--";
	unsigned pct = g->drive_size ? (unsigned)(g->drive_done * 100 / g->drive_size) : 100;
	double r = el > 0 ? (double)g->total_done / el : 0;

	if (r > 0 && g->total_size > g->total_done) {
		unsigned s = (unsigned)((double)(g->total_size - g->total_done) / r);

		snprintf(eta, sizeof(eta), "%u:%02u:%02u", s / 3600, s / 60 % 60, s % 60);
	}
	cli_format_size(g->drive_done, done, sizeof(done));
	cli_format_size(g->drive_size, size, sizeof(size));
	cli_format_size(g->bytes_zero, zero, sizeof(zero));
	rate(g->total_done, el, rt, sizeof(rt));
	fprintf(stderr, "\r\033[K%s %s (%u/%u): %3u%% %s of %s, %s, ETA %s, zero %s",
		strcmp(g->phase, "scan") == 0 ? "scan" : "copy", g->drive_name,
		g->drive_index + 1, g->drive_count, pct, done, size, rt, eta, zero);
	fflush(stderr);
	p->line_open = true;
}

void cli_progress_cb(void *opaque, const struct vb_progress *g)
{
	struct cli_progress *p = opaque;
	double t = vb_clock_monotonic(), el = t - p->start;
	unsigned pct = g->total_size ? (unsigned)(g->total_done * 100 / g->total_size) : 100;
	bool new_drive = (int)g->drive_index != p->last_drive || strcmp(g->phase, p->phase) != 0;

	if (p->mode == CLI_PROGRESS_BAR) {
		if (new_drive && p->line_open)
			fputc('\n', stderr);
		if (new_drive || t - p->last >= 0.2 || g->drive_done == g->drive_size) {
			bar_line(p, g, el);
			p->last = t;
		}
	} else if (strcmp(g->phase, p->phase) != 0 || t - p->last >= 10 ||
		   pct / 10 > p->last_pct / 10) {
		/* Log lines go to stderr (never stdout: it may carry the archive)
		 * unless quiet, and to the log file in any case. */
		log_line(p, g, pct, el);
		p->last = t;
		p->last_pct = pct;
	}
	p->last_drive = (int)g->drive_index;
	p->phase = g->phase;
}

void cli_progress_done(struct cli_progress *p)
{
	if (p->line_open)
		fputc('\n', stderr);
	p->line_open = false;
}
