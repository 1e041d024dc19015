#!/usr/bin/env bash
# The history of promotions (GET /history in Patroni's shape, ctl history) and ctl failover
# (POST /failover): the bootstrap is recorded; a failover to a candidate while the primary is
# healthy is a switchover, recorded with the LSN where the old timeline ended as PostgreSQL's
# own timeline history file says; the loss of the primary is recorded as a failover; every
# member shows the same history. Refusals name their reason. User tags (any key under tags:)
# show in /patroni and /cluster and filter health checks (?tag_<key>=<value>). ctl reload applies
# a changed tag at once and names a changed raft timeout as needing a restart of the agent; so
# does SIGHUP.
T_PG=1
declare -A T_TAGS=([1]="datacenter: west" [2]="datacenter: east, rack: 7" [3]="datacenter: east")
source "$(dirname "$0")/lib.sh"
t_pick_ports
for i in 1 2 3; do t_write_conf "$i" 3; t_start "$i"; done
t_wait 60 "a primary and two streaming standbys" t_pg_healthy 1 2 3
ctl() { "$T_BIN" ctl --api "$(t_api_addr 1)" --api "$(t_api_addr 2)" --api "$(t_api_addr 3)" "$@"; }
hist() { curl -sf --max-time 2 "http://$(t_api_addr "$1")/history"; }
# Entry count of node I's history is N (and, with node J, both show the same).
hist_len() { [ "$(hist "$1" | jq length)" = "$2" ]; }
same_hist() { local a b; a=$(hist "$1") && b=$(hist "$2") && [ -n "$a" ] && [ "$a" = "$b" ]; }
P=$(t_pg_primary 1); Pi=${P#node}
t_log "primary is $P"

# User tags.
code() { curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://$(t_api_addr "$1")$2"; }
t_check "/patroni shows node2's user tags" \
  t_eq "$(curl -sf "http://$(t_api_addr 2)/patroni" | jq -c '.tags | {datacenter, rack}')" \
  '{"datacenter":"east","rack":"7"}'
t_check "/cluster on node3 shows node1's (its last report)" \
  t_eq "$(curl -sf "http://$(t_api_addr 3)/cluster" | jq -r '.members[] | select(.name == "node1") | .tags.datacenter')" west
for i in 1 2 3; do
  [ "node$i" != "$P" ] || continue
  dc=$(curl -sf "http://$(t_api_addr "$i")/patroni" | jq -r .tags.datacenter)
  want=503; [ "$dc" != east ] || want=200
  t_check "node$i ($dc): /replica?tag_datacenter=east is $want" t_eq "$(code "$i" '/replica?tag_datacenter=east')" "$want"
  t_check "node$i: a known tag still filters (?tag_nofailover=false, 200)" \
    t_eq "$(code "$i" '/replica?tag_nofailover=false&tag_datacenter='"$dc")" 200
done

t_wait 15 "the bootstrap in the history" hist_len 1 1
h=$(hist 1)
t_check "the bootstrap entry names $P ($h)" \
  t_eq "$(jq -c '.[0] | [.[0], .[1], .[2], .[4]]' <<<"$h")" "[0,0,\"bootstrap\",\"$P\"]"
t_check "its time is ISO 8601 and today" \
  t_contains "$(jq -r '.[0][3]' <<<"$h")" "$(date -u +%Y-%m-%dT)"
out=$(ctl history 2>&1)
t_check "ctl history shows it as a table ($out)" grep -qE "^0 +0/0 +bootstrap .* $P\$" <<<"$out"

# Refusals.
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 -X POST -H 'Content-Type: application/json' \
  -d '{"candidate":"node2"}' "http://$(t_api_addr "$Pi")/failover")
t_check "an unsigned POST /failover is refused (401)" t_eq "$code" 401
ctl failover >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
t_check "ctl failover without --candidate is a usage error ($(cat "$T_DIR/out"))" t_eq "$rc" 2
ctl failover --candidate "$P" >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
t_check "a failover to the primary itself is refused ($(cat "$T_DIR/out"))" \
  grep -q "$P is already the primary" "$T_DIR/out"
ctl failover --candidate node9 >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
t_check "a failover to an unknown member is refused ($(cat "$T_DIR/out"))" \
  grep -q "node9 is not another member" "$T_DIR/out"
t_check "the primary did not change" t_eq "$(t_pg_primary 1)" "$P"

# With a healthy primary, a failover is a switchover.
t_wait 30 "standbys on the primary's timeline" t_pg_healthy 1 2 3
C=node$(( Pi % 3 + 1 )); Ci=${C#node}
ctl failover --candidate "$C" --force >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
t_check "ctl failover --candidate $C with a healthy primary ($(cat "$T_DIR/out"))" t_eq "$rc" 0
t_check "$C's server is out of recovery" t_eq "$(t_psql "$Ci" -c 'SELECT pg_is_in_recovery()')" f
t_wait 15 "the switchover in the history" hist_len "$Ci" 2
h=$(hist "$Ci")
tl=$(t_psql "$Ci" -c 'SELECT timeline_id FROM pg_control_checkpoint()')
f="$T_DIR/$C/pgdata/pg_wal/$(printf '%08X' 2).history"
read -r ptl sp _ < <(grep -v '^#' "$f" | awk 'NF >= 2' | tail -n1)
want="$ptl $(( (16#${sp%/*} << 32) + 16#${sp#*/} ))"
t_check "the entry is the switchover to $C ($(jq -c '.[1]' <<<"$h"))" \
  t_eq "$(jq -r '.[1] | "\(.[2]) \(.[4])"' <<<"$h")" "switchover $C"
t_check "its timeline and LSN are those of $C's timeline history file ($want; checkpoint timeline $tl)" \
  t_eq "$(jq -r '.[1] | "\(.[0]) \(.[1])"' <<<"$h")" "$want"
t_check "the LSN is past the start of WAL" test "${want#* }" -gt 0

# The loss of the primary: recorded as a failover by the member that took over.
t_wait 60 "$P back as a streaming standby" t_pg_healthy 1 2 3
t_kill "$Ci"; t_kill_pg "$Ci"
others=(); for i in 1 2 3; do [ "$i" = "$Ci" ] || others+=("$i"); done
new_primary() { local p; p=$(t_pg_primary "${others[0]}"); [ -n "$p" ] && [ "$p" != "$C" ]; }
t_wait 30 "a new primary after $C was lost" new_primary
N=$(t_pg_primary "${others[0]}"); Ni=${N#node}
t_wait 15 "the failover in the history" hist_len "$Ni" 3
h=$(hist "$Ni")
t_check "the entry is the failover to $N from timeline 2 ($(jq -c '.[2]' <<<"$h"))" \
  t_eq "$(jq -r '.[2] | "\(.[0]) \(.[2]) \(.[4])"' <<<"$h")" "2 failover $N"
# The other survivor applies the entry a heartbeat later.
t_check "the surviving members show the same history (within 10 s)" \
  t_poll 10 same_hist "${others[0]}" "${others[1]}"
# patronictl history -f json|yaml|tsv: one row per entry, the LSN a number.
rows=$(jq -c '[.[] | {"TL": .[0], "LSN": .[1], "Reason": .[2], "Timestamp": .[3], "New Leader": .[4]}]' <<<"$h")
out=$(ctl history --format json 2>&1)
t_check "ctl history --format json is /history as patronictl's rows ($out)" t_eq "$out" "$rows"
out=$(ctl history --format yaml 2>&1)
back=$(python3 -c 'import json, sys, yaml; print(json.dumps(yaml.safe_load(sys.stdin), separators=(",", ":")))' <<<"$out" 2>&1)
t_check "ctl history --format yaml reads back as the same rows ($back)" t_eq "$back" "$rows"
out=$(ctl history --format tsv 2>&1)
want=$(printf 'TL\tLSN\tReason\tTimestamp\tNew Leader\n%s' \
  "$(jq -r '.[] | [.[0], .[1], .[2], .[3], .[4]] | @tsv' <<<"$h")")
t_check "ctl history --format tsv is a header and the rows" t_eq "$out" "$want"
t_start "$Ci"
t_wait 60 "$C back as a streaming standby" t_pg_healthy 1 2 3
t_wait 15 "$C applied the same history" same_hist "$Ci" "$Ni"

# Without a healthy primary the failover path judges the candidate, also while paused (Patroni's
# manual failover in maintenance mode; test_pg_failover_paused has the details): the candidate is
# the standby furthest ahead (either on a tie), as its server says.
ctl pause --wait >/dev/null
t_kill_pg "$Ni"
down() { [ "$(t_jq "${others[0]}" --arg n "$N" '.members[] | select(.name == $n) | .state')" != running ]; }
t_wait 10 "$N's server seen stopped" down
X=${others[0]}; [ "$X" != "$Ni" ] || X=${others[1]}
received() { t_psql "$1" -c "SELECT pg_wal_lsn_diff(pg_last_wal_receive_lsn(), '0/0')::bigint"; }
Oi=$Ci; [ "$(received "$X")" -le "$(received "$Ci")" ] || Oi=$X
O=node$Oi
ctl failover --candidate "$O" >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
t_check "with the primary's server down and the cluster paused, a failover to $O ($(cat "$T_DIR/out"))" \
  t_eq "$rc" 0
promoted() { [ "$(t_psql "$Oi" -c 'SELECT pg_is_in_recovery()' 2>/dev/null)" = f ]; }
t_wait 30 "$O promoted" promoted
t_check "... $O is the primary (asked of PostgreSQL)" promoted
t_check "... and the cluster is still paused" t_eq "$(t_jq "$Oi" .pause)" true
ctl resume --wait >/dev/null
t_wait 60 "healthy again after resume" t_pg_healthy 1 2 3

# Reload: node1's file gets another user tag value and another election timeout.
T_TAGS[1]="datacenter: north"; T_ELECTION_TIMEOUT=600 t_write_conf 1 3
out=$(ctl reload node1 2>&1) && rc=0 || rc=$?
t_check "ctl reload node1 ($out)" t_eq "$rc" 0
t_check "... applied the tags and names the timeout as needing a restart" \
  t_eq "$out" "node1: reloaded; applied: tags; needs a restart of the agent: raft.election_timeout"
t_check "node1's /patroni shows the new tag" \
  t_eq "$(curl -sf "http://$(t_api_addr 1)/patroni" | jq -r .tags.datacenter)" north
echo 'tags: [' >>"$T_DIR/node1.yaml"
out=$(ctl reload node1 2>&1) && rc=0 || rc=$?
t_check "a broken file is refused with its error, nothing changes ($out)" \
  t_contains "$out" "node1: failed (http 400): $T_DIR/node1.yaml:"
t_check "... node1 still runs with the tag it had" \
  t_eq "$(curl -sf "http://$(t_api_addr 1)/patroni" | jq -r .tags.datacenter)" north
# SIGHUP reloads too, as in Patroni.
T_TAGS[1]="datacenter: south"; t_write_conf 1 3
kill -HUP "${T_PIDS[1]}"
south() { [ "$(curl -sf "http://$(t_api_addr 1)/patroni" | jq -r .tags.datacenter)" = south ]; }
t_wait 5 "node1 reloaded on SIGHUP" south
t_check "node1's agent still runs after SIGHUP" t_alive 1
t_done
