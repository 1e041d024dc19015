#!/usr/bin/env bash
# An agent killed while its bootstrap.post_bootstrap script runs: its directory ran as primary
# and was never recorded. At its next start the agent must undo that bootstrap (server stopped,
# directory moved aside) instead of adopting a directory whose script never finished; another
# member bootstraps and runs the script, and the first one clones from it.
T_PG=1
source "$(dirname "$0")/lib.sh"
t_pick_ports
t_time_bound 120

# post.sh URL: appends "nodeI" to $T_DIR/calls; with $T_DIR/slow-once its first run waits (up
# to 60 s, its PID in $T_DIR/post.pid) for its agent to be killed, otherwise it creates a role.
cat >"$T_DIR/post.sh" <<EOF
#!/usr/bin/env bash
set -euo pipefail
url=\$1
port=\${url##*:}; port=\${port%%/*}
echo "node\$((port - $T_BASE - 10))" >>"$T_DIR/calls"
if [ -e "$T_DIR/slow-once" ]; then
  rm -f "$T_DIR/slow-once"
  echo \$\$ >"$T_DIR/post.pid"
  exec sleep 60
fi
psql -X -q -v ON_ERROR_STOP=1 "\$url" -c 'CREATE ROLE app_owner LOGIN'
EOF
chmod 755 "$T_DIR/post.sh"
[ "$(id -u)" -ne 0 ] || chown postgres:postgres "$T_DIR/post.sh"
export PATH="$T_PG_BIN:$PATH"
touch "$T_DIR/slow-once"
for i in 1 2 3; do
  t_write_conf "$i" 3
  printf 'bootstrap:\n  post_bootstrap: %s/post.sh\n' "$T_DIR" >>"$T_DIR/node$i.yaml"
done
calls() { if [ -f "$T_DIR/calls" ]; then wc -l <"$T_DIR/calls"; else echo 0; fi; }
running() { [ "$(calls)" -ge 1 ]; }
for i in 1 2 3; do t_start "$i"; done
t_wait 60 "the script running on the member that initialises the cluster" running
F=$(head -n1 "$T_DIR/calls"); Fi=${F#node}
t_check "$F's bootstrap is in progress" test -f "$T_DIR/$F/pgdata.bootstrapping"
# Killed: a clean stop undoes the bootstrap itself (its script killed with it); a kill leaves it
# to the next start. The script, left running, is ended by its PID.
t_kill "$Fi" KILL
t_wait 10 "the script's PID" test -s "$T_DIR/post.pid"
kill "$(cat "$T_DIR/post.pid")" 2>/dev/null || true
t_log "$F's agent killed during its script"
t_check "nothing was recorded" t_eq "$(t_jq "$(( Fi % 3 + 1 ))" '.system_id // "none"')" none
t_start "$Fi"
t_wait 90 "a primary and two streaming standbys" t_pg_healthy 1 2 3
B=$(t_pg_primary 1)
t_check "$F undid its bootstrap at its start" \
  grep -q "bootstrap: $T_DIR/$F/pgdata.bootstrapping exists: this member's last bootstrap did not complete" "$T_DIR/$F.log"
t_check "$F's interrupted directory is moved aside" test -f "$T_DIR/$F/pgdata.bootstrap-failed/PG_VERSION"
t_check "another member bootstrapped ($B)" t_ne "$B" "$F"
t_check "the script ran twice: interrupted on $F, then on $B" t_eq "$(tr '\n' ' ' <"$T_DIR/calls")" "$F $B "
t_check "no bootstrap is in progress any more" t_eq "$(ls "$T_DIR"/node?/pgdata.bootstrapping 2>/dev/null || true)" ""
for i in 1 2 3; do
  t_check "node$i holds the script's role" \
    t_eq "$(t_psql "$i" -c "SELECT count(*) FROM pg_roles WHERE rolname = 'app_owner'")" 1
done
t_check "$F's server has $B's system (cloned from it)" \
  t_eq "$("$T_PG_BIN/pg_controldata" "$T_DIR/$F/pgdata" | sed -n 's/^Database system identifier: *//p')" "$(t_jq 1 '.system_id')"
for i in 1 2 3; do t_kill "$i" TERM; done
t_done
