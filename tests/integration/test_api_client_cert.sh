#!/usr/bin/env bash
# Client certificates and the allowlist (Patroni's restapi.verify_client: required,
# restapi.allowlist, ctl.certfile/keyfile) with a CA made here, on a three-member cluster with
# PostgreSQL: the agents poll each other presenting ctl.certfile, so every member's state is
# known; a switchover through `ctl -c` works; curl without a certificate, with one from another
# CA or with one not meant for clients gets no answer at all (the handshake is refused); a change
# from 127.0.0.2 gets 403 naming the allowlist, from 127.0.0.1 it is done; health checks and
# reads answer from either address. Then verify_client: optional with allowlist_include_members
# on a member of its own: reads without a certificate, changes only with one and only from the
# member's host. Keys readable by others are refused by the agent and ctl. Refused handshakes
# are logged with their reason, once per address and reason. A real haproxy checks the primary
# over TLS with a client certificate, and marks every member down without one.
T_PG=1
source "$(dirname "$0")/lib.sh"
t_pick_ports

P="$T_DIR/pki"
mkdir -p "$P"
# EC keys: quick to make. cert NAME CA EXTENSIONS: a key and a certificate signed by CA.
newkey() { openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "$@" 2>/dev/null; }
cert() {
  newkey -subj "/CN=$1" -keyout "$P/$1.key" -out "$P/$1.csr"
  printf '%b' "$3" >"$P/$1.ext"
  openssl x509 -req -in "$P/$1.csr" -CA "$P/$2.pem" -CAkey "$P/$2.key" -CAcreateserial -days 2 \
    -extfile "$P/$1.ext" -out "$P/$1.pem" 2>/dev/null
}
newkey -x509 -days 2 -subj "/CN=raftpg test CA" -keyout "$P/ca.key" -out "$P/ca.pem"
newkey -x509 -days 2 -subj "/CN=stray CA" -keyout "$P/stray.key" -out "$P/stray.pem"
cert api ca 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n'   # every member's API
cert member ca 'extendedKeyUsage=clientAuth\n'                               # the agents' client
cert admin ca 'extendedKeyUsage=clientAuth\n'                                # curl and ctl
cert intruder stray 'extendedKeyUsage=clientAuth\n'                          # another CA's
chmod 600 "$P"/*.key
[ "$(id -u)" -ne 0 ] || chown -R postgres:postgres "$P"

KEYS="  certfile: $P/api.pem\n  keyfile: $P/api.key\n  cafile: $P/ca.pem\n"
KEYS+="  verify_client: required\n  allowlist: [127.0.0.1/32]"
for i in 1 2 3; do
  t_write_conf "$i" 3
  sed -i "s|^  listen: $(t_api_addr "$i")\$|&\n$KEYS|" "$T_DIR/node$i.yaml"
  printf 'ctl:\n  certfile: %s\n  keyfile: %s\n' "$P/member.pem" "$P/member.key" \
    >>"$T_DIR/node$i.yaml"
done
t_check "the configuration has the keys" grep -q "verify_client: required" "$T_DIR/node1.yaml"
for i in 1 2 3; do t_start "$i"; done

ctlc() { "$T_BIN" ctl -c "$T_DIR/node1.yaml" "$@"; }
members() { ctlc --timeout 1000 list --json 2>/dev/null || true; }
PRIMARY='[.members[] | select(.role == "leader" and .pg_role == "primary" and
  .state == "running")] | if length == 1 then .[0].name else empty end'
primary() { members | jq -r "$PRIMARY" 2>/dev/null || true; }
# One primary, two streaming standbys: node1 polled both over HTTPS with its client certificate.
# With synchronous replication, also the quorum recorded (as lib.sh's t_pg_healthy).
healthy_in() {
  local m=$1
  [ -n "$(jq -r "$PRIMARY" <<<"$m" 2>/dev/null)" ] &&
    [ "$(jq '[.members[] | select(.state == "streaming")] | length' <<<"$m" 2>/dev/null)" = 2 ] &&
    [ "$(jq -r 'if (.sync.mode // "off") == "off" or .sync.k > 0 then "yes" else "no" end' \
      <<<"$m" 2>/dev/null)" = yes ]
}
healthy() { healthy_in "$(members)"; }
t_wait 90 "a primary and two streaming standbys, seen through ctl -c" healthy
ctlc list >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
t_check "ctl -c list answers (with ctl.certfile)" t_eq "$rc" 0
t_check "showing every member's state, none unreachable" \
  t_eq "$(grep -cE '^\| node[123] .*\| (running|streaming) ' "$T_DIR/out")" 3
ADM=(--cert "$P/admin.pem" --key "$P/admin.key")
view3() {
  "$T_BIN" ctl --api "https://$(t_api_addr 3)" --cacert "$P/ca.pem" "${ADM[@]}" list --json |
    jq '[.members[] | select(.state == "running" or .state == "streaming")] | length'
}
view3_all() { [ "$(view3)" = 3 ]; }
t_check "node3 knows every member's state too (its polls present ctl.certfile)" \
  t_wait 10 "node3's view" view3_all

# The lease echo goes over the same HTTPS, with the member's client certificate: the leader's
# renewals by echo and the voters' yes answers grow, and no probe fails (README, "Fencing").
LEADER=$(primary)
LI=${LEADER#node}
# lm REGEX: the value of the leader's first metric line that matches (0 when none does).
lm() {
  curl -s -m 3 --cacert "$P/ca.pem" "${ADM[@]}" "https://$(t_api_addr "$LI")/metrics" |
    awk -v re="$1" '!found && $0 ~ re { print int($2); found = 1 } END { if (!found) print 0 }'
}
YES='^raftpg_lease_echoes_total[{].*answer="yes"'
VIA='^raftpg_lease_renewals_total[{].*via="echo"'
FAILED='^raftpg_lease_echoes_total[{].*answer="failed"'
YES0=$(lm "$YES")
ECHO0=$(lm "$VIA")
FAILED0=$(lm "$FAILED")
echo_grew() { [ "$(lm "$YES")" -gt "$YES0" ]; }
t_check "the leader $LEADER's lease echoes are answered yes over HTTPS ($YES0 so far)" \
  t_wait 10 "more yes answers to $LEADER's echoes" echo_grew
# A renewal is counted for the path that extended the lease first: barriers often win on an
# idle machine, so the echo's own renewals may take a few rounds to show.
renewed_by_echo() { [ "$(lm "$VIA")" -gt "$ECHO0" ]; }
t_check "... and renew its lease (renewals by echo: $ECHO0 before)" \
  t_wait 20 "a renewal of $LEADER's lease by echo" renewed_by_echo
t_check "no echo probe of $LEADER failed meanwhile" t_eq "$(lm "$FAILED")" "$FAILED0"

# The handshake itself: no certificate, another CA's, or one not meant for clients.
U="https://$(t_api_addr 2)"
code() { curl -s -o /dev/null -w '%{http_code}' -m 3 --cacert "$P/ca.pem" "$@" || true; }
t_check "with the admin certificate a health check answers 200" \
  t_eq "$(code --cert "$P/admin.pem" --key "$P/admin.key" "$U/liveness")" 200
t_check "without a certificate there is no answer" t_eq "$(code "$U/liveness")" 000
t_check "... over TLS 1.2 either" t_eq "$(code --tls-max 1.2 "$U/liveness")" 000
t_check "with another CA's certificate neither" \
  t_eq "$(code --cert "$P/intruder.pem" --key "$P/intruder.key" "$U/liveness")" 000
t_check "nor with a server certificate (not for client authentication)" \
  t_eq "$(code --cert "$P/api.pem" --key "$P/api.key" "$U/liveness")" 000
# Each refused handshake is logged with its reason, once per client address and reason a minute.
refusals() { grep -cE "api: refused TLS handshake from $1: $2" "$T_DIR/node2.log" || true; }
t_check "the refusal without a certificate is logged once (TLS 1.3 and 1.2)" \
  t_eq "$(refusals 127.0.0.1 'no client certificate \(restapi.verify_client: required\)')" 1
t_check "... another CA's certificate's too, naming it and the reason" \
  t_eq "$(refusals 127.0.0.1 'client certificate "CN=intruder" refused: .*issuer is unknown')" 1
t_check "... and the server certificate's (not for client authentication)" \
  t_eq "$(refusals 127.0.0.1 'client certificate "CN=api" refused: .*intended purpose')" 1
for _ in $(seq 1 20); do code "$U/liveness" >/dev/null; done
t_check "20 more refusals from the same address add no line" \
  t_eq "$(refusals 127.0.0.1 'no client certificate')" 1
code --interface 127.0.0.2 "$U/liveness" >/dev/null
t_check "another address gets a line of its own" \
  t_eq "$(refusals 127.0.0.2 'no client certificate')" 1
code --cacert "$P/stray.pem" "${ADM[@]}" --interface 127.0.0.3 "$U/liveness" >/dev/null
# That one is logged when the server sees the connection closed, after curl has given up.
hello_logged() { [ "$(refusals 127.0.0.3 "the handshake stopped after the client's hello")" = 1 ]; }
t_wait 5 "node2 to log the handshake that stopped after its hello" hello_logged || true
t_check "a client that does not trust this server's certificate: logged as stopped after its hello" \
  t_eq "$(refusals 127.0.0.3 "the handshake stopped after the client's hello")" 1
"$T_BIN" ctl --api "$U" --cacert "$P/ca.pem" list >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
t_check "ctl without --cert fails" t_eq "$rc" 1
t_check "... suggesting why ($(cat "$T_DIR/out"))" \
  grep -q "no client certificate was presented: does the API require one?" "$T_DIR/out"
"$T_BIN" ctl --api "$U" --cacert "$P/ca.pem" --cert "$P/admin.pem" --key "$P/admin.key" list \
  >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
t_check "ctl --cert --key works" t_eq "$rc" 0

# The allowlist: changes from 127.0.0.1 only; reads and health checks from anywhere.
signed_reload() {
  local auth
  auth=$(ctlc sign POST /reload '{}')
  [ -n "$auth" ] || { echo "no signature" >"$T_DIR/body"; echo none; return; }
  curl -s -o "$T_DIR/body" -w '%{http_code}' -m 5 --cacert "$P/ca.pem" "${ADM[@]}" "$@" \
    -X POST -H 'Content-Type: application/json' -H "Authorization: $auth" -d '{}' "$U/reload" ||
    true
}
t_check "a signed change from 127.0.0.2 gets 403" t_eq "$(signed_reload --interface 127.0.0.2)" 403
t_check "... naming the allowlist ($(cat "$T_DIR/body"))" \
  grep -q '"access is denied: 127.0.0.2 is not in restapi.allowlist"' "$T_DIR/body"
t_check "node2 logged the refusal" \
  grep -q "refused POST /reload from 127.0.0.2: not in restapi.allowlist" "$T_DIR/node2.log"
t_check "the same change from 127.0.0.1 is done (200)" t_eq "$(signed_reload)" 200
t_check "a health check from 127.0.0.2 answers" \
  t_eq "$(code "${ADM[@]}" --interface 127.0.0.2 "$U/health")" 200
t_check "and /cluster" t_eq "$(code "${ADM[@]}" --interface 127.0.0.2 "$U/cluster")" 200

# A switchover: ctl -c signs and presents ctl.certfile; the members keep polling each other.
# From one view of the cluster; t_wait runs it in this shell, so the last call's OLD and NEW stay.
OLD="" NEW=""
pick() {
  local m
  m=$(members)
  healthy_in "$m" || return 1
  OLD=$(jq -r "$PRIMARY" <<<"$m")
  NEW=$(jq -r '[.members[] | select(.state == "streaming")][0].name // empty' <<<"$m")
  [ -n "$OLD" ] && [ -n "$NEW" ]
}
t_wait 60 "a primary and a streaming standby to switch to" pick
t_log "switchover $OLD -> $NEW"
# A primary busy with an operation of its own answers 503 ("not now"): asked again, 5 times at most.
for try in 1 2 3 4 5; do
  ctlc switchover --leader "$OLD" --candidate "$NEW" >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
  if [ "$rc" = 0 ] || ! grep -q "(http 503)" "$T_DIR/out"; then break; fi
  t_log "try $try: $(cat "$T_DIR/out")"
  sleep 2
done
t_check "ctl -c switchover succeeds ($(tr '\n' ' ' <"$T_DIR/out"))" t_eq "$rc" 0
is_primary() { [ "$(primary)" = "$1" ]; }
t_check "$NEW is the primary" t_wait 30 "$NEW primary" is_primary "$NEW"
t_check "and $OLD streams from it, all three polled" t_wait 60 "healthy again" healthy

# A real load balancer against these checks: haproxy with Patroni's check (OPTIONS /primary) over
# TLS, verifying the API's certificate and presenting the admin one, sends writes to the primary;
# the same check without a client certificate gets no answer from any member, so haproxy marks
# every server down, the primary too.
RW=$((T_BASE + 31)) RW2=$((T_BASE + 32))
cat "$P/admin.pem" "$P/admin.key" >"$P/admin-bundle.pem"
chmod 600 "$P/admin-bundle.pem"
servers() {
  local i a
  for i in 1 2 3; do
    a=$(t_api_addr "$i")
    echo "    server node$i $(t_pg_addr "$i") check port ${a##*:}"
  done
}
cat >"$T_DIR/haproxy.cfg" <<EOF
global
    maxconn 100
defaults
    mode tcp
    timeout client 1m
    timeout connect 2s
    timeout server 1m
    timeout check 2s
listen primary
    bind 127.0.0.1:$RW
    option httpchk OPTIONS /primary
    http-check expect status 200
    default-server inter 300ms fall 2 rise 1 check-ssl verify required ca-file $P/ca.pem crt $P/admin-bundle.pem
$(servers)
listen nocert
    bind 127.0.0.1:$RW2
    option httpchk OPTIONS /primary
    http-check expect status 200
    default-server inter 300ms fall 2 rise 1 check-ssl verify required ca-file $P/ca.pem
$(servers)
EOF
if haproxy -c -q -f "$T_DIR/haproxy.cfg" >"$T_DIR/haproxy.check" 2>&1; then
  haproxy -db -f "$T_DIR/haproxy.cfg" >"$T_DIR/haproxy.log" 2>&1 &
  HAPROXY=$!
  t_before_rm() { kill "$HAPROXY" 2>/dev/null; wait "$HAPROXY" 2>/dev/null; }
  via() { PGCONNECT_TIMEOUT=2 timeout -s KILL 5 psql -X -q -A -t -h 127.0.0.1 -p "$1" -U postgres -d postgres -c "$2" 2>/dev/null; }
  NEWi=${NEW#node}
  # haproxy starts every server as up; two failed checks (fall 2) take one out.
  marked() {
    local i
    for i in 1 2 3; do
      grep -q "Server nocert/node$i is DOWN" "$T_DIR/haproxy.log" || return 1
      [ "$i" = "$NEWi" ] || grep -q "Server primary/node$i is DOWN" "$T_DIR/haproxy.log" || return 1
    done
  }
  t_wait 15 "haproxy's checks to mark the servers" marked
  t_check "with the client certificate haproxy keeps $NEW and takes the standbys out" \
    t_status 1 grep -q "Server primary/$NEW is DOWN" "$T_DIR/haproxy.log"
  t_check "writes through it reach the primary" t_eq "$(via "$RW" 'SELECT pg_is_in_recovery()')" f
  t_check "without one every server is marked down, $NEW too" \
    grep -q "Server nocert/$NEW is DOWN" "$T_DIR/haproxy.log"
  t_check "and nothing goes through that listener" \
    t_eq "$(via "$RW2" 'SELECT pg_is_in_recovery()' || echo refused)" refused
  kill "$HAPROXY" 2>/dev/null
  wait "$HAPROXY" 2>/dev/null || true
  unset -f t_before_rm
else
  t_fail "haproxy rejects its configuration: $(cat "$T_DIR/haproxy.check")"
fi

# Keys others may read: refused, naming the file.
cp "$P/admin.key" "$P/open.key"
chmod 644 "$P/open.key"
"$T_BIN" ctl --api "$U" --cacert "$P/ca.pem" --cert "$P/admin.pem" --key "$P/open.key" list \
  >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
t_check "ctl refuses a key file others can read (exit 2)" t_eq "$rc" 2
t_check "saying so ($(cat "$T_DIR/out"))" grep -q "open.key is accessible to others" "$T_DIR/out"
for i in 1 2 3; do t_kill "$i" TERM; done

# verify_client: optional and allowlist_include_members, on a one-member cluster of its own
# (no PostgreSQL, no secret: changes need restapi.authentication's credentials). ctl -c takes
# ctl.certfile and ctl.authentication, which comes before restapi.authentication (without the
# cluster secret lib.sh exports, which would sign instead). Both keys are encrypted, opened with
# restapi.keyfile_password and ctl.keyfile_password.
printf 'key-pw-4\n' >"$P/pw"
chmod 600 "$P/pw"
for k in api admin; do
  openssl pkcs8 -topk8 -v2 aes-256-cbc -in "$P/$k.key" -out "$P/$k.enc.key" -passout "file:$P/pw"
done
chmod 600 "$P"/*.enc.key
[ "$(id -u)" -ne 0 ] || chown postgres:postgres "$P"/*.enc.key
A4="127.0.0.1:$((T_BASE + 24))"
cat >"$T_DIR/node4.yaml" <<EOF
scope: solo
name: node4
raft:
  data_dir: $T_DIR/node4/raft
  members:
    - {name: node4, raft: "127.0.0.1:$((T_BASE + 4))", api: "$A4"}
restapi:
  certfile: $P/api.pem
  keyfile: $P/api.enc.key
  keyfile_password: key-pw-4
  cafile: $P/ca.pem
  verify_client: optional
  allowlist_include_members: true
  authentication: {username: admin, password: pw4}
ctl:
  certfile: $P/admin.pem
  keyfile: $P/admin.enc.key
  keyfile_password: key-pw-4
  authentication: {username: admin, password: pw4}
EOF
sed 's/password: pw4}$/password: wrong}/' "$T_DIR/node4.yaml" >"$T_DIR/node4-wrong.yaml"
chmod 600 "$T_DIR/node4.yaml" "$T_DIR/node4-wrong.yaml"
[ "$(id -u)" -ne 0 ] || chown postgres:postgres "$T_DIR/node4.yaml"
t_start 4
U="https://$A4"
answers() { [ "$(code "$U/liveness")" = 200 ]; }
t_check "optional: a health check without a certificate answers" t_wait 20 "node4's API" answers
t_check "... and /cluster" t_eq "$(code "$U/cluster")" 200
t_check "a certificate presented must verify: another CA's gets no answer" \
  t_eq "$(code --cert "$P/intruder.pem" --key "$P/intruder.key" "$U/liveness")" 000
reload() {
  curl -s -o "$T_DIR/body" -w '%{http_code}' -m 5 --cacert "$P/ca.pem" "$@" -X POST \
    -H 'Content-Type: application/json' -d '{}' "$U/reload" || true
}
t_check "a change without a certificate gets 403" t_eq "$(reload)" 403
t_check "... saying why ($(cat "$T_DIR/body"))" grep -q \
  '"a client certificate is required for changes (restapi.verify_client)"' "$T_DIR/body"
t_check "with one (and the credentials) it is done: 127.0.0.1 is the member's API host" \
  t_eq "$(reload "${ADM[@]}" -u admin:pw4)" 200
t_check "from 127.0.0.2, not a member's host, 403" \
  t_eq "$(reload "${ADM[@]}" -u admin:pw4 --interface 127.0.0.2)" 403
t_check "... naming both keys ($(cat "$T_DIR/body"))" grep -q \
  "\"access is denied: 127.0.0.2 is not in restapi.allowlist nor a member's API address\"" \
  "$T_DIR/body"
env -u RAFTPG_SECRET_FILE "$T_BIN" ctl -c "$T_DIR/node4.yaml" reload >"$T_DIR/out" 2>&1 &&
  rc=0 || rc=$?
t_check "ctl -c reload with ctl.certfile and ctl.authentication works ($(cat "$T_DIR/out"))" \
  t_eq "$rc" 0
env -u RAFTPG_SECRET_FILE "$T_BIN" ctl -c "$T_DIR/node4-wrong.yaml" reload >"$T_DIR/out" 2>&1 &&
  rc=0 || rc=$?
t_check "a wrong ctl.authentication is sent, not restapi's ($(cat "$T_DIR/out"))" t_eq "$rc" 1
t_check "... and refused with 401" grep -q "401" "$T_DIR/out"
sed -i 's/^  keyfile_password: key-pw-4$/  keyfile_password: wrong/' "$T_DIR/node4-wrong.yaml"
env -u RAFTPG_SECRET_FILE "$T_BIN" ctl -c "$T_DIR/node4-wrong.yaml" list >"$T_DIR/out" 2>&1 &&
  rc=0 || rc=$?
t_check "ctl with a wrong ctl.keyfile_password fails ($(cat "$T_DIR/out"))" t_eq "$rc" 1
t_check "... naming the key file" grep -q "TLS: .*admin.enc.key" "$T_DIR/out"
t_kill 4 TERM

sed "s|keyfile: $P/api.key|keyfile: $P/open.key|" "$T_DIR/node1.yaml" >"$T_DIR/bad.yaml"
[ "$(id -u)" -ne 0 ] || chown postgres:postgres "$T_DIR/bad.yaml" "$P/open.key"
timeout 20 "${T_RUNAS[@]}" "$T_BIN" run -c "$T_DIR/bad.yaml" >"$T_DIR/bad.log" 2>&1 && rc=0 ||
  rc=$?
t_check "an agent whose restapi.keyfile others can read exits 1" t_eq "$rc" 1
t_check "saying why" grep -q "key file $P/open.key is accessible to others (mode 0644)" \
  "$T_DIR/bad.log"
sed -i "/^  cafile:/d" "$T_DIR/bad.yaml"
"$T_BIN" check-config "$T_DIR/bad.yaml" >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
t_check "verify_client without cafile is refused by check-config" t_eq "$rc" 1
t_check "naming the key ($(cat "$T_DIR/out"))" \
  grep -qE ':[0-9]+:[0-9]+: restapi.verify_client: required requires restapi.cafile' "$T_DIR/out"
t_done
