/* Consensus logic on a libraft server: leadership observation with the own-term barrier, the
 * leader lease, command submission, leadership transfer, cluster-state initialisation and
 * membership reconciliation. It owns no I/O: the agent runs it on its raft_uv instance
 * (cons_uv.h) and the simulation on raft_fixture servers (tests/sim), each calling the tick
 * functions below from its own loop and supplying the node's clock. Every libraft call and read
 * of a struct raft field lives in raft/ (RAFT-NOTES.md), so a libraft upgrade touches raft/ only.
 */
#ifndef RAFTPG_CONS_H
#define RAFTPG_CONS_H

#include <stdbool.h>
#include <stdint.h>

#include <raft.h>

#include "raftpg/err.h"
#include "raftpg/fence.h"
#include "raftpg/fsm.h"
#include "raftpg/storage.h"

enum cons_role {
    CONS_ROLE_UNAVAILABLE = 0,
    CONS_ROLE_FOLLOWER,
    CONS_ROLE_CANDIDATE,
    CONS_ROLE_LEADER
};

/* "unavailable", "follower", "candidate", "leader". */
const char *cons_role_name(enum cons_role role);

/* Raft voting role of a server in the configuration: "voter", "standby", "spare", or "none". */
const char *cons_voting_name(int voting);
#define CONS_VOTING_NONE (-1)

/* Upper bounds (ms) of the lease renewal histogram (cons lease_stats). */
#define CONS_LEASE_BUCKETS 12
extern const unsigned cons_lease_bucket_ms[CONS_LEASE_BUCKETS];
/* The recent maximum covers the last one to two such windows. */
#define CONS_LEASE_MAX_WINDOW_MS 60000u
/* Lease echo probes a leader keeps track of: answers to older ones are ignored. */
#define CONS_ECHO_PROBES 8
/* A candidate is reported every this many election timeouts while it stays one. */
#define CONS_CANDIDATE_WARN_ETS 10u

struct cons;
struct cons_req;
/* An append the write fence passed down (or holds), with libraft's callback. */
struct cons_wal_append {
    struct raft_io_append *req;
    raft_io_append_cb cb;
    rpg_msec at; /* passed down (pending ones): the oldest shows how long the disk has held one */
};
struct cons_wal_sum;
struct cons_uv;
/* Completion of a submitted command: rc is 0 when committed and applied, the fsm's rejection
 * code, or RPG_ENOTLEADER/RPG_ERAFT when it could not be committed; msg explains non-zero rc. */
typedef void (*cons_submit_cb)(void *data, int rc, const char *msg);
/* Fires after the Raft role, term or leader changed, or the leader became ready. */
typedef void (*cons_change_cb)(struct cons *c, void *data);

/* What the logic needs to know of the cluster it belongs to (copied at attach). */
struct cons_params {
    char scope[FSM_NAME_MAX];
    unsigned election_timeout_ms;
    /* The members bootstrapped as the initial Raft configuration, with their Raft ids. The
     * first ready leader records them, if this node is one of them (initial_self). */
    unsigned n_initial;
    struct fsm_member initial[FSM_MEMBERS_MAX];
    bool initial_self;
    /* This node's defaults of the cluster-wide settings (recorded once, by the first leader). */
    uint8_t sync_mode;
    unsigned sync_node_count;
    uint8_t sync_commit;
    bool max_lag_set; /* maximum_lag_on_failover (false: no limit) */
    uint64_t max_lag;
    /* bootstrap.dcs.postgresql: parameters (checked, sorted by name) and pg_hba lines. */
    unsigned n_params;
    struct fsm_param params[FSM_PARAMS_MAX];
    unsigned n_hba;
    char hba[FSM_HBA_MAX][FSM_HBA_LINE_MAX];
};

/* The node's side: its monotonic clock, and libraft's io time converted to it (the same clock
 * on raft_uv; the simulation's nodes each run their own clock over the fixture's). */
struct cons_host {
    rpg_msec (*now)(struct cons *c);
    rpg_msec (*raft_time)(struct cons *c, raft_time t);
    /* A voter to hand leadership to when this leader cannot persist: one whose storage and
     * state are healthy, 0 to let libraft pick. May be NULL. */
    uint64_t (*pick_voter)(struct cons *c, void *data);
    cons_change_cb on_change;
    void *data; /* passed to on_change; the hooks may read it through c->host */
};

struct cons {
    struct raft *raft; /* borrowed: the agent's raft_uv server or a raft_fixture server */
    raft_id id;
    bool attached; /* between cons_attach and cons_detach */
    bool running;  /* raft_start succeeded (cons_set_running) */
    uint64_t gen;  /* bumped at attach and detach: older requests complete silently */
    struct fsm fsm;
    struct fsm_state state; /* the replicated cluster state, read-only outside fsm */
    struct cons_params params;
    struct cons_host host;
    struct cons_req *reqs; /* requests libraft still holds */

    /* Observed after every step of the host's loop (0.15 has no state callback). */
    enum cons_role role;
    raft_term term;
    raft_id leader_id;

    /* A leader acts only once a barrier of its own term has committed (RAFT-NOTES). */
    bool leader_ready;
    bool barrier_pending;
    raft_term barrier_term;
    rpg_msec barrier_submitted; /* of the own-term barrier, which also grants a lease */

    /* Membership: the leader drives the Raft configuration towards the member list of the
     * replicated state, one change at a time. */
    bool init_pending;
    bool config_pending;
    bool seen_pending;
    bool change_pending;
    unsigned promote_next; /* the member index the next promotion of a spare starts from */
    char change_what[RPG_ERRMSG_SIZE];
    bool transfer_pending;
    /* Transfers that ended with this member still leader (libraft gives up after ET when the
     * target never started its election): the core may ask again at once (core_view). */
    unsigned n_transfers_failed;

    /* Leader lease (RAFT-NOTES): a barrier submitted at t that commits proves a majority reset
     * its election timer at or after t, so no other leader can exist before t + ET. The lease
     * ends at t + 0.8 ET (drift margin). Renewed every ET/4 while leader (cons_lease_renew). */
    bool lease_pending;
    raft_term lease_term;
    rpg_msec lease_submitted;
    rpg_msec lease_until; /* node clock; 0: no lease */
    /* Submit-to-commit time of the lease barriers that committed (the own-term barrier is not
     * one), on the node clock (millisecond resolution), for /metrics: counts per upper bound of
     * cons_lease_bucket_ms (cumulative only when read), and the largest of the last one or two
     * windows of CONS_LEASE_MAX_WINDOW_MS. Kept over attaches: a process's figures. */
    struct {
        uint64_t bucket[CONS_LEASE_BUCKETS + 1]; /* the last: above every bound */
        uint64_t count;
        uint64_t sum_ms;
        rpg_msec max_ms, prev_max_ms, window_start;
        uint64_t via_barrier; /* renewals that extended the lease: a lease barrier committed */
        uint64_t via_echo;    /* a majority answered a lease echo (cons_echo_yes) */
    } lease_stats;

    /* Lease echo, leader side (fence.h fence_echo_decide): the last CONS_ECHO_PROBES probes with
     * their send time (node clock) and the voters that said yes. A majority of voters, this one
     * counted, extends the lease to sent + lease_ms, as a barrier submitted then would. */
    struct {
        uint64_t seq; /* of the last probe begun (0: none) */
        struct cons_echo_probe {
            uint64_t seq;
            raft_term term;
            rpg_msec sent;
            uint64_t yes[FSM_MEMBERS_MAX];
            unsigned n_yes;
            bool granted; /* a majority answered: counted once */
        } probes[CONS_ECHO_PROBES];
    } echo;

    /* A node that stays candidate (pre-vote included) cannot win an election: since when (node
     * clock, 0 while not candidate), and when it last said so (cons_observe). */
    rpg_msec candidate_since;
    rpg_msec candidate_warned;
    unsigned n_candidate_warnings;

    /* Follower side: when this node last heard from a leader (0: never since attach). */
    rpg_msec last_heard_leader;
    rpg_msec started_at; /* node clock at attach */

    /* Raft storage health (storage.h): the host's probes of the directory and libraft's write
     * results. failed: this node cannot persist its log now. Logged once per episode. */
    struct {
        bool failed;
        char error[RPG_ERRMSG_SIZE]; /* what failed, with the path and errno */
        int err_no;                  /* 0 when the failure came from libraft without one */
        rpg_msec since;              /* node clock when it started failing */
        bool probe_failed;           /* the host's write probe failed */
        char probe_error[RPG_ERRMSG_SIZE];
        int probe_errno;
        bool raft_failing; /* libraft reported a failed write since the last success */
        char raft_error[RPG_ERRMSG_SIZE];
        unsigned n_raft_errors;
        bool low;      /* free space below STORAGE_SEGMENTS_LOW segments */
        bool measured; /* free_bytes is known */
        uint64_t free_bytes;
        size_t segment_size;
        const char *dir; /* borrowed */
        /* libraft received entries it could not persist (a failed write, or entries held in
         * memory past last_stored while the directory fails): the log on disk may have a gap
         * that a restart would load shifted. Recorded in STORAGE_FAULT_FILE by the host. */
        bool lost_writes;
        char lost_what[RPG_ERRMSG_SIZE];
        bool lost_recorded; /* the host wrote the record */
        bool lag_seen;
        uint64_t lag_stored;
    } storage;
    /* The write fence (cons_wal_wrap). libraft 0.15 never writes again entries whose write
     * failed (its in-memory log says it holds them), and raft_uv writes the next ones where the
     * failed ones belonged, so the directory would load them at the wrong indexes. After the
     * first failed write this server writes nothing more: the directory keeps an exact prefix of
     * the log, and once it takes writes again the host restarts Raft from it, which checks the
     * entries it loads against the log held in memory. It belongs to the libraft server, not to
     * the agent attached to it: cons_attach keeps it. */
    struct {
        struct cons *next;  /* every wrapped server (the append callback has no io) */
        struct raft_io *io; /* wrapped, NULL until cons_wal_wrap */
        int (*append)(struct raft_io *io, struct raft_io_append *req,
                      const struct raft_entry entries[], unsigned n, raft_io_append_cb cb);
        int (*load)(struct raft_io *io, raft_term *term, raft_id *voted_for,
                    struct raft_snapshot **snapshot, raft_index *start_index,
                    struct raft_entry *entries[], size_t *n_entries);
        void (*close)(struct raft_io *io, raft_io_close_cb cb);
        int (*set_term)(struct raft_io *io, raft_term term);
        int (*set_vote)(struct raft_io *io, raft_id server_id);
        int (*start)(struct raft_io *io, unsigned msecs, raft_io_tick_cb tick,
                     raft_io_recv_cb recv);
        int (*send)(struct raft_io *io, struct raft_io_send *req,
                    const struct raft_message *message, raft_io_send_cb cb);
        raft_io_recv_cb recv;      /* libraft's */
        raft_io_close_cb close_cb; /* libraft's, while the io closes */
        /* The follower's answer to an AppendEntries (wal_recv): while libraft handles one, the
         * index it reaches (prev_log_index + n_entries); an answer it sends meanwhile claims no
         * more than that. */
        bool ae_active;
        raft_index ae_upto;
        unsigned n_ae_capped; /* answers and commit indexes capped so far */
        /* The term and vote the directory holds (loaded, then each one written): a second vote in
         * one term is never written (wal_set_vote). */
        raft_term meta_term;
        raft_id meta_vote;
        unsigned n_votes_refused;
        struct cons_wal_append *pending; /* appends passed down, with libraft's callbacks */
        unsigned n_pending, cap_pending;
        /* A leader's configuration entry whose write was refused at submission: accepted and
         * never written, it fails as the io closes (wal_append says why). */
        struct cons_wal_append *held;
        unsigned n_held, cap_held;
        unsigned n_held_total; /* since the server was wrapped */
        bool fenced;           /* a write failed: nothing more is written */
        raft_index stored;     /* libraft's last stored index when it failed */
        rpg_msec fenced_at;    /* node clock when it failed (kept after the restart) */
        rpg_msec probe_began;  /* node clock when the host began its last probe */
        char why[RPG_ERRMSG_SIZE];
        unsigned ok_probes;  /* directory probes that succeeded since */
        bool restart_wanted; /* the host restarts Raft from the directory */
        bool config_freed;   /* libraft freed its installed configuration (cons_reconcile;
                              * no longer reachable through the fence's own writes): a close
                              * would free it again, so no restart */
        /* The log held when the restart began (cons_restart_begin): the load checks the
         * directory against it. */
        bool verify;
        raft_index acked; /* last stored index: acknowledged to leaders */
        raft_index first; /* index of sums[0] */
        struct cons_wal_sum *sums;
        size_t n_sums;
        bool verified;    /* the last load was checked and matched */
        bool from_record; /* the check came from the record of an earlier run (cons_wal_expect) */
        unsigned n_restarts;
        /* What the next run checks the directory against if this one ends with the fence closed
         * (storage.h STORAGE_PENDING_FILE): made when the fence closes, written by the host. */
        struct storage_pending *rec;
        unsigned rec_seq; /* bumped for each new record */
    } wal;
    /* The member's state differs from the others' at the same index (set by the host from the
     * checksums members exchange): it acts no more and hands leadership away. */
    bool diverged;
    /* Leader side of storage faults: when it last confirmed a write (or became leader) and
     * when it handed leadership over because of one (0: not yet). */
    rpg_msec write_confirmed;
    rpg_msec storage_tick_at;   /* the last cons_storage_tick, to see the loop stand still */
    rpg_msec storage_stall_end; /* the end of the last such stall; the bound counts from it */
    rpg_msec stepdown_transfer_at;
    unsigned n_stepdowns; /* leadership handed over because of storage or divergence */
    /* A leader whose lease keeps lapsing (fence.h fence_flap_tick), kept over terms and
     * attaches: a process's history. */
    struct fence_flap flap;
    rpg_msec flap_refused_lapse; /* the lapse whose hand-over refusal was logged */

    /* Set by the host when Raft cannot start (a corrupt log, say); on_change then fires. */
    bool failed;
    char error[RPG_ERRMSG_SIZE];

    struct cons_uv *uv; /* the agent's raft_uv instance and handles; NULL in the simulation */
};

/* Prepares c and its state machine; c->fsm.raft is then what raft_init or raft_fixture_grow
 * takes. Once per libraft server: the state lives as long as the server does. */
void cons_setup(struct cons *c);

/* Binds the logic to server id on raft (borrowed): a fresh agent process, with nothing observed
 * and nothing pending, over a server that keeps its log and state. */
void cons_attach(struct cons *c, struct raft *raft, raft_id id, const struct cons_params *params,
                 const struct cons_host *host);

/* Raft has started on the server: observation, the lease and reconciliation begin. */
void cons_set_running(struct cons *c);

/* The agent is gone: nothing more is observed or submitted, and callbacks of requests still
 * pending are dropped when libraft completes them. */
void cons_detach(struct cons *c);

/* Frees the requests libraft never completed. Only after the server is closed. */
void cons_free_requests(struct cons *c);

/* Observes role, term and leader; starts the own-term barrier of a new leader; ends a lease
 * with the leadership. Call after every step of the loop. */
void cons_observe(struct cons *c);

/* Leader only: records the initial members and settings, marks members whose Raft log holds
 * replicated entries (FSM_TAG_RAFT_STATE), then makes one step of the Raft configuration towards
 * the member list (removals first). Call every 100 ms. */
void cons_reconcile(struct cons *c);

/* Leader only: submits the barrier that renews the lease. Call every ET/4. */
void cons_lease_renew(struct cons *c);

/* Leader only: submits a lease barrier at once, even while an older one is pending (after a loop
 * gap only a barrier submitted from now on counts: fence_lease_trusted). */
void cons_lease_renew_now(struct cons *c);

/* Lease echo, leader side: begins a probe when this node is the ready leader of its term, noting
 * the node clock now as its send time; *seq and *term go to every other voter. False otherwise.
 * Call every ET/4 (with the lease barrier, which stays: it grants the first lease of a term). */
bool cons_echo_begin(struct cons *c, uint64_t *seq, raft_term *term);

/* Lease echo, leader side: voter id answered yes to probe seq (its answer proven by the caller).
 * Once a majority of the voters, this one counted, did, the lease ends no earlier than the
 * probe's send time + lease_ms. Answers from non-voters, to unknown or older-term probes, or
 * after leadership changed are ignored. */
void cons_echo_yes(struct cons *c, uint64_t id, uint64_t seq);

/* Lease echo, leader side: the voters of the Raft configuration other than this server (at most
 * max ids), the ones a probe goes to. */
unsigned cons_echo_targets(const struct cons *c, uint64_t *ids, unsigned max);

/* Lease echo, follower side: the Raft clock now, the arrival mark of a probe. */
rpg_msec cons_echo_clock(const struct cons *c);

/* Lease echo, follower side: fence_echo_decide on this server's Raft state for a probe of
 * leader_id in term that arrived at arrived (cons_echo_clock); no when not running. */
enum fence_echo cons_echo_answer(const struct cons *c, uint64_t leader_id, raft_term term,
                                 rpg_msec arrived, rpg_msec wait_ms);

/* Submits a command through the leader. RPG_ENOTLEADER if this node is not a ready leader. The
 * callback fires exactly once unless submit itself fails or the logic is detached first. */
int cons_submit(struct cons *c, const struct fsm_cmd *cmd, cons_submit_cb cb, void *data,
                char *errmsg);

/* Builds the MEMBER_ADD for a new member with the next free id. */
int cons_member_add_cmd(const struct cons *c, const char *name, const char *raft_address,
                        const char *api_address, struct fsm_cmd *cmd, char *errmsg);

/* Commits a MEMBER_ADD for a new member with the next free id; the leader then adds it to the
 * Raft configuration as spare and promotes it to voter after catch-up. */
int cons_member_add(struct cons *c, const char *name, const char *raft_address,
                    const char *api_address, cons_submit_cb cb, void *data, char *errmsg);

/* Commits a MEMBER_REMOVE; the leader then removes it from the Raft configuration (handing
 * leadership over first when it removes itself). */
int cons_member_remove(struct cons *c, const char *name, cons_submit_cb cb, void *data,
                       char *errmsg);

/* Hands Raft leadership to voter id (raft_transfer). The outcome shows in the role and leader
 * observed later; a transfer that does not happen is retried by the caller. */
int cons_transfer(struct cons *c, uint64_t id, char *errmsg);

/* The end of this leader's lease on the node clock, 0 when it holds none (not leader, or no
 * majority confirmed it recently). */
rpg_msec cons_lease_until(const struct cons *c);

/* cons_lease_until for the fence's tick at now, which notes it (fence.h fence_flap_note): the
 * lapses that count are the ones the fence sees, and acts on. */
rpg_msec cons_lease_fence(struct cons *c, rpg_msec now);

/* Whether this leader's lease is steady after a lapse (fence.h fence_flap_steady); true without
 * a recent lapse. */
bool cons_lease_steady(const struct cons *c, rpg_msec now);

/* The largest lease renewal time (submit to commit, ms) seen in the last one to two
 * CONS_LEASE_MAX_WINDOW_MS windows up to now (node clock), 0 when none. */
rpg_msec cons_lease_renewal_max(const struct cons *c, rpg_msec now);

/* How long this node has been candidate at now (node clock), 0 when it is not one. */
rpg_msec cons_candidate_for(const struct cons *c, rpg_msec now);

/* The host's probe of the Raft directory: rc 0 or the failure (errmsg with the path, err_no);
 * free_bytes of the file system (measured false when statvfs failed). Updates c->storage and
 * logs the transitions once. */
void cons_storage_report(struct cons *c, int rc, int err_no, const char *errmsg, bool measured,
                         uint64_t free_bytes);

/* The host begins a probe of the Raft directory (its answer comes to cons_storage_report): a
 * fenced server restarts on the first good probe begun after the failure. Without this call it
 * waits for two good probes in a row. */
void cons_storage_probe_begin(struct cons *c);

/* How long the host waits after a restart before raft_start: an election timeout after the
 * failure, since a fenced server acknowledged no write after it and so holds up no leader's lease
 * (RAFT-NOTES "Holes to close" asks a restarted node to wait ET). 0 when that has passed. */
rpg_msec cons_restart_start_delay(struct cons *c);

/* Leader only: applies storage_leader_decide to this leader (storage failing, diverged, or no
 * write confirmed for the bound): transfers leadership to host.pick_voter's choice, and if it
 * is still leader after the bound, sets failed with a message and fires on_change so the host
 * leaves the group. Call every few hundred ms. */
void cons_storage_tick(struct cons *c);

/* Installs the write fence (the wal struct above) on io, whose raft server must have c as its
 * data pointer (raft->data) once raft_init ran. Once per io; idempotent. */
void cons_wal_wrap(struct cons *c, struct raft_io *io);

/* Removes c from the fence's list. Only after the server is closed. */
void cons_wal_unwrap(struct cons *c);

/* The host restarts Raft from the directory (wal.restart_wanted, or its own reason): call before
 * raft_close. Remembers the log held in memory for the load's check, then after the close
 * (cons_restart_reset) the state machine starts empty, as in a new process, and the host calls
 * raft_init (with c->fsm.raft), cons_wal_wrap, cons_attach and raft_start one election timeout
 * later. The load fails with RAFT_CORRUPT, naming the index, when the directory lacks an entry
 * this server acknowledged or holds one that differs from the log in memory. */
void cons_restart_begin(struct cons *c);
/* At a start: the previous run ended with a storage failure pending (storage_pending_read):
 * the first load checks the directory against its record as a restart checks it against the log
 * held in memory. */
void cons_wal_expect(struct cons *c, const struct storage_pending *p);
void cons_restart_reset(struct cons *c);

/* Observations for the API. */
uint64_t cons_commit_index(const struct cons *c);
uint64_t cons_applied_index(const struct cons *c);
uint64_t cons_last_index(const struct cons *c);
/* True when a leader is known and everything this node knows to be committed is applied: the
 * replicated state is as current as this node can tell. A restarted node replaying its log is
 * not current until then. */
bool cons_state_current(const struct cons *c);
/* The leader's id and address (address borrowed), 0/NULL when unknown. */
void cons_leader(const struct cons *c, uint64_t *id, const char **address);

/* Whether this node's view of the Raft configuration has server id (as a voter, standby or
 * spare). Followers see configuration changes as they replicate. */
bool cons_config_has(const struct cons *c, uint64_t id);
/* Raft voting role of server id in this node's current configuration, or CONS_VOTING_NONE. */
int cons_voting(const struct cons *c, uint64_t id);
/* Name of member id from the replicated state (or, before it is initialised, from the initial
 * members); NULL if unknown. Borrowed. */
const char *cons_member_name(const struct cons *c, uint64_t id);
/* Number of servers in the current configuration and their ids (up to max). */
unsigned cons_config_ids(const struct cons *c, uint64_t *ids, unsigned max);

#endif
