#!/usr/bin/env bash
# bootstrap.post_bootstrap, as Patroni runs it: once, on the member that initialised the
# cluster, after its first start as primary and before the cluster is recorded, with the local
# superuser's URL (the password in PGPASSFILE, synchronous_commit local). What it creates is on
# every member; a restart of that agent does not run it again. Then a script that fails its
# first run: that bootstrap is undone (server stopped, data directory moved aside, never
# recorded), another member bootstraps, and the first one clones from it.
T_PG=1
source "$(dirname "$0")/lib.sh"
t_pick_ports
t_time_bound 150

# post.sh URL: appends "nodeI URL passfile=... sync_commit=... recorded=SYSID|none" to
# $T_DIR/calls (the member from the URL's port, recorded from that member's cluster document),
# then creates a role and a table through the URL. With $T_DIR/fail-once, its first run fails.
cat >"$T_DIR/post.sh" <<EOF
#!/usr/bin/env bash
set -euo pipefail
url=\$1
port=\${url##*:}; port=\${port%%/*}
i=\$((port - $T_BASE - 10))
recorded=\$("$T_BIN" ctl --api "127.0.0.1:\$(($T_BASE + 20 + i))" --timeout 2000 list --json | jq -r '.system_id // "none"')
sc=\$(psql -X -A -t "\$url" -c 'SHOW synchronous_commit')
echo "node\$i \$url passfile=\${PGPASSFILE:-none} sync_commit=\$sc recorded=\$recorded" >>"$T_DIR/calls"
if [ -e "$T_DIR/fail-once" ]; then
  rm -f "$T_DIR/fail-once"
  echo "post.sh: failing on purpose" >&2
  exit 3
fi
psql -X -q -v ON_ERROR_STOP=1 "\$url" \
  -c 'CREATE ROLE app_owner LOGIN' -c 'CREATE TABLE boot_marker (id int)' -c 'INSERT INTO boot_marker VALUES (1)'
EOF
chmod 755 "$T_DIR/post.sh"
[ "$(id -u)" -ne 0 ] || chown postgres:postgres "$T_DIR/post.sh"
export PATH="$T_PG_BIN:$PATH"

write_confs() {
  local i
  for i in 1 2 3; do
    t_write_conf "$i" 3
    printf 'bootstrap:\n  post_bootstrap: %s/post.sh\n  post_bootstrap_timeout: 30\n' "$T_DIR" >>"$T_DIR/node$i.yaml"
  done
}
calls() { if [ -f "$T_DIR/calls" ]; then wc -l <"$T_DIR/calls"; else echo 0; fi; }
created_on() { # role and table on node I, asked of its PostgreSQL
  t_psql "$1" -c "SELECT (SELECT count(*) FROM pg_roles WHERE rolname = 'app_owner' AND rolcanlogin) || ' ' || (SELECT sum(id) FROM boot_marker)" 2>&1 || true
}
created() { [ "$(created_on "$1")" = "1 1" ]; }
# No server runs in directory D: no postmaster.pid, or one naming a process that is gone.
no_server_in() {
  local pid
  pid=$(head -n1 "$1/postmaster.pid" 2>/dev/null || true)
  [ -z "$pid" ] || ! t_pid_running "$pid"
}

# ---- the script succeeds -------------------------------------------------------------------
write_confs
for i in 1 2 3; do t_start "$i"; done
t_wait 60 "a primary and two streaming standbys" t_pg_healthy 1 2 3
P=$(t_pg_primary 1); Pi=${P#node}
t_check "the script ran once" t_eq "$(calls)" 1
read -r who url passfile sc recorded <"$T_DIR/calls"
t_check "it ran on the member that initialised the cluster ($P)" t_eq "$who" "$P"
t_check "its argument is the local superuser's URL" t_eq "$url" "postgresql://postgres@$(t_pg_addr "$Pi")/postgres"
t_check "the password came from the agent's password file" t_eq "$passfile" "passfile=$T_DIR/$P/pgdata.pgpass"
t_check "its statements commit locally (no standby streams yet)" t_eq "$sc" "sync_commit=local"
t_check "it ran before the cluster was recorded" t_eq "$recorded" "recorded=none"
t_check "the primary's system is recorded now" t_ne "$(t_jq 1 '.system_id // empty')" ""
for i in 1 2 3; do
  t_wait 10 "node$i holds the script's role and table" created "$i"
  t_check "node$i holds the script's role and table" t_eq "$(created_on "$i")" "1 1"
done
# A restart of the agent that ran it does not run it again.
t_kill "$Pi" TERM
t_start "$Pi"
t_wait 60 "the cluster healthy again after $P's restart" t_pg_healthy 1 2 3
t_check "the script still ran only once" t_eq "$(calls)" 1
for i in 1 2 3; do t_kill "$i" TERM; done
t_check "the first cluster's servers stopped" t_eq "$(for i in 1 2 3; do t_pg_pid "$i" || true; done)" ""

# ---- the script fails its first run --------------------------------------------------------
for i in 1 2 3; do mv "$T_DIR/node$i.log" "$T_DIR/first-node$i.log"; rm -rf "$T_DIR/node$i" "$T_DIR/node$i".*; done
rm -f "$T_DIR/calls"
touch "$T_DIR/fail-once"
write_confs
for i in 1 2 3; do t_start "$i"; done
t_wait 90 "a primary and two streaming standbys after a failed bootstrap" t_pg_healthy 1 2 3
t_check "the script ran twice: once failing, once on another member" t_eq "$(calls)" 2
F=$(sed -n '1s/ .*//p' "$T_DIR/calls"); B=$(sed -n '2s/ .*//p' "$T_DIR/calls")
t_check "another member bootstrapped ($F failed, $B succeeded)" t_ne "$F" "$B"
t_check "$B is the primary" t_eq "$(t_pg_primary 1)" "$B"
t_check "neither run saw a recorded cluster" t_eq "$(grep -c 'recorded=none$' "$T_DIR/calls")" 2
t_check "$F's log names the script and its exit code" \
  grep -q "bootstrap failed: bootstrap.post_bootstrap script $T_DIR/post.sh failed: post.sh exited 3: post.sh: failing on purpose" "$T_DIR/$F.log"
t_check "$F's failed directory is moved aside" test -f "$T_DIR/$F/pgdata.bootstrap-failed/PG_VERSION"
t_check "no server runs in the moved directory" no_server_in "$T_DIR/$F/pgdata.bootstrap-failed"
for i in 1 2 3; do
  t_wait 10 "node$i holds the script's role and table" created "$i"
  t_check "node$i holds the script's role and table" t_eq "$(created_on "$i")" "1 1"
done
t_check "$F's server has $B's system (cloned from it)" \
  t_eq "$("$T_PG_BIN/pg_controldata" "$T_DIR/$F/pgdata" | sed -n 's/^Database system identifier: *//p')" "$(t_jq 1 '.system_id')"
for i in 1 2 3; do t_kill "$i" TERM; done
t_done
