#!/usr/bin/env bash
# RPO with synchronous quorum (I2): under continuous acknowledged writes, kill -9 the primary node
# (agent and PostgreSQL) at a random moment, RPO_RUNS times in a row (default 20); after each
# failover every acknowledged row must be on the new primary. A loss fails with the missing ids.
# Every old primary must rejoin by pg_rewind, also when its postmaster.pid names a process that
# still answers kill(pid, 0): in run 1 a zombie (a killed postmaster nobody has reaped yet, as under
# a slow init), in run 2 another program of the agent's user that took the number (which no
# fence may signal).
# Each rejoin is watched on the restarted node's GET /status (postgresql.rejoin.stage, polled every
# 50 ms) and in its log: the stages must come in the pipeline's order and end in streaming.
# Every run is judged on its own, from the killed node's log since its restart: it logged
# "rewind: done" (a rewind whose start failed and that a plain start followed counts, with its
# decisions printed), or a plain start superseded the rejoin: a rejoin that stopped before
# changing anything, in its back-off, when the node became the Raft leader and started its
# directory as a standby to learn its WAL position, or a follower whose directory is a standby's
# while the primary is briefly unusable. A superseded run prints the decisions before the plain
# start and must show that the node never diverged: it streams on the primary's timeline
# (PostgreSQL refuses a timeline that forked before its own end of WAL) and holds every
# acknowledged row, which every run must show. A clone fails the run. No share of the runs is
# let off these checks.
# Every failover is logged: a survivor says it stopped hearing the killed leader and starts an
# election, and the new primary's log has no ERROR line from its "promote done" line to the end
# of the run (the old primary streaming again).
T_PG=1
source "$(dirname "$0")/lib.sh"
RUNS=${RPO_RUNS:-20}
# RPO_RESTORE_COMMAND=1: every node gets a restore_command (from an archive directory the test
# makes), so that each pg_rewind runs with --restore-target-wal.
if [ -n "${RPO_RESTORE_COMMAND:-}" ]; then
  mkdir -p "$T_DIR/archive"; chown postgres "$T_DIR/archive"
  T_RESTORE_COMMAND="cp $T_DIR/archive/%f %p"
fi
t_pick_ports
for i in 1 2 3; do t_write_conf "$i" 3; t_start "$i"; done
t_wait 60 "a healthy cluster" t_pg_healthy 1 2 3
P=$(t_pg_primary 1)
t_psql "${P#node}" -c "CREATE TABLE rpo (id bigint PRIMARY KEY)"

ACKED="$T_DIR/acked"
: >"$ACKED"
# The writer: one INSERT per psql call against whichever node accepts it; an id is written to
# ACKED only after the commit was acknowledged. Bounded by a deadline.
writer() {
  local id=1 deadline=$((SECONDS + 1800)) i
  while [ $SECONDS -lt $deadline ] && [ ! -f "$T_DIR/stop" ]; do
    for i in 1 2 3; do
      # Killed, not cancelled: a cancelled synchronous-replication wait reports the local
      # commit as a success (with a warning), which is no acknowledgement by the quorum.
      # An insert killed while it waited may still have committed: the next try takes a new id
      # (the same one would only ever meet its own duplicate).
      if PGCONNECT_TIMEOUT=1 timeout -s KILL 4 psql -X -q -A -t -h 127.0.0.1 \
           -p "$(t_pg_port "$i")" -U postgres -d postgres \
           -c "INSERT INTO rpo VALUES ($id)" >/dev/null 2>&1; then
        echo "$id" >>"$ACKED"
        break
      fi
    done
    id=$((id + 1))
    sleep 0.01
  done
}
writer &
WPID=$!
stop_writer() { touch "$T_DIR/stop"; wait "$WPID" 2>/dev/null || true; }
HOLDERS=()
stop_holders() {
  local h
  for h in "${HOLDERS[@]}"; do kill -KILL "$h" 2>/dev/null || true; wait "$h" 2>/dev/null || true; done
}
stop_pollers() { local q; for q in "${POLLERS[@]}"; do kill "$q" 2>/dev/null || true; wait "$q" 2>/dev/null || true; done; }
trap 'stop_writer; stop_holders; stop_pollers; t_cleanup' EXIT
# Points node $1's postmaster.pid at a process that answers kill(pid, 0) but is no server there.
stale_pidfile() {
  local f="$T_DIR/node$1/pgdata/postmaster.pid" pid
  if [ "$2" = zombie ]; then
    # The child exits after 0.2 s and its parent (now sleep) never waits: a zombie until the
    # holder is killed.
    ( sleep 0.2 & echo $! >"$T_DIR/zombie"; exec sleep 600 ) &
    HOLDERS+=($!)
    sleep 0.6
    pid=$(cat "$T_DIR/zombie")
    grep -q '^State:.*Z' "/proc/$pid/status" || t_fail "process $pid is no zombie"
  else
    # The agent's own user: a fence that trusted the file would be allowed to kill it.
    "${T_RUNAS[@]}" sleep 600 &
    pid=$!
    HOLDERS+=($pid)
    FOREIGN=$pid
  fi
  kill -0 "$pid" || t_fail "the stand-in process $pid is not there"
  [ -f "$f" ] && sed -i "1s/.*/$pid/" "$f"
  t_log "run $run: node$1's postmaster.pid now names $2 process $pid"
}

# The rejoin pipeline of a killed primary (README "Rejoin"): every stage, in order.
REJOIN_STAGES="check crash-recover checkpoint-source rewind verify-timeline start-standby streaming"
REJOIN_RE="check( crash-recover)? checkpoint-source rewind verify-timeline start-standby streaming"
stage_rank() {
  local r=0 s
  for s in none $REJOIN_STAGES; do [ "$s" = "$1" ] && { echo $r; return; }; r=$((r + 1)); done
  echo 99
}
# Records each new stage node $1 reports on /status into file $2, until it streams (bounded).
poll_rejoin() {
  local deadline=$((SECONDS + 90)) s last=""
  while [ $SECONDS -lt $deadline ]; do
    s=$(curl -s -m 1 "http://$(t_api_addr "$1")/status" | jq -r '.postgresql.rejoin.stage // empty' 2>/dev/null || true)
    if [ -n "$s" ] && [ "$s" != "$last" ]; then echo "$s" >>"$2"; last=$s; fi
    [ "$s" = streaming ] && return 0
    sleep 0.05
  done
}
# The stages polled (file $1) go forward in the pipeline's order and end in streaming, with at
# least one stage seen before it. A failed attempt (the node logged $2 of them) is tried again
# from check, which a 50 ms poll may miss: each may go back once.
stages_ordered() {
  local prev=0 r s n=0 back=0
  while read -r s; do
    r=$(stage_rank "$s")
    [ "$r" -lt 99 ] || { echo "  unknown stage $s"; return 1; }
    if [ "$r" -lt "$prev" ]; then
      back=$((back + 1))
      [ "$back" -le "$2" ] || { echo "  $s after a later stage, with $2 failed attempts logged"; return 1; }
    fi
    prev=$r; n=$((n + 1))
  done <"$1"
  [ "$(tail -n 1 "$1")" = streaming ] || { echo "  the last stage seen is $(tail -n 1 "$1")"; return 1; }
  [ "$n" -ge 2 ] || { echo "  only $(cat "$1") seen"; return 1; }
}
# The stages node $1 logged since line $2 of its log, from its last attempt (the last "check").
logged_stages() {
  tail -n +"$2" "$T_DIR/node$1.log" | grep -oE 'rejoin: [a-z-]+ \(' | sed -E 's/rejoin: ([a-z-]+) \(/\1/' |
    awk '$0 == "check" {n = 0} {a[n++] = $0} END {for (i = 0; i < n; i++) printf "%s%s", i ? " " : "", a[i]}'
}
POLLERS=()
BAD_POLLS=0
BAD_LOGS=0
# Per run, from the killed node's log: rejoined by a rewind, or by a plain start that superseded
# the rejoin (then it must never have diverged: checked for every run anyway).
REWOUND=0
SUPERSEDED=0
CLONED=0
DIVERGED=0
BAD_ELECTIONS=0
BAD_PROMOTES=0
PROMOTE_ERRORS=0
# Node $1's log since line $2 has a line matching $3. grep reads to the end: with pipefail, a
# grep -q that stops early would fail the pipeline through tail's SIGPIPE, a match or not.
logged_since() { tail -n +"$2" "$T_DIR/node$1.log" | grep -E "$3" >/dev/null; }
# The decisions node $1 logged since line $2, up to and including its first plain start.
decisions_before_start() {
  tail -n +"$2" "$T_DIR/node$1.log" |
    grep -E 'role=[a-z-]+: ([a-z_]+( node[0-9]+)?: |waiting: |rejoin: [a-z-]+ failed|rejoin: stopped)' |
    awk 'done {next} {print} / start_standby: / {done = 1}' | tail -n 12 | cut -c1-300
}
# The timeline the current primary (as node $1 names it) writes on, from its WAL file name.
primary_timeline() {
  local p
  p=$(t_pg_primary "$1") && [ -n "$p" ] || return 1
  t_psql "${p#node}" -c "SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int" 2>/dev/null
}
# Node $1 never diverged from the new history: its WAL receiver streams on the primary's timeline
# (PostgreSQL streams no timeline that forked before its own end of WAL) and it holds every row
# acknowledged up to this run's failover ($2: the ids).
on_primary_history() {
  local tl rtl miss
  tl=$(primary_timeline "$O") && [ -n "$tl" ] || return 1
  rtl=$(t_psql "$1" -c "SELECT received_tli FROM pg_stat_wal_receiver WHERE status = 'streaming'" 2>/dev/null) || return 1
  [ "$rtl" = "$tl" ] || return 1
  miss=$(t_psql "$1" -c "SELECT count(*) FROM unnest(ARRAY[${2:-0}]::bigint[]) a WHERE a <> 0 AND NOT EXISTS (SELECT 1 FROM rpo WHERE id = a)" 2>/dev/null) || return 1
  [ "$miss" = 0 ]
}
# Node $1 streams as its own PostgreSQL reports it (pg_stat_wal_receiver).
node_streams() {
  [ "$(t_jq "$1" --arg n "node$1" '.members[] | select(.name == $n) | .state')" = streaming ]
}

# Asynchronous records (k=0); the first primary makes some while its standbys first connect.
k0_records() { cat "$T_DIR"/node*.log | grep -c 'synchronous quorum: recording k=0 ' || true; }
K0_BEFORE=$(k0_records)
# Rejoins after this point: every one must be a rewind, never a clone (issue: rejoin by rewind).
rejoin_lines() { cat "$T_DIR"/node*.log | grep -cE "$1" || true; }
CLONES_BEFORE=$(rejoin_lines 'clone: pg_basebackup|reinit:|moved aside')
REJOIN_MS=()
rejoin_from=0
lost_total=0
for run in $(seq 1 "$RUNS"); do
  t_wait 90 "a healthy cluster before run $run" t_pg_healthy 1 2 3 || break
  if [ "$rejoin_from" -gt 0 ]; then
    REJOIN_MS+=($(( ($(date +%s%N) - rejoin_from) / 1000000 )))
  fi
  # One ctl call may time out on a loaded machine: ask again (bounded) rather than kill nobody.
  P=""
  for _ in $(seq 1 50); do P=$(t_pg_primary 1) && break; sleep 0.2; done
  [ -n "$P" ] || { t_fail "run $run: node1 names no primary"; break; }
  Pi=${P#node}
  before=$(wc -l <"$ACKED")
  sleep "0.$((RANDOM % 9 + 1))"
  # Each node's log from the kill on (the election, the promotion).
  for i in 1 2 3; do kill_from[$i]=$(( $(wc -l <"$T_DIR/node$i.log") + 1 )); done
  if [ $((run % 2)) = 1 ]; then
    # The server first, then the agent (before its guard could stop the server cleanly): the
    # directory is left as a crash leaves it, and the rejoin must crash-recover it.
    pgpid=$(t_pg_pid "$Pi") || pgpid=""
    [ -n "$pgpid" ] && kill -KILL "$pgpid"
    t_kill "$Pi" KILL; t_kill_pg "$Pi"
  else
    t_kill "$Pi" KILL; t_kill_pg "$Pi"
  fi
  O=1; [ "$O" = "$Pi" ] && O=2
  np() { local p; p=$(t_pg_primary "$O"); [ -n "$p" ] && [ "$p" != "$P" ] && echo "$p"; }
  t_wait 60 "a new primary in run $run" np || break
  NP=$(np); NPi=${NP#node}
  acked_after() { [ "$(wc -l <"$ACKED")" -gt "$1" ]; }
  t_wait 30 "a write acknowledged after failover $run" acked_after "$(wc -l <"$ACKED")" || break
  # Everything acknowledged up to now (including writes to the old primary) must be there.
  sleep 0.5
  acked_now=$(sort -n "$ACKED" | paste -sd,)
  n_acked=$(wc -l <"$ACKED")
  if ! missing=$(t_acked_missing "$ACKED" "$NPi" rpo); then
    missing="(the query failed)"
    t_fail "run $run: the query for the acknowledged rows failed on $NP"
  elif [ -n "$missing" ]; then
    lost_total=$((lost_total + $(tr ',' '\n' <<<"$missing" | wc -l)))
    t_fail "run $run: acknowledged rows missing on $NP after killing $P: $missing"
  fi
  t_log "run $run: killed $P, new primary $NP, $((n_acked - before)) acks during the run, all $n_acked acknowledged rows present: $([ -z "$missing" ] && echo yes || echo no)"
  [ "$run" = 1 ] && stale_pidfile "$Pi" zombie
  [ "$run" = 2 ] && stale_pidfile "$Pi" foreign
  log_from=$(( $(wc -l <"$T_DIR/node$Pi.log") + 1 ))
  t_start "$Pi"
  rejoin_from=$(date +%s%N)
  poll_rejoin "$Pi" "$T_DIR/stages.$run" &
  poller=$!
  POLLERS+=($poller)
  t_wait 90 "node$Pi streaming again in run $run" node_streams "$Pi" || break
  # Timed before this run's checks, which take time of their own.
  if t_wait 90 "a healthy cluster after run $run" t_pg_healthy 1 2 3; then
    REJOIN_MS+=($(( ($(date +%s%N) - rejoin_from) / 1000000 ))); rejoin_from=0
  fi
  # Streaming, its rejoin reports so within an observation (200 ms) and the poller ends.
  for _ in $(seq 1 40); do kill -0 "$poller" 2>/dev/null || break; sleep 0.05; done
  kill "$poller" 2>/dev/null || true; wait "$poller" 2>/dev/null || true
  final=$(curl -s -m 1 "http://$(t_api_addr "$Pi")/status" | jq -r '.postgresql.rejoin.stage // empty' 2>/dev/null || true)
  # Whatever the path, the node must be on the new history with every acknowledged row (a standby
  # past the fork may look streaming for a while until it is stopped and rewound: bounded wait).
  if ! t_wait 30 "node$Pi on the primary's timeline with every acknowledged row in run $run" \
       on_primary_history "$Pi" "$acked_now"; then
    DIVERGED=$((DIVERGED + 1))
    t_log "run $run: node$Pi's receiver: $(t_psql "$Pi" -c "SELECT status, received_tli FROM pg_stat_wal_receiver" 2>&1 | tr '\n' ' '); primary's timeline: $(primary_timeline "$O" | tr '\n' ' ')"
  fi
  # The new primary: no ERROR from its promotion to the end of this run.
  run_end=$(wc -l <"$T_DIR/node$NPi.log")
  promoted=$(sed -n "${kill_from[$NPi]},${run_end}p" "$T_DIR/node$NPi.log" |
               awk '/ promote done$/ && !n {n = NR} END {if (n) print n}')
  if [ -z "$promoted" ]; then
    BAD_PROMOTES=$((BAD_PROMOTES + 1)); t_log "run $run: $NP logged no \"promote done\" after the kill"
  else
    errs=$(sed -n "$((kill_from[$NPi] + promoted)),${run_end}p" "$T_DIR/node$NPi.log" | grep ' ERROR ' || true)
    if [ -n "$errs" ]; then
      PROMOTE_ERRORS=$((PROMOTE_ERRORS + 1))
      t_log "run $run: $NP logged ERROR after its promotion:"; cut -c1-300 <<<"$errs"
    fi
  fi
  # A survivor stopped hearing the killed leader and said so when it started an election.
  heard=0
  for i in 1 2 3; do
    [ "$i" = "$Pi" ] && continue
    logged_since "$i" "${kill_from[$i]}" \
      "no message from leader $P for [0-9]+ ms \(election timeout [0-9]+ ms\): starting an election" &&
      heard=$((heard + 1))
  done
  if [ "$heard" = 0 ]; then
    BAD_ELECTIONS=$((BAD_ELECTIONS + 1)); t_log "run $run: no survivor logged why it started an election"
  fi
  if logged_since "$Pi" "$log_from" 'clone: pg_basebackup|reinit:|moved aside'; then
    # Neither rewound nor superseded: counted against both checks below, with its decisions.
    CLONED=$((CLONED + 1))
    t_log "run $run: node$Pi was cloned again; /status showed: $(tr '\n' ' ' <"$T_DIR/stages.$run"); its decisions:"
    decisions_before_start "$Pi" "$log_from"
    continue
  fi
  if ! logged_since "$Pi" "$log_from" 'rewind: done'; then
    # Superseded: the decisions that led to the plain start say why; on_primary_history above
    # showed that it never diverged (no rewind was needed).
    SUPERSEDED=$((SUPERSEDED + 1))
    t_log "run $run: node$Pi streams after a plain start that superseded its rejoin; /status showed: $(tr '\n' ' ' <"$T_DIR/stages.$run"); its decisions:"
    decisions_before_start "$Pi" "$log_from"
    continue
  fi
  REWOUND=$((REWOUND + 1))
  if [ "$final" = none ]; then
    # Rewound, but the start after it failed and a plain start followed (its decisions say why):
    # the pipeline's stages on /status end before streaming.
    t_log "run $run: node$Pi rewound, then a plain start followed; /status showed: $(tr '\n' ' ' <"$T_DIR/stages.$run"); its decisions:"
    decisions_before_start "$Pi" "$log_from"
    continue
  fi
  failed_attempts=$(tail -n +"$log_from" "$T_DIR/node$Pi.log" | grep -cE 'rejoin: [a-z-]+ failed after' || true)
  if ! stages_ordered "$T_DIR/stages.$run" "$failed_attempts"; then
    BAD_POLLS=$((BAD_POLLS + 1)); t_log "run $run: /status showed: $(tr '\n' ' ' <"$T_DIR/stages.$run")"
  fi
  # The last attempt went through every stage (crash recovery only for an unclean directory);
  # after a crash (odd runs) one attempt crash-recovered.
  logged=$(logged_stages "$Pi" "$log_from")
  if ! grep -qxE "$REJOIN_RE" <<<"$logged" ||
     { [ $((run % 2)) = 1 ] && ! logged_since "$Pi" "$log_from" 'rejoin: crash-recover \('; }; then
    BAD_LOGS=$((BAD_LOGS + 1)); t_log "run $run: node$Pi logged the stages: $logged"
  fi
  t_log "run $run: node$Pi rejoined; /status showed: $(tr '\n' ' ' <"$T_DIR/stages.$run")"
done
stop_writer
t_wait 90 "the last killed node back as a standby" t_pg_healthy 1 2 3
[ "$rejoin_from" -gt 0 ] && REJOIN_MS+=($(( ($(date +%s%N) - rejoin_from) / 1000000 )))
t_check "acknowledged rows lost over $RUNS failovers" t_eq "$lost_total" 0
t_check "every rejoin's stages on /status went in order and ended in streaming" t_eq "$BAD_POLLS" 0
t_check "every old primary rejoined: by pg_rewind ($REWOUND), or by a plain start that superseded the rejoin and never diverged ($SUPERSEDED); cloned: $CLONED" \
  t_eq "$((REWOUND + SUPERSEDED))" "$RUNS"
t_check "every old primary streams on the new primary's timeline with every acknowledged row" \
  t_eq "$DIVERGED" 0
t_check "a survivor logged, in every failover, that it heard no leader and started an election" \
  t_eq "$BAD_ELECTIONS" 0
t_check "every new primary logged \"promote done\"" t_eq "$BAD_PROMOTES" 0
t_check "no new primary logged an ERROR after \"promote done\" (to the end of its run)" \
  t_eq "$PROMOTE_ERRORS" 0
t_check "every rejoin logged its stages in order (crash-recover after every crash)" t_eq "$BAD_LOGS" 0
t_check "every old primary rejoined by pg_rewind, none by a clone" \
  t_eq "$(( $(rejoin_lines 'clone: pg_basebackup|reinit:|moved aside') - CLONES_BEFORE ))" 0
# pg_rewind's single-user crash recovery works in the data directory like a server but accepts
# no connection: no fence may take it for one (it did, and the rewind failed into a clone).
# Backends a killed postmaster left behind are fenced, rightly, and logged as such.
t_check "no fence stopped pg_rewind's own recovery" \
  t_eq "$(cat "$T_DIR"/node*.log | grep -c 'fencing during rewind: killing postgresql' || true)" 0
if [ -n "${FOREIGN:-}" ]; then
  t_check "the program that took the killed postmaster's number was left alone" kill -0 "$FOREIGN"
fi
if [ "$(( $(rejoin_lines 'clone: pg_basebackup|reinit:|moved aside') - CLONES_BEFORE ))" -gt 0 ]; then
  echo "why the rewinds failed:"
  grep -hE -A14 'rewind failed; its whole output follows' "$T_DIR"/node*.log | cut -c1-400 || true
fi
t_log "restart of the old primary to a healthy cluster (ms), per run: ${REJOIN_MS[*]}; median $(printf '%s\n' "${REJOIN_MS[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')"
t_check "the writer made progress" test "$(wc -l <"$ACKED")" -gt "$RUNS"
if [ -n "${RPO_RESTORE_COMMAND:-}" ]; then
  t_check "every pg_rewind ran with --restore-target-wal" \
    t_eq "$(cat "$T_DIR"/node*.log | grep -c 'rejoin: rewind (.*--restore-target-wal' || true)" \
    "$(cat "$T_DIR"/node*.log | grep -c 'rejoin: rewind (' || true)"
fi
# The survivor re-points within the degrade grace: no new primary acknowledged alone.
t_check "no primary went asynchronous after a failover" t_eq "$(k0_records)" "$K0_BEFORE"
if [ "$(k0_records)" != "$K0_BEFORE" ]; then
  echo "the k=0 records, with the lines each node logged just before them:"
  for f in "$T_DIR"/node*.log; do
    { grep -n 'synchronous quorum: recording k=0 ' "$f" || true; } | cut -d: -f1 | while read -r n; do
      echo "--- $f line $n"
      sed -n "$((n > 60 ? n - 60 : 1)),${n}p" "$f" | { grep -vE 'lease held|raft_transport' || true; } |
        tail -n 25 | cut -c1-300
    done
  done
fi
for i in 1 2 3; do t_alive "$i" && t_kill "$i" TERM; done
t_done
