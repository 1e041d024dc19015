#!/usr/bin/env bash
# bootstrap.method, as Patroni runs a custom method: the named section's command makes the first
# data directory in place of initdb, called once with --scope, --datadir and the section's other
# keys as --key=value; raftpg starts what it leaves as primary (removing the standby.signal it
# left) and the other members clone it. The directory is the command's, asked of PostgreSQL:
# initdb without checksums and with locale C, where raftpg's own initdb turns checksums on and
# uses C.UTF-8.
T_PG=1
source "$(dirname "$0")/lib.sh"
t_pick_ports
t_time_bound 120

cat >"$T_DIR/make-dir.sh" <<EOF
#!/usr/bin/env bash
set -euo pipefail
echo "\$*" >>"$T_DIR/method.calls"
datadir=
for a in "\$@"; do case \$a in --datadir=*) datadir=\${a#--datadir=} ;; esac; done
pw=\$(mktemp "$T_DIR/pw.XXXXXX")
echo "$T_PG_PASSWORD" >"\$pw"
"$T_PG_BIN/initdb" -D "\$datadir" -U postgres --pwfile="\$pw" --auth=trust --locale=C -E UTF8 >/dev/null
rm -f "\$pw"
touch "\$datadir/standby.signal"
EOF
chmod 755 "$T_DIR/make-dir.sh"
[ "$(id -u)" -ne 0 ] || chown postgres:postgres "$T_DIR/make-dir.sh"

for i in 1 2 3; do
  t_write_conf "$i" 3
  cat >>"$T_DIR/node$i.yaml" <<EOF
bootstrap:
  method: from_script
  from_script:
    command: $T_DIR/make-dir.sh --verbose
    backup-server: main
  wal_e:
    command: /nonexistent/wal-e
EOF
done
out=$("${T_RUNAS[@]}" "$T_BIN" check-config "$T_DIR/node1.yaml" 2>&1 || true)
t_check "check-config warns of the section bootstrap.method does not name" \
  t_contains "$out" "bootstrap.wal_e: ignored: bootstrap.method names from_script"
t_check "check-config shows the method" \
  t_contains "$out" "bootstrap: method=from_script command=\"$T_DIR/make-dir.sh --verbose\" arguments=1 post_bootstrap=none"
for i in 1 2 3; do t_start "$i"; done
t_wait 60 "a primary and two streaming standbys" t_pg_healthy 1 2 3
P=$(t_pg_primary 1)
t_check "the command ran once" t_eq "$(wc -l <"$T_DIR/method.calls")" 1
t_check "with its own arguments, --scope, --datadir and the section's other keys" \
  t_eq "$(cat "$T_DIR/method.calls")" "--verbose --scope=itest --datadir=$T_DIR/$P/pgdata --backup-server=main"
t_check "$P's log names the command" \
  grep -q "bootstrap: running bootstrap.from_script.command in place of initdb: $T_DIR/make-dir.sh --verbose" "$T_DIR/$P.log"
t_check "initdb did not run" t_absent "bootstrap: running initdb" "$T_DIR"/node?.log
for i in 1 2 3; do
  t_check "node$i runs the command's directory (no checksums, locale C)" \
    t_eq "$(t_psql "$i" -c "SELECT current_setting('data_checksums') || ' ' || datcollate FROM pg_database WHERE datname = 'postgres'")" "off C"
done
t_check "the primary is out of recovery (the command's standby.signal removed)" \
  t_eq "$(t_psql "${P#node}" -c 'SELECT pg_is_in_recovery()')" f
t_check "the replication role exists in the command's directory" \
  t_eq "$(t_psql "${P#node}" -c "SELECT count(*) FROM pg_roles WHERE rolname = 'replicator' AND rolreplication")" 1
for i in 1 2 3; do t_kill "$i" TERM; done
t_done
