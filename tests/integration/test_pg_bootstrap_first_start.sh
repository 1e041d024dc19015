#!/usr/bin/env bash
# Bootstrap whose first start as primary fails (every member's PostgreSQL port is taken by
# another program while the cluster forms). initdb's control file records its own
# max_connections (100); the directory is started read-only next, and a standby with the
# configured 30 used to refuse that start for good ("recovery aborted because of insufficient
# parameter settings"). Once the ports are free the directory initdb made must run as primary,
# and its control file must record the configured max_connections; the replication role its
# bootstrap did not create is created with the primary's slots, so the others clone from it.
T_PG=1
source "$(dirname "$0")/lib.sh"
t_pick_ports

# Listeners on the three PostgreSQL ports, bounded in time, stopped by PID.
BLOCKERS=()
for i in 1 2 3; do
  python3 -c 'import socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(1)
time.sleep(120)' "$(t_pg_port "$i")" &
  BLOCKERS+=($!)
done
free_ports() {
  local b
  for b in "${BLOCKERS[@]}"; do kill "$b" 2>/dev/null || true; done
  for b in "${BLOCKERS[@]}"; do wait "$b" 2>/dev/null || true; done
  BLOCKERS=()
}
trap 'free_ports; t_cleanup' EXIT
taken() { [ "$(ss -ltnH "sport = :$(t_pg_port 3)" | wc -l)" -ge 1 ]; }
t_wait 10 "the PostgreSQL ports taken" taken

for i in 1 2 3; do t_write_conf "$i" 3; t_start "$i"; done
first_start_failed() { grep -qs "bootstrap failed: .*could not create any TCP/IP sockets" "$T_DIR"/node*.log; }
t_wait 120 "the bootstrap's start as primary failing on the taken port" first_start_failed
free_ports
t_log "ports free again"

B=$(grep -l "bootstrap failed: .*could not create any TCP/IP sockets" "$T_DIR"/node*.log | head -n 1)
B=$(basename "$B" .log); Bi=${B#node}
t_log "$B ran initdb; its first start failed"
primary() { [ "$(t_psql "$Bi" -c 'SELECT pg_is_in_recovery()')" = f ]; }
t_wait 90 "$B's directory running as primary once the port is free" primary
t_check "$B's server never refused to start for insufficient parameter settings" \
  t_absent "insufficient parameter settings" "$T_DIR/$B/pgdata.log"
recorded() { # the max_connections node B's control file records
  "$T_PG_BIN/pg_controldata" "$T_DIR/$B/pgdata" | sed -n 's/^max_connections setting: *//p'
}
t_check "$B's control file records the configured max_connections (30)" t_eq "$(recorded)" 30
# Its bootstrap never reached the roles step: the primary creates the replication role with its
# slots, and the other members clone from it.
t_wait 120 "a primary and two streaming standbys" t_pg_healthy 1 2 3
t_check "the replication role exists on the primary" \
  t_eq "$(t_psql "$Bi" -c "SELECT count(*) FROM pg_roles WHERE rolname = 'replicator' AND rolreplication")" 1
t_check "a primary and two streaming standbys" t_pg_healthy 1 2 3
for i in 1 2 3; do t_alive "$i" && t_kill "$i" TERM; done
t_done
