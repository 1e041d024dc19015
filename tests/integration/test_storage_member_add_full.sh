#!/usr/bin/env bash
# Storage faults (issue 18): `member add` while the Raft leader's directory is full and its log
# writes fail (the unwritten parts of its open segments punched out, the tmpfs filled). libraft
# 0.15 installs a new configuration before writing it and frees it again when that write is
# refused at once (a use after free); the agent makes no configuration change while its storage
# fails, but a change can start before the failure is seen. Whatever raft_uv does here, no agent
# may crash (ASan build included): the command either is carried out by a leader that can write
# or fails with a message, and once space is freed the cluster agrees on its members. What the
# full leader's raft_uv did with the writes is shown from its log (measured: the change's entry
# went into space its open segment had preallocated, and the leader stepped aside at its next
# probe; nothing was refused at once). Agents without PostgreSQL; the tmpfs mounts are made here
# and unmounted at the end (root only).
source "$(dirname "$0")/lib.sh"
[ "$(id -u)" -eq 0 ] || { echo "FAIL: needs root (tmpfs mounts)"; exit 1; }
t_pick_ports

MOUNTS=()
cleanup_all() {
  local rc=$? n m
  for n in "${!T_PIDS[@]}"; do kill -KILL "${T_PIDS[$n]}" 2>/dev/null || true; done
  for n in "${!T_PIDS[@]}"; do wait "${T_PIDS[$n]}" 2>/dev/null || true; done
  for m in "${MOUNTS[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
  [ "$rc" -eq 0 ] || T_FAILED=1
  t_cleanup
}
trap cleanup_all EXIT
for i in 1 2 3; do
  mkdir -p "$T_DIR/node$i/raft"; chown postgres:postgres "$T_DIR/node$i"
  mount -t tmpfs -o "size=32m,mode=0700,uid=$(id -u postgres),gid=$(id -g postgres)" tmpfs \
    "$T_DIR/node$i/raft"
  MOUNTS+=("$T_DIR/node$i/raft")
done
for i in 1 2 3; do t_write_conf "$i" 3; t_start "$i"; done
leader() { t_jq 1 '.raft.leader // empty'; }
ready() { local l; l=$(leader); [ -n "$l" ] && [ "$(t_jq "${l#node}" '.members | length')" = 3 ]; }
t_wait 30 "a leader with the member list recorded" ready
L=$(leader); Li=${L#node}
D="$T_DIR/$L/raft"

t_log "$L's raft directory: unwritten segment space punched out, file system filled"
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

# At once, then while the leader's storage fails: each add a new member (never started).
answers="$T_DIR/answers"
: >"$answers"
for n in 4 5 6 7 8; do
  "$T_BIN" ctl --api "$(t_api_addr "$Li")" --timeout 3000 member add "node$n" \
    --raft "127.0.0.1:$((T_BASE + 40 + n))" --api "127.0.0.1:$((T_BASE + 50 + n))" --no-wait \
    >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
  echo "node$n rc=$rc $(tr '\n' ' ' <"$T_DIR/out")" >>"$answers"
  sleep 0.3
done
sed 's/^/  /' "$answers"
t_check "every failed add says why" \
  bash -c "! grep -E ' rc=[^0]' '$answers' | grep -qE 'rc=[0-9]+ *$'"
grep -E "raft storage cannot persist|raft log write|membership change|leader steps aside|leaving the raft group" \
  "$T_DIR/$L.log" | sed 's/^/  /' || true
t_log "$L: membership changes started after the fill: $(grep -c 'membership change started' "$T_DIR/$L.log" || true), log writes refused at once: $(grep -c 'raft log write refused' "$T_DIR/$L.log" || true), failed later: $(grep -c 'raft log write failed' "$T_DIR/$L.log" || true)"

rm -f "$D/fill"
t_log "space freed"
for i in 1 2 3; do
  if ! t_alive "$i"; then
    t_check "node$i ended only by leaving the raft group" grep -q "leaving the raft group" "$T_DIR/node$i.log"
    unset "T_PIDS[$i]"
    t_start "$i"
  fi
done
t_check "no sanitizer report" \
  t_eq "$(cat "$T_DIR"/node*.log | grep -cE 'AddressSanitizer|runtime error|double free' || true)" 0
members_of() { t_jq "$1" '[.members[].name] | sort | join(",")'; }
agree() {
  local a; a=$(members_of 1)
  [ -n "$a" ] && [ "$a" = "$(members_of 2)" ] && [ "$a" = "$(members_of 3)" ] && [ -n "$(leader)" ]
}
t_wait 30 "all members agreeing on the member list under a leader" agree
t_log "members: $(members_of 1)"
added=$(grep -c ' rc=0 ' "$answers" || true)
t_check "every add answered done is in the member list" \
  t_eq "$(grep ' rc=0 ' "$answers" | cut -d' ' -f1 | while read -r m; do members_of 1 | tr ',' '\n' | grep -qx "$m" || echo "$m"; done)" ""
t_log "adds answered done: $added of 5"
for i in 1 2 3; do t_alive "$i" && t_kill "$i" TERM; done
t_done
