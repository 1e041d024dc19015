/* Unit tests for the API's answer headers and revocation lists: conf_header_check (names,
 * values, the headers the server keeps to itself), the configuration of
 * restapi.http_extra_headers, https_extra_headers, server_tokens, restapi.crlfile and
 * ctl.crlfile with their exact messages, what a reload says of them, and tls_crl_load,
 * tls_crl_revokes, tls_crl_next_update and tls_cert_not_after on a CA, certificates and lists
 * made here with GnuTLS (in a temporary directory, removed at the end); the expiry warnings'
 * timing (tls_expiry_state, tls_warn_due). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "raftpg/conf.h"
#include "raftpg/reload.h"
#include "raftpg/tls_crl.h"

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

/* ---- conf_header_check ---- */

static const struct {
    const char *name, *value, *why; /* why NULL: accepted */
} header_cases[] = {
    {"X-Frame-Options", "SAMEORIGIN", NULL},
    {"Strict-Transport-Security", "max-age=31536000; includeSubDomains", NULL},
    {"x!#$%&'*+-.^_`|~9", "v", NULL},
    {"X-Tab", "a\tb", NULL},
    {"X-Latin", "caf\xc3\xa9", NULL}, /* obs-text: bytes above 0x7F are allowed */
    {"", "v",
     "expected a header name of 1..63 characters from letters, digits and !#$%&'*+-.^_`|~ (an "
     "HTTP token), got \"\""},
    {"X Frame", "v",
     "expected a header name of 1..63 characters from letters, digits and !#$%&'*+-.^_`|~ (an "
     "HTTP token), got \"X Frame\""},
    {"X-A:", "v",
     "expected a header name of 1..63 characters from letters, digits and !#$%&'*+-.^_`|~ (an "
     "HTTP token), got \"X-A:\""},
    {"X\rA", "v",
     "expected a header name, got one with a control character (byte 0x0D at offset 1)"},
    {"X(A)", "v",
     "expected a header name of 1..63 characters from letters, digits and !#$%&'*+-.^_`|~ (an "
     "HTTP token), got \"X(A)\""},
    {"X-A", "a\r\nSet-Cookie: s=1",
     "the value has a control character (byte 0x0D at offset 1): a CR or LF would let it write "
     "headers of its own"},
    {"X-A", "a\nb",
     "the value has a control character (byte 0x0A at offset 1): a CR or LF would let it write "
     "headers of its own"},
    {"X-A", "a\x7f",
     "the value has a control character (byte 0x7F at offset 1): a CR or LF would let it write "
     "headers of its own"},
    {"X-A", "\x01",
     "the value has a control character (byte 0x01 at offset 0): a CR or LF would let it write "
     "headers of its own"},
    {"X-A", "", "expected a value of 1..1023 bytes, got 0"},
    {"X-A", " a", "the value begins or ends with white space, which HTTP drops"},
    {"X-A", "a\t", "the value begins or ends with white space, which HTTP drops"},
    {"Content-Length", "1",
     "Content-Length cannot be an extra header: frames every answer (libmicrohttpd writes it)"},
    {"transfer-encoding", "chunked",
     "Transfer-Encoding cannot be an extra header: frames every answer (libmicrohttpd writes "
     "it)"},
    {"CONNECTION", "close",
     "Connection cannot be an extra header: frames every answer (libmicrohttpd writes it)"},
    {"Keep-Alive", "timeout=5",
     "Keep-Alive cannot be an extra header: frames every answer (libmicrohttpd writes it)"},
    {"Upgrade", "h2c",
     "Upgrade cannot be an extra header: frames every answer (libmicrohttpd writes it)"},
    {"Trailer", "X",
     "Trailer cannot be an extra header: frames every answer (libmicrohttpd writes it)"},
    {"Content-Type", "text/html",
     "Content-Type cannot be an extra header: describes each answer's body (the agent writes "
     "it)"},
    {"Content-Encoding", "gzip",
     "Content-Encoding cannot be an extra header: describes each answer's body (the agent "
     "writes it)"},
    {"Date", "x", "Date cannot be an extra header: libmicrohttpd writes it"},
    {"server", "nginx", "Server cannot be an extra header: restapi.server_tokens sets it"},
    {"WWW-Authenticate", "Basic",
     "WWW-Authenticate cannot be an extra header: the agent writes it on each 401 answer"},
};

static void test_header_check_table(void **state)
{
    (void)state;
    char why[RPG_ERRMSG_SIZE];
    for (size_t i = 0; i < sizeof header_cases / sizeof header_cases[0]; i++) {
        why[0] = '\0';
        bool ok = conf_header_check(header_cases[i].name, header_cases[i].value, why, sizeof why);
        if (ok != (header_cases[i].why == NULL)) {
            fail_msg("case %zu (%s): %s", i, header_cases[i].name, ok ? "accepted" : why);
        }
        if (!ok && strcmp(why, header_cases[i].why) != 0) {
            fail_msg("case %zu: got [%s], expected [%s]", i, why, header_cases[i].why);
        }
    }
}

static void test_header_lengths_at_their_limits(void **state)
{
    (void)state;
    char name[CONF_HEADER_NAME_MAX + 1], value[CONF_HEADER_VALUE_MAX + 1], why[RPG_ERRMSG_SIZE];
    memset(name, 'x', CONF_HEADER_NAME_MAX - 1);
    name[CONF_HEADER_NAME_MAX - 1] = '\0';
    memset(value, 'v', CONF_HEADER_VALUE_MAX - 1);
    value[CONF_HEADER_VALUE_MAX - 1] = '\0';
    assert_true(conf_header_check(name, value, why, sizeof why));
    name[CONF_HEADER_NAME_MAX - 1] = 'x';
    name[CONF_HEADER_NAME_MAX] = '\0';
    assert_false(conf_header_check(name, "v", why, sizeof why));
    value[CONF_HEADER_VALUE_MAX - 1] = 'v';
    value[CONF_HEADER_VALUE_MAX] = '\0';
    assert_false(conf_header_check("X-A", value, why, sizeof why));
    assert_string_equal(why, "expected a value of 1..1023 bytes, got 1024");
}

/* ---- configuration ---- */

static void test_defaults_add_nothing(void **state)
{
    (void)state;
    assert_int_equal(load(MINIMAL), 0);
    assert_int_equal(c.restapi_headers.n_http, 0);
    assert_int_equal(c.restapi_headers.n_https, 0);
    assert_int_equal(c.restapi.server_tokens, CONF_SERVER_TOKENS_ORIGINAL);
    assert_null(conf_server_header(c.restapi.server_tokens));
    assert_string_equal(c.restapi.crlfile, "");
    assert_string_equal(conf_client_crlfile(&c), "");
}

static void test_patroni_example_loads(void **state)
{
    (void)state;
    /* Patroni's documented example, quoted names and all. */
    assert_int_equal(load(MINIMAL TLS "  http_extra_headers:\n"
                                      "    'X-Frame-Options': 'SAMEORIGIN'\n"
                                      "    'X-XSS-Protection': '1; mode=block'\n"
                                      "    'X-Content-Type-Options': 'nosniff'\n"
                                      "  https_extra_headers:\n"
                                      "    'Strict-Transport-Security': 'max-age=31536000; "
                                      "includeSubDomains'\n"
                                      "  server_tokens: ProductOnly\n"
                                      "  crlfile: /etc/raftpg/crl.pem\n"),
                     0);
    assert_int_equal(c.restapi_headers.n_http, 3);
    assert_string_equal(c.restapi_headers.http[1].key, "X-XSS-Protection");
    assert_string_equal(c.restapi_headers.http[1].value, "1; mode=block");
    assert_int_equal(c.restapi_headers.n_https, 1);
    assert_string_equal(c.restapi_headers.https[0].value, "max-age=31536000; includeSubDomains");
    assert_int_equal(c.restapi.server_tokens, CONF_SERVER_TOKENS_PRODUCT_ONLY);
    assert_string_equal(c.restapi.crlfile, "/etc/raftpg/crl.pem");
    /* The clients verify with restapi.cafile, so they take its lists too. */
    assert_string_equal(conf_client_crlfile(&c), "/etc/raftpg/crl.pem");
}

static const struct {
    const char *text;
    enum conf_server_tokens tokens;
    const char *name, *header;
} tokens_cases[] = {
    {MINIMAL "restapi: {server_tokens: Original}\n", CONF_SERVER_TOKENS_ORIGINAL, "Original", NULL},
    {MINIMAL "restapi: {server_tokens: productonly}\n", CONF_SERVER_TOKENS_PRODUCT_ONLY,
     "ProductOnly", "raftpg"},
    {MINIMAL "restapi: {server_tokens: MINIMAL}\n", CONF_SERVER_TOKENS_MINIMAL, "Minimal",
     "raftpg/" RAFTPG_VERSION},
};

/* As Patroni: https_extra_headers without TLS are kept (and not sent), not refused, so that a
 * file written for Patroni loads. */
static void test_https_headers_without_tls_load(void **state)
{
    (void)state;
    assert_int_equal(load(MINIMAL
                          "restapi:\n"
                          "  https_extra_headers: {Strict-Transport-Security: max-age=1}\n"),
                     0);
    assert_int_equal(c.restapi_headers.n_https, 1);
}

static void test_server_tokens_as_patroni_spells_them(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof tokens_cases / sizeof tokens_cases[0]; i++) {
        if (load(tokens_cases[i].text) != 0) {
            fail_msg("case %zu: %s", i, errmsg);
        }
        assert_int_equal(c.restapi.server_tokens, tokens_cases[i].tokens);
        assert_string_equal(conf_server_tokens_name(c.restapi.server_tokens), tokens_cases[i].name);
        const char *h = conf_server_header(c.restapi.server_tokens);
        if (tokens_cases[i].header == NULL) {
            assert_null(h);
        } else {
            assert_string_equal(h, tokens_cases[i].header);
        }
        conf_free(&c);
    }
}

static void test_client_lists_follow_the_client_ca(void **state)
{
    (void)state;
    /* ctl.cacert names another CA: restapi.crlfile's lists are not its, so none by default. */
    assert_int_equal(load(MINIMAL TLS "  crlfile: /etc/raftpg/crl.pem\n"
                                      "ctl:\n"
                                      "  cacert: /etc/raftpg/other-ca.pem\n"),
                     0);
    assert_string_equal(conf_client_crlfile(&c), "");
    conf_free(&c);
    assert_int_equal(load(MINIMAL TLS "  crlfile: /etc/raftpg/crl.pem\n"
                                      "ctl:\n"
                                      "  cacert: /etc/raftpg/other-ca.pem\n"
                                      "  crlfile: /etc/raftpg/other-crl.pem\n"),
                     0);
    assert_string_equal(conf_client_crlfile(&c), "/etc/raftpg/other-crl.pem");
    conf_free(&c);
    /* ctl alone (a machine that only runs ctl), verifying with restapi.cafile. */
    assert_int_equal(load(MINIMAL "restapi:\n"
                                  "  cafile: /etc/raftpg/ca.pem\n"
                                  "ctl:\n"
                                  "  crlfile: /etc/raftpg/crl.pem\n"),
                     0);
    assert_string_equal(conf_client_crlfile(&c), "/etc/raftpg/crl.pem");
}

static const struct {
    const char *text, *error;
} conf_bad[] = {
    {MINIMAL TLS "  http_extra_headers:\n"
                 "    X-A: \"a\\r\\nSet-Cookie: s=1\"\n",
     "t.yaml:14:10: restapi.http_extra_headers.X-A: the value has a control character (byte 0x0D "
     "at offset 1): a CR or LF would let it write headers of its own"},
    {MINIMAL TLS "  https_extra_headers:\n"
                 "    X-A: \"a\\0b\"\n",
     "t.yaml:14:10: restapi.https_extra_headers.X-A: the value has a control character (a NUL "
     "byte at offset 1): a CR or LF would let it write headers of its own"},
    {MINIMAL TLS "  http_extra_headers:\n"
                 "    \"X-A\\0\": b\n",
     "t.yaml:14:5: restapi.http_extra_headers: expected a header name, got one with a NUL byte (at "
     "offset 3)"},
    {MINIMAL TLS "  http_extra_headers:\n"
                 "    \"X-A\\nX-B\": b\n",
     "t.yaml:14:5: restapi.http_extra_headers: expected a header name, got one with a control "
     "character (byte 0x0A at offset 3)"},
    {MINIMAL TLS "  http_extra_headers:\n"
                 "    X Frame: b\n",
     "t.yaml:14:5: restapi.http_extra_headers: expected a header name of 1..63 characters from "
     "letters, digits and !#$%&'*+-.^_`|~ (an HTTP token), got \"X Frame\""},
    {MINIMAL TLS "  http_extra_headers:\n"
                 "    Content-Length: 3\n",
     "t.yaml:14:5: restapi.http_extra_headers.Content-Length: Content-Length cannot be an extra "
     "header: frames every answer (libmicrohttpd writes it)"},
    {MINIMAL TLS "  https_extra_headers:\n"
                 "    server: x\n",
     "t.yaml:14:5: restapi.https_extra_headers.server: Server cannot be an extra header: "
     "restapi.server_tokens sets it"},
    {MINIMAL TLS "  http_extra_headers:\n"
                 "    X-A: a\n"
                 "    x-a: b\n",
     "t.yaml:15:5: restapi.http_extra_headers.x-a: duplicate header (names are compared without "
     "regard to case)"},
    {MINIMAL TLS "  http_extra_headers:\n"
                 "    X-A:\n",
     "t.yaml:14:9: restapi.http_extra_headers.X-A: expected a value of 1..1023 bytes, got 0"},
    {MINIMAL TLS "  http_extra_headers:\n"
                 "    X-A: [a]\n",
     "t.yaml:14:10: restapi.http_extra_headers.X-A: expected a scalar, got a sequence"},
    {MINIMAL TLS "  http_extra_headers: [X-A]\n",
     "t.yaml:13:23: restapi.http_extra_headers: expected a mapping of header names to values, got "
     "a sequence"},
    {MINIMAL TLS "  server_tokens: Full\n",
     "t.yaml:13:18: restapi.server_tokens: expected one of Original|ProductOnly|Minimal, got "
     "\"Full\""},
    {MINIMAL "restapi:\n"
             "  certfile: /a.pem\n"
             "  keyfile: /a.key\n"
             "  crlfile: /crl.pem\n",
     "t.yaml:12:12: restapi.crlfile: requires restapi.certfile, restapi.keyfile and "
     "restapi.cafile: it lists certificates that restapi.cafile's CA revoked"},
    {MINIMAL TLS "  crlfile: crl.pem\n",
     "t.yaml:13:12: restapi.crlfile: expected an absolute path, got \"crl.pem\""},
    {MINIMAL "ctl:\n"
             "  crlfile: /crl.pem\n",
     "t.yaml:10:12: ctl.crlfile: requires ctl.cacert or restapi.cafile: it lists certificates "
     "that CA revoked"},
    {MINIMAL TLS "ctl:\n"
                 "  insecure: true\n"
                 "  crlfile: /crl.pem\n",
     "t.yaml:15:12: ctl.crlfile: means nothing with ctl.insecure, which checks no certificate"},
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

static void test_headers_are_capped(void **state)
{
    (void)state;
    char text[8192];
    size_t n = (size_t)snprintf(text, sizeof text, MINIMAL "restapi:\n  http_extra_headers:\n");
    for (unsigned i = 0; i <= CONF_HEADERS_MAX; i++) {
        n += (size_t)snprintf(text + n, sizeof text - n, "    X-H%u: v\n", i);
    }
    assert_int_equal(load(text), RPG_ECONFIG);
    char want[200];
    snprintf(want, sizeof want,
             "t.yaml:%d:5: restapi.http_extra_headers: expected at most %d headers",
             11 + CONF_HEADERS_MAX, CONF_HEADERS_MAX);
    assert_string_equal(errmsg, want);
}

static void test_reload_names_header_changes_for_a_restart(void **state)
{
    (void)state;
    struct conf cur, next;
    char applied[256], restart[256];
    assert_int_equal(conf_load_string("t.yaml",
                                      MINIMAL TLS "  http_extra_headers: {X-A: a}\n"
                                                  "  https_extra_headers: {X-B: b}\n",
                                      &cur, errmsg),
                     0);
    assert_int_equal(conf_load_string("t.yaml",
                                      MINIMAL TLS "  http_extra_headers: {X-A: a}\n"
                                                  "  https_extra_headers: {X-B: b}\n",
                                      &next, errmsg),
                     0);
    reload_apply(&cur, &next, applied, sizeof applied, restart, sizeof restart);
    assert_string_equal(restart, "");
    conf_free(&next);
    assert_int_equal(conf_load_string("t.yaml",
                                      MINIMAL TLS "  http_extra_headers: {X-A: other}\n"
                                                  "  https_extra_headers: {X-B: b, X-C: c}\n"
                                                  "  server_tokens: Minimal\n",
                                      &next, errmsg),
                     0);
    reload_apply(&cur, &next, applied, sizeof applied, restart, sizeof restart);
    assert_string_equal(applied, "");
    assert_string_equal(restart,
                        "restapi, restapi.http_extra_headers, restapi.https_extra_headers");
    /* Not applied: the running headers stay. */
    assert_string_equal(cur.restapi_headers.http[0].value, "a");
    conf_free(&cur);
    conf_free(&next);
}

/* ---- revocation lists ---- */

static char dir[64];
static char path_ca[128], path_stray[128], path_crl[128], path_crl_der[128], path_stray_crl[128],
    path_not_crl[128], path_empty[128], path_stale_crl[128], path_stray_stale_crl[128];
static time_t stale_next_update; /* of the stale lists */
static gnutls_datum_t der_good, der_bad;

static void write_datum(const char *path, const gnutls_datum_t *d)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(d->data, 1, d->size, f), d->size);
    assert_int_equal(fclose(f), 0);
}

static gnutls_x509_privkey_t new_key(void)
{
    gnutls_x509_privkey_t key;
    assert_int_equal(gnutls_x509_privkey_init(&key), 0);
    assert_int_equal(gnutls_x509_privkey_generate(
                         key, GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0),
                     0);
    return key;
}

/* A certificate for cn signed by issuer (NULL: self-signed, a CA). */
static gnutls_x509_crt_t new_crt(const char *cn, unsigned char serial, gnutls_x509_privkey_t key,
                                 gnutls_x509_crt_t issuer, gnutls_x509_privkey_t issuer_key)
{
    gnutls_x509_crt_t crt;
    time_t now = time(NULL);
    assert_int_equal(gnutls_x509_crt_init(&crt), 0);
    assert_int_equal(gnutls_x509_crt_set_version(crt, 3), 0);
    assert_int_equal(gnutls_x509_crt_set_serial(crt, &serial, 1), 0);
    assert_int_equal(gnutls_x509_crt_set_activation_time(crt, now - 60), 0);
    assert_int_equal(gnutls_x509_crt_set_expiration_time(crt, now + 86400), 0);
    assert_int_equal(
        gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, cn, strlen(cn)), 0);
    assert_int_equal(gnutls_x509_crt_set_key(crt, key), 0);
    assert_int_equal(gnutls_x509_crt_set_basic_constraints(crt, issuer == NULL, -1), 0);
    if (issuer == NULL) {
        assert_int_equal(
            gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_KEY_CERT_SIGN | GNUTLS_KEY_CRL_SIGN), 0);
    }
    assert_int_equal(gnutls_x509_crt_sign2(crt, issuer != NULL ? issuer : crt,
                                           issuer_key != NULL ? issuer_key : key, GNUTLS_DIG_SHA256,
                                           0),
                     0);
    return crt;
}

/* A list by ca revoking the certificates of revoked (n of them), due again at next_update. */
static gnutls_x509_crl_t new_crl_due(gnutls_x509_crt_t ca, gnutls_x509_privkey_t ca_key,
                                     gnutls_x509_crt_t *revoked, unsigned n, time_t next_update)
{
    gnutls_x509_crl_t crl;
    time_t now = time(NULL);
    assert_int_equal(gnutls_x509_crl_init(&crl), 0);
    assert_int_equal(gnutls_x509_crl_set_version(crl, 2), 0);
    assert_int_equal(gnutls_x509_crl_set_this_update(crl, now - 7200), 0);
    assert_int_equal(gnutls_x509_crl_set_next_update(crl, next_update), 0);
    for (unsigned i = 0; i < n; i++) {
        assert_int_equal(gnutls_x509_crl_set_crt(crl, revoked[i], now - 30), 0);
    }
    assert_int_equal(gnutls_x509_crl_sign2(crl, ca, ca_key, GNUTLS_DIG_SHA256, 0), 0);
    return crl;
}

static gnutls_x509_crl_t new_crl(gnutls_x509_crt_t ca, gnutls_x509_privkey_t ca_key,
                                 gnutls_x509_crt_t *revoked, unsigned n)
{
    return new_crl_due(ca, ca_key, revoked, n, time(NULL) + 86400);
}

static int pki_setup(void **state)
{
    (void)state;
    gnutls_datum_t d;
    snprintf(dir, sizeof dir, "/tmp/raftpg-crl-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(path_ca, sizeof path_ca, "%s/ca.pem", dir);
    snprintf(path_stray, sizeof path_stray, "%s/stray.pem", dir);
    snprintf(path_crl, sizeof path_crl, "%s/crl.pem", dir);
    snprintf(path_crl_der, sizeof path_crl_der, "%s/crl.der", dir);
    snprintf(path_stray_crl, sizeof path_stray_crl, "%s/stray-crl.pem", dir);
    snprintf(path_not_crl, sizeof path_not_crl, "%s/not.pem", dir);
    snprintf(path_empty, sizeof path_empty, "%s/empty.pem", dir);
    snprintf(path_stale_crl, sizeof path_stale_crl, "%s/stale-crl.pem", dir);
    snprintf(path_stray_stale_crl, sizeof path_stray_stale_crl, "%s/stray-stale-crl.pem", dir);

    gnutls_x509_privkey_t ca_key = new_key(), stray_key = new_key(), key = new_key();
    gnutls_x509_crt_t ca = new_crt("test CA", 1, ca_key, NULL, NULL);
    gnutls_x509_crt_t stray = new_crt("stray CA", 1, stray_key, NULL, NULL);
    gnutls_x509_crt_t good = new_crt("good", 2, key, ca, ca_key);
    gnutls_x509_crt_t bad = new_crt("bad", 3, key, ca, ca_key);
    /* The stray CA revokes a certificate with the good one's serial: its list is not ca's. */
    gnutls_x509_crt_t stray_good = new_crt("good", 2, key, stray, stray_key);

    assert_int_equal(gnutls_x509_crt_export2(ca, GNUTLS_X509_FMT_PEM, &d), 0);
    write_datum(path_ca, &d);
    write_datum(path_not_crl, &d); /* a certificate where a list should be */
    gnutls_free(d.data);
    assert_int_equal(gnutls_x509_crt_export2(stray, GNUTLS_X509_FMT_PEM, &d), 0);
    write_datum(path_stray, &d);
    gnutls_free(d.data);
    gnutls_x509_crl_t crl = new_crl(ca, ca_key, &bad, 1);
    assert_int_equal(gnutls_x509_crl_export2(crl, GNUTLS_X509_FMT_PEM, &d), 0);
    write_datum(path_crl, &d);
    gnutls_free(d.data);
    assert_int_equal(gnutls_x509_crl_export2(crl, GNUTLS_X509_FMT_DER, &d), 0);
    write_datum(path_crl_der, &d);
    gnutls_free(d.data);
    gnutls_x509_crl_t stray_crl = new_crl(stray, stray_key, &stray_good, 1);
    assert_int_equal(gnutls_x509_crl_export2(stray_crl, GNUTLS_X509_FMT_PEM, &d), 0);
    write_datum(path_stray_crl, &d);
    gnutls_free(d.data);
    /* Lists past their nextUpdate, by the CA and by the stray one. */
    stale_next_update = time(NULL) - 3600;
    gnutls_x509_crl_t stale = new_crl_due(ca, ca_key, &bad, 1, stale_next_update);
    assert_int_equal(gnutls_x509_crl_export2(stale, GNUTLS_X509_FMT_PEM, &d), 0);
    write_datum(path_stale_crl, &d);
    gnutls_free(d.data);
    gnutls_x509_crl_deinit(stale);
    stale = new_crl_due(stray, stray_key, &stray_good, 1, stale_next_update);
    assert_int_equal(gnutls_x509_crl_export2(stale, GNUTLS_X509_FMT_PEM, &d), 0);
    write_datum(path_stray_stale_crl, &d);
    gnutls_free(d.data);
    gnutls_x509_crl_deinit(stale);
    d = (gnutls_datum_t){(unsigned char *)"", 0};
    write_datum(path_empty, &d);
    assert_int_equal(gnutls_x509_crt_export2(good, GNUTLS_X509_FMT_DER, &der_good), 0);
    assert_int_equal(gnutls_x509_crt_export2(bad, GNUTLS_X509_FMT_DER, &der_bad), 0);

    gnutls_x509_crl_deinit(crl);
    gnutls_x509_crl_deinit(stray_crl);
    gnutls_x509_crt_deinit(ca);
    gnutls_x509_crt_deinit(stray);
    gnutls_x509_crt_deinit(good);
    gnutls_x509_crt_deinit(bad);
    gnutls_x509_crt_deinit(stray_good);
    gnutls_x509_privkey_deinit(ca_key);
    gnutls_x509_privkey_deinit(stray_key);
    gnutls_x509_privkey_deinit(key);
    return 0;
}

static int pki_teardown(void **state)
{
    (void)state;
    const char *paths[] = {path_ca,      path_stray,     path_crl,
                           path_crl_der, path_stray_crl, path_not_crl,
                           path_empty,   path_stale_crl, path_stray_stale_crl};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        unlink(paths[i]);
    }
    rmdir(dir);
    gnutls_free(der_good.data);
    gnutls_free(der_bad.data);
    return 0;
}

static void test_crl_revokes_what_it_lists(void **state)
{
    (void)state;
    const char *files[] = {path_crl, path_crl_der};
    for (int i = 0; i < 2; i++) {
        struct tls_crl crl;
        unsigned which = 99;
        assert_int_equal(tls_crl_load(&crl, "restapi.crlfile", files[i], "restapi.cafile", path_ca,
                                      false, errmsg),
                         0);
        assert_int_equal(crl.n, 1);
        assert_true(tls_crl_revokes(&crl, &der_bad, 1, &which));
        assert_int_equal(which, 0);
        assert_false(tls_crl_revokes(&crl, &der_good, 1, NULL));
        /* A revoked certificate further up a chain counts too. */
        gnutls_datum_t chain[2] = {der_good, der_bad};
        assert_true(tls_crl_revokes(&crl, chain, 2, &which));
        assert_int_equal(which, 1);
        tls_crl_free(&crl);
        assert_int_equal(crl.n, 0);
    }
    /* No lists revoke nothing. */
    struct tls_crl none = {NULL, 0};
    assert_false(tls_crl_revokes(&none, &der_bad, 1, NULL));
    assert_false(tls_crl_revokes(NULL, &der_bad, 1, NULL));
}

static void test_crl_load_errors_name_the_key(void **state)
{
    (void)state;
    char want[1024];
    /* For libcurl: PEM only. */
    assert_int_equal(tls_crl_load(NULL, "ctl.crlfile", path_crl_der, "ctl.cacert", path_ca, true,
                                  errmsg),
                     RPG_EINVAL);
    snprintf(want, sizeof want,
             "ctl.crlfile: %s: expected a PEM file (\"-----BEGIN X509 CRL-----\"): libcurl reads "
             "no other (convert a DER list with: openssl crl -inform DER -in FILE -out FILE.pem)",
             path_crl_der);
    assert_string_equal(errmsg, want);
    assert_int_equal(
        tls_crl_load(NULL, "ctl.crlfile", path_crl, "ctl.cacert", path_ca, true, errmsg), 0);
    /* Signed by another CA than the one that verifies. */
    assert_int_equal(tls_crl_load(NULL, "restapi.crlfile", path_stray_crl, "restapi.cafile",
                                  path_ca, false, errmsg),
                     RPG_EINVAL);
    snprintf(want, sizeof want,
             "restapi.crlfile: %s: the list of \"CN=stray CA\" is not signed by a CA of "
             "restapi.cafile (%s): The certificate is NOT trusted. The certificate issuer is "
             "unknown.",
             path_stray_crl, path_ca);
    assert_string_equal(errmsg, want);
    assert_int_equal(tls_crl_load(NULL, "restapi.crlfile", path_stray_crl, "restapi.cafile",
                                  path_stray, false, errmsg),
                     0);
    /* Not a list; an empty file; no file. */
    assert_int_equal(tls_crl_load(NULL, "restapi.crlfile", path_not_crl, "restapi.cafile", path_ca,
                                  false, errmsg),
                     RPG_EINVAL);
    snprintf(want, sizeof want,
             "restapi.crlfile: %s: not a certificate revocation list in PEM or DER (",
             path_not_crl);
    assert_memory_equal(errmsg, want, strlen(want));
    assert_int_equal(tls_crl_load(NULL, "restapi.crlfile", path_empty, "restapi.cafile", path_ca,
                                  false, errmsg),
                     RPG_EINVAL);
    snprintf(want, sizeof want,
             "restapi.crlfile: %s: not a certificate revocation list in PEM or DER (", path_empty);
    assert_memory_equal(errmsg, want, strlen(want));
    assert_int_equal(tls_crl_load(NULL, "restapi.crlfile", "/nonexistent/crl.pem", "restapi.cafile",
                                  path_ca, false, errmsg),
                     RPG_EIO);
    assert_string_equal(errmsg,
                        "restapi.crlfile: /nonexistent/crl.pem: cannot read: No such file or "
                        "directory");
    /* The CA file is the problem. */
    assert_int_equal(tls_crl_load(NULL, "restapi.crlfile", path_crl, "restapi.cafile",
                                  "/nonexistent/ca.pem", false, errmsg),
                     RPG_EIO);
    assert_string_equal(errmsg, "restapi.cafile: /nonexistent/ca.pem: cannot read: No such file or "
                                "directory");
    assert_int_equal(tls_crl_load(NULL, "restapi.crlfile", path_crl, "restapi.cafile", path_crl,
                                  false, errmsg),
                     RPG_EINVAL);
    snprintf(want, sizeof want, "restapi.cafile: %s: no PEM certificate in it (", path_crl);
    assert_memory_equal(errmsg, want, strlen(want));
}

/* A list past its nextUpdate is still used (and its time told); a stale one from another CA is
 * still refused. */
static void test_stale_crl_loads_with_its_time(void **state)
{
    (void)state;
    struct tls_crl crl;
    assert_int_equal(tls_crl_load(&crl, "restapi.crlfile", path_stale_crl, "restapi.cafile",
                                  path_ca, false, errmsg),
                     0);
    assert_true(tls_crl_revokes(&crl, &der_bad, 1, NULL));
    assert_int_equal(tls_crl_next_update(&crl), (int64_t)stale_next_update);
    assert_int_equal(tls_expiry_state((int64_t)time(NULL), tls_crl_next_update(&crl), 0),
                     TLS_EXPIRY_PAST);
    tls_crl_free(&crl);
    assert_int_equal(tls_crl_next_update(&crl), -1);
    assert_int_equal(tls_crl_next_update(NULL), -1);
    assert_int_equal(tls_crl_load(NULL, "restapi.crlfile", path_stray_stale_crl, "restapi.cafile",
                                  path_ca, false, errmsg),
                     RPG_EINVAL);
    assert_non_null(strstr(errmsg, "is not signed by a CA of restapi.cafile"));
    /* A fresh one: its nextUpdate a day ahead. */
    assert_int_equal(tls_crl_load(&crl, "restapi.crlfile", path_crl, "restapi.cafile", path_ca,
                                  false, errmsg),
                     0);
    int64_t next = tls_crl_next_update(&crl), now = (int64_t)time(NULL);
    assert_true(next > now + 86000 && next <= now + 86400);
    tls_crl_free(&crl);
}

static void test_cert_not_after(void **state)
{
    (void)state;
    FILE *f = fopen(path_ca, "r");
    assert_non_null(f);
    char pem[8192];
    size_t n = fread(pem, 1, sizeof pem - 1, f);
    fclose(f);
    pem[n] = '\0';
    int64_t at = tls_cert_not_after(pem), now = (int64_t)time(NULL);
    assert_true(at > now + 86000 && at <= now + 86400);
    assert_int_equal(tls_cert_not_after("not a certificate"), -1);
    assert_int_equal(tls_cert_not_after(NULL), -1);
}

static void test_expiry_state(void **state)
{
    (void)state;
    const int64_t now = 1800000000, soon = TLS_CERT_SOON_S;
    assert_int_equal(tls_expiry_state(now, -1, soon), TLS_EXPIRY_OK); /* none */
    assert_int_equal(tls_expiry_state(now, now + soon + 1, soon), TLS_EXPIRY_OK);
    assert_int_equal(tls_expiry_state(now, now + soon, soon), TLS_EXPIRY_SOON);
    assert_int_equal(tls_expiry_state(now, now + 1, soon), TLS_EXPIRY_SOON);
    assert_int_equal(tls_expiry_state(now, now, soon), TLS_EXPIRY_PAST);
    assert_int_equal(tls_expiry_state(now, now - 86400, soon), TLS_EXPIRY_PAST);
    /* A list: only past counts. */
    assert_int_equal(tls_expiry_state(now, now + 1, 0), TLS_EXPIRY_OK);
    assert_int_equal(tls_expiry_state(now, now - 1, 0), TLS_EXPIRY_PAST);
}

static void test_warn_due_once_a_day_and_on_each_load(void **state)
{
    (void)state;
    const int64_t t0 = 1800000000;
    int64_t last = 0;
    assert_true(tls_warn_due(t0, &last, false)); /* never warned yet */
    assert_int_equal(last, t0);
    assert_false(tls_warn_due(t0 + 3600, &last, false));
    assert_false(tls_warn_due(t0 + TLS_WARN_INTERVAL_S - 1, &last, false));
    assert_true(tls_warn_due(t0 + 3600, &last, true)); /* a load: at once */
    assert_int_equal(last, t0 + 3600);
    assert_false(tls_warn_due(t0 + TLS_WARN_INTERVAL_S, &last, false));
    assert_true(tls_warn_due(t0 + 3600 + TLS_WARN_INTERVAL_S, &last, false));
    assert_int_equal(last, t0 + 3600 + TLS_WARN_INTERVAL_S);
    /* A clock set back does not silence it for a day. */
    assert_true(tls_warn_due(t0, &last, false));
    assert_int_equal(last, t0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_check_table),
        cmocka_unit_test(test_header_lengths_at_their_limits),
        cmocka_unit_test_teardown(test_defaults_add_nothing, teardown),
        cmocka_unit_test_teardown(test_patroni_example_loads, teardown),
        cmocka_unit_test_teardown(test_server_tokens_as_patroni_spells_them, teardown),
        cmocka_unit_test_teardown(test_https_headers_without_tls_load, teardown),
        cmocka_unit_test_teardown(test_client_lists_follow_the_client_ca, teardown),
        cmocka_unit_test_teardown(test_bad_configurations_are_named, teardown),
        cmocka_unit_test_teardown(test_headers_are_capped, teardown),
        cmocka_unit_test(test_reload_names_header_changes_for_a_restart),
        cmocka_unit_test_setup_teardown(test_crl_revokes_what_it_lists, pki_setup, pki_teardown),
        cmocka_unit_test_setup_teardown(test_crl_load_errors_name_the_key, pki_setup, pki_teardown),
        cmocka_unit_test_setup_teardown(test_stale_crl_loads_with_its_time, pki_setup,
                                        pki_teardown),
        cmocka_unit_test_setup_teardown(test_cert_not_after, pki_setup, pki_teardown),
        cmocka_unit_test(test_expiry_state),
        cmocka_unit_test(test_warn_due_once_a_day_and_on_each_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
