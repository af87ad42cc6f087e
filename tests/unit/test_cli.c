/* test_cli.c: unit tests of the command line's parsers: sizes, rates,
 * modes, and backup options from the command line and a --config-file;
 * the printing of core's warnings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <json-c/json.h>

#include "cli/backup_opts.h"

static void test_parse_uint(void **state)
{
	uint64_t v = 0;

	(void)state;
	assert_true(cli_parse_uint("0", 0, 10, &v) && v == 0);
	assert_true(cli_parse_uint("19", 1, 19, &v) && v == 19);
	assert_false(cli_parse_uint("20", 1, 19, &v));
	assert_false(cli_parse_uint("", 0, 10, &v));
	assert_false(cli_parse_uint("-1", 0, 10, &v));
	assert_false(cli_parse_uint(" 1", 0, 10, &v));
	assert_false(cli_parse_uint("1x", 0, 10, &v));
	assert_false(cli_parse_uint("18446744073709551616", 0, UINT64_MAX, &v));
	assert_true(cli_parse_uint("18446744073709551615", 0, UINT64_MAX, &v));
	assert_true(v == UINT64_MAX);
}

static void test_parse_rate(void **state)
{
	static const struct { const char *s; uint64_t v; } ok[] = {
		{ "50M", 50u << 20 }, { "1G", 1u << 30 }, { "800K", 800u << 10 },
		{ "800", 800u << 10 }, { "1", 1024 }, { "50MiB", 50u << 20 },
		{ "50MB/s", 50u << 20 }, { "2m", 2u << 20 }, { "100B", 100 },
		{ "1T", UINT64_C(1) << 40 },
	};
	static const char *const bad[] = {
		"", "M", "0", "0M", "-5M", "5X", "5 M", "5M/h", "1.5M", "99999999999999999999",
		"1099511627777T", "5MiBB",
	};
	uint64_t v;

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		v = 0;
		assert_int_equal(cli_parse_rate(ok[i].s, &v), 0);
		assert_true(v == ok[i].v);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(cli_parse_rate(bad[i], &v), -1);
}

static void test_parse_mode(void **state)
{
	enum vb_mode m;

	(void)state;
	assert_int_equal(cli_parse_mode("auto", &m), 0);
	assert_int_equal(m, VB_MODE_AUTO);
	assert_int_equal(cli_parse_mode("differential", &m), 0);
	assert_int_equal(m, VB_MODE_DIFFERENTIAL);
	assert_int_equal(cli_parse_mode("Full", &m), -1);
	assert_int_equal(cli_parse_mode("", &m), -1);
}

static void test_format_size(void **state)
{
	char b[32];

	(void)state;
	cli_format_size(0, b, sizeof(b));
	assert_string_equal(b, "0 B");
	cli_format_size(1023, b, sizeof(b));
	assert_string_equal(b, "1023 B");
	cli_format_size(1536, b, sizeof(b));
	assert_string_equal(b, "1.5 KiB");
	cli_format_size(UINT64_C(10) << 30, b, sizeof(b));
	assert_string_equal(b, "10.0 GiB");
	cli_format_size(UINT64_MAX, b, sizeof(b));
	assert_string_equal(b, "16384.0 PiB");
}

/* The options point into argv: it lives until done(). */
static char *argv_copy[32];

static int parse(struct backup_args *a, const char *const *args)
{
	int argc = 0;

	for (; args[argc]; argc++)
		argv_copy[argc] = strdup(args[argc]);
	argv_copy[argc] = NULL;
	return backup_args_parse(a, argc, argv_copy);
}

static void done(struct backup_args *a)
{
	backup_args_free(a);
	for (int i = 0; argv_copy[i]; i++) {
		free(argv_copy[i]);
		argv_copy[i] = NULL;
	}
}

static char *write_tmp(const char *text)
{
	char *path = strdup("/tmp/vmaback-test-cli-XXXXXX");
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

static void test_backup_args(void **state)
{
	struct backup_args a;
	const char *const basic[] = { "backup", "-d", "d0=/x", "--drive", "d1=/y", "-o",
				      "out.vma.zst", "--bwlimit", "20M", "--set", "s", NULL };
	const char *const none[] = { "backup", "-d", "d0=/x", NULL };
	const char *const both[] = { "backup", "-d", "d0=/x", "-o", "x", "--output-cmd", "cat",
				     NULL };
	const char *const gz[] = { "backup", "-d", "d0=/x", "-o", "x.vma.gz", NULL };
	const char *const since[] = { "backup", "-d", "d0=/x", "-o", "x", "--since", "c",
				      NULL };
	const char *const noeq[] = { "backup", "-d", "d0", "-o", "x", NULL };

	(void)state;
	assert_int_equal(parse(&a, basic), 0);
	assert_int_equal(a.ndrives, 2);
	assert_string_equal(a.drives[1].name, "d1");
	assert_string_equal(a.drives[1].spec, "/y");
	assert_int_equal(a.compress, 1);
	assert_true(a.bwlimit == 20u << 20);
	assert_string_equal(a.set, "s");
	done(&a);
	assert_int_equal(parse(&a, none), EXIT_USAGE);
	done(&a);
	assert_int_equal(parse(&a, both), EXIT_USAGE);
	done(&a);
	assert_int_equal(parse(&a, gz), EXIT_USAGE);
	done(&a);
	assert_int_equal(parse(&a, since), EXIT_USAGE);
	done(&a);
	assert_int_equal(parse(&a, noeq), EXIT_USAGE);
	done(&a);
}

static void test_config_file(void **state)
{
	char *good = write_tmp("{\"set\": \"vm1\", \"drives\": [\"a=/dev/a\", \"b=/dev/b\"],"
			       " \"output\": \"/b/x.vma\", \"zstd-level\": 5, \"quiet\": true,"
			       " \"force\": false, \"configs\": [\"/etc/c.conf\"]}");
	char *unknown = write_tmp("{\"drivez\": [\"a=/x\"], \"output\": \"x\"}");
	char *notobj = write_tmp("[1, 2]");
	char *broken = write_tmp("{\"set\": ");
	char *badtype = write_tmp("{\"output\": [\"x\"]}");
	struct backup_args a;
	char cf[] = "--config-file";

	(void)state;
	{
		const char *const args[] = { "backup", cf, good, NULL };

		assert_int_equal(parse(&a, args), 0);
		assert_int_equal(a.ndrives, 2);
		assert_string_equal(a.drives[0].spec, "/dev/a");
		assert_int_equal(a.zlevel, 5);
		assert_true(a.quiet);
		assert_false(a.force);
		assert_int_equal(a.nconfigs, 1);
		assert_string_equal(a.out, "/b/x.vma");
		done(&a);
	}
	{	/* the command line overrides the file, drives replace its drives */
		const char *const args[] = { "backup", "-d", "c=/dev/c", cf, good, "-o", "y.vma",
					     "--zstd-level", "7", NULL };

		assert_int_equal(parse(&a, args), 0);
		assert_int_equal(a.ndrives, 1);
		assert_string_equal(a.drives[0].name, "c");
		assert_string_equal(a.out, "y.vma");
		assert_int_equal(a.zlevel, 7);
		done(&a);
	}
	{
		const char *const args[] = { "backup", cf, unknown, NULL };

		assert_int_equal(parse(&a, args), EXIT_USAGE);
		done(&a);
	}
	{
		const char *const args[] = { "backup", cf, notobj, NULL };

		assert_int_equal(parse(&a, args), EXIT_USAGE);
		done(&a);
	}
	{
		const char *const args[] = { "backup", cf, broken, NULL };

		assert_int_equal(parse(&a, args), EXIT_USAGE);
		done(&a);
	}
	{
		const char *const args[] = { "backup", cf, badtype, NULL };

		assert_int_equal(parse(&a, args), EXIT_USAGE);
		done(&a);
	}
	{
		const char *const args[] = { "backup", cf, "/nonexistent/x.json", NULL };

		assert_int_equal(parse(&a, args), EXIT_USAGE);
		done(&a);
	}
	unlink(good);
	unlink(unknown);
	unlink(notobj);
	unlink(broken);
	unlink(badtype);
	free(good);
	free(unknown);
	free(notobj);
	free(broken);
	free(badtype);
}

/* A settings file of up to 1 MiB is read whole, whatever its size (the
 * buffer grows with it); one byte more, or a directory, is a usage error. */
static void test_config_file_sizes(void **state)
{
	const size_t max = 1024 * 1024;
	const char *json = "{\"drives\": [\"a=/x\"], \"output\": \"o.vma\"}";
	char *text = malloc(max + 2), *path = strdup("/tmp/vmaback-test-cli-XXXXXX");
	char cf[] = "--config-file";
	struct backup_args a;
	int fd = mkstemp(path);

	(void)state;
	assert_true(fd >= 0);
	close(fd);
	memset(text, ' ', max + 1);
	memcpy(text + max - strlen(json), json, strlen(json)); /* ends at byte max */
	for (int i = 0; i < 3; i++) {
		size_t len = i == 0 ? max : i == 1 ? max + 1 : 4097;
		const char *const args[] = { "backup", cf, path, NULL };
		FILE *f = fopen(path, "w");

		assert_non_null(f);
		if (i == 2) /* 4097 bytes: past the first 4 KiB read */
			assert_int_equal(fwrite(text + max - 4097, 1, len, f), len);
		else
			assert_int_equal(fwrite(text, 1, len, f), len);
		assert_int_equal(fclose(f), 0);
		assert_int_equal(parse(&a, args), i == 1 ? EXIT_USAGE : 0);
		if (i != 1)
			assert_string_equal(a.out, "o.vma");
		done(&a);
	}
	{
		const char *const args[] = { "backup", cf, "/tmp", NULL };

		assert_int_equal(parse(&a, args), EXIT_USAGE);
		done(&a);
	}
	unlink(path);
	free(path);
	free(text);
}

/* Names as printed: one line, no control character, no byte outside UTF-8;
 * valid UTF-8 (also non-ASCII) passes unchanged. */
static void test_printable(void **state)
{
	char out[64];

	(void)state;
	vb_name_printable("a\nb\\c\x1b[1m\x7f", out, sizeof(out));
	assert_string_equal(out, "a\\x0ab\\x5cc\\x1b[1m\\x7f");
	vb_name_printable("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", out, sizeof(out));
	assert_string_equal(out, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
	/* lone bytes, an overlong '/', a surrogate, a cut sequence, C1 CSI */
	vb_name_printable("\xff\xc0\xaf\xed\xa0\x80\xe2\x82", out, sizeof(out));
	assert_string_equal(out, "\\xff\\xc0\\xaf\\xed\\xa0\\x80\\xe2\\x82");
	vb_name_printable("\xc2\x9b" "2J", out, sizeof(out));
	assert_string_equal(out, "\\xc2\\x9b2J");
	/* cut to fit, never inside an escape or a character */
	vb_name_printable("ab\ncd", out, 6);
	assert_string_equal(out, "ab");
	vb_name_printable("a\xe2\x82\xac", out, 4);
	assert_string_equal(out, "a");
	/* whole messages keep their backslashes */
	vb_printable("x\\x0a\ny", false, out, sizeof(out));
	assert_string_equal(out, "x\\x0a\\x0ay");
	assert_int_equal(vb_utf8_len((const unsigned char *)"\xf4\x90\x80\x80", 4), 0);
	assert_int_equal(vb_utf8_len((const unsigned char *)"\xf4\x8f\xbf\xbf", 4), 4);
}

/* Core's warnings through the one output path: held, then printed to the
 * log file (quiet: not on stderr) as "INFO: " lines, and kept as records
 * for --json. */
static void test_warnings(void **state)
{
	char path[] = "/tmp/vb-test-warn.XXXXXX", text[1024] = "";
	struct vb_warning w1 = { VB_WARN_LEFTOVER, NULL, "removed 1 leftover file" };
	struct vb_warning w2 = { VB_WARN_FULL, "scsi0", "drive scsi0: no bitmap; full backup" };
	struct json_object *a, *o;
	const char *why = NULL;
	int fd = mkstemp(path);
	FILE *f;

	(void)state;
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(cli_log_open(path, &why), 0);
	cli_warnings_style(NULL, true);
	cli_warnings_hold(true);
	cli_on_warning(NULL, &w1);
	cli_on_warning(NULL, &w2);
	cli_log_close(); /* flushed: nothing printed yet */
	f = fopen(path, "r");
	assert_non_null(f);
	assert_int_equal(fread(text, 1, sizeof(text) - 1, f), 0);
	fclose(f);
	assert_int_equal(cli_log_open(path, &why), 0);
	cli_warnings_hold(false);
	cli_log_close();
	f = fopen(path, "r");
	assert_non_null(f);
	assert_true(fread(text, 1, sizeof(text) - 1, f) > 0);
	fclose(f);
	assert_non_null(strstr(text, "INFO: removed 1 leftover file\n"));
	assert_non_null(strstr(text, "INFO: drive scsi0: no bitmap; full backup\n"));
	assert_true(strstr(text, "leftover") < strstr(text, "scsi0"));
	assert_int_equal(cli_warnings_count(), 2);
	a = cli_warnings_json();
	assert_int_equal(json_object_array_length(a), 2);
	o = json_object_array_get_idx(a, 1);
	assert_string_equal(json_object_get_string(json_object_object_get(o, "kind")),
			    "full-backup");
	assert_string_equal(json_object_get_string(json_object_object_get(o, "drive")), "scsi0");
	assert_string_equal(json_object_get_string(json_object_object_get(o, "message")),
			    w2.msg);
	o = json_object_array_get_idx(a, 0);
	assert_string_equal(json_object_get_string(json_object_object_get(o, "kind")),
			    "leftover");
	assert_true(json_object_is_type(json_object_object_get(o, "drive"), json_type_null));
	json_object_put(a);
	cli_warnings_end();
	assert_int_equal(cli_warnings_count(), 0);
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_uint),
		cmocka_unit_test(test_parse_rate),
		cmocka_unit_test(test_parse_mode),
		cmocka_unit_test(test_format_size),
		cmocka_unit_test(test_backup_args),
		cmocka_unit_test(test_config_file),
		cmocka_unit_test(test_config_file_sizes),
		cmocka_unit_test(test_printable),
		cmocka_unit_test(test_warnings),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
