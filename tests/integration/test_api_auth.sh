#!/usr/bin/env bash
# restapi.authentication (Patroni's HTTP basic credentials for changes): without a cluster
# secret, a change needs them (401 with WWW-Authenticate otherwise), health checks and reads stay
# open, and ctl sends them from -c's configuration or from --username with a password file or
# RAFTPG_API_PASSWORD, never from its arguments.
T_NO_SECRET=1
source "$(dirname "$0")/lib.sh"
t_pick_ports
T_API_AUTH="admin:s3cret-$(od -An -tx1 -N6 /dev/urandom | tr -d ' \n')"
for i in 1 2 3; do t_write_conf "$i" 3; t_start "$i"; done
have_leader() { [ -n "$(t_jq 1 'select(.raft.state_known) | .raft.leader // empty')" ]; }
t_wait 20 "a leader" have_leader
L=$(t_jq 1 '.raft.leader'); Li=${L#node}
url="http://$(t_api_addr "$Li")/config"
body='{"synchronous_node_count":1}'
code() { curl -s -o "$T_DIR/body" -D "$T_DIR/headers" -m 3 -w '%{http_code}' -X PATCH -H 'Content-Type: application/json' -d "$body" "$@" "$url"; }
t_check "a change without credentials is refused (401)" t_eq "$(code)" 401
t_check "... with WWW-Authenticate: Basic" grep -qi '^WWW-Authenticate: Basic realm="raftpg"' "$T_DIR/headers"
t_check "a change with a wrong password is refused (401)" t_eq "$(code -u admin:wrong)" 401
t_check "a change with another user is refused (401)" t_eq "$(code -u root:"${T_API_AUTH#*:}")" 401
t_check "a change with the credentials is accepted (200)" t_eq "$(code -u "$T_API_AUTH")" 200
t_check "reads stay open (GET /cluster 200)" \
  t_eq "$(curl -s -o /dev/null -m 3 -w '%{http_code}' "http://$(t_api_addr 1)/cluster")" 200
t_check "health checks stay open (/liveness 200)" \
  t_eq "$(curl -s -o /dev/null -m 3 -w '%{http_code}' "http://$(t_api_addr 1)/liveness")" 200
# Without postgresql no member is ever recorded as primary: unlocked, as Patroni words it.
unlocked() { # unlocked I: node I's patroni_cluster_unlocked and /patroni cluster_unlocked
  echo "$(curl -s -m 3 "http://$(t_api_addr "$1")/metrics" | awk 'index($1, "patroni_cluster_unlocked{") == 1 { print $2 }')" \
    "$(curl -s -m 3 "http://$(t_api_addr "$1")/patroni" | jq -r .cluster_unlocked)"
}
for i in 1 2 3; do
  t_check "node$i: recorded primary in /cluster: $(t_jq "$i" '.primary.name // "none"'), patroni_cluster_unlocked 1" t_eq "$(unlocked "$i")" "1 true"
done
t_check "the refusal is logged" grep -q "refused PATCH /config from 127.0.0.1: no valid credentials" "$T_DIR/$L.log"

ctl() { "$T_BIN" ctl "$@" >"$T_DIR/out" 2>&1 && echo 0 || echo $?; }
t_check "ctl -c CONFIG sends the configuration's credentials" \
  t_eq "$(ctl -c "$T_DIR/node1.yaml" edit-config -s synchronous_node_count=1)" 0
t_check "ctl --api without credentials is refused" \
  t_eq "$(ctl --api "$(t_api_addr 1)" edit-config -s synchronous_node_count=1)" 1
t_check "... saying why" grep -q "restapi.authentication" "$T_DIR/out"
t_check "ctl --username without a password is a usage error" \
  t_eq "$(env -u RAFTPG_API_PASSWORD "$T_BIN" ctl --api "$(t_api_addr 1)" --username admin edit-config -s synchronous_node_count=1 >/dev/null 2>&1 && echo 0 || echo $?)" 2
t_check "ctl --username with RAFTPG_API_PASSWORD" \
  t_eq "$(RAFTPG_API_PASSWORD="${T_API_AUTH#*:}" ctl --api "$(t_api_addr 1)" --username admin edit-config -s synchronous_node_count=1)" 0
(umask 077; echo "${T_API_AUTH#*:}" >"$T_DIR/api.password")
t_check "ctl --username with --password-file" \
  t_eq "$(ctl --api "$(t_api_addr 1)" --username admin --password-file "$T_DIR/api.password" edit-config -s synchronous_node_count=1)" 0
t_check "a wrong password through ctl is refused" \
  t_eq "$(RAFTPG_API_PASSWORD=nope ctl --api "$(t_api_addr 1)" --username admin edit-config -s synchronous_node_count=1)" 1
for i in 1 2 3; do t_alive "$i" && t_kill "$i" TERM; done
t_done
