#!/usr/bin/env bash
# Storage faults (issue 18, item 1): a standby's Raft directory is a 3 MiB tmpfs from the start.
# libraft's default 8 MiB open segments cannot be allocated there, so the node used to persist
# nothing while looking healthy; it must pick a segment size that fits and persist, so that the
# cluster keeps committing (and PostgreSQL keeps accepting writes) once another node is stopped.
# A directory too small even for the smallest segment is refused at start, naming it.
# Mounts are made here and unmounted at the end (root only).
T_PG=1
source "$(dirname "$0")/lib.sh"
[ "$(id -u)" -eq 0 ] || { echo "FAIL: needs root (tmpfs mounts)"; exit 1; }
t_pick_ports

MOUNTS=()
mount_tmpfs() { # DIR SIZE
  mkdir -p "$1"
  mount -t tmpfs -o "size=$2,mode=0700,uid=$(id -u postgres),gid=$(id -g postgres)" tmpfs "$1"
  MOUNTS+=("$1")
}
cleanup_all() {
  local rc=$? n m
  for n in "${!T_PIDS[@]}"; do kill -KILL "${T_PIDS[$n]}" 2>/dev/null || true; done
  for n in "${!T_PIDS[@]}"; do wait "${T_PIDS[$n]}" 2>/dev/null || true; done
  t_kill_all_pg
  for m in "${MOUNTS[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
  # t_cleanup shows the logs when the test failed; a set -e exit counts as one.
  [ "$rc" -eq 0 ] || T_FAILED=1
  t_cleanup
}
trap cleanup_all EXIT

for i in 1 2 3; do mkdir -p "$T_DIR/node$i"; chown postgres:postgres "$T_DIR/node$i"; done
mount_tmpfs "$T_DIR/node3/raft" 3m

for i in 1 2 3; do t_write_conf "$i" 3; t_start "$i"; done
t_wait 60 "a healthy cluster" t_pg_healthy 1 2 3
t_check "node3 chose 256 KiB segments for its 3 MiB directory" \
  grep -q "open_segment_size=262144 bytes" "$T_DIR/node3.log"
st=$(curl -s "http://$(t_api_addr 3)/status")
t_check "node3's /status: storage ok" t_eq "$(jq -r '.raft_storage.ok' <<<"$st")" true
t_check "node3's /status: the segment size" t_eq "$(jq -r '.raft_storage.segment_size' <<<"$st")" 262144
t_check "node3's metric raftpg_raft_storage_failing is 0 (its directory persists)" \
  t_eq "$(t_metric 3 raftpg_raft_storage_failing)" 0
t_check "node3's /readiness is 200 (its storage is healthy)" \
  t_eq "$(t_api_code 3 GET /readiness)" 200
t_check "node3 wrote closed segments or a used open segment" \
  test -n "$(find "$T_DIR/node3/raft" -name '[0-9]*-[0-9]*' -o -name 'open-*' -size +0 | head -1)"

# Stop one of the two healthy nodes: commits now need node3.
P=$(t_pg_primary 1); Pi=${P#node}
S=1; { [ "$S" = "$Pi" ] || [ "$S" = 3 ]; } && S=2
{ [ "$S" = "$Pi" ] || [ "$S" = 3 ]; } && S=1
[ "$Pi" = 3 ] && S=1
t_psql "$Pi" -c "CREATE TABLE w (id bigint PRIMARY KEY)"
t_log "stopping node$S (primary $P)"
t_kill "$S" KILL; t_kill_pg "$S"
L=$Pi; [ "$L" = "$S" ] && L=3
commit0=$(t_jq "$L" '.raft.commit_index')
t0=$(date +%s%N)
ok=0
ACKED="$T_DIR/acked"
: >"$ACKED"
for id in $(seq 1 40); do
  if t_psql "$Pi" -c "INSERT INTO w VALUES ($id)" >/dev/null 2>&1; then
    ok=$((ok + 1)); echo "$id" >>"$ACKED"
  fi
  sleep 0.25
done
t_log "with node$S stopped: $ok of 40 writes acknowledged over $(( ($(date +%s%N) - t0) / 1000000 )) ms"
t_check "the cluster stays writable with node$S stopped" t_eq "$ok" 40
committed() { [ "$(t_jq "$L" '.raft.commit_index')" -gt "$commit0" ]; }
t_wait 10 "the raft commit index advances with node$S stopped" committed
t_check "node$Pi still primary" t_eq "$(t_pg_primary "$L")" "$P"

t_check "node3's metric raftpg_raft_storage_failing is still 0" \
  t_eq "$(t_metric 3 raftpg_raft_storage_failing)" 0

t_start "$S"
t_wait 60 "node$S back" t_pg_healthy 1 2 3
# Every acknowledged row on every member, and the same replicated state everywhere.
has_all() { t_acked_all "$ACKED" "$1" w >/dev/null; }
for i in 1 2 3; do t_poll 20 has_all "$i" || true; done # standbys replay what they received
for i in 1 2 3; do
  t_check "no acknowledged row lost on node$i ($(wc -l <"$ACKED") acknowledged)" t_acked_all "$ACKED" "$i" w
done
t_check_states 1 2 3

# A directory too small for even the smallest segment (8 x 64 KiB): refused, naming it.
t_kill 3 TERM
umount "$T_DIR/node3/raft"
mount_tmpfs "$T_DIR/node3/raft" 256k
t_start 3
gone() { ! t_alive 3; }
t_wait 30 "node3 refusing to start" gone
t_check "the refusal names the directory and the sizes" \
  grep -qE "raft directory $T_DIR/node3/raft is too small for the raft log: [0-9]+ bytes free, and even the smallest open segment \(65536 bytes\) needs 524288 bytes" "$T_DIR/node3.log"
unset "T_PIDS[3]"
for i in 1 2; do t_alive "$i" && t_kill "$i" TERM; done
t_done
