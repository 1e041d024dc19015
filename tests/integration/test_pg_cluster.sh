#!/usr/bin/env bash
# Real PostgreSQL under three agents on 127.0.0.1: bootstrap and clones, replication of rows,
# kill -9 of the primary node (agent and PostgreSQL) -> a new primary that the other standby
# follows, the old node rejoining as a standby through pg_rewind, and a deleted standby data
# directory re-cloned, its progress (kB copied of the total) on /status and in ctl list.
T_PG=1
source "$(dirname "$0")/lib.sh"
t_pick_ports
# Clones throttled as configured (postgresql.basebackup.max-rate, Patroni's key): slow enough
# (a new cluster is some 23 MB) that pg_basebackup reports its progress more than once.
T_MAX_RATE=8M
for i in 1 2 3; do t_write_conf "$i" 3; t_start "$i"; done

t_wait 60 "a primary and two streaming standbys" t_pg_healthy 1 2 3
P=$(t_pg_primary 1)
t_log "primary is $P"
Pi=${P#node}
others=(); for i in 1 2 3; do [ "$i" = "$Pi" ] || others+=("$i"); done
S1=${others[0]} S2=${others[1]}

t_check "the primary is the raft leader" t_eq "$(t_jq 1 '.raft.leader')" "$P"
t_check "the standbys' clones ran with --max-rate" \
  grep -q "clone: pg_basebackup from $P .*--max-rate=8M" "$T_DIR/node$S1.log" "$T_DIR/node$S2.log"
# GET /metrics through Prometheus's own parser (python3-prometheus-client), Patroni's names.
metric_of() { /usr/bin/python3 "$(dirname "$0")/metrics.py" "$(t_api_addr "$1")" itest "node$1" |
                awk -v m="$2" '$1 == m {print $2}'; }
metrics_parse() {
  local i
  for i in 1 2 3; do
    /usr/bin/python3 "$(dirname "$0")/metrics.py" "$(t_api_addr "$i")" itest "node$i" >/dev/null || return 1
  done
}
t_check "GET /metrics parses on every member" metrics_parse
t_check "patroni_primary is 1 on the primary only" \
  t_eq "$(metric_of "$Pi" patroni_primary) $(metric_of "$S1" patroni_primary) $(metric_of "$S2" patroni_primary)" "1.0 0.0 0.0"
t_check "patroni_replica is 1 on the standbys" \
  t_eq "$(metric_of "$S1" patroni_replica) $(metric_of "$S2" patroni_replica)" "1.0 1.0"
t_check "the primary's WAL position is exported" test "$(metric_of "$Pi" patroni_xlog_location | cut -d. -f1)" -gt 0
# Each peer's least poll round trip on loopback: measured (a sample), well under ET/6, not slow.
peer_rtts() {
  /usr/bin/python3 "$(dirname "$0")/metrics.py" "$(t_api_addr "$Pi")" itest "node$Pi" |
    awk '$1 ~ /^raftpg_peer_rtt_seconds[{]peer=/ && $2 < 0.05 {n++}
         $1 ~ /^raftpg_peer_rtt_slow[{]peer=/ && $2 == 0 {f++}
         END {print n + 0, f + 0}'
}
t_check "the primary's /metrics has both peers' round trips, short and not slow" t_eq "$(peer_rtts)" "2 2"
# The lease renewals' submit-to-commit histogram: 12 bounds and +Inf in increasing order, counts
# cumulative, +Inf equal to _count; prints _count, or "bad: WHY".
lease_hist() {
  /usr/bin/python3 "$(dirname "$0")/metrics.py" "$(t_api_addr "$Pi")" itest "node$Pi" |
    awk '$1 ~ /^raftpg_lease_renewal_seconds_bucket[{]le=/ {
           le = $1; sub(/.*le=/, "", le); sub(/[}]$/, "", le)
           if (le == "+Inf") { inf = $2; ninf++ } else {
             if (n > 0 && le + 0 <= last_le) bad = bad " bound " le " not increasing"
             last_le = le + 0 }
           if (n > 0 && $2 + 0 < last_c) bad = bad " count at " le " below the one before"
           last_c = $2 + 0; n++ }
         $1 == "raftpg_lease_renewal_seconds_count" { cnt = $2; nc++ }
         $1 == "raftpg_lease_renewal_seconds_sum" { ns++ }
         END { if (n != 13 || ninf != 1 || nc != 1 || ns != 1) bad = bad " samples " n "/" ninf "/" nc "/" ns
               if (inf != cnt) bad = bad " +Inf " inf " != _count " cnt
               if (bad != "") print "bad:" bad; else print int(cnt) }'
}
h1=$(lease_hist)
t_check "the primary's lease renewal histogram is well formed and counts renewals ($h1)" \
  test "${h1#bad}" = "$h1" -a "${h1:-0}" -gt 0
sleep 2
h2=$(lease_hist)
t_check "its _count grows as the lease is renewed ($h1 -> $h2)" test "${h2#bad}" = "$h2" -a "${h2:-0}" -gt "${h1:-0}"
t_check "a healthy member is not candidate" t_eq "$(metric_of "$S1" raftpg_raft_candidate_seconds)" "0.0"
t_check "free space of the data directory is exported" \
  test "$(metric_of "$S1" raftpg_data_dir_free_bytes | cut -d. -f1)" -gt 0
t_check "the cluster records the system identifier" \
  t_eq "$(t_jq 1 '.system_id')" "$(t_psql "$Pi" -c 'SELECT system_identifier FROM pg_control_system()')"
t_check "data checksums are on (pg_rewind needs them)" t_eq "$(t_psql "$Pi" -c 'SHOW data_checksums')" on
t_check "the standbys stream from the primary" \
  t_eq "$(t_psql "$Pi" -c "SELECT string_agg(application_name || ':' || state, ',' ORDER BY application_name) FROM pg_stat_replication")" \
  "node$S1:streaming,node$S2:streaming"
t_check "each standby uses its replication slot" \
  t_eq "$(t_psql "$Pi" -c "SELECT count(*) FROM pg_replication_slots WHERE active")" 2
t_check "ctl list shows postgresql host, role, state and timeline" \
  bash -c "'$T_BIN' ctl --api $(t_api_addr 1) list | grep -E '\| $P +\| [0-9]+ +\| 127.0.0.1:$(t_pg_port "$Pi") +\| leader +\| running +\| 1 '"

t_psql "$Pi" -c "CREATE TABLE t (id int PRIMARY KEY)" -c "INSERT INTO t SELECT generate_series(1, 1000)"
rows_on() { [ "$(t_psql "$1" -c 'SELECT count(*) FROM t' 2>/dev/null)" = "$2" ]; }
t_wait 20 "rows on node$S1" rows_on "$S1" 1000
t_wait 20 "rows on node$S2" rows_on "$S2" 1000
t_check "rows written on the primary reach both standbys" rows_on "$S2" 1000
t_check "a standby refuses writes (SQLSTATE 25006, read-only transaction)" \
  t_psql_refused "$S1" 25006 'INSERT INTO t VALUES (0)'

# Node loss: the agent and PostgreSQL of the primary die together.
t_log "killing node$Pi (agent and postgresql)"
t_kill "$Pi" KILL
t_kill_pg "$Pi"
new_primary() {
  local p
  p=$(t_pg_primary "$S1")
  [ -n "$p" ] && [ "$p" != "$P" ] && echo "$p"
}
t_wait 30 "a new primary" new_primary
NP=$(new_primary); NPi=${NP#node}
t_log "new primary is $NP"
t_check "the new primary accepts writes" t_psql "$NPi" -c "INSERT INTO t SELECT generate_series(1001, 2000)"
t_check "no row written before the kill is missing" rows_on "$NPi" 2000
OS=$S1; [ "$OS" = "$NPi" ] && OS=$S2
following() { [ "$(t_jq "$1" --arg n "node$2" '.members[] | select(.name == $n) | .state')" = streaming ] && rows_on "$2" "$3"; }
t_wait 30 "node$OS follows the new primary" following "$NPi" "$OS" 2000
t_check "the other standby streams from the new primary" \
  t_eq "$(t_psql "$NPi" -c "SELECT application_name FROM pg_stat_replication")" "node$OS"
t_check "the new timeline is recorded" t_eq "$(t_jq "$NPi" '.primary.timeline')" 2

# The old primary returns: it must come back as a standby, through pg_rewind.
t_start "$Pi"
t_wait 60 "node$Pi rejoins as a streaming standby" following "$NPi" "$Pi" 2000
t_check "the old primary ran pg_rewind" grep -q "rewind: pg_rewind from $NP" "$T_DIR/node$Pi.log"
t_check "the old primary is in recovery" t_eq "$(t_psql "$Pi" -c 'SELECT pg_is_in_recovery()')" t
t_psql "$NPi" -c "INSERT INTO t SELECT generate_series(2001, 3000)"
t_wait 20 "new rows on the rejoined node" rows_on "$Pi" 3000
t_check "the rejoined node receives new rows" rows_on "$Pi" 3000

# A standby loses its data directory: it clones itself again.
t_log "deleting the data directory of node$OS"
# The agent is paused meanwhile, so that it sees the directory gone, not a crashed server it
# would first try to rewind (which is also handled, but is not what this step is about).
kill -STOP "${T_PIDS[$OS]}"
t_kill_pg "$OS"
mv "$T_DIR/node$OS/pgdata" "$T_DIR/node$OS/pgdata.gone"
rm -rf "$T_DIR/node$OS/pgdata.gone"
# While it clones, its /status and ctl list show the progress (polled every 100 ms, bounded).
# It ends at streaming once the clone was seen (the previous rejoin's "streaming" shows until the
# agent notices the directory is gone).
watch_clone() {
  local deadline=$((SECONDS + 60)) j st seen=""
  while [ $SECONDS -lt $deadline ]; do
    j=$(curl -s -m 1 "http://$(t_api_addr "$OS")/status" | jq -c '.postgresql.rejoin' 2>/dev/null || true)
    st=$(jq -r .stage <<<"$j" 2>/dev/null || true)
    [ -n "$seen" ] && [ -n "$j" ] && echo "$j" >>"$T_DIR/clone.status"
    if [ "$st" = clone ]; then
      [ -n "$seen" ] || echo "$j" >>"$T_DIR/clone.status"
      seen=1
      "$T_BIN" ctl --api "$(t_api_addr "$OS")" --timeout 500 list 2>/dev/null | grep "rejoining" >>"$T_DIR/clone.list" || true
      # The primary's view: what the member reported on its last poll (every 250 ms).
      "$T_BIN" ctl --api "$(t_api_addr "$NPi")" --timeout 500 list 2>/dev/null | grep "rejoining" >>"$T_DIR/clone.list.primary" || true
    fi
    [ -n "$seen" ] && [ "$st" = streaming ] && return 0
    sleep 0.1
  done
}
: >"$T_DIR/clone.status"; : >"$T_DIR/clone.list"; : >"$T_DIR/clone.list.primary"
# Stopped for at least 300 ms: the agent's loop-stall detector counts it on /metrics.
sleep 0.3
kill -CONT "${T_PIDS[$OS]}"
watch_clone &
WATCH=$!
t_wait 60 "node$OS re-cloned and streaming" following "$NPi" "$OS" 3000
wait "$WATCH" || true
# A report with some but not all copied: pg_basebackup --progress read while it runs.
partial() { jq -s -e 'any(.[]; .stage == "clone" and .running and (.total_kb // 0) > 0 and .done_kb > 0 and .done_kb < .total_kb)' "$T_DIR/clone.status" >/dev/null; }
t_check "/status showed the re-clone's progress part way (kB copied of the total)" partial
t_check "ctl list showed it too" grep -qE "^node$OS: rejoining: clone [0-9]+/[0-9]+ kB \([0-9]+%\)" "$T_DIR/clone.list"
t_check "ctl list on the primary showed it as node$OS reported it" \
  grep -qE "^node$OS: rejoining: clone [0-9]+/[0-9]+ kB \([0-9]+%\)" "$T_DIR/clone.list.primary"
t_check "the re-clone's stages ended in streaming" t_eq "$(tail -n 1 "$T_DIR/clone.status" | jq -r .stage)" streaming
t_log "re-clone progress seen: $(jq -r 'select(.stage == "clone") | "\(.done_kb)/\(.total_kb)"' "$T_DIR/clone.status" | uniq | tr '\n' ' ')"
t_check "the re-cloned standby has every row" rows_on "$OS" 3000
stall_counted() {
  local m
  m=$(/usr/bin/python3 "$(dirname "$0")/metrics.py" "$(t_api_addr "$OS")" itest "node$OS" | grep loop_stall)
  awk '$1 == "raftpg_loop_stall_max_seconds" && $2 >= 0.3 {m=1}
       $1 ~ /^raftpg_loop_stalls[{]phase=/ {n += $2}
       $1 ~ /^raftpg_loop_stall_seconds[{]cause=/ {s += $2}
       END {exit !(m && n >= 1 && s >= 0.3)}' <<<"$m" && return 0
  echo "$m" | sed 's/^/    /'; grep "loop stall" "$T_DIR/node$OS.log" | tail -n 3; return 1
}
t_check "node$OS's /metrics counts the stop as a loop stall of 0.3 s or more" stall_counted
t_check "the re-clone went through pg_basebackup" \
  t_eq "$(grep -c "clone: pg_basebackup from $NP" "$T_DIR/node$OS.log")" 1

no_server() {
  if t_pg_pid "$1" >/dev/null; then echo "  node$1's postmaster.pid names a live process"; return 1; fi
  t_pg_port_free "$1"
}

# SIGTERM while the agent is starting its server again: the start is cut short and the agent
# still stops whatever it started before it exits.
n_starts=$(grep -c "start_standby" "$T_DIR/node$OS.log" || true)
t_kill_pg "$OS"
for _ in $(seq 1 400); do
  [ "$(grep -c "start_standby" "$T_DIR/node$OS.log" || true)" -gt "$n_starts" ] && break
  sleep 0.01
done
t_kill "$OS" TERM
t_check "an agent stopped during a start leaves no server behind" no_server "$OS"

for i in 1 2 3; do [ -z "${T_PIDS[$i]:-}" ] || t_kill "$i" TERM; done
# pgrep's status 1 is "none"; 2 or 3 would mean it could not look.
t_check "agents stop their postgresql on shutdown" t_status 1 pgrep -u postgres -f "postgres -D $T_DIR"
t_done
