#!/usr/bin/env bash
# The command line: help on every subcommand, check-config verdicts, and clear usage errors.
source "$(dirname "$0")/lib.sh"

run() { "$T_BIN" "$@" >"$T_DIR/out" 2>&1 && echo 0 || echo $?; }
out() { cat "$T_DIR/out"; }

t_check "raftpg --help exits 0" t_eq "$(run --help)" 0
t_check "--help lists the subcommands" grep -q "check-config FILE" "$T_DIR/out"
for sub in "run --help" "check-config --help" "ctl --help"; do
  # shellcheck disable=SC2086
  t_check "raftpg $sub exits 0" t_eq "$(run $sub)" 0
  t_check "raftpg $sub prints usage" grep -q "usage: raftpg" "$T_DIR/out"
done
t_check "no command is a usage error" t_eq "$(run)" 2
t_check "unknown command exits 2" t_eq "$(run frobnicate)" 2
t_check "unknown command is named" grep -q 'unknown command "frobnicate"' "$T_DIR/out"
t_check "run without -c exits 2" t_eq "$(run run)" 2
t_check "run without -c says so" grep -q -- "-c FILE is required" "$T_DIR/out"
t_check "run with a missing file exits 1" t_eq "$(run run -c "$T_DIR/nope.yaml")" 1
t_check "missing file is named" grep -q "$T_DIR/nope.yaml: cannot read: No such file or directory" "$T_DIR/out"

T_BASE=30000
t_write_conf 1 3
t_check "check-config accepts a valid file" t_eq "$(run check-config "$T_DIR/node1.yaml")" 0
t_check "check-config prints the derived settings" grep -q "election_timeout=500ms heartbeat_timeout=100ms pre_vote=on members=3" "$T_DIR/out"

bad="$T_DIR/bad.yaml"
sed 's/  election_timeout: 500/  election_timeout: fast/' "$T_DIR/node1.yaml" >"$bad"
t_check "check-config rejects a bad value" t_eq "$(run check-config "$bad")" 1
t_check "the error names file, line, column and key" \
  grep -qE "^$bad:[0-9]+:[0-9]+: raft.election_timeout: expected an integer 50..60000, got \"fast\"$" "$T_DIR/out"
sed 's/^scope: itest/scope: itest\nscop: typo/' "$T_DIR/node1.yaml" >"$bad"
t_check "check-config rejects an unknown key" t_eq "$(run check-config "$bad")" 1
t_check "the unknown key is named at its position" grep -qE "^$bad:2:1: scop: unknown key$" "$T_DIR/out"
t_check "run refuses the same file" t_eq "$(run run -c "$bad")" 1
t_check "run prints the same error" grep -qE "$bad:2:1: scop: unknown key" "$T_DIR/out"

t_check "ctl without an address exits 2" t_eq "$(RAFTPG_API='' run ctl list)" 2
t_check "ctl says how to give an address" grep -q "give --api HOST:PORT, -c FILE, RAFTPG_API, RAFTPG_CONFIG" "$T_DIR/out"
# RAFTPG_CONFIG stands for -c (patronictl's habit): the members of that file are asked.
t_check "ctl with RAFTPG_CONFIG asks that file's members" t_eq "$(RAFTPG_API='' RAFTPG_CONFIG="$T_DIR/node1.yaml" run ctl --timeout 200 list)" 1
t_check "... naming them" grep -q "127.0.0.1:3002[1-3]: connection refused" "$T_DIR/out"
t_check "ctl list --format xml is a usage error" t_eq "$(run ctl --api 127.0.0.1:1 list --format xml)" 2
t_check "... naming the formats" grep -q "expected pretty, json, yaml or tsv" "$T_DIR/out"
t_check "ctl history --format xml is a usage error" \
  t_eq "$(run ctl --api 127.0.0.1:1 history --format xml)" 2
t_check "... naming the command and the formats" \
  grep -q "raftpg ctl history: --format: expected pretty, json, yaml or tsv, got \"xml\"" "$T_DIR/out"
t_check "ctl list --watch 0 is a usage error" t_eq "$(run ctl --api 127.0.0.1:1 list --watch 0)" 2
t_check "ctl switchover --scheduled with a time that is not ISO 8601 exits 2" t_eq "$(run ctl --api 127.0.0.1:1 switchover --scheduled 10:00)" 2
t_check "... naming the time and what is wrong" grep -qF -- '--scheduled: "10:00": expected ISO 8601' "$T_DIR/out"
t_check "ctl flush of something else than switchover or restart exits 2" t_eq "$(run ctl --api 127.0.0.1:1 flush reload)" 2
t_check "ctl restart --scheduled with a time that is not ISO 8601 exits 2" t_eq "$(run ctl --api 127.0.0.1:1 restart --scheduled 10:00)" 2
t_check "... naming the time and what is wrong" grep -qF -- '--scheduled: "10:00": expected ISO 8601' "$T_DIR/out"
t_check "ctl pause with an extra argument exits 2" t_eq "$(run ctl --api 127.0.0.1:1 pause now)" 2
t_check "ctl against a closed port exits 1" t_eq "$(run ctl --api 127.0.0.1:1 list)" 1
t_check "ctl names the refused address" grep -q "127.0.0.1:1: connection refused" "$T_DIR/out"
t_check "ctl with a bad timeout exits 2" t_eq "$(run ctl --api 127.0.0.1:1 --timeout soon list)" 2
t_check "ctl member with no subcommand exits 2" t_eq "$(run ctl --api 127.0.0.1:1 member)" 2
t_check "ctl member add without NAME exits 2" t_eq "$(run ctl --api 127.0.0.1:1 member add)" 2
t_done
