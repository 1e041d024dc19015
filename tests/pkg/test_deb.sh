#!/usr/bin/env bash
# The Debian package, end to end (root only):
# 1. scripts/build-deb.sh: dpkg-buildpackage -us -uc -b and lintian clean;
# 2. its contents (the pgbouncer hook too, executable) and dependencies;
# 3. a clean Debian 12 root (mmdebstrap, minbase, from Debian's repositories) where apt installs
#    the package and resolves its dependencies, plus systemd; the installed hook runs there;
# 4. the root booted with systemd-nspawn --boot (private network): raftpg.service, configured
#    from the example (one member, addresses on the container's loopback), starts, becomes a
#    running primary under the unit's sandbox (user postgres, only CAP_NET_ADMIN/CAP_NET_RAW);
#    kill -9 of the agent: the guard stops PostgreSQL, systemd restarts the agent, which is
#    primary again; systemctl stop leaves no process behind.
# Usage: test_deb.sh RAFTPG_BINARY [CACHE_DIR]   (CACHE_DIR keeps downloaded .debs between runs)
CACHE=${2:-}
# shellcheck source=../integration/lib.sh
source "$(dirname "$0")/../integration/lib.sh"
SRC=$(cd "$(dirname "$0")/../.." && pwd)
[ "$(id -u)" -eq 0 ] || { echo "FAIL: test_deb needs root (mmdebstrap, systemd-nspawn)"; exit 1; }
for tool in mmdebstrap systemd-nspawn nsenter dpkg-buildpackage lintian; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool is missing (scripts/install-deps.sh)"; exit 1; }
done
t0=$SECONDS

# 1. Build.
deb=$("$SRC/scripts/build-deb.sh" "$T_DIR/deb" 2>"$T_DIR/build-deb.log" | tail -n1) || true
t_check "dpkg-buildpackage builds raftpg_*_amd64.deb and lintian is clean" \
  test -f "$deb" -a "$(basename "$deb")" = "raftpg_$(dpkg-parsechangelog -l "$SRC/debian/changelog" -S Version)_amd64.deb"
[ -f "$deb" ] || { cat "$T_DIR/build-deb.log"; t_done; }
t_log "package built in $((SECONDS - t0)) s"

# 2. Contents.
contents=$(dpkg-deb -c "$deb" | awk '{print $6}')
for f in ./usr/bin/raftpg ./lib/systemd/system/raftpg.service ./usr/share/man/man8/raftpg.8.gz \
         ./usr/share/bash-completion/completions/raftpg ./etc/raftpg/raftpg.yaml.example \
         ./usr/share/doc/raftpg/copyright ./usr/share/raftpg/pgbouncer-hook; do
  t_check "the package holds $f" t_contains "$contents" "$f"
done
t_check "the pgbouncer hook is installed executable (rwxr-xr-x)" \
  t_eq "$(dpkg-deb -c "$deb" | awk '$6 == "./usr/share/raftpg/pgbouncer-hook" {print $1}')" -rwxr-xr-x
depends=$(dpkg-deb -f "$deb" Depends)
for d in postgresql-15 libraft2 libuv1 libpq5 libsodium23 libsystemd0; do
  t_check "it depends on $d" t_contains "$depends" "$d"
done
t_check "ExecStart names the installed binary" \
  t_contains "$(dpkg-deb --fsys-tarfile "$deb" | tar -xO ./lib/systemd/system/raftpg.service)" \
  "ExecStart=/usr/bin/raftpg run -c /etc/raftpg/raftpg.yaml"

# 3. A clean Debian 12 with the package (apt resolves its dependencies from Debian).
root="$T_DIR/root"
t1=$SECONDS
cache_args=()
if [ -n "$CACHE" ]; then
  mkdir -p "$CACHE"
  cache_args=(--skip=essential/unlink
              --setup-hook='mkdir -p "$1"/var/cache/apt/archives/'
              --setup-hook="sync-in $CACHE /var/cache/apt/archives/"
              --customize-hook="sync-out /var/cache/apt/archives $CACHE")
fi
if ! timeout 600 mmdebstrap --variant=minbase --include="$deb" --include=systemd,systemd-sysv,dbus,procps \
       --hook-dir=/usr/share/mmdebstrap/hooks/file-mirror-automount "${cache_args[@]}" \
       bookworm "$root" >"$T_DIR/mmdebstrap.log" 2>&1; then
  tail -n 30 "$T_DIR/mmdebstrap.log"
  t_fail "mmdebstrap could not make a Debian 12 root with the package"
  t_done
fi
t_log "Debian 12 root with the package in $((SECONDS - t1)) s ($(du -sm "$root" | cut -f1) MB)"
in_root() { chroot "$root" "$@"; }
t_check "dpkg says raftpg is installed" \
  t_eq "$(in_root dpkg-query -W -f='${Status}' raftpg)" "install ok installed"
t_check "raftpg version runs against the installed libraries" \
  t_eq "$(in_root raftpg version)" "raftpg $(dpkg-deb -f "$deb" Version)"
t_check "raftpg.service is enabled" test -L "$root/etc/systemd/system/multi-user.target.wants/raftpg.service"
# The hook README configures runs where the package put it (bash and psql come with the package's
# dependencies): its usage without arguments, nothing to do for a replica event.
in_root /usr/share/raftpg/pgbouncer-hook >"$T_DIR/hook.out" 2>&1 && rc=0 || rc=$?
t_check "the installed pgbouncer hook runs: usage, exit 2 ($(head -c 120 "$T_DIR/hook.out"))" \
  t_eq "$rc:$(grep -c '^usage: /usr/share/raftpg/pgbouncer-hook --ini FILE' "$T_DIR/hook.out")" 2:1
t_check "and does nothing for a replica event" in_root /usr/share/raftpg/pgbouncer-hook \
  --ini /etc/pgbouncer/pgbouncer.ini --database app on_start replica itest

# The example as an operator would start from it: the secret, then check-config, as postgres.
in_root raftpg gen-secret /etc/raftpg/raft.secret >/dev/null
in_root chown postgres:postgres /etc/raftpg/raft.secret
check_example() {
  in_root setpriv --reuid=postgres --regid=postgres --init-groups -- \
    raftpg check-config /etc/raftpg/raftpg.yaml.example >"$T_DIR/check-example.out" 2>&1 ||
    { cat "$T_DIR/check-example.out"; return 1; }
}
t_check "raftpg check-config accepts the installed example" check_example
# One member of it (it bootstraps alone), on the container's loopback, without the VIP; the rest
# as shipped. Debian's own cluster (postgresql@15-main) is dropped, as the README says.
awk '/^vip:/ {skip = 1} skip && /^$/ {skip = 0; next} !skip' "$root/etc/raftpg/raftpg.yaml.example" |
  sed -e 's/192\.0\.2\./127.0.2./g' -e 's|listen: 0\.0\.0\.0:5432|listen: 127.0.2.11:5432|' \
      -e 's/shared_buffers: 1GB/shared_buffers: 32MB/' -e 's/wal_keep_size: 1GB/wal_keep_size: 64MB/' |
  awk '/^    - name: node[23]$/ {drop = 2; next} drop > 0 {drop--; next} {print}' \
    >"$root/etc/raftpg/raftpg.yaml"
chmod 600 "$root/etc/raftpg/raftpg.yaml"
in_root chown postgres:postgres /etc/raftpg/raftpg.yaml
in_root pg_dropcluster --stop 15 main >/dev/null 2>&1 || true
t_check "one member of the example passes check-config" \
  in_root setpriv --reuid=postgres --regid=postgres --init-groups -- raftpg check-config /etc/raftpg/raftpg.yaml

# 4. Boot it.
t2=$SECONDS
systemd-nspawn -D "$root" --boot --register=no --keep-unit --private-network --machine="rpgdeb$$" -q >"$T_DIR/nspawn.log" 2>&1 &
nspawn=$!
init=""
t_before_rm() {
  [ -n "$nspawn" ] || return 0
  kill -TERM "$nspawn" 2>/dev/null || true # an orderly shutdown of the container
  local n=0
  while kill -0 "$nspawn" 2>/dev/null && [ $n -lt 300 ]; do sleep 0.1; n=$((n + 1)); done
  if kill -0 "$nspawn" 2>/dev/null; then
    [ -z "$init" ] || kill -KILL "$init" 2>/dev/null || true # ends the container's PID namespace
    kill -KILL "$nspawn" 2>/dev/null || true
  fi
  wait "$nspawn" 2>/dev/null || true
}
# The container's init is nspawn's child named systemd (nspawn may have other children early).
find_init() {
  init=$(ps -o pid=,comm= --ppid "$nspawn" | awk '$2 == "systemd" { print $1; exit }')
  [ -n "$init" ] && E=(nsenter -t "$init" -a)
}
t_wait 30 "the container's init" find_init
booted() {
  find_init && [[ "$("${E[@]}" systemctl is-system-running 2>/dev/null)" =~ ^(running|degraded)$ ]]
}
t_wait 60 "the container to boot" booted
t_log "container booted in $((SECONDS - t2)) s"

"${E[@]}" systemctl start raftpg
unit() { "${E[@]}" systemctl show raftpg -p "$1" --value; }
in_ct_psql() {
  "${E[@]}" env PGPASSWORD=change-me-superuser PGCONNECT_TIMEOUT=3 \
    psql -X -q -A -t -h 127.0.2.11 -U postgres -d postgres -c "$1" 2>/dev/null
}
primary() {
  [ "$("${E[@]}" raftpg ctl -c /etc/raftpg/raftpg.yaml list --json 2>/dev/null |
       jq -r '.members[0] | "\(.pg_role) \(.state)"')" = "primary running" ] &&
    [ "$(in_ct_psql 'select pg_is_in_recovery()')" = f ]
}
t_wait 90 "a running primary under raftpg.service" primary
t_check "the service is active (running): READY=1 reached systemd" \
  t_eq "$(unit ActiveState)/$(unit SubState)" "active/running"
main=$(unit MainPID)
status() { "${E[@]}" awk -v k="$1:" '$1 == k {print $2}' "/proc/$main/status"; }
t_check "the agent runs as postgres" t_eq "$(status Uid)" "$("${E[@]}" id -u postgres)"
# CAP_NET_ADMIN (12) and CAP_NET_RAW (13): 0x3000, and nothing else even in the bounding set.
t_check "its capabilities are CAP_NET_ADMIN and CAP_NET_RAW only (ambient)" \
  t_eq "$(status CapEff) $(status CapAmb) $(status CapBnd)" "0000000000003000 0000000000003000 0000000000003000"
t_check "PostgreSQL takes writes" t_eq "$(in_ct_psql 'create table t as select 1 as i; select count(*) from t')" 1
t_check "its data lives in the state directory" "${E[@]}" test -f /var/lib/raftpg/data/PG_VERSION

# The agent dies: the guard fences PostgreSQL (KillMode=process keeps it alive to do so), systemd
# restarts the agent, which is primary again on the same data.
pm=$("${E[@]}" head -n1 /var/lib/raftpg/data/postmaster.pid)
"${E[@]}" systemctl kill --kill-whom=main -s KILL raftpg
pm_gone() { ! "${E[@]}" kill -0 "$pm" 2>/dev/null; }
t_wait 5 "the guard to stop PostgreSQL after kill -9 of the agent" pm_gone
t_check "the guard logged the fence" \
  t_contains "$("${E[@]}" journalctl -u raftpg --no-pager -o cat)" "guard: postgresql stopped"
restarted() { [ "$(unit NRestarts)" = 1 ] && [ "$(unit SubState)" = running ]; }
t_wait 30 "systemd to restart the agent" restarted
t_wait 60 "a running primary again" primary
t_check "the row written before the kill is there" t_eq "$(in_ct_psql 'select count(*) from t')" 1

# A clean stop: PostgreSQL stopped by the agent, the guard gone, nothing left in the unit.
"${E[@]}" systemctl stop raftpg
t_check "the service stopped cleanly" t_eq "$(unit ActiveState)/$(unit Result)" "inactive/success"
# pgrep inside the container says none (status 1), not that it could not run.
no_postgres() { t_status 1 "${E[@]}" pgrep -u postgres; }
t_wait 10 "no process of postgres left after the stop" no_postgres
journal=$("${E[@]}" journalctl --no-pager -o cat)
t_check "systemd heard no notification from another process than the agent" \
  t_eq "$(grep -i 'notification message from PID\|reception only permitted' <<<"$journal" || true)" ""
t_check "no watchdog timeout" t_eq "$(grep -i 'watchdog timeout' <<<"$journal" || true)" ""
t_log "test_deb took $((SECONDS - t0)) s"
t_done
