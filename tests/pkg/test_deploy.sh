#!/usr/bin/env bash
# scripts/deploy.sh with three 10.231.x addresses into a temporary directory: the three
# configurations pass the agent's own validation (raftpg check-config) and agree with each other,
# the secret and passwords are fresh and private, haproxy accepts its configuration, and bad
# input is refused with a message naming it.
# Usage: test_deploy.sh RAFTPG_BINARY
# shellcheck source=../integration/lib.sh
source "$(dirname "$0")/../integration/lib.sh"
SRC=$(cd "$(dirname "$0")/../.." && pwd)
DEPLOY="$SRC/scripts/deploy.sh"
command -v haproxy >/dev/null || { echo "FAIL: haproxy is missing (scripts/install-deps.sh)"; exit 1; }

out="$T_DIR/out"
addr=(10.231.7.1 10.231.7.2 10.231.7.3)
"$DEPLOY" -o "$out" --scope shop --names db-a,db-b,db-c --vip 10.231.7.100/24 --interface eth1 \
  --secret-path "$out/raft.secret" --raftpg "$T_BIN" "${addr[@]}" >"$T_DIR/deploy.out" 2>&1 ||
  { cat "$T_DIR/deploy.out"; t_fail "deploy.sh failed"; t_done; }
names=(db-a db-b db-c)

for f in db-a.yaml db-b.yaml db-c.yaml raft.secret passwords haproxy.cfg pgbouncer.ini COMMANDS; do
  t_check "$f is written, mode 0600" t_eq "$(stat -c %a "$out/$f" 2>/dev/null)" 600
done
t_check "the secret is 64 hex digits" grep -qxE '[0-9a-f]{64}' "$out/raft.secret"

for i in 0 1 2; do
  n=${names[$i]}
  check_config() { "$T_BIN" check-config "$out/$n.yaml" >"$T_DIR/$n.check" 2>&1 || { cat "$T_DIR/$n.check"; return 1; }; }
  t_check "$n.yaml passes raftpg check-config" check_config
  c=$(cat "$T_DIR/$n.check")
  t_check "$n is an initial member of scope shop" t_contains "$c" "scope=shop name=$n mode=initial member"
  t_check "$n's Raft address is ${addr[$i]}:7000" t_contains "$c" "raft: listen=${addr[$i]}:7000"
  t_check "$n's PostgreSQL is reached at ${addr[$i]}:5432" t_contains "$c" "connect_address=${addr[$i]}:5432"
  t_check "$n's API is reached at ${addr[$i]}:8008" t_contains "$c" "restapi: listen=0.0.0.0:8008 connect_address=${addr[$i]}:8008"
  t_check "$n holds the VIP on eth1" t_contains "$c" "vip: address=10.231.7.100/24 interface=eth1"
  t_check "$n's Raft traffic is authenticated" t_contains "$c" "raft transport: authenticated and encrypted, secret_file=$out/raft.secret"
  for j in 0 1 2; do
    t_check "$n lists ${names[$j]} as id $((j + 1))" \
      t_contains "$c" "member ${names[$j]} id=$((j + 1)) raft=${addr[$j]}:7000 api=${addr[$j]}:8008"
  done
done
members() { awk '/^  members:/ {on = 1; next} on && /^    - / {print; next} {on = 0}' "$1"; }
t_check "the three member lists are identical" \
  test "$(members "$out/db-a.yaml")" = "$(members "$out/db-b.yaml")" -a "$(members "$out/db-a.yaml")" = "$(members "$out/db-c.yaml")"
auth() { grep -E '^    (superuser|replication):' "$1"; }
t_check "the three share the same passwords" \
  test "$(auth "$out/db-a.yaml")" = "$(auth "$out/db-b.yaml")" -a "$(auth "$out/db-a.yaml")" = "$(auth "$out/db-c.yaml")"
su_pw=$(awk '$1 == "superuser" {print $3}' "$out/passwords")
t_check "the superuser password is a fresh random one, in the configurations" \
  bash -c "[[ '$su_pw' =~ ^[0-9a-f]{36}\$ ]] && grep -q 'password: \"$su_pw\"' '$out/db-a.yaml'"
t_check "no password in the printed commands" t_absent "$su_pw" "$T_DIR/deploy.out"
t_check "replication is allowed from each member only" \
  t_eq "$(grep -c 'host replication replicator 10.231.7.[123]/32' "$out/db-b.yaml")" 3

hap() { haproxy -c -f "$out/haproxy.cfg" >"$T_DIR/haproxy.check" 2>&1 || { cat "$T_DIR/haproxy.check"; return 1; }; }
t_check "haproxy -c accepts haproxy.cfg" hap
t_check "haproxy checks /primary and /replica on the agents' API" \
  bash -c "grep -q 'option httpchk GET /primary' '$out/haproxy.cfg' && grep -q 'option httpchk GET /replica' '$out/haproxy.cfg'"
t_check "haproxy has every member twice" t_eq "$(grep -c 'server db-[abc] 10.231.7.[123]:5432 check port 8008' "$out/haproxy.cfg")" 6
t_check "pgbouncer goes through the VIP" grep -qx '\* = host=10.231.7.100 port=5432' "$out/pgbouncer.ini"
for n in "${names[@]}"; do
  t_check "the commands install $n.yaml" grep -q "install -m 0600 -o postgres -g postgres $n.yaml /etc/raftpg/raftpg.yaml" "$T_DIR/deploy.out"
done

# Defaults: /etc/raftpg/raft.secret, node names, no VIP (pgbouncer then goes through haproxy).
"$DEPLOY" -o "$T_DIR/plain" --raftpg "$T_BIN" "${addr[@]}" >/dev/null 2>&1
t_check "by default the secret is /etc/raftpg/raft.secret" grep -q '^  secret_file: /etc/raftpg/raft.secret$' "$T_DIR/plain/node2.yaml"
t_check "without a VIP there is no vip section" t_absent '^vip:' "$T_DIR/plain/node2.yaml"
t_check "without a VIP pgbouncer goes through haproxy" grep -qx '\* = host=127.0.0.1 port=5000' "$T_DIR/plain/pgbouncer.ini"
t_check "the default clients are ADDR1's /24" grep -q 'host all all 10.231.7.0/24 scram-sha-256' "$T_DIR/plain/node1.yaml"
t_check "another run makes another secret" t_status 1 cmp -s "$out/raft.secret" "$T_DIR/plain/raft.secret"

# Refusals: the exit code and a message naming the problem; nothing overwritten.
refuses() { # CODE MESSAGE ARGS...
  local code=$1 msg=$2 rc=0 o
  shift 2
  o=$("$DEPLOY" --raftpg "$T_BIN" "$@" 2>&1) || rc=$?
  [ "$rc" = "$code" ] || { echo "  exit $rc, expected $code: $o"; return 1; }
  t_contains "$o" "$msg"
}
secret_before=$(cat "$out/raft.secret")
t_check "an existing directory is refused" refuses 1 "exists" -o "$out" "${addr[@]}"
t_check "... and its secret is unchanged" t_eq "$(cat "$out/raft.secret")" "$secret_before"
t_check "two addresses are a usage error" refuses 2 "exactly three addresses" -o "$T_DIR/x1" 10.231.7.1 10.231.7.2
t_check "a bad address is named" refuses 1 '"10.231.7.300" is not an IPv4 address' -o "$T_DIR/x2" 10.231.7.1 10.231.7.300 10.231.7.3
t_check "a repeated address is refused" refuses 1 "must differ" -o "$T_DIR/x3" 10.231.7.1 10.231.7.1 10.231.7.3
t_check "a VIP without an interface is refused" refuses 1 "--vip needs --interface" -o "$T_DIR/x4" --vip 10.231.7.100/24 "${addr[@]}"
t_check "a VIP that is a member's address is refused" refuses 1 "member's own address" -o "$T_DIR/x5" --vip 10.231.7.2/24 --interface eth0 "${addr[@]}"
t_check "a bad name is refused" refuses 1 'a name is 1..63 characters' -o "$T_DIR/x6" --names 'a,b c,d' "${addr[@]}"
written() { if [ -d "$T_DIR" ]; then (cd "$T_DIR" && compgen -G 'x[1-6]') || true; else echo "no $T_DIR"; fi; }
t_check "nothing was written for a refused run" t_eq "$(written)" ""
t_done
