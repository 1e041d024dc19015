#!/usr/bin/env bash
# The API over TLS (restapi.certfile, keyfile, cafile) with a CA made here: the agents poll each
# other over HTTPS and verify each other's certificates, curl and ctl reach the API only with the
# CA (or --insecure), and plain HTTP gets nothing. restapi.ciphers (a GnuTLS priority string)
# takes TLS 1.3 away from node3; an OpenSSL cipher list there is refused.
source "$(dirname "$0")/lib.sh"
t_pick_ports

# A CA, and one certificate for 127.0.0.1 that every member presents.
P="$T_DIR/pki"
mkdir -p "$P"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=raftpg test CA" \
  -keyout "$P/ca.key" -out "$P/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
  -keyout "$P/api.key" -out "$P/api.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' >"$P/ext"
openssl x509 -req -in "$P/api.csr" -CA "$P/ca.pem" -CAkey "$P/ca.key" -CAcreateserial -days 2 \
  -extfile "$P/ext" -out "$P/api.pem" 2>/dev/null
# Another CA, which signed nothing here.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=stray CA" \
  -keyout "$P/stray.key" -out "$P/stray.pem" 2>/dev/null
chmod 600 "$P/api.key"
[ "$(id -u)" -ne 0 ] || chown -R postgres:postgres "$P"

for i in 1 2 3; do
  t_write_conf "$i" 3
  sed -i "s|^  listen: $(t_api_addr "$i")\$|&\n  certfile: $P/api.pem\n  keyfile: $P/api.key\n  cafile: $P/ca.pem|" \
    "$T_DIR/node$i.yaml"
done
# node3 offers TLS 1.2 only (restapi.ciphers, a GnuTLS priority string).
sed -i "s|^  cafile: $P/ca.pem\$|&\n  ciphers: \"NORMAL:-VERS-TLS1.3\"|" "$T_DIR/node3.yaml"
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

"$T_BIN" ctl -c "$T_DIR/node1.yaml" list >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
t_check "ctl -c lists the members over HTTPS" t_eq "$rc" 0
t_check "all three" t_eq "$(grep -cE '^\| node[123] ' "$T_DIR/out")" 3
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

for i in 1 2 3; do t_kill "$i" TERM; done

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
