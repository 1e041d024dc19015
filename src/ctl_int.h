/* ctl's private header: what its files share and nothing outside ctl uses. ctl.c parses the
 * options and holds the subcommand table (usage, dispatch); ctl_http.c is the client side
 * (requests to members and the leader, retries across --api, signing, waits); ctl_show.c prints
 * list, topology, version, history and show-config; ctl_config.c is edit-config; ctl_member.c
 * adds and removes members; ctl_action.c asks for switchover, failover, restart, reinit, reload,
 * flush, pause and resume. */
#ifndef RAFTPG_CTL_INT_H
#define RAFTPG_CTL_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "raftpg/conf.h"
#include "raftpg/err.h"
#include "raftpg/fsm.h"

#define CTL_MAX_ENDPOINTS (CONF_MEMBERS_MAX + 2)

struct ctl {
    char endpoints[CTL_MAX_ENDPOINTS][FSM_ADDR_MAX];
    unsigned n_endpoints;
    unsigned timeout_ms;
    uint8_t key[CONF_SECRET_SIZE]; /* signs changes (proof.h) when has_key */
    bool has_key;
    char scope[CONF_NAME_MAX]; /* the cluster's, from its document */
    bool https;                /* an https:// endpoint, or a configuration with TLS */
    char basic[512];           /* "Basic ..." for restapi.authentication, or "" */
};

/* A subcommand: its arguments (those after the command's words) in argc/argv. Returns the
 * process exit code: 0 success, 1 failure, 2 usage error (message on stderr). */
typedef int (*ctl_run_fn)(struct ctl *c, int argc, char **argv);

/* ---- ctl_http.c: the client side ---- */

/* Seconds on the monotonic clock. */
double ctl_now_s(void);
void ctl_sleep_ms(unsigned ms);

/* o's string at key, else dflt. */
const char *ctl_str_or(json_t *o, const char *key, const char *dflt);

/* The member of a cluster document named name (borrowed), or NULL. */
json_t *ctl_find_member(json_t *cluster, const char *name);

/* Keeps the cluster document's scope in c->scope: signatures carry it. */
void ctl_take_scope(struct ctl *c, json_t *cluster);

/* The member's API address (HOST:PORT) from its api_url, into out. */
void ctl_api_of(json_t *m, char *out, size_t size);

/* The leader's API address as the cluster document names it, copied into out; RPG_ENOTFOUND
 * without one. */
int ctl_leader_api(json_t *cluster, char *out, size_t size);

/* GET path from the first endpoint that answers 200 with JSON of type want (new reference), or
 * NULL with errmsg. */
json_t *ctl_get_first(struct ctl *c, const char *path, json_type want, char *errmsg);

/* GET /cluster from the first endpoint that answers. */
json_t *ctl_fetch_cluster(struct ctl *c, char *errmsg);

/* A request to one member's API (api: HOST:PORT), signed as a change; the answer's JSON (or
 * NULL) in *answer. */
int ctl_request(struct ctl *c, const char *method, const char *api, const char *path,
                const char *body, unsigned timeout_ms, int *status, json_t **answer, char *errmsg);

/* Sends a mutation to the leader, following one "not the leader" redirect per attempt. */
int ctl_send_to_leader(struct ctl *c, const char *method, const char *path, const char *body,
                       int *status, json_t **answer, char *errmsg);

/* POSTs body (NULL: out of memory) to path on the Raft leader once (a second request while the
 * first runs would only be refused), waiting at least min_timeout_ms, and prints its message
 * (done_text without one); 200 and 202 are success. Returns ctl's exit code. */
int ctl_post_to_leader(struct ctl *c, const char *verb, const char *path, const char *body,
                       unsigned min_timeout_ms, const char *done_text);

/* GET path from a member of the cluster document: its JSON answer (200 only), or NULL with
 * errmsg. */
json_t *ctl_member_get(struct ctl *c, json_t *m, const char *path, char *errmsg);

/* Polls the cluster document until done() holds for name or the wait (30 x --timeout) ends;
 * what and hint (or NULL) word the message on stderr. Returns 0 or 1. */
int ctl_wait_for(struct ctl *c, const char *name, bool (*done)(json_t *cluster, const char *name),
                 const char *what, const char *hint);

/* What a command does with one member (api: its API address): prints the member's line;
 * returns true when it failed. */
typedef bool (*ctl_member_action)(struct ctl *c, const char *name, const char *api, void *arg);

/* Runs act on the members named (every member without names), in the cluster's order, the
 * primary last when primary_last. Returns the command's exit status; verb names it in errors. */
int ctl_each_member(struct ctl *c, const char *verb, char **names, int n, bool primary_last,
                    ctl_member_action act, void *arg);

int ctl_run_sign(struct ctl *c, int argc, char **argv);

/* ---- ctl_show.c ---- */
int ctl_run_list(struct ctl *c, int argc, char **argv);
int ctl_run_topology(struct ctl *c, int argc, char **argv);
int ctl_run_version(struct ctl *c, int argc, char **argv);
int ctl_run_show_config(struct ctl *c, int argc, char **argv);
int ctl_run_history(struct ctl *c, int argc, char **argv);

/* ---- ctl_config.c ---- */
int ctl_run_edit_config(struct ctl *c, int argc, char **argv);

/* ---- ctl_member.c ---- */
int ctl_run_member_add(struct ctl *c, int argc, char **argv);
int ctl_run_member_remove(struct ctl *c, int argc, char **argv);
/* "member" followed by neither add nor remove (argv: from the word after "member"). */
int ctl_run_member_other(struct ctl *c, int argc, char **argv);

/* ---- ctl_action.c ---- */
int ctl_run_switchover(struct ctl *c, int argc, char **argv);
int ctl_run_flush_switchover(struct ctl *c, int argc, char **argv);
int ctl_run_flush_restart(struct ctl *c, int argc, char **argv);
/* "flush" followed by neither switchover nor restart. */
int ctl_run_flush_other(struct ctl *c, int argc, char **argv);
int ctl_run_failover(struct ctl *c, int argc, char **argv);
int ctl_run_reload(struct ctl *c, int argc, char **argv);
int ctl_run_reinit(struct ctl *c, int argc, char **argv);
int ctl_run_restart(struct ctl *c, int argc, char **argv);
int ctl_run_pause(struct ctl *c, int argc, char **argv);
int ctl_run_resume(struct ctl *c, int argc, char **argv);

#endif
