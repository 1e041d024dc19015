/* The Linux watchdog, the third fence (DESIGN.md rule 5): armed while this node may run
 * PostgreSQL as primary and fed each time the agent renews its lease, so that a hung agent gets
 * the node reset before the lease it holds could be outlived. The device is reached through a
 * small backend (struct watchdog_ops): the real one opens the device and uses the ioctls of
 * <linux/watchdog.h>; the recorder below stands in for it in tests and never touches a device.
 * Every call is a short system call, fine on the loop.
 *
 * Opening a watchdog device starts its timer, and closing it without the magic character 'V'
 * leaves the timer running: an agent that dies while armed gets the node reset, which is the
 * point. watchdog_disarm is the only clean way out. A driver built with nowayout ignores the
 * magic close; then disarming still resets the node once the timeout passes. */
#ifndef RAFTPG_WATCHDOG_H
#define RAFTPG_WATCHDOG_H

#include <limits.h>
#include <stdbool.h>

#include "raftpg/conf.h"
#include "raftpg/err.h"

/* A device backend. impl is the backend's own state. Every function returns 0 or a negative
 * RPG_E* code with errmsg filled. */
struct watchdog_ops {
    /* Whether device could be armed, without opening it (opening arms it): RPG_ENOTFOUND when
     * it does not exist, RPG_EIO when it is not a character device or not writable. */
    int (*check)(void *impl, const char *device, char *errmsg);
    /* Opens device, which starts its timer with the driver's default timeout. */
    int (*open)(void *impl, const char *device, char *errmsg);
    /* Asks for *timeout_s seconds and sets *timeout_s to what the device took: drivers round
     * and clamp. */
    int (*set_timeout)(void *impl, int *timeout_s, char *errmsg);
    /* Restarts the timer. */
    int (*keepalive)(void *impl, char *errmsg);
    /* Magic close: writes 'V', then closes, which stops the timer. */
    int (*disarm)(void *impl, char *errmsg);
};

/* The real backend's state. */
struct watchdog_device {
    int fd;            /* -1 when closed */
    char identity[33]; /* the driver's name (WDIOC_GETSUPPORT), "" if it gave none */
    bool magic_close;  /* the driver advertises WDIOF_MAGICCLOSE */
};

/* The real backend: open(2), ioctl(2) WDIOC_GETSUPPORT, WDIOC_SETTIMEOUT, WDIOC_GETTIMEOUT and
 * WDIOC_KEEPALIVE (a write when the driver lacks that ioctl), write(2) of 'V'. impl is a
 * struct watchdog_device. */
extern const struct watchdog_ops watchdog_device_ops;

struct watchdog {
    enum conf_watchdog_mode mode;
    char device[PATH_MAX];
    const struct watchdog_ops *ops; /* borrowed */
    void *impl;                     /* borrowed, or &dev */
    struct watchdog_device dev;
    bool armed;
    unsigned timeout_s; /* what the device took, while armed */
};

/* Prepares w from conf with the real backend. Opens nothing. */
void watchdog_init(struct watchdog *w, const struct conf_watchdog *conf);

/* Replaces the backend (ops and impl borrowed), before the first watchdog_arm. */
void watchdog_set_ops(struct watchdog *w, const struct watchdog_ops *ops, void *impl);

/* Whether the watchdog can fence this node, as required mode needs before the node may become
 * primary: 0 when it is armed, or when mode is not off and the device exists, is a character
 * device and is writable (checked without opening it). Else RPG_EINVAL (mode off),
 * RPG_ENOTFOUND or RPG_EIO, with why in errmsg. */
int watchdog_check(const struct watchdog *w, char *errmsg);

/* Arms the watchdog with timeout_s seconds (1..INT_MAX), or changes the timeout of an armed one
 * and feeds it. By mode:
 *   off        returns 0 and never opens the device;
 *   automatic  returns 0; when the device cannot be opened or set, runs unarmed and writes a
 *              warning into errmsg, which is "" otherwise;
 *   required   fails, with the watchdog left disarmed: RPG_ENOTFOUND (no device), RPG_EIO (the
 *              device refused), RPG_EINVAL (it took a longer timeout than asked, so it would fire
 *              after the lease could be outlived).
 * In automatic mode a longer timeout than asked is kept with a warning: a late reset still ends
 * a hung primary. The device may also take a shorter one: feed it within watchdog_timeout_s().
 * errmsg is "" when there is nothing to say. */
int watchdog_arm(struct watchdog *w, unsigned timeout_s, char *errmsg);

/* Feeds an armed watchdog; a no-op when it is not armed. Returns 0 or RPG_EIO. */
int watchdog_keepalive(struct watchdog *w, char *errmsg);

/* Disarms with the magic close; a no-op when not armed. Returns 0 or RPG_EIO (the device is
 * closed either way, and may still reset the node if the driver ignored the magic close). */
int watchdog_disarm(struct watchdog *w, char *errmsg);

bool watchdog_is_armed(const struct watchdog *w);

/* The timeout the device took, in seconds; 0 when not armed. */
unsigned watchdog_timeout_s(const struct watchdog *w);

/* The watchdog timeout for a lease: whole seconds (the device's unit) of lease_ms less
 * safety_margin_ms, rounded down, so that a node whose agent hangs right after renewing its lease
 * resets at least safety_margin_ms before the lease runs out. Returns 0, or RPG_EINVAL when that
 * leaves less than one second. */
int watchdog_timeout_for_lease(rpg_msec lease_ms, unsigned safety_margin_ms, unsigned *timeout_s,
                               char *errmsg);

/* The timeout a primary arms its device with for a lease of lease_ms: watchdog_timeout_for_lease,
 * or 1 s (the shortest a device offers) when the lease is shorter than that. */
unsigned watchdog_lease_timeout_s(const struct conf_watchdog *conf, rpg_msec lease_ms);

/* How much longer a new leader waits before it promotes, so that an old primary whose agent died
 * or hung has been reset by its watchdog: the device's timeout, or 0 when mode is off. */
rpg_msec watchdog_promote_wait_ms(const struct conf_watchdog *conf, rpg_msec lease_ms);

/* What the fence tick does with the device (DESIGN.md rule 5). */
enum watchdog_step {
    WATCHDOG_STEP_NONE = 0,
    WATCHDOG_STEP_ARM,    /* PostgreSQL may accept writes under a lease: open and arm */
    WATCHDOG_STEP_FEED,   /* ... and this process armed it already: feed it */
    WATCHDOG_STEP_DISARM, /* nothing is unfenced any more: magic close */
};

/* "none", "arm", "feed", "disarm". */
const char *watchdog_step_name(enum watchdog_step step);

/* One tick: primary is the fence's feed_watchdog (may accept writes, lease held), armed whether
 * this agent process armed the device, unfenced whether anything may still need fencing. The
 * device stays armed and unfed while a fence is unfinished, and only the process that armed it
 * disarms it: another process (a restarted agent) never disarms a predecessor's device. */
enum watchdog_step watchdog_plan(bool primary, bool armed, bool unfenced);

/* ---- the recorder: a stand-in device for tests ------------------------------------------- */

enum watchdog_event_kind {
    WATCHDOG_EVENT_OPEN = 0,
    WATCHDOG_EVENT_SET_TIMEOUT,
    WATCHDOG_EVENT_FEED,
    WATCHDOG_EVENT_DISARM,
};

/* "open", "set_timeout", "feed", "disarm"; "unknown" for other values. */
const char *watchdog_event_kind_name(enum watchdog_event_kind kind);

struct watchdog_event {
    enum watchdog_event_kind kind;
    rpg_msec at;
    int timeout_s; /* SET_TIMEOUT: what the device took */
};

#define WATCHDOG_RECORDER_EVENTS 64

/* Zero it, then set what the device is like. The clock is now_ms, which the test advances.
 * While the device is open its timer runs: a gap between two restarts (opening, setting the
 * timeout and feeding restart it) longer than the timeout means a real device would have reset
 * the machine; the recorder calls that starvation. */
struct watchdog_recorder {
    /* The device, as the test sets it. */
    bool present;          /* it exists (check and open fail with RPG_ENOTFOUND otherwise) */
    bool refuse_open;      /* open fails with RPG_EIO, as when another process holds it */
    bool refuse_timeout;   /* set_timeout fails with RPG_EIO */
    bool refuse_feed;      /* keepalive fails with RPG_EIO */
    int min_timeout_s;     /* the device rounds smaller timeouts up to this; 0: none */
    int max_timeout_s;     /* and larger ones down to this; 0: none */
    int default_timeout_s; /* the timer after open, before set_timeout; 0 means 60 */
    rpg_msec now_ms;

    /* What happened. */
    bool open;
    int timeout_s;
    rpg_msec last_restart_ms;
    rpg_msec longest_gap_ms; /* between restarts while open, closed gaps not counted */
    bool starved;            /* some gap exceeded the timeout */
    rpg_msec starved_at_ms;  /* when the device would have reset the machine, first time */
    unsigned n_events;       /* may exceed WATCHDOG_RECORDER_EVENTS; the rest are not kept */
    struct watchdog_event events[WATCHDOG_RECORDER_EVENTS];
};

/* The recorder backend; impl is a struct watchdog_recorder. */
extern const struct watchdog_ops watchdog_recorder_ops;

/* Whether the device has starved by r->now_ms: an earlier gap did, or it is open and the time
 * since its last restart exceeds its timeout. */
bool watchdog_recorder_starved(struct watchdog_recorder *r);

#endif
