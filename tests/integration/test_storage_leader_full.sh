#!/usr/bin/env bash
# Storage faults (issue 18, item 1): the Raft leader's directory fills up under numbered writes.
# libraft 0.15 would keep it leader with a frozen commit index; the agent must hand leadership
# over, a new primary must accept writes within a bound, no acknowledged row may be lost, and
# the full node must say so once in its log, on /status and in `ctl list`.
# Each node's Raft directory is a tmpfs made here and unmounted at the end (root only).
T_PG=1
source "$(dirname "$0")/lib.sh"
[ "$(id -u)" -eq 0 ] || { echo "FAIL: needs root (tmpfs mounts)"; exit 1; }
BOUND_S=${STORAGE_BOUND_S:-30}
t_pick_ports

MOUNTS=()
mount_tmpfs() { # DIR SIZE
  mkdir -p "$1"
  mount -t tmpfs -o "size=$2,mode=0700,uid=$(id -u postgres),gid=$(id -g postgres)" tmpfs "$1"
  MOUNTS+=("$1")
}
for i in 1 2 3; do
  mkdir -p "$T_DIR/node$i"; chown postgres:postgres "$T_DIR/node$i"
  mount_tmpfs "$T_DIR/node$i/raft" 32m
done

WPID=
stop_writer() { [ -z "$WPID" ] || { touch "$T_DIR/stop"; wait "$WPID" 2>/dev/null || true; WPID=; }; }
cleanup_all() {
  local rc=$? n m
  stop_writer
  for n in "${!T_PIDS[@]}"; do kill -KILL "${T_PIDS[$n]}" 2>/dev/null || true; done
  for n in "${!T_PIDS[@]}"; do wait "${T_PIDS[$n]}" 2>/dev/null || true; done
  t_kill_all_pg
  for m in "${MOUNTS[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
  # t_cleanup shows the logs when the test failed; a set -e exit counts as one.
  [ "$rc" -eq 0 ] || T_FAILED=1
  t_cleanup
}
trap cleanup_all EXIT

for i in 1 2 3; do t_write_conf "$i" 3; t_start "$i"; done
t_wait 60 "a healthy cluster" t_pg_healthy 1 2 3
P=$(t_pg_primary 1); Pi=${P#node}
t_check "the leader chose a segment size that fits its 32 MiB directory" \
  grep -q "open_segment_size=2097152 bytes" "$T_DIR/$P.log"
t_psql "$Pi" -c "CREATE TABLE w (id bigint PRIMARY KEY)"

ACKED="$T_DIR/acked"
: >"$ACKED"
t_writer w 600 &
WPID=$!
acked_after() { [ "$(wc -l <"$ACKED")" -gt "$1" ]; }
t_wait 20 "writes acknowledged before the fault" acked_after 10

# Fill the leader's Raft directory: dd stops at ENOSPC.
t_log "filling $P's raft directory"
t0=$(date +%s%N)
dd if=/dev/zero of="$T_DIR/$P/raft/fill" bs=64k 2>/dev/null || true
O=1; [ "$O" = "$Pi" ] && O=2
np() { local p; p=$(t_pg_primary "$O"); [ -n "$p" ] && [ "$p" != "$P" ] && echo "$p"; }
t_wait "$BOUND_S" "a new primary after $P's raft directory filled" np
NP=$(np); NPi=${NP#node}
n0=$(wc -l <"$ACKED")
t_wait 30 "a write acknowledged by the new primary" acked_after "$n0"
t1=$(date +%s%N)
t_log "raft directory of $P full: new primary $NP accepting writes after $(( (t1 - t0) / 1000000 )) ms"
t_check "a new primary within ${BOUND_S}s" test $(( (t1 - t0) / 1000000000 )) -lt "$BOUND_S"

t_check "the full node logged the failure with its path and errno" \
  grep -qE "raft storage cannot persist: .*$T_DIR/$P/raft.*errno=28" "$T_DIR/$P.log"
t_check "... once" t_eq "$(grep -c 'raft storage cannot persist' "$T_DIR/$P.log")" 1
t_check "it handed leadership over" grep -q "leader steps aside" "$T_DIR/$P.log"
if t_alive "$Pi"; then
  t_check "its metric raftpg_raft_storage_failing is 1" \
    t_eq "$(t_metric "$Pi" raftpg_raft_storage_failing)" 1
  t_check "the new primary's raftpg_raft_storage_failing is 0" \
    t_eq "$(t_metric "$NPi" raftpg_raft_storage_failing)" 0
  # It cannot be elected and commits nothing: no traffic as primary, leader or replica; its
  # agent and server still run.
  t_api_codes <<EOF2
$Pi GET /primary 503 storage failing
$Pi GET /leader 503 storage failing
$Pi GET /replica 503 storage failing
$Pi GET /readiness 503 storage failing
$Pi GET /liveness 200 the agent runs
EOF2
  st=$(curl -s "http://$(t_api_addr "$Pi")/status")
  t_check "its /status says the storage fails" t_eq "$(jq -r '.raft_storage.ok' <<<"$st")" false
  t_check "ctl list shows it failing" \
    t_eq "$(t_jq "$NPi" ".members[] | select(.name == \"$P\") | .raft_storage")" failing
  t_check "ctl list says why" \
    t_contains "$("$T_BIN" ctl --api "$(t_api_addr "$NPi")" list)" "$P: raft storage failing:"
else
  t_check "the full node left with a clear message" grep -q "leaving the raft group" "$T_DIR/$P.log"
fi

sleep 1
stop_writer
t_check "no acknowledged row lost ($(wc -l <"$ACKED") acknowledged)" t_acked_all "$ACKED" "$NPi" w

# Space freed: the node persists again and says so.
rm -f "$T_DIR/$P/raft/fill"
if t_alive "$Pi"; then
  t_wait 20 "$P's storage recovered" grep -q "raft storage persists again" "$T_DIR/$P.log"
  storage_metric_0() { [ "$(t_metric "$Pi" raftpg_raft_storage_failing)" = 0 ]; }
  t_wait 10 "$P's raftpg_raft_storage_failing back to 0" storage_metric_0
fi
# Every member still running agrees on the replicated state (one that left the group is gone).
alive=()
for i in 1 2 3; do if t_alive "$i"; then alive+=("$i"); fi; done
t_check_states "${alive[@]}"
for i in 1 2 3; do t_alive "$i" && t_kill "$i" TERM; done
t_done
