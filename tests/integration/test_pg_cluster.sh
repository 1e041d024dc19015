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

# /metrics and /patroni against what PostgreSQL itself answers on each member. The agent observes
# its server every so often, and a loaded machine may move the primary meanwhile: each comparison
# takes the member's role from PostgreSQL and is retried until a scrape falls between two equal
# reads of PostgreSQL.
snap() { /usr/bin/python3 "$(dirname "$0")/metrics.py" "$(t_api_addr "$1")" itest "node$1" >"$T_DIR/metrics.$1"; }
mval() { awk -v m="$2" '$1 == m {print $2}' "$T_DIR/metrics.$1"; }
near() { awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a != "" && b != "" && d <= t) }'; }
q() { t_psql "$1" -c "$2" 2>/dev/null; }
# within SECONDS COMMAND...: COMMAND, tried every 0.2 s until it holds or SECONDS passed (the last
# attempt's output is shown).
within() {
  local end=$((SECONDS + $1)) out
  shift
  while :; do
    out=$("$@") && return 0
    [ $SECONDS -lt $end ] || { echo "$out"; return 1; }
    sleep 0.2
  done
}
VERSION=$("$T_BIN" --version | awk '{print $2}')
PADDED=$(awk -v v="$VERSION" 'BEGIN { split(v, p, "."); printf "%d.0", p[1] * 10000 + p[2] * 100 + p[3] }')
# sync_of I: "K N" of node I's synchronous_standby_names (ANY K (N names)), nothing if not so.
sync_of() { q "$1" 'SHOW synchronous_standby_names' | sed -nE 's/^ANY ([0-9]+) \((.*)\)$/\1 \2/p' | awk -F, '{ split($1, a, " "); print a[1], NF }'; }
pg_primary() { local i; for i in 1 2 3; do [ "$(q "$i" 'SELECT pg_is_in_recovery()')" = f ] && { echo "$i"; return 0; }; done; return 1; }
t_check "the primary runs a quorum commit ($(q "$Pi" 'SHOW synchronous_standby_names'))" test -n "$(sync_of "$Pi")"
# world I: node I's PostgreSQL as "name value" lines in metrics.py's form, for the metrics that
# mirror it (its role is PostgreSQL's; the synchronous set is the running primary's).
world() {
  local i=$1 sync rec
  rec=$(q "$i" 'SELECT pg_is_in_recovery()')
  sync=$(sync_of "$(pg_primary)")
  echo "role $rec"
  echo "patroni_version $PADDED"
  echo "patroni_postgres_running 1.0"
  echo "patroni_postgres_server_version $(q "$i" 'SHOW server_version_num').0"
  echo "patroni_standby_leader 0.0"
  echo "patroni_postgres_in_archive_recovery 0.0"
  echo "patroni_cluster_unlocked 0.0"
  echo "patroni_pending_restart $(q "$i" 'SELECT (count(*) > 0)::int FROM pg_settings WHERE pending_restart').0"
  echo "raftpg_sync_k ${sync%% *}.0"
  echo "raftpg_sync_voters ${sync##* }.0"
  echo "raftpg_sync_degraded 0.0"
  if [ "$rec" = f ]; then
    echo "patroni_primary 1.0"
    echo "patroni_postgres_timeline $(q "$i" "SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int").0"
    echo "patroni_xlog_location $(q "$i" "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')").0"
    echo "patroni_xlog_received_location 0.0"
    echo "patroni_xlog_replayed_location 0.0"
    echo "patroni_xlog_replayed_timestamp 0.0"
    echo "patroni_postgres_streaming 0.0"
  else
    echo "patroni_replica 1.0"
    echo "patroni_postgres_timeline $(q "$i" 'SELECT received_tli FROM pg_stat_wal_receiver').0"
    echo "patroni_xlog_location 0.0"
    echo "patroni_xlog_received_location $(q "$i" "SELECT pg_wal_lsn_diff(greatest(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()), '0/0')").0"
    echo "patroni_xlog_replayed_location $(q "$i" "SELECT pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0')").0"
    echo "patroni_postgres_streaming $(q "$i" "SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming'").0"
  fi
}
# mirrors I: every mirrored metric of node I equals PostgreSQL's answer, read just before and just
# after the scrape; the start and replay times agree to a millisecond.
mirrors() {
  local i=$1 w1 w2 got bad=0 name want
  w1=$(world "$i"); snap "$i" || return 1; w2=$(world "$i")
  [ "$w1" = "$w2" ] || { echo "    node$i's PostgreSQL changed between the reads"; return 1; }
  while read -r name want; do
    [ "$name" != role ] || continue
    got=$(mval "$i" "$name")
    [ "$got" = "$want" ] || { echo "    node$i $name: $got, PostgreSQL: $want"; bad=1; }
  done <<<"$w1"
  near "$(mval "$i" patroni_postmaster_start_time)" "$(q "$i" 'SELECT extract(epoch FROM pg_postmaster_start_time())')" 0.001 ||
    { echo "    node$i patroni_postmaster_start_time $(mval "$i" patroni_postmaster_start_time)"; bad=1; }
  if grep -qx "role t" <<<"$w1"; then
    near "$(mval "$i" patroni_xlog_replayed_timestamp)" "$(q "$i" 'SELECT extract(epoch FROM pg_last_xact_replay_timestamp())')" 0.001 ||
      { echo "    node$i patroni_xlog_replayed_timestamp $(mval "$i" patroni_xlog_replayed_timestamp)"; bad=1; }
  fi
  return $bad
}
for i in 1 2 3; do
  t_check "node$i's /metrics (role, xlog, timeline, server version, start time, streaming, sync) agree with its PostgreSQL" within 15 mirrors "$i"
done
# The Raft view: one term and one leader, which runs the primary and alone holds the lease (within
# its bound); each member's applied index within its commit index, within the leader's (scraped
# last); contact with the leader within the last seconds; then every follower applies what the
# leader had committed.
raft_agree() {
  local i now l="" terms="" c p
  now=$(date +%s)
  for i in 1 2 3; do
    snap "$i" || return 1
    terms+=" $(mval "$i" raftpg_raft_term)"
    [ "$(mval "$i" raftpg_raft_leader)" != 1.0 ] || l+="$i"
    near "$(mval "$i" patroni_dcs_last_seen)" "$now" 3 || { echo "    node$i patroni_dcs_last_seen $(mval "$i" patroni_dcs_last_seen) at $now"; return 1; }
    near "$(curl -s -m 3 "http://$(t_api_addr "$i")/patroni" | jq -r .dcs_last_seen)" "$now" 3 || { echo "    node$i /patroni dcs_last_seen"; return 1; }
  done
  [ ${#l} = 1 ] || { echo "    raft leaders: [$l]"; return 1; }
  p=$(pg_primary) && [ "$p" = "$l" ] || { echo "    raft leader node$l, PostgreSQL primary node$p"; return 1; }
  snap "$l" || return 1
  c=$(mval "$l" raftpg_raft_commit_index)
  for i in 1 2 3; do
    awk -v a="$(mval "$i" raftpg_raft_applied_index)" -v f="$(mval "$i" raftpg_raft_commit_index)" -v c="$c" \
      'BEGIN { exit !(a > 0 && a <= f && f <= c) }' || { echo "    node$i applied $(mval "$i" raftpg_raft_applied_index) commit $(mval "$i" raftpg_raft_commit_index), leader's $c"; return 1; }
    if [ "$i" = "$l" ]; then
      awk -v r="$(mval "$i" raftpg_lease_remaining_seconds)" 'BEGIN { exit !(r > 0 && r <= 10) }'
    else
      t_eq "$(mval "$i" raftpg_lease_remaining_seconds)" 0.0
    fi || { echo "    node$i raftpg_lease_remaining_seconds $(mval "$i" raftpg_lease_remaining_seconds)"; return 1; }
  done
  [ "$(tr ' ' '\n' <<<"$terms" | sort -u | grep -c .)" = 1 ] && awk -v t="${terms# }" 'BEGIN { exit !(t >= 1) }' ||
    { echo "    terms:$terms"; return 1; }
  echo "$l $c" >"$T_DIR/leader_commit"
}
t_check "raftpg_raft_term/commit/applied/leader and lease_remaining agree across members and with the primary, dcs_last_seen recent" within 15 raft_agree
applied_all() {
  local i l c
  read -r l c <"$T_DIR/leader_commit"
  for i in 1 2 3; do
    [ "$i" = "$l" ] && continue
    snap "$i" && awk -v a="$(mval "$i" raftpg_raft_applied_index)" -v c="$c" 'BEGIN { exit !(a >= c) }' ||
      { echo "    node$i applied $(mval "$i" raftpg_raft_applied_index) < $c"; return 1; }
  done
}
t_check "the followers apply what the leader had committed (raftpg_raft_applied_index)" within 5 applied_all
patroni_doc() { # patroni_doc I: node I's /patroni fields against the binary, its name and PostgreSQL
  local d
  d=$(curl -s -m 3 "http://$(t_api_addr "$1")/patroni")
  t_eq "$(jq -r '[.patroni.version, .patroni.name] | @tsv' <<<"$d")" "$(printf '%s\tnode%s' "$VERSION" "$1")" &&
    t_eq "$(jq -r .timeline <<<"$d")" "$(q "$1" "SELECT CASE WHEN pg_is_in_recovery() THEN (SELECT received_tli FROM pg_stat_wal_receiver) ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END")" &&
    t_eq "$(q "$1" "SELECT extract(epoch FROM '$(jq -r .postmaster_start_time <<<"$d")'::timestamptz) = extract(epoch FROM pg_postmaster_start_time())")" t
}
for i in 1 2 3; do t_check "node$i's /patroni: patroni.version, patroni.name, timeline, postmaster_start_time" within 5 patroni_doc "$i"; done
# raftpg_promotions_total{reason}: each member's count is what GET /history records for it.
promotions_match() { # promotions_match I
  local h want=""
  h=$(curl -s -m 3 "http://$(t_api_addr "$1")/history") || return 1
  snap "$1" || return 1
  for r in bootstrap failover switchover; do
    want+="$(jq --arg n "node$1" --arg r "$r" '[.[] | select(.[2] == $r and .[4] == $n)] | length' <<<"$h").0 "
  done
  t_eq "$(mval "$1" 'raftpg_promotions{reason=bootstrap}') $(mval "$1" 'raftpg_promotions{reason=failover}') $(mval "$1" 'raftpg_promotions{reason=switchover}') " "$want"
}
t_check "the first primary counts its bootstrap (raftpg_promotions_total, as /history)" \
  t_eq "$(snap "$Pi"; mval "$Pi" 'raftpg_promotions{reason=bootstrap}')" 1.0
for i in 1 2 3; do t_check "node$i's raftpg_promotions_total matches /history" within 5 promotions_match "$i"; done

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
promoted() { snap "$NPi" && t_eq "$(mval "$NPi" 'raftpg_promotions{reason=failover}') $(mval "$NPi" patroni_postgres_timeline)" "1.0 2.0"; }
t_check "the new primary counts its failover (raftpg_promotions_total) on timeline 2" within 10 promoted
t_check "node$NPi's raftpg_promotions_total matches /history" within 5 promotions_match "$NPi"
t_check "the new primary's /metrics agree with its PostgreSQL" within 15 mirrors "$NPi"

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
