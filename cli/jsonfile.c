/* jsonfile.c: a settings file (--config-file) read as one JSON value, at
 * most 1 MiB, with a message that says where it is not JSON. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "cli/cli.h"

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
	text = calloc(1, 1024 * 1024 + 1);
	len = text ? fread(text, 1, 1024 * 1024 + 1, f) : 0;
	fclose(f);
	tok = json_tokener_new();
	if (text && tok && len <= 1024 * 1024)
		root = json_tokener_parse_ex(tok, text, (int)len);
	if (!text || !tok)
		cli_usage(cmd, "out of memory");
	else if (len > 1024 * 1024)
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
