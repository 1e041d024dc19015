#!/usr/bin/env bash
# A new cluster over existing data directories (every member lost its Raft directory; the same
# holds for a migration) adopts the one furthest ahead, never just the first leader's: one
# standby is stopped early and misses acknowledged rows, all Raft directories are wiped, and that
# standby leads the new cluster. Every acknowledged row must be on the new primary, and the cluster must
# become healthy with all three members streaming.
T_PG=1
source "$(dirname "$0")/lib.sh"
t_pick_ports
for i in 1 2 3; do t_write_conf "$i" 3; t_start "$i"; done
t_wait 60 "a healthy cluster" t_pg_healthy 1 2 3
P=$(t_pg_primary 1); Pi=${P#node}
S1=""; S2=""
for i in 1 2 3; do
  [ "$i" = "$Pi" ] && continue
  if [ -z "$S1" ]; then S1=$i; else S2=$i; fi
done
t_log "primary $P, early-stopped standby node$S1, up-to-date standby node$S2"
t_psql "$Pi" -c "CREATE TABLE adopt (id int PRIMARY KEY)"
t_psql "$Pi" -c "INSERT INTO adopt SELECT generate_series(1, 100)"
t_kill "$S1" TERM
# Acknowledged by node$S2 alone (ANY 1 of the two standbys): node$S1 never sees these rows.
acked=100
for b in 1 2 3 4 5; do
  if PGCONNECT_TIMEOUT=3 timeout -s KILL 10 psql -X -q -A -t -h 127.0.0.1 -p "$(t_pg_port "$Pi")" \
       -U postgres -d postgres \
       -c "INSERT INTO adopt SELECT generate_series($((acked + 1)), $((acked + 20)))"; then
    acked=$((acked + 20))
  fi
done
t_check "rows acknowledged while node$S1 was down" t_eq "$acked" 200
for i in "$Pi" "$S2"; do t_kill "$i" TERM; done
rm -rf "$T_DIR/node1/raft" "$T_DIR/node2/raft" "$T_DIR/node3/raft"
for i in 1 2 3; do : >"$T_DIR/node$i.log"; done

# node$S1 campaigns first (the others' election time-out is four times longer): it is the
# leader that must not adopt its own directory.
for i in 1 2 3; do
  if [ "$i" = "$S1" ]; then T_ELECTION_TIMEOUT=500 t_write_conf "$i" 3
  else T_ELECTION_TIMEOUT=2000 t_write_conf "$i" 3; fi
done
t_start "$S1"; t_start "$Pi"; t_start "$S2"
t_wait 90 "a healthy cluster over the adopted directories" t_pg_healthy 1 2 3
NP=$(t_pg_primary 1); NPi=${NP#node}
t_log "new primary $NP"
t_check "the member that missed rows was not adopted" t_ne "$NPi" "$S1"
t_check "every acknowledged row is on the new primary" \
  t_eq "$(t_psql "$NPi" -c 'SELECT count(*) FROM adopt')" "$acked"
t_check "node$S1 led the new cluster and handed over" \
  grep -q "new cluster: node[0-9] is further ahead .*: handing over" "$T_DIR/node$S1.log"
# A member that has just bootstrapped answers that it has no cluster history even before its
# Raft starts (one election time-out later), so no initial member waits a retry for it.
t_check "no initial member waited for another's just-bootstrapped raft state" \
  t_absent 'has raft state but knows no cluster state yet' "$T_DIR"/node*.log
t_check "the existing directories ran read-only first" \
  grep -q "starting the existing data directory read-only" "$T_DIR/node$S1.log"
t_check "no initdb over existing data" \
  t_absent 'initialising postgresql' "$T_DIR"/node*.log
t_check "the same data: one system identifier" \
  t_eq "$(for i in 1 2 3; do t_psql "$i" -c 'SELECT system_identifier FROM pg_control_system()'; done | sort -u | wc -l)" 1
for i in 1 2 3; do t_alive "$i" && t_kill "$i" TERM; done
t_done
