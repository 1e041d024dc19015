#!/usr/bin/env bash
# Three real agents on 127.0.0.1: one leader; kill -9 of the leader elects a new one that both
# survivors report; the killed agent restarts from its data directory and rejoins as follower
# with the same replicated state. node3 starts late: until it answers that it has no cluster
# history either, node1 and node2 bootstrap nothing (it could be the member holding the log) and
# say whom they wait for; then all three bootstrap the same cluster.
source "$(dirname "$0")/lib.sh"
t_pick_ports
for i in 1 2 3; do t_write_conf "$i" 3; done
t_start 1; t_start 2

leader_count() {
  local n=0
  for i in "$@"; do
    [ "$(t_jq "$i" '.raft.role')" = leader ] && n=$((n + 1))
  done
  echo $n
}
# All given nodes report the same known leader, exactly one of them is leader, and the
# replicated member list is known.
agreed_leader() {
  local first="" l
  for i in "$@"; do
    l=$(t_jq "$i" 'select(.raft.state_known) | .raft.leader // empty')
    [ -n "$l" ] || return 1
    [ -z "$first" ] || [ "$l" = "$first" ] || return 1
    first=$l
  done
  [ "$(leader_count "$@")" = 1 ] || return 1
  echo "$first"
}

waiting_for_node3() {
  local i
  for i in 1 2; do
    grep -q "waiting to form the cluster: 1 of 2 other initial members answered.*$(t_api_addr 3) did not answer" \
      "$T_DIR/node$i.log" || return 1
  done
}
t_wait 20 "node1 and node2 saying they wait for node3" waiting_for_node3
sleep 2
t_check "no bootstrap while an initial member is silent" \
  t_absent 'bootstrapped raft' "$T_DIR/node1.log" "$T_DIR/node2.log"
t_start 3
t_wait 20 "one leader agreed by all three" agreed_leader 1 2 3
# Each bootstraps the same configuration once all answered, or joins it if a leader was quicker.
t_check "all three in the same cluster, none before node3 answered" \
  bash -c 'for f; do grep -qE "bootstrapped raft|joining without bootstrapping" "$f" || exit 1; done' _ \
  "$T_DIR/node1.log" "$T_DIR/node2.log" "$T_DIR/node3.log"
L=$(agreed_leader 1 2 3)
t_log "leader is $L"
t_check "exactly one leader among three agents" t_eq "$(leader_count 1 2 3)" 1
t_check "replicated state lists three members" t_eq "$(t_jq 1 '.members | length')" 3
t_check "members are voters" t_eq "$(t_jq 1 '[.members[] | select(.voting == "voter")] | length')" 3
t_check "other members report running" \
  t_eq "$(t_jq 1 '[.members[] | select(.state == "running")] | length')" 3
t_check "the cluster document has Patroni's shape" \
  t_eq "$(t_jq 1 '[.scope, (.members[0] | has("name") and has("role") and has("state") and has("api_url") and has("host"))] | @tsv')" "itest	true"

Li=${L#node}
survivors=()
for i in 1 2 3; do [ "$i" = "$Li" ] || survivors+=("$i"); done
term_before=$(t_jq "${survivors[0]}" '.raft.term')
state_before=$(t_jq "${survivors[0]}" -c '[.members[] | [.name, .id, .raft_address]]')

t_log "kill -9 $L"
t_kill "$Li" KILL
new_leader() {
  local l
  l=$(agreed_leader "${survivors[@]}") || return 1
  [ "$l" != "$L" ] || return 1
  echo "$l"
}
t_wait 10 "a new leader reported by both survivors" new_leader
N=$(new_leader)
t_log "new leader is $N"
t_check "new leader differs from the killed one" t_ne "$N" "$L"
t_check "term advanced" test "$(t_jq "${survivors[0]}" '.raft.term')" -gt "$term_before"
t_check "the killed member is reported unreachable" \
  t_eq "$(t_jq "${N#node}" --arg l "$L" '.members[] | select(.name == $l) | .state')" unreachable

t_log "restart $L"
t_start "$Li"
rejoined() {
  [ "$(t_jq "$Li" '.raft.role')" = follower ] || return 1
  [ "$(t_jq "$Li" '.raft.leader')" = "$N" ] || return 1
  local lead_commit mine
  lead_commit=$(t_jq "${N#node}" '.raft.commit_index')
  mine=$(t_jq "$Li" '.raft.applied_index')
  [ -n "$mine" ] && [ "$mine" -ge "$lead_commit" ]
}
t_wait 15 "$L rejoins as follower and catches up" rejoined
t_check "rejoined member has the same replicated state" \
  t_eq "$(t_jq "$Li" -c '[.members[] | [.name, .id, .raft_address]]')" "$state_before"
t_check "still exactly one leader" t_eq "$(leader_count 1 2 3)" 1
t_check "identity kept (same id after restart)" \
  t_eq "$(t_jq "$Li" --arg l "$L" '.members[] | select(.name == $l) | .id')" "$Li"

for i in 1 2 3; do t_kill "$i" TERM; done
t_check "no agent logged an error" t_absent ' ERROR ' "$T_DIR"/node*.log
t_done
