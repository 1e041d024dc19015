/* raftpg_vip_probe: runs one vip operation with the vip section of a raftpg configuration file,
 * for the chaos tests, which run it inside a testbed namespace (ip netns exec). It prints the
 * operation's message and whether the address is held, and exits 0 on success, 3 when the claim
 * was refused because the address is taken (RPG_EEXIST), 1 on any other failure and 2 on a usage
 * or configuration error. */
#include <stdio.h>
#include <string.h>

#include <uv.h>

#include "raftpg/conf.h"
#include "raftpg/vip.h"

struct result {
    bool done;
    int rc;
    bool held;
    char msg[RPG_ERRMSG_SIZE];
};

static void on_done(struct vip *v, int rc, const char *msg, void *data)
{
    struct result *r = data;
    r->done = true;
    r->rc = rc;
    r->held = vip_is_held(v);
    snprintf(r->msg, sizeof r->msg, "%s", msg);
}

static int usage(void)
{
    fprintf(stderr, "usage: raftpg_vip_probe CONFIG claim|release|check|renew\n");
    return 2;
}

int main(int argc, char **argv)
{
    static struct conf c; /* several PATH_MAX buffers: keep them off the stack */
    char errmsg[RPG_ERRMSG_SIZE];
    struct result r = {0};
    struct vip v;
    uv_loop_t loop;
    int rc;

    if (argc != 3) {
        return usage();
    }
    if (conf_load(argv[1], &c, errmsg) != 0) {
        fprintf(stderr, "raftpg_vip_probe: %s\n", errmsg);
        return 2;
    }
    if (!c.has_vip) {
        fprintf(stderr, "raftpg_vip_probe: %s has no vip section\n", argv[1]);
        conf_free(&c);
        return 2;
    }
    if (uv_loop_init(&loop) != 0 || vip_init(&v, &loop, &c.vip, errmsg) != 0) {
        fprintf(stderr, "raftpg_vip_probe: cannot start: %s\n", errmsg);
        conf_free(&c);
        return 1;
    }
    if (strcmp(argv[2], "claim") == 0) {
        rc = vip_claim(&v, on_done, &r, errmsg);
    } else if (strcmp(argv[2], "release") == 0) {
        rc = vip_release(&v, on_done, &r, errmsg);
    } else if (strcmp(argv[2], "check") == 0) {
        rc = vip_check(&v, on_done, &r, errmsg);
    } else if (strcmp(argv[2], "renew") == 0) {
        rc = vip_renew(&v, on_done, &r, errmsg);
    } else {
        rc = usage();
    }
    if (rc == 0) {
        while (!r.done) {
            uv_run(&loop, UV_RUN_ONCE);
        }
    }
    vip_close(&v, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    conf_free(&c);
    if (rc == 2) {
        return 2;
    }
    if (rc != 0) {
        fprintf(stderr, "raftpg_vip_probe: %s\n", errmsg);
        return 1;
    }
    printf("%s: rc=%s held=%s: %s\n", argv[2], r.rc == 0 ? "ok" : rpg_strerror(r.rc),
           r.held ? "yes" : "no", r.msg);
    if (r.rc == RPG_EEXIST) {
        return 3;
    }
    return r.rc == 0 ? 0 : 1;
}
