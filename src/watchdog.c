/* The Linux watchdog: mode semantics over a device backend, the real backend, and the recorder
 * that stands in for a device in tests. */
#include "raftpg/watchdog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/watchdog.h>

/* ---- the real backend ----------------------------------------------------------------------- */

static int device_check(void *impl, const char *device, char *errmsg)
{
    struct stat st;

    (void)impl;
    if (stat(device, &st) != 0) {
        if (errno == ENOENT || errno == ENOTDIR) {
            return rpg_err(errmsg, RPG_ENOTFOUND, "watchdog device %s does not exist", device);
        }
        return rpg_err(errmsg, RPG_EIO, "cannot stat watchdog device %s: %s", device,
                       strerror(errno));
    }
    if (!S_ISCHR(st.st_mode)) {
        return rpg_err(errmsg, RPG_EIO, "watchdog device %s is not a character device", device);
    }
    if (access(device, W_OK) != 0) {
        return rpg_err(errmsg, RPG_EIO, "cannot write watchdog device %s: %s", device,
                       strerror(errno));
    }
    return 0;
}

static int device_open(void *impl, const char *device, char *errmsg)
{
    struct watchdog_device *d = impl;
    struct watchdog_info info;

    d->fd = open(device, O_WRONLY | O_CLOEXEC);
    if (d->fd < 0) {
        int e = errno;
        if (e == ENOENT || e == ENOTDIR) {
            return rpg_err(errmsg, RPG_ENOTFOUND, "watchdog device %s does not exist", device);
        }
        /* One opener at a time: systemd (RuntimeWatchdogSec=) or a watchdog daemon may hold it. */
        return rpg_err(errmsg, RPG_EIO, "cannot open watchdog device %s: %s%s", device, strerror(e),
                       e == EBUSY ? " (another process, such as systemd with "
                                    "RuntimeWatchdogSec= or a watchdog daemon, holds it)"
                                  : "");
    }
    d->identity[0] = '\0';
    d->magic_close = false;
    memset(&info, 0, sizeof info);
    if (ioctl(d->fd, WDIOC_GETSUPPORT, &info) == 0) {
        memcpy(d->identity, info.identity, sizeof info.identity);
        d->identity[sizeof d->identity - 1] = '\0';
        d->magic_close = (info.options & WDIOF_MAGICCLOSE) != 0;
    }
    return 0;
}

static int device_set_timeout(void *impl, int *timeout_s, char *errmsg)
{
    struct watchdog_device *d = impl;
    int t = *timeout_s;

    if (ioctl(d->fd, WDIOC_SETTIMEOUT, &t) != 0) {
        return rpg_err(errmsg, RPG_EIO, "cannot set the watchdog timeout to %d s: %s", *timeout_s,
                       strerror(errno));
    }
    /* SETTIMEOUT writes back what the driver took; GETTIMEOUT confirms it where supported. */
    int got = t;
    if (ioctl(d->fd, WDIOC_GETTIMEOUT, &got) == 0) {
        t = got;
    }
    *timeout_s = t;
    return 0;
}

static int device_keepalive(void *impl, char *errmsg)
{
    struct watchdog_device *d = impl;
    int dummy = 0;

    if (ioctl(d->fd, WDIOC_KEEPALIVE, &dummy) == 0) {
        return 0;
    }
    if (errno != ENOTTY && errno != EINVAL && errno != EOPNOTSUPP) {
        return rpg_err(errmsg, RPG_EIO, "cannot feed the watchdog: %s", strerror(errno));
    }
    /* Any write restarts the timer; it must not contain 'V', which would arm the magic close. */
    if (write(d->fd, "1", 1) != 1) {
        return rpg_err(errmsg, RPG_EIO, "cannot feed the watchdog: %s", strerror(errno));
    }
    return 0;
}

static int device_disarm(void *impl, char *errmsg)
{
    struct watchdog_device *d = impl;
    int rv = 0;

    if (write(d->fd, "V", 1) != 1) {
        rv = rpg_err(errmsg, RPG_EIO, "cannot disarm the watchdog: magic close failed: %s",
                     strerror(errno));
    }
    if (close(d->fd) != 0 && rv == 0) {
        rv = rpg_err(errmsg, RPG_EIO, "cannot disarm the watchdog: close failed: %s",
                     strerror(errno));
    }
    d->fd = -1;
    return rv;
}

const struct watchdog_ops watchdog_device_ops = {
    .check = device_check,
    .open = device_open,
    .set_timeout = device_set_timeout,
    .keepalive = device_keepalive,
    .disarm = device_disarm,
};

/* ---- mode semantics ------------------------------------------------------------------------- */

void watchdog_init(struct watchdog *w, const struct conf_watchdog *conf)
{
    memset(w, 0, sizeof *w);
    w->mode = conf->mode;
    snprintf(w->device, sizeof w->device, "%s", conf->device);
    w->dev.fd = -1;
    w->ops = &watchdog_device_ops;
    w->impl = &w->dev;
}

void watchdog_set_ops(struct watchdog *w, const struct watchdog_ops *ops, void *impl)
{
    w->ops = ops;
    w->impl = impl;
}

int watchdog_check(const struct watchdog *w, char *errmsg)
{
    if (w->armed) {
        return 0;
    }
    if (w->mode == CONF_WATCHDOG_OFF) {
        return rpg_err(errmsg, RPG_EINVAL, "watchdog mode is off");
    }
    return w->ops->check(w->impl, w->device, errmsg);
}

/* The device could not be armed: in automatic mode a warning and success, in required mode the
 * error. */
static int arm_failed(struct watchdog *w, int rc, const char *why, char *errmsg)
{
    if (w->mode == CONF_WATCHDOG_REQUIRED) {
        return rpg_err(errmsg, rc, "watchdog required but unusable: %s", why);
    }
    rpg_fmt(errmsg, RPG_ERRMSG_SIZE, "running without the watchdog (mode=automatic): %s", why);
    return 0;
}

int watchdog_arm(struct watchdog *w, unsigned timeout_s, char *errmsg)
{
    char why[RPG_ERRMSG_SIZE];
    int rc;

    errmsg[0] = '\0';
    if (w->mode == CONF_WATCHDOG_OFF) {
        return 0;
    }
    if (timeout_s == 0 || timeout_s > INT_MAX) {
        return rpg_err(errmsg, RPG_EINVAL, "watchdog timeout must be 1..%d s, got %u", INT_MAX,
                       timeout_s);
    }
    if (!w->armed) {
        rc = w->ops->open(w->impl, w->device, why);
        if (rc != 0) {
            return arm_failed(w, rc, why, errmsg);
        }
        w->armed = true;
    }
    int took = (int)timeout_s;
    rc = w->ops->set_timeout(w->impl, &took, why);
    if (rc != 0) {
        /* The timer runs with the driver's default, which bears no relation to the lease. */
        char ignored[RPG_ERRMSG_SIZE];
        w->ops->disarm(w->impl, ignored);
        w->armed = false;
        w->timeout_s = 0;
        return arm_failed(w, rc, why, errmsg);
    }
    w->timeout_s = (unsigned)took;
    if (took > (int)timeout_s) {
        rpg_fmt(why, sizeof why, "device %s took a timeout of %d s, longer than the %u s asked",
                w->device, took, timeout_s);
        if (w->mode == CONF_WATCHDOG_REQUIRED) {
            char ignored[RPG_ERRMSG_SIZE];
            w->ops->disarm(w->impl, ignored);
            w->armed = false;
            w->timeout_s = 0;
            return rpg_err(errmsg, RPG_EINVAL, "watchdog required but unusable: %s", why);
        }
        rpg_fmt(errmsg, RPG_ERRMSG_SIZE, "watchdog fires late (mode=automatic): %s", why);
    }
    return 0;
}

int watchdog_keepalive(struct watchdog *w, char *errmsg)
{
    if (!w->armed) {
        return 0;
    }
    return w->ops->keepalive(w->impl, errmsg);
}

int watchdog_disarm(struct watchdog *w, char *errmsg)
{
    if (!w->armed) {
        return 0;
    }
    w->armed = false;
    w->timeout_s = 0;
    return w->ops->disarm(w->impl, errmsg);
}

bool watchdog_is_armed(const struct watchdog *w)
{
    return w->armed;
}

unsigned watchdog_timeout_s(const struct watchdog *w)
{
    return w->armed ? w->timeout_s : 0;
}

int watchdog_timeout_for_lease(rpg_msec lease_ms, unsigned safety_margin_ms, unsigned *timeout_s,
                               char *errmsg)
{
    if (lease_ms < (rpg_msec)safety_margin_ms + 1000) {
        return rpg_err(errmsg, RPG_EINVAL,
                       "lease too short for the watchdog: lease=%llu ms less safety_margin=%u ms "
                       "leaves under the device's 1 s resolution",
                       (unsigned long long)lease_ms, safety_margin_ms);
    }
    rpg_msec s = (lease_ms - safety_margin_ms) / 1000;
    *timeout_s = s > INT_MAX ? INT_MAX : (unsigned)s;
    return 0;
}

unsigned watchdog_lease_timeout_s(const struct conf_watchdog *conf, rpg_msec lease_ms)
{
    unsigned timeout_s = 0;
    char errmsg[RPG_ERRMSG_SIZE];
    if (watchdog_timeout_for_lease(lease_ms, conf->safety_margin_ms, &timeout_s, errmsg) != 0) {
        timeout_s = 1;
    }
    return timeout_s;
}

rpg_msec watchdog_promote_wait_ms(const struct conf_watchdog *conf, rpg_msec lease_ms)
{
    if (conf->mode == CONF_WATCHDOG_OFF) {
        return 0;
    }
    return (rpg_msec)watchdog_lease_timeout_s(conf, lease_ms) * 1000u;
}

/* ---- the recorder --------------------------------------------------------------------------- */

const char *watchdog_event_kind_name(enum watchdog_event_kind kind)
{
    switch (kind) {
    case WATCHDOG_EVENT_OPEN: return "open";
    case WATCHDOG_EVENT_SET_TIMEOUT: return "set_timeout";
    case WATCHDOG_EVENT_FEED: return "feed";
    case WATCHDOG_EVENT_DISARM: return "disarm";
    }
    return "unknown";
}

bool watchdog_recorder_starved(struct watchdog_recorder *r)
{
    if (r->open && !r->starved) {
        rpg_msec limit = (rpg_msec)r->timeout_s * 1000;
        if (r->now_ms - r->last_restart_ms > limit) {
            r->starved = true;
            r->starved_at_ms = r->last_restart_ms + limit;
        }
    }
    return r->starved;
}

/* Accounts for the time since the last restart, then notes the event. */
static void recorder_event(struct watchdog_recorder *r, enum watchdog_event_kind kind, int t)
{
    if (r->open) {
        rpg_msec gap = r->now_ms - r->last_restart_ms;
        if (gap > r->longest_gap_ms) {
            r->longest_gap_ms = gap;
        }
        watchdog_recorder_starved(r);
    }
    if (r->n_events < WATCHDOG_RECORDER_EVENTS) {
        r->events[r->n_events] = (struct watchdog_event){kind, r->now_ms, t};
    }
    r->n_events++;
}

static int recorder_check(void *impl, const char *device, char *errmsg)
{
    struct watchdog_recorder *r = impl;

    if (!r->present) {
        return rpg_err(errmsg, RPG_ENOTFOUND, "watchdog device %s does not exist", device);
    }
    return 0;
}

static int recorder_open(void *impl, const char *device, char *errmsg)
{
    struct watchdog_recorder *r = impl;

    if (!r->present) {
        return rpg_err(errmsg, RPG_ENOTFOUND, "watchdog device %s does not exist", device);
    }
    if (r->refuse_open || r->open) {
        return rpg_err(errmsg, RPG_EIO, "cannot open watchdog device %s: %s", device,
                       strerror(EBUSY));
    }
    recorder_event(r, WATCHDOG_EVENT_OPEN, 0);
    r->open = true;
    r->timeout_s = r->default_timeout_s != 0 ? r->default_timeout_s : 60;
    r->last_restart_ms = r->now_ms;
    return 0;
}

static int recorder_set_timeout(void *impl, int *timeout_s, char *errmsg)
{
    struct watchdog_recorder *r = impl;
    int t = *timeout_s;

    if (r->refuse_timeout) {
        return rpg_err(errmsg, RPG_EIO, "cannot set the watchdog timeout to %d s: %s", t,
                       strerror(EINVAL));
    }
    if (r->min_timeout_s != 0 && t < r->min_timeout_s) {
        t = r->min_timeout_s;
    }
    if (r->max_timeout_s != 0 && t > r->max_timeout_s) {
        t = r->max_timeout_s;
    }
    recorder_event(r, WATCHDOG_EVENT_SET_TIMEOUT, t);
    r->timeout_s = t;
    r->last_restart_ms = r->now_ms;
    *timeout_s = t;
    return 0;
}

static int recorder_keepalive(void *impl, char *errmsg)
{
    struct watchdog_recorder *r = impl;

    if (r->refuse_feed) {
        return rpg_err(errmsg, RPG_EIO, "cannot feed the watchdog: %s", strerror(EIO));
    }
    recorder_event(r, WATCHDOG_EVENT_FEED, 0);
    r->last_restart_ms = r->now_ms;
    return 0;
}

static int recorder_disarm(void *impl, char *errmsg)
{
    struct watchdog_recorder *r = impl;

    (void)errmsg;
    recorder_event(r, WATCHDOG_EVENT_DISARM, 0);
    r->open = false;
    return 0;
}

const struct watchdog_ops watchdog_recorder_ops = {
    .check = recorder_check,
    .open = recorder_open,
    .set_timeout = recorder_set_timeout,
    .keepalive = recorder_keepalive,
    .disarm = recorder_disarm,
};

const char *watchdog_step_name(enum watchdog_step step)
{
    switch (step) {
    case WATCHDOG_STEP_NONE: return "none";
    case WATCHDOG_STEP_ARM: return "arm";
    case WATCHDOG_STEP_FEED: return "feed";
    case WATCHDOG_STEP_DISARM: return "disarm";
    }
    return "invalid";
}

enum watchdog_step watchdog_plan(bool primary, bool armed, bool unfenced)
{
    if (primary) {
        return armed ? WATCHDOG_STEP_FEED : WATCHDOG_STEP_ARM;
    }
    return armed && !unfenced ? WATCHDOG_STEP_DISARM : WATCHDOG_STEP_NONE;
}
