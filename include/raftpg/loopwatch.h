/* The loop-stall detector: says which part of a libuv loop iteration held the loop thread longer
 * than a bound, and where that time went: running code, waiting for a CPU, or off the CPU without
 * waiting for one (blocked in the kernel, or the process stopped).
 *
 * An iteration is cut in two at a uv_prepare handle (just before the poll) and a uv_check handle
 * (just after it):
 *   - LOOPWATCH_PHASE_TIMERS, from check to the next prepare: the other check callbacks, close
 *     callbacks, timers, pending callbacks. None of it is planned waiting.
 *   - LOOPWATCH_PHASE_POLL, from prepare to check: the poll and every I/O callback. The poll may
 *     wait for as long as libuv planned (uv_backend_timeout) and as long as it was idle
 *     (uv_metrics_idle_time); only the rest counts.
 * At each cut the thread's own counters are read (/proc/self/task/TID/schedstat: time on a CPU,
 * time runnable but waiting for one). What is neither, and not the planned wait, was spent off the
 * CPU: a blocking system call (fsync, a page fault that reads the disk), or SIGSTOP.
 *
 * Callbacks may name themselves (loopwatch_span_begin/end); the report names the longest ones of
 * the phase. The judging, span keeping, rate limit and message are pure and unit-tested; one
 * loop per process is watched (the agent's). */
#ifndef RAFTPG_LOOPWATCH_H
#define RAFTPG_LOOPWATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#define LOOPWATCH_BOUND_MS 50          /* a phase holding the loop longer is reported */
#define LOOPWATCH_LOG_INTERVAL_MS 1000 /* at most one report a second; the rest are counted */
#define LOOPWATCH_SPANS 3              /* named callbacks kept per phase, the longest first */

enum loopwatch_phase {
    LOOPWATCH_PHASE_TIMERS = 0, /* check -> prepare: timers, check and close callbacks */
    LOOPWATCH_PHASE_POLL,       /* prepare -> check: the poll and the I/O callbacks */
};

const char *loopwatch_phase_name(enum loopwatch_phase phase);

/* The loop thread's clocks at one cut. */
struct loopwatch_mark {
    uint64_t wall_ns; /* CLOCK_MONOTONIC (uv_hrtime) */
    bool sched_known; /* schedstat could be read: the two below are meaningful */
    uint64_t cpu_ns;  /* time on a CPU so far */
    uint64_t runq_ns; /* time runnable, waiting for a CPU, so far */
};

/* One named callback's time within a phase. */
struct loopwatch_span {
    const char *name; /* static string */
    uint64_t ns;
};

/* What a phase cost beyond its planned wait. */
struct loopwatch_stall {
    enum loopwatch_phase phase;
    uint64_t held_ns; /* wall time minus the planned wait */
    uint64_t late_ns; /* POLL: how much longer than planned the poll was idle (a late wake-up) */
    bool sched_known;
    uint64_t cpu_ns;     /* of held_ns: running */
    uint64_t runq_ns;    /* of held_ns: runnable, waiting for a CPU */
    uint64_t blocked_ns; /* of held_ns: the rest (a blocking system call, a stopped process) */
    struct loopwatch_span
        spans[LOOPWATCH_SPANS]; /* the longest named callbacks, name NULL unused */
};

/* Judges one phase between two marks. planned_ns is the wait libuv planned for the poll (-1:
 * none, it may wait for ever; TIMERS: 0) and idle_ns the time the poll was idle. Fills *out and
 * returns whether held_ns exceeds bound_ns. A clock read backwards counts as 0. */
bool loopwatch_judge(enum loopwatch_phase phase, const struct loopwatch_mark *from,
                     const struct loopwatch_mark *to, int64_t planned_ns, uint64_t idle_ns,
                     uint64_t bound_ns, struct loopwatch_stall *out);

/* Adds a named callback's time to spans (LOOPWATCH_SPANS entries, the longest first); the same
 * name adds up within a phase. */
void loopwatch_spans_add(struct loopwatch_span *spans, const char *name, uint64_t ns);

/* Parses the first two fields of a schedstat file ("cpu_ns runq_ns slices"); false when text is
 * not that. */
bool loopwatch_parse_schedstat(const char *text, uint64_t *cpu_ns, uint64_t *runq_ns);

/* The rate limit: whether a stall seen at now_ns is reported. When it is, *suppressed and
 * *longest_suppressed_ns say what was left out since the last report; when not, it is counted. */
struct loopwatch_limit {
    uint64_t last_ns; /* 0: never reported */
    unsigned suppressed;
    uint64_t longest_ns;
};
bool loopwatch_limit_allows(struct loopwatch_limit *l, uint64_t now_ns, uint64_t held_ns,
                            unsigned *suppressed, uint64_t *longest_suppressed_ns);

/* The report line, without the log prefix, into buf (always terminated). */
void loopwatch_format(const struct loopwatch_stall *s, unsigned suppressed,
                      uint64_t longest_suppressed_ns, char *buf, size_t size);

/* ---- the watcher on a real loop ---------------------------------------------------------- */

struct loopwatch {
    uv_loop_t *loop; /* borrowed */
    uv_prepare_t prepare;
    uv_check_t check;
    int sched_fd; /* the loop thread's schedstat, -1 when it cannot be read */
    bool started;
    unsigned n_closing;
    void (*close_cb)(struct loopwatch *w);
    struct loopwatch_mark at_check;   /* the last cut after the poll */
    struct loopwatch_mark at_prepare; /* the last cut before the poll */
    int64_t planned_ns;
    uint64_t idle_at_prepare;
    struct loopwatch_span spans[LOOPWATCH_SPANS]; /* of the phase under way */
    struct loopwatch_limit limit;
    uint64_t n_stalls;          /* phases over the bound since start */
    uint64_t max_ns;            /* the longest one */
    uint64_t n_stalls_phase[2]; /* by enum loopwatch_phase */
    /* The stalls' held time added up by where it went (for /metrics). */
    struct loopwatch_totals {
        uint64_t cpu_ns;
        uint64_t runq_ns;
        uint64_t blocked_ns;
        uint64_t unknown_ns; /* schedstat could not be read */
    } held;
    uint64_t bound_ns;
};

/* Starts watching loop from the calling thread, which must be the one that runs it. Call before
 * the first uv_run (it turns on UV_METRICS_IDLE_TIME). Its handles are unreferenced: they never
 * keep the loop alive. Returns 0 or a negative libuv error. */
int loopwatch_start(struct loopwatch *w, uv_loop_t *loop);

/* Closes the handles; cb (may be NULL) runs once both are closed. */
void loopwatch_close(struct loopwatch *w, void (*cb)(struct loopwatch *w));

/* A named span: begin returns a start time for end, which adds the time since to the phase's
 * spans under name (a static string). Both are no-ops costing one clock read while no watcher
 * runs in the process. */
uint64_t loopwatch_span_begin(void);
void loopwatch_span_end(const char *name, uint64_t begun);

/* Runs stmt as a span named name: one line at a callback's call site. */
#define LOOPWATCH_SPAN(name, stmt)                                                                 \
    do {                                                                                           \
        uint64_t loopwatch_begun_ = loopwatch_span_begin();                                        \
        stmt;                                                                                      \
        loopwatch_span_end(name, loopwatch_begun_);                                                \
    } while (0)

/* Adds a stall's held time to totals, split as it was judged. */
void loopwatch_totals_add(struct loopwatch_totals *t, const struct loopwatch_stall *s);

/* The watcher of this process, or NULL: for counters on the API. */
const struct loopwatch *loopwatch_current(void);

#endif
