#!/usr/bin/env bash
# Storage faults (issue 18): an agent killed between a failed Raft log write and the restart of
# Raft from its directory. A follower's tmpfs is full (the unwritten parts of its open segments
# punched out, so raft_uv's next write gets ENOSPC) while Raft entries flow; its write fence
# closes and records, over the file reserved at start, what the next start must check. The agent
# is killed while the directory is still full, space is freed, and the agent started again: it
# must check the directory against that record (an exact prefix of the log it held: accepted),
# catch up, acknowledge again, and clear the record. No PostgreSQL: Raft alone. The tmpfs is made
# here and unmounted at the end (root only).
source "$(dirname "$0")/lib.sh"
[ "$(id -u)" -eq 0 ] || { echo "FAIL: needs root (tmpfs mount)"; exit 1; }
t_pick_ports

MOUNTS=()
CPIDS=()
cleanup_all() {
  local rc=$? n m c
  touch "$T_DIR/churn.stop"
  for c in "${CPIDS[@]}"; do wait "$c" 2>/dev/null || true; done
  for n in "${!T_PIDS[@]}"; do kill -KILL "${T_PIDS[$n]}" 2>/dev/null || true; done
  for n in "${!T_PIDS[@]}"; do wait "${T_PIDS[$n]}" 2>/dev/null || true; done
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
follows() { local l; l=$(t_jq 3 'select(.raft.state_known) | .raft.leader // empty'); [ -n "$l" ] && [ "$l" != node3 ]; }
t_wait 30 "node3 following the leader" follows
t_check "node3 reserved the record of a pending failure" \
  test "$(stat -c %s "$D/raftpg.storage-pending" 2>/dev/null)" = 65536
t_check "... holding nothing" test -z "$(tr -d '\0' <"$D/raftpg.storage-pending")"

# Raft entries: the same setting committed again and again through the leader.
churn() {
  local deadline=$((SECONDS + 60)) i l=1 n
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
for c in 1 2 3; do churn & CPIDS+=($!); done
sleep 1

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
t_wait 40 "node3's log write failing (the write fence)" fenced
recorded() { grep -q "recorded in $D/raftpg.storage-pending that a write failed" "$T_DIR/node3.log"; }
t_wait 5 "node3 recording the pending failure" recorded
grep -E "raft log write|recorded in|recording this failure" "$T_DIR/node3.log" | sed 's/^/  /'
t_check "the record is in the file, on a full file system" \
  grep -qa "^raftpg storage-pending 2 id=3 acked=" "$D/raftpg.storage-pending"
t_check "node3 did not restart raft yet (its directory is still full)" \
  bash -c "! grep -q 'restarting raft from its directory' '$T_DIR/node3.log'"

t_log "node3's agent killed while its directory is full; space freed; agent started again"
t_kill 3 KILL
touch "$T_DIR/churn.stop"; for c in "${CPIDS[@]}"; do wait "$c" 2>/dev/null || true; done
CPIDS=()
rm -f "$D/fill"
t_check "no lost-entries record (the directory never took writes again in that run)" \
  test ! -e "$D/raftpg.storage-fault"
t_start 3
checked() { grep -qE "raft directory checked against the storage failure its previous run recorded|not the log its previous run held" "$T_DIR/node3.log"; }
t_wait 20 "node3's start checking its directory against the record" checked
grep -E "previous run" "$T_DIR/node3.log" | sed 's/^/  /'
t_check "the directory held the exact prefix of the log node3 had held" \
  grep -q "raft directory checked against the storage failure its previous run recorded" "$T_DIR/node3.log"
t_check "node3 runs" t_alive 3
cleared() { [ -z "$(tr -d '\0' <"$D/raftpg.storage-pending")" ]; }
t_wait 10 "the record cleared" cleared
t_check "the record is cleared" cleared

# node3 acknowledges again: without the other follower's agent, the leader still commits.
L=$(t_jq 1 '.raft.leader // empty'); Li=${L#node}
t_check "a leader among node1 and node2" test -n "$Li" -a "$Li" != 3
K=1; [ "$K" = "$Li" ] && K=2
t_kill "$K" KILL
c0=$(t_jq "$Li" '.raft.commit_index')
for n in 1 2 3 4 5 6 7 8 9 10; do
  curl -s -m 2 -o /dev/null -X PATCH -H 'Content-Type: application/json' \
    -d '{"synchronous_node_count": 1}' "http://$(t_api_addr "$Li")/config" || true
done
grows() { [ "$(t_jq "$Li" '.raft.commit_index')" -gt $((c0 + 5)) ]; }
t_wait 15 "the leader committing with node3 alone" grows
state_of() { curl -s "http://$(t_api_addr "$1")/status" | jq -r '"\(.state.applied_index) \(.state.checksum) \(.state.diverged)"'; }
same_index() { sa=$(state_of "$Li"); s3=$(state_of 3); [ "${sa%% *}" = "${s3%% *}" ] && [ "${sa%% *}" != 0 ]; }
sa=""; s3=""
t_wait 15 "node3 and the leader at the same applied index" same_index
t_log "states: $L [$sa] node3 [$s3]"
t_check "their state checksums equal" test "$sa" = "$s3"
for i in 1 2 3; do t_alive "$i" && t_kill "$i" TERM; done
t_done
