#!/usr/bin/env bash
# The API over TLS (restapi.certfile, keyfile, cafile) with a CA made here: the agents poll each
# other over HTTPS and verify each other's certificates, curl and ctl reach the API only with the
# CA (or --insecure; for ctl also ctl.cacert and ctl.insecure in the file given with -c), and
# plain HTTP gets nothing. restapi.ciphers (a GnuTLS priority string)
# takes TLS 1.3 away from node3; an OpenSSL cipher list there is refused.
# Answer headers: restapi.http_extra_headers on every answer, https_extra_headers only over TLS
# (replacing a same-named http one), restapi.server_tokens in the Server header. Revocation:
# node2 (verify_client: optional, restapi.crlfile) refuses a revoked client certificate in the
# handshake and logs it once, takes a valid one, and its polls refuse node3, whose server
# certificate the list revokes; ctl with that list refuses node3 too.
source "$(dirname "$0")/lib.sh"
t_pick_ports

# A CA, and one certificate for 127.0.0.1 that every member presents.
P="$T_DIR/pki"
mkdir -p "$P"
openssl req -x509 -newkey rsa:2048 -nodes -days 60 -subj "/CN=raftpg test CA" \
  -keyout "$P/ca.key" -out "$P/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
  -keyout "$P/api.key" -out "$P/api.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' >"$P/ext"
openssl x509 -req -in "$P/api.csr" -CA "$P/ca.pem" -CAkey "$P/ca.key" -CAcreateserial -days 30 \
  -extfile "$P/ext" -out "$P/api.pem" 2>/dev/null
# Another CA, which signed nothing here.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=stray CA" \
  -keyout "$P/stray.key" -out "$P/stray.pem" 2>/dev/null
# node3's own server certificate, and two client certificates (EC keys: quick to make); the CA
# then revokes node3's and one client's, in a list made with openssl ca.
ec_cert() { # NAME CN EXTENSION
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=$2" \
    -keyout "$P/$1.key" -out "$P/$1.csr" 2>/dev/null
  printf '%s\n' "$3" >"$P/$1.ext"
  openssl x509 -req -in "$P/$1.csr" -CA "$P/ca.pem" -CAkey "$P/ca.key" -CAcreateserial -days 30 \
    -extfile "$P/$1.ext" -out "$P/$1.pem" 2>/dev/null
}
ec_cert api3 127.0.0.1 "subjectAltName=IP:127.0.0.1"
ec_cert client "valid client" "extendedKeyUsage=clientAuth"
ec_cert revoked "revoked client" "extendedKeyUsage=clientAuth"
ec_cert admin "admin client" "extendedKeyUsage=clientAuth"
ca_conf() { # DIR-PREFIX: a minimal openssl ca configuration keeping its state beside the CA
  printf '[ca]\ndefault_ca=d\n[d]\ndatabase=%s.index\ncrlnumber=%s.crlnumber\n' "$1" "$1"
  printf 'default_md=sha256\ndefault_crl_days=2\n'
}
ca_conf "$P/ca" >"$P/ca.cnf"
ca_conf "$P/stray" >"$P/stray.cnf"
: >"$P/ca.index"
: >"$P/stray.index"
echo 01 >"$P/ca.crlnumber"
echo 01 >"$P/stray.crlnumber"
for c in api3 revoked; do
  openssl ca -config "$P/ca.cnf" -keyfile "$P/ca.key" -cert "$P/ca.pem" -revoke "$P/$c.pem" \
    2>/dev/null
done
openssl ca -config "$P/ca.cnf" -keyfile "$P/ca.key" -cert "$P/ca.pem" -gencrl \
  -out "$P/crl.pem" 2>/dev/null
t_check "the list revokes two certificates" \
  t_eq "$(openssl crl -in "$P/crl.pem" -noout -text | grep -c 'Serial Number')" 2
# A list the stray CA signed.
openssl ca -config "$P/stray.cnf" -keyfile "$P/stray.key" -cert "$P/stray.pem" -gencrl \
  -out "$P/stray-crl.pem" 2>/dev/null
chmod 600 "$P/api.key" "$P/api3.key" "$P/client.key" "$P/revoked.key" "$P/admin.key"
[ "$(id -u)" -ne 0 ] || chown -R postgres:postgres "$P"

for i in 1 2 3; do
  t_write_conf "$i" 3
  sed -i "s|^  listen: $(t_api_addr "$i")\$|&\n  certfile: $P/api.pem\n  keyfile: $P/api.key\n  cafile: $P/ca.pem|" \
    "$T_DIR/node$i.yaml"
done
# node3 offers TLS 1.2 only (restapi.ciphers, a GnuTLS priority string), with a certificate of
# its own, and leaves server_tokens at Original.
sed -i "s|^  cafile: $P/ca.pem\$|&\n  ciphers: \"NORMAL:-VERS-TLS1.3\"|; s|/api\.pem\$|/api3.pem|;
  s|/api\.key\$|/api3.key|" "$T_DIR/node3.yaml"
# node1: Patroni's example headers, one of them replaced over TLS; the product alone.
cat >>"$T_DIR/node1.yaml" <<'EOF'
  http_extra_headers:
    'X-Frame-Options': 'SAMEORIGIN'
    'X-Content-Type-Options': 'nosniff'
  https_extra_headers:
    'Strict-Transport-Security': 'max-age=31536000; includeSubDomains'
    'X-Frame-Options': 'DENY'
  server_tokens: ProductOnly
EOF
# node2: client certificates optional, checked against the list; the product and version.
printf '  verify_client: optional\n  crlfile: %s\n  server_tokens: Minimal\n' "$P/crl.pem" \
  >>"$T_DIR/node2.yaml"
config_ok() { "$T_BIN" check-config "$1" >"$T_DIR/out" 2>&1 || { cat "$T_DIR/out"; false; }; }
t_check "node1's configuration is valid" config_ok "$T_DIR/node1.yaml"
t_check "node2's too (its list read)" config_ok "$T_DIR/node2.yaml"
t_check "node3 presents its own certificate" grep -q "certfile: $P/api3.pem" "$T_DIR/node3.yaml"
t_check "the configuration has the TLS keys" grep -q "certfile: $P/api.pem" "$T_DIR/node1.yaml"
t_check "node3's has restapi.ciphers" grep -q 'ciphers: "NORMAL:-VERS-TLS1.3"' "$T_DIR/node3.yaml"
for i in 1 2 3; do t_start "$i"; done

cluster() { curl -s -m 2 --cacert "$P/ca.pem" "https://$(t_api_addr 1)/cluster"; }
has_leader() { [ -n "$(cluster | jq -r '.raft.leader // empty')" ]; }
t_wait 30 "a leader" has_leader
# Members' states come from their /status, polled over HTTPS with the CA: none unreachable.
all_polled() {
  [ "$(cluster | jq '[.members[] | select(.state != "unreachable")] | length')" = 3 ]
}
t_check "node1 reaches every member's API over HTTPS" t_wait 20 "three reachable" all_polled
t_check "api_url says https" \
  t_eq "$(cluster | jq -r '[.members[].api_url | startswith("https://")] | all')" true
# TLS costs the idle agents little: below 20% of a core each over 3 s (a handshake waiting for
# its client once made libmicrohttpd spin).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
declare -A before=()
for i in 1 2 3; do before[$i]=$(cpu_ticks "${T_PIDS[$i]}"); done
sleep 3
for i in 1 2 3; do
  used=$(($(cpu_ticks "${T_PIDS[$i]}") - before[$i]))
  t_check "node$i used $used ticks of CPU in 3 s (< 60)" test "$used" -lt 60
done
code=$(curl -s -o /dev/null -w '%{http_code}' -m 2 --cacert "$P/ca.pem" \
  "https://$(t_api_addr 2)/liveness")
t_check "a health check over HTTPS answers 200" t_eq "$code" 200
curl -s -o /dev/null -m 2 "https://$(t_api_addr 1)/liveness" && rc=0 || rc=$?
t_check "without the CA curl refuses the certificate (exit 60)" t_eq "$rc" 60
curl -s -o /dev/null -m 2 --cacert "$P/stray.pem" "https://$(t_api_addr 1)/liveness" && rc=0 ||
  rc=$?
t_check "with another CA too" t_eq "$rc" 60
code=$(curl -s -o /dev/null -w '%{http_code}' -m 2 "http://$(t_api_addr 1)/liveness" || true)
t_check "plain HTTP gets no answer" t_eq "$code" 000
tls_code() { curl -s -o /dev/null -w '%{http_code}' -m 2 --cacert "$P/ca.pem" "$@" || true; }
t_check "node1 speaks TLS 1.3" t_eq "$(tls_code --tlsv1.3 "https://$(t_api_addr 1)/liveness")" 200
t_check "node3 (restapi.ciphers without TLS 1.3) refuses it" \
  t_eq "$(tls_code --tlsv1.3 "https://$(t_api_addr 3)/liveness")" 000
t_check "and answers over TLS 1.2" \
  t_eq "$(tls_code --tls-max 1.2 "https://$(t_api_addr 3)/liveness")" 200

# Answer headers, as curl receives them (names compared without regard to case).
head_of() { # ADDR PATH [CURL ARGS]: the response's header block, CRs removed
  local addr=$1 path=$2
  shift 2
  curl -s -m 2 -D - -o /dev/null --cacert "$P/ca.pem" "$@" "https://$addr$path" | tr -d '\r'
}
h=$(head_of "$(t_api_addr 1)" /liveness)
t_check "node1: Strict-Transport-Security over TLS" \
  grep -qix 'Strict-Transport-Security: max-age=31536000; includeSubDomains' <<<"$h"
t_check "node1: X-Frame-Options once, the https one" \
  t_eq "$(grep -ic '^X-Frame-Options:' <<<"$h") $(grep -i '^X-Frame-Options:' <<<"$h")" \
  "1 X-Frame-Options: DENY"
t_check "node1: the other http one too" grep -qix 'X-Content-Type-Options: nosniff' <<<"$h"
t_check "node1 (ProductOnly): Server: raftpg" t_eq "$(grep -i '^Server:' <<<"$h")" "Server: raftpg"
h=$(head_of "$(t_api_addr 1)" /reload -X POST -H 'Content-Type: text/plain' -d x)
t_check "node1: a refusal made before the handler (415) carries them too" \
  t_eq "$(head -1 <<<"$h" | cut -d' ' -f2) $(grep -ic '^Strict-Transport-Security:' <<<"$h")" \
  "415 1"
h=$(head_of "$(t_api_addr 2)" /liveness)
version=$("$T_BIN" version | cut -d' ' -f2)
t_check "node2 (Minimal): Server: raftpg/$version" \
  t_eq "$(grep -i '^Server:' <<<"$h")" "Server: raftpg/$version"
t_check "node2 sends no extra header" t_eq "$(grep -ic '^X-\|^Strict' <<<"$h")" 0
h=$(head_of "$(t_api_addr 3)" /liveness --tls-max 1.2)
t_check "node3 (Original): 200 and no Server header, as libmicrohttpd sends none" \
  t_eq "$(head -1 <<<"$h" | cut -d' ' -f2) $(grep -ic '^Server:' <<<"$h")" "200 0"

# Revocation on node2's server side: a revoked client certificate gets no answer, and the
# refusal is logged once however often it comes back; a valid one is served.
cert_code() { # ADDR NAME [CURL ARGS]: the status code with that client certificate (000: none)
  local addr=$1 name=$2
  shift 2
  curl -s -o /dev/null -w '%{http_code}' -m 2 --cacert "$P/ca.pem" --cert "$P/$name.pem" \
    --key "$P/$name.key" "$@" "https://$addr/liveness" || true
}
t_check "node2 serves a valid client certificate" t_eq "$(cert_code "$(t_api_addr 2)" client)" 200
for n in 1 2 3 4 5; do
  t_check "node2 refuses the revoked one (try $n)" \
    t_eq "$(cert_code "$(t_api_addr 2)" revoked)" 000
done
t_check "node1 (no list) serves it" t_eq "$(cert_code "$(t_api_addr 1)" revoked)" 200
revoked_line='api: refused TLS handshake from 127.0.0.1: client certificate "CN=revoked client" '
revoked_line+='refused: revoked (restapi.crlfile)'
t_check "the refusal is logged" t_wait 5 "the log line" grep -qF "$revoked_line" "$T_DIR/node2.log"
t_check "once (at most one a minute per address and reason)" \
  t_eq "$(grep -cF "$revoked_line" "$T_DIR/node2.log")" 1
t_check "and no other refusal" t_eq "$(grep -c 'refused TLS handshake' "$T_DIR/node2.log")" 1

# Revocation on the client side: node2's polls refuse node3 (its certificate is revoked) while
# node1's, without a list, reach it; ctl with the list refuses it, saying why.
member_state() { # ASKED MEMBER
  curl -s -m 2 --cacert "$P/ca.pem" "https://$(t_api_addr "$1")/cluster" |
    jq -r --arg m "node$2" '.members[] | select(.name == $m) | .state'
}
node3_unreachable_from_2() { [ "$(member_state 2 3)" = unreachable ]; }
t_check "node2's polls refuse node3" t_wait 10 "node3 unreachable from node2" \
  node3_unreachable_from_2
poll_error_of() { # ASKED MEMBER
  curl -s -m 2 --cacert "$P/ca.pem" "https://$(t_api_addr "$1")/cluster" |
    jq -r --arg m "node$2" '.members[] | select(.name == $m) | .poll_error // ""'
}
t_check "node2's /cluster says why: revoked ($(poll_error_of 2 3))" \
  t_contains "$(poll_error_of 2 3)" "revoked"
t_check "node2 still reaches node1" t_ne "$(member_state 2 1)" unreachable
# The member itself must be there, without the field (or with null): an empty answer fails.
poll_errors_of() { # ASKED MEMBER: [poll_error] of each member of that name, as JSON
  curl -s -m 2 --cacert "$P/ca.pem" "https://$(t_api_addr "$1")/cluster" |
    jq -c --arg m "node$2" '[.members[] | select(.name == $m) | .poll_error]'
}
t_check "and says nothing of a poll error for node1 ($(poll_errors_of 2 1))" \
  t_eq "$(poll_errors_of 2 1)" "[null]"
t_check "node1 reaches node3" t_ne "$(member_state 1 3)" unreachable
"$T_BIN" ctl --api "https://$(t_api_addr 3)" --cacert "$P/ca.pem" --crlfile "$P/crl.pem" list \
  >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
t_check "ctl --crlfile refuses node3" t_eq "$rc" 1
t_check "saying it is revoked ($(head -c 200 "$T_DIR/out"))" \
  grep -q "$(t_api_addr 3): TLS: .*revoked" "$T_DIR/out"
"$T_BIN" ctl --api "https://$(t_api_addr 1)" --cacert "$P/ca.pem" --crlfile "$P/crl.pem" list \
  >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
t_check "and reaches node1 with it" t_eq "$rc" 0
"$T_BIN" ctl -c "$T_DIR/node2.yaml" list >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
t_check "ctl -c with node2's configuration (its restapi.crlfile) lists through node2" \
  t_eq "$rc:$(grep -c 'answered by node2' "$T_DIR/out")" 0:1
"$T_BIN" ctl -c "$T_DIR/node2.yaml" --insecure list >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
t_check "and with --insecure, which leaves the lists aside ($(head -c 200 "$T_DIR/out"))" \
  t_eq "$rc" 0

"$T_BIN" ctl -c "$T_DIR/node1.yaml" list >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
t_check "ctl -c lists the members over HTTPS" t_eq "$rc" 0
t_check "all three" t_eq "$(grep -cE '^\| node[123] ' "$T_DIR/out")" 3
# ctl.cacert and ctl.insecure read from the file given with -c: copies of node1's configuration
# with a ctl section; "nocafile" without restapi.cafile, so that nothing else can verify.
ctl_with() { # ctl_with NAME [restapi.cafile kept: yes|no] CTL_SECTION_LINES...
  local f="$T_DIR/ctl-$1.yaml" keep=$2
  shift 2
  cp "$T_DIR/node1.yaml" "$f"
  [ "$keep" = yes ] || sed -i "\|^  cafile: $P/ca.pem\$|d" "$f"
  printf 'ctl:\n' >>"$f"
  printf '  %s\n' "$@" >>"$f"
  "$T_BIN" ctl -c "$f" list >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
  [ "$rc" = 0 ] && [ "$(grep -cE '^\| node[123] ' "$T_DIR/out")" = 3 ] && echo listed || echo "failed $rc"
}
t_check "ctl -c: ctl.cacert (another CA) is used before restapi.cafile, and fails" \
  t_eq "$(ctl_with stray yes "cacert: $P/stray.pem")" "failed 1"
t_check "... saying it is TLS, naming a member's address ($(head -c 200 "$T_DIR/out"))" \
  grep -qE "127\.0\.0\.1:($((T_BASE + 21))|$((T_BASE + 22))|$((T_BASE + 23))): TLS: SSL certificate problem" "$T_DIR/out"
t_check "ctl -c: without restapi.cafile nor ctl.cacert, the certificate does not verify" \
  t_eq "$(ctl_with none no "insecure: false")" "failed 1"
t_check "ctl -c: ctl.cacert alone verifies it" t_eq "$(ctl_with cacert no "cacert: $P/ca.pem")" listed
t_check "ctl -c: ctl.insecure: true alone lists without verifying" \
  t_eq "$(ctl_with insecure no "insecure: true")" listed
t_check "ctl -c: ctl.insecure: true even with another CA in ctl.cacert" \
  t_eq "$(ctl_with both yes "cacert: $P/stray.pem" "insecure: true")" listed
t_check "ctl -c: --cacert overrides ctl.cacert" \
  bash -c '"$1" ctl -c "$2" --cacert "$3" list >/dev/null 2>&1' _ "$T_BIN" "$T_DIR/ctl-stray.yaml" "$P/ca.pem"
"$T_BIN" ctl --api "https://$(t_api_addr 2)" --cacert "$P/ca.pem" list >"$T_DIR/out" 2>&1 &&
  rc=0 || rc=$?
t_check "ctl --api https:// --cacert works" t_eq "$rc" 0
"$T_BIN" ctl --api "https://$(t_api_addr 2)" --cacert "$P/stray.pem" list >"$T_DIR/out" 2>&1 &&
  rc=0 || rc=$?
t_check "ctl with the wrong CA fails" t_eq "$rc" 1
t_check "saying it is TLS, naming the address" grep -q "$(t_api_addr 2): TLS: " "$T_DIR/out"
"$T_BIN" ctl --api "https://$(t_api_addr 3)" --insecure list >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
t_check "ctl --insecure works" t_eq "$rc" 0
"$T_BIN" ctl --api "$(t_api_addr 3)" list >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
t_check "ctl over plain HTTP to a TLS API fails" t_eq "$rc" 1

# Connections that never reach a handshake are logged, once a minute per address and reason:
# one that sends nothing, and plain HTTP sent to the HTTPS port.
closed_line="api: TLS connection closed before its handshake from 127.0.0.1: "
no_hello="$closed_line""the client sent nothing (no TLS client hello"
plain="$closed_line"'the client spoke plain HTTP ("GET /liveness HT...") to this HTTPS port'
t_check "node2 has logged neither yet" \
  t_eq "$(grep -cF "$closed_line" "$T_DIR/node2.log")" 0
no_hello_close() { # PORT: connect, send nothing, close
  python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 2).close()' "$1"
}
api2_port=$(t_api_addr 2 | cut -d: -f2)
for n in 1 2 3; do no_hello_close "$api2_port"; done
for n in 1 2 3; do curl -s -o /dev/null -m 2 "http://$(t_api_addr 2)/liveness" || true; done
t_check "a connection closed without a hello is logged" \
  t_wait 5 "the line" grep -qF "$no_hello" "$T_DIR/node2.log"
t_check "plain HTTP to the TLS port is logged, naming the request line" \
  t_wait 5 "the line" grep -qF "$plain" "$T_DIR/node2.log"
sleep 1
t_check "each once for three tries" \
  t_eq "$(grep -cF "$no_hello" "$T_DIR/node2.log") $(grep -cF "$plain" "$T_DIR/node2.log")" "1 1"

# Revocation lists read again on SIGHUP: a list that also revokes the valid client certificate
# takes effect without a restart; a corrupt one is refused and the list in force stays.
crl_gen() { # OUT [openssl ca options]
  local out=$1
  shift
  openssl ca -config "$P/ca.cnf" -keyfile "$P/ca.key" -cert "$P/ca.pem" -gencrl -out "$out" "$@" \
    2>/dev/null
  [ "$(id -u)" -ne 0 ] || chown postgres:postgres "$out"
}
cp "$P/crl.pem" "$P/crl-first.pem"
openssl ca -config "$P/ca.cnf" -keyfile "$P/ca.key" -cert "$P/ca.pem" -revoke "$P/client.pem" \
  2>/dev/null
crl_gen "$P/crl-new.pem"
t_check "the new list revokes three certificates" \
  t_eq "$(openssl crl -in "$P/crl-new.pem" -noout -text | grep -c 'Serial Number')" 3
t_check "before the reload node2 serves the client certificate" \
  t_eq "$(cert_code "$(t_api_addr 2)" client)" 200
cp "$P/crl-new.pem" "$P/crl.pem"
kill -HUP "${T_PIDS[2]}"
t_check "the reload reads the TLS files again" \
  t_wait 5 "the line" grep -qF "reload: the API's TLS files were read again ($P/api.pem, $P/crl.pem)" \
  "$T_DIR/node2.log"
# From 127.0.0.2: a revocation from 127.0.0.1 was logged less than a minute ago.
t_check "after SIGHUP node2 refuses the newly revoked client certificate" \
  t_eq "$(cert_code "$(t_api_addr 2)" client --interface 127.0.0.2)" 000
client_line='api: refused TLS handshake from 127.0.0.2: client certificate "CN=valid client" '
client_line+='refused: revoked (restapi.crlfile)'
t_check "logged as revoked" t_wait 5 "the line" grep -qF "$client_line" "$T_DIR/node2.log"
t_check "node2 is the same process" kill -0 "${T_PIDS[2]}"
printf 'not a list\n' >"$P/crl.pem"
kill -HUP "${T_PIDS[2]}"
bad_line="reload: the API's TLS files were not read again (the ones in force are kept): "
bad_line+="restapi.crlfile: $P/crl.pem: not a certificate revocation list"
t_check "a corrupt list is refused, naming the file" \
  t_wait 5 "the line" grep -qF "$bad_line" "$T_DIR/node2.log"
t_check "the list in force stays: the client certificate is still refused" \
  t_eq "$(cert_code "$(t_api_addr 2)" client)" 000
t_check "and the revoked one too" t_eq "$(cert_code "$(t_api_addr 2)" revoked)" 000
# node2 takes changes from a client certificate only (verify_client: optional).
reload2() {
  "$T_BIN" ctl --api "https://$(t_api_addr 2)" --cacert "$P/ca.pem" --cert "$P/admin.pem" \
    --key "$P/admin.key" reload node2 >"$T_DIR/out" 2>&1
}
reload2 && rc=0 || rc=$?
t_check "ctl reload (POST /reload) fails, saying why ($(head -c 300 "$T_DIR/out"))" \
  t_eq "$rc:$(grep -c "node2: failed (http 400): the API's TLS files were not read again.*restapi.crlfile: $P/crl.pem: not a certificate revocation list" "$T_DIR/out")" 1:1

# A list past its nextUpdate: still used, warned about, and on /metrics.
crl_gen "$P/crl-stale.pem" -crlsec 1
sleep 2
cp "$P/crl-stale.pem" "$P/crl.pem"
reload2 && rc=0 || rc=$?
t_check "ctl reload with it succeeds ($(head -c 300 "$T_DIR/out"))" t_eq "$rc" 0
stale_line="api: restapi.crlfile $P/crl.pem is past its nextUpdate"
t_check "node2 warns that the list is past its nextUpdate" \
  t_wait 5 "the line" grep -qF "$stale_line" "$T_DIR/node2.log"
t_check "the stale list is used: the client certificate is refused" \
  t_eq "$(cert_code "$(t_api_addr 2)" client)" 000
next_update=$(date -d "$(openssl crl -in "$P/crl-stale.pem" -noout -nextupdate | cut -d= -f2)" +%s)
metrics_of() { # I: node I's /metrics through Prometheus's parser, "NAME VALUE" lines
  curl -s -m 3 --cacert "$P/ca.pem" "https://$(t_api_addr "$1")/metrics" |
    /usr/bin/python3 -c '
import sys
from prometheus_client.parser import text_string_to_metric_families
for f in text_string_to_metric_families(sys.stdin.read()):
    for s in f.samples:
        print("%s %d" % (s.name, s.value))'
}
metrics_of 2 >"$T_DIR/metrics2"
t_check "node2's /metrics parses and has the list's nextUpdate ($next_update)" \
  t_eq "$(grep '^raftpg_tls_crl_next_update_timestamp_seconds ' "$T_DIR/metrics2")" \
  "raftpg_tls_crl_next_update_timestamp_seconds $next_update"
t_check "which is in the past" test "$next_update" -lt "$(date +%s)"
not_after=$(date -d "$(openssl x509 -in "$P/api.pem" -noout -enddate | cut -d= -f2)" +%s)
t_check "and the certificate's expiry" \
  t_eq "$(grep '^raftpg_tls_certificate_expiry_timestamp_seconds ' "$T_DIR/metrics2")" \
  "raftpg_tls_certificate_expiry_timestamp_seconds $not_after"
metrics_of 1 >"$T_DIR/metrics1"
t_check "node1 (no list) has no list metric" \
  t_eq "$(grep -c '^raftpg_tls_crl_next_update' "$T_DIR/metrics1")" 0
cp "$P/crl-first.pem" "$P/crl.pem"

# The server certificate read again on SIGHUP: one expiring within 14 days is served and warned
# about; one whose key is not the certificate's is refused and the one in force stays.
t_check "no expiry warning so far (30-day certificates)" \
  t_eq "$(grep -c 'the server certificate .* expires' "$T_DIR/node1.log")" 0
served_serial() { # I
  openssl s_client -connect "$(t_api_addr "$1")" -CAfile "$P/ca.pem" </dev/null 2>/dev/null |
    openssl x509 -noout -serial
}
first_serial=$(served_serial 1)
cp "$P/api.pem" "$P/api-first.pem"
openssl x509 -req -in "$P/api.csr" -CA "$P/ca.pem" -CAkey "$P/ca.key" -CAcreateserial -days 5 \
  -extfile "$P/ext" -out "$P/api-soon.pem" 2>/dev/null
cp "$P/api-soon.pem" "$P/api.pem"
kill -HUP "${T_PIDS[1]}"
soon_line="api: the server certificate ($P/api.pem) expires on "
t_check "node1 warns that its new certificate expires soon" \
  t_wait 5 "the line" grep -qF "$soon_line" "$T_DIR/node1.log"
t_check "within 5 days" grep -qE 'expires on .* in [45] days: replace it and reload' \
  "$T_DIR/node1.log"
t_check "and serves it ($first_serial before)" \
  t_eq "$(served_serial 1)" "$(openssl x509 -in "$P/api-soon.pem" -noout -serial)"
t_check "which clients still accept" \
  t_eq "$(tls_code "https://$(t_api_addr 1)/liveness")" 200
cp "$P/stray.pem" "$P/api.pem"
kill -HUP "${T_PIDS[1]}"
t_check "a certificate that is not the key's is refused on reload, naming the files" \
  t_wait 5 "the line" grep -qF "not read again (the ones in force are kept): certificate file $P/api.pem with key file $P/api.key:" \
  "$T_DIR/node1.log"
t_check "and the one in force is still served" \
  t_eq "$(served_serial 1)" "$(openssl x509 -in "$P/api-soon.pem" -noout -serial)"
cp "$P/api-first.pem" "$P/api.pem"

for i in 1 2 3; do t_kill "$i" TERM; done

# node1 again, over plain HTTP: the http headers, not the https ones.
sed "/^  certfile:/d; /^  keyfile:/d; /^  cafile:/d" "$T_DIR/node1.yaml" >"$T_DIR/plain.yaml"
"$T_BIN" check-config "$T_DIR/plain.yaml" >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
t_check "a plain node1 with https_extra_headers loads" t_eq "$rc" 0
t_check "check-config says they are not sent" grep -q "(not sent: no restapi.certfile)" \
  "$T_DIR/out"
cp "$T_DIR/node1.yaml" "$T_DIR/tls.yaml"
cp "$T_DIR/plain.yaml" "$T_DIR/node1.yaml"
t_start 1
plain_head() { curl -s -m 1 -D - -o /dev/null "http://$(t_api_addr 1)/liveness" | tr -d '\r'; }
plain_up() { plain_head | grep '^HTTP/1.1 200' >/dev/null; }
t_check "node1 answers over HTTP" t_wait 10 "plain HTTP" plain_up
h=$(plain_head)
t_check "HTTP: X-Frame-Options is the http one" grep -qix 'X-Frame-Options: SAMEORIGIN' <<<"$h"
t_check "HTTP: X-Content-Type-Options too" grep -qix 'X-Content-Type-Options: nosniff' <<<"$h"
t_check "HTTP: no Strict-Transport-Security" \
  t_eq "$(grep -ic '^Strict-Transport-Security:' <<<"$h")" 0
t_check "HTTP: Server: raftpg" t_eq "$(grep -i '^Server:' <<<"$h")" "Server: raftpg"
t_kill 1 TERM
cp "$T_DIR/tls.yaml" "$T_DIR/node1.yaml"

# Load errors of the lists name the key: a list the stray CA signed, a missing one.
sed "s|^  crlfile: .*|  crlfile: $P/stray-crl.pem|" "$T_DIR/node2.yaml" >"$T_DIR/bad.yaml"
"$T_BIN" check-config "$T_DIR/bad.yaml" >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
t_check "a list the stray CA signed is refused" t_eq "$rc" 1
t_check "naming the key and why ($(head -c 300 "$T_DIR/out"))" grep -q \
  "^restapi.crlfile: $P/stray-crl.pem: the list of \"CN=stray CA\" is not signed by a CA of restapi.cafile" \
  "$T_DIR/out"
[ "$(id -u)" -ne 0 ] || chown postgres:postgres "$T_DIR/bad.yaml"
timeout 20 "${T_RUNAS[@]}" "$T_BIN" run -c "$T_DIR/bad.yaml" >"$T_DIR/bad.log" 2>&1 && rc=0 ||
  rc=$?
t_check "the agent refuses to start with it" t_eq "$rc" 1
t_check "saying why" grep -q "restapi.crlfile: $P/stray-crl.pem: the list of" "$T_DIR/bad.log"
sed "s|^  crlfile: .*|  crlfile: $P/missing.pem|" "$T_DIR/node2.yaml" >"$T_DIR/bad.yaml"
"$T_BIN" check-config "$T_DIR/bad.yaml" >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
t_check "a missing list is refused, named ($(head -c 200 "$T_DIR/out"))" grep -q \
  "^restapi.crlfile: $P/missing.pem: cannot read: No such file or directory" "$T_DIR/out"

# A key that is not the certificate's: the agent refuses to start, saying so.
sed "s|keyfile: $P/api.key|keyfile: $P/stray.key|" "$T_DIR/node1.yaml" >"$T_DIR/bad.yaml"
[ "$(id -u)" -ne 0 ] || chown postgres:postgres "$T_DIR/bad.yaml" "$P/stray.key"
timeout 20 "${T_RUNAS[@]}" "$T_BIN" run -c "$T_DIR/bad.yaml" >"$T_DIR/bad.log" 2>&1 && rc=0 ||
  rc=$?
t_check "an agent whose key is not the certificate's exits 1" t_eq "$rc" 1
t_check "saying why" grep -q "cannot start the HTTP server (is the key the certificate's" \
  "$T_DIR/bad.log"
sed -i "/^  certfile:/d" "$T_DIR/bad.yaml"
"$T_BIN" check-config "$T_DIR/bad.yaml" >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
t_check "a keyfile without certfile is refused" t_eq "$rc" 1
t_check "naming what is missing" grep -q "restapi.certfile" "$T_DIR/out"
# Patroni's restapi.ciphers takes an OpenSSL cipher list; here GnuTLS speaks TLS.
sed "s|^  cafile: $P/ca.pem\$|&\n  ciphers: \"ECDHE-RSA-AES128-GCM-SHA256:!SSLv3\"|" \
  "$T_DIR/node1.yaml" >"$T_DIR/bad.yaml"
"$T_BIN" check-config "$T_DIR/bad.yaml" >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
t_check "an OpenSSL cipher list in restapi.ciphers is refused" t_eq "$rc" 1
t_check "naming the key and where it is wrong ($(head -c 300 "$T_DIR/out"))" \
  grep -q 'restapi.ciphers.*not a GnuTLS priority string (at "ECDHE-RSA' "$T_DIR/out"
t_done
