/* test_source.c: unit tests of core/source: the QMP and guest-agent client
 * (qmp.c) against a scripted fake server in a forked child. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/source/qmp_int.h"

#include "tests/unit/test_support.h"

/* ============================================================ fake server */

/* One step of the server's script. EXPECT reads one line and checks its
 * "execute" (and "arguments" when args is not NULL; flags: the 0xff
 * prefix, the "id" member). SEND writes s (chunk > 0: that many bytes per
 * write, 5 ms apart), "%ID%" replaced by the id of the last command read
 * (its "id", or its arguments' "id" for guest-sync-delimited). After the
 * last step the server reads until the client closes. */
enum op { END, EXPECT, SEND, SLEEP, CLOSE };
#define F_FF 1u   /* the line starts with 0xff */
#define F_ID 2u   /* it has an "id" member */
#define F_NOID 4u /* it has none */
struct step {
	enum op op;
	const char *s;
	const char *args;
	unsigned flags;
	int n; /* SEND: chunk size; SLEEP: ms */
};
#define EXP(c, a, f) { .op = EXPECT, .s = (c), .args = (a), .flags = (f) }
#define SND(x, chunk) { .op = SEND, .s = (x), .n = (chunk) }
#define PAUSE(ms) { .op = SLEEP, .n = (ms) }
#define HANGUP { .op = CLOSE }
#define DONE { .op = END }

#define GREETING                                                                              \
	SND("{\"QMP\": {\"version\": {\"qemu\": {\"major\": 7}}, \"capabilities\": []}}\r\n", 0), \
	EXP("qmp_capabilities", NULL, F_ID),                                           \
	SND("{\"return\": {}, \"id\": %ID%}\r\n", 0)

struct server {
	char *path;
	pid_t pid;
};

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "fake server: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	_exit(1);
}

/* One line from the client, 0 at EOF. */
static size_t read_line(int fd, char *buf, size_t size)
{
	size_t n = 0;

	while (n + 1 < size) {
		ssize_t r = read(fd, buf + n, 1);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		if (buf[n++] == '\n')
			break;
	}
	buf[n] = '\0';
	return n;
}

static void expect_line(int fd, const struct step *st, char *id, size_t idsize)
{
	char line[8192];
	const char *p = line;
	json_object *m, *v, *a = NULL;

	if (read_line(fd, line, sizeof(line)) == 0)
		die("the client closed the connection; expected %s", st->s);
	if ((st->flags & F_FF) && *p != '\xff')
		die("no 0xff before %s: %s", st->s, line);
	while (*p == '\xff')
		p++;
	if ((m = json_tokener_parse(p)) == NULL)
		die("not JSON: %s", line);
	if (vb_json_str(m, "execute") == NULL || strcmp(vb_json_str(m, "execute"), st->s) != 0)
		die("expected %s, got %s", st->s, line);
	if ((st->flags & F_ID) && !json_object_object_get_ex(m, "id", NULL))
		die("no id: %s", line);
	if ((st->flags & F_NOID) && json_object_object_get_ex(m, "id", NULL))
		die("an id: %s", line);
	if (st->args != NULL) {
		json_object *want = json_tokener_parse(st->args);

		if (!json_object_object_get_ex(m, "arguments", &a) || !json_object_equal(a, want))
			die("expected arguments %s: %s", st->args, line);
		json_object_put(want);
	}
	json_object_object_get_ex(m, "arguments", &a);
	if (json_object_object_get_ex(m, "id", &v) ||
	    (a != NULL && json_object_object_get_ex(a, "id", &v)))
		snprintf(id, idsize, "%s", json_object_to_json_string(v));
	json_object_put(m);
}

static void send_step(int fd, const struct step *st, const char *id)
{
	char buf[8192], *o = buf;
	const char *s = st->s;
	size_t len, chunk;

	while (*s != '\0' && o < buf + sizeof(buf) - 64) {
		if (strncmp(s, "%ID%", 4) == 0) {
			o += snprintf(o, 64, "%s", id);
			s += 4;
		} else {
			*o++ = *s++;
		}
	}
	len = (size_t)(o - buf);
	chunk = st->n > 0 ? (size_t)st->n : len;
	for (size_t off = 0; off < len; off += chunk) {
		size_t k = len - off < chunk ? len - off : chunk;

		if (write(fd, buf + off, k) != (ssize_t)k && errno != EPIPE)
			die("write: %s", strerror(errno)); /* EPIPE: the client had read enough */
		if (st->n > 0)
			usleep(5000);
	}
}

static void serve(int lfd, const struct step *script)
{
	char id[64] = "null", line[8192];
	int fd;

	alarm(10); /* a test that failed in the parent does not close: end anyway */
	signal(SIGPIPE, SIG_IGN);
	fd = accept(lfd, NULL, NULL);
	if (fd < 0)
		die("accept: %s", strerror(errno));
	close(lfd);
	for (const struct step *st = script; st->op != END; st++) {
		if (st->op == EXPECT)
			expect_line(fd, st, id, sizeof(id));
		else if (st->op == SEND)
			send_step(fd, st, id);
		else if (st->op == SLEEP)
			usleep((useconds_t)st->n * 1000);
		else if (st->op == CLOSE)
			_exit(close(fd) == 0 ? 0 : 1);
	}
	while (read_line(fd, line, sizeof(line)) > 0)
		;
	_exit(0);
}

/* A socket at DIR/name that a child serves with script (NULL: bound and
 * listening, never accepted: connect works, nobody answers). */
static struct server server_start(void **state, const char *name, const struct step *script)
{
	struct server s = { .path = tpath(state, name) };
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(lfd >= 0);
	assert_true(strlen(s.path) < sizeof(sa.sun_path));
	memcpy(sa.sun_path, s.path, strlen(s.path) + 1);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(lfd, 4), 0);
	s.pid = fork();
	assert_true(s.pid >= 0);
	if (s.pid == 0) {
		free(s.path);
		if (script == NULL) {
			alarm(10);
			pause();
			_exit(0);
		}
		serve(lfd, script);
	}
	close(lfd);
	return s;
}

/* The server ran its script to the end (or was stopped when it had none). */
static void server_end(struct server *s, bool kill_it)
{
	int st;

	if (kill_it)
		kill(s->pid, SIGTERM);
	assert_int_equal(waitpid(s->pid, &st, 0), s->pid);
	if (!kill_it) {
		assert_true(WIFEXITED(st));
		assert_int_equal(WEXITSTATUS(st), 0);
	}
	free(s->path);
}

static struct vb_qmp *mon(struct server *s, int timeout_ms, struct vb_error *err)
{
	return vb_qmp_connect(VB_QMP_MONITOR, s->path, "QMP socket S", timeout_ms, err);
}

/* err's message contains want */
static void assert_msg(const struct vb_error *err, enum vb_errclass cls, const char *want)
{
	if (strstr(err->msg, want) == NULL)
		fail_msg("message \"%s\" lacks \"%s\"", err->msg, want);
	assert_int_equal(err->cls, cls);
}

/* ============================================================ monitor */

static void test_monitor_exec(void **state)
{
	static const struct step script[] = {
		GREETING,
		EXP("blockdev-add", "{\"driver\": \"file\", \"node-name\": \"n1\"}", F_ID),
		SND("{\"return\": {\"status\": \"running\", \"running\": true, \"n\": 7}, "
			"\"id\": %ID%}\r\n", 0),
		EXP("query-status", NULL, F_ID),
		SND("{\"return\": {}, \"id\": %ID%}\r\n", 0),
		DONE,
	};
	struct server s = server_start(state, "qmp", script);
	struct vb_error err = { 0 };
	struct vb_qmp *q = mon(&s, 2000, &err);
	json_object *args = json_object_new_object(), *ret = NULL;

	assert_non_null(q);
	json_object_object_add(args, "driver", json_object_new_string("file"));
	json_object_object_add(args, "node-name", json_object_new_string("n1"));
	assert_int_equal(vb_qmp_exec(q, "blockdev-add", args, &ret, &err), 0);
	assert_string_equal(vb_json_str(ret, "status"), "running");
	assert_true(vb_json_bool(ret, "running", false));
	assert_int_equal(vb_json_int(ret, "n", -1), 7);
	assert_string_equal(vb_qmp_error_class(q), "");
	json_object_put(ret);
	assert_int_equal(vb_qmp_exec(q, "query-status", NULL, NULL, &err), 0);
	vb_qmp_close(q);
	server_end(&s, false);
}

static void test_monitor_error_reply(void **state)
{
	static const struct step script[] = {
		GREETING,
		EXP("blockdev-del", "{\"node-name\": \"x\"}", F_ID),
		SND("{\"error\": {\"class\": \"DeviceNotFound\", \"desc\": \"Node 'x' not "
			"found\"}, \"id\": %ID%}\r\n", 0),
		EXP("query-block", NULL, 0),
		SND("{\"return\": [], \"id\": %ID%}\r\n", 0),
		DONE,
	};
	struct server s = server_start(state, "qmp", script);
	struct vb_error err = { 0 };
	struct vb_qmp *q = mon(&s, 2000, &err);
	json_object *ret = (json_object *)&err;

	assert_non_null(q);
	assert_int_equal(vb_qmp_execf(q, &ret, &err, "blockdev-del", "{\"node-name\": %s}",
				      vb_qmp_str("x")), -1);
	assert_null(ret);
	assert_int_equal(err.cls, VB_E_FAIL);
	assert_string_equal(err.msg, "blockdev-del: DeviceNotFound: Node 'x' not found");
	assert_string_equal(vb_qmp_error_class(q), "DeviceNotFound");
	vb_error_clear(&err);
	assert_int_equal(vb_qmp_exec(q, "query-block", NULL, &ret, &err), 0);
	assert_true(json_object_is_type(ret, json_type_array));
	assert_string_equal(vb_qmp_error_class(q), "");
	json_object_put(ret);
	vb_qmp_close(q);
	server_end(&s, false);
}

/* Events before the reply are queued in order; waits take queued ones
 * first (oldest first, filtered by a data member), then read on. */
static void test_monitor_events(void **state)
{
	static const struct step script[] = {
		GREETING,
		EXP("query-jobs", NULL, 0),
		SND("{\"event\": \"JOB_STATUS_CHANGE\", \"data\": {\"id\": \"j1\", \"status\": "
			"\"created\"}}\r\n"
			"{\"event\": \"BLOCK_JOB_COMPLETED\", \"data\": {\"device\": \"d2\"}}\r\n"
			"{\"event\": \"JOB_STATUS_CHANGE\", \"data\": {\"id\": \"j1\", \"status\": "
			"\"running\"}}\r\n"
			"{\"event\": \"BLOCK_JOB_COMPLETED\", \"data\": {\"device\": \"d1\"}}\r\n"
			"{\"return\": [], \"id\": %ID%}\r\n", 0),
		PAUSE(150),
		SND("{\"event\": \"BLOCK_EXPORT_DELETED\", \"data\": {\"id\": \"e1\"}}\r\n", 0),
		DONE,
	};
	struct server s = server_start(state, "qmp", script);
	struct vb_error err = { 0 };
	struct vb_qmp *q = mon(&s, 2000, &err);
	json_object *data = NULL;
	double t0;

	assert_non_null(q);
	assert_int_equal(vb_qmp_exec(q, "query-jobs", NULL, NULL, &err), 0);
	/* the filter skips d2, queued before d1 */
	assert_int_equal(vb_qmp_wait_event(q, "BLOCK_JOB_COMPLETED", "device", "d1", 0, &data,
					   &err), 0);
	assert_string_equal(vb_json_str(data, "device"), "d1");
	json_object_put(data);
	assert_int_equal(vb_qmp_wait_event(q, "BLOCK_JOB_COMPLETED", NULL, NULL, 0, &data, &err),
			 0);
	assert_string_equal(vb_json_str(data, "device"), "d2");
	json_object_put(data);
	/* oldest first */
	assert_int_equal(vb_qmp_wait_event(q, "JOB_STATUS_CHANGE", NULL, NULL, 0, &data, &err), 0);
	assert_string_equal(vb_json_str(data, "status"), "created");
	json_object_put(data);
	/* none left: a timeout that names the event and the filter */
	t0 = vb_clock_monotonic();
	assert_int_equal(vb_qmp_wait_event(q, "BLOCK_JOB_COMPLETED", "device", "d1", 50, &data,
					   &err), -1);
	assert_true(vb_clock_monotonic() - t0 >= 0.045);
	assert_null(data);
	assert_msg(&err, VB_E_FAIL, "QMP socket S: no BLOCK_JOB_COMPLETED event with device=d1 "
		   "in 0.05 s");
	vb_error_clear(&err);
	/* one that comes later, read from the socket */
	assert_int_equal(vb_qmp_wait_event(q, "BLOCK_EXPORT_DELETED", "id", "e1", 2000, NULL,
					   &err), 0);
	/* a key whose value differs does not match; the queued one is still there */
	assert_int_equal(vb_qmp_wait_event(q, "JOB_STATUS_CHANGE", "status", "created", 0, NULL,
					   &err), -1);
	vb_error_clear(&err);
	assert_int_equal(vb_qmp_wait_event(q, "JOB_STATUS_CHANGE", "status", "running", 0, &data,
					   &err), 0);
	assert_string_equal(vb_json_str(data, "id"), "j1");
	json_object_put(data);
	vb_qmp_close(q);
	server_end(&s, false);
}

/* Taking the newest queued event, then queueing another: the queue stays
 * whole; clearing empties it. */
static void test_monitor_events_queue(void **state)
{
	static const struct step script[] = {
		GREETING,
		EXP("query-jobs", NULL, 0),
		SND("{\"event\": \"STOP\"}\r\n{\"event\": \"RESUME\"}\r\n"
		    "{\"return\": [], \"id\": %ID%}\r\n", 0),
		EXP("query-status", NULL, 0),
		SND("{\"event\": \"SHUTDOWN\"}\r\n{\"event\": \"RESET\"}\r\n"
		    "{\"return\": {}, \"id\": %ID%}\r\n", 0),
		DONE,
	};
	struct server s = server_start(state, "qmp", script);
	struct vb_error err = { 0 };
	struct vb_qmp *q = mon(&s, 2000, &err);
	json_object *data = (json_object *)&err;

	assert_non_null(q);
	assert_int_equal(vb_qmp_exec(q, "query-jobs", NULL, NULL, &err), 0);
	assert_int_equal(vb_qmp_wait_event(q, "RESUME", NULL, NULL, 0, NULL, &err), 0);
	assert_int_equal(vb_qmp_exec(q, "query-status", NULL, NULL, &err), 0);
	assert_int_equal(vb_qmp_wait_event(q, "SHUTDOWN", NULL, NULL, 0, NULL, &err), 0);
	assert_int_equal(vb_qmp_wait_event(q, "STOP", NULL, NULL, 0, NULL, &err), 0);
	vb_qmp_events_clear(q);
	assert_int_equal(vb_qmp_wait_event(q, "RESET", NULL, NULL, 20, &data, &err), -1);
	assert_null(data);
	vb_qmp_close(q);
	vb_qmp_close(NULL);
	server_end(&s, false);
}

/* A greeting and a reply that come a few bytes per write. */
static void test_monitor_split(void **state)
{
	static const struct step script[] = {
		SND("{\"QMP\": {\"version\": {}, \"capabilities\": []}}\r\n", 3),
		EXP("qmp_capabilities", NULL, 0),
		SND("{\"return\": {}, \"id\": %ID%}\r\n", 0),
		EXP("query-name", NULL, 0),
		SND("{\"event\": \"RESUME\"}\r\n{\"return\": {\"name\": \"a \\\"q\\\" \\u00e9\"},"
			" \"id\": %ID%}\r\n", 7),
		DONE,
	};
	struct server s = server_start(state, "qmp", script);
	struct vb_error err = { 0 };
	struct vb_qmp *q = mon(&s, 2000, &err);
	json_object *ret = NULL;

	assert_non_null(q);
	assert_int_equal(vb_qmp_exec(q, "query-name", NULL, &ret, &err), 0);
	assert_string_equal(vb_json_str(ret, "name"), "a \"q\" \xc3\xa9");
	json_object_put(ret);
	assert_int_equal(vb_qmp_wait_event(q, "RESUME", NULL, NULL, 0, NULL, &err), 0);
	vb_qmp_close(q);
	server_end(&s, false);
}

/* Replies with another id, or none, are not the command's. */
static void test_monitor_wrong_id(void **state)
{
	static const struct step script[] = {
		GREETING,
		EXP("query-status", NULL, 0),
		SND("{\"return\": {\"x\": 0}, \"id\": 999}\r\n{\"return\": {\"x\": 2}}\r\n"
			"{\"return\": {\"x\": 1}, \"id\": %ID%}\r\n", 0),
		DONE,
	};
	struct server s = server_start(state, "qmp", script);
	struct vb_error err = { 0 };
	struct vb_qmp *q = mon(&s, 2000, &err);
	json_object *ret = NULL;

	assert_non_null(q);
	assert_int_equal(vb_qmp_exec(q, "query-status", NULL, &ret, &err), 0);
	assert_int_equal(vb_json_int(ret, "x", -1), 1);
	json_object_put(ret);
	vb_qmp_close(q);
	server_end(&s, false);
}

static void on_alarm(int sig)
{
}

/* Signals (a handler without SA_RESTART, every 10 ms) do not cut a wait
 * short: the clean-up after a signal runs its commands on this client. */
static void test_monitor_eintr(void **state)
{
	static const struct step script[] = {
		GREETING,
		EXP("query-status", NULL, 0),
		PAUSE(150),
		SND("{\"return\": {\"ok\": true}, \"id\": %ID%}\r\n", 0),
		DONE,
	};
	struct server s = server_start(state, "qmp", script);
	struct vb_error err = { 0 };
	struct vb_qmp *q = mon(&s, 2000, &err);
	struct sigaction sa = { .sa_handler = on_alarm }, old;
	struct itimerval it = { .it_interval = { 0, 10000 }, .it_value = { 0, 10000 } };
	struct itimerval off = { 0 };
	json_object *ret = NULL;
	int rc;

	assert_non_null(q);
	assert_int_equal(sigaction(SIGALRM, &sa, &old), 0);
	assert_int_equal(setitimer(ITIMER_REAL, &it, NULL), 0);
	rc = vb_qmp_exec(q, "query-status", NULL, &ret, &err);
	setitimer(ITIMER_REAL, &off, NULL);
	sigaction(SIGALRM, &old, NULL);
	if (rc != 0)
		fail_msg("%s", err.msg);
	assert_true(vb_json_bool(ret, "ok", false));
	json_object_put(ret);
	vb_qmp_close(q);
	server_end(&s, false);
}

/* A command without a reply times out; its late reply does not pass for
 * the next command's. */
static void test_monitor_timeout(void **state)
{
	static const struct step script[] = {
		GREETING,
		EXP("query-status", NULL, 0),
		PAUSE(300),
		SND("{\"return\": {\"late\": true}, \"id\": %ID%}\r\n", 0),
		EXP("query-block", NULL, 0),
		SND("{\"return\": {\"late\": false}, \"id\": %ID%}\r\n", 0),
		DONE,
	};
	struct server s = server_start(state, "qmp", script);
	struct vb_error err = { 0 };
	struct vb_qmp *q = mon(&s, 200, &err);
	json_object *ret = NULL;
	double t0;

	assert_non_null(q);
	t0 = vb_clock_monotonic();
	assert_int_equal(vb_qmp_exec(q, "query-status", NULL, &ret, &err), -1);
	assert_true(vb_clock_monotonic() - t0 >= 0.19);
	assert_true(vb_clock_monotonic() - t0 < 1.5);
	assert_string_equal(err.msg, "QMP socket S: query-status did not answer in 0.2 s");
	assert_int_equal(err.cls, VB_E_FAIL);
	vb_error_clear(&err);
	assert_int_equal(vb_qmp_exec(q, "query-block", NULL, &ret, &err), 0);
	assert_false(vb_json_bool(ret, "late", true));
	json_object_put(ret);
	vb_qmp_close(q);
	server_end(&s, false);
}

/* The server closes in the middle of a reply: the command and every later
 * call fail with "closed the connection". */
static void test_monitor_closed(void **state)
{
	static const struct step script[] = {
		GREETING,
		EXP("query-block", NULL, 0),
		SND("{\"return\": [{\"device\": \"dri", 0),
		HANGUP,
	};
	struct server s = server_start(state, "qmp", script);
	struct vb_error err = { 0 };
	struct vb_qmp *q = mon(&s, 2000, &err);
	double t0 = vb_clock_monotonic();

	assert_non_null(q);
	assert_int_equal(vb_qmp_exec(q, "query-block", NULL, NULL, &err), -1);
	assert_true(vb_clock_monotonic() - t0 < 1.0); /* not a timeout */
	assert_string_equal(err.msg, "QMP socket S closed the connection (during query-block)");
	vb_error_clear(&err);
	assert_int_equal(vb_qmp_exec(q, "query-status", json_object_new_object(), NULL, &err), -1);
	assert_msg(&err, VB_E_FAIL, "closed the connection");
	vb_error_clear(&err);
	assert_int_equal(vb_qmp_wait_event(q, "STOP", NULL, NULL, 1000, NULL, &err), -1);
	assert_msg(&err, VB_E_FAIL, "closed the connection");
	vb_qmp_close(q);
	server_end(&s, false);
}

/* Writing to a closed connection is an error, not a SIGPIPE. */
static void test_monitor_sigpipe(void **state)
{
	static const struct step script[] = { GREETING, HANGUP };
	struct server s = server_start(state, "qmp", script);
	struct vb_error err = { 0 };
	struct vb_qmp *q = mon(&s, 2000, &err);
	struct sigaction dfl = { .sa_handler = SIG_DFL }, old;

	assert_non_null(q);
	assert_int_equal(sigaction(SIGPIPE, &dfl, &old), 0);
	server_end(&s, false); /* closed for sure */
	assert_int_equal(vb_qmp_exec(q, "query-status", NULL, NULL, &err), -1);
	assert_msg(&err, VB_E_FAIL, "QMP socket S closed the connection (during query-status)");
	assert_int_equal(sigaction(SIGPIPE, &old, NULL), 0);
	vb_qmp_close(q);
}

/* A line that is not JSON fails its command; the next line is read. */
static void test_monitor_garbage(void **state)
{
	static const struct step script[] = {
		GREETING,
		EXP("query-status", NULL, 0),
		SND("this is not JSON {\r\n", 0),
		EXP("query-block", NULL, 0),
		SND("[1, 2]\r\n", 0),
		EXP("query-jobs", NULL, 0),
		SND("{\"return\": 5, \"id\": %ID%}\r\n", 0),
		DONE,
	};
	struct server s = server_start(state, "qmp", script);
	struct vb_error err = { 0 };
	struct vb_qmp *q = mon(&s, 2000, &err);
	json_object *ret = NULL;

	assert_non_null(q);
	assert_int_equal(vb_qmp_exec(q, "query-status", NULL, NULL, &err), -1);
	assert_string_equal(err.msg, "QMP socket S sent a message that is not JSON (during "
			    "query-status)");
	vb_error_clear(&err);
	assert_int_equal(vb_qmp_exec(q, "query-block", NULL, NULL, &err), -1);
	assert_msg(&err, VB_E_FAIL, "JSON that is not an object (during query-block)");
	vb_error_clear(&err);
	assert_int_equal(vb_qmp_exec(q, "query-jobs", NULL, &ret, &err), 0);
	assert_int_equal(json_object_get_int(ret), 5);
	json_object_put(ret);
	vb_qmp_close(q);
	server_end(&s, false);
}

static void test_monitor_bad_greeting(void **state)
{
	static const struct step not_qmp[] = { SND("{\"hello\": 1}\r\n", 0), DONE };
	static const struct step caps_refused[] = {
		SND("{\"QMP\": {}}\r\n", 0),
		EXP("qmp_capabilities", NULL, 0),
		SND("{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"nope\"}, "
			"\"id\": %ID%}\r\n", 0),
		DONE,
	};
	struct server s = server_start(state, "a", not_qmp);
	struct vb_error err = { 0 };

	assert_null(mon(&s, 2000, &err));
	assert_string_equal(err.msg, "QMP socket S is not a QMP monitor (its greeting has no "
			    "\"QMP\" member)");
	assert_int_equal(err.cls, VB_E_USAGE);
	server_end(&s, false);
	vb_error_clear(&err);

	s = server_start(state, "b", caps_refused);
	assert_null(mon(&s, 2000, &err));
	assert_string_equal(err.msg, "qmp_capabilities: CommandNotFound: nope");
	server_end(&s, false);
	vb_error_clear(&err);

	/* a listening socket that never accepts nor greets */
	s = server_start(state, "c", NULL);
	assert_null(mon(&s, 100, &err));
	assert_msg(&err, VB_E_FAIL, "QMP socket S: no greeting in 0.1 s");
	server_end(&s, true);
}

static void test_connect_errors(void **state)
{
	char *missing = tpath(state, "missing"), *file = tpath(state, "file");
	char *unbound = tpath(state, "unbound"), longp[200];
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct vb_error err = { 0 };
	int fd;

	assert_null(vb_qmp_connect(VB_QMP_MONITOR, missing, "QMP", 100, &err));
	assert_msg(&err, VB_E_USAGE, "no QMP socket at ");
	assert_msg(&err, VB_E_USAGE, missing);
	vb_error_clear(&err);
	assert_null(vb_qmp_connect(VB_QMP_AGENT, missing, "agent", 100, &err));
	assert_msg(&err, VB_E_USAGE, "no guest agent socket at ");
	vb_error_clear(&err);

	write_file(file, "x", 1);
	assert_null(vb_qmp_connect(VB_QMP_MONITOR, file, "QMP", 100, &err));
	assert_msg(&err, VB_E_USAGE, file);
	vb_error_clear(&err);

	/* a socket that was bound but does not listen: refused */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	memcpy(sa.sun_path, unbound, strlen(unbound) + 1);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_null(vb_qmp_connect(VB_QMP_MONITOR, unbound, "QMP", 100, &err));
	assert_msg(&err, VB_E_USAGE, "Connection refused");
	vb_error_clear(&err);
	close(fd);

	memset(longp, 'a', sizeof(longp) - 1);
	longp[0] = '/';
	longp[sizeof(longp) - 1] = '\0';
	assert_null(vb_qmp_connect(VB_QMP_MONITOR, longp, "QMP", 100, &err));
	assert_msg(&err, VB_E_USAGE, "path too long (199 bytes, at most 107)");
	free(missing);
	free(file);
	free(unbound);
}

/* ============================================================ agent */

/* Junk and a stale sync reply before ours are skipped; agent commands
 * carry no id and take the next reply. */
static void test_agent_sync(void **state)
{
	static const struct step script[] = {
		SND("{\"return\": 77}\r\n{\"retu", 0), /* a previous client's */
		EXP("guest-sync-delimited", NULL, F_FF | F_NOID),
		SND("{\"return\": 5}\r\ngarbage \xff{\"return\": 12345}\r\n{\"return\": "
			"\"old\"}\r\n\xff{\"return\": %ID%}\r\n", 0),
		EXP("guest-ping", NULL, F_NOID),
		SND("{\"return\": {}}\r\n", 0),
		EXP("guest-fsfreeze-freeze", NULL, F_NOID),
		SND("{\"return\": 2}\r\n", 1),
		DONE,
	};
	struct server s = server_start(state, "qga", script);
	struct vb_error err = { 0 };
	struct vb_qmp *q = vb_qmp_connect(VB_QMP_AGENT, s.path, "guest agent G", 2000, &err);
	json_object *ret = NULL;

	assert_non_null(q);
	assert_int_equal(vb_qmp_exec(q, "guest-ping", NULL, &ret, &err), 0);
	assert_true(json_object_is_type(ret, json_type_object));
	json_object_put(ret);
	assert_int_equal(vb_qmp_exec(q, "guest-fsfreeze-freeze", NULL, &ret, &err), 0);
	assert_int_equal(json_object_get_int(ret), 2);
	json_object_put(ret);
	vb_qmp_close(q);
	server_end(&s, false);
}

/* After a command times out, the next one syncs again first, so the late
 * reply is not taken for its own. */
static void test_agent_resync(void **state)
{
	static const struct step script[] = {
		EXP("guest-sync-delimited", NULL, F_FF),
		SND("\xff{\"return\": %ID%}\r\n", 0),
		EXP("guest-fsfreeze-freeze", NULL, 0),
		EXP("guest-sync-delimited", NULL, F_FF),
		SND("{\"return\": 2}\r\n\xff{\"return\": %ID%}\r\n", 0),
		EXP("guest-fsfreeze-status", NULL, 0),
		SND("{\"return\": \"frozen\"}\r\n", 0),
		DONE,
	};
	struct server s = server_start(state, "qga", script);
	struct vb_error err = { 0 };
	struct vb_qmp *q = vb_qmp_connect(VB_QMP_AGENT, s.path, "guest agent G", 200, &err);
	json_object *ret = NULL;

	assert_non_null(q);
	assert_int_equal(vb_qmp_exec(q, "guest-fsfreeze-freeze", NULL, &ret, &err), -1);
	assert_string_equal(err.msg, "guest agent G: guest-fsfreeze-freeze did not answer in "
			    "0.2 s");
	vb_error_clear(&err);
	assert_int_equal(vb_qmp_exec(q, "guest-fsfreeze-status", NULL, &ret, &err), 0);
	assert_string_equal(json_object_get_string(ret), "frozen");
	json_object_put(ret);
	vb_qmp_close(q);
	server_end(&s, false);
}

static void test_agent_mute(void **state)
{
	static const struct step script[] = {
		EXP("guest-sync-delimited", NULL, F_FF),
		DONE,
	};
	struct server s = server_start(state, "qga", script);
	struct vb_error err = { 0 };

	assert_null(vb_qmp_connect(VB_QMP_AGENT, s.path, "guest agent G", 150, &err));
	assert_string_equal(err.msg, "guest agent G: guest-sync-delimited did not answer in "
			    "0.15 s");
	assert_int_equal(err.cls, VB_E_FAIL);
	server_end(&s, false);
}

/* ============================================================ formats */

static void test_execf(void **state)
{
	static const struct step script[] = {
		GREETING,
		EXP("block-dirty-bitmap-add", "{\"node\": \"a\\\"b\\\\c\\n\", \"name\": "
		    "\"x\", \"persistent\": true, \"granularity\": 65536}", F_ID),
		SND("{\"return\": {}, \"id\": %ID%}\r\n", 0),
		DONE,
	};
	struct server s = server_start(state, "qmp", script);
	struct vb_error err = { 0 };
	struct vb_qmp *q = mon(&s, 2000, &err);
	json_object *args = json_object_new_object();

	assert_non_null(q);
	assert_int_equal(vb_qmp_execf(q, NULL, &err, "block-dirty-bitmap-add",
				      "{\"node\": %s, \"name\": %s, \"persistent\": %s, "
				      "\"granularity\": %d}", vb_qmp_str("a\"b\\c\n"),
				      vb_qmp_str("x"), "true", 65536), 0);
	/* a format that does not parse, arguments that are not UTF-8: nothing is sent */
	assert_int_equal(vb_qmp_execf(q, NULL, &err, "blockdev-del", "{\"node-name\": %s",
				      vb_qmp_str("x")), -1);
	assert_msg(&err, VB_E_FAIL, "blockdev-del: the arguments are not a JSON object");
	vb_error_clear(&err);
	json_object_object_add(args, "node-name", json_object_new_string("\xc3\x28"));
	assert_int_equal(vb_qmp_exec(q, "blockdev-del", args, NULL, &err), -1);
	assert_msg(&err, VB_E_FAIL, "blockdev-del: an argument is not UTF-8");
	vb_qmp_close(q);
	server_end(&s, false);
}

static void test_qmp_str(void **state)
{
	static const char *const in[] = {
		"plain", "", "quote \" backslash \\ slash /", "tab\tnl\ncr\rnul-less \x01\x1f",
		"\xc3\xa9t\xc3\xa9 \xe2\x82\xac",
	};
	const char *lits[8];
	char big[1100];

	for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
		const char *lit = vb_qmp_str(in[i]);
		json_object *o = json_tokener_parse(lit);

		assert_non_null(o);
		assert_true(json_object_is_type(o, json_type_string));
		assert_string_equal(json_object_get_string(o), in[i]);
		for (const char *p = lit; *p != '\0'; p++)
			assert_true((unsigned char)*p >= 0x20); /* control characters escaped */
		json_object_put(o);
	}
	assert_string_equal(vb_qmp_str("a\"b"), "\"a\\\"b\"");
	assert_string_equal(vb_qmp_str("/x"), "\"/x\"");
	/* eight at once stay valid */
	for (int i = 0; i < 8; i++) {
		char s[16];

		snprintf(s, sizeof(s), "s%d", i);
		lits[i] = vb_qmp_str(s);
	}
	for (int i = 0; i < 8; i++) {
		char want[16];

		snprintf(want, sizeof(want), "\"s%d\"", i);
		assert_string_equal(lits[i], want);
	}
	/* what cannot be a literal here is null: the command fails visibly */
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_string_equal(vb_qmp_str(big), "null");
	big[1021] = '\0'; /* 1021 + 2 quotes + NUL = 1024: fits */
	assert_int_equal(strlen(vb_qmp_str(big)), 1023);
	big[1020] = '"'; /* escaped, it no longer fits */
	assert_string_equal(vb_qmp_str(big), "null");
	assert_string_equal(vb_qmp_str("bad \xff utf-8"), "null");
	assert_string_equal(vb_qmp_str(NULL), "null");
}

static void test_json_helpers(void **state)
{
	json_object *o = json_tokener_parse("{\"s\": \"v\", \"b\": false, \"i\": -5, "
					    "\"big\": 9007199254740993, \"n\": null}");

	assert_non_null(o);
	assert_string_equal(vb_json_str(o, "s"), "v");
	assert_null(vb_json_str(o, "i"));
	assert_null(vb_json_str(o, "missing"));
	assert_null(vb_json_str(NULL, "s"));
	assert_false(vb_json_bool(o, "b", true));
	assert_true(vb_json_bool(o, "s", true));
	assert_true(vb_json_bool(NULL, "b", true));
	assert_int_equal(vb_json_int(o, "i", 0), -5);
	assert_true(vb_json_int(o, "big", 0) == 9007199254740993LL);
	assert_int_equal(vb_json_int(o, "n", 42), 42);
	assert_int_equal(vb_json_int(o, "s", 42), 42);
	assert_true(vb_json_is_utf8("\xc3\xa9", 2));
	assert_false(vb_json_is_utf8("\xc3", 1));
	assert_false(vb_json_is_utf8("\xff", 1));
	json_object_put(o);
}

int main(void)
{
	const struct CMUnitTest qmp[] = {
		cmocka_unit_test_setup_teardown(test_monitor_exec, tdir_setup, tdir_teardown),
		cmocka_unit_test_setup_teardown(test_monitor_error_reply, tdir_setup, tdir_teardown),
		cmocka_unit_test_setup_teardown(test_monitor_events, tdir_setup, tdir_teardown),
		cmocka_unit_test_setup_teardown(test_monitor_events_queue, tdir_setup,
						tdir_teardown),
		cmocka_unit_test_setup_teardown(test_monitor_split, tdir_setup, tdir_teardown),
		cmocka_unit_test_setup_teardown(test_monitor_wrong_id, tdir_setup, tdir_teardown),
		cmocka_unit_test_setup_teardown(test_monitor_eintr, tdir_setup, tdir_teardown),
		cmocka_unit_test_setup_teardown(test_monitor_timeout, tdir_setup, tdir_teardown),
		cmocka_unit_test_setup_teardown(test_monitor_closed, tdir_setup, tdir_teardown),
		cmocka_unit_test_setup_teardown(test_monitor_sigpipe, tdir_setup, tdir_teardown),
		cmocka_unit_test_setup_teardown(test_monitor_garbage, tdir_setup, tdir_teardown),
		cmocka_unit_test_setup_teardown(test_monitor_bad_greeting, tdir_setup,
						tdir_teardown),
		cmocka_unit_test_setup_teardown(test_connect_errors, tdir_setup, tdir_teardown),
		cmocka_unit_test_setup_teardown(test_agent_sync, tdir_setup, tdir_teardown),
		cmocka_unit_test_setup_teardown(test_agent_resync, tdir_setup, tdir_teardown),
		cmocka_unit_test_setup_teardown(test_agent_mute, tdir_setup, tdir_teardown),
		cmocka_unit_test_setup_teardown(test_execf, tdir_setup, tdir_teardown),
		cmocka_unit_test(test_qmp_str),
		cmocka_unit_test(test_json_helpers),
	};

	return cmocka_run_group_tests_name("qmp", qmp, NULL, NULL);
}
