/* The write VIP: one step machine over proc runs of ip and arping, and a timer that spaces the
 * announcements. Over 900 lines because the claim, renewal, release and probe are one step
 * machine whose steps share the run in flight; split, each part would reach into the others'. */
#include "raftpg/vip.h"

#include <assert.h>
#include <ctype.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

enum vip_step {
    STEP_NONE = 0,
    STEP_START,         /* the timer runs the first step from the loop */
    STEP_PROBE,         /* claim: arping from 0.0.0.0 */
    STEP_LOOKUP,        /* claim and check: ip addr show */
    STEP_ADD,           /* claim: ip addr add */
    STEP_ADD_LOOKUP,    /* claim: did a failed add leave the address there anyway? */
    STEP_ANNOUNCE,      /* claim: one gratuitous ARP round */
    STEP_ANNOUNCE_WAIT, /* claim: the timer until the next round */
    STEP_DELETE,        /* release: ip addr del */
    STEP_DELETE_LOOKUP, /* release: is the address still there, under any prefix? */
    STEP_RENEW,         /* renew: ip addr change with a fresh lifetime */
    STEP_REFRESH,       /* claim: the same between announcement rounds */
};

static char *const env_c[] = {"LC_ALL=C", NULL};

static void on_proc(struct proc *p, const struct proc_result *res, void *data);
static void on_timer(uv_timer_t *t);
static void start_release(struct vip *v);

const char *vip_op_name(enum vip_op op)
{
    switch (op) {
    case VIP_OP_NONE: return "none";
    case VIP_OP_CLAIM: return "claim";
    case VIP_OP_RELEASE: return "release";
    case VIP_OP_CHECK: return "check";
    case VIP_OP_RENEW: return "renew";
    case VIP_OP_PROBE: return "probe";
    }
    return "unknown";
}

unsigned vip_renew_interval_ms(const struct conf_vip *conf)
{
    return conf->lifetime_s * 1000u / 4u;
}

/* Seconds with three decimals, as arping's -W and -w take them. */
static void fmt_seconds(char *buf, size_t size, unsigned ms)
{
    snprintf(buf, size, "%u.%03u", ms / 1000, ms % 1000);
}

static unsigned probe_deadline_ms(const struct vip *v)
{
    return v->conf.arping_count * VIP_PROBE_INTERVAL_MS + VIP_PROBE_WAIT_MS;
}

/* Ends the current operation and reports it. A release that waited for it starts next, unless
 * the callback closed v. */
static void op_done(struct vip *v, int rc, const char *msg)
{
    vip_cb cb = v->cb;
    void *data = v->data;

    assert(v->op != VIP_OP_NONE);
    v->op = VIP_OP_NONE;
    v->step = STEP_NONE;
    v->cb = NULL;
    v->data = NULL;
    cb(v, rc, msg, data);
    if (v->release_pending && v->op == VIP_OP_NONE && !v->closing) {
        start_release(v);
    }
}

/* Ends the current operation with "<op> vip A/P on IF: why". */
__attribute__((format(printf, 3, 4))) static void op_fail(struct vip *v, int rc, const char *fmt,
                                                          ...)
{
    char why[RPG_ERRMSG_SIZE], msg[RPG_ERRMSG_SIZE];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    rpg_fmt(msg, sizeof msg, "%s vip %s on %s: %s", vip_op_name(v->op), v->conf.address.text,
            v->conf.interface, why);
    op_done(v, rc, msg);
}

/* Ends the operation for a program that did not do its job: what ran, and what it said. */
static void op_fail_proc(struct vip *v, const char *what, const struct proc_result *res)
{
    char desc[RPG_ERRMSG_SIZE];

    proc_describe(&v->proc, res, desc, sizeof desc);
    op_fail(v, res->timed_out ? RPG_ETIMEDOUT : RPG_EIO, "%s: %s", what, desc);
}

/* Starts the operation's first step from the loop, so that no callback ever fires inside the
 * call that asked for the operation. */
static void defer_start(struct vip *v)
{
    v->step = STEP_START;
    uv_timer_start(&v->timer, on_timer, 0, 0);
}

/* Starts one program for the current step; failures to start end the operation. */
static void run(struct vip *v, enum vip_step step, char *const argv[], unsigned timeout_ms)
{
    char errmsg[RPG_ERRMSG_SIZE];

    v->step = step;
    if (v->timeout_ms != 0) {
        timeout_ms = v->timeout_ms;
    }
    int rv = proc_run(&v->proc, v->loop, argv, env_c, timeout_ms, on_proc, v, errmsg);
    if (rv != 0) {
        op_fail(v, rv, "%s", errmsg);
    }
}

/* Fires the callbacks of what has not finished, for vip_close. */
static void cancel_all(struct vip *v, const char *why)
{
    char msg[RPG_ERRMSG_SIZE];

    if (v->op != VIP_OP_NONE) {
        rpg_fmt(msg, sizeof msg, "%s vip %s on %s cancelled: %s", vip_op_name(v->op),
                v->conf.address.text, v->conf.interface, why);
        op_done(v, RPG_EBUSY, msg);
    }
    if (v->release_pending) {
        vip_cb cb = v->release_cb;
        void *data = v->release_data;
        v->release_pending = false;
        v->release_cb = NULL;
        v->release_data = NULL;
        rpg_fmt(msg, sizeof msg, "release vip %s on %s cancelled: %s", v->conf.address.text,
                v->conf.interface, why);
        cb(v, RPG_EBUSY, msg, data);
    }
}

static void close_maybe_done(struct vip *v)
{
    if (!v->timer_closed || v->proc.running) {
        return;
    }
    cancel_all(v, "vip closing");
    void (*cb)(struct vip *) = v->close_cb;
    v->close_cb = NULL;
    if (cb != NULL) {
        cb(v);
    }
}

/* A claim or a renewal stops at the first step boundary after a release was asked for: the
 * release matters more (DESIGN.md rule 2). Returns true when it did. */
static bool claim_cancelled(struct vip *v)
{
    if ((v->op != VIP_OP_CLAIM && v->op != VIP_OP_RENEW && v->op != VIP_OP_PROBE) ||
        !v->release_pending) {
        return false;
    }
    op_fail(v, RPG_EBUSY, "cancelled by a release");
    return true;
}

/* ---- output parsing ------------------------------------------------------------------------- */

/* Finds the VIP's address in `ip -4 -o addr show` output: sets v->found to the entry with the
 * configured prefix if there is one, else to the first entry with another prefix, else "".
 * Each line reads "2: eth0    inet 10.0.0.100/24 brd ... scope global secondary eth0\ ...". */
static void parse_lookup(struct vip *v, const char *out)
{
    const char *host = v->conf.address.host;
    size_t host_len = strlen(host);
    const char *s = out;

    v->found[0] = '\0';
    while ((s = strstr(s, "inet ")) != NULL) {
        if (s != out && !isspace((unsigned char)s[-1])) {
            s += 5;
            continue;
        }
        s += 5;
        while (*s == ' ') {
            s++;
        }
        size_t n = strcspn(s, " \t\n\\");
        if (n < sizeof v->found && n > host_len && strncmp(s, host, host_len) == 0 &&
            s[host_len] == '/') {
            if (n == strlen(v->conf.address.text) && strncmp(s, v->conf.address.text, n) == 0) {
                memcpy(v->found, s, n);
                v->found[n] = '\0';
                return;
            }
            if (v->found[0] == '\0') {
                memcpy(v->found, s, n);
                v->found[n] = '\0';
            }
        }
        s += n;
    }
}

static bool found_exact(const struct vip *v)
{
    return strcmp(v->found, v->conf.address.text) == 0;
}

static bool is_mac(const char *s)
{
    for (int i = 0; i < 17; i++) {
        if (i % 3 == 2 ? s[i] != ':' : !isxdigit((unsigned char)s[i])) {
            return false;
        }
    }
    return s[17] == '\0' || isspace((unsigned char)s[17]);
}

/* arping -r prints one MAC a line for each answer. */
static void parse_mac(const char *out, char mac[18])
{
    mac[0] = '\0';
    for (const char *line = out; *line != '\0';) {
        while (isspace((unsigned char)*line)) {
            line++;
        }
        if (is_mac(line)) {
            memcpy(mac, line, 17);
            mac[17] = '\0';
            for (int i = 0; i < 17; i++) {
                mac[i] = (char)tolower((unsigned char)mac[i]);
            }
            return;
        }
        line = strchr(line, '\n');
        if (line == NULL) {
            return;
        }
    }
}

/* A clean exit 0, or an exit 1 without output: Habets' arping exits 1 both when nobody answered
 * and on errors, and prints a message only for the errors (with -r or -q). */
static bool arping_quiet_exit(const struct proc_result *res)
{
    return res->spawn_error == 0 && !res->timed_out && res->term_signal == 0 &&
           (res->exit_status == 0 || res->exit_status == 1) && res->output[0] == '\0';
}

/* ---- steps ---------------------------------------------------------------------------------- */

static void step_probe(struct vip *v)
{
    char count[16], interval[16], deadline[16];

    snprintf(count, sizeof count, "%u", v->conf.arping_count);
    fmt_seconds(interval, sizeof interval, VIP_PROBE_INTERVAL_MS);
    fmt_seconds(deadline, sizeof deadline, probe_deadline_ms(v));
    char *argv[] = {v->conf.arping_bin,
                    "-r",
                    "-0",
                    "-C",
                    "1",
                    "-c",
                    count,
                    "-W",
                    interval,
                    "-w",
                    deadline,
                    "-i",
                    v->conf.interface,
                    v->conf.address.host,
                    NULL};
    run(v, STEP_PROBE, argv, probe_deadline_ms(v) + VIP_ARPING_SLACK_MS);
}

static void step_lookup(struct vip *v, enum vip_step step)
{
    char to[CONF_CIDR_MAX];

    snprintf(to, sizeof to, "%s/32", v->conf.address.host);
    /* "to A/32" lists only the entries for the VIP's address, whatever their prefix, so the
     * answer fits proc's output buffer however many addresses the interface has. */
    char *argv[] = {v->conf.ip_bin,    "-4", "-o", "addr", "show", "dev",
                    v->conf.interface, "to", to,   NULL};
    run(v, step, argv, VIP_IP_TIMEOUT_MS);
}

/* add and change with the lifetime: the kernel drops the address unless it is renewed. */
static void step_set(struct vip *v, enum vip_step step, char *verb)
{
    char lft[16];

    snprintf(lft, sizeof lft, "%u", v->conf.lifetime_s);
    char *argv[] = {v->conf.ip_bin,
                    "-4",
                    "addr",
                    verb,
                    v->conf.address.text,
                    "dev",
                    v->conf.interface,
                    "valid_lft",
                    lft,
                    "preferred_lft",
                    lft,
                    NULL};
    run(v, step, argv, VIP_IP_TIMEOUT_MS);
}

static void step_add(struct vip *v)
{
    step_set(v, STEP_ADD, "add");
}

static void step_announce(struct vip *v)
{
    char deadline[16];

    fmt_seconds(deadline, sizeof deadline, VIP_ANNOUNCE_WAIT_MS);
    /* -S sets the sender address to the VIP: without it arping sends the interface's own
     * address, and no host would learn where the VIP now is. A request, not a reply (-P):
     * Linux overrides a fresh neighbour entry only for a gratuitous request, or a reply whose
     * target MAC equals its sender's, which Habets' arping does not send (arp_is_garp in
     * net/ipv4/arp.c). */
    char *argv[] = {v->conf.arping_bin,
                    "-q",
                    "-U",
                    "-S",
                    v->conf.address.host,
                    "-c",
                    "1",
                    "-w",
                    deadline,
                    "-i",
                    v->conf.interface,
                    v->conf.address.host,
                    NULL};
    uv_update_time(v->loop);
    v->round_start = uv_now(v->loop);
    run(v, STEP_ANNOUNCE, argv, VIP_ANNOUNCE_WAIT_MS + VIP_ARPING_SLACK_MS);
}

static void step_delete(struct vip *v, const char *cidr)
{
    rpg_fmt(v->target, sizeof v->target, "%s", cidr);
    v->delete_rounds++;
    char *argv[] = {v->conf.ip_bin, "-4", "addr", "del", v->target, "dev", v->conf.interface, NULL};
    run(v, STEP_DELETE, argv, VIP_IP_TIMEOUT_MS);
}

static void claim_done(struct vip *v)
{
    char msg[RPG_ERRMSG_SIZE];

    rpg_fmt(msg, sizeof msg, "claimed vip %s on %s (%s%sannounced=%u)", v->conf.address.text,
            v->conf.interface, v->already_held ? "already present, " : "",
            v->early_probe ? "probed before the promotion, " : "", v->announced);
    op_done(v, 0, msg);
}

/* The address is on the interface: announce it, or finish when no rounds are asked for. */
static void claim_announce_or_finish(struct vip *v)
{
    if (claim_cancelled(v)) {
        return;
    }
    if (v->announced < v->conf.announce_repeats) {
        step_announce(v);
    } else {
        claim_done(v);
    }
}

static void start_release(struct vip *v)
{
    assert(v->op == VIP_OP_NONE && v->release_pending);
    v->op = VIP_OP_RELEASE;
    v->cb = v->release_cb;
    v->data = v->release_data;
    v->release_pending = false;
    v->release_cb = NULL;
    v->release_data = NULL;
    v->deleted = false;
    v->delete_rounds = 0;
    v->probe_clean = false;
    v->step_error[0] = '\0';
    defer_start(v);
}

/* What a probe showed, for vip_probe_due and a claim that follows. */
static void probe_record(struct vip *v, bool clean)
{
    uv_update_time(v->loop);
    v->probe_ended = uv_now(v->loop);
    v->probe_clean = clean;
}

static void after_probe(struct vip *v, const struct proc_result *res)
{
    probe_record(v, false);
    if (claim_cancelled(v)) {
        return;
    }
    if (v->op == VIP_OP_PROBE && v->probe_stale) {
        op_fail(v, RPG_EBUSY, "forgotten: the lease or the primary record went meanwhile");
        return;
    }
    if (proc_ok(res)) {
        parse_mac(res->output, v->holder_mac);
        op_fail(v, RPG_EEXIST, "refusing: another host answers for %s (mac=%s)",
                v->conf.address.host, v->holder_mac[0] != '\0' ? v->holder_mac : "unknown");
        return;
    }
    if (!arping_quiet_exit(res)) {
        op_fail_proc(v, "arping probe", res);
        return;
    }
    if (v->op == VIP_OP_PROBE) {
        char msg[RPG_ERRMSG_SIZE];
        probe_record(v, true);
        rpg_fmt(msg, sizeof msg, "probe vip %s on %s: no other host answers", v->conf.address.text,
                v->conf.interface);
        op_done(v, 0, msg);
        return;
    }
    step_lookup(v, STEP_LOOKUP);
}

static void after_claim_lookup(struct vip *v, const struct proc_result *res)
{
    if (!proc_ok(res)) {
        if (!claim_cancelled(v)) {
            op_fail_proc(v, "ip addr show", res);
        }
        return;
    }
    parse_lookup(v, res->output);
    v->held = found_exact(v);
    if (claim_cancelled(v)) {
        return;
    }
    if (v->held) {
        v->already_held = true;
        claim_announce_or_finish(v);
        return;
    }
    if (v->found[0] != '\0') {
        /* Adding the configured prefix beside it would leave two routes for one address. */
        op_fail(v, RPG_EEXIST, "refusing: the address is on %s as %s", v->conf.interface, v->found);
        return;
    }
    step_add(v);
}

static void after_add(struct vip *v, const struct proc_result *res)
{
    if (proc_ok(res)) {
        v->held = true;
        claim_announce_or_finish(v);
        return;
    }
    /* Another process may have added it meanwhile ("Address already assigned"): look. */
    char desc[RPG_ERRMSG_SIZE];
    proc_describe(&v->proc, res, desc, sizeof desc);
    rpg_fmt(v->step_error, sizeof v->step_error, "ip addr add: %s", desc);
    if (claim_cancelled(v)) {
        return;
    }
    if (res->timed_out) {
        op_fail(v, RPG_ETIMEDOUT, "%s", v->step_error);
        return;
    }
    step_lookup(v, STEP_ADD_LOOKUP);
}

static void after_add_lookup(struct vip *v, const struct proc_result *res)
{
    if (proc_ok(res)) {
        parse_lookup(v, res->output);
        v->held = found_exact(v);
    }
    if (claim_cancelled(v)) {
        return;
    }
    if (v->held) {
        claim_announce_or_finish(v);
    } else {
        op_fail(v, RPG_EIO, "%s", v->step_error);
    }
}

static void after_announce(struct vip *v, const struct proc_result *res)
{
    if (claim_cancelled(v)) {
        return;
    }
    if (!arping_quiet_exit(res)) {
        char desc[RPG_ERRMSG_SIZE];
        v->announce_failures++;
        proc_describe(&v->proc, res, desc, sizeof desc);
        op_fail(v, res->timed_out ? RPG_ETIMEDOUT : RPG_EIO,
                "gratuitous arp: %s (the address stays on %s)", desc, v->conf.interface);
        return;
    }
    v->announced++;
    if (v->announced >= v->conf.announce_repeats) {
        claim_done(v);
        return;
    }
    /* The rounds may outlast the lifetime given by the add: renew it before waiting. */
    step_set(v, STEP_REFRESH, "change");
}

static void after_refresh(struct vip *v, const struct proc_result *res)
{
    if (claim_cancelled(v)) {
        return;
    }
    if (!proc_ok(res)) {
        op_fail_proc(v, "ip addr change", res);
        return;
    }
    uv_update_time(v->loop);
    uint64_t spent = uv_now(v->loop) - v->round_start;
    uint64_t interval = v->conf.announce_interval_ms;
    v->step = STEP_ANNOUNCE_WAIT;
    uv_timer_start(&v->timer, on_timer, spent < interval ? interval - spent : 0, 0);
}

static void after_check_lookup(struct vip *v, const struct proc_result *res)
{
    char msg[RPG_ERRMSG_SIZE];

    if (!proc_ok(res)) {
        op_fail_proc(v, "ip addr show", res);
        return;
    }
    parse_lookup(v, res->output);
    v->held = found_exact(v);
    if (v->held) {
        rpg_fmt(msg, sizeof msg, "vip %s is on %s", v->conf.address.text, v->conf.interface);
    } else if (v->found[0] != '\0') {
        rpg_fmt(msg, sizeof msg, "vip %s is not on %s (it has %s)", v->conf.address.text,
                v->conf.interface, v->found);
    } else {
        rpg_fmt(msg, sizeof msg, "vip %s is not on %s", v->conf.address.text, v->conf.interface);
    }
    op_done(v, 0, msg);
}

static void after_renew_lookup(struct vip *v, const struct proc_result *res)
{
    char msg[RPG_ERRMSG_SIZE];

    if (!proc_ok(res)) {
        if (!claim_cancelled(v)) {
            op_fail_proc(v, "ip addr show", res);
        }
        return;
    }
    parse_lookup(v, res->output);
    v->held = found_exact(v);
    if (claim_cancelled(v)) {
        return;
    }
    if (!v->held) {
        rpg_fmt(msg, sizeof msg, "vip %s is no longer on %s: not renewed", v->conf.address.text,
                v->conf.interface);
        op_done(v, 0, msg);
        return;
    }
    step_set(v, STEP_RENEW, "change");
}

static void after_renew(struct vip *v, const struct proc_result *res)
{
    char msg[RPG_ERRMSG_SIZE];

    if (!proc_ok(res)) {
        op_fail_proc(v, "ip addr change", res);
        return;
    }
    rpg_fmt(msg, sizeof msg, "renewed vip %s on %s for %u s", v->conf.address.text,
            v->conf.interface, v->conf.lifetime_s);
    op_done(v, 0, msg);
}

static void after_delete(struct vip *v, const struct proc_result *res)
{
    if (proc_ok(res)) {
        v->deleted = true;
        v->step_error[0] = '\0';
        if (strcmp(v->target, v->conf.address.text) == 0) {
            v->held = false;
        }
    } else {
        char desc[RPG_ERRMSG_SIZE];
        proc_describe(&v->proc, res, desc, sizeof desc);
        rpg_fmt(v->step_error, sizeof v->step_error, "ip addr del %s: %s", v->target, desc);
    }
    /* Whatever the deletion said, the lookup decides: "Address not found" is a success, and a
     * deletion that worked may have left the address under another prefix. */
    step_lookup(v, STEP_DELETE_LOOKUP);
}

static void after_delete_lookup(struct vip *v, const struct proc_result *res)
{
    char msg[RPG_ERRMSG_SIZE];

    if (!proc_ok(res)) {
        if (v->step_error[0] != '\0') {
            op_fail(v, res->timed_out ? RPG_ETIMEDOUT : RPG_EIO, "%s", v->step_error);
        } else {
            op_fail_proc(v, "ip addr show", res);
        }
        return;
    }
    parse_lookup(v, res->output);
    v->held = found_exact(v);
    if (v->found[0] == '\0') {
        if (v->deleted) {
            rpg_fmt(msg, sizeof msg, "released vip %s from %s", v->conf.address.text,
                    v->conf.interface);
        } else {
            rpg_fmt(msg, sizeof msg, "vip %s was not on %s", v->conf.address.text,
                    v->conf.interface);
        }
        op_done(v, 0, msg);
        return;
    }
    if (v->step_error[0] != '\0' && strcmp(v->found, v->target) == 0) {
        op_fail(v, RPG_EIO, "%s", v->step_error);
        return;
    }
    if (v->delete_rounds >= VIP_DELETE_ROUNDS_MAX) {
        op_fail(v, RPG_EIO, "%s is still there after %u deletions", v->found, v->delete_rounds);
        return;
    }
    step_delete(v, v->found);
}

static void on_proc(struct proc *p, const struct proc_result *res, void *data)
{
    struct vip *v = data;

    (void)p;
    if (v->closing) {
        close_maybe_done(v);
        return;
    }
    switch ((enum vip_step)v->step) {
    case STEP_PROBE: after_probe(v, res); return;
    case STEP_LOOKUP:
        if (v->op == VIP_OP_CHECK) {
            after_check_lookup(v, res);
        } else if (v->op == VIP_OP_RENEW) {
            after_renew_lookup(v, res);
        } else {
            after_claim_lookup(v, res);
        }
        return;
    case STEP_RENEW: after_renew(v, res); return;
    case STEP_REFRESH: after_refresh(v, res); return;
    case STEP_ADD: after_add(v, res); return;
    case STEP_ADD_LOOKUP: after_add_lookup(v, res); return;
    case STEP_ANNOUNCE: after_announce(v, res); return;
    case STEP_DELETE: after_delete(v, res); return;
    case STEP_DELETE_LOOKUP: after_delete_lookup(v, res); return;
    case STEP_NONE:
    case STEP_START:
    case STEP_ANNOUNCE_WAIT: break;
    }
    assert(!"program finished in a step that runs none");
}

static void on_timer(uv_timer_t *t)
{
    struct vip *v = t->data;

    if (claim_cancelled(v)) {
        return;
    }
    if (v->step == STEP_ANNOUNCE_WAIT) {
        step_announce(v);
        return;
    }
    assert(v->step == STEP_START);
    switch (v->op) {
    case VIP_OP_CLAIM:
        if (v->skip_probe) {
            step_lookup(v, STEP_LOOKUP);
        } else {
            step_probe(v);
        }
        return;
    case VIP_OP_PROBE:
        if (v->probe_stale) {
            op_fail(v, RPG_EBUSY, "forgotten: the lease or the primary record went meanwhile");
        } else {
            step_probe(v);
        }
        return;
    case VIP_OP_CHECK:
    case VIP_OP_RENEW: step_lookup(v, STEP_LOOKUP); return;
    case VIP_OP_RELEASE: step_delete(v, v->conf.address.text); return;
    case VIP_OP_NONE: break;
    }
    assert(!"operation start without an operation");
}

static void on_timer_closed(uv_handle_t *h)
{
    struct vip *v = h->data;

    v->timer_closed = true;
    close_maybe_done(v);
}

/* ---- API ------------------------------------------------------------------------------------ */

int vip_init(struct vip *v, uv_loop_t *loop, const struct conf_vip *conf, char *errmsg)
{
    memset(v, 0, sizeof *v);
    if (conf_parse_cidr(conf->address.text, NULL, NULL) != 0 || conf->interface[0] == '\0' ||
        conf->ip_bin[0] == '\0' || conf->arping_bin[0] == '\0') {
        return rpg_err(errmsg, RPG_EINVAL,
                       "vip: incomplete configuration (address=%s interface=%s)",
                       conf->address.text, conf->interface);
    }
    if (conf->lifetime_s == 0) {
        return rpg_err(errmsg, RPG_EINVAL, "vip: lifetime must be at least 1 s");
    }
    v->loop = loop;
    v->conf = *conf;
    int rc = uv_timer_init(loop, &v->timer);
    if (rc != 0) {
        return rpg_err(errmsg, RPG_EIO, "vip: cannot create timer: %s", uv_strerror(rc));
    }
    v->timer.data = v;
    return 0;
}

static int refuse_busy(const struct vip *v, const char *what, char *errmsg)
{
    if (v->closing) {
        return rpg_err(errmsg, RPG_EBUSY, "cannot %s vip %s: closing", what, v->conf.address.text);
    }
    if (v->op != VIP_OP_NONE) {
        return rpg_err(errmsg, RPG_EBUSY, "cannot %s vip %s: a %s is in progress", what,
                       v->conf.address.text, vip_op_name(v->op));
    }
    return rpg_err(errmsg, RPG_EBUSY, "cannot %s vip %s: a release is waiting", what,
                   v->conf.address.text);
}

static void op_start(struct vip *v, enum vip_op op, vip_cb cb, void *data)
{
    v->op = op;
    v->cb = cb;
    v->data = data;
    v->step_error[0] = '\0';
}

static bool probe_fresh(const struct vip *v)
{
    return v->probe_clean && uv_now(v->loop) - v->probe_ended < VIP_PROBE_FRESH_MS;
}

int vip_claim(struct vip *v, vip_cb cb, void *data, char *errmsg)
{
    bool take_over = v->op == VIP_OP_PROBE && !v->probe_stale && !v->closing && !v->release_pending;
    if (!take_over && (v->closing || v->op != VIP_OP_NONE || v->release_pending)) {
        return refuse_busy(v, "claim", errmsg);
    }
    uv_update_time(v->loop);
    v->skip_probe = !take_over && probe_fresh(v);
    v->early_probe = take_over || v->skip_probe;
    /* One probe stands in for one claim only. */
    v->probe_clean = false;
    v->announced = 0;
    v->already_held = false;
    if (take_over) {
        /* The running probe goes on as this claim's own (after_probe). */
        v->op = VIP_OP_CLAIM;
        v->cb = cb;
        v->data = data;
        return 0;
    }
    op_start(v, VIP_OP_CLAIM, cb, data);
    v->holder_mac[0] = '\0';
    defer_start(v);
    return 0;
}

int vip_probe(struct vip *v, vip_cb cb, void *data, char *errmsg)
{
    if (v->closing || v->op != VIP_OP_NONE || v->release_pending) {
        return refuse_busy(v, "probe", errmsg);
    }
    op_start(v, VIP_OP_PROBE, cb, data);
    v->probe_stale = false;
    v->holder_mac[0] = '\0';
    defer_start(v);
    return 0;
}

bool vip_probe_due(const struct vip *v)
{
    if (v->closing || v->op != VIP_OP_NONE || v->release_pending || probe_fresh(v)) {
        return false;
    }
    return v->probe_clean || v->probe_ended == 0 ||
           uv_now(v->loop) - v->probe_ended >= VIP_PROBE_RETRY_MS;
}

bool vip_probing(const struct vip *v)
{
    return v->op == VIP_OP_PROBE;
}

void vip_probe_forget(struct vip *v)
{
    v->probe_clean = false;
    if (v->op == VIP_OP_PROBE && !v->probe_stale) {
        /* What it would show began under the lease that went: it stands for nothing now. */
        v->probe_stale = true;
        if (v->step == STEP_PROBE && v->proc.running) {
            proc_kill(&v->proc, SIGTERM);
        }
    }
}

int vip_check(struct vip *v, vip_cb cb, void *data, char *errmsg)
{
    if (v->closing || v->op != VIP_OP_NONE || v->release_pending) {
        return refuse_busy(v, "check", errmsg);
    }
    op_start(v, VIP_OP_CHECK, cb, data);
    defer_start(v);
    return 0;
}

int vip_renew(struct vip *v, vip_cb cb, void *data, char *errmsg)
{
    if (v->closing || v->op != VIP_OP_NONE || v->release_pending) {
        return refuse_busy(v, "renew", errmsg);
    }
    op_start(v, VIP_OP_RENEW, cb, data);
    defer_start(v);
    return 0;
}

int vip_release(struct vip *v, vip_cb cb, void *data, char *errmsg)
{
    if (v->closing || v->op == VIP_OP_RELEASE || v->release_pending) {
        return refuse_busy(v, "release", errmsg);
    }
    v->release_pending = true;
    v->release_cb = cb;
    v->release_data = data;
    if (v->op == VIP_OP_NONE) {
        start_release(v);
        return 0;
    }
    if (v->op != VIP_OP_CLAIM && v->op != VIP_OP_PROBE) {
        return 0; /* a check ends soon on its own; a renewal stops at its next step */
    }
    switch ((enum vip_step)v->step) {
    case STEP_PROBE:
    case STEP_ANNOUNCE:
        /* Cutting these short changes nothing on the interface. */
        proc_kill(&v->proc, SIGTERM);
        break;
    case STEP_ANNOUNCE_WAIT:
        /* From the loop, not from here: the caller is not ready for callbacks yet. */
        uv_timer_start(&v->timer, on_timer, 0, 0);
        break;
    default:
        /* Not started yet: the timer sees the release. Or ip is changing the interface: let it
         * finish, the release undoes it. */
        break;
    }
    return 0;
}

bool vip_is_held(const struct vip *v)
{
    return v->held;
}

bool vip_busy(const struct vip *v)
{
    return v->op != VIP_OP_NONE || v->release_pending;
}

void vip_close(struct vip *v, void (*cb)(struct vip *v))
{
    if (v->closing) {
        return;
    }
    v->closing = true;
    v->close_cb = cb;
    uv_timer_stop(&v->timer);
    if (v->proc.running) {
        proc_kill(&v->proc, SIGTERM);
    }
    uv_close((uv_handle_t *)&v->timer, on_timer_closed);
}
