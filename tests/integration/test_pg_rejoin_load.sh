#!/usr/bin/env bash
# Rejoins of a database of some size (a 160 MB table) under numbered writes (t_writer):
# 1. kill -9 of the primary node: the old primary rejoins by pg_rewind, which does not copy the
#    table (untouched since the fork) again: what it copies is measured against the source's
#    pg_wal (PostgreSQL 15's pg_rewind copies every WAL segment there in full) and the table.
# 2. A re-clone of a standby (ctl reinit) while the writes go on: pg_basebackup runs with the
#    configured --max-rate (its command line in the process table), takes at least the time the
#    rate allows for what it copied, shows its progress on /status and in ctl list, finishes, and
#    the standby streams with every acknowledged row; none is lost on the primary either.
T_PG=1
source "$(dirname "$0")/lib.sh"
t_pick_ports
RATE_MB=32
T_MAX_RATE=${RATE_MB}M
for i in 1 2 3; do t_write_conf "$i" 3; t_start "$i"; done
ctl() { "$T_BIN" ctl --api "$(t_api_addr 1)" --api "$(t_api_addr 2)" --api "$(t_api_addr 3)" "$@"; }
t_wait 60 "a healthy cluster" t_pg_healthy 1 2 3
P=$(t_pg_primary 1); Pi=${P#node}
t_log "primary is $P"
t_psql "$Pi" -c "CREATE TABLE big AS SELECT g AS id, repeat('x', 500) AS pad FROM generate_series(1, 300000) g"
t_psql "$Pi" -c "CREATE TABLE w (id bigint PRIMARY KEY)"
# No later change to the table's pages (hint bits, the visibility map) in the WAL that pg_rewind
# reads back to the last common checkpoint: vacuumed now, autovacuum off for it, then a checkpoint.
t_psql "$Pi" -c "ALTER TABLE big SET (autovacuum_enabled = off)"
t_psql "$Pi" -c "VACUUM (ANALYZE) big"
t_psql "$Pi" -c "CHECKPOINT"
TABLE_MB=$(t_psql "$Pi" -c "SELECT pg_relation_size('big') / 1048576")
t_log "table big: $TABLE_MB MB"
t_check "the table is of some size (at least 150 MB)" test "$TABLE_MB" -ge 150
t_wait 60 "the standbys caught up with the load" t_pg_healthy 1 2 3

: >"$T_DIR/acked"
t_writer w 600 &
WPID=$!
stop_writer() { touch "$T_DIR/stop"; wait "$WPID" 2>/dev/null || true; }
trap 'stop_writer; t_cleanup' EXIT
acked() { wc -l <"$T_DIR/acked"; }
acked_after() { [ "$(acked)" -gt "$1" ]; }
t_wait 30 "writes acknowledged" acked_after 10
has_every_row() { t_writer_complete "$1" w; }

# 1. kill -9 of the primary node, then its rewind: the server first, then the agent (before its
# guard could stop the server cleanly), so that the directory's crash recovery writes WAL past the
# fork and pg_rewind has something to rewind.
pgpid=$(t_pg_pid "$Pi") || pgpid=""
[ -n "$pgpid" ] && kill -KILL "$pgpid"
t_kill "$Pi" KILL; t_kill_pg "$Pi"
O=1; [ "$O" = "$Pi" ] && O=2
np() { local p; p=$(t_pg_primary "$O"); [ -n "$p" ] && [ "$p" != "$P" ] && echo "$p"; }
t_wait 60 "a new primary" np
NP=$(np); NPi=${NP#node}
t_log "new primary is $NP"
t_wait 30 "a write acknowledged by $NP" acked_after "$(acked)"
WAL_MB=$(du -sm "$T_DIR/node$NPi/pgdata/pg_wal" | cut -f1)
SRC_MB=$(du -sm "$T_DIR/node$NPi/pgdata" | cut -f1)
log_from=$(( $(wc -l <"$T_DIR/node$Pi.log") + 1 ))
start_ms=$(t_now_ms)
t_start "$Pi"
t_wait 120 "a healthy cluster after the rejoin" t_pg_healthy 1 2 3
t_log "restart of the old primary to a healthy cluster: $(( $(t_now_ms) - start_ms )) ms"
tail -n +"$log_from" "$T_DIR/node$Pi.log" >"$T_DIR/rejoin.log"
t_check "the old primary rejoined by pg_rewind" grep -q "rewind: done, starting as a standby of $NP" "$T_DIR/rejoin.log"
t_check "it was not cloned again" t_absent 'clone: pg_basebackup|reinit:|moved aside' "$T_DIR/rejoin.log"
copied=$(grep -oE 'rewind: pg_rewind copied [0-9]+ MB \(the source directory is [0-9]+ MB\)' "$T_DIR/rejoin.log" | tail -n 1 || true)
t_check "it logged what pg_rewind copied ($copied)" test -n "$copied"
COPY_MB=$(sed -E 's/.*copied ([0-9]+) MB.*/\1/' <<<"$copied")
TOTAL_MB=$(sed -E 's/.*directory is ([0-9]+) MB.*/\1/' <<<"$copied")
t_log "pg_rewind copied ${COPY_MB:-?} MB of ${TOTAL_MB:-?} MB; before the restart the source's pg_wal was $WAL_MB MB of $SRC_MB MB, the table $TABLE_MB MB"
# Not the table: what is copied fits in the rest of the source directory (rounded to whole MB
# three times over: 3 MB of slack).
t_check "pg_rewind did not copy the table ($COPY_MB MB copied, $TOTAL_MB MB in all, table $TABLE_MB MB)" \
  test "${COPY_MB:-999999}" -le $(( ${TOTAL_MB:-0} - TABLE_MB + 3 ))
t_check "the rejoined node has every acknowledged row" t_poll 30 has_every_row "$Pi"

# 2. A re-clone of a standby under the writes.
S=""
for i in 1 2 3; do [ "$i" != "$NPi" ] && [ "$i" != "$Pi" ] && S=$i; done
[ -n "$S" ] || S=$Pi
: >"$T_DIR/clone.status"; : >"$T_DIR/clone.list"; : >"$T_DIR/clone.cmdline"
# Polls node $S's /status, ctl list and the process table every 100 ms until it streams again
# after the clone was seen (bounded).
watch_clone() {
  local deadline=$((SECONDS + 120)) j st seen="" pid
  while [ $SECONDS -lt $deadline ]; do
    j=$(curl -s -m 1 "http://$(t_api_addr "$S")/status" | jq -c '.postgresql.rejoin' 2>/dev/null || true)
    st=$(jq -r .stage <<<"$j" 2>/dev/null || true)
    if [ "$st" = clone ]; then
      seen=1
      echo "$(t_now_ms) $(acked) $j" >>"$T_DIR/clone.status"
      "$T_BIN" ctl --api "$(t_api_addr "$NPi")" --timeout 500 list 2>/dev/null | grep "rejoining" >>"$T_DIR/clone.list" || true
      for pid in $(pgrep -x pg_basebackup || true); do
        if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "-D $T_DIR/node$S/pgdata "; then
          tr '\0' ' ' <"/proc/$pid/cmdline" >>"$T_DIR/clone.cmdline" 2>/dev/null || true
          echo >>"$T_DIR/clone.cmdline"
        fi
      done
    fi
    [ -n "$seen" ] && [ "$st" = streaming ] && return 0
    sleep 0.1
  done
}
watch_clone &
WATCH=$!
before=$(acked)
ctl reinit "node$S" >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
t_check "ctl reinit node$S ($(tr '\n' ';' <"$T_DIR/out"))" t_eq "$rc" 0
wait "$WATCH" || true
t_wait 120 "a healthy cluster after the re-clone" t_pg_healthy 1 2 3
# Logged when the clone's start completes, which can come just after the cluster looks healthy.
t_check "node$S logged the re-clone" t_wait 10 "node$S's re-clone line" grep -q "reinit: cloned from $NP" "$T_DIR/node$S.log"
t_check "pg_basebackup ran with --max-rate=${RATE_MB}M (the process table: $(head -n 1 "$T_DIR/clone.cmdline" | cut -c1-200))" \
  grep -q -- "--max-rate=${RATE_MB}M" "$T_DIR/clone.cmdline"
# Progress: several reports part way, growing; ctl list on the primary showed it too.
reports=$(jq -r 'select(.stage == "clone" and .running and (.total_kb // 0) > 0) | "\(.done_kb)/\(.total_kb)"' \
            < <(cut -d' ' -f3- "$T_DIR/clone.status") | uniq)
t_log "re-clone progress seen: $(tr '\n' ' ' <<<"$reports")"
partial() { grep -cE '^[0-9]+/[0-9]+$' <<<"$reports" | awk '{exit !($1 >= 3)}'; }
t_check "/status showed at least three progress reports" partial
growing() { awk -F/ 'NF == 2 {if ($1 + 0 < last) exit 1; last = $1 + 0}' <<<"$reports"; }
t_check "the reported kB copied never went back" growing
t_check "ctl list on the primary showed the progress" \
  grep -qE "^node$S: rejoining: clone [0-9]+/[0-9]+ kB \([0-9]+%\)" "$T_DIR/clone.list"
# Throttled: pg_basebackup's total (kB) at RATE_MB MB/s takes at least total/rate; the clone
# stage lasted from its first to its last report seen, which is shorter than the clone itself.
total_kb=$(tail -n 1 <<<"$reports" | cut -d/ -f2)
first=$(head -n 1 "$T_DIR/clone.status" | cut -d' ' -f1)
last=$(tail -n 1 "$T_DIR/clone.status" | cut -d' ' -f1)
floor_ms=$(( ${total_kb:-0} * 1000 / (RATE_MB * 1024) ))
t_log "re-clone: ${total_kb:-?} kB; clone stage seen for $((last - first)) ms; at $RATE_MB MB/s at least $floor_ms ms"
t_check "the clone took at least what the rate allows, less one report interval ($((last - first)) ms for ${total_kb:-?} kB)" \
  test $((last - first)) -ge $((floor_ms - 1500))
# Acknowledged while the clone stage lasted (the writer's count at its first and last report seen).
during=$(( $(tail -n 1 "$T_DIR/clone.status" | cut -d' ' -f2) - $(head -n 1 "$T_DIR/clone.status" | cut -d' ' -f2) ))
t_check "writes were acknowledged while the clone ran ($during; $(( $(acked) - before )) from the reinit to its end)" \
  test "$during" -ge 5
stop_writer
t_check "the primary has every acknowledged row ($(acked))" t_poll 30 has_every_row "$NPi"
t_check "the re-cloned standby has every acknowledged row" t_poll 30 has_every_row "$S"
t_check "the rejoined old primary has every acknowledged row" t_poll 30 has_every_row "$Pi"
for i in 1 2 3; do t_alive "$i" && t_kill "$i" TERM; done
t_done
