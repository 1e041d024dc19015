#!/usr/bin/env bash
# Switchover (ctl switchover, POST /switchover) under continuous numbered writes through a libpq
# multi-host connection string (target_session_attrs=read-write): to a named candidate, then to
# the best one, SWITCHOVER_RUNS times in all (default 2); each moves the primary, the old one
# rejoins as a standby without a clone, no acknowledged write is lost, and the write pause of
# each is printed. Refusals name their reason; a switchover whose candidate stops answering
# (its agent SIGSTOPped) is abandoned and the old primary takes writes again.
T_PG=1
source "$(dirname "$0")/lib.sh"
t_pick_ports
RUNS=${SWITCHOVER_RUNS:-2}
for i in 1 2 3; do t_write_conf "$i" 3; t_start "$i"; done
t_wait 60 "a primary and two streaming standbys" t_pg_healthy 1 2 3
ctl() { "$T_BIN" ctl --api "$(t_api_addr 1)" --api "$(t_api_addr 2)" --api "$(t_api_addr 3)" "$@"; }
P=$(t_pg_primary 1); Pi=${P#node}
t_log "primary is $P"

# Refusals, each with its reason and no change.
ctl switchover --candidate node9 >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
t_check "a switchover to an unknown member is refused" t_eq "$rc" 1
t_check "... naming it ($(cat "$T_DIR/out"))" grep -q "node9 is not another member" "$T_DIR/out"
ctl switchover --leader node9 >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
t_check "a switchover from a member that is not the primary is refused ($(cat "$T_DIR/out"))" \
  grep -q "node9 is not the primary" "$T_DIR/out"
t_check "the primary did not change" t_eq "$(t_pg_primary 1)" "$P"

MULTI="host=127.0.0.1,127.0.0.1,127.0.0.1 port=$(t_pg_port 1),$(t_pg_port 2),$(t_pg_port 3) user=postgres dbname=postgres target_session_attrs=read-write connect_timeout=2"
psql "$MULTI" -X -q -c 'CREATE TABLE t (id int PRIMARY KEY, at timestamptz DEFAULT clock_timestamp())'
ACKED="$T_DIR/acked"; : >"$ACKED"
writer() {
  local n=0 deadline=$((SECONDS + 240))
  while [ $n -lt 1000000 ] && [ $SECONDS -lt $deadline ] && [ ! -f "$T_DIR/stop" ]; do
    n=$((n + 1))
    if timeout -s KILL 5 psql "$MULTI" -X -q -c "INSERT INTO t (id) VALUES ($n)" >/dev/null 2>&1; then
      echo "$n $(date +%s.%N)" >>"$ACKED"
    fi
  done
}
writer & WRITER=$!
t_wait 10 "writes flowing" test -s "$ACKED"

# Longest gap between two consecutive acknowledgements in [from, to] (seconds).
gap() { awk -v a="$1" -v b="$2" '$2 >= a && $2 <= b { if (p) { d = $2 - p; if (d > m) m = d } p = $2 } END { printf "%.2f", m }' "$ACKED"; }
pauses=()
# Settled: both standbys stream on the primary's timeline (a switchover is refused before).
settled() {
  t_pg_healthy 1 2 3 || return 1
  [ "$(t_jq 1 '[.members[].timeline] | unique | length')" = 1 ]
}
sees_primary() { [ "$(t_pg_primary 1)" = "$1" ]; }
sees_new_primary() { local n; n=$(t_pg_primary 1); [ -n "$n" ] && [ "$n" != "$1" ]; }
for run in $(seq 1 "$RUNS"); do
  t_wait 60 "switchover $run: the cluster settled" settled
  P=$(t_pg_primary 1); Pi=${P#node}
  if [ $((run % 2)) = 1 ]; then
    C=node$(( Pi % 3 + 1 )); args=(--candidate "$C" --leader "$P")
  else
    C=""; args=()
  fi
  t0=$(date +%s.%N)
  ctl switchover "${args[@]}" >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
  t_check "switchover $run from $P${C:+ to $C} ($(cat "$T_DIR/out"))" t_eq "$rc" 0
  # The answer means the candidate's server runs as the primary: ask it. Node1's view follows
  # at its next poll of the members (about a second later).
  if [ -n "$C" ]; then
    t_check "switchover $run: $C's server is out of recovery" \
      t_eq "$(t_psql "${C#node}" -c 'SELECT pg_is_in_recovery()' 2>/dev/null)" f
    t_wait 5 "switchover $run: node1 sees $C as the primary" sees_primary "$C"
  else
    t_wait 5 "switchover $run: node1 sees a new primary" sees_new_primary "$P"
  fi
  N=$(t_pg_primary 1) || true
  t_check "switchover $run: the primary moved" t_ne "$N" "$P"
  t_wait 60 "switchover $run: $P back as a streaming standby" t_pg_healthy 1 2 3
  sleep 0.5
  pauses+=("$(gap "$t0" "$(date +%s.%N)")")
  t_log "switchover $run: $P -> $N, longest write pause ${pauses[-1]} s"
done
# raftpg_promotions_total{reason}: summed over the members, one switchover per run, no failover.
promotions() {
  local i r out=""
  for r in switchover failover; do
    out+="$(for i in 1 2 3; do curl -s -m 3 "http://$(t_api_addr "$i")/metrics"; done |
      awk -v r="$r" 'index($1, "raftpg_promotions_total{") == 1 && index($1, "reason=\"" r "\"") { n += $2 } END { print n + 0 }') "
  done
  echo "$out"
}
switchovers_counted() { [ "$(promotions)" = "$RUNS 0 " ]; }
t_wait 10 "every switchover counted" switchovers_counted
t_check "raftpg_promotions_total counts $RUNS switchovers and no failover over the members" t_eq "$(promotions)" "$RUNS 0 "
t_check "no rejoin needed a clone (only the two initial ones)" \
  t_eq "$(cat "$T_DIR"/node*.log | grep -c 'clone: pg_basebackup')" 2

# A candidate that stops answering during the switchover: abandoned, the old primary goes on.
t_wait 60 "the cluster settled" settled
P=$(t_pg_primary 1); Pi=${P#node}; Ci=$(( Pi % 3 + 1 ))
n0=$(grep -c "switchover $P -> node$Ci: stopping the primary" "$T_DIR/$P.log" || true)
ctl switchover --candidate "node$Ci" >"$T_DIR/out" 2>&1 & CPID=$!
# The candidate's agent stops answering as soon as the primary begins to stop: before the
# primary's final checkpoint exists, so no report of the candidate can show it.
for _ in $(seq 1 2000); do
  [ "$(grep -c "switchover $P -> node$Ci: stopping the primary" "$T_DIR/$P.log" || true)" -gt "$n0" ] && break
  sleep 0.005
done
kill -STOP "${T_PIDS[$Ci]}"
wait "$CPID" && rc=0 || rc=$?
kill -CONT "${T_PIDS[$Ci]}"
t_check "a switchover whose candidate stops answering is abandoned ($(cat "$T_DIR/out"))" \
  grep -q "abandoned" "$T_DIR/out"
back() { [ "$(t_pg_primary "$Pi")" = "$P" ] && [ "$(t_psql "$Pi" -c 'SELECT pg_is_in_recovery()' 2>/dev/null)" = f ]; }
t_wait 20 "$P takes writes again" back
t_check "the old primary takes writes again after the abandoned switchover" back
t_wait 60 "healthy again" t_pg_healthy 1 2 3

# ctl reinit: refused on the primary; on a standby, its data directory is removed and cloned
# again (a file planted in it is gone), and it streams again.
P=$(t_pg_primary 1); Pi=${P#node}; Si=$(( Pi % 3 + 1 ))
ctl reinit "$P" >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
t_check "ctl reinit of the primary is refused ($(cat "$T_DIR/out"))" grep -q "this member is the primary" "$T_DIR/out"
echo planted >"$T_DIR/node$Si/pgdata/raftpg-test-marker"
ctl reinit "node$Si" >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
t_check "ctl reinit node$Si ($(tr '\n' ';' <"$T_DIR/out"))" t_eq "$rc" 0
t_check "node$Si's data directory was made anew" test ! -e "$T_DIR/node$Si/pgdata/raftpg-test-marker"
# The line comes when the clone's start completes, which may be just after ctl saw it stream.
t_check "node$Si logged the reinit" t_wait 10 "node$Si's reinit line" grep -q "reinit: cloned from $P" "$T_DIR/node$Si.log"
t_wait 60 "healthy after the reinit" t_pg_healthy 1 2 3

touch "$T_DIR/stop"; wait "$WRITER"
N=$(t_pg_primary 1); Ni=${N#node}
t_check "no acknowledged write lost ($(wc -l <"$ACKED") acknowledged)" t_acked_all "$ACKED" "$Ni" t
sorted=$(printf '%s\n' "${pauses[@]}" | sort -n)
t_log "write pause per switchover (s): ${pauses[*]}; median $(sed -n "$(( (${#pauses[@]} + 1) / 2 ))p" <<<"$sorted"), max $(tail -n1 <<<"$sorted")"
for i in 1 2 3; do t_alive "$i" && t_kill "$i" TERM; done
t_done
