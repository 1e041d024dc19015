/* Configuration values: each scalar converted into its field and checked (names, IPv4
 * addresses and prefixes, interface and parameter names, booleans, enums, byte counts), and the
 * public checks of networks, HTTP headers and rates that the API and ctl use too. */
#include "raftpg/conf.h"

#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "conf_int.h"

/* Formats s for a message as "s", cut at 40 bytes (on a UTF-8 boundary) with "..." added. */
const char *conf_quote(const char *s, char out[48])
{
    size_t n = strlen(s);

    if (n <= 40) {
        snprintf(out, 48, "\"%s\"", s);
        return out;
    }
    n = 40;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) {
        n--;
    }
    snprintf(out, 48, "\"%.*s...\"", (int)n, s);
    return out;
}

/* Reads 1..max_digits decimal digits with no leading zero (so "010" is never read as octal, as
 * YAML 1.1 would) and returns the end, or NULL. */
static const char *scan_decimal(const char *s, int max_digits, unsigned long *v)
{
    int n = 0;

    *v = 0;
    while (s[n] >= '0' && s[n] <= '9') {
        if (n == max_digits) {
            return NULL;
        }
        *v = *v * 10 + (unsigned long)(s[n] - '0');
        n++;
    }
    if (n == 0 || (n > 1 && s[0] == '0')) {
        return NULL;
    }
    return s + n;
}

int conf_parse_addr(const char *addr, char host[16], uint16_t *port)
{
    const char *s = addr;
    unsigned long v;

    if (addr == NULL) {
        return RPG_EINVAL;
    }
    for (int i = 0; i < 4; i++) {
        if (i > 0 && *s++ != '.') {
            return RPG_EINVAL;
        }
        s = scan_decimal(s, 3, &v);
        if (s == NULL || v > 255) {
            return RPG_EINVAL;
        }
    }
    if (*s != ':') {
        return RPG_EINVAL;
    }
    /* At most 4 * 3 digits + 3 dots, so the host fits in 16 bytes. */
    size_t host_len = (size_t)(s - addr);
    s = scan_decimal(s + 1, 5, &v);
    if (s == NULL || *s != '\0' || v < 1 || v > 65535) {
        return RPG_EINVAL;
    }
    if (host != NULL) {
        memcpy(host, addr, host_len);
        host[host_len] = '\0';
    }
    if (port != NULL) {
        *port = (uint16_t)v;
    }
    return 0;
}

/* Reads a dotted quad and returns its end, or NULL. */
static const char *scan_ipv4(const char *s)
{
    unsigned long v;

    for (int i = 0; i < 4; i++) {
        if (i > 0 && *s++ != '.') {
            return NULL;
        }
        s = scan_decimal(s, 3, &v);
        if (s == NULL || v > 255) {
            return NULL;
        }
    }
    return s;
}

int conf_parse_cidr(const char *cidr, char host[16], unsigned *prefix)
{
    const char *s = NULL;
    unsigned long v;

    if (cidr == NULL || (s = scan_ipv4(cidr)) == NULL || *s != '/') {
        return RPG_EINVAL;
    }
    size_t host_len = (size_t)(s - cidr);
    s = scan_decimal(s + 1, 2, &v);
    if (s == NULL || *s != '\0' || v < 1 || v > 32) {
        return RPG_EINVAL;
    }
    if (host != NULL) {
        memcpy(host, cidr, host_len);
        host[host_len] = '\0';
    }
    if (prefix != NULL) {
        *prefix = (unsigned)v;
    }
    return 0;
}

/* The dotted quad at the start of s as a number, s being known to start with one. */
static uint32_t ipv4_value(const char *s)
{
    uint32_t v = 0;
    char *end;

    for (int i = 0; i < 4; i++) {
        v = v * 256 + (uint32_t)strtoul(s, &end, 10);
        s = *end == '.' ? end + 1 : end;
    }
    return v;
}

/* Why cidr cannot be the VIP, or NULL when it can. ip addr would take a network or broadcast
 * address, but no client could reach it, and 0/8, 127/8 and 224/4 and up are not unicast on a
 * LAN. Prefixes 31 and 32 have no network or broadcast address (RFC 3021). */
static const char *cidr_not_host(const char *cidr, unsigned prefix)
{
    uint32_t a = ipv4_value(cidr);
    uint32_t host_mask = prefix == 32 ? 0 : UINT32_MAX >> prefix;

    if ((a >> 24) == 0 || (a >> 24) == 127 || (a >> 24) >= 224) {
        return "a unicast host address";
    }
    if (prefix <= 30 && (a & host_mask) == 0) {
        return "a host address, not the network address of its prefix";
    }
    if (prefix <= 30 && (a & host_mask) == host_mask) {
        return "a host address, not the broadcast address of its prefix";
    }
    return NULL;
}

bool conf_is_wildcard(const char *addr)
{
    return strncmp(addr, "0.0.0.0:", 8) == 0;
}

static bool is_name(const char *s, size_t max_len)
{
    size_t n = strlen(s);

    if (n == 0 || n > max_len) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '.' || ch == '-')) {
            return false;
        }
    }
    return true;
}

/* A name the kernel takes for a network interface (dev_valid_name in net/core/dev.c): it refuses
 * "." and "..", '/', ':' and white space. The other characters, and a leading '-', are refused
 * here because ip and arping take the name as an argument, where "-x" would read as an option. */
static bool is_ifname(const char *s)
{
    return is_name(s, CONF_IFNAME_MAX - 1) && s[0] != '-' && strcmp(s, ".") != 0 &&
           strcmp(s, "..") != 0;
}

/* A PostgreSQL setting name: plain or "extension.name" (GUC names are case-insensitive). */
bool conf_is_param_name(const char *s)
{
    if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || s[0] == '_')) {
        return false;
    }
    for (s++; *s != '\0'; s++) {
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '.')) {
            return false;
        }
    }
    return true;
}

static bool parse_bool(const char *s, bool *v)
{
    static const char *const yes[] = {"true", "yes", "on"};
    static const char *const no[] = {"false", "no", "off"};

    for (int i = 0; i < 3; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *v = true;
            return true;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *v = false;
            return true;
        }
    }
    return false;
}

/* Converts s into the field k describes at base. On failure returns false and writes what was
 * expected into why; the caller adds the position and the key. Used for defaults too, so a
 * default is checked exactly like a value in the file. */
bool conf_convert(const struct conf_key *k, void *base, const char *s, char *why, size_t n)
{
    char *f = (char *)base + k->off;
    size_t len = strlen(s);
    char q[48];
    unsigned long v;
    bool b;

    switch (k->type) {
    case KEY_STRING:
        /* The value is not echoed: it may be a password. */
        if (len < (size_t)k->min || len >= k->size) {
            snprintf(why, n, "expected %ld..%zu bytes, got %zu", k->min, k->size - 1, len);
            return false;
        }
        memcpy(f, s, len + 1);
        return true;
    case KEY_NAME:
        if (!is_name(s, k->size - 1)) {
            snprintf(why, n, "expected a name of 1..%zu characters from [A-Za-z0-9_.-], got %s",
                     k->size - 1, conf_quote(s, q));
            return false;
        }
        memcpy(f, s, len + 1);
        return true;
    case KEY_LISTEN:
    case KEY_ADDR:
        if (conf_parse_addr(s, NULL, NULL) != 0) {
            snprintf(why, n, "expected IPv4 address:port, got %s", conf_quote(s, q));
            return false;
        }
        if (k->type == KEY_ADDR && conf_is_wildcard(s)) {
            snprintf(why, n, "expected an address other nodes can connect to, got %s",
                     conf_quote(s, q));
            return false;
        }
        assert(len < k->size);
        memcpy(f, s, len + 1);
        return true;
    case KEY_PATH:
        if (s[0] != '/') {
            snprintf(why, n, "expected an absolute path, got %s", conf_quote(s, q));
            return false;
        }
        if (len >= k->size) {
            snprintf(why, n, "expected a path of at most %zu bytes, got %zu", k->size - 1, len);
            return false;
        }
        memcpy(f, s, len + 1);
        return true;
    case KEY_UINT:
    case KEY_INT: {
        const char *end = scan_decimal(s, 9, &v);
        if (end == NULL || *end != '\0' || v < (unsigned long)k->min || v > (unsigned long)k->max) {
            snprintf(why, n, "expected an integer %ld..%ld, got %s", k->min, k->max,
                     conf_quote(s, q));
            return false;
        }
        if (k->type == KEY_UINT) {
            *(unsigned *)f = (unsigned)v;
        } else {
            *(int *)f = (int)v;
        }
        return true;
    }
    case KEY_BOOL:
        if (!parse_bool(s, &b)) {
            snprintf(why, n, "expected true or false (or yes/no, on/off), got %s",
                     conf_quote(s, q));
            return false;
        }
        *(bool *)f = b;
        return true;
    case KEY_ENUM: {
        char list[96] = "";
        for (int i = 0; k->names[i] != NULL; i++) {
            if (strcasecmp(s, k->names[i]) == 0) {
                memcpy(f, &i, sizeof i);
                return true;
            }
            if (i > 0) {
                strncat(list, "|", sizeof list - strlen(list) - 1);
            }
            strncat(list, k->names[i], sizeof list - strlen(list) - 1);
        }
        snprintf(why, n, "expected one of %s, got %s", list, conf_quote(s, q));
        return false;
    }
    case KEY_CIDR: {
        struct conf_cidr *cidr = (struct conf_cidr *)f;
        const char *end = scan_ipv4(s);
        const char *what;
        unsigned prefix;
        assert(k->size == sizeof *cidr);
        if (conf_parse_cidr(s, cidr->host, &prefix) != 0) {
            /* A well-formed address with a prefix length outside 1..32 gets its own message. */
            if (end != NULL && *end == '/' && (end = scan_decimal(end + 1, 3, &v)) != NULL &&
                *end == '\0') {
                snprintf(why, n, "expected a prefix length 1..32, got %s", conf_quote(s, q));
            } else {
                snprintf(why, n, "expected IPv4 address/prefix, got %s", conf_quote(s, q));
            }
            return false;
        }
        if ((what = cidr_not_host(s, prefix)) != NULL) {
            snprintf(why, n, "expected %s, got %s", what, conf_quote(s, q));
            return false;
        }
        assert(len < sizeof cidr->text);
        memcpy(cidr->text, s, len + 1);
        cidr->prefix = prefix;
        return true;
    }
    case KEY_IFNAME:
        if (strchr(s, ':') != NULL) {
            snprintf(why, n,
                     "expected an interface name, got %s (a name with ':' is an address label, "
                     "name the interface itself)",
                     conf_quote(s, q));
            return false;
        }
        if (!is_ifname(s)) {
            snprintf(why, n,
                     "expected an interface name of 1..%zu characters from [A-Za-z0-9_.-] not "
                     "starting with '-', got %s",
                     k->size - 1, conf_quote(s, q));
            return false;
        }
        memcpy(f, s, len + 1);
        return true;
    case KEY_MAX_LAG: {
        struct conf_max_lag *ml = (struct conf_max_lag *)f;
        assert(k->size == sizeof *ml);
        /* YAML's null (Patroni's way to say no limit). */
        if (strcmp(s, "null") == 0 || strcmp(s, "~") == 0 || strcmp(s, "Null") == 0 ||
            strcmp(s, "NULL") == 0) {
            ml->set = false;
            ml->bytes = 0;
            return true;
        }
        uint64_t bytes = 0;
        bool ok = len > 0 && len <= 19;
        for (size_t i = 0; ok && i < len; i++) {
            ok = s[i] >= '0' && s[i] <= '9';
            bytes = bytes * 10 + (uint64_t)(s[i] - '0');
        }
        if (!ok || bytes > CONF_MAX_LAG_MAX) {
            snprintf(why, n, "expected a number of bytes 0..%llu, or null (no limit), got %s",
                     (unsigned long long)CONF_MAX_LAG_MAX, conf_quote(s, q));
            return false;
        }
        ml->set = true;
        ml->bytes = bytes;
        return true;
    }
    case KEY_SYNC_MODE: {
        /* Patroni's synchronous_mode is on, off or quorum (YAML 1.1 reads on as true): its
         * non-strict modes degrade to asynchronous as raftpg's quorum does. */
        static const struct {
            const char *word;
            int mode;
        } words[] = {{"off", 0}, {"false", 0}, {"no", 0},  {"quorum", 1},
                     {"on", 1},  {"true", 1},  {"yes", 1}, {"strict", 2}};
        for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
            if (strcasecmp(s, words[i].word) == 0) {
                memcpy(f, &words[i].mode, sizeof words[i].mode);
                return true;
            }
        }
        snprintf(why, n,
                 "expected off, quorum or strict (or Patroni's on/true, read as quorum), got %s",
                 conf_quote(s, q));
        return false;
    }
    case KEY_SECTION:
    case KEY_MEMBERS:
    case KEY_PARAMS:
    case KEY_STRLIST:
    case KEY_NETLIST:
    case KEY_HEADERS:
    case KEY_OTHER:
    case KEY_IGNORED:
    case KEY_REFUSED:
    case KEY_METHOD:
    case KEY_ARGS: break;
    }
    assert(!"convert called on a container key");
    return false;
}

void conf_apply_defaults(const struct conf_key *table, void *base)
{
    char why[RPG_ERRMSG_SIZE];

    for (const struct conf_key *k = table; k->key != NULL; k++) {
        if (k->type == KEY_SECTION) {
            conf_apply_defaults(k->sub, base);
        } else if (k->def != NULL) {
            bool ok = conf_convert(k, base, k->def, why, sizeof why);
            assert(ok && "a default in a key table is invalid");
            (void)ok;
        }
    }
}

/* Whether s can be a DNS host name: labels of [A-Za-z0-9-] separated by dots, 1..253 bytes. */
bool conf_is_hostname(const char *s)
{
    size_t len = strlen(s), label = 0;
    if (len == 0 || len > 253) {
        return false;
    }
    for (const char *c = s; *c != '\0'; c++) {
        if (*c == '.') {
            if (label == 0) {
                return false;
            }
            label = 0;
        } else if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                   (*c >= '0' && *c <= '9') || *c == '-') {
            if (++label > 63) {
                return false;
            }
        } else {
            return false;
        }
    }
    return true;
}

/* Patroni passes any other key of a custom bootstrap method as --key=value; a dash is common
 * there (barman-server). */
bool conf_is_arg_name(const char *s)
{
    if (s[0] == '\0' || s[0] == '-') {
        return false;
    }
    for (; *s != '\0'; s++) {
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '.' || *s == '-')) {
            return false;
        }
    }
    return true;
}

bool conf_rate_valid(const char *s)
{
    unsigned long long v = 0;
    size_t i = 0;
    for (; s[i] >= '0' && s[i] <= '9' && i < 10; i++) {
        v = v * 10 + (unsigned long long)(s[i] - '0');
    }
    if (i == 0) {
        return false;
    }
    if (s[i] == 'k' && s[i + 1] == '\0') {
        i++;
    } else if (s[i] == 'M' && s[i + 1] == '\0') {
        v *= 1024;
        i++;
    }
    return s[i] == '\0' && v >= 32 && v <= 1048576;
}

/* Headers the server writes itself, and why an extra header may not name them. */
static const struct {
    const char *name, *why;
} managed_headers[] = {
    {"Content-Length", "frames every answer (libmicrohttpd writes it)"},
    {"Transfer-Encoding", "frames every answer (libmicrohttpd writes it)"},
    {"Connection", "frames every answer (libmicrohttpd writes it)"},
    {"Keep-Alive", "frames every answer (libmicrohttpd writes it)"},
    {"Upgrade", "frames every answer (libmicrohttpd writes it)"},
    {"Trailer", "frames every answer (libmicrohttpd writes it)"},
    {"Content-Type", "describes each answer's body (the agent writes it)"},
    {"Content-Encoding", "describes each answer's body (the agent writes it)"},
    {"Date", "libmicrohttpd writes it"},
    {"Server", "restapi.server_tokens sets it"},
    {"WWW-Authenticate", "the agent writes it on each 401 answer"},
};

bool conf_header_check(const char *name, const char *value, char *why, size_t n)
{
    char q[48];
    size_t len = strlen(name);
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)name[i];
        if (ch < 0x20 || ch == 0x7F) {
            /* Not echoed: the message goes to a terminal or a log. */
            snprintf(why, n,
                     "expected a header name, got one with a control character (byte "
                     "0x%02X at offset %zu)",
                     ch, i);
            return false;
        }
    }
    if (len == 0 || len >= CONF_HEADER_NAME_MAX || strspn(name, HEADER_TCHARS) != len) {
        snprintf(why, n,
                 "expected a header name of 1..%d characters from letters, digits and "
                 "!#$%%&'*+-.^_`|~ (an HTTP token), got %s",
                 CONF_HEADER_NAME_MAX - 1, conf_quote(name, q));
        return false;
    }
    for (size_t i = 0; i < sizeof managed_headers / sizeof managed_headers[0]; i++) {
        if (strcasecmp(name, managed_headers[i].name) == 0) {
            snprintf(why, n, "%s cannot be an extra header: %s", managed_headers[i].name,
                     managed_headers[i].why);
            return false;
        }
    }
    size_t vlen = strlen(value);
    for (size_t i = 0; i < vlen; i++) {
        unsigned char ch = (unsigned char)value[i];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7F) {
            snprintf(why, n,
                     "the value has a control character (byte 0x%02X at offset %zu): a CR or LF "
                     "would let it write headers of its own",
                     ch, i);
            return false;
        }
    }
    if (vlen == 0 || vlen >= CONF_HEADER_VALUE_MAX) {
        snprintf(why, n, "expected a value of 1..%d bytes, got %zu", CONF_HEADER_VALUE_MAX - 1,
                 vlen);
        return false;
    }
    if (value[0] == ' ' || value[0] == '\t' || value[vlen - 1] == ' ' || value[vlen - 1] == '\t') {
        snprintf(why, n, "the value begins or ends with white space, which HTTP drops");
        return false;
    }
    return true;
}

int conf_net_parse(const char *text, struct conf_net *net, char *why, size_t n)
{
    char addr[INET6_ADDRSTRLEN + 1], q[48];
    struct conf_net r;
    const char *slash = strchr(text, '/');
    size_t alen = slash != NULL ? (size_t)(slash - text) : strlen(text);

    memset(&r, 0, sizeof r);
    if (alen == 0 || alen >= sizeof addr) {
        goto bad;
    }
    memcpy(addr, text, alen);
    addr[alen] = '\0';
    if (inet_pton(AF_INET, addr, r.addr) == 1) {
        r.family = AF_INET;
        r.prefix = 32;
    } else if (inet_pton(AF_INET6, addr, r.addr) == 1) {
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        r.family = AF_INET6;
        r.prefix = 128;
        if (slash == NULL && memcmp(r.addr, mapped, sizeof mapped) == 0) {
            memmove(r.addr, r.addr + 12, 4);
            memset(r.addr + 4, 0, 12);
            r.family = AF_INET;
            r.prefix = 32;
        }
    } else {
        goto bad;
    }
    if (slash != NULL) {
        const char *d = slash + 1;
        unsigned long v = 0;
        size_t digits = strspn(d, "0123456789");
        if (digits == 0 || digits > 3 || d[digits] != '\0' || (digits > 1 && d[0] == '0')) {
            goto bad_prefix;
        }
        v = strtoul(d, NULL, 10);
        if (v > r.prefix) {
            goto bad_prefix;
        }
        r.prefix = (unsigned)v;
    }
    /* Clear the host bits, as Patroni's ip_network(strict=False) does. */
    unsigned size = r.family == AF_INET ? 4 : 16;
    for (unsigned i = 0; i < size; i++) {
        unsigned keep = r.prefix >= 8 * (i + 1) ? 8 : r.prefix > 8 * i ? r.prefix - 8 * i : 0;
        r.addr[i] &= (uint8_t)(0xff00u >> keep);
    }
    if (net != NULL) {
        *net = r;
    }
    return 0;
bad_prefix:
    if (why != NULL) {
        snprintf(why, n, "expected a prefix length 0..%u after the address, got %s",
                 r.family == AF_INET ? 32u : 128u, conf_quote(text, q));
    }
    return RPG_EINVAL;
bad:
    if (why != NULL) {
        snprintf(why, n,
                 "expected an IPv4 or IPv6 address, a network ADDRESS/PREFIX or a host name, "
                 "got %s",
                 conf_quote(text, q));
    }
    return RPG_EINVAL;
}

bool conf_net_contains(const struct conf_net *net, const struct conf_net *addr)
{
    if (net->family != addr->family) {
        return false;
    }
    unsigned full = net->prefix / 8, rest = net->prefix % 8;
    if (memcmp(net->addr, addr->addr, full) != 0) {
        return false;
    }
    if (rest == 0) {
        return true;
    }
    uint8_t mask = (uint8_t)(0xff00u >> rest);
    return (net->addr[full] & mask) == (addr->addr[full] & mask);
}
