/* fuzz_args.c: libFuzzer target for the command line's value parsers
 * (rates, numbers, modes): any input is refused or parsed consistently. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	uint64_t v, w;
	enum vb_mode m;
	char buf[32];

	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	if (cli_parse_rate(s, &v) == 0 && v == 0)
		abort(); /* a rate of 0 would mean no limit: refused */
	if (cli_parse_uint(s, 0, UINT64_MAX, &w)) {
		cli_format_size(w, buf, sizeof(buf));
		if (strlen(buf) == 0)
			abort();
	}
	(void)cli_parse_mode(s, &m);
	free(s);
	return 0;
}
