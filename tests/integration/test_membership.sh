#!/usr/bin/env bash
# Online membership: a fourth agent joins (spare -> catch-up -> voter) through the leader and
# then leaves; every member's replicated state follows; bad requests are refused clearly.
source "$(dirname "$0")/lib.sh"
t_pick_ports
for i in 1 2 3; do t_write_conf "$i" 3; t_start "$i"; done
have_leader() { [ -n "$(t_jq "$1" 'select(.raft.state_known) | .raft.leader // empty')" ]; }
t_wait 20 "a leader with a known cluster state" have_leader 1

# node4 is not an initial member: it waits to be added.
t_write_conf 4 3
t_start 4
joining() { [ "$(t_jq 4 '.members[] | select(.name == "node4") | .state')" = joining ]; }
t_wait 10 "node4 reports that it is joining" joining
t_check "node4 says how to add it" grep -q "ctl member add node4" <(t_cluster 4 | jq -r .join_status)

out=$("$T_BIN" ctl --api "$(t_api_addr 2)" --timeout 1000 member add node4 \
      --raft "$(t_raft_addr 4)" --api "$(t_api_addr 4)" 2>&1) && rc=0 || rc=$?
echo "$out"
t_check "ctl member add exits 0" t_eq "$rc" 0
t_check "ctl member add waits for the voter" grep -q "member node4 is a voter" <<<"$out"
for i in 1 2 3 4; do
  four_voters() { [ "$(t_jq "$1" '[.members[] | select(.voting == "voter")] | length')" = 4 ]; }
  t_wait 10 "node$i sees four voters" four_voters "$i"
done
t_check "node4 is a follower of the same leader" \
  t_eq "$(t_jq 4 '.raft.role')/$(t_jq 4 '.raft.leader')" "follower/$(t_jq 1 '.raft.leader')"
t_check "node4 got the next id" t_eq "$(t_jq 1 '.members[] | select(.name == "node4") | .id')" 4

# Refusals name what is wrong.
out=$("$T_BIN" ctl --api "$(t_api_addr 1)" member add node2 --raft 127.0.0.1:1 --api 127.0.0.1:2 2>&1) && rc=0 || rc=$?
t_check "adding a duplicate name fails" t_eq "$rc" 1
t_check "duplicate name is named" grep -q 'duplicate member name "node2"' <<<"$out"
out=$("$T_BIN" ctl --api "$(t_api_addr 1)" member add node9 --raft localhost:1 --api 127.0.0.1:2 2>&1) && rc=0 || rc=$?
t_check "a host name for --raft is a usage error" t_eq "$rc" 2
t_check "bad --raft is named" grep -q -- '--raft: expected IPv4 address:port, got "localhost:1"' <<<"$out"
out=$("$T_BIN" ctl --api "$(t_api_addr 1)" member remove nosuch 2>&1) && rc=0 || rc=$?
t_check "removing an unknown member fails" t_eq "$rc" 1
t_check "unknown member is named" grep -q 'no member named "nosuch"' <<<"$out"
# A raw malformed request to a member's API gets 400, and the agent keeps running.
LA=$(t_jq 1 '.raft.leader as $l | .members[] | select(.name == $l) | .api_url' | sed 's|http://||; s|/$||')
# Signed with the cluster secret (changes need it), so that the body is what is judged.
AUTH=$("$T_BIN" ctl --api "$(t_api_addr 1)" sign POST /members '{"name":1')
raw_post() {
  exec 3<>"/dev/tcp/${LA%:*}/${LA#*:}"
  printf 'POST /members HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\nContent-Type: application/json\r\nContent-Length: 9\r\n\r\n{"name":1' "$AUTH" >&3
  head -c 12 <&3 | cut -d' ' -f2
  exec 3<&-
}
code=$(raw_post)
t_check "malformed JSON gets 400 from the leader" t_eq "$code" 400
# The same signed request again is a replay.
code=$(raw_post)
t_check "a replayed signed request gets 401" t_eq "$code" 401

out=$("$T_BIN" ctl --api "$(t_api_addr 3)" --timeout 1000 member remove node4 2>&1) && rc=0 || rc=$?
echo "$out"
t_check "ctl member remove exits 0" t_eq "$rc" 0
for i in 1 2 3; do
  three() { [ "$(t_jq "$1" '[.members[] | .name] | join(",")')" = "node1,node2,node3" ]; }
  t_wait 10 "node$i lists three members" three "$i"
  three_cfg() { [ "$(t_jq "$1" '[.members[] | select(.voting == "voter")] | length')" = 3 ]; }
  t_wait 10 "node$i has three voters" three_cfg "$i"
done
t_kill 4 TERM

# Removing the leader itself: it hands leadership over first, then the new leader removes it.
L=$(t_jq 1 '.raft.leader'); Li=${L#node}
out=$("$T_BIN" ctl --api "$(t_api_addr 1)" --timeout 1000 member remove "$L" 2>&1) && rc=0 || rc=$?
echo "$out"
t_check "removing the leader succeeds" t_eq "$rc" 0
others=(); for i in 1 2 3; do [ "$i" = "$Li" ] || others+=("$i"); done
gone() { [ "$(t_jq "$1" --arg l "$L" '[.members[] | select(.name == $l)] | length')" = 0 ] &&
         [ "$(t_jq "$1" '.raft.leader')" != "$L" ] && [ "$(t_jq "$1" '.raft.leader')" != null ]; }
t_wait 15 "the removed leader is gone and another leads" gone "${others[0]}"
# The other survivor applies the removal a heartbeat later.
two_members() { [ "$(t_jq "$1" '.members | length')" = 2 ]; }
t_check "two members left (within 5 s)" t_poll 5 two_members "${others[1]}"
two_voters() { [ "$(t_jq "$1" '[.members[] | select(.voting == "voter")] | length')" = 2 ]; }
t_wait 10 "the raft configuration has two voters" two_voters "${others[1]}"

for i in 1 2 3; do t_kill "$i" TERM; done
t_check "no agent logged an error" t_absent ' ERROR ' "$T_DIR"/node*.log
t_done
