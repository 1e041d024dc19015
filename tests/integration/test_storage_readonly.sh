#!/usr/bin/env bash
# Storage faults (issue 18, item 2): a standby's Raft directory is made read-only (a bind mount
# remounted read-only), then writable again, then its agent is killed and restarted, under
# numbered writes and a stream of Raft entries (so that libraft fills its small open segments and
# fails to write while read-only). The spell must show (log with errno, /status, ctl list).
# libraft 0.15 then holds entries in memory it never writes, and a restart would load the later
# ones at the wrong indexes; the agent writes nothing after the first failed write and, once the
# directory takes writes again, restarts Raft from it, checking what it loads against the log in
# memory. The member either runs with a log that agrees with the others (all members' state
# checksums equal at the same applied index), also after its agent is restarted, or refuses to
# start saying why, in which case the remedy of the message (directory aside, remove, add again)
# is applied and it must then agree. No acknowledged row may be lost. Mounts are made here and
# unmounted at the end (root only).
T_PG=1
source "$(dirname "$0")/lib.sh"
[ "$(id -u)" -eq 0 ] || { echo "FAIL: needs root (mounts)"; exit 1; }
RO_S=${STORAGE_RO_S:-30}
t_pick_ports

MOUNTS=()
cleanup_all() {
  local rc=$? n m
  touch "$T_DIR/churn.stop"
  [ ! -f "$T_DIR/writer.pid" ] || { touch "$T_DIR/stop"; wait "$(cat "$T_DIR/writer.pid")" 2>/dev/null || true; }
  for n in "${!T_PIDS[@]}"; do kill -KILL "${T_PIDS[$n]}" 2>/dev/null || true; done
  for n in "${!T_PIDS[@]}"; do wait "${T_PIDS[$n]}" 2>/dev/null || true; done
  t_kill_all_pg
  for m in "${MOUNTS[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
  # t_cleanup shows the logs when the test failed; a set -e exit counts as one.
  [ "$rc" -eq 0 ] || T_FAILED=1
  t_cleanup
}
trap cleanup_all EXIT

D="$T_DIR/node3/raft"
for i in 1 2 3; do mkdir -p "$T_DIR/node$i"; chown postgres:postgres "$T_DIR/node$i"; done
# A small directory: 64 KiB open segments, so some are filled during the spell.
mkdir -p "$D"
mount -t tmpfs -o "size=640k,mode=0700,uid=$(id -u postgres),gid=$(id -g postgres)" tmpfs "$D"
MOUNTS+=("$D")

# node3 is to be a follower. A new cluster needs every initial member's answer, so all three
# start together; node3's election time-out is four times the others', so node1 or node2 leads.
for i in 1 2; do t_write_conf "$i" 3; done
T_ELECTION_TIMEOUT=2000 t_write_conf 3 3
t_start 1; t_start 2; t_start 3
leader12() { local l; l=$(t_jq 1 '.raft.leader // empty'); [ -n "$l" ] && [ "$l" != node3 ]; }
t_wait 30 "a leader among node1 and node2" leader12
t_wait 60 "a healthy cluster" t_pg_healthy 1 2 3
P=$(t_pg_primary 1); Pi=${P#node}
t_check "node3 is not the leader" test "$P" != node3
t_psql "$Pi" -c "CREATE TABLE w (id bigint PRIMARY KEY)"

ACKED="$T_DIR/acked"
: >"$ACKED"
t_writer w 600 &
echo $! >"$T_DIR/writer.pid"
acked_after() { [ "$(wc -l <"$ACKED")" -gt "$1" ]; }
t_wait 20 "writes acknowledged" acked_after 10
t_check "node3 chose 64 KiB segments" grep -q "open_segment_size=65536 bytes" "$T_DIR/node3.log"

# Raft entries: the same synchronous_node_count committed again and again through the leader
# (nodes 1 and 2 lead; node3's /status is not asked while its directory is read-only).
churn() {
  local deadline=$((SECONDS + 300)) i l=1 n
  while [ $SECONDS -lt $deadline ] && [ ! -f "$T_DIR/churn.stop" ]; do
    for i in 1 2; do
      [ "$(curl -s -m 2 "http://$(t_api_addr "$i")/status" | jq -r .raft_role 2>/dev/null)" = leader ] && l=$i
    done
    for n in $(seq 1 100); do
      curl -s -m 2 -o /dev/null -X PATCH -H 'Content-Type: application/json' \
        -d '{"synchronous_node_count": 1}' "http://$(t_api_addr "$l")/config" || true
    done
  done
}
CPIDS=()
for c in 1 2 3 4; do churn & CPIDS+=($!); done
t_log "node3's raft directory read-only for ${RO_S}s"
mount --bind "$D" "$D"; MOUNTS+=("$D")
mount -o remount,bind,ro "$D"
O=1; [ "$Pi" = 1 ] && O=2
failing() { [ "$(t_jq "$O" '.members[] | select(.name == "node3") | .raft_storage')" = failing ]; }
t_wait 15 "ctl list showing node3's storage failing" failing
t_check "node3's metric raftpg_raft_storage_failing is 1" \
  t_eq "$(t_metric 3 raftpg_raft_storage_failing)" 1
t_check "node3 takes no read traffic meanwhile (/replica 503), its agent runs (/liveness 200)" \
  t_eq "$(t_api_code 3 GET /replica) $(t_api_code 3 GET /liveness)" "503 200"
t_check "node3 logged the failure with its path and errno (EROFS)" \
  grep -qE "raft storage cannot persist: .*$D.*errno=30" "$T_DIR/node3.log"
sleep "$RO_S"
t_check "... once" t_eq "$(grep -c 'raft storage cannot persist' "$T_DIR/node3.log")" 1
mount -o remount,bind,rw "$D"
t_wait 15 "node3's storage back" grep -q "raft storage persists again" "$T_DIR/node3.log"
fenced=$(grep -c "writes nothing more to its log" "$T_DIR/node3.log" || true)
restarted() { grep -qE "raft restarted from its directory after a failed write|raft start .*not the log held" "$T_DIR/node3.log"; }
INPROC=0
if [ "$fenced" != 0 ]; then
  t_wait 15 "node3's raft restarted from its directory" restarted
  if grep -q "raft restarted from its directory after a failed write" "$T_DIR/node3.log"; then
    INPROC=1
    grep -E "restarting raft from|raft restarted from" "$T_DIR/node3.log" | sed 's/^/  /'
  fi
fi
sleep 3
touch "$T_DIR/churn.stop"; for c in "${CPIDS[@]}"; do wait "$c" 2>/dev/null || true; done
t_log "node3 writable again after $(grep -c . "$ACKED") acknowledged rows; killing and restarting its agent"
grep -E "raft log may have lost entries|recorded in" "$T_DIR/node3.log" | sed 's/^/  /' || true
t_kill 3 KILL
ls -l "$D" | sed 's/^/  /'
# What the directory holds: used open segments (a non-zero format word) below a gap in the
# counters are ones libraft 0.15 loads after the newest entries, at the wrong indexes.
used=$(for f in "$D"/open-*; do
  if [ -e "$f" ] && [ "$(od -An -tu8 -N8 "$f" | tr -d ' ')" != 0 ]; then echo "${f##*/open-}"; fi
done | sort -n)
top=$(tail -1 <<<"$used")
all=$(ls "$D" | sed -n 's/^open-//p' | sort -n || true)
low=$top
while [ -n "$low" ] && grep -qx "$((low - 1))" <<<"$all"; do low=$((low - 1)); done
stale=$(for c in $used; do if [ "$c" -lt "$low" ]; then echo "open-$c"; fi; done | tr '\n' ' ')
lost=$(grep -c "raft log may have lost entries" "$T_DIR/node3.log" || true)
t_log "leftover open segments: ${stale:-none}; entries reported lost: $lost"
t_start 3
n=0
while t_alive 3 && [ $n -lt 50 ]; do sleep 0.1; n=$((n + 1)); done
if [ "$INPROC" = 1 ]; then
  # Raft restarted from this directory and found it holding the log it had in memory.
  t_check "a directory raft restarted on intact is not refused" t_alive 3
elif [ -n "$stale" ] || [ "$lost" != 0 ]; then
  t_check "a directory with leftover open segments or lost entries is refused" bash -c "! kill -0 ${T_PIDS[3]} 2>/dev/null"
fi
if ! t_alive 3; then
  refusal=$(grep -E "may have lost entries in a failed write|stale open segments" "$T_DIR/node3.log" | tail -1 || true)
  t_check "node3 refused its directory, saying why and the remedy" \
    t_contains "$refusal" "move the directory aside, then remove and re-add the member"
  t_log "refused: ${refusal##*ERROR}"
  unset "T_PIDS[3]"
  # The remedy: the directory aside, the member removed, started (it waits), added again.
  mkdir -p "$T_DIR/node3-aside"; mv "$D"/* "$T_DIR/node3-aside/"
  "$T_BIN" ctl --api "$(t_api_addr "$O")" --timeout 1000 member remove node3 >/dev/null
  t_start 3
  waiting() { grep -q "not a member yet" "$T_DIR/node3.log"; }
  t_wait 20 "node3 waits to be added" waiting
  "$T_BIN" ctl --api "$(t_api_addr "$O")" --timeout 1000 member add node3 \
    --raft "$(t_raft_addr 3)" --api "$(t_api_addr 3)" >/dev/null
  REFUSED=1
else
  t_log "node3 restarted on its directory"
  REFUSED=0
fi
t_wait 120 "a healthy cluster after the restart" t_pg_healthy 1 2 3

touch "$T_DIR/stop"; wait "$(cat "$T_DIR/writer.pid")" 2>/dev/null || true; rm -f "$T_DIR/writer.pid"
P=$(t_pg_primary 1); Pi=${P#node}
t_check "no acknowledged row lost ($(wc -l <"$ACKED") acknowledged)" t_acked_all "$ACKED" "$Pi" w

# All members at the same applied index must have the same state checksum.
t_check_states 1 2 3
t_log "outcome: $([ $REFUSED = 1 ] && echo 'refused, then re-added' || echo 'restarted on its directory') (raft restarted in the agent after the spell: $INPROC)"
for i in 1 2 3; do t_alive "$i" && t_kill "$i" TERM; done
t_done
