#!/usr/bin/env bash
# The bootstrap question is believed only from members of the cluster. node3's listed address is
# taken by an agent holding another secret, which answers "no cluster history" like a fresh
# member would: node1 and node2 must not count it, must bootstrap nothing and must say why. Once
# the real node3 (the cluster's secret) answers, all three bootstrap the same cluster.
source "$(dirname "$0")/lib.sh"
t_pick_ports
for i in 1 2 3; do t_write_conf "$i" 3; done
t_gen_secret "$T_DIR/stray.secret"
T_SECRET_FILE[3]="$T_DIR/stray.secret"
t_write_conf 3 3
unset "T_SECRET_FILE[3]"
t_start 3
stray_up() { t_jq 3 '.raft.fresh' | grep -x true >/dev/null; }
t_wait 20 "the stray agent answering on node3's address" stray_up
t_start 1; t_start 2
unproven() {
  local i
  for i in 1 2; do
    grep -q "waiting to form the cluster: 1 of 2 other initial members .*$(t_api_addr 3) did not prove that it knows the cluster secret" \
      "$T_DIR/node$i.log" || return 1
  done
}
t_wait 20 "node1 and node2 refusing the stray's answer" unproven
sleep 2
t_check "no bootstrap on the stray's word" \
  t_absent 'bootstrapped raft|bootstrapping as initial member' "$T_DIR/node1.log" "$T_DIR/node2.log"
# The stray's own view: it heard node1 and node2 without proof either, and bootstrapped nothing.
t_check "the stray bootstrapped nothing either" \
  t_absent 'bootstrapped raft' "$T_DIR/node3.log"
# A wrong nonce, a missing one and a replayed answer are refused by the real members too.
code=$(curl -s -o /dev/null -w '%{http_code}' "http://$(t_api_addr 1)/raftpg/bootstrap?nonce=xyz")
t_check "a malformed nonce gets 400" t_eq "$code" 400
t_kill 3 TERM
rm -rf "$T_DIR/node3"
t_write_conf 3 3
t_start 3
have_leader() { [ "$(t_jq "$1" '.raft.leader // empty')" != "" ]; }
t_wait 30 "one cluster of three once the real node3 answers" have_leader 1
# Each bootstraps the same configuration once all answered, or joins it if a leader was quicker
# (node1 can have a leader with node2 before node3 has started its own Raft).
all_started() { for f in "$T_DIR"/node{1,2,3}.log; do grep -qE "bootstrapped raft|joining without bootstrapping" "$f" || return 1; done; }
t_wait 10 "all three started raft" all_started
t_check "all three in the same cluster" all_started
t_check "bootstrapped by the members, once node3 answered" \
  bash -c 'cat "$@" | grep -q "bootstrapped raft"' _ "$T_DIR/node1.log" "$T_DIR/node2.log"
three_voters() { [ "$(t_jq 1 '[.members[] | select(.voting == "voter")] | length')" = 3 ]; }
t_wait 20 "three voters" three_voters

# Changes through the API need the cluster secret: unsigned, signed with another secret, or
# with a tampered body, they are refused and change nothing.
L=$(t_jq 1 '.raft.leader')
code=$(curl -s -o "$T_DIR/out" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
  -d "{\"name\":\"node9\",\"raft\":\"127.0.0.1:1\",\"api\":\"127.0.0.1:2\"}" \
  "http://$(t_api_addr "${L#node}")/members")
t_check "an unsigned member add gets 401" t_eq "$code" 401
t_check "it says what is needed" grep -q "needs the cluster secret" "$T_DIR/out"
code=$(curl -s -o /dev/null -w '%{http_code}' -X PATCH -H 'Content-Type: application/json' \
  -d '{"synchronous_mode":"off"}' "http://$(t_api_addr "${L#node}")/config")
t_check "an unsigned configuration change gets 401" t_eq "$code" 401
# What a web page can make a browser send (a form body) is refused before anything else.
code=$(curl -s -o /dev/null -w '%{http_code}' -X PATCH -d '{"synchronous_mode":"off"}' \
  "http://$(t_api_addr "${L#node}")/config")
t_check "a change with a form body gets 415" t_eq "$code" 415
"$T_BIN" ctl --api "$(t_api_addr 1)" --secret-file "$T_DIR/stray.secret" member add node9 \
  --raft 127.0.0.1:1 --api 127.0.0.1:2 --no-wait >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
t_check "member add signed with another secret fails" t_eq "$rc" 1
t_check "with the reason" grep -q "not signed with the cluster secret" "$T_DIR/out"
t_check "and nothing was added" t_eq "$(t_jq 1 '.members | length')" 3
"$T_BIN" ctl --api "$(t_api_addr 1)" member add node9 --raft 127.0.0.1:1 --api 127.0.0.1:2 \
  --no-wait >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
t_check "member add signed with the cluster secret succeeds" t_eq "$rc" 0
"$T_BIN" ctl --api "$(t_api_addr 1)" member remove node9 >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
t_check "and so does its removal" t_eq "$rc" 0
[ "$rc" = 0 ] || cat "$T_DIR/out"
for i in 1 2 3; do t_alive "$i" && t_kill "$i" TERM; done
t_done
