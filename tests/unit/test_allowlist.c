/* Unit tests for the API's access keys: conf_net_parse and conf_net_contains (IPv4 and IPv6
 * networks, table-driven), and the configuration of restapi.verify_client, restapi.allowlist,
 * restapi.allowlist_include_members and the ctl section, with their exact error messages. Host
 * names are resolved only for "localhost" (/etc/hosts): no test here asks a DNS server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "raftpg/conf.h"

static struct conf c;
static char errmsg[RPG_ERRMSG_SIZE];

/* Eight lines: the smallest valid file; a test adds sections after it. */
#define MINIMAL                                                                                    \
    "scope: demo\n"                                                                                \
    "name: node1\n"                                                                                \
    "raft:\n"                                                                                      \
    "  data_dir: /var/lib/raftpg/node1\n"                                                          \
    "  members:\n"                                                                                 \
    "    - name: node1\n"                                                                          \
    "      raft: 127.0.0.1:7001\n"                                                                 \
    "      api: 127.0.0.1:8001\n"

/* Lines 9-12: TLS on the API. */
#define TLS                                                                                        \
    "restapi:\n"                                                                                   \
    "  certfile: /etc/raftpg/api.pem\n"                                                            \
    "  keyfile: /etc/raftpg/api.key\n"                                                             \
    "  cafile: /etc/raftpg/ca.pem\n"

static int load(const char *text)
{
    memset(errmsg, 0, sizeof errmsg);
    return conf_load_string("t.yaml", text, &c, errmsg);
}

static int teardown(void **state)
{
    (void)state;
    conf_free(&c);
    return 0;
}

/* ---- conf_net_parse ---- */

static const struct {
    const char *text;
    int family;
    const char *network; /* the address with host bits cleared, as inet_ntop writes it */
    unsigned prefix;
} parse_ok[] = {
    {"127.0.0.1", AF_INET, "127.0.0.1", 32},
    {"127.0.0.1/32", AF_INET, "127.0.0.1", 32},
    {"10.1.2.3/8", AF_INET, "10.0.0.0", 8},
    {"10.1.2.3/0", AF_INET, "0.0.0.0", 0},
    {"192.168.77.200/25", AF_INET, "192.168.77.128", 25},
    {"192.168.77.200/26", AF_INET, "192.168.77.192", 26},
    {"172.16.255.255/12", AF_INET, "172.16.0.0", 12},
    {"::1", AF_INET6, "::1", 128},
    {"::1/128", AF_INET6, "::1", 128},
    {"2001:db8::1/32", AF_INET6, "2001:db8::", 32},
    {"2001:db8:ffff:ffff::/33", AF_INET6, "2001:db8:8000::", 33},
    {"fe80::1:2:3:4/64", AF_INET6, "fe80::", 64},
    {"2001:db8::ff/121", AF_INET6, "2001:db8::80", 121},
    {"::/0", AF_INET6, "::", 0},
    /* An IPv4-mapped host is its IPv4 address; with a prefix it stays an IPv6 network. */
    {"::ffff:10.0.0.1", AF_INET, "10.0.0.1", 32},
    {"::ffff:10.0.0.1/96", AF_INET6, "::ffff:0.0.0.0", 96},
};

static void test_net_parse_accepts_and_clears_host_bits(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof parse_ok / sizeof parse_ok[0]; i++) {
        struct conf_net net;
        char why[200] = "", text[INET6_ADDRSTRLEN];
        int rv = conf_net_parse(parse_ok[i].text, &net, why, sizeof why);
        if (rv != 0) {
            fail_msg("%s: %s", parse_ok[i].text, why);
        }
        assert_int_equal(net.family, parse_ok[i].family);
        assert_int_equal(net.prefix, parse_ok[i].prefix);
        assert_non_null(inet_ntop(net.family, net.addr, text, sizeof text));
        if (strcmp(text, parse_ok[i].network) != 0) {
            fail_msg("%s: network %s, expected %s", parse_ok[i].text, text, parse_ok[i].network);
        }
    }
}

static const struct {
    const char *text;
    const char *why;
} parse_bad[] = {
    {"", "expected an IPv4 or IPv6 address, a network ADDRESS/PREFIX or a host name, got \"\""},
    {"/8", "expected an IPv4 or IPv6 address, a network ADDRESS/PREFIX or a host name, got \"/8\""},
    {"10.0.0", "expected an IPv4 or IPv6 address, a network ADDRESS/PREFIX or a host name, "
               "got \"10.0.0\""},
    {"10.0.0.256", "expected an IPv4 or IPv6 address, a network ADDRESS/PREFIX or a host name, "
                   "got \"10.0.0.256\""},
    {"010.0.0.1", "expected an IPv4 or IPv6 address, a network ADDRESS/PREFIX or a host name, "
                  "got \"010.0.0.1\""},
    {"2001:db8::1::2", "expected an IPv4 or IPv6 address, a network ADDRESS/PREFIX or a host "
                       "name, got \"2001:db8::1::2\""},
    {"fe80::1%eth0", "expected an IPv4 or IPv6 address, a network ADDRESS/PREFIX or a host name, "
                     "got \"fe80::1%eth0\""},
    {"10.0.0.0/33", "expected a prefix length 0..32 after the address, got \"10.0.0.0/33\""},
    {"10.0.0.0/", "expected a prefix length 0..32 after the address, got \"10.0.0.0/\""},
    {"10.0.0.0/08", "expected a prefix length 0..32 after the address, got \"10.0.0.0/08\""},
    {"10.0.0.0/-1", "expected a prefix length 0..32 after the address, got \"10.0.0.0/-1\""},
    {"10.0.0.0/8/8", "expected a prefix length 0..32 after the address, got \"10.0.0.0/8/8\""},
    {"10.0.0.0/ 8", "expected a prefix length 0..32 after the address, got \"10.0.0.0/ 8\""},
    {"::/129", "expected a prefix length 0..128 after the address, got \"::/129\""},
    {"::/1000", "expected a prefix length 0..128 after the address, got \"::/1000\""},
    {"example.org", "expected an IPv4 or IPv6 address, a network ADDRESS/PREFIX or a host name, "
                    "got \"example.org\""},
};

static void test_net_parse_refuses_with_reason(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof parse_bad / sizeof parse_bad[0]; i++) {
        struct conf_net net;
        char why[200] = "";
        if (conf_net_parse(parse_bad[i].text, &net, why, sizeof why) != RPG_EINVAL) {
            fail_msg("\"%s\" was accepted", parse_bad[i].text);
        }
        if (strcmp(why, parse_bad[i].why) != 0) {
            fail_msg("\"%s\": got [%s], expected [%s]", parse_bad[i].text, why, parse_bad[i].why);
        }
    }
}

/* ---- conf_net_contains ---- */

static const struct {
    const char *net, *addr;
    bool in;
} contains[] = {
    {"127.0.0.1/32", "127.0.0.1", true},
    {"127.0.0.1/32", "127.0.0.2", false},
    {"127.0.0.0/8", "127.255.255.255", true},
    {"127.0.0.0/8", "128.0.0.0", false},
    {"127.0.0.0/8", "126.255.255.255", false},
    {"10.0.0.0/31", "10.0.0.1", true},
    {"10.0.0.0/31", "10.0.0.2", false},
    {"192.168.1.128/25", "192.168.1.128", true},
    {"192.168.1.128/25", "192.168.1.255", true},
    {"192.168.1.128/25", "192.168.1.127", false},
    {"172.16.0.0/12", "172.31.255.255", true},
    {"172.16.0.0/12", "172.32.0.0", false},
    {"172.16.0.0/12", "172.15.255.255", false},
    {"0.0.0.0/0", "203.0.113.9", true},
    {"0.0.0.0/0", "::1", false},
    {"::/0", "127.0.0.1", false},
    {"::/0", "2001:db8::1", true},
    {"::1", "::1", true},
    {"::1", "::2", false},
    {"2001:db8::/32", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", true},
    {"2001:db8::/32", "2001:db9::", false},
    {"2001:db8::/33", "2001:db8:7fff::1", true},
    {"2001:db8::/33", "2001:db8:8000::1", false},
    {"2001:db8::80/121", "2001:db8::ff", true},
    {"2001:db8::80/121", "2001:db8::7f", false},
    {"2001:db8::80/121", "2001:db8::100", false},
    {"fe80::/10", "febf::1", true},
    {"fe80::/10", "fec0::1", false},
    /* A client seen as an IPv4-mapped IPv6 address matches IPv4 entries. */
    {"127.0.0.0/8", "::ffff:127.0.0.3", true},
    {"10.0.0.1", "::ffff:10.0.0.2", false},
    {"127.0.0.1", "::1", false},
};

static void test_net_contains_tables(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof contains / sizeof contains[0]; i++) {
        struct conf_net net, addr;
        assert_int_equal(conf_net_parse(contains[i].net, &net, NULL, 0), 0);
        assert_int_equal(conf_net_parse(contains[i].addr, &addr, NULL, 0), 0);
        if (conf_net_contains(&net, &addr) != contains[i].in) {
            fail_msg("%s in %s: expected %s", contains[i].addr, contains[i].net,
                     contains[i].in ? "true" : "false");
        }
    }
}

/* ---- configuration ---- */

static void test_defaults_ask_nothing(void **state)
{
    (void)state;
    assert_int_equal(load(MINIMAL), 0);
    assert_int_equal(c.restapi.verify_client, CONF_VERIFY_NONE);
    assert_int_equal(c.restapi.n_allowlist, 0);
    assert_false(c.restapi.allowlist_include_members);
    assert_string_equal(c.ctl.certfile, "");
    assert_string_equal(c.ctl.cacert, "");
    assert_false(c.ctl.insecure);
}

static void test_full_access_configuration(void **state)
{
    (void)state;
    assert_int_equal(load(MINIMAL TLS "  verify_client: required\n"
                                      "  allowlist: [127.0.0.1, 10.0.0.0/8, \"::1\", localhost]\n"
                                      "  allowlist_include_members: true\n"
                                      "ctl:\n"
                                      "  certfile: /etc/raftpg/client.pem\n"
                                      "  keyfile: /etc/raftpg/client.key\n"
                                      "  keyfile_password: \"k p\"\n"
                                      "  cacert: /etc/raftpg/ca2.pem\n"
                                      "  insecure: true\n"
                                      "  authentication: {username: admin, password: pw}\n"),
                     0);
    assert_int_equal(c.restapi.verify_client, CONF_VERIFY_REQUIRED);
    assert_string_equal(conf_verify_client_name(c.restapi.verify_client), "required");
    assert_true(c.restapi.allowlist_include_members);
    /* localhost resolves to at least 127.0.0.1 (and ::1 where /etc/hosts says so). */
    assert_true(c.restapi.n_allowlist >= 4);
    struct conf_net probe;
    assert_int_equal(conf_net_parse("10.200.3.4", &probe, NULL, 0), 0);
    assert_true(conf_net_contains(&c.restapi.allowlist[1], &probe));
    assert_int_equal(conf_net_parse("::1", &probe, NULL, 0), 0);
    assert_true(conf_net_contains(&c.restapi.allowlist[2], &probe));
    assert_int_equal(conf_net_parse("127.0.0.1", &probe, NULL, 0), 0);
    bool resolved = false;
    for (unsigned i = 3; i < c.restapi.n_allowlist; i++) {
        resolved = resolved || conf_net_contains(&c.restapi.allowlist[i], &probe);
    }
    assert_true(resolved);
    assert_string_equal(c.ctl.certfile, "/etc/raftpg/client.pem");
    assert_string_equal(c.ctl.keyfile, "/etc/raftpg/client.key");
    assert_string_equal(c.ctl.keyfile_password, "k p");
    assert_string_equal(c.ctl.cacert, "/etc/raftpg/ca2.pem");
    assert_true(c.ctl.insecure);
    assert_string_equal(c.ctl.auth_username, "admin");
    assert_string_equal(c.ctl.auth_password, "pw");
}

static void test_ciphers_take_a_gnutls_priority_string(void **state)
{
    (void)state;
    assert_int_equal(load(MINIMAL TLS "  ciphers: \"NORMAL:-VERS-TLS1.0:-VERS-TLS1.1\"\n"), 0);
    assert_string_equal(c.restapi.ciphers, "NORMAL:-VERS-TLS1.0:-VERS-TLS1.1");
}

static void test_optional_needs_no_ctl_certificate(void **state)
{
    (void)state;
    assert_int_equal(load(MINIMAL TLS "  verify_client: optional\n"), 0);
    assert_int_equal(c.restapi.verify_client, CONF_VERIFY_OPTIONAL);
}

static const struct {
    const char *text, *error;
} conf_bad[] = {
    {MINIMAL TLS "  ciphers: \"ECDHE-RSA-AES128-GCM-SHA256:!SSLv3\"\n",
     "t.yaml:13:12: restapi.ciphers: not a GnuTLS priority string (at \"ECDHE-RSA-AES128-GCM-"
     "SHA256:!SSLv3\"): write one such as \"NORMAL:-VERS-TLS1.0:-VERS-TLS1.1\" or \"SECURE256\" "
     "(an OpenSSL cipher list, as Patroni takes, is not understood)"},
    {MINIMAL "restapi:\n"
             "  ciphers: NORMAL\n",
     "t.yaml:10:12: restapi.ciphers: requires restapi.certfile and restapi.keyfile"},
    {MINIMAL TLS "  verify_client: sometimes\n",
     "t.yaml:13:18: restapi.verify_client: expected one of none|optional|required, got "
     "\"sometimes\""},
    {MINIMAL "restapi:\n"
             "  verify_client: optional\n",
     "t.yaml:10:18: restapi.verify_client: optional requires restapi.certfile and "
     "restapi.keyfile: client certificates exist only over TLS"},
    {MINIMAL "restapi:\n"
             "  certfile: /a.pem\n"
             "  keyfile: /a.key\n"
             "  verify_client: required\n",
     "t.yaml:12:18: restapi.verify_client: required requires restapi.cafile, the CA that signs "
     "the client certificates"},
    {MINIMAL TLS "  verify_client: required\n",
     "t.yaml:13:18: restapi.verify_client: required needs ctl.certfile and ctl.keyfile: the "
     "agents present that certificate when they ask the other members"},
    {MINIMAL "ctl:\n"
             "  certfile: /c.pem\n",
     "t.yaml:10:13: ctl.keyfile: required with ctl.certfile"},
    {MINIMAL "ctl:\n"
             "  keyfile: /c.key\n",
     "t.yaml:10:12: ctl.certfile: required with ctl.keyfile"},
    {MINIMAL "ctl:\n"
             "  certfile: c.pem\n",
     "t.yaml:10:13: ctl.certfile: expected an absolute path, got \"c.pem\""},
    {MINIMAL "ctl:\n"
             "  authentication: {username: admin}\n",
     "t.yaml:10:19: ctl.authentication: expected both username and password, and no ':' in the "
     "username"},
    {MINIMAL "ctl:\n"
             "  insecure: maybe\n",
     "t.yaml:10:13: ctl.insecure: expected true or false (or yes/no, on/off), got "
     "\"maybe\""},
    {MINIMAL "restapi:\n"
             "  keyfile_password: pw\n",
     "t.yaml:10:21: restapi.keyfile_password: requires restapi.keyfile"},
    {MINIMAL "ctl:\n"
             "  keyfile_password: pw\n",
     "t.yaml:10:21: ctl.keyfile_password: requires ctl.keyfile"},
    {MINIMAL "ctl:\n"
             "  cafile: /x.pem\n",
     "t.yaml:10:3: ctl.cafile: unknown key"},
    {MINIMAL "restapi:\n"
             "  allowlist: [127.0.0.1, 10.0.0.0/33]\n",
     "t.yaml:10:26: restapi.allowlist[1]: expected a prefix length 0..32 after the address, got "
     "\"10.0.0.0/33\""},
    {MINIMAL "restapi:\n"
             "  allowlist:\n"
             "    - 127.0.0.1\n"
             "    - \"bad host!\"\n",
     "t.yaml:12:7: restapi.allowlist[1]: expected an IPv4 or IPv6 address, a network "
     "ADDRESS/PREFIX or a host name, got \"bad host!\""},
    {MINIMAL "restapi:\n"
             "  allowlist: 127.0.0.1\n",
     "t.yaml:10:14: restapi.allowlist: expected a sequence, got a scalar"},
    {MINIMAL "restapi:\n"
             "  allowlist: [[127.0.0.1]]\n",
     "t.yaml:10:15: restapi.allowlist[0]: expected a scalar, got a sequence"},
    {MINIMAL "restapi:\n"
             "  allowlist_include_members: often\n",
     "t.yaml:10:30: restapi.allowlist_include_members: expected true or false (or yes/no, "
     "on/off), got \"often\""},
};

static void test_bad_configurations_are_named(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof conf_bad / sizeof conf_bad[0]; i++) {
        if (load(conf_bad[i].text) != RPG_ECONFIG) {
            fail_msg("case %zu was accepted", i);
        }
        if (strcmp(errmsg, conf_bad[i].error) != 0) {
            fail_msg("case %zu: got [%s], expected [%s]", i, errmsg, conf_bad[i].error);
        }
        conf_free(&c);
    }
}

static void test_allowlist_is_capped(void **state)
{
    (void)state;
    char text[8192];
    size_t n = (size_t)snprintf(text, sizeof text, MINIMAL "restapi:\n  allowlist:\n");
    for (unsigned i = 0; i <= CONF_ALLOWLIST_MAX; i++) {
        n += (size_t)snprintf(text + n, sizeof text - n, "    - 10.0.%u.0/24\n", i);
    }
    assert_int_equal(load(text), RPG_ECONFIG);
    char want[200];
    snprintf(want, sizeof want,
             "t.yaml:%d:7: restapi.allowlist[%d]: expected at most %d addresses and networks "
             "(host names count as many as they resolve to)",
             11 + CONF_ALLOWLIST_MAX, CONF_ALLOWLIST_MAX, CONF_ALLOWLIST_MAX);
    assert_string_equal(errmsg, want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_net_parse_accepts_and_clears_host_bits),
        cmocka_unit_test(test_net_parse_refuses_with_reason),
        cmocka_unit_test(test_net_contains_tables),
        cmocka_unit_test_teardown(test_defaults_ask_nothing, teardown),
        cmocka_unit_test_teardown(test_full_access_configuration, teardown),
        cmocka_unit_test_teardown(test_optional_needs_no_ctl_certificate, teardown),
        cmocka_unit_test_teardown(test_bad_configurations_are_named, teardown),
        cmocka_unit_test_teardown(test_ciphers_take_a_gnutls_priority_string, teardown),
        cmocka_unit_test_teardown(test_allowlist_is_capped, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
