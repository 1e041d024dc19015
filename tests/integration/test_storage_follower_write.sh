#!/usr/bin/env bash
# Storage faults (issue 18): a standby's Raft log write really fails (its tmpfs is full and the
# unwritten parts of its open segments are punched out, so raft_uv's next write into them gets
# ENOSPC), under numbered writes and a stream of Raft entries. libraft 0.15 would never write the
# failed entries again and the member would acknowledge nothing more for good; the agent must
# stop its log writes at once (the write fence), show the storage failing, and once space is
# freed restart Raft from its directory in the same process, check it and catch up. Then, with
# the other standby's agent killed, the leader must still commit: the restarted member
# acknowledges again. No acknowledged row lost, all state checksums equal. The tmpfs is made
# here and unmounted at the end (root only).
T_PG=1
source "$(dirname "$0")/lib.sh"
[ "$(id -u)" -eq 0 ] || { echo "FAIL: needs root (tmpfs mount)"; exit 1; }
t_pick_ports

MOUNTS=()
cleanup_all() {
  local rc=$? n m
  touch "$T_DIR/churn.stop"
  [ ! -f "$T_DIR/writer.pid" ] || { touch "$T_DIR/stop"; wait "$(cat "$T_DIR/writer.pid")" 2>/dev/null || true; }
  for n in "${!T_PIDS[@]}"; do kill -KILL "${T_PIDS[$n]}" 2>/dev/null || true; done
  for n in "${!T_PIDS[@]}"; do wait "${T_PIDS[$n]}" 2>/dev/null || true; done
  t_kill_all_pg
  for m in "${MOUNTS[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
  [ "$rc" -eq 0 ] || T_FAILED=1
  t_cleanup
}
trap cleanup_all EXIT

D="$T_DIR/node3/raft"
for i in 1 2 3; do mkdir -p "$T_DIR/node$i"; chown postgres:postgres "$T_DIR/node$i"; done
mkdir -p "$D"
mount -t tmpfs -o "size=32m,mode=0700,uid=$(id -u postgres),gid=$(id -g postgres)" tmpfs "$D"
MOUNTS+=("$D")

# node3 is to be a follower: its election time-out is four times the others'.
for i in 1 2; do t_write_conf "$i" 3; done
T_ELECTION_TIMEOUT=2000 t_write_conf 3 3
t_start 1; t_start 2; t_start 3
leader12() { local l; l=$(t_jq 1 '.raft.leader // empty'); [ -n "$l" ] && [ "$l" != node3 ]; }
t_wait 30 "a leader among node1 and node2" leader12
t_wait 60 "a healthy cluster" t_pg_healthy 1 2 3
P=$(t_pg_primary 1); Pi=${P#node}
t_check "node3 is not the leader" test "$P" != node3
t_psql "$Pi" -c "CREATE TABLE w (id bigint PRIMARY KEY)"

ACKED="$T_DIR/acked"
: >"$ACKED"
t_writer w 300 &
echo $! >"$T_DIR/writer.pid"
acked_after() { [ "$(wc -l <"$ACKED")" -gt "$1" ]; }
t_wait 20 "writes acknowledged" acked_after 10

# Raft entries: the same setting committed again and again through the leader.
churn() {
  local deadline=$((SECONDS + 120)) i l=1 n
  while [ $SECONDS -lt $deadline ] && [ ! -f "$T_DIR/churn.stop" ]; do
    for i in 1 2; do
      [ "$(curl -s -m 2 "http://$(t_api_addr "$i")/status" | jq -r .raft_role 2>/dev/null)" = leader ] && l=$i
    done
    for n in $(seq 1 50); do
      curl -s -m 2 -o /dev/null -X PATCH -H 'Content-Type: application/json' \
        -d '{"synchronous_node_count": 1}' "http://$(t_api_addr "$l")/config" || true
    done
  done
}
CPIDS=()
for c in 1 2 3 4; do churn & CPIDS+=($!); done

# The fault: every page raft_uv has not written yet is punched out of node3's open segments
# (from the block after the last written one of the segment in use, so that a write under way is
# left alone), then the file system is filled.
t_log "node3's raft directory: unwritten segment space punched out, file system filled"
(python3 - "$D" <<'EOF'
import os, sys
d = sys.argv[1]
for name in sorted(os.listdir(d)):
    if not name.startswith("open-"):
        continue
    path = os.path.join(d, name)
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        data = f.read()
    last = max((i for i in range(0, size, 4096) if any(data[i:i + 4096])), default=-4096)
    start = 0 if last < 0 else last + 8192
    if start < size:
        print(path, start, size - start)
EOF
) | while read -r f o l; do fallocate -p -o "$o" -l "$l" "$f"; done
dd if=/dev/zero of="$D/fill" bs=4k 2>/dev/null || true
fenced() { grep -q "writes nothing more to its log" "$T_DIR/node3.log"; }
t_wait 60 "node3's log write failing (the write fence)" fenced
grep -E "raft log write|raft storage cannot persist" "$T_DIR/node3.log" | sed 's/^/  /'
O=1; [ "$Pi" = 1 ] && O=2
failing() { [ "$(t_jq "$O" '.members[] | select(.name == "node3") | .raft_storage')" = failing ]; }
t_wait 15 "ctl list showing node3's storage failing" failing
sleep 2
t_log "space freed"
rm -f "$D/fill"
t0=$(date +%s%N)
reopened() { grep -qE "raft restarted from its directory after a failed write|not the log held" "$T_DIR/node3.log"; }
t_wait 20 "node3's raft restarted from its directory" reopened
t_check "the directory held the log node3 had in memory" \
  grep -q "raft restarted from its directory after a failed write" "$T_DIR/node3.log"
t_log "raft restarted $(( ($(date +%s%N) - t0) / 1000000 )) ms after the space was freed"
t_check "node3 still runs" t_alive 3
touch "$T_DIR/churn.stop"; for c in "${CPIDS[@]}"; do wait "$c" 2>/dev/null || true; done
ok_again() { [ "$(t_jq "$O" '.members[] | select(.name == "node3") | .raft_storage')" = ok ]; }
t_wait 20 "ctl list showing node3's storage ok" ok_again
t_wait 60 "a healthy cluster" t_pg_healthy 1 2 3
# The record goes at the first storage probe after the restart (one probe interval, 1 s), off the
# loop; the waits above can end before it.
record_gone() { test ! -e "$D/raftpg.storage-fault"; }
t_wait 10 "the lost-entries record removed" record_gone
t_check "the lost-entries record is gone" record_gone

# node3 acknowledges again: without the other standby's agent, the leader still commits.
P=$(t_pg_primary 1); Pi=${P#node}
K=1; while [ "$K" = "$Pi" ] || [ "$K" = 3 ]; do K=$((K + 1)); done
t_kill "$K" KILL
c0=$(t_jq "$Pi" '.raft.commit_index')
grows() { [ "$(t_jq "$Pi" '.raft.commit_index')" -gt $((c0 + 5)) ]; }
t_wait 15 "the leader committing with node3 alone" grows
n0=$(wc -l <"$ACKED")
t_wait 20 "a write acknowledged without node$K's agent" acked_after "$n0"

touch "$T_DIR/stop"; wait "$(cat "$T_DIR/writer.pid")" 2>/dev/null || true; rm -f "$T_DIR/writer.pid"
t_check "no acknowledged row lost ($(wc -l <"$ACKED") acknowledged)" t_acked_all "$ACKED" "$Pi" w

# The two running members at the same applied index have the same state checksum.
state_of() { curl -s "http://$(t_api_addr "$1")/status" | jq -r '"\(.state.applied_index) \(.state.checksum) \(.state.diverged)"'; }
same_index() { sa=$(state_of "$Pi"); s3=$(state_of 3); [ "${sa%% *}" = "${s3%% *}" ] && [ "${sa%% *}" != 0 ]; }
sa=""; s3=""
t_wait 30 "node3 and the leader at the same applied index" same_index
t_log "states: $P [$sa] node3 [$s3]"
t_check "their state checksums equal" test "$sa" = "$s3"
t_check "no member logged a divergence" \
  t_eq "$(cat "$T_DIR"/node*.log | grep -c 'replicated state diverged' || true)" 0
for i in 1 2 3; do t_alive "$i" && t_kill "$i" TERM; done
t_done
