/* qemu.c: QEMU's side of sources: what a --drive spec names, and qemu-img
 * calls (bitmaps, create). */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <libnbd.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/source/source.h"

extern char **environ;

static const char *const image_formats[] = { "qcow2", "vmdk", "vdi", "vhdx" };
static const char *const nbd_schemes[] = {
	"nbd://", "nbds://", "nbd+unix://", "nbds+unix://", "nbd+vsock://", "nbds+vsock://",
};

/* ------------------------------------------------------------ specs */

bool vb_spec_is_nbd(const char *spec)
{
	for (size_t i = 0; i < sizeof(nbd_schemes) / sizeof(nbd_schemes[0]); i++)
		if (strncmp(spec, nbd_schemes[i], strlen(nbd_schemes[i])) == 0)
			return true;
	return false;
}

void vb_spec_split(const char *spec, struct vb_spec *out)
{
	const char *colon = strchr(spec, ':');

	*out = (struct vb_spec){ .kind = VB_SPEC_RAW, .path = spec };
	if (vb_spec_is_nbd(spec)) {
		out->kind = VB_SPEC_NBD;
		return;
	}
	if (colon && (size_t)(colon - spec) == 3 && strncmp(spec, "raw", 3) == 0)
		out->path = colon + 1;
	for (size_t i = 0; colon && i < sizeof(image_formats) / sizeof(image_formats[0]); i++)
		if ((size_t)(colon - spec) == strlen(image_formats[i]) &&
		    strncmp(spec, image_formats[i], strlen(image_formats[i])) == 0) {
			out->kind = VB_SPEC_IMAGE;
			out->format = image_formats[i];
			out->path = colon + 1;
		}
}

bool vb_same_object(const struct stat *a, const struct stat *b)
{
	if (S_ISBLK(a->st_mode) || S_ISBLK(b->st_mode))
		return S_ISBLK(a->st_mode) && S_ISBLK(b->st_mode) && a->st_rdev == b->st_rdev;
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

/* The image format a regular file's name ends in (".qcow2", ...), or NULL. */
static const char *format_of_name(const char *path)
{
	const char *dot = strrchr(path, '.');

	if (!dot || strchr(dot, '/'))
		return NULL;
	for (size_t i = 0; i < sizeof(image_formats) / sizeof(image_formats[0]); i++)
		if (strcmp(dot + 1, image_formats[i]) == 0)
			return image_formats[i];
	return NULL;
}

void vb_spec_classify(const char *spec, bool regular, struct vb_spec *out)
{
	const char *fmt;

	vb_spec_split(spec, out);
	/* Only a plain path, never raw:PATH, takes its format from its name. */
	if (out->kind != VB_SPEC_RAW || out->path != spec || !regular)
		return;
	if ((fmt = format_of_name(spec)) != NULL) {
		out->kind = VB_SPEC_IMAGE;
		out->format = fmt;
	}
}

int vb_spec_parse(const char *drive, const char *spec, struct vb_spec *out,
		  struct vb_error *err)
{
	struct stat st;
	bool regular = false;

	vb_spec_split(spec, out);
	if (out->path[0] == '\0')
		return vb_error_set(err, VB_E_USAGE, 0, "drive %s: %s: no path after the format",
				    drive, spec);
	/* stat, never open and read: the name decides, the content never does.
	 * An unusable path is left to the raw source to report. */
	if (out->kind == VB_SPEC_RAW && out->path == spec)
		regular = stat(spec, &st) == 0 && S_ISREG(st.st_mode);
	vb_spec_classify(spec, regular, out);
	return 0;
}

char *vb_qemu_path(const char *path)
{
	char *p = NULL;

	if (path[0] == '/')
		return strdup(path);
	if (asprintf(&p, "./%s", path) < 0)
		return NULL;
	return p;
}

/* ------------------------------------------------------------ messages */

int vb_tmpfile(void)
{
	char tmpl[] = "/tmp/vmaback-qemu.XXXXXX";
	int fd = open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

	if (fd >= 0)
		return fd;
	fd = mkostemp(tmpl, O_CLOEXEC);
	if (fd >= 0)
		unlink(tmpl);
	return fd;
}

void vb_text_line(int fd, char *buf, size_t len)
{
	char raw[1024];
	ssize_t n = -1;
	size_t o = 0;
	off_t end;

	buf[0] = '\0';
	if (fd < 0 || (end = lseek(fd, 0, SEEK_END)) <= 0)
		return;
	do
		n = pread(fd, raw, sizeof(raw) - 1,
			  end > (off_t)sizeof(raw) - 1 ? end - (off_t)sizeof(raw) + 1 : 0);
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		return;
	raw[n] = '\0';
	for (const char *line = raw; *line && o + 1 < len;) {
		size_t l = strcspn(line, "\n");
		int w = l ? snprintf(buf + o, len - o, "%s%.*s", o ? "; " : "", (int)l, line) : 0;

		if (w < 0)
			break;
		o += (size_t)w;
		line += l + (line[l] == '\n');
	}
}

bool vb_qemu_locked(const char *why)
{
	return strstr(why, "Failed to get shared \"write\" lock") ||
	       strstr(why, "Failed to get \"write\" lock");
}

/* ------------------------------------------------------------ qemu-img */

static char *read_all(int fd)
{
	off_t end = lseek(fd, 0, SEEK_END);
	char *buf;
	size_t got = 0;

	if (end < 0 || end > (off_t)16 << 20)
		return NULL;
	buf = malloc((size_t)end + 1);
	while (buf && got < (size_t)end) {
		ssize_t n = pread(fd, buf + got, (size_t)end - got, (off_t)got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			free(buf);
			return NULL;
		}
		got += (size_t)n;
	}
	if (buf)
		buf[got] = '\0';
	return buf;
}

/* Runs qemu-img with argv (no shell, stdin /dev/null): its exit status,
 * its stdout in *out when out is not NULL, its stderr as one line in msg;
 * -1 with err set when it could not run. */
static int qemu_img(const char *what, char *const *argv, char **out, char *msg, size_t msglen,
		    struct vb_error *err)
{
	posix_spawn_file_actions_t fa;
	int ofd = vb_tmpfile(), efd = vb_tmpfile(), status = 0, rc = -1, e;
	pid_t pid;

	msg[0] = '\0';
	if (out)
		*out = NULL;
	if (ofd < 0 || efd < 0) {
		vb_error_set(err, VB_E_FAIL, errno, "%s: no temporary file for qemu-img: %s", what,
			     strerror(errno));
		goto done;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, ofd, STDOUT_FILENO);
	posix_spawn_file_actions_adddup2(&fa, efd, STDERR_FILENO);
	e = posix_spawnp(&pid, "qemu-img", &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (e != 0) {
		vb_error_set(err, VB_E_FAIL, e, "%s: cannot run qemu-img: %s%s", what, strerror(e),
			     e == ENOENT ? " (Debian package qemu-utils)" : "");
		goto done;
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR) {
			vb_error_set(err, VB_E_FAIL, errno, "%s: waiting for qemu-img: %s", what,
				     strerror(errno));
			goto done;
		}
	vb_text_line(efd, msg, msglen);
	if (!WIFEXITED(status)) {
		vb_error_set(err, VB_E_FAIL, 0, "%s: qemu-img %s was killed by signal %d", what,
			     argv[1], WIFSIGNALED(status) ? WTERMSIG(status) : 0);
		goto done;
	}
	rc = WEXITSTATUS(status);
	if (rc == 0 && out && !(*out = read_all(ofd))) {
		vb_error_set(err, VB_E_FAIL, errno, "%s: cannot read what qemu-img %s printed",
			     what, argv[1]);
		rc = -1;
	}
done:
	if (ofd >= 0)
		close(ofd);
	if (efd >= 0)
		close(efd);
	return rc;
}

static int img_failed(const char *what, const char *op, const char *msg, struct vb_error *err)
{
	if (vb_qemu_locked(msg))
		return vb_error_set(err, VB_E_LOCKED, 0, "%s is in use by another program (a "
				    "running VM?); back up a running VM through an NBD export "
				    "instead (%s)", what, msg);
	return vb_error_set(err, VB_E_FAIL, 0, "%s: qemu-img %s failed: %s", what, op,
			    msg[0] ? msg : "no message");
}

static int parse_bitmaps(const char *what, const char *json, struct vb_qbitmap **out,
			 size_t *n, struct vb_error *err)
{
	json_object *root = json_tokener_parse(json), *fs, *data, *list;
	int rc = -1;

	*out = NULL;
	*n = 0;
	if (!root || !json_object_is_type(root, json_type_object)) {
		vb_error_set(err, VB_E_FAIL, 0, "%s: qemu-img info printed no JSON", what);
		goto out;
	}
	if (!json_object_object_get_ex(root, "format-specific", &fs) ||
	    !json_object_object_get_ex(fs, "data", &data) ||
	    !json_object_object_get_ex(data, "bitmaps", &list) ||
	    !json_object_is_type(list, json_type_array)) {
		rc = 0; /* no bitmaps */
		goto out;
	}
	*out = calloc(json_object_array_length(list) + 1, sizeof(**out));
	if (!*out) {
		vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < json_object_array_length(list); i++) {
		json_object *b = json_object_array_get_idx(list, i), *name, *flags;
		struct vb_qbitmap *q = &(*out)[*n];

		if (!json_object_object_get_ex(b, "name", &name) ||
		    !json_object_is_type(name, json_type_string))
			continue;
		q->name = strdup(json_object_get_string(name));
		if (!q->name) {
			vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
			goto out;
		}
		(*n)++;
		if (!json_object_object_get_ex(b, "flags", &flags) ||
		    !json_object_is_type(flags, json_type_array))
			continue;
		for (size_t f = 0; f < json_object_array_length(flags); f++) {
			const char *s = json_object_get_string(json_object_array_get_idx(flags, f));

			q->enabled |= s && strcmp(s, "auto") == 0;
			q->in_use |= s && strcmp(s, "in-use") == 0;
		}
	}
	rc = 0;
out:
	json_object_put(root);
	return rc;
}

int vb_qcow2_bitmaps(const char *what, const char *path, struct vb_qbitmap **out, size_t *n,
		     struct vb_error *err)
{
	char *p = vb_qemu_path(path), *json = NULL, msg[600];
	char *argv[] = { "qemu-img", "info", "--output=json", "-f", "qcow2", "--", p, NULL };
	int rc;

	*out = NULL;
	*n = 0;
	if (!p)
		return vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
	rc = qemu_img(what, argv, &json, msg, sizeof(msg), err);
	if (rc > 0)
		img_failed(what, "info", msg, err);
	if (rc == 0 && parse_bitmaps(what, json, out, n, err) < 0) {
		vb_qcow2_bitmaps_free(*out, *n);
		*out = NULL;
		*n = 0;
		rc = -1;
	}
	free(json);
	free(p);
	return rc == 0 ? 0 : -1;
}

void vb_qcow2_bitmaps_free(struct vb_qbitmap *b, size_t n)
{
	for (size_t i = 0; b && i < n; i++)
		free(b[i].name);
	free(b);
}

int vb_qcow2_bitmap_op(const char *what, const char *path, const char *op, const char *name,
		       struct vb_error *err)
{
	char *p = vb_qemu_path(path), msg[600];
	char *argv[] = { "qemu-img", "bitmap", (char *)op, "-f", "qcow2", "--", p, (char *)name,
			 NULL, NULL, NULL };
	int rc;

	if (!p)
		return vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
	if (strcmp(op, "--add") == 0) { /* 64 KiB: one bit per VMA cluster */
		memmove(argv + 5, argv + 3, 5 * sizeof(*argv));
		argv[3] = "-g";
		argv[4] = "65536";
	}
	rc = qemu_img(what, argv, NULL, msg, sizeof(msg), err);
	if (rc > 0)
		img_failed(what, "bitmap", msg, err);
	free(p);
	return rc == 0 ? 0 : -1;
}

/* qemu-img create of a new image; with backing, a raw backing file that
 * is not opened now (-u). */
static int img_create(const char *what, const char *format, const char *path,
		      const char *backing, uint64_t size, struct vb_error *err)
{
	char *p = vb_qemu_path(path), bytes[32], msg[600];
	char *argv[16] = { "qemu-img", "create", "-q", "-f", (char *)format };
	size_t n = 5;
	int rc;

	if (!p)
		return vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
	if (backing) {
		argv[n++] = "-u";
		argv[n++] = "-b";
		argv[n++] = (char *)backing;
		argv[n++] = "-F";
		argv[n++] = "raw";
	}
	snprintf(bytes, sizeof(bytes), "%llu", (unsigned long long)size);
	argv[n++] = "--";
	argv[n++] = p;
	argv[n++] = bytes;
	argv[n] = NULL;
	rc = qemu_img(what, argv, NULL, msg, sizeof(msg), err);
	if (rc > 0)
		img_failed(what, "create", msg, err);
	free(p);
	return rc == 0 ? 0 : -1;
}

int vb_qemu_img_create(const char *what, const char *format, const char *path, uint64_t size,
		       struct vb_error *err)
{
	return img_create(what, format, path, NULL, size, err);
}

int vb_qemu_img_overlay(const char *what, const char *path, const char *backing, uint64_t size,
			struct vb_error *err)
{
	return img_create(what, "qcow2", path, backing, size, err);
}
