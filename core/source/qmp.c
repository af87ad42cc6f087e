/* qmp.c: a client of QEMU's QMP monitor and of the guest agent over a unix
 * socket, on json-c (the interface and its promises are in qmp_int.h).
 * A signal does not cut a wait short (EINTR is retried, the cancel flag not
 * read): the clean-up after one (thaw, teardown) runs on this client. */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "core/source/qmp_int.h"

/* The most one message may take: QEMU's largest replies (query-named-block-
 * nodes of a VM with long backing chains) stay far below it. */
#define QMP_MSG_MAX (64u << 20)
/* The oldest queued events are dropped past this many: a caller that never
 * waits for an event must not make the queue grow for ever. */
#define QMP_EVENTS_MAX 4096u
#define QMP_RBUF 65536u

struct qmp_event {
	struct qmp_event *next;
	json_object *ev;
};

struct vb_qmp {
	enum vb_qmp_proto proto;
	int fd;
	char *what;
	int timeout_ms;
	int64_t next_id;
	json_tokener *tok;
	size_t msg_bytes;     /* fed to tok since its last reset */
	unsigned char *rbuf;
	size_t rpos, rlen;
	bool skip_to_ff;      /* agent: discard everything up to the next 0xff */
	bool skip_line;       /* after a message that is not JSON: up to the next \n */
	bool closed;          /* the peer closed the connection */
	bool need_sync;       /* agent: a command timed out, resync before the next */
	char err_class[128];
	struct qmp_event *head, *tail;
	size_t nevents;
};

enum msg_rc { MSG_OK, MSG_TIMEOUT, MSG_CLOSED, MSG_ERROR };

/* ------------------------------------------------------------ deadlines */

static double deadline_in(int timeout_ms)
{
	return vb_clock_monotonic() + (timeout_ms < 0 ? 0 : timeout_ms) / 1000.0;
}

/* Milliseconds left until deadline, rounded up; 0 once it has passed. */
static int ms_left(double deadline)
{
	double left = (deadline - vb_clock_monotonic()) * 1000.0;

	if (left <= 0)
		return 0;
	return left > 1e9 ? 1000000000 : (int)left + 1;
}

/* Waits for events on the socket until deadline: 1 ready, 0 timed out, -1. */
static int wait_fd(struct vb_qmp *q, short events, double deadline, struct vb_error *err)
{
	for (;;) {
		struct pollfd p = { .fd = q->fd, .events = events };
		int n = poll(&p, 1, ms_left(deadline));

		if (n > 0)
			return 1;
		if (n == 0 && ms_left(deadline) == 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return vb_error_set(err, VB_E_FAIL, errno, "%s: poll: %s", q->what,
					    strerror(errno));
	}
}

/* ------------------------------------------------------------ reading */

/* Fills rbuf with what the peer sent: MSG_OK with rlen > 0, or not. */
static enum msg_rc fill(struct vb_qmp *q, double deadline, struct vb_error *err)
{
	for (;;) {
		int r = wait_fd(q, POLLIN, deadline, err);
		ssize_t n;

		if (r < 0)
			return MSG_ERROR;
		if (r == 0)
			return MSG_TIMEOUT;
		n = recv(q->fd, q->rbuf, QMP_RBUF, 0);
		if (n > 0) {
			q->rpos = 0;
			q->rlen = (size_t)n;
			return MSG_OK;
		}
		if (n == 0 || errno == ECONNRESET) {
			q->closed = true;
			return MSG_CLOSED;
		}
		if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK) {
			vb_error_set(err, VB_E_FAIL, errno, "%s: read: %s", q->what, strerror(errno));
			return MSG_ERROR;
		}
	}
}

static void tok_reset(struct vb_qmp *q)
{
	json_tokener_reset(q->tok);
	q->msg_bytes = 0;
}

/* The next JSON object the peer sends, waiting until deadline. The agent's
 * 0xff delimiter resets the parser wherever it comes; with skip_to_ff
 * everything before it is discarded. during names the command for the
 * error of a message that is not JSON. */
static enum msg_rc next_msg(struct vb_qmp *q, double deadline, const char *during,
			    json_object **out, struct vb_error *err)
{
	*out = NULL;
	if (q->closed)
		return MSG_CLOSED;
	for (;;) {
		unsigned char *p = q->rbuf + q->rpos, *ff;
		size_t n = q->rlen - q->rpos, used;
		json_object *o;
		enum json_tokener_error jerr;
		enum msg_rc rc;

		if (n == 0) {
			if ((rc = fill(q, deadline, err)) != MSG_OK)
				return rc;
			continue;
		}
		ff = q->proto == VB_QMP_AGENT ? memchr(p, 0xff, n) : NULL;
		if (q->skip_line && !q->skip_to_ff && ff != p) {
			unsigned char *nl = memchr(p, '\n', ff != NULL ? (size_t)(ff - p) : n);

			q->rpos = nl != NULL ? (size_t)(nl + 1 - q->rbuf)
				  : ff != NULL ? (size_t)(ff - q->rbuf) : q->rlen;
			q->skip_line = nl == NULL && ff == NULL;
			continue;
		}
		if (q->skip_to_ff || ff == p) {
			q->rpos = ff != NULL ? (size_t)(ff + 1 - q->rbuf) : q->rlen;
			if (ff != NULL) {
				q->skip_to_ff = q->skip_line = false;
				tok_reset(q);
			}
			continue;
		}
		if (ff != NULL)
			n = (size_t)(ff - p);
		o = json_tokener_parse_ex(q->tok, (const char *)p, (int)n);
		jerr = json_tokener_get_error(q->tok);
		used = json_tokener_get_parse_end(q->tok);
		if (used > n)
			used = n;
		q->rpos += used;
		q->msg_bytes += used;
		if (o == NULL && jerr == json_tokener_continue && q->msg_bytes <= QMP_MSG_MAX)
			continue;
		tok_reset(q);
		if (o != NULL && json_object_is_type(o, json_type_object)) {
			*out = o;
			return MSG_OK;
		}
		json_object_put(o);
		q->skip_line = o == NULL;
		q->need_sync = q->proto == VB_QMP_AGENT;
		vb_error_set(err, VB_E_FAIL, 0, "%s sent %s (during %s)", q->what,
			     o != NULL ? "JSON that is not an object"
			     : jerr == json_tokener_continue ? "a message larger than 64 MiB"
							    : "a message that is not JSON", during);
		return MSG_ERROR;
	}
}

/* ------------------------------------------------------------ events */

static void events_push(struct vb_qmp *q, json_object *ev)
{
	struct qmp_event *e = malloc(sizeof(*e));

	if (e == NULL) { /* an event lost to a full memory: a wait for it times out */
		json_object_put(ev);
		return;
	}
	*e = (struct qmp_event){ .ev = ev };
	if (q->tail != NULL)
		q->tail->next = e;
	else
		q->head = e;
	q->tail = e;
	if (++q->nevents > QMP_EVENTS_MAX) {
		struct qmp_event *old = q->head;

		q->head = old->next;
		json_object_put(old->ev);
		free(old);
		q->nevents--;
	}
}

void vb_qmp_events_clear(struct vb_qmp *q)
{
	while (q->head != NULL) {
		struct qmp_event *e = q->head;

		q->head = e->next;
		json_object_put(e->ev);
		free(e);
	}
	q->tail = NULL;
	q->nevents = 0;
}

static bool event_matches(json_object *ev, const char *name, const char *key, const char *value)
{
	const char *n = vb_json_str(ev, "event"), *v;
	json_object *data = NULL;

	if (n == NULL || strcmp(n, name) != 0)
		return false;
	if (key == NULL)
		return true;
	if (!json_object_object_get_ex(ev, "data", &data) ||
	    !json_object_object_get_ex(data, key, NULL))
		return false;
	v = vb_json_str(data, key);
	return value == NULL || (v != NULL && strcmp(v, value) == 0);
}

static void event_take(json_object *ev, json_object **data)
{
	json_object *d = NULL;

	if (data != NULL) {
		*data = json_object_object_get_ex(ev, "data", &d) ? json_object_get(d) : NULL;
	}
	json_object_put(ev);
}

int vb_qmp_wait_event(struct vb_qmp *q, const char *name, const char *key, const char *value,
		      int timeout_ms, json_object **data, struct vb_error *err)
{
	double deadline = deadline_in(timeout_ms);
	struct qmp_event *prev = NULL;

	if (data != NULL)
		*data = NULL;
	for (struct qmp_event *e = q->head; e != NULL; prev = e, e = e->next) {
		if (!event_matches(e->ev, name, key, value))
			continue;
		if (prev != NULL)
			prev->next = e->next;
		else
			q->head = e->next;
		if (q->tail == e)
			q->tail = prev;
		q->nevents--;
		event_take(e->ev, data);
		free(e);
		return 0;
	}
	for (;;) {
		json_object *m;
		enum msg_rc rc = next_msg(q, deadline, name, &m, err);

		if (rc == MSG_TIMEOUT)
			return vb_error_set(err, VB_E_FAIL, ETIMEDOUT, "%s: no %s event%s%s%s%s in %g s",
					    q->what, name, key ? " with " : "", key ? key : "",
					    value ? "=" : "", value ? value : "", timeout_ms / 1000.0);
		if (rc == MSG_CLOSED)
			return vb_error_set(err, VB_E_FAIL, 0, "%s closed the connection (waiting "
					    "for event %s)", q->what, name);
		if (rc != MSG_OK)
			return -1;
		if (vb_json_str(m, "event") == NULL) {
			json_object_put(m); /* a late reply to a command that timed out */
			continue;
		}
		if (event_matches(m, name, key, value)) {
			event_take(m, data);
			return 0;
		}
		events_push(q, m);
	}
}

/* ------------------------------------------------------------ sending */

static int send_all(struct vb_qmp *q, const char *buf, size_t len, double deadline,
		    const char *cmd, struct vb_error *err)
{
	while (len > 0) {
		ssize_t n = send(q->fd, buf, len, MSG_NOSIGNAL);
		int r;

		if (n > 0) {
			buf += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && (errno == EPIPE || errno == ECONNRESET)) {
			q->closed = true;
			return vb_error_set(err, VB_E_FAIL, errno, "%s closed the connection "
					    "(during %s)", q->what, cmd);
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
			return vb_error_set(err, VB_E_FAIL, errno, "%s: write: %s", q->what,
					    strerror(errno));
		if ((r = wait_fd(q, POLLOUT, deadline, err)) < 0)
			return -1;
		if (r == 0) { /* half a line sent: the agent needs its 0xff */
			q->need_sync = q->proto == VB_QMP_AGENT;
			return vb_error_set(err, VB_E_FAIL, ETIMEDOUT, "%s: %s did not answer in "
					    "%g s", q->what, cmd, q->timeout_ms / 1000.0);
		}
	}
	return 0;
}

/* Sends {"execute": cmd, "arguments": args, "id": id} (no id: id < 0),
 * after a 0xff when ff; args is consumed. */
static int send_cmd(struct vb_qmp *q, bool ff, const char *cmd, json_object *args,
		    int64_t id, double deadline, struct vb_error *err)
{
	json_object *m = json_object_new_object(), *c = json_object_new_string(cmd);
	const char *s;
	char *line = NULL;
	size_t len;
	int rc = -1;

	if (m == NULL || c == NULL || json_object_object_add(m, "execute", c) != 0) {
		json_object_put(c);
		json_object_put(args);
		goto oom;
	}
	if (args != NULL && json_object_object_add(m, "arguments", args) != 0) {
		json_object_put(args);
		goto oom;
	}
	if (id >= 0 && json_object_object_add(m, "id", json_object_new_int64(id)) != 0)
		goto oom;
	s = json_object_to_json_string_ext(m, JSON_C_TO_STRING_PLAIN |
					   JSON_C_TO_STRING_NOSLASHESCAPE);
	len = s != NULL ? strlen(s) : 0;
	if (s == NULL || (line = malloc(len + 3)) == NULL)
		goto oom;
	if (!vb_json_is_utf8(s, len)) {
		vb_error_set(err, VB_E_FAIL, EILSEQ, "%s: %s: an argument is not UTF-8", q->what,
			     cmd);
		goto out;
	}
	line[0] = '\xff';
	memcpy(line + 1, s, len);
	memcpy(line + 1 + len, "\n", 2);
	rc = send_all(q, ff ? line : line + 1, len + 1 + ff, deadline, cmd, err);
	goto out;
oom:
	vb_error_set(err, VB_E_FAIL, ENOMEM, "%s: %s: out of memory", q->what, cmd);
out:
	free(line);
	json_object_put(m);
	return rc;
}

/* ------------------------------------------------------------ commands */

static int fail_wait(struct vb_qmp *q, enum msg_rc rc, const char *cmd, struct vb_error *err)
{
	if (rc == MSG_TIMEOUT) {
		q->need_sync = q->proto == VB_QMP_AGENT;
		return vb_error_set(err, VB_E_FAIL, ETIMEDOUT, "%s: %s did not answer in %g s",
				    q->what, cmd, q->timeout_ms / 1000.0);
	}
	if (rc == MSG_CLOSED)
		return vb_error_set(err, VB_E_FAIL, 0, "%s closed the connection (during %s)",
				    q->what, cmd);
	return -1;
}

/* The reply to the command sent with id (the agent: id < 0, the next reply
 * that is not an event), events queued meanwhile. A reply with no id is
 * taken for an error: QEMU's answer to a line it could not read. */
static int wait_reply(struct vb_qmp *q, const char *cmd, int64_t id, double deadline,
		      json_object **reply, struct vb_error *err)
{
	for (;;) {
		json_object *m, *idv = NULL;
		enum msg_rc rc = next_msg(q, deadline, cmd, &m, err);

		if (rc != MSG_OK)
			return fail_wait(q, rc, cmd, err);
		if (vb_json_str(m, "event") != NULL) {
			events_push(q, m);
			continue;
		}
		if (id < 0 ||
		    (json_object_object_get_ex(m, "id", &idv) &&
		     json_object_is_type(idv, json_type_int) && json_object_get_int64(idv) == id) ||
		    (idv == NULL && json_object_object_get_ex(m, "error", NULL))) {
			*reply = m;
			return 0;
		}
		json_object_put(m);
	}
}

/* Turns a reply into *ret or the error "CMD: CLASS: DESC". */
static int take_reply(struct vb_qmp *q, const char *cmd, json_object *reply, json_object **ret,
		      struct vb_error *err)
{
	json_object *e, *r;
	int rc = 0;

	if (json_object_object_get_ex(reply, "error", &e)) {
		const char *cls = vb_json_str(e, "class"), *desc = vb_json_str(e, "desc");

		snprintf(q->err_class, sizeof(q->err_class), "%s", cls ? cls : "GenericError");
		rc = vb_error_set(err, VB_E_FAIL, 0, "%s: %s: %s", cmd, q->err_class,
				  desc ? desc : "(no description)");
	} else if (!json_object_object_get_ex(reply, "return", &r)) {
		rc = vb_error_set(err, VB_E_FAIL, 0, "%s: %s: a reply with neither \"return\" "
				  "nor \"error\"", q->what, cmd);
	} else if (ret != NULL) {
		*ret = json_object_get(r);
	}
	json_object_put(reply);
	return rc;
}

static int agent_sync(struct vb_qmp *q, struct vb_error *err)
{
	double deadline = deadline_in(q->timeout_ms);
	uint32_t rnd;
	int64_t id;
	json_object *args = json_object_new_object();

	if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != sizeof(rnd))
		rnd = (uint32_t)getpid() ^ (uint32_t)(vb_clock_monotonic() * 1e6);
	id = (int64_t)(rnd & 0x7fffffff);
	if (args == NULL || json_object_object_add(args, "id", json_object_new_int64(id))) {
		json_object_put(args);
		return vb_error_set(err, VB_E_FAIL, ENOMEM, "%s: out of memory", q->what);
	}
	if (send_cmd(q, true, "guest-sync-delimited", args, -1, deadline, err) < 0)
		return -1;
	/* what came before the delimiter is a previous client's, and so is any
	 * reply after it that does not carry our id */
	q->skip_to_ff = true;
	q->rpos = q->rlen;
	tok_reset(q);
	for (;;) {
		json_object *m, *r;
		enum msg_rc rc = next_msg(q, deadline, "guest-sync-delimited", &m, err);
		bool ours;

		if (rc != MSG_OK)
			return fail_wait(q, rc, "guest-sync-delimited", err);
		ours = json_object_object_get_ex(m, "return", &r) &&
		       json_object_is_type(r, json_type_int) && json_object_get_int64(r) == id;
		json_object_put(m);
		if (ours)
			break;
	}
	q->need_sync = false;
	return 0;
}

int vb_qmp_exec(struct vb_qmp *q, const char *cmd, json_object *args, json_object **ret,
		struct vb_error *err)
{
	double deadline;
	json_object *reply = NULL;
	int64_t id = -1;

	if (ret != NULL)
		*ret = NULL;
	q->err_class[0] = '\0';
	if (q->closed) {
		json_object_put(args);
		return vb_error_set(err, VB_E_FAIL, 0, "%s closed the connection (before %s)",
				    q->what, cmd);
	}
	if (q->need_sync && agent_sync(q, err) < 0) {
		json_object_put(args);
		return -1;
	}
	deadline = deadline_in(q->timeout_ms);
	if (q->proto == VB_QMP_MONITOR)
		id = q->next_id++;
	if (send_cmd(q, false, cmd, args, id, deadline, err) < 0 ||
	    wait_reply(q, cmd, id, deadline, &reply, err) < 0)
		return -1;
	return take_reply(q, cmd, reply, ret, err);
}

int vb_qmp_execf(struct vb_qmp *q, json_object **ret, struct vb_error *err, const char *cmd,
		 const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;
	json_object *args;
	int n;

	if (ret != NULL)
		*ret = NULL;
	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		return vb_error_set(err, VB_E_FAIL, ENOMEM, "%s: %s: out of memory", q->what, cmd);
	args = json_tokener_parse(s);
	if (args == NULL || !json_object_is_type(args, json_type_object)) {
		vb_error_set(err, VB_E_FAIL, 0, "%s: the arguments are not a JSON object: %.200s",
			     cmd, s);
		json_object_put(args);
		free(s);
		return -1;
	}
	free(s);
	return vb_qmp_exec(q, cmd, args, ret, err);
}

const char *vb_qmp_error_class(const struct vb_qmp *q)
{
	return q->err_class;
}

/* ------------------------------------------------------------ connection */

static int connect_path(struct vb_qmp *q, const char *path, double deadline,
			struct vb_error *err)
{
	const char *kind = q->proto == VB_QMP_MONITOR ? "QMP socket" : "guest agent socket";
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	if (strlen(path) >= sizeof(sa.sun_path))
		return vb_error_set(err, VB_E_USAGE, ENAMETOOLONG, "%s path too long (%zu bytes, "
				    "at most %zu): %s", kind, strlen(path), sizeof(sa.sun_path) - 1,
				    path);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	q->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (q->fd < 0)
		return vb_error_set(err, VB_E_FAIL, errno, "socket: %s", strerror(errno));
	for (;;) {
		if (connect(q->fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 || errno == EISCONN)
			return 0;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN && ms_left(deadline) > 0) { /* a full backlog */
			nanosleep(&(struct timespec){ .tv_nsec = 10000000 }, NULL);
			continue;
		}
		break;
	}
	if (errno == ENOENT || errno == ECONNREFUSED || errno == ENOTSOCK || errno == ENOTDIR)
		return vb_error_set(err, VB_E_USAGE, errno, "no %s at %s: %s", kind, path,
				    strerror(errno));
	if (errno == EAGAIN)
		return vb_error_set(err, VB_E_FAIL, errno, "%s: the connection was not accepted "
				    "in %g s", q->what, q->timeout_ms / 1000.0);
	return vb_error_set(err, VB_E_FAIL, errno, "cannot connect to %s at %s: %s", kind, path,
			    strerror(errno));
}

static int monitor_greeting(struct vb_qmp *q, double deadline, struct vb_error *err)
{
	json_object *m;
	enum msg_rc rc = next_msg(q, deadline, "the greeting", &m, err);
	bool qmp;

	if (rc == MSG_TIMEOUT)
		return vb_error_set(err, VB_E_FAIL, ETIMEDOUT, "%s: no greeting in %g s (is "
				    "another client connected?)", q->what, q->timeout_ms / 1000.0);
	if (rc != MSG_OK)
		return fail_wait(q, rc, "the greeting", err);
	qmp = json_object_object_get_ex(m, "QMP", NULL);
	json_object_put(m);
	if (!qmp)
		return vb_error_set(err, VB_E_USAGE, 0, "%s is not a QMP monitor (its greeting "
				    "has no \"QMP\" member)", q->what);
	return vb_qmp_exec(q, "qmp_capabilities", NULL, NULL, err);
}

struct vb_qmp *vb_qmp_connect(enum vb_qmp_proto proto, const char *path, const char *what,
			      int timeout_ms, struct vb_error *err)
{
	struct vb_qmp *q = calloc(1, sizeof(*q));
	double deadline = deadline_in(timeout_ms);

	if (q == NULL) {
		vb_error_set(err, VB_E_FAIL, ENOMEM, "%s: out of memory", what);
		return NULL;
	}
	*q = (struct vb_qmp){ .proto = proto, .fd = -1, .timeout_ms = timeout_ms, .next_id = 1 };
	q->what = strdup(what);
	q->tok = json_tokener_new();
	q->rbuf = malloc(QMP_RBUF);
	if (q->what == NULL || q->tok == NULL || q->rbuf == NULL) {
		vb_error_set(err, VB_E_FAIL, ENOMEM, "%s: out of memory", what);
		goto fail;
	}
	if (connect_path(q, path, deadline, err) < 0)
		goto fail;
	if (proto == VB_QMP_MONITOR ? monitor_greeting(q, deadline, err) : agent_sync(q, err))
		goto fail;
	return q;
fail:
	vb_qmp_close(q);
	return NULL;
}

void vb_qmp_close(struct vb_qmp *q)
{
	if (q == NULL)
		return;
	if (q->fd >= 0)
		close(q->fd); /* a socket: nothing written is lost at close */
	vb_qmp_events_clear(q);
	json_tokener_free(q->tok);
	free(q->rbuf);
	free(q->what);
	free(q);
}
