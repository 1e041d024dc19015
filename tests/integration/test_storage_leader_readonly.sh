#!/usr/bin/env bash
# Storage faults (issue 18): the Raft leader's file system goes read-only (ext4 with
# errors=remount-ro on a loop device, an error triggered through sysfs: every write fails with
# EROFS, also through descriptors opened before, so the agent cannot record anything in the
# directory). The leader steps aside or leaves the group; the others elect within a bound. The
# file system is then checked and mounted writable again, and the agent started on it: its start
# must find that its last run ended with a storage failure it could not record, and either refuse
# the directory naming it and the remedy, or check it and run with a log that agrees with the
# others. Raft only. The image, loop device and mount are made here and removed at the end.
source "$(dirname "$0")/lib.sh"
[ "$(id -u)" -eq 0 ] || { echo "FAIL: needs root (loop mount)"; exit 1; }
BOUND_S=${STORAGE_BOUND_S:-15}
t_pick_ports

D="$T_DIR/node1/raft"
IMG="$T_DIR/raft1.img"
MOUNTED=0
CPIDS=()
cleanup_all() {
  local rc=$? n c
  touch "$T_DIR/churn.stop"
  for c in "${CPIDS[@]}"; do wait "$c" 2>/dev/null || true; done
  for n in "${!T_PIDS[@]}"; do kill -KILL "${T_PIDS[$n]}" 2>/dev/null || true; done
  for n in "${!T_PIDS[@]}"; do wait "${T_PIDS[$n]}" 2>/dev/null || true; done
  [ "$MOUNTED" = 0 ] || umount "$D" 2>/dev/null || umount -l "$D" 2>/dev/null || true
  [ "$rc" -eq 0 ] || T_FAILED=1
  t_cleanup
}
trap cleanup_all EXIT

for i in 1 2 3; do mkdir -p "$T_DIR/node$i"; chown postgres:postgres "$T_DIR/node$i"; done
mkdir -p "$D"
truncate -s 64M "$IMG"
mkfs.ext4 -q -F -E "root_owner=$(id -u postgres):$(id -g postgres)" "$IMG"
# e2fsck makes lost+found again: no Raft state, removed.
mount_raft() { mount -o loop,errors=remount-ro "$IMG" "$D"; MOUNTED=1; chmod 700 "$D"; rmdir "$D/lost+found" 2>/dev/null || true; }
mount_raft
DEV=$(basename "$(findmnt -no SOURCE "$D")")
t_check "the raft directory is ext4 on $DEV with an error trigger" test -w "/sys/fs/ext4/$DEV/trigger_fs_error"

# node1 is to lead: the others' election time-out is four times its own.
t_write_conf 1 3
for i in 2 3; do T_ELECTION_TIMEOUT=2000 t_write_conf "$i" 3; done
t_start 1; t_start 2; t_start 3
leads1() { [ "$(t_jq 2 '.raft.leader // empty')" = node1 ]; }
t_wait 30 "node1 leading" leads1
t_check "node1 reserved the record of a pending failure" \
  test "$(stat -c %s "$D/raftpg.storage-pending" 2>/dev/null)" = 65536

# Raft entries through whichever member leads.
churn() {
  local deadline=$((SECONDS + 120)) i l=1 n
  while [ $SECONDS -lt $deadline ] && [ ! -f "$T_DIR/churn.stop" ]; do
    for i in 1 2 3; do
      [ "$(curl -s -m 1 "http://$(t_api_addr "$i")/status" | jq -r .raft_role 2>/dev/null)" = leader ] && l=$i
    done
    for n in $(seq 1 30); do
      t_api "$l" PATCH /config '{"synchronous_node_count": 1}' >/dev/null || true
    done
  done
}
for c in 1 2; do churn & CPIDS+=($!); done
sleep 2

SIDE="$D.storage-pending"
t_check "node1 reserved the record beside its directory too" \
  test "$(stat -c %s "$SIDE" 2>/dev/null)" = 65536
t_log "node1's raft file system goes read-only (ext4 error, errors=remount-ro)"
t0=$(t_now_ms)
echo 1 >"/sys/fs/ext4/$DEV/trigger_fs_error"
t_check "the file system is read-only" t_contains "$(findmnt -no OPTIONS "$D")" emergency_ro
other_leads() { local l; l=$(t_jq 2 '.raft.leader // empty'); [ -n "$l" ] && [ "$l" != node1 ]; }
t_wait "$BOUND_S" "a new leader among node2 and node3" other_leads
t1=$(t_now_ms)
t_log "new leader $(t_jq 2 '.raft.leader') $((t1 - t0)) ms after the file system went read-only"
t_check "node1 logged the failed write with its directory" \
  grep -qE "raft storage cannot persist: .*dir=$D" "$T_DIR/node1.log"
t_check "node1 could not record it in the directory (read-only)" \
  grep -qE "recording this failure in the directory: .*errno=30" "$T_DIR/node1.log"
t_check "node1 recorded it beside the directory" \
  grep -qF "recorded in $SIDE that a write failed" "$T_DIR/node1.log"
t_check "the record is in that file" grep -qa "^raftpg storage-pending 2 id=1 acked=" "$SIDE"
t_check "the directory holds no record (it took no write)" \
  test -z "$(tr -d '\0' <"$D/raftpg.storage-pending")"
# It hands leadership over; its Raft cannot persist the next term either and stops taking
# part (libraft makes it unavailable) while its agent runs on, showing the storage failing, or
# leaves the group. The operator then stops it to repair the file system.
sleep 2
touch "$T_DIR/churn.stop"; for c in "${CPIDS[@]}"; do wait "$c" 2>/dev/null || true; done
CPIDS=()
if t_alive 1; then
  node1_failing() { [ "$(t_jq 2 '.members[] | select(.name == "node1") | .raft_storage')" = failing ]; }
  t_wait 10 "ctl list showing node1's storage failing" node1_failing
  t_log "node1's agent runs on, its storage failing: stopped (SIGTERM) for the repair"
  t_kill 1 TERM
else
  rc1=0; wait "${T_PIDS[1]}" 2>/dev/null || rc1=$?
  unset "T_PIDS[1]"
  t_log "node1 ended with status $rc1: $(grep -oE "leaving the raft group[^(]*" "$T_DIR/node1.log" | head -1)"
  t_check "node1 exited, not killed by a signal (status $rc1)" test "$rc1" -le 128
fi

t_log "file system checked and mounted writable again; node1 started on it"
umount "$D"; MOUNTED=0
# The loop device goes once the kernel lets go of the file system (in-flight I/O of the dead
# agent included); mounting before would reuse its read-only superblock.
n=0; while losetup -j "$IMG" | grep -q . && [ $n -lt 300 ]; do sleep 0.1; n=$((n + 1)); done
t_check "the loop device is released" bash -c "! losetup -j '$IMG' | grep -q ."
# e2fsck: 0 clean, 1 errors corrected; more is a failure of the test's own setup.
fsck_rc=0; e2fsck -fy "$IMG" >"$T_DIR/e2fsck.out" 2>&1 || fsck_rc=$?
t_check "e2fsck repaired the file system (status $fsck_rc)" test "$fsck_rc" -le 1
mount_raft
t_check "the file system is writable again" bash -c "findmnt -no OPTIONS '$D' | grep -q '^rw'"
ls "$D" | tr '\n' ' ' | sed 's/^/  directory: /'; echo
t_start 1
checked() { grep -qE "raft directory checked against the storage failure its previous run recorded|not the log its previous run held" "$T_DIR/node1.log"; }
t_wait 20 "node1's start checking its directory against the record beside it" checked
t_check "the start said where the record came from" \
  grep -qF "the previous run recorded its pending failure beside the directory ($SIDE)" "$T_DIR/node1.log"
if grep -q "raft directory checked against the storage failure its previous run recorded" "$T_DIR/node1.log"; then
  # The file system took no write after the failed one: the directory holds the stored prefix.
  t_log "$(grep -o 'raft directory checked against.*' "$T_DIR/node1.log" | head -1)"
  t_check "node1 runs" t_alive 1
  cleared() { [ -z "$(tr -d '\0' <"$SIDE")" ]; }
  t_wait 10 "the record beside the directory cleared" cleared
  t_check "the record beside the directory is cleared" cleared
  follows() { local l; l=$(t_jq 1 'select(.raft.state_known) | .raft.leader // empty'); [ -n "$l" ] && [ "$l" != node1 ]; }
  t_wait 20 "node1 following the new leader" follows
  for n in 1 2 3 4 5; do
    t_api "$(t_jq 2 '.raft.leader' | sed 's/node//')" PATCH /config '{"synchronous_node_count": 1}' >/dev/null || true
  done
  t_check_states 1 2 3
  # A record beside the directory written by another server (a directory moved aside since and
  # started afresh under a new id) must not be applied to this one: ignored and cleared.
  t_kill 1 TERM
  { printf 'raftpg storage-pending 2 id=99 acked=1000000 first=1000001 n=0 overflow=0\nplanted\n'
    head -c 65000 /dev/zero; } >"$SIDE"
  t_start 1
  ignored() { grep -q "records a failure of server id 99, not of this one" "$T_DIR/node1.log"; }
  t_wait 10 "node1 ignoring a record of another server beside its directory" ignored
  t_wait 10 "that record cleared" cleared
  t_check "node1 runs on its directory" t_alive 1
else
  # The directory lacked an acknowledged entry or held another at its index: refused.
  dead() { ! t_alive 1; }
  t_wait 10 "node1 refusing its directory" dead
  refusal=$(grep -E "not the log its previous run held" "$T_DIR/node1.log" | tail -1)
  t_check "the refusal names the directory and the remedy" \
    t_contains "$refusal" "move the directory aside, then remove and re-add the member"
  unset "T_PIDS[1]"
  t_check_states 2 3
fi
for i in 1 2 3; do t_alive "$i" && t_kill "$i" TERM; done
t_done
