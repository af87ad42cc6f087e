/* jsonfile.c: a settings file (--config-file) read as one JSON value, at
 * most 1 MiB, with a message that says where it is not JSON. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "cli/cli.h"

#define MAX_SETTINGS (1024 * 1024)

/* Up to max + 1 bytes of f (one more than allowed says "too large"), in a
 * buffer that grows with what is there, NUL-terminated; NULL if out of
 * memory or on a read error (errno). */
static char *read_upto(FILE *f, size_t max, size_t *len)
{
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap + 1), *nb;

	while (buf) {
		n += fread(buf + n, 1, cap - n, f);
		if (ferror(f)) {
			free(buf);
			return NULL;
		}
		if (n < cap || cap > max)
			break; /* the end, or one byte beyond the limit */
		cap = cap * 2 > max + 1 ? max + 1 : cap * 2;
		nb = realloc(buf, cap + 1);
		if (!nb)
			free(buf);
		buf = nb;
	}
	if (buf) {
		buf[n] = '\0';
		*len = n;
	}
	return buf;
}

json_object *cli_load_json_file(const char *cmd, const char *path)
{
	FILE *f = fopen(path, "re");
	char *text = NULL;
	size_t len = 0;
	json_object *root = NULL;
	struct json_tokener *tok;

	if (!f) {
		cli_usage(cmd, "--config-file %s: %s", path, strerror(errno));
		return NULL;
	}
	errno = 0;
	text = read_upto(f, MAX_SETTINGS, &len);
	fclose(f);
	if (!text && errno && errno != ENOMEM) {
		cli_usage(cmd, "--config-file %s: %s", path, strerror(errno));
		return NULL;
	}
	tok = json_tokener_new();
	if (text && tok && len <= MAX_SETTINGS)
		root = json_tokener_parse_ex(tok, text, (int)len);
	if (!text || !tok)
		cli_usage(cmd, "out of memory");
	else if (len > MAX_SETTINGS)
		cli_usage(cmd, "--config-file %s: larger than 1 MiB", path);
	else if (!root || json_tokener_get_parse_end(tok) != len)
		cli_usage(cmd, "--config-file %s: not valid JSON (%s at byte %zu)", path,
			  json_tokener_get_error(tok) == json_tokener_continue ? "it ends early" :
			  json_tokener_get_error(tok) == json_tokener_success ? "extra text" :
			  json_tokener_error_desc(json_tokener_get_error(tok)),
			  json_tokener_get_parse_end(tok));
	if (root && json_tokener_get_parse_end(tok) != len) {
		json_object_put(root);
		root = NULL;
	}
	json_tokener_free(tok);
	free(text);
	return root;
}
