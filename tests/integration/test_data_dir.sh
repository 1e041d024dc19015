#!/usr/bin/env bash
# A corrupt or foreign Raft data directory stops the agent with a clear message; it is never
# silently re-bootstrapped or repaired. A clean directory restarts fine afterwards. A lost one is
# refused too, until the member is removed and added again under a new id. After two members
# lost theirs, `raftpg recover` on the third makes its log a cluster of itself alone, and the
# other two come back under new ids.
source "$(dirname "$0")/lib.sh"
t_pick_ports
for i in 1 2 3; do t_write_conf "$i" 3; t_start "$i"; done
have_leader() { [ -n "$(t_jq "$1" 'select(.raft.state_known) | .raft.leader // empty')" ]; }
t_wait 20 "a leader with a known cluster state" have_leader 1
for i in 1 2 3; do t_kill "$i" TERM; done

D="$T_DIR/node1/raft"
cp -a "$D" "$T_DIR/backup"
restore() { rm -rf "$D"; cp -a "$T_DIR/backup" "$D"; }
digest() { (cd "$D" && find . -type f | sort | xargs md5sum); }

# expect_refusal DESCRIPTION MESSAGE: node1 must exit 1 within 10 s, log MESSAGE, and leave
# the directory exactly as it was.
expect_refusal() {
  local desc=$1 msg=$2 before rc
  before=$(digest)
  : >"$T_DIR/node1.log"
  t_start 1
  local n=0
  while t_alive 1 && [ $n -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
  if t_alive 1; then t_fail "$desc: agent still running"; t_kill 1 KILL; return; fi
  wait "${T_PIDS[1]}" && rc=0 || rc=$?
  unset "T_PIDS[1]"
  t_check "$desc: exit code 1" t_eq "$rc" 1
  t_check "$desc: says why" grep -qF -- "$msg" "$T_DIR/node1.log"
  t_check "$desc: directory untouched" t_eq "$(digest)" "$before"
}

restore; sed -i 's/^scope=itest$/scope=othercluster/' "$D/raftpg.identity"
expect_refusal "identity of another cluster" \
  'belongs to member "node1" of cluster "othercluster", not to member "node1" of cluster "itest"'

restore; rm "$D/raftpg.identity"
expect_refusal "raft files without identity" "is not empty but has no raftpg.identity"

restore; echo "garbage" >"$D/raftpg.identity"
expect_refusal "garbled identity" "not a raftpg identity file"

restore
seg=$(cd "$D" && ls | grep -E '^[0-9]{16}-[0-9]{16}$|^open-[0-9]+$' | head -n 1)
size=$(stat -c %s "$D/$seg")
t_check "a segment file exists to corrupt" test "$size" -gt 48
printf 'XXXXXXXX' | dd of="$D/$seg" bs=1 seek=40 conv=notrunc status=none
expect_refusal "corrupt log segment" "checksum mismatch"

restore; printf 'garbage!' | dd of="$D/metadata1" bs=1 seek=0 conv=notrunc status=none
expect_refusal "corrupt raft metadata" "metadata1"

restore
: >"$T_DIR/node1.log"
for i in 1 2 3; do t_start "$i"; done
t_wait 20 "the intact directory restarts and the cluster has a leader" have_leader 1
t_check "restarted without bootstrapping again" t_absent 'bootstrapped raft' "$T_DIR/node1.log"

# node1's Raft directory is lost while the cluster runs on. Its log held replicated entries (the
# cluster records that), so it may not come back under its id: it could have been one of the
# majority that committed an entry, and empty it would vote for a leader lacking it.
holds_state() { [ "$(t_jq 2 '.members[] | select(.name == "node1") | .raft_state')" = true ]; }
t_wait 20 "the cluster records that node1's log holds entries" holds_state
for i in 1 2 3; do t_kill "$i" TERM; done
rm -rf "$D"
: >"$T_DIR/node1.log"
# Only node3 runs, restarted from its directory: it knows no cluster state until a leader
# exists, and that is not "no cluster yet". node1 must wait, not bootstrap.
t_start 3
t_start 1
sleep 3
t_check "without the cluster state node1 waits instead of bootstrapping" t_alive 1
t_check "it bootstrapped nothing" \
  t_absent 'bootstrapped raft|bootstrapping' "$T_DIR/node1.log"
t_check "it says why it waits" grep -q "has raft state but knows no cluster state yet" \
  "$T_DIR/node1.log"
t_start 2
n=0
while t_alive 1 && [ $n -lt 150 ]; do sleep 0.1; n=$((n + 1)); done
if t_alive 1; then t_fail "node1 with a lost directory still running"; t_kill 1 KILL; rc=running
else wait "${T_PIDS[1]}" && rc=0 || rc=$?; unset "T_PIDS[1]"; fi
t_check "a member that lost its raft state is refused: exit code 1" t_eq "$rc" 1
t_check "it says so and how to recover" grep -q "has lost its raft state.*ctl member remove node1" \
  "$T_DIR/node1.log"
t_check "it did not bootstrap" t_absent 'bootstrapped raft' "$T_DIR/node1.log"

# The way back: remove it, start it (it waits to be added), add it again under a new id.
"$T_BIN" ctl --api "$(t_api_addr 2)" --timeout 1000 member remove node1 && rc=0 || rc=$?
t_check "ctl member remove node1 exits 0" t_eq "$rc" 0
t_start 1
waiting() { grep -q "not a member yet" "$T_DIR/node1.log"; }
t_wait 15 "node1 waits to be added" waiting
out=$("$T_BIN" ctl --api "$(t_api_addr 2)" --timeout 1000 member add node1 \
      --raft "$(t_raft_addr 1)" --api "$(t_api_addr 1)" 2>&1) && rc=0 || rc=$?
echo "$out"
t_check "ctl member add node1 exits 0" t_eq "$rc" 0
three_voters() { [ "$(t_jq 2 '[.members[] | select(.voting == "voter")] | length')" = 3 ]; }
t_wait 20 "three voters again" three_voters
t_check "node1 is back under a new id" t_eq "$(t_jq 2 '.members[] | select(.name == "node1") | .id')" 4
t_check "node1 joined without bootstrapping" \
  t_absent 'bootstrapped raft' "$T_DIR/node1.log"
t_check "node1 follows the leader" t_eq "$(t_jq 1 '.raft.role')" follower
for i in 1 2 3; do t_kill "$i" TERM; done

# Two members lose their Raft directories while the third, which holds the log, is down. Each
# hears "no cluster history" from the other: that is not every initial member, so neither may
# bootstrap a second history; both say whom they wait for.
rm -rf "$T_DIR/node1/raft" "$T_DIR/node2/raft"
: >"$T_DIR/node1.log"; : >"$T_DIR/node2.log"
t_start 1; t_start 2
waits_for_node3() {
  local i
  for i in 1 2; do
    grep -q "waiting to form the cluster: 1 of 2 other initial members .*$(t_api_addr 3) did not answer" \
      "$T_DIR/node$i.log" || return 1
  done
}
t_wait 15 "node1 and node2 waiting for node3" waits_for_node3
sleep 2
t_check "no second cluster while the member holding the log is down" \
  t_absent 'bootstrapped raft|bootstrapping as initial member' "$T_DIR/node1.log" "$T_DIR/node2.log"
t_start 3
sleep 3
t_check "nor once it is back" \
  t_absent 'bootstrapped raft|bootstrapping as initial member' "$T_DIR/node1.log" "$T_DIR/node2.log"
t_check "node3 kept its log" test -n "$(ls "$T_DIR/node3/raft" | grep -E '^(open|[0-9])' || true)"
t_check "node1 and node2 still wait: no cluster without a majority" \
  bash -c "! grep -q 'raft leader is now' '$T_DIR/node1.log' '$T_DIR/node2.log'"

# The way back after the loss of a majority: raftpg recover on the member that holds the log
# (its agent stopped) makes its log a cluster of itself alone; it leads with every entry, and
# the others come back under new ids.
for i in 1 2 3; do t_alive "$i" && t_kill "$i" TERM; done
"${T_RUNAS[@]}" "$T_BIN" recover -c "$T_DIR/node3.yaml" >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
t_check "raftpg recover without --force is refused" \
  t_status 2 "${T_RUNAS[@]}" "$T_BIN" recover -c "$T_DIR/node3.yaml"
t_start 3
sleep 1
"${T_RUNAS[@]}" "$T_BIN" recover -c "$T_DIR/node3.yaml" --force >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
t_check "raftpg recover refuses while the agent runs ($(head -1 "$T_DIR/out"))" \
  grep -q "stop this member's agent first" "$T_DIR/out"
t_kill 3 TERM
if [ "$(id -u)" = 0 ]; then
  "$T_BIN" recover -c "$T_DIR/node3.yaml" --force >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
  t_check "raftpg recover refuses another user than the directory's ($(head -1 "$T_DIR/out"))" \
    grep -q "run this as that user" "$T_DIR/out"
fi
"${T_RUNAS[@]}" "$T_BIN" recover -c "$T_DIR/node3.yaml" --force >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
t_check "raftpg recover on node3 exits 0 ($(head -1 "$T_DIR/out"))" t_eq "$rc" 0
: >"$T_DIR/node3.log"
t_start 3
leads_alone() { [ "$(t_jq 3 'select(.raft.leader_ready) | .raft.leader')" = node3 ]; }
t_wait 20 "node3 leads alone" leads_alone
t_check "node3 leads alone with its log" leads_alone
t_check "its state kept node1's record from before (id 4)" \
  t_eq "$(t_jq 3 '.members[] | select(.name == "node1") | .id')" 4
t_check "it bootstrapped nothing" t_absent 'bootstrapped raft|bootstrapping' "$T_DIR/node3.log"
for i in 1 2; do
  "$T_BIN" ctl --api "$(t_api_addr 3)" --timeout 1000 member remove "node$i" >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
  t_check "ctl member remove node$i after the recovery ($(tail -1 "$T_DIR/out"))" t_eq "$rc" 0
done
for i in 1 2; do rm -rf "$T_DIR/node$i/raft"; : >"$T_DIR/node$i.log"; t_start "$i"; done
for i in 1 2; do
  "$T_BIN" ctl --api "$(t_api_addr 3)" --timeout 1000 member add "node$i" \
    --raft "$(t_raft_addr "$i")" --api "$(t_api_addr "$i")" >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
  t_check "ctl member add node$i ($(tail -1 "$T_DIR/out"))" t_eq "$rc" 0
done
three_voters_at() { [ "$(t_jq "$1" '[.members[] | select(.voting == "voter")] | length')" = 3 ]; }
t_wait 30 "three voters after the recovery" three_voters_at 3
t_check "three voters after the recovery" three_voters_at 3
t_check "node1 and node2 joined under new ids" \
  t_eq "$(t_jq 3 -c '[.members[] | select(.name != "node3") | .id] | sort')" "[5,6]"
t_check "node1 follows node3" t_eq "$(t_jq 1 '.raft.leader')" node3
for i in 1 2 3; do t_alive "$i" && t_kill "$i" TERM; done
t_done
