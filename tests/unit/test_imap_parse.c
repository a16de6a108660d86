/* Unit tests for imap/imap_parse: tags, atoms, strings, literals, lists, sequence sets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "imap/imap_cmd.h"
#include "imap/imap_parse.h"
#include "lib/buf.h"

static void
parse_ok(const char *data, size_t len, struct imap_cmd *cmd)
{
	const char *err = NULL;
	int rc = imap_parse_command(data, len, cmd, &err);
	if (rc != 0)
		fail_msg("parse of '%s' failed: %s", data, err);
}

static void
parse_bad(const char *data, const char *tag)
{
	struct imap_cmd cmd;
	const char *err = NULL;
	assert_int_equal(imap_parse_command(data, strlen(data), &cmd, &err), -1);
	assert_non_null(err);
	if (tag == NULL)
		assert_null(cmd.tag);
	else
		assert_string_equal(cmd.tag, tag);
	imap_cmd_clear(&cmd);
}

static void
test_simple_commands(void **state)
{
	struct imap_cmd cmd;
	const char *s = "a001 login \"joe@example.org\" secret";
	parse_ok(s, strlen(s), &cmd);
	assert_string_equal(cmd.tag, "a001");
	assert_string_equal(cmd.name, "LOGIN");
	assert_int_equal(cmd.nargs, 2);
	assert_int_equal(cmd.args[0].type, IMAP_ARG_QUOTED);
	assert_string_equal(cmd.args[0].str, "joe@example.org");
	assert_int_equal(cmd.args[1].type, IMAP_ARG_ATOM);
	assert_string_equal(cmd.args[1].str, "secret");
	imap_cmd_clear(&cmd);

	s = "x CAPABILITY";
	parse_ok(s, strlen(s), &cmd);
	assert_string_equal(cmd.name, "CAPABILITY");
	assert_int_equal(cmd.nargs, 0);
	imap_cmd_clear(&cmd);

	/* Escapes in quoted strings. */
	s = "t LOGIN \"a\\\"b\\\\c\" \"\"";
	parse_ok(s, strlen(s), &cmd);
	assert_string_equal(cmd.args[0].str, "a\"b\\c");
	assert_int_equal(cmd.args[1].len, 0);
	imap_cmd_clear(&cmd);
}

static void
test_lists_and_body_atoms(void **state)
{
	struct imap_cmd cmd;
	const char *s = "f1 UID FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (From To)]<0.200> "
	    "(nested (deep)) NIL)";
	parse_ok(s, strlen(s), &cmd);
	assert_string_equal(cmd.name, "UID");
	assert_int_equal(cmd.nargs, 3);
	assert_string_equal(cmd.args[0].str, "FETCH");
	assert_string_equal(cmd.args[1].str, "1:*");
	const struct imap_arg *l = &cmd.args[2];
	assert_int_equal(l->type, IMAP_ARG_LIST);
	assert_int_equal(l->len, 4);
	assert_string_equal(l->list[0].str, "FLAGS");
	assert_string_equal(l->list[1].str, "BODY.PEEK[HEADER.FIELDS (From To)]<0.200>");
	assert_int_equal(l->list[2].type, IMAP_ARG_LIST);
	assert_int_equal(l->list[2].list[1].type, IMAP_ARG_LIST);
	assert_string_equal(l->list[2].list[1].list[0].str, "deep");
	assert_true(imap_arg_is_nil(&l->list[3]));
	imap_cmd_clear(&cmd);

	s = "s STORE 1 +FLAGS.SILENT (\\Seen \\Deleted)";
	parse_ok(s, strlen(s), &cmd);
	assert_string_equal(cmd.args[2].list[0].str, "\\Seen");
	imap_cmd_clear(&cmd);

	s = "l LIST \"\" %";
	parse_ok(s, strlen(s), &cmd);
	assert_string_equal(cmd.args[1].str, "%");
	imap_cmd_clear(&cmd);

	s = "e LIST () ()";
	parse_ok(s, strlen(s), &cmd);
	assert_int_equal(cmd.args[0].type, IMAP_ARG_LIST);
	assert_int_equal(cmd.args[0].len, 0);
	imap_cmd_clear(&cmd);
}

static void
test_literals(void **state)
{
	uint64_t n;
	int plus;
	assert_int_equal(imap_literal_announced("a APPEND INBOX {12}", 19, &n, &plus), 1);
	assert_int_equal(n, 12);
	assert_int_equal(plus, 0);
	assert_int_equal(imap_literal_announced("a LOGIN {5+}", 12, &n, &plus), 1);
	assert_int_equal(n, 5);
	assert_int_equal(plus, 1);
	assert_int_equal(imap_literal_announced("a NOOP", 6, &n, &plus), 0);
	assert_int_equal(imap_literal_announced("a X {}", 6, &n, &plus), -1);
	assert_int_equal(imap_literal_announced("a X {123456789012345678901}", 27, &n, &plus), -1);
	assert_int_equal(imap_literal_announced("a X }", 5, &n, &plus), 0);

	/* A framed command with two literals, one binary with a NUL and CRLF. */
	static const char framed[] = "A1 LOGIN {3}\r\nj\0e {4+}\r\np\r\nw";
	struct imap_cmd cmd;
	parse_ok(framed, sizeof(framed) - 1, &cmd);
	assert_int_equal(cmd.nargs, 2);
	assert_int_equal(cmd.args[0].type, IMAP_ARG_LITERAL);
	assert_int_equal(cmd.args[0].len, 3);
	assert_memory_equal(cmd.args[0].str, "j\0e", 3);
	assert_int_equal(cmd.args[1].len, 4);
	assert_memory_equal(cmd.args[1].str, "p\r\nw", 4);
	imap_cmd_clear(&cmd);

	/* A literal inside a list (APPEND-like) followed by more arguments. */
	static const char inlist[] = "b SEARCH (SUBJECT {2}\r\nhi) ALL";
	parse_ok(inlist, sizeof(inlist) - 1, &cmd);
	assert_string_equal(cmd.args[0].list[1].str, "hi");
	assert_string_equal(cmd.args[1].str, "ALL");
	imap_cmd_clear(&cmd);

	/* Announced longer than what is there. */
	static const char shortlit[] = "c LOGIN {10}\r\nabc";
	const char *err;
	assert_int_equal(imap_parse_command(shortlit, sizeof(shortlit) - 1, &cmd, &err), -1);
	assert_string_equal(cmd.tag, "c");
	imap_cmd_clear(&cmd);
}

static void
test_bad_syntax(void **state)
{
	parse_bad("", NULL);
	parse_bad("NOOP", NULL);                      /* no command after the tag */
	parse_bad("* NOOP", NULL);                    /* '*' is not a tag */
	parse_bad("+ NOOP", NULL);
	parse_bad("a (NOOP", "a");                    /* not a command name */
	parse_bad("a LOGIN \"unterminated", "a");
	parse_bad("a LOGIN \"bad\\escape\"", "a");
	parse_bad("a FETCH 1 (FLAGS", "a");           /* missing ) */
	parse_bad("a FETCH 1 FLAGS)", "a");           /* unexpected ) */
	parse_bad("a FETCH 1 BODY[HEADER", "a");      /* unterminated [ */
	parse_bad("a X \"q\"x", "a");                 /* missing space */
	parse_bad("a X \x01", "a");                   /* control character */
	parse_bad("a X {3x}\r\nabc", "a");
	/* Deep nesting is refused, and freed without leaks (ASan build). */
	struct buf b = BUF_INIT;
	buf_append_str(&b, "d X ");
	for (int i = 0; i < 100; i++)
		buf_append_char(&b, '(');
	parse_bad(buf_cstr(&b), "d");
	buf_free(&b);
	/* A long tag. */
	char tag[200];
	memset(tag, 'a', sizeof(tag) - 1);
	tag[sizeof(tag) - 1] = '\0';
	struct buf t = BUF_INIT;
	buf_appendf(&t, "%s NOOP", tag);
	parse_bad(buf_cstr(&t), NULL);
	buf_free(&t);
}

static void
test_seqsets(void **state)
{
	struct imap_seqset s;
	assert_int_equal(imap_seqset_parse("1,3:5,9:*", &s), 0);
	assert_int_equal(s.n, 3);
	assert_true(imap_seqset_contains(&s, 1, 20));
	assert_false(imap_seqset_contains(&s, 2, 20));
	assert_true(imap_seqset_contains(&s, 4, 20));
	assert_false(imap_seqset_contains(&s, 6, 20));
	assert_true(imap_seqset_contains(&s, 9, 20));
	assert_true(imap_seqset_contains(&s, 20, 20));
	imap_seqset_free(&s);

	/* "n:*" with n above the largest: still the largest (RFC 3501 6.4.8). */
	assert_int_equal(imap_seqset_parse("100:*", &s), 0);
	assert_true(imap_seqset_contains(&s, 50, 50));
	assert_false(imap_seqset_contains(&s, 49, 50));
	imap_seqset_free(&s);

	/* Reversed ranges. */
	assert_int_equal(imap_seqset_parse("5:2", &s), 0);
	assert_true(imap_seqset_contains(&s, 3, 10));
	imap_seqset_free(&s);

	assert_int_equal(imap_seqset_parse("*", &s), 0);
	assert_true(imap_seqset_contains(&s, 7, 7));
	assert_false(imap_seqset_contains(&s, 6, 7));
	imap_seqset_free(&s);

	const char *bad[] = { "", "0", "1,", ",1", "1:", "a", "1:2:3", "1 2", "4294967296",
		"01" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (imap_seqset_parse(bad[i], &s) != -1)
			fail_msg("'%s' should not parse", bad[i]);
	}
}

/* Resolved sets: '*' replaced, ranges ordered, sorted, merged; same members. */
static void
test_seqset_resolve(void **state)
{
	struct imap_seqset s, r;
	assert_int_equal(imap_seqset_parse("9:*,7,3:1,4,12,11,30:40", &s), 0);
	imap_seqset_resolve(&s, 20, &r);
	assert_int_equal(r.n, 4);
	assert_int_equal(r.r[0].lo, 1);
	assert_int_equal(r.r[0].hi, 4);
	assert_int_equal(r.r[1].lo, 7);
	assert_int_equal(r.r[1].hi, 7);
	assert_int_equal(r.r[2].lo, 9);
	assert_int_equal(r.r[2].hi, 20);
	assert_int_equal(r.r[3].lo, 30);
	assert_int_equal(r.r[3].hi, 40);
	for (uint32_t v = 1; v <= 45; v++) {
		int in = 0;
		for (size_t i = 0; i < r.n; i++)
			in |= v >= r.r[i].lo && v <= r.r[i].hi;
		if (in != imap_seqset_contains(&s, v, 20))
			fail_msg("resolved set differs at %u", v);
	}
	assert_int_equal(imap_seqset_max(&s, 20), 40);
	assert_int_equal(imap_seqset_max(&s, 50), 50);
	imap_seqset_free(&r);
	imap_seqset_free(&s);

	/* "5:*" with '*' below 5 is 3:5 (RFC 3501: the order does not matter) */
	assert_int_equal(imap_seqset_parse("5:*", &s), 0);
	imap_seqset_resolve(&s, 3, &r);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.r[0].lo, 3);
	assert_int_equal(r.r[0].hi, 5);
	assert_int_equal(imap_seqset_max(&s, 3), 5);
	imap_seqset_free(&r);
	imap_seqset_free(&s);

	/* the largest number: no overflow when merging up to UINT32_MAX - 1 */
	assert_int_equal(imap_seqset_parse("4294967294,1:4294967293", &s), 0);
	imap_seqset_resolve(&s, 0, &r);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.r[0].hi, 4294967294u);
	imap_seqset_free(&r);
	imap_seqset_free(&s);
}

static void
test_quote(void **state)
{
	struct buf b = BUF_INIT;
	imap_quote(&b, "a\"b", 3);
	assert_string_equal(buf_cstr(&b), "\"a\\\"b\"");
	buf_reset(&b);
	imap_quote(&b, "line\r\nbreak", 11);
	assert_string_equal(buf_cstr(&b), "{11}\r\nline\r\nbreak");
	buf_free(&b);
}

static void
test_datetime_and_flags(void **state)
{
	/* 1996-07-17 02:44:25 -0700 = 09:44:25 UTC = 837596665 */
	assert_int_equal(imap_parse_datetime("17-Jul-1996 02:44:25 -0700"), 837596665);
	assert_int_equal(imap_parse_datetime(" 7-Jul-1996 09:44:25 +0000"), 836732665);
	assert_int_equal(imap_parse_datetime("17-Foo-1996 02:44:25 -0700"), -1);
	assert_int_equal(imap_parse_datetime("17-Jul-1996"), -1);

	struct imap_cmd cmd;
	const char *s = "a STORE 1 FLAGS (\\Seen \\deleted $Junk) \\Flagged";
	parse_ok(s, strlen(s), &cmd);
	unsigned f;
	assert_int_equal(imap_flags_parse(&cmd.args[2], &f), 0);
	assert_int_equal(f, CMBOX_F_SEEN | CMBOX_F_DELETED);   /* keywords are ignored */
	assert_int_equal(imap_flags_parse(&cmd.args[3], &f), 0);
	assert_int_equal(f, CMBOX_F_FLAGGED);
	struct buf b = BUF_INIT;
	imap_flags_render(&b, CMBOX_F_SEEN | CMBOX_F_RECENT | CMBOX_F_DRAFT);
	assert_string_equal(buf_cstr(&b), "(\\Seen \\Draft \\Recent)");
	buf_free(&b);
	imap_cmd_clear(&cmd);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_simple_commands),
		cmocka_unit_test(test_lists_and_body_atoms),
		cmocka_unit_test(test_literals),
		cmocka_unit_test(test_bad_syntax),
		cmocka_unit_test(test_seqsets),
		cmocka_unit_test(test_seqset_resolve),
		cmocka_unit_test(test_quote),
		cmocka_unit_test(test_datetime_and_flags),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
