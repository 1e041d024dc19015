#!/usr/bin/env bash
# A slow Raft disk does not cost a healthy primary its lease (issue 10): each node's Raft
# directory is an ext4 file system on a loop device of its own, and each agent runs in a cgroup
# (v1 blkio or v2 io) that lets it write SLOW_WIOPS (default 2) times a second to that device, so every Raft
# log write (the lease barriers included) takes about half a second or more, longer than the
# lease (0.8 ET = 400 ms). Heartbeats need no disk, so the lease echo keeps the lease: for
# SLOW_S seconds (default 30) under a client session writing through the primary, no hard
# fence, the session, the postmaster and the primary survive, echo renewals are counted, and the
# barrier renewals show the disk really was too slow for them alone (their longest commit exceeds
# the lease). Root only: loop devices, mounts and cgroups are made here and removed at the end.
T_PG=1
source "$(dirname "$0")/lib.sh"
[ "$(id -u)" -eq 0 ] || { echo "FAIL: needs root (loop devices, cgroups)"; exit 1; }
WIOPS=${SLOW_WIOPS:-2}
SLOW_S=${SLOW_S:-30}
# The write limit: cgroup v1's blkio controller, or v2's io controller (io.max).
IO_ENABLED=
if [ -w /sys/fs/cgroup/blkio/cgroup.procs ]; then
  CG_ROOT=/sys/fs/cgroup/blkio
  cg_limit() { echo "$2 $WIOPS" >"$1/blkio.throttle.write_iops_device"; }
elif grep -qw io /sys/fs/cgroup/cgroup.controllers 2>/dev/null; then
  CG_ROOT=/sys/fs/cgroup
  if ! grep -qw io "$CG_ROOT/cgroup.subtree_control"; then
    echo +io >"$CG_ROOT/cgroup.subtree_control"
    IO_ENABLED=1
  fi
  cg_limit() { echo "$2 wiops=$WIOPS" >"$1/io.max"; }
else
  echo "SKIP: $T_NAME: no cgroup controller to limit writes (neither v1 blkio at /sys/fs/cgroup/blkio nor v2 io in /sys/fs/cgroup/cgroup.controllers)"
  exit 77
fi
t_pick_ports

LOOPS=() MOUNTS=() CGROUPS=()
t_before_rm() {
  local m l g
  for m in "${MOUNTS[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
  for l in "${LOOPS[@]}"; do losetup -d "$l" 2>/dev/null || true; done
  # Every process that was in them is gone (t_cleanup killed and reaped them first).
  for g in "${CGROUPS[@]}"; do rmdir "$g" 2>/dev/null || true; done
  [ -z "$IO_ENABLED" ] || echo -io >"$CG_ROOT/cgroup.subtree_control" 2>/dev/null || true
}

for i in 1 2 3; do
  mkdir -p "$T_DIR/node$i/raft"; chown postgres:postgres "$T_DIR/node$i"
  truncate -s 128M "$T_DIR/raft$i.img"
  mkfs.ext4 -q -F "$T_DIR/raft$i.img"
  l=$(losetup -f --show "$T_DIR/raft$i.img"); LOOPS+=("$l")
  mount "$l" "$T_DIR/node$i/raft"; MOUNTS+=("$T_DIR/node$i/raft")
  # An empty directory, as the agent expects of a first start.
  rmdir "$T_DIR/node$i/raft/lost+found"
  chown postgres:postgres "$T_DIR/node$i/raft"; chmod 0700 "$T_DIR/node$i/raft"
  g="$CG_ROOT/raftpg-$T_NAME-$$-node$i"; mkdir "$g"; CGROUPS+=("$g")
  cg_limit "$g" "$(cat "/sys/block/$(basename "$l")/dev")"
done

for i in 1 2 3; do t_write_conf "$i" 3; t_start "$i"; done
t_wait 90 "a primary and two streaming standbys" t_pg_healthy 1 2 3
P=$(t_pg_primary 1); Pi=${P#node}
t_psql "$Pi" -c "CREATE TABLE slow (id bigint PRIMARY KEY, at timestamptz DEFAULT now())"
PM=$(t_pg_pid "$Pi")
# Renewals through the echo on node I.
echo_renewals() {
  curl -s -m 2 "http://$(t_api_addr "$1")/metrics" |
    awk '$1 ~ /^raftpg_lease_renewals_total[{].*via="echo"/ { print $NF; exit }' || true
}
echo_seen() { [ "$(echo_renewals "$Pi")" -gt 0 ] 2>/dev/null; }
t_wait 10 "echo renewals on $P" echo_seen
echo0=$(echo_renewals "$Pi")

# Bad probes get a clear 4xx (the leader's own probes are checked by the renewals above). A
# probe holds one of the voter's 32 slots for up to ET/2, so it must be signed under the cluster
# secret, and each signed probe is taken once.
S=$(( Pi % 3 + 1 ))
probe() { curl -s -m 5 -o "$T_DIR/probe.out" -w '%{http_code}' "$@"; }
sign() { "$T_BIN" ctl --api "$(t_api_addr "$S")" sign GET "$1"; }
sprobe() { probe -H "Authorization: $(sign "$1")" "http://$(t_api_addr "$S")$1"; }
NONCE=$(printf '%064d' 0)
code=$(probe "http://$(t_api_addr "$S")/raftpg/lease-echo?leader=$S&term=1&seq=1&nonce=$NONCE")
t_check "an unsigned probe: 401 naming why" t_eq "$code $(jq -r .error "$T_DIR/probe.out")" \
  "401 lease echo refused: no Raftpg-MAC authorization (a probe comes from the leader, signed under the cluster secret)"
code=$(probe -H "Authorization: $(sign "/raftpg/lease-echo?leader=$S&term=1&seq=1&nonce=$NONCE")" \
  "http://$(t_api_addr "$S")/raftpg/lease-echo?leader=$S&term=1&seq=2&nonce=$NONCE")
t_check "a probe signed for another query: 401" t_eq "$code" 401
code=$(sprobe "/raftpg/lease-echo?leader=$Pi&term=1&nonce=$NONCE")
t_check "a probe without seq: 400 naming it" t_eq "$code $(jq -r .error "$T_DIR/probe.out")" \
  "400 bad lease echo: seq is missing (in the query of /raftpg/lease-echo)"
code=$(sprobe "/raftpg/lease-echo?leader=$Pi&term=x&seq=1&nonce=$NONCE")
t_check "a probe with a bad term: 400 naming it" t_eq "$code $(jq -r .error "$T_DIR/probe.out")" \
  "400 bad lease echo: term must be a positive number (in the query of /raftpg/lease-echo)"
code=$(sprobe "/raftpg/lease-echo?leader=$Pi&term=1&seq=1&nonce=abc")
t_check "a probe with a bad nonce: 400" t_eq "$code" 400
code=$(probe -X POST -H "Content-Type: application/json" -d "{}" \
  "http://$(t_api_addr "$S")/raftpg/lease-echo")
t_check "a POST: 405" t_eq "$code" 405
# A member's probe of a leader that is not this member's gets no after ET/2, with a proof; the
# same request again is a replay.
Q="/raftpg/lease-echo?leader=$S&term=1&seq=1&nonce=$NONCE"
AUTH=$(sign "$Q")
code=$(probe -H "Authorization: $AUTH" "http://$(t_api_addr "$S")$Q")
t_check "a probe for another leader: 200, no" t_eq "$code $(jq -r .echo "$T_DIR/probe.out")" "200 no"
code=$(probe -H "Authorization: $AUTH" "http://$(t_api_addr "$S")$Q")
t_check "the same signed probe again: 401" t_eq "$code" 401
# Strangers cannot fill the slots: 40 unsigned probes at once (more than the 32 slots; each would
# be held ET/2 if taken) are refused at once, and a signed probe sent among them is answered.
SPIDS=()
for n in $(seq 1 40); do
  curl -s -m 5 -o /dev/null -w '%{http_code}\n' \
    "http://$(t_api_addr "$S")/raftpg/lease-echo?leader=$S&term=1&seq=$((n + 10))&nonce=$NONCE" \
    >"$T_DIR/stranger.$n" &
  SPIDS+=($!)
done
Q="/raftpg/lease-echo?leader=$S&term=1&seq=2&nonce=$NONCE"
code=$(probe -H "Authorization: $(sign "$Q")" "http://$(t_api_addr "$S")$Q")
for p in "${SPIDS[@]}"; do wait "$p" || true; done
t_check "every stranger's probe was refused (401)" \
  t_eq "$(cat "$T_DIR"/stranger.* | sort | uniq -c | awk '{ print $1, $2 }')" "40 401"
t_check "the member's probe among them was answered: 200, no" \
  t_eq "$code $(jq -r .echo "$T_DIR/probe.out")" "200 no"
t_check "the voter counted the refusals" \
  test "$(t_metric "$S" raftpg_lease_echoes_refused_total)" -ge 42

# One long-lived session through the primary (as test_fence_blip).
t_session_start "$Pi"
BACKEND=$(t_session_backend first)

# Every agent (its threads and what it starts from now on) into its node's throttled cgroup.
for i in 1 2 3; do echo "${T_PIDS[$i]}" >"${CGROUPS[$((i - 1))]}/cgroup.procs"; done
t_log "primary $P; Raft writes limited to $WIOPS a second per node for $SLOW_S s"
id=0
end=$((SECONDS + SLOW_S))
while [ $SECONDS -lt $end ]; do
  id=$((id + 1))
  t_session_send "INSERT INTO slow (id) VALUES ($id);" || break
  sleep 0.1
  t_pid_running "$T_SESSION" || { t_log "the session ended after $id inserts"; break; }
done
t_session_send "SELECT 'backend ' || pg_backend_pid();" || true
t_session_send "SELECT 'rows ' || count(*) FROM slow;" || true
t_wait 10 "the session's last answer" grep -q '^rows ' "$T_DIR/session.out" || true

echo1=$(echo_renewals "$Pi")
barrier_max_ms=$(awk -v v="$(t_metric "$Pi" raftpg_lease_renewal_max_seconds)" \
  'BEGIN { printf "%d", v * 1000 }')
t_log "on $P: echo renewals $echo0 -> $echo1, longest barrier renewal ${barrier_max_ms} ms;" \
  "soft pauses $(grep -c 'postgresql paused' "$T_DIR/$P.log" || true)"
t_check "the barriers were slower than the lease (the disk was slow for real)" \
  test "$barrier_max_ms" -gt 400
t_check "echoes renewed the lease meanwhile (about 8 a second)" \
  test "$((echo1 - echo0))" -ge $((SLOW_S * 4))
t_check "the client session survived" t_eq "$(t_session_backend last)" "$BACKEND"
t_check "every insert was acknowledged" t_eq "$(grep '^rows ' "$T_DIR/session.out")" "rows $id"
t_check "the postmaster never restarted" t_eq "$(t_pg_pid "$Pi")" "$PM"
t_check "the primary never changed" t_eq "$(t_pg_primary 1)" "$P"
t_check "no hard fence on the primary" \
  t_eq "$(grep -c 'fencing: postgresql may accept writes without a lease' "$T_DIR/$P.log" || true)" 0
t_check "no leader stepped aside for its disk" \
  t_eq "$(cat "$T_DIR"/node*.log | grep -c 'leader steps aside' || true)" 0
t_session_stop
# The cgroups let go of the agents before they stop (their last writes would crawl).
for i in 1 2 3; do echo "${T_PIDS[$i]}" >"$CG_ROOT/cgroup.procs"; done
for i in 1 2 3; do t_alive "$i" && t_kill "$i" TERM; done
t_done
