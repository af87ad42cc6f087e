/* cmd_serve.c: `vmaback serve`: the newest point of a chain as read-only
 * NBD exports, one per drive, served by nbdkit with vmaback's plugin
 * (nbdkit/vmaback_plugin.c), started here and stopped by a signal. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/serve.h"

#define PLUGIN_NAME "nbdkit-vmaback-plugin.so"
#define STOP_WAIT_S 10

enum { OPT_SOCKET = 0x2000, OPT_PORT, OPT_BIND, OPT_ONCE, OPT_CACHE_DIR, OPT_OVERLAY };

static const struct option options[] = {
	{ "drive", required_argument, NULL, 'd' },
	{ "socket", required_argument, NULL, OPT_SOCKET },
	{ "port", required_argument, NULL, OPT_PORT },
	{ "bind", required_argument, NULL, OPT_BIND },
	{ "once", no_argument, NULL, OPT_ONCE },
	{ "cache-dir", required_argument, NULL, OPT_CACHE_DIR },
	{ "overlay", required_argument, NULL, OPT_OVERLAY },
	{ "quiet", no_argument, NULL, 'q' },
	CLI_KEY_OPTION,
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/* The plugin: $VMABACK_NBDKIT_PLUGIN, else beside the binary (a build
 * tree), else ../lib/vmaback/ from it (an installation). */
static char *find_plugin(void)
{
	const char *env = getenv("VMABACK_NBDKIT_PLUGIN");
	char exe[PATH_MAX], *slash, *p = NULL;
	ssize_t n;

	if (env && *env)
		return strdup(env);
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return NULL;
	exe[n] = 0;
	slash = strrchr(exe, '/');
	if (!slash)
		return NULL;
	*slash = 0;
	if (asprintf(&p, "%s/%s", exe, PLUGIN_NAME) < 0)
		return NULL;
	if (access(p, R_OK) == 0)
		return p;
	free(p);
	if (asprintf(&p, "%s/../lib/vmaback/%s", exe, PLUGIN_NAME) < 0)
		return NULL;
	return p;
}

static int add_export(struct cli_serve *s, const struct vb_meta_drive *d)
{
	size_t n = s->nserved + 1;
	char **a = realloc(s->served, n * sizeof(*a)), **u;
	uint64_t *z;
	int r;

	if (!a)
		return -1;
	s->served = a;
	u = realloc(s->uris, n * sizeof(*u));
	if (!u)
		return -1;
	s->uris = u;
	z = realloc(s->sizes, n * sizeof(*z));
	if (!z)
		return -1;
	s->sizes = z;
	if (s->socket)
		r = asprintf(&s->uris[s->nserved], "nbd+unix:///%s?socket=%s", d->name, s->socket);
	else
		r = asprintf(&s->uris[s->nserved], "nbd://%s:%s/%s", s->bind ? s->bind : "localhost",
			     s->port, d->name);
	if (r < 0)
		s->uris[s->nserved] = NULL;
	s->served[s->nserved] = strdup(d->name);
	s->sizes[s->nserved] = d->size;
	s->nserved++;
	return s->served[s->nserved - 1] && s->uris[s->nserved - 1] ? 0 : -1;
}

/* The index, in a registered temporary of the private directory, for the
 * plugin to read instead of building it again. */
static int save_index(struct cli_serve *s, const struct vb_index *x)
{
	struct vb_error err = { 0 };
	char path[PATH_MAX + 16];

	snprintf(path, sizeof(path), "%s/index", s->tmpdir);
	s->index = vb_tempfile_new(path, &err);
	if (!s->index || vb_index_save(x, vb_tempfile_fd(s->index), &err) < 0)
		return cli_fail("serve", &err);
	return EXIT_OK;
}

/* Opens and indexes the chain once, here: its errors come as vmaback's,
 * with vmaback's exit statuses, before any server starts; the plugin
 * reads the index from the file save_index writes. */
static int check_chain(struct cli_serve *s, double *secs)
{
	struct vb_error err = { 0 };
	double t0 = vb_clock_monotonic();
	struct vb_index *x = vb_index_open((const char *const *)s->archives, s->narchives, &err);
	const struct vb_meta *m;
	int status = EXIT_OK;

	if (!x)
		return cli_fail("serve", &err);
	*secs = vb_clock_monotonic() - t0;
	status = save_index(s, x);
	m = vb_index_meta(x);
	for (size_t i = 0; i < s->nnames && status == EXIT_OK; i++) {
		bool found = false;

		for (size_t k = 0; k < m->ndrives; k++)
			found = found || strcmp(m->drives[k].name, s->names[i]) == 0;
		if (!found)
			status = cli_usage("serve", "the archive has no drive named %s", s->names[i]);
	}
	for (size_t k = 0; k < m->ndrives && status == EXIT_OK; k++) {
		bool chosen = s->nnames == 0 && strcmp(m->drives[k].name, "vmstate") != 0;
		char size[32];

		for (size_t i = 0; i < s->nnames; i++)
			chosen = chosen || strcmp(m->drives[k].name, s->names[i]) == 0;
		if (!chosen)
			continue;
		if (add_export(s, &m->drives[k]) < 0) {
			status = cli_usage("serve", "out of memory");
			break;
		}
		cli_format_size(m->drives[k].size, size, sizeof(size));
		cli_info(s->quiet, "INFO: drive %s (%s, %llu clusters with data) of %s", m->drives[k].name,
			 size, (unsigned long long)vb_index_clusters(x, k),
			 m->checkpoint ? m->checkpoint : m->uuid);
		printf("%s\n", s->uris[s->nserved - 1]);
	}
	vb_index_free(x);
	return status;
}

/* nbdkit's command line. */
static char **nbdkit_argv(const struct cli_serve *s, const char *plugin, const char *pidfile)
{
	size_t n = 0, cap = 16 + s->narchives + s->nnames + s->nkeys;
	char **v = calloc(cap, sizeof(*v));
	bool ok = v != NULL;

	if (!v)
		return NULL;
#define ARG(x) (ok = ok && (v[n++] = strdup(x)) != NULL)
	ARG(getenv("VMABACK_NBDKIT") ? getenv("VMABACK_NBDKIT") : "nbdkit");
	ARG("--foreground");
	ARG("--readonly");
	ARG("--exit-with-parent");
	ARG("--pidfile");
	ARG(pidfile);
	if (s->once)
		ARG("--filter=exitlast");
	if (s->socket) {
		ARG("--unix");
		ARG(s->socket);
	} else {
		ARG("--port");
		ARG(s->port);
		if (s->bind) {
			ARG("--ipaddr");
			ARG(s->bind);
		}
	}
	ARG(plugin);
#undef ARG
	for (size_t i = 0; ok && i < s->narchives; i++)
		ok = asprintf(&v[n++], "archive=%s", s->archives[i]) >= 0;
	for (size_t i = 0; ok && i < s->nnames; i++)
		ok = asprintf(&v[n++], "drive=%s", s->names[i]) >= 0;
	for (size_t i = 0; ok && i < s->nkeys; i++)
		ok = asprintf(&v[n++], "key=%s", s->keys[i]) >= 0;
	if (ok)
		ok = asprintf(&v[n++], "index=%s", vb_tempfile_path(s->index)) >= 0;
	if (!ok) {
		for (size_t i = 0; i < n; i++)
			free(v[i]);
		free(v);
		return NULL;
	}
	return v;
}

static void start_child(char **argv)
{
	struct sigaction sa;
	sigset_t none;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	for (int sig = 1; sig < NSIG; sig++)
		sigaction(sig, &sa, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	/* its own process group: a terminal's ^C reaches vmaback, which stops it */
	setpgid(0, 0);
	execvp(argv[0], argv);
	fprintf(stderr, "vmaback: serve: cannot run %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

static bool pidfile_ready(const char *path)
{
	char buf[32];
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	ssize_t n;

	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf));
	close(fd);
	return n > 0 && memchr(buf, '\n', (size_t)n) != NULL;
}

static void nap(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* Waits for nbdkit: until it is ready (ready true, returns -1 while it
 * runs), or until it exits (its wait status). A signal stops it. */
static int wait_child(struct cli_serve *s, const char *pidfile, bool *ready)
{
	double stop_at = 0;
	int st;

	for (;;) {
		pid_t r = waitpid(s->pid, &st, WNOHANG);

		if (r == s->pid)
			return st;
		if (r < 0 && errno != EINTR)
			return -1;
		if (cli_interrupted && stop_at == 0) {
			kill(s->pid, SIGTERM);
			stop_at = vb_clock_monotonic() + STOP_WAIT_S;
		}
		if (stop_at > 0 && vb_clock_monotonic() > stop_at)
			kill(s->pid, SIGKILL);
		if (!*ready && pidfile_ready(pidfile)) {
			*ready = true;
			return -2;
		}
		nap(*ready ? 100 : 10);
	}
}

/* nbdkit leaves its socket behind; it was not there before (checked). */
static void remove_socket(const struct cli_serve *s)
{
	struct stat st;

	if (s->socket && lstat(s->socket, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(s->socket);
}

/* The private directory and what is left in it. */
static void serve_cleanup(struct cli_serve *s)
{
	vb_tempfile_discard(s->index);
	s->index = NULL;
	rmdir(s->tmpdir);
}

static int serve(struct cli_serve *s)
{
	char *plugin = find_plugin(), pidfile[PATH_MAX + 16], **argv = NULL;
	const char *tmp = getenv("TMPDIR");
	double t0 = vb_clock_monotonic(), index_secs = 0;
	bool ready = false;
	int status, st;

	if (!plugin) {
		cli_warn("serve", "out of memory");
		return EXIT_FAIL;
	}
	if (access(plugin, R_OK) < 0) {
		cli_warn("serve", "the nbdkit plugin %s: %s (set VMABACK_NBDKIT_PLUGIN)", plugin,
			 strerror(errno));
		free(plugin);
		return EXIT_FAIL;
	}
	status = cli_serve_cache(s);
	if (status != EXIT_OK) {
		free(plugin);
		return status;
	}
	/* 0700: nbdkit's pid file and the index */
	snprintf(s->tmpdir, sizeof(s->tmpdir), "%s/vmaback-serve.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(s->tmpdir)) {
		cli_warn("serve", "%s: %s", s->tmpdir, strerror(errno));
		free(plugin);
		return EXIT_FAIL;
	}
	status = check_chain(s, &index_secs);
	if (status == EXIT_OK && s->overlay)
		status = cli_serve_overlays(s);
	if (status == EXIT_OK)
		status = cli_close_stdout(EXIT_OK);
	snprintf(pidfile, sizeof(pidfile), "%s/nbdkit.pid", s->tmpdir);
	argv = status == EXIT_OK ? nbdkit_argv(s, plugin, pidfile) : NULL;
	free(plugin);
	if (!argv) {
		if (status == EXIT_OK) {
			cli_warn("serve", "out of memory");
			status = EXIT_FAIL;
		}
		serve_cleanup(s);
		return status;
	}
	fflush(NULL);
	s->pid = fork();
	if (s->pid == 0)
		start_child(argv);
	for (size_t i = 0; argv[i]; i++)
		free(argv[i]);
	free(argv);
	if (s->pid < 0) {
		cli_warn("serve", "fork: %s", strerror(errno));
		serve_cleanup(s);
		return EXIT_FAIL;
	}
	cli_set_consumer(s->pid);
	st = wait_child(s, pidfile, &ready);
	if (st == -2) {
		/* the plugin has read the index */
		vb_tempfile_discard(s->index);
		s->index = NULL;
		cli_info(s->quiet, "INFO: nbdkit (pid %ld) serves the exports %s%s (index %.3f s, "
			 "ready after %.3f s)%s", (long)s->pid, s->socket ? "on " : "at port ",
			 s->socket ? s->socket : s->port, index_secs, vb_clock_monotonic() - t0,
			 s->once ? "; it ends when the first client disconnects" : "");
		st = wait_child(s, pidfile, &ready);
	}
	cli_set_consumer(0);
	unlink(pidfile);
	serve_cleanup(s);
	remove_socket(s);
	if (st == -1) {
		cli_warn("serve", "waiting for nbdkit: %s", strerror(errno));
		return EXIT_FAIL;
	}
	if (cli_interrupted) {
		/* the way a server is stopped: not an interruption of the work */
		cli_info(s->quiet, "INFO: stopped by signal %d", (int)cli_interrupted);
		cli_interrupted = 0;
		return EXIT_OK;
	}
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0 && ready)
		return EXIT_OK;
	if (WIFEXITED(st))
		cli_warn("serve", "nbdkit exited with status %d%s", WEXITSTATUS(st),
			 ready ? "" : " before it was ready (its message is above)");
	else
		cli_warn("serve", "nbdkit was killed by signal %d", WTERMSIG(st));
	return EXIT_FAIL;
}

static int check_args(struct cli_serve *s, int argc, char **argv)
{
	uint64_t port;

	if (optind >= argc)
		return cli_usage("serve", "expected the archives of a chain: FULL [INCREMENTAL ...]");
	if (!s->socket == !s->port)
		return cli_usage("serve", "give one of --socket PATH or --port N");
	if (s->bind && !s->port)
		return cli_usage("serve", "--bind needs --port");
	if (s->port && !cli_parse_uint(s->port, 1, 65535, &port))
		return cli_usage("serve", "--port %s: not a port number (1 to 65535)", s->port);
	if (s->socket && s->socket[0] != '/' && *s->socket) {
		/* absolute: the URIs (and overlays' backing files) hold it */
		char cwd[PATH_MAX];

		if (!getcwd(cwd, sizeof(cwd)) || asprintf(&s->socket_abs, "%s/%s", cwd, s->socket) < 0)
			return cli_usage("serve", "--socket %s: %s", s->socket, strerror(errno));
		s->socket = s->socket_abs;
	}
	if (s->socket && (strlen(s->socket) >= 108 || !*s->socket))
		return cli_usage("serve", "--socket %s: too long for a unix socket", s->socket);
	if (s->socket && access(s->socket, F_OK) == 0)
		return cli_usage("serve", "--socket %s exists: remove it first", s->socket);
	s->narchives = (size_t)(argc - optind);
	s->archives = calloc(s->narchives, sizeof(*s->archives));
	if (!s->archives)
		return cli_usage("serve", "out of memory");
	for (size_t i = 0; i < s->narchives; i++) {
		s->archives[i] = realpath(argv[optind + (int)i], NULL);
		if (!s->archives[i]) {
			struct vb_error err = { 0 };

			vb_error_set(&err, errno == ENOENT ? VB_E_USAGE : VB_E_FAIL, errno, "%s: %s",
				     argv[optind + (int)i], strerror(errno));
			return cli_fail("serve", &err);
		}
	}
	return EXIT_OK;
}

static int run(int argc, char **argv)
{
	static const int repeatable[] = { 'd', CLI_OPT_KEY, 0 };
	struct cli_getopt g = { .cmd = "serve", .shortopts = ":d:qh", .longopts = options,
				.repeatable = repeatable };
	struct cli_serve s = { 0 };
	int ch, status;

	while ((ch = cli_getopt(&g, argc, argv)) != -1) {
		switch (ch) {
		case 'd':
			if ((status = cli_add_names("serve", "-d", &s.names, &s.nnames, optarg)))
				goto out;
			break;
		case OPT_SOCKET:
			s.socket = optarg;
			break;
		case OPT_PORT:
			s.port = optarg;
			break;
		case OPT_BIND:
			s.bind = optarg;
			break;
		case OPT_ONCE:
			s.once = true;
			break;
		case OPT_CACHE_DIR:
			s.cache_dir = optarg;
			break;
		case OPT_OVERLAY:
			s.overlay = optarg;
			break;
		case 'q':
			s.quiet = true;
			break;
		case CLI_OPT_KEY: {
			char **k = realloc(s.keys, (s.nkeys + 1) * sizeof(*k));

			if (k)
				s.keys = k;
			if ((status = cli_key_load("serve", optarg)) != EXIT_OK)
				goto out;
			if (!k || !(s.keys[s.nkeys] = realpath(optarg, NULL))) {
				status = cli_usage("serve", "--key %s: %s", optarg, strerror(errno));
				goto out;
			}
			s.nkeys++;
			break;
		}
		case 'h':
			status = cli_help(&cmd_serve);
			goto out;
		default:
			status = cli_bad_option("serve", argv, ch);
			goto out;
		}
	}
	status = check_args(&s, argc, argv);
	if (status == EXIT_OK)
		status = serve(&s);
out:
	for (size_t i = 0; i < s.narchives && s.archives; i++)
		free(s.archives[i]);
	free(s.archives);
	for (size_t i = 0; i < s.nkeys; i++)
		free(s.keys[i]);
	free(s.keys);
	for (size_t i = 0; i < s.nserved; i++) {
		free(s.served[i]);
		free(s.uris[i]);
	}
	free(s.served);
	free(s.uris);
	free(s.sizes);
	free(s.names);
	free(s.socket_abs);
	return status;
}

const struct command cmd_serve = {
	.name = "serve",
	.run = run,
	.options = options,
	.polls_cancel = true,
	.summary = "serve a backup point as read-only NBD disks",
	.help =
	"Usage: vmaback serve FULL [INCREMENTAL ...] [-d NAME[,NAME...]]\n"
	"                     (--socket PATH | --port N [--bind ADDR]) [--once]\n"
	"                     [--cache-dir DIR] [--overlay DIR] [--key KEYFILE]\n"
	"\n"
	"Serves the newest point of a chain (a full archive, then its incremental\n"
	"and differential successors, as `restore` takes them) without restoring\n"
	"it: every drive (but Proxmox's vmstate) is a read-only NBD export named\n"
	"after the drive, with block status (holes and zeros). nbdkit serves them,\n"
	"through vmaback's plugin: an index built once, by one pass over the\n"
	"archives' extent headers, maps each cluster to the newest archive holding\n"
	"it (serve builds it and hands it to the plugin in a private 0700\n"
	"directory of $TMPDIR, else /tmp), and a read fetches only the blocks it\n"
	"needs (of a zstd archive, only the frames holding them are decompressed).\n"
	"Plain .vma files and the .vma.zst files this vmaback writes (with a seek\n"
	"table) are read in place; other archives (vzdump's .vma.zst, .vma.gz,\n"
	".vma.lzo) need --cache-dir.\n"
	"Each export's URI is printed on stdout once the chain is checked; the\n"
	"line 'INFO: nbdkit (pid N) serves ...' on stderr says it is ready.\n"
	"A signal (INT, TERM, HUP) stops nbdkit and serve exits 0.\n"
	"\n"
	"  -d, --drive NAME[,NAME...]  serve only these drives\n"
	"      --socket PATH           listen on this unix socket (must not exist)\n"
	"      --port N                listen on this TCP port\n"
	"      --bind ADDR             with --port: listen on this address only\n"
	"      --once                  end when the first client disconnects\n"
	"      --cache-dir DIR         decompress each archive that cannot be read\n"
	"                              at random once into DIR (made 0700 if\n"
	"                              missing) as DIR/vmaback-cache-UUID.vma,\n"
	"                              sparse, reused by later runs; refused when\n"
	"                              DIR has no room\n"
	"      --overlay DIR           also write DIR/NAME.qcow2 for each export: a\n"
	"                              qcow2 overlay whose backing file is the\n"
	"                              export, to start a VM on at once (writes go\n"
	"                              to the overlay; keep serve running)\n"
	"  -q, --quiet                 print only errors (the URIs still on stdout)\n"
	"      --key KEYFILE           the secret key of encrypted archives (read at\n"
	"                              random, chunk by chunk; never decrypted to disk;\n"
	"                              repeated: a chain whose key changed)\n"
	"  -h, --help                  show this help\n"
	"\n"
	"Exit status: 0 stopped by a signal or after --once, 1 failure (nbdkit\n"
	"missing or failing, no room in --cache-dir), 2 usage error (unknown\n"
	"drive, an archive that cannot be read at random without --cache-dir,\n"
	"an overlay that exists), 3 invalid or corrupt archive.\n",
};
