#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "raftpg/log.h"
#include "raftpg/loopwatch.h"

#define NS_PER_MS 1000000ULL

/* The watcher of this process: spans are added to it. */
static struct loopwatch *g_current;

const char *loopwatch_phase_name(enum loopwatch_phase phase)
{
    switch (phase) {
    case LOOPWATCH_PHASE_TIMERS: return "timers and check callbacks";
    case LOOPWATCH_PHASE_POLL: return "poll and i/o callbacks";
    }
    return "unknown";
}

static uint64_t since(uint64_t from, uint64_t to)
{
    return to > from ? to - from : 0;
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

bool loopwatch_judge(enum loopwatch_phase phase, const struct loopwatch_mark *from,
                     const struct loopwatch_mark *to, int64_t planned_ns, uint64_t idle_ns,
                     uint64_t bound_ns, struct loopwatch_stall *out)
{
    memset(out, 0, sizeof *out);
    out->phase = phase;
    uint64_t wall = since(from->wall_ns, to->wall_ns);
    /* The poll may sleep as long as it was idle, up to what libuv planned: only a wake-up later
     * than planned, and the callbacks, held the loop. */
    uint64_t wait = 0;
    if (phase == LOOPWATCH_PHASE_POLL) {
        wait = planned_ns < 0 ? idle_ns : min_u64(idle_ns, (uint64_t)planned_ns);
        out->late_ns = planned_ns < 0 ? 0 : since((uint64_t)planned_ns, idle_ns);
    }
    out->held_ns = since(wait, wall);
    out->sched_known = from->sched_known && to->sched_known;
    if (out->sched_known) {
        out->cpu_ns = min_u64(since(from->cpu_ns, to->cpu_ns), out->held_ns);
        out->runq_ns = min_u64(since(from->runq_ns, to->runq_ns), out->held_ns - out->cpu_ns);
        out->blocked_ns = out->held_ns - out->cpu_ns - out->runq_ns;
    }
    return out->held_ns > bound_ns;
}

void loopwatch_spans_add(struct loopwatch_span *spans, const char *name, uint64_t ns)
{
    unsigned i = 0;
    while (i < LOOPWATCH_SPANS && spans[i].name != NULL && strcmp(spans[i].name, name) != 0) {
        i++;
    }
    struct loopwatch_span s = {.name = name, .ns = ns};
    if (i < LOOPWATCH_SPANS && spans[i].name != NULL) {
        s.ns += spans[i].ns; /* the same name again: it moves up with its total */
    } else if (i == LOOPWATCH_SPANS) {
        i = LOOPWATCH_SPANS - 1; /* a new name: it may take the shortest one's place */
        if (spans[i].ns >= ns) {
            return;
        }
    }
    while (i > 0 && spans[i - 1].ns < s.ns) {
        spans[i] = spans[i - 1];
        i--;
    }
    spans[i] = s;
}

bool loopwatch_parse_schedstat(const char *text, uint64_t *cpu_ns, uint64_t *runq_ns)
{
    uint64_t v[2];
    const char *p = text;
    for (unsigned i = 0; i < 2; i++) {
        while (*p == ' ') {
            p++;
        }
        if (*p < '0' || *p > '9') {
            return false;
        }
        char *end;
        errno = 0;
        unsigned long long x = strtoull(p, &end, 10);
        if (errno != 0 || (*end != ' ' && *end != '\n' && *end != '\0')) {
            return false;
        }
        v[i] = x;
        p = end;
    }
    *cpu_ns = v[0];
    *runq_ns = v[1];
    return true;
}

bool loopwatch_limit_allows(struct loopwatch_limit *l, uint64_t now_ns, uint64_t held_ns,
                            unsigned *suppressed, uint64_t *longest_suppressed_ns)
{
    *suppressed = 0;
    *longest_suppressed_ns = 0;
    if (l->last_ns != 0 && now_ns - l->last_ns < LOOPWATCH_LOG_INTERVAL_MS * NS_PER_MS) {
        l->suppressed++;
        l->longest_ns = held_ns > l->longest_ns ? held_ns : l->longest_ns;
        return false;
    }
    *suppressed = l->suppressed;
    *longest_suppressed_ns = l->longest_ns;
    l->last_ns = now_ns != 0 ? now_ns : 1;
    l->suppressed = 0;
    l->longest_ns = 0;
    return true;
}

static unsigned long long ms(uint64_t ns)
{
    return (unsigned long long)(ns / NS_PER_MS);
}

void loopwatch_format(const struct loopwatch_stall *s, unsigned suppressed,
                      uint64_t longest_suppressed_ns, char *buf, size_t size)
{
    size_t n = 0;
#define PUT(...)                                                                                   \
    do {                                                                                           \
        if (n < size) {                                                                            \
            int k = snprintf(buf + n, size - n, __VA_ARGS__);                                      \
            n += k > 0 ? (size_t)k : 0;                                                            \
        }                                                                                          \
    } while (0)
    if (size == 0) {
        return;
    }
    buf[0] = '\0';
    PUT("loop stall: %s held the loop %llu ms (bound %d ms)", loopwatch_phase_name(s->phase),
        ms(s->held_ns), LOOPWATCH_BOUND_MS);
    if (s->sched_known) {
        PUT(": on a cpu %llu ms, waiting for a cpu %llu ms, blocked or stopped %llu ms",
            ms(s->cpu_ns), ms(s->runq_ns), ms(s->blocked_ns));
    }
    if (s->late_ns >= NS_PER_MS) {
        PUT("; the poll woke %llu ms late", ms(s->late_ns));
    }
    if (s->spans[0].name == NULL) {
        PUT("; no named callback ran");
    } else {
        PUT("; longest named callbacks:");
        for (unsigned i = 0; i < LOOPWATCH_SPANS && s->spans[i].name != NULL; i++) {
            PUT("%s %s %llu ms", i > 0 ? "," : "", s->spans[i].name, ms(s->spans[i].ns));
        }
    }
    if (suppressed > 0) {
        PUT("; %u more since the last report, the longest %llu ms", suppressed,
            ms(longest_suppressed_ns));
    }
#undef PUT
}

/* ---- on the loop ----------------------------------------------------------------------------- */

static void mark(const struct loopwatch *w, struct loopwatch_mark *m)
{
    m->wall_ns = uv_hrtime();
    m->sched_known = false;
    if (w->sched_fd < 0) {
        return;
    }
    char buf[96];
    ssize_t n = pread(w->sched_fd, buf, sizeof buf - 1, 0);
    if (n > 0) {
        buf[n] = '\0';
        m->sched_known = loopwatch_parse_schedstat(buf, &m->cpu_ns, &m->runq_ns);
    }
}

void loopwatch_totals_add(struct loopwatch_totals *t, const struct loopwatch_stall *s)
{
    if (!s->sched_known) {
        t->unknown_ns += s->held_ns;
        return;
    }
    t->cpu_ns += s->cpu_ns;
    t->runq_ns += s->runq_ns;
    t->blocked_ns += s->blocked_ns;
}

/* Judges the phase that ended at *to and starts the next one. */
static void phase_end(struct loopwatch *w, enum loopwatch_phase phase,
                      const struct loopwatch_mark *from, const struct loopwatch_mark *to,
                      int64_t planned_ns, uint64_t idle_ns)
{
    struct loopwatch_stall s;
    bool over = from->wall_ns != 0 &&
                loopwatch_judge(phase, from, to, planned_ns, idle_ns, w->bound_ns, &s);
    if (over) {
        memcpy(s.spans, w->spans, sizeof s.spans);
    }
    memset(w->spans, 0, sizeof w->spans);
    if (!over) {
        return;
    }
    w->n_stalls++;
    w->n_stalls_phase[phase == LOOPWATCH_PHASE_POLL]++;
    w->max_ns = s.held_ns > w->max_ns ? s.held_ns : w->max_ns;
    loopwatch_totals_add(&w->held, &s);
    unsigned suppressed;
    uint64_t longest;
    if (!loopwatch_limit_allows(&w->limit, to->wall_ns, s.held_ns, &suppressed, &longest)) {
        return;
    }
    char line[512];
    loopwatch_format(&s, suppressed, longest, line, sizeof line);
    /* The line itself may block (a log file on a busy disk): it counts in the next phase, named. */
    uint64_t t = loopwatch_span_begin();
    log_warning("%s", line);
    loopwatch_span_end("stall report", t);
}

static void on_prepare(uv_prepare_t *h)
{
    struct loopwatch *w = h->data;
    mark(w, &w->at_prepare);
    phase_end(w, LOOPWATCH_PHASE_TIMERS, &w->at_check, &w->at_prepare, 0, 0);
    int timeout_ms = uv_backend_timeout(w->loop);
    w->planned_ns = timeout_ms < 0 ? -1 : (int64_t)timeout_ms * (int64_t)NS_PER_MS;
    w->idle_at_prepare = uv_metrics_idle_time(w->loop);
}

static void on_check(uv_check_t *h)
{
    struct loopwatch *w = h->data;
    mark(w, &w->at_check);
    uint64_t idle = since(w->idle_at_prepare, uv_metrics_idle_time(w->loop));
    phase_end(w, LOOPWATCH_PHASE_POLL, &w->at_prepare, &w->at_check, w->planned_ns, idle);
    /* Checks run newest first: started again, this one runs first in the next iteration, so the
     * other check callbacks count in the timers phase, where their spans are. */
    uv_check_stop(&w->check);
    uv_check_start(&w->check, on_check);
}

int loopwatch_start(struct loopwatch *w, uv_loop_t *loop)
{
    memset(w, 0, sizeof *w);
    w->loop = loop;
    w->bound_ns = LOOPWATCH_BOUND_MS * NS_PER_MS;
    int rv = uv_loop_configure(loop, UV_METRICS_IDLE_TIME);
    if (rv != 0) {
        return rv;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/task/%d/schedstat", (int)gettid());
    w->sched_fd = open(path, O_RDONLY | O_CLOEXEC);
    uv_prepare_init(loop, &w->prepare);
    uv_check_init(loop, &w->check);
    w->prepare.data = w;
    w->check.data = w;
    uv_prepare_start(&w->prepare, on_prepare);
    uv_check_start(&w->check, on_check);
    uv_unref((uv_handle_t *)&w->prepare);
    uv_unref((uv_handle_t *)&w->check);
    w->started = true;
    g_current = w;
    return 0;
}

static void handle_closed(uv_handle_t *h)
{
    struct loopwatch *w = h->data;
    if (--w->n_closing == 0 && w->close_cb != NULL) {
        w->close_cb(w);
    }
}

void loopwatch_close(struct loopwatch *w, void (*cb)(struct loopwatch *w))
{
    if (!w->started) {
        if (cb != NULL) {
            cb(w);
        }
        return;
    }
    w->started = false;
    if (g_current == w) {
        g_current = NULL;
    }
    if (w->sched_fd >= 0) {
        close(w->sched_fd);
        w->sched_fd = -1;
    }
    w->close_cb = cb;
    w->n_closing = 2;
    uv_close((uv_handle_t *)&w->prepare, handle_closed);
    uv_close((uv_handle_t *)&w->check, handle_closed);
}

uint64_t loopwatch_span_begin(void)
{
    return g_current != NULL ? uv_hrtime() : 0;
}

void loopwatch_span_end(const char *name, uint64_t begun)
{
    if (g_current != NULL && begun != 0) {
        loopwatch_spans_add(g_current->spans, name, since(begun, uv_hrtime()));
    }
}

const struct loopwatch *loopwatch_current(void)
{
    return g_current;
}
