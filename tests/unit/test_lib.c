/*
 * Unit tests for src/lib: buf, strutil, netaddr, id, log_str, sys fault
 * injection and the worker pool.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/id.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "lib/netaddr.h"
#include "lib/strutil.h"
#include "lib/sys.h"
#include "lib/worker.h"

/* ---- buf ---------------------------------------------------------------- */

static void
test_buf_append_and_cstr(void **state)
{
	struct buf b = BUF_INIT;
	assert_string_equal(buf_cstr(&b), "");
	buf_append_str(&b, "hello");
	buf_append_char(&b, ' ');
	buf_appendf(&b, "%s=%d", "k", 42);
	assert_int_equal(b.len, 10);
	assert_string_equal(buf_cstr(&b), "hello k=42");
	buf_append(&b, "\0x", 2);
	assert_int_equal(b.len, 12);
	assert_memory_equal(b.data, "hello k=42\0x", 12);
	buf_free(&b);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
}

static void
test_buf_grow_large(void **state)
{
	struct buf b = BUF_INIT;
	for (int i = 0; i < 100000; i++)
		buf_appendf(&b, "%05d", i % 100000);
	assert_int_equal(b.len, 500000);
	assert_memory_equal(b.data + 5 * 12345, "12345", 5);
	assert_true(b.cap >= b.len + 1);
	assert_int_equal(buf_cstr(&b)[b.len], '\0');
	buf_free(&b);
}

static void
test_buf_consume_truncate_reset(void **state)
{
	struct buf b = BUF_INIT;
	buf_append_str(&b, "abcdefgh");
	buf_consume(&b, 3);
	assert_string_equal(buf_cstr(&b), "defgh");
	buf_truncate(&b, 2);
	assert_string_equal(buf_cstr(&b), "de");
	buf_consume(&b, 2);
	assert_int_equal(b.len, 0);
	assert_string_equal(buf_cstr(&b), "");
	buf_append_str(&b, "xyz");
	buf_reset(&b);
	assert_int_equal(b.len, 0);
	assert_string_equal(buf_cstr(&b), "");
	buf_free(&b);
}

static void
test_buf_steal(void **state)
{
	struct buf b = BUF_INIT;
	buf_appendf(&b, "%d-%s", 7, "seven");
	char *s = buf_steal(&b);
	assert_string_equal(s, "7-seven");
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	free(s);
	/* Stealing an empty buffer still gives a valid C string. */
	s = buf_steal(&b);
	assert_non_null(s);
	assert_string_equal(s, "");
	free(s);
}

/* ---- strutil ------------------------------------------------------------- */

static void
test_str_parse_size(void **state)
{
	uint64_t v = 0;
	assert_int_equal(str_parse_size("10240", &v), 0);
	assert_int_equal(v, 10240);
	assert_int_equal(str_parse_size("10k", &v), 0);
	assert_int_equal(v, 10240);
	assert_int_equal(str_parse_size("25M", &v), 0);
	assert_int_equal(v, 25ULL * 1024 * 1024);
	assert_int_equal(str_parse_size("1G", &v), 0);
	assert_int_equal(v, 1024ULL * 1024 * 1024);
	assert_int_equal(str_parse_size("0", &v), 0);
	assert_int_equal(v, 0);
}

static void
test_str_parse_size_bad(void **state)
{
	uint64_t v = 77;
	const char *bad[] = { "", "k", "-1", " 10", "10 ", "10x", "10kk", "1.5M",
		"+5", "99999999999999999999", "17179869184G", NULL };
	for (int i = 0; bad[i] != NULL; i++) {
		if (str_parse_size(bad[i], &v) != -1)
			fail_msg("str_parse_size accepted \"%s\"", bad[i]);
	}
	assert_int_equal(v, 77);
}

static void
test_str_parse_duration(void **state)
{
	uint64_t v = 0;
	assert_int_equal(str_parse_duration("90", &v), 0);
	assert_int_equal(v, 90);
	assert_int_equal(str_parse_duration("90s", &v), 0);
	assert_int_equal(v, 90);
	assert_int_equal(str_parse_duration("5m", &v), 0);
	assert_int_equal(v, 300);
	assert_int_equal(str_parse_duration("2h", &v), 0);
	assert_int_equal(v, 7200);
	assert_int_equal(str_parse_duration("5d", &v), 0);
	assert_int_equal(v, 5 * 86400);
	assert_int_equal(str_parse_duration("1w", &v), 0);
	assert_int_equal(v, 604800);
}

static void
test_str_parse_duration_bad(void **state)
{
	uint64_t v = 5;
	const char *bad[] = { "", "s", "-5s", "5 s", "5sec", "5y", "1.5h", "5ss",
		"99999999999999999999w", NULL };
	for (int i = 0; bad[i] != NULL; i++) {
		if (str_parse_duration(bad[i], &v) != -1)
			fail_msg("str_parse_duration accepted \"%s\"", bad[i]);
	}
	assert_int_equal(v, 5);
}

static void
test_str_parse_u64_bool(void **state)
{
	uint64_t v;
	int b = -1;
	assert_int_equal(str_parse_u64("18446744073709551615", &v), 0);
	assert_true(v == UINT64_MAX);
	assert_int_equal(str_parse_u64("18446744073709551616", &v), -1);
	assert_int_equal(str_parse_u64("12a", &v), -1);
	assert_int_equal(str_parse_u64("-1", &v), -1);
	assert_int_equal(str_parse_u64("", &v), -1);
	assert_int_equal(str_parse_bool("Yes", &b), 0);
	assert_int_equal(b, 1);
	assert_int_equal(str_parse_bool("off", &b), 0);
	assert_int_equal(b, 0);
	assert_int_equal(str_parse_bool("maybe", &b), -1);
}

static void
test_str_tenant_name_valid(void **state)
{
	(void)state;
	assert_true(str_tenant_name_valid("acme"));
	assert_true(str_tenant_name_valid("a-1"));
	assert_true(str_tenant_name_valid("abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij123"));
	assert_false(str_tenant_name_valid("abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij1234"));
	assert_false(str_tenant_name_valid(NULL));
	assert_false(str_tenant_name_valid(""));
	assert_false(str_tenant_name_valid("-acme"));
	assert_false(str_tenant_name_valid("Acme"));
	assert_false(str_tenant_name_valid("../x"));
	assert_false(str_tenant_name_valid("a.b"));
	assert_false(str_tenant_name_valid("a/b"));
}

static void
test_str_misc(void **state)
{
	char s[] = "  \tHeLLo World \r\n";
	assert_string_equal(str_trim(s), "HeLLo World");
	assert_string_equal(str_lower(s), "hello world");
	char e[] = "   ";
	assert_string_equal(str_trim(e), "");
	assert_int_equal(str_prefix_ci("MAIL FROM:<a@b>", "mail from:"), 10);
	assert_int_equal(str_prefix_ci("MAIL", "mail from:"), 0);
	assert_true(str_eq_ci("Example.COM", "example.com"));
	assert_false(str_eq_ci("example.co", "example.com"));
}

/* ---- netaddr ------------------------------------------------------------- */

static void
test_hostport(void **state)
{
	char host[64];
	int port = 0;
	assert_int_equal(netaddr_parse_hostport("127.0.0.1:2525", host, sizeof(host), &port), 0);
	assert_string_equal(host, "127.0.0.1");
	assert_int_equal(port, 2525);
	assert_int_equal(netaddr_parse_hostport("[::1]:25", host, sizeof(host), &port), 0);
	assert_string_equal(host, "::1");
	assert_int_equal(port, 25);
	assert_int_equal(netaddr_parse_hostport("mx.example.com:587", host, sizeof(host), &port), 0);
	assert_string_equal(host, "mx.example.com");
	assert_int_equal(port, 587);
	assert_int_equal(netaddr_parse_hostport(":2525", host, sizeof(host), &port), 0);
	assert_string_equal(host, "");
}

static void
test_hostport_bad(void **state)
{
	char host[16];
	int port = 0;
	const char *bad[] = { "127.0.0.1", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536",
		"127.0.0.1:25x", "::1:25", "[::1]25", "[::1", "[::1]:", "host:-1", NULL };
	for (int i = 0; bad[i] != NULL; i++) {
		if (netaddr_parse_hostport(bad[i], host, sizeof(host), &port) != -1)
			fail_msg("netaddr_parse_hostport accepted \"%s\"", bad[i]);
	}
	/* Host longer than the output buffer is refused, not truncated. */
	assert_int_equal(netaddr_parse_hostport("a-very-long-host-name.example:25", host,
	    sizeof(host), &port), -1);
}

static void
test_sockaddr_and_format(void **state)
{
	struct sockaddr_storage ss;
	socklen_t len;
	char out[64];
	assert_int_equal(netaddr_to_sockaddr("192.0.2.7", 25, &ss, &len), 0);
	assert_int_equal(ss.ss_family, AF_INET);
	assert_int_equal(len, sizeof(struct sockaddr_in));
	assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 25);
	netaddr_format((struct sockaddr *)&ss, out, sizeof(out));
	assert_string_equal(out, "192.0.2.7");
	assert_int_equal(netaddr_to_sockaddr("2001:db8::1", 2525, &ss, &len), 0);
	assert_int_equal(ss.ss_family, AF_INET6);
	netaddr_format((struct sockaddr *)&ss, out, sizeof(out));
	assert_string_equal(out, "2001:db8::1");
	assert_int_equal(netaddr_to_sockaddr("::ffff:198.51.100.3", 1, &ss, &len), 0);
	netaddr_format((struct sockaddr *)&ss, out, sizeof(out));
	assert_string_equal(out, "198.51.100.3");
	assert_int_equal(netaddr_to_sockaddr("mx.example.com", 25, &ss, &len), -1);
}

static struct sockaddr_storage
make_sa(const char *host)
{
	struct sockaddr_storage ss;
	socklen_t len;
	if (netaddr_to_sockaddr(host, 1, &ss, &len) != 0)
		fail_msg("bad test address %s", host);
	return ss;
}

static int
matches(const char *cidr, const char *host)
{
	struct cidr c;
	if (cidr_parse(cidr, &c) != 0)
		fail_msg("cidr_parse refused %s", cidr);
	struct sockaddr_storage ss = make_sa(host);
	return cidr_match(&c, (struct sockaddr *)&ss);
}

static void
test_cidr_parse_format(void **state)
{
	struct cidr c;
	char out[64];
	assert_int_equal(cidr_parse("192.0.2.77/24", &c), 0);
	assert_int_equal(c.family, AF_INET);
	assert_int_equal(c.prefix, 24);
	cidr_format(&c, out, sizeof(out));
	assert_string_equal(out, "192.0.2.0/24");
	assert_int_equal(cidr_parse("10.1.2.3", &c), 0);
	assert_int_equal(c.prefix, 32);
	assert_int_equal(cidr_parse("2001:db8:abcd::1/32", &c), 0);
	assert_int_equal(c.family, AF_INET6);
	cidr_format(&c, out, sizeof(out));
	assert_string_equal(out, "2001:db8::/32");
	assert_int_equal(cidr_parse("10.0.0.0/12", &c), 0);
	cidr_format(&c, out, sizeof(out));
	assert_string_equal(out, "10.0.0.0/12");
	assert_int_equal(cidr_parse("10.31.0.0/11", &c), 0);
	cidr_format(&c, out, sizeof(out));
	assert_string_equal(out, "10.0.0.0/11");
}

static void
test_cidr_parse_bad(void **state)
{
	struct cidr c;
	const char *bad[] = { "", "/24", "10.0.0.0/", "10.0.0.0/33", "10.0.0.0/-1",
		"10.0.0.0/8x", "10.0.0/8", "300.0.0.0/8", "2001:db8::/129", "example.com/24",
		"10.0.0.0/24/1", NULL };
	for (int i = 0; bad[i] != NULL; i++) {
		if (cidr_parse(bad[i], &c) != -1)
			fail_msg("cidr_parse accepted \"%s\"", bad[i]);
	}
}

static void
test_cidr_match(void **state)
{
	assert_true(matches("192.0.2.0/24", "192.0.2.1"));
	assert_true(matches("192.0.2.0/24", "192.0.2.255"));
	assert_false(matches("192.0.2.0/24", "192.0.3.1"));
	assert_true(matches("10.0.0.0/12", "10.15.255.255"));
	assert_false(matches("10.0.0.0/12", "10.16.0.0"));
	assert_true(matches("0.0.0.0/0", "203.0.113.9"));
	assert_true(matches("127.0.0.1/32", "127.0.0.1"));
	assert_false(matches("127.0.0.1/32", "127.0.0.2"));
	/* IPv4-mapped IPv6 peers match IPv4 networks. */
	assert_true(matches("192.0.2.0/24", "::ffff:192.0.2.9"));
	assert_false(matches("192.0.2.0/24", "::ffff:192.0.3.9"));
	/* IPv6 */
	assert_true(matches("2001:db8::/32", "2001:db8:ffff::1"));
	assert_false(matches("2001:db8::/32", "2001:db9::1"));
	assert_true(matches("2001:db8::/31", "2001:db9::1"));
	assert_true(matches("::1/128", "::1"));
	/* No cross-family matches. */
	assert_false(matches("0.0.0.0/0", "2001:db8::1"));
	assert_false(matches("::/0", "192.0.2.1"));
}

/* ---- id ------------------------------------------------------------------ */

static void
test_id_valid(void **state)
{
	char id[ID_LEN + 1];
	id_generate(id);
	assert_int_equal(strlen(id), ID_LEN);
	assert_true(id_valid(id));
	assert_true(id_valid("0123456789ABCDEF"));
	assert_false(id_valid("0123456789ABCDE"));
	assert_false(id_valid("0123456789ABCDEFG"));
	assert_false(id_valid("0123456789ABCDEI")); /* I, L, O, U are not in the alphabet */
	assert_false(id_valid("0123456789ABCDEU"));
	assert_false(id_valid("0123456789abcdef"));
	assert_false(id_valid("01234567/9ABCDEF"));
	assert_false(id_valid(""));
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
test_id_increasing_unique(void **state)
{
	enum { N = 100000 };
	char (*ids)[ID_LEN + 1] = xcalloc(N, ID_LEN + 1);
	char **sorted = xcalloc(N, sizeof(char *));
	for (int i = 0; i < N; i++) {
		id_generate(ids[i]);
		if (!id_valid(ids[i]))
			fail_msg("invalid id %s", ids[i]);
		if (i > 0 && strcmp(ids[i - 1], ids[i]) >= 0)
			fail_msg("id %d not increasing: %s then %s", i, ids[i - 1], ids[i]);
		sorted[i] = ids[i];
	}
	qsort(sorted, N, sizeof(char *), cmp_str);
	for (int i = 1; i < N; i++) {
		if (strcmp(sorted[i - 1], sorted[i]) == 0)
			fail_msg("duplicate id %s", sorted[i]);
	}
	free(sorted);
	free(ids);
}

/* ---- log_str --------------------------------------------------------------- */

static void
test_log_str_plain_and_quoted(void **state)
{
	assert_string_equal(log_str("alice@example.com"), "alice@example.com");
	assert_string_equal(log_str("two words"), "\"two words\"");
	assert_string_equal(log_str(""), "\"\"");
	assert_string_equal(log_str(NULL), "-");
	assert_string_equal(log_str("a=b"), "\"a=b\"");
	assert_string_equal(log_str("say \"hi\""), "\"say \\\"hi\\\"\"");
	assert_string_equal(log_str("back\\slash"), "\"back\\\\slash\"");
}

static void
test_log_str_control_chars(void **state)
{
	/* A peer must not be able to start a new log line. */
	const char *s = log_str("evil\r\n2026-01-01 info delivered id=X");
	assert_null(strchr(s, '\n'));
	assert_null(strchr(s, '\r'));
	assert_non_null(strstr(s, "\\x0d\\x0a"));
	assert_int_equal(s[0], '"');
	s = log_strn("a\0b\x1b[31m", 8);
	assert_string_equal(s, "\"a\\x00b\\x1b[31m\"");
	s = log_str("del\x7f");
	assert_string_equal(s, "\"del\\x7f\"");
}

static void
test_log_str_utf8_and_binary(void **state)
{
	/* Valid UTF-8 stays readable. */
	const char *s = log_str("J\xc3\xbcrgen");
	assert_non_null(strstr(s, "J\xc3\xbcrgen"));
	/* A byte that is not UTF-8 must not reach the log raw (JSON output). */
	s = log_strn("bad\xff\xfe", 5);
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
		if (*p >= 0xf5 || *p == 0xc0 || *p == 0xc1)
			fail_msg("raw invalid UTF-8 byte 0x%02x in log_str output %s", *p, s);
	}
}

static void
test_log_str_truncation(void **state)
{
	char big[5000];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	const char *s = log_str(big);
	size_t n = strlen(s);
	assert_true(n < 1024);
	assert_true(n > 100);
	assert_non_null(strstr(s, "..."));
	/* Truncated control characters never leave half an escape behind. */
	char ctl[3000];
	memset(ctl, '\x01', sizeof(ctl) - 1);
	ctl[sizeof(ctl) - 1] = '\0';
	s = log_str(ctl);
	n = strlen(s);
	assert_true(n < 1024);
	assert_int_equal(s[0], '"');
	assert_int_equal(s[n - 1], '"');
	const char *dots = strstr(s, "...");
	assert_non_null(dots);
	/* Everything before the dots is whole "\x01" escapes. */
	size_t body = (size_t)(dots - (s + 1));
	assert_int_equal(body % 4, 0);
	for (size_t i = 1; i + 4 <= (size_t)(dots - s); i += 4)
		assert_memory_equal(s + i, "\\x01", 4);
}

static void
test_log_str_ring(void **state)
{
	/* Eight live results at once. */
	const char *r[8];
	char in[8][16];
	for (int i = 0; i < 8; i++) {
		snprintf(in[i], sizeof(in[i]), "v%d", i);
		r[i] = log_str(in[i]);
	}
	for (int i = 0; i < 8; i++)
		assert_string_equal(r[i], in[i]);
}

/* ---- sys fault injection ------------------------------------------------- */

static char tmpdir[256];

static int
setup_tmpdir(void **state)
{
	char *err = NULL;
	if (sys_fault_configure(NULL, &err) != 0)
		return -1;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/mailark-test-lib-XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	return 0;
}

static int
teardown_tmpdir(void **state)
{
	char *err = NULL;
	sys_fault_configure(NULL, &err);
	DIR *d = opendir(tmpdir);
	if (d != NULL) {
		struct dirent *e;
		while ((e = readdir(d)) != NULL) {
			if (e->d_name[0] == '.')
				continue;
			char p[512];
			snprintf(p, sizeof(p), "%s/%s", tmpdir, e->d_name);
			unlink(p);
		}
		closedir(d);
	}
	rmdir(tmpdir);
	return 0;
}

static int
count_entries(const char *dir)
{
	int n = 0;
	DIR *d = opendir(dir);
	assert_non_null(d);
	struct dirent *e;
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

static void
test_sys_fault_fsync_eio_at_2(void **state)
{
	char *err = NULL;
	char path[512];
	snprintf(path, sizeof(path), "%s/f", tmpdir);
	int fd = open(path, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	assert_int_equal(sys_fault_configure("fsync=eio@2", &err), 0);
	assert_int_equal(sys_fsync(fd), 0);
	errno = 0;
	assert_int_equal(sys_fsync(fd), -1);
	assert_int_equal(errno, EIO);
	errno = 0;
	assert_int_equal(sys_fsync(fd), -1); /* and every later one */
	assert_int_equal(errno, EIO);
	/* Other operations are unaffected. */
	assert_int_equal(sys_write_all(fd, "x", 1), 0);
	assert_int_equal(sys_fault_configure(NULL, &err), 0);
	assert_int_equal(sys_fsync(fd), 0);
	close(fd);
}

static void
test_sys_fault_write_enospc(void **state)
{
	char *err = NULL;
	char path[512];
	snprintf(path, sizeof(path), "%s/w", tmpdir);
	int fd = open(path, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	assert_int_equal(sys_fault_configure("write=enospc@3,rename=eio@1", &err), 0);
	assert_int_equal(sys_write_all(fd, "ab", 2), 0);
	assert_int_equal(sys_pwrite_all(fd, "cd", 2, 2), 0);
	errno = 0;
	assert_int_equal(sys_write_all(fd, "ef", 2), -1);
	assert_int_equal(errno, ENOSPC);
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_size, 4);
	close(fd);
	char to[512];
	snprintf(to, sizeof(to), "%s/w2", tmpdir);
	errno = 0;
	assert_int_equal(sys_rename(path, to), -1);
	assert_int_equal(errno, EIO);
	assert_int_equal(access(path, F_OK), 0);
	sys_fault_configure(NULL, &err);
}

static void
test_sys_fault_bad_specs(void **state)
{
	const char *bad[] = { "fsync", "fsync=", "=eio", "fsync=eio@0", "fsync=boom",
		"frobnicate=eio", "fsync=eio@x", "FSYNC=EIO", "fsync=eio,write", NULL };
	for (int i = 0; bad[i] != NULL; i++) {
		char *err = NULL;
		int rc = sys_fault_configure(bad[i], &err);
		char *reset_err = NULL;
		sys_fault_configure(NULL, &reset_err);
		if (rc != -1)
			fail_msg("sys_fault_configure accepted \"%s\"", bad[i]);
		assert_non_null(err);
		assert_true(strlen(err) > 0);
		free(err);
	}
	char *err = NULL;
	assert_int_equal(sys_fault_configure("fsync=eio@3,write=enospc@10,rename=crash@5", &err), 0);
	assert_int_equal(sys_fault_configure("", &err), 0);
}

static void
test_sys_write_file_atomic(void **state)
{
	char *err = NULL;
	char path[512];
	snprintf(path, sizeof(path), "%s/atomic", tmpdir);
	assert_int_equal(sys_write_file_atomic(path, "first", 5, 0640), 0);
	char *data = NULL;
	size_t len = 0;
	assert_int_equal(sys_read_file(path, 1 << 20, &data, &len), 0);
	assert_int_equal(len, 5);
	assert_string_equal(data, "first");
	free(data);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0640);
	assert_int_equal(count_entries(tmpdir), 1);

	/* A failed fsync leaves the old content and no temp file behind. */
	assert_int_equal(sys_fault_configure("fsync=eio@1", &err), 0);
	errno = 0;
	assert_int_equal(sys_write_file_atomic(path, "second", 6, 0640), -1);
	assert_int_equal(errno, EIO);
	assert_int_equal(count_entries(tmpdir), 1);
	assert_int_equal(sys_read_file(path, 1 << 20, &data, &len), 0);
	assert_string_equal(data, "first");
	free(data);

	/* Same for a failed write and a failed rename. */
	assert_int_equal(sys_fault_configure("write=enospc@1", &err), 0);
	assert_int_equal(sys_write_file_atomic(path, "third", 5, 0640), -1);
	assert_int_equal(errno, ENOSPC);
	assert_int_equal(count_entries(tmpdir), 1);
	assert_int_equal(sys_fault_configure("rename=eio@1", &err), 0);
	assert_int_equal(sys_write_file_atomic(path, "fourth", 6, 0640), -1);
	assert_int_equal(count_entries(tmpdir), 1);
	assert_int_equal(sys_read_file(path, 1 << 20, &data, &len), 0);
	assert_string_equal(data, "first");
	free(data);

	assert_int_equal(sys_fault_configure(NULL, &err), 0);
	assert_int_equal(sys_write_file_atomic(path, "fifth", 5, 0640), 0);
	assert_int_equal(sys_read_file(path, 1 << 20, &data, &len), 0);
	assert_string_equal(data, "fifth");
	free(data);
	/* sys_read_file honours max. */
	assert_int_equal(sys_read_file(path, 3, &data, &len), -1);
}

static void
test_sys_mkdir_p(void **state)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/a/b/c", tmpdir);
	assert_int_equal(sys_mkdir_p(path, 0700), 0);
	assert_int_equal(sys_mkdir_p(path, 0700), 0);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(sys_fsync_dir(path), 0);
	rmdir(path);
	snprintf(path, sizeof(path), "%s/a/b", tmpdir);
	rmdir(path);
	snprintf(path, sizeof(path), "%s/a", tmpdir);
	rmdir(path);
}

/* ---- worker pool ----------------------------------------------------------- */

struct job {
	pthread_t loop_thread;
	pthread_t work_thread;
	int worked;
	int done_on_loop;
	int done_after_work;
	int *done_count;
};

static void
job_work(void *arg)
{
	struct job *j = arg;
	j->work_thread = pthread_self();
	usleep(1000);
	__atomic_store_n(&j->worked, 1, __ATOMIC_SEQ_CST);
}

static void
job_done(void *arg)
{
	struct job *j = arg;
	j->done_on_loop = pthread_equal(pthread_self(), j->loop_thread);
	j->done_after_work = __atomic_load_n(&j->worked, __ATOMIC_SEQ_CST);
	(*j->done_count)++;
}

static void
test_worker_pool_runs_done_on_loop(void **state)
{
	enum { N = 50 };
	struct event_base *base = event_base_new();
	assert_non_null(base);
	struct worker_pool *pool = worker_pool_new(base, 3);
	struct job jobs[N];
	int done = 0;
	memset(jobs, 0, sizeof(jobs));
	for (int i = 0; i < N; i++) {
		jobs[i].loop_thread = pthread_self();
		jobs[i].done_count = &done;
		worker_submit(pool, job_work, job_done, &jobs[i]);
	}
	assert_int_equal(worker_pending(pool), N);
	for (int spins = 0; worker_pending(pool) > 0 && spins < 10000; spins++)
		event_base_loop(base, EVLOOP_ONCE);
	assert_int_equal(worker_pending(pool), 0);
	assert_int_equal(done, N);
	for (int i = 0; i < N; i++) {
		assert_true(jobs[i].done_on_loop);
		assert_true(jobs[i].done_after_work);
		assert_false(pthread_equal(jobs[i].work_thread, jobs[i].loop_thread));
	}
	worker_pool_free(&pool);
	assert_null(pool);
	event_base_free(base);
}

static void
test_worker_pool_free_drains(void **state)
{
	enum { N = 40 };
	struct event_base *base = event_base_new();
	struct worker_pool *pool = worker_pool_new(base, 2);
	struct job jobs[N];
	int done = 0;
	memset(jobs, 0, sizeof(jobs));
	for (int i = 0; i < N; i++) {
		jobs[i].loop_thread = pthread_self();
		jobs[i].done_count = &done;
		worker_submit(pool, job_work, job_done, &jobs[i]);
	}
	/* No loop iteration: free must still run every work and every done. */
	worker_pool_free(&pool);
	assert_null(pool);
	assert_int_equal(done, N);
	for (int i = 0; i < N; i++) {
		assert_true(jobs[i].worked);
		assert_true(jobs[i].done_on_loop);
	}
	event_base_free(base);
}

static void
null_work(void *arg)
{
	int *p = arg;
	__atomic_store_n(p, 1, __ATOMIC_SEQ_CST);
}

static void
test_worker_null_done(void **state)
{
	struct event_base *base = event_base_new();
	struct worker_pool *pool = worker_pool_new(base, 1);
	int flag = 0;
	worker_submit(pool, null_work, NULL, &flag);
	worker_pool_free(&pool);
	assert_int_equal(flag, 1);
	event_base_free(base);
}

int
main(void)
{
	log_configure(LOGL_ERROR, LOGF_TEXT);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_buf_append_and_cstr),
		cmocka_unit_test(test_buf_grow_large),
		cmocka_unit_test(test_buf_consume_truncate_reset),
		cmocka_unit_test(test_buf_steal),
		cmocka_unit_test(test_str_parse_size),
		cmocka_unit_test(test_str_tenant_name_valid),
		cmocka_unit_test(test_str_parse_size_bad),
		cmocka_unit_test(test_str_parse_duration),
		cmocka_unit_test(test_str_parse_duration_bad),
		cmocka_unit_test(test_str_parse_u64_bool),
		cmocka_unit_test(test_str_misc),
		cmocka_unit_test(test_hostport),
		cmocka_unit_test(test_hostport_bad),
		cmocka_unit_test(test_sockaddr_and_format),
		cmocka_unit_test(test_cidr_parse_format),
		cmocka_unit_test(test_cidr_parse_bad),
		cmocka_unit_test(test_cidr_match),
		cmocka_unit_test(test_id_valid),
		cmocka_unit_test(test_id_increasing_unique),
		cmocka_unit_test(test_log_str_plain_and_quoted),
		cmocka_unit_test(test_log_str_control_chars),
		cmocka_unit_test(test_log_str_utf8_and_binary),
		cmocka_unit_test(test_log_str_truncation),
		cmocka_unit_test(test_log_str_ring),
		cmocka_unit_test_setup_teardown(test_sys_fault_fsync_eio_at_2, setup_tmpdir,
		    teardown_tmpdir),
		cmocka_unit_test_setup_teardown(test_sys_fault_write_enospc, setup_tmpdir,
		    teardown_tmpdir),
		cmocka_unit_test(test_sys_fault_bad_specs),
		cmocka_unit_test_setup_teardown(test_sys_write_file_atomic, setup_tmpdir,
		    teardown_tmpdir),
		cmocka_unit_test_setup_teardown(test_sys_mkdir_p, setup_tmpdir, teardown_tmpdir),
		cmocka_unit_test(test_worker_pool_runs_done_on_loop),
		cmocka_unit_test(test_worker_pool_free_drains),
		cmocka_unit_test(test_worker_null_done),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
