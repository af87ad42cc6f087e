/* qmp.c: a client of QEMU's QMP monitor and of the guest agent over a unix
 * socket, on json-c (the interface and its promises are in qmp_int.h):
 * commands and replies, events, the agent's sync, connecting; the socket
 * itself is qmp_wire.c's. A signal does not cut a wait short (EINTR is
 * retried, the cancel flag not read): the clean-up after one (thaw,
 * teardown) runs on this client. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "core/source/qmp_wire_int.h"

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
	double deadline = qmp_deadline_in(timeout_ms);
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
		enum msg_rc rc = qmp_next_msg(q, deadline, name, &m, err);

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
	rc = qmp_send_all(q, ff ? line : line + 1, len + 1 + ff, deadline, cmd, err);
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
		enum msg_rc rc = qmp_next_msg(q, deadline, cmd, &m, err);

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
	double deadline = qmp_deadline_in(q->timeout_ms);
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
	qmp_tok_reset(q);
	for (;;) {
		json_object *m, *r;
		enum msg_rc rc = qmp_next_msg(q, deadline, "guest-sync-delimited", &m, err);
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
	deadline = qmp_deadline_in(q->timeout_ms);
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

static int monitor_greeting(struct vb_qmp *q, double deadline, struct vb_error *err)
{
	json_object *m;
	enum msg_rc rc = qmp_next_msg(q, deadline, "the greeting", &m, err);
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
	double deadline = qmp_deadline_in(timeout_ms);

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
	if (qmp_connect_path(q, path, deadline, err) < 0)
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
