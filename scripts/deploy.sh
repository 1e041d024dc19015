#!/usr/bin/env bash
# The minimal deployment of a three-host cluster: from the three hosts' addresses, writes into
# OUTDIR the three agents' configurations (node1.yaml .. node3.yaml), the cluster secret
# (raft.secret), the PostgreSQL passwords (passwords, for the operator), an haproxy
# configuration and a pgbouncer snippet, then prints what to run on each host.
# Nothing is sent anywhere; OUTDIR must not exist yet (a secret is never overwritten).
#
# Usage: scripts/deploy.sh [options] ADDR1 ADDR2 ADDR3
#   -o, --out DIR         where to write (default ./raftpg-deploy)
#   --scope NAME          cluster name (default main)
#   --names A,B,C         member names (default node1,node2,node3)
#   --vip ADDR/PREFIX     the write VIP, held by the primary (default: none)
#   --interface IF        the VIP's interface on every host (required with --vip)
#   --clients CIDR        who may connect to PostgreSQL (default ADDR1's /24)
#   --secret-path PATH    where raft.secret will be on the hosts (default /etc/raftpg/raft.secret)
#   --raftpg PATH         the raftpg binary that makes the secret (default: raftpg in PATH,
#                         then build/raftpg)
set -euo pipefail

usage() { sed -n "8,18s/^# \{0,1\}//p" "$0" >&2; exit 2; }
die() { echo "deploy: $*" >&2; exit 1; }

out=./raftpg-deploy scope=main names=node1,node2,node3 vip="" iface="" clients="" raftpg=""
secret_path=/etc/raftpg/raft.secret
addrs=()
while [ $# -gt 0 ]; do
  case $1 in
    -o | --out) out=${2:?}; shift 2 ;;
    --scope) scope=${2:?}; shift 2 ;;
    --names) names=${2:?}; shift 2 ;;
    --vip) vip=${2:?}; shift 2 ;;
    --interface) iface=${2:?}; shift 2 ;;
    --clients) clients=${2:?}; shift 2 ;;
    --raftpg) raftpg=${2:?}; shift 2 ;;
    --secret-path) secret_path=${2:?}; shift 2 ;;
    -h | --help) usage ;;
    -*) echo "deploy: unknown option $1" >&2; usage ;;
    *) addrs+=("$1"); shift ;;
  esac
done
[ ${#addrs[@]} -eq 3 ] || { echo "deploy: give exactly three addresses (got ${#addrs[@]})" >&2; usage; }

is_ipv4() {
  local IFS=. a b c d
  [[ $1 =~ ^[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$ ]] || return 1
  read -r a b c d <<<"$1"
  for x in $a $b $c $d; do [ $((10#$x)) -le 255 ] || return 1; done
}
for i in 0 1 2; do
  is_ipv4 "${addrs[$i]}" || die "address $((i + 1)): \"${addrs[$i]}\" is not an IPv4 address"
done
[ "${addrs[0]}" != "${addrs[1]}" ] && [ "${addrs[0]}" != "${addrs[2]}" ] && [ "${addrs[1]}" != "${addrs[2]}" ] ||
  die "the three addresses must differ: ${addrs[*]}"
IFS=, read -r -a name <<<"$names"
[ ${#name[@]} -eq 3 ] || die "--names: give three names separated by commas (got \"$names\")"
for n in "${name[@]}" "$scope"; do
  [[ $n =~ ^[A-Za-z0-9_.-]{1,63}$ ]] || die "\"$n\": a name is 1..63 characters of [A-Za-z0-9_.-]"
done
[ "${name[0]}" != "${name[1]}" ] && [ "${name[0]}" != "${name[2]}" ] && [ "${name[1]}" != "${name[2]}" ] ||
  die "--names: the three names must differ"
if [ -n "$vip" ]; then
  [[ $vip =~ ^[0-9.]+/([0-9]{1,2})$ ]] && [ "${BASH_REMATCH[1]}" -le 32 ] && is_ipv4 "${vip%/*}" ||
    die "--vip: \"$vip\" is not ADDR/PREFIX"
  for a in "${addrs[@]}"; do [ "${vip%/*}" != "$a" ] || die "--vip: $vip is a member's own address"; done
  [ -n "$iface" ] || die "--vip needs --interface"
fi
[[ $secret_path == /* ]] || die "--secret-path: \"$secret_path\" is not an absolute path"
if [ -z "$clients" ]; then clients="${addrs[0]%.*}.0/24"; fi
[[ $clients =~ ^[0-9.]+/([0-9]{1,2})$ ]] && [ "${BASH_REMATCH[1]}" -le 32 ] && is_ipv4 "${clients%/*}" ||
  die "--clients: \"$clients\" is not ADDR/PREFIX"

if [ -z "$raftpg" ]; then
  raftpg=$(command -v raftpg || true)
  [ -n "$raftpg" ] || raftpg="$(cd "$(dirname "$0")/.." && pwd)/build/raftpg"
fi
[ -x "$raftpg" ] || die "no raftpg binary to make the secret with (--raftpg PATH)"
[ ! -e "$out" ] || die "$out exists: choose another --out (a secret is never overwritten)"

umask 077
mkdir -p "$out"
"$raftpg" gen-secret "$out/raft.secret" >/dev/null
pw() { od -An -tx1 -N18 /dev/urandom | tr -d ' \n'; }
su_pw=$(pw) repl_pw=$(pw)
printf 'superuser postgres %s\nreplication replicator %s\n' "$su_pw" "$repl_pw" >"$out/passwords"

for i in 0 1 2; do
  f="$out/${name[$i]}.yaml"
  {
    echo "# raftpg: member ${name[$i]} (${addrs[$i]}) of cluster $scope, written by scripts/deploy.sh."
    echo "# Install as /etc/raftpg/raftpg.yaml, mode 0600, owned by postgres."
    echo "scope: $scope"
    echo "name: ${name[$i]}"
    echo "raft:"
    echo "  data_dir: /var/lib/raftpg/raft"
    echo "  election_timeout: 500"
    echo "  heartbeat_timeout: 100"
    echo "  secret_file: $secret_path"
    echo "  members:"
    for j in 0 1 2; do
      echo "    - {name: ${name[$j]}, raft: \"${addrs[$j]}:7000\", api: \"${addrs[$j]}:8008\"}"
    done
    echo "restapi:"
    echo "  listen: 0.0.0.0:8008"
    echo "  connect_address: ${addrs[$i]}:8008"
    echo "log: {level: info, format: text}"
    echo "postgresql:"
    echo "  bin_dir: /usr/lib/postgresql/15/bin"
    echo "  data_dir: /var/lib/raftpg/data"
    echo "  listen: 0.0.0.0:5432"
    echo "  connect_address: ${addrs[$i]}:5432"
    echo "  parameters:"
    echo "    max_connections: 200"
    echo "    shared_buffers: 1GB"
    echo "    wal_level: replica"
    echo "    max_wal_senders: 10"
    echo "    max_replication_slots: 10"
    echo "    wal_keep_size: 1GB"
    echo "    hot_standby: on"
    echo "    wal_log_hints: on"
    echo "  pg_hba:"
    echo "    - local all all scram-sha-256"
    echo "    - host all all 127.0.0.1/32 scram-sha-256"
    for j in 0 1 2; do echo "    - host all postgres ${addrs[$j]}/32 scram-sha-256"; done
    for j in 0 1 2; do echo "    - host replication replicator ${addrs[$j]}/32 scram-sha-256"; done
    echo "    - host all all $clients scram-sha-256"
    echo "  authentication:"
    echo "    superuser: {username: postgres, password: \"$su_pw\"}"
    echo "    replication: {username: replicator, password: \"$repl_pw\"}"
    echo "tags: {nofailover: false, nosync: false, failover_priority: 1}"
    if [ -n "$vip" ]; then
      echo "vip: {address: $vip, interface: $iface}"
    fi
    echo "synchronous_mode: quorum"
    echo "synchronous_node_count: 1"
  } >"$f"
done

# haproxy: writes to the primary, reads to the standbys, chosen by the agents' health checks.
{
  echo "# haproxy for raftpg cluster $scope: port 5000 reaches the primary, 5001 a standby."
  echo "global"
  echo "    maxconn 1000"
  echo "defaults"
  echo "    mode tcp"
  echo "    timeout connect 4s"
  echo "    timeout client 30m"
  echo "    timeout server 30m"
  echo "    timeout check 2s"
  echo "listen ${scope}_primary"
  echo "    bind *:5000"
  echo "    option httpchk GET /primary"
  echo "    http-check expect status 200"
  echo "    default-server inter 1s fall 2 rise 2 on-marked-down shutdown-sessions"
  for j in 0 1 2; do echo "    server ${name[$j]} ${addrs[$j]}:5432 check port 8008"; done
  echo "listen ${scope}_replicas"
  echo "    bind *:5001"
  echo "    balance roundrobin"
  echo "    option httpchk GET /replica"
  echo "    http-check expect status 200"
  echo "    default-server inter 1s fall 2 rise 2 on-marked-down shutdown-sessions"
  for j in 0 1 2; do echo "    server ${name[$j]} ${addrs[$j]}:5432 check port 8008"; done
} >"$out/haproxy.cfg"

# pgbouncer: through the VIP when there is one, else through haproxy's primary port.
if [ -n "$vip" ]; then target="host=${vip%/*} port=5432"; else target="host=127.0.0.1 port=5000"; fi
{
  echo ";; pgbouncer for raftpg cluster $scope: every database on the primary."
  echo "[databases]"
  echo "* = $target"
  echo "[pgbouncer]"
  echo "listen_addr = 0.0.0.0"
  echo "listen_port = 6432"
  echo "auth_type = scram-sha-256"
  echo "auth_file = /etc/pgbouncer/userlist.txt"
  echo "pool_mode = transaction"
  echo ";; after a failover the old primary's server connections fail and are replaced"
  echo "server_check_delay = 5"
  echo "server_login_retry = 1"
} >"$out/pgbouncer.ini"

{
  echo "raftpg: cluster \"$scope\" written to $out"
  echo
  echo "On each of the three hosts, as root, with the raftpg package file and the host's file:"
  for i in 0 1 2; do
    echo
    echo "# ${name[$i]} (${addrs[$i]}): copy ${name[$i]}.yaml and raft.secret there first"
    echo "apt-get install ./raftpg_*_amd64.deb       # pulls postgresql-15"
    echo "pg_dropcluster --stop 15 main 2>/dev/null || true   # Debian's default cluster must not run"
    echo "install -d -m 0755 /etc/raftpg"
    echo "install -m 0600 -o postgres -g postgres ${name[$i]}.yaml /etc/raftpg/raftpg.yaml"
    echo "install -m 0600 -o postgres -g postgres raft.secret $secret_path"
    echo "raftpg check-config /etc/raftpg/raftpg.yaml"
    echo "systemctl enable --now raftpg"
  done
  echo
  echo "A new cluster forms once all three agents answer. Then, on any host:"
  echo "  raftpg ctl -c /etc/raftpg/raftpg.yaml list"
  echo "Load balancers: haproxy.cfg (5000 primary, 5001 standbys; checks on port 8008),"
  echo "pgbouncer.ini (port 6432). The PostgreSQL passwords are in $out/passwords."
  echo "Keep $out private: raft.secret and the configurations hold the cluster's secrets."
} | tee "$out/COMMANDS"
