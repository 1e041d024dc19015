#!/usr/bin/env bash
# Storage faults: the primary's data directory fills up under numbered writes. Its agent must
# see it (the kernel's free-space figure, not a failed insert), hand over to a standby within
# the documented bound (HA_UNWRITABLE_BOUND_MS, 10 s) plus a failover, lose no acknowledged row,
# and once space is freed the old primary must rejoin as a standby. Each data directory is a
# tmpfs of its own, made and removed by the test (root only).
T_PG=1
source "$(dirname "$0")/lib.sh"
if [ "$(id -u)" -ne 0 ]; then echo "SKIP: needs root to mount a tmpfs per data directory"; exit 0; fi
t_pick_ports
MOUNTS=()
umount_all() {
  local m
  for m in "${MOUNTS[@]}"; do umount -l "$m" 2>/dev/null || true; done
}
for i in 1 2 3; do
  d="$T_DIR/node$i/pgdata"
  mkdir -p "$d"
  chown postgres:postgres "$T_DIR/node$i"
  mount -t tmpfs -o size=400m,mode=0700,uid="$(id -u postgres)",gid="$(id -g postgres)" tmpfs "$d"
  MOUNTS+=("$d")
done
t_before_rm() { umount_all; }
trap 'touch "$T_DIR/stop"; wait "${WPID:-0}" 2>/dev/null || true; t_cleanup' EXIT
for i in 1 2 3; do t_write_conf "$i" 3; t_start "$i"; done
t_wait 90 "a healthy cluster" t_pg_healthy 1 2 3
P=$(t_pg_primary 1); Pi=${P#node}
t_psql "$Pi" -c "CREATE TABLE fill (id bigint PRIMARY KEY)"

ACKED="$T_DIR/acked"
: >"$ACKED"
t_writer fill 300 &
WPID=$!
acked_more() { [ "$(wc -l <"$ACKED")" -gt "$1" ]; }
t_wait 30 "writes acknowledged" acked_more 20

# Fill the primary's file system, leaving a few MiB: less than one WAL segment.
D="$T_DIR/node$Pi/pgdata"
avail_kb=$(df -k --output=avail "$D" | tail -n 1 | tr -d ' ')
fill_kb=$((avail_kb - 4096))
"${T_RUNAS[@]}" dd if=/dev/zero of="$D/filler" bs=1024 count="$fill_kb" status=none || true
filled_at=$(date +%s%N)
t_log "filled $D: $(df -k --output=avail "$D" | tail -n 1 | tr -d ' ') KiB left"
unwritable() { [ "$(t_metric "$Pi" raftpg_postgres_unwritable)" = 1 ]; }
t_poll 15 unwritable || true
t_check "$P's metric raftpg_postgres_unwritable is 1 during the fault" unwritable
t_check "... while the standbys' is 0" t_eq "$(for i in 1 2 3; do
  [ "$i" = "$Pi" ] || t_metric "$i" raftpg_postgres_unwritable; done | tr -d '\n')" 00
new_primary() { local p; p=$(t_pg_primary "$1"); [ -n "$p" ] && [ "$p" != "$P" ] && echo "$p"; }
O=1; [ "$O" = "$Pi" ] && O=2
t_wait 60 "a new primary after $P's disk filled" new_primary "$O"
NP=$(new_primary "$O"); NPi=${NP#node}
n=$(wc -l <"$ACKED")
t_wait 30 "a write acknowledged by the new primary" acked_more "$n"
took_ms=$(( ($(date +%s%N) - filled_at) / 1000000 ))
t_log "new primary $NP; from the fill to the first acknowledged write after it: $took_ms ms"
t_check "$P said why it stepped aside" grep -q "postgresql cannot write: the file system of $D" \
  "$T_DIR/$P.log"
t_check "the handover names the cause" grep -q "postgresql cannot write for [0-9]* s" "$T_DIR/$P.log"
t_check "within the bound plus a failover (30 s)" test "$took_ms" -lt 30000

# Space back: the old primary rejoins as a standby of the new one.
rm -f "$D/filler"
t_wait 90 "the old primary back as a standby" t_pg_healthy 1 2 3
touch "$T_DIR/stop"; wait "$WPID" 2>/dev/null || true
t_check "no acknowledged row lost ($(wc -l <"$ACKED") acknowledged)" t_acked_all "$ACKED" "$NPi" fill
t_check "it can write again" t_wait 10 "the line" grep -q "postgresql can write again" "$T_DIR/$P.log"
t_check "its raftpg_postgres_unwritable is back to 0" \
  t_eq "$(t_metric "$Pi" raftpg_postgres_unwritable)" 0
t_check_states 1 2 3
for i in 1 2 3; do t_alive "$i" && t_kill "$i" TERM; done
t_done
