#!/usr/bin/env bash
# ctl edit-config as patronictl's: $EDITOR on the configuration as show-config prints it (a
# private temporary file, gone afterwards), the unified diff, "Apply these changes? [y/N]" read
# from stdin (no answer, as from /dev/null, applies nothing and does not wait), --force, -q,
# "Not changed"; --apply FILE or - (merged), --replace FILE (the whole configuration); YAML that
# does not parse named by file, line and column; a key the leader refuses changes nothing; a
# change made by someone else while the editor ran is not undone. Every change is checked in
# each member's PostgreSQL (SHOW) and GET /config.
T_PG=1
source "$(dirname "$0")/lib.sh"
t_pick_ports
for i in 1 2 3; do t_write_conf "$i" 3; t_start "$i"; done
t_wait 60 "a primary and two streaming standbys" t_pg_healthy 1 2 3
ctl() { "$T_BIN" ctl --api "$(t_api_addr 1)" --api "$(t_api_addr 2)" --api "$(t_api_addr 3)" "$@"; }
show() { t_psql "$1" -c "SHOW $2" 2>/dev/null; }
all_show() { local i; for i in 1 2 3; do [ "$(show "$i" "$1")" = "$2" ] || return 1; done; }
config_of() { curl -s -m 3 "http://$(t_api_addr "$1")/config" | jq -cS 'del(.recorded)'; }
params_are() { [ "$(curl -s -m 3 "http://$(t_api_addr "$1")/config" | jq -cS '.postgresql.parameters')" = "$2" ]; }
# The editor: records the file's mode, then runs the sed program in EDIT_SED on it.
export TMPDIR="$T_DIR/tmp"
mkdir -p "$TMPDIR"
cat >"$T_DIR/editor.sh" <<'EOF'
#!/bin/sh
stat -c %a "$1" >"$TMPDIR/../edited.mode"
echo "$1" >"$TMPDIR/../edited.path"
exec sed -i "$EDIT_SED" "$1"
EOF
chmod 755 "$T_DIR/editor.sh"
export EDITOR="$T_DIR/editor.sh"
# run NAME ARGS...: ctl edit-config ARGS with stdin from $T_DIR/NAME.in (or /dev/null), bounded
# by 30 s; its output in $T_DIR/NAME.out, its exit status in $T_DIR/NAME.rc.
run() {
  local name=$1 in=/dev/null rc=0
  shift
  [ -f "$T_DIR/$name.in" ] && in="$T_DIR/$name.in"
  timeout 30 "$T_BIN" ctl --api "$(t_api_addr 1)" --api "$(t_api_addr 2)" edit-config "$@" \
    <"$in" >"$T_DIR/$name.out" 2>&1 || rc=$?
  echo "$rc" >"$T_DIR/$name.rc"
}
out() { tr '\n' ';' <"$T_DIR/$1.out"; }
rc_is() { t_eq "$(cat "$T_DIR/$1.rc")" "$2" || { echo "  output: $(out "$1")"; return 1; }; }
has() { grep -qxF -- "$2" "$T_DIR/$1.out" || { echo "  no line [$2] in: $(out "$1")"; return 1; }; }
matches() { grep -qE -- "$2" "$T_DIR/$1.out" || { echo "  no line matching [$2] in: $(out "$1")"; return 1; }; }
lacks() { ! grep -qF -- "$2" "$T_DIR/$1.out" || { echo "  [$2] in: $(out "$1")"; return 1; }; }

t_check "work_mem starts at PostgreSQL's default" all_show work_mem 4MB

# --apply FILE --force: merged, applied without asking, the diff shown.
printf 'postgresql:\n  parameters:\n    work_mem: 8MB\n' >"$T_DIR/apply.yaml"
run apply --apply "$T_DIR/apply.yaml" --force
t_check "--apply FILE --force exits 0" rc_is apply 0
t_check "--apply shows the added line in a unified diff" has apply "+    work_mem: 8MB"
t_check "--apply says Configuration changed" has apply "Configuration changed"
t_check "--force does not ask" lacks apply "Apply these changes?"
t_wait 10 "SHOW work_mem is 8MB on every member" all_show work_mem 8MB

# The editor, answered y on stdin.
echo y >"$T_DIR/edit.in"
EDIT_SED='s/^    work_mem: 8MB$/    work_mem: 12MB/' run edit
t_check "edit-config with \$EDITOR and y exits 0" rc_is edit 0
t_check "the diff shows the old line" has edit "-    work_mem: 8MB"
t_check "the diff shows the new line" has edit "+    work_mem: 12MB"
t_check "the diff has a hunk header" grep -q '^@@ -[0-9,]* +[0-9,]* @@$' "$T_DIR/edit.out"
t_check "it asked" grep -qF "Apply these changes? [y/N]: " "$T_DIR/edit.out"
t_check "the editor's file was private (0600)" t_eq "$(cat "$T_DIR/edited.mode")" 600
t_check "the editor's file is removed" t_status 1 test -e "$(cat "$T_DIR/edited.path")"
t_wait 10 "SHOW work_mem is 12MB on every member" all_show work_mem 12MB
for i in 1 2 3; do
  t_check "node$i's GET /config has work_mem 12MB" params_are "$i" '{"work_mem":"12MB"}'
done

# The editor changes nothing, or only adds a comment and quotes: Not changed, nothing asked.
EDIT_SED='$a # just a comment' run same
t_check "an edit that changes no value: exit 0" rc_is same 0
t_check "an edit that changes no value: Not changed" has same "Not changed"
t_check "an edit that changes no value: nothing asked" lacks same "Apply these changes?"
EDIT_SED="s/^    work_mem: 12MB$/    work_mem: '12MB'/" run quoted -q
t_check "quotes added with -q: exit 0, nothing printed" t_eq "$(cat "$T_DIR/quoted.rc"):$(out quoted)" 0:

# No terminal and no --force: stdin is /dev/null, the question has no answer; nothing changes.
before=$(config_of 1)
t0=$(date +%s)
EDIT_SED='s/^    work_mem: 12MB$/    work_mem: 16MB/' run noanswer
t_check "no answer: exit 1 (not the timeout's 124)" rc_is noanswer 1
t_check "no answer: returns within 10 s" t_eq "$(( $(date +%s) - t0 < 10 ))" 1
t_check "no answer: the diff was shown" has noanswer "+    work_mem: 16MB"
t_check "no answer: says it aborted" grep -qF "Aborted!" "$T_DIR/noanswer.out"
echo n >"$T_DIR/declined.in"
EDIT_SED='s/^    work_mem: 12MB$/    work_mem: 16MB/' run declined
t_check "answer n: exit 1, Not applied" t_eq "$(cat "$T_DIR/declined.rc"):$(tail -n 1 "$T_DIR/declined.out")" \
  "1:Apply these changes? [y/N]: Not applied"
sleep 1
for i in 1 2 3; do
  t_check "node$i: configuration unchanged after no answer and n" t_eq "$(config_of "$i")" "$before"
  t_check "node$i: SHOW work_mem still 12MB" t_eq "$(show "$i" work_mem)" 12MB
done

# --apply - : read from stdin, so it cannot also answer: refused without --force.
printf 'postgresql:\n  parameters:\n    maintenance_work_mem: 32MB\n' >"$T_DIR/stdin1.in"
run stdin1 --apply -
t_check "--apply - without --force: exit 1" rc_is stdin1 1
t_check "--apply - without --force: says to use --force" has stdin1 "Use --force option to apply changes"
t_check "--apply - without --force: nothing changed" t_eq "$(config_of 2)" "$before"
cp "$T_DIR/stdin1.in" "$T_DIR/stdin2.in"
run stdin2 --apply - --force
t_check "--apply - --force: exit 0" rc_is stdin2 0
t_wait 10 "SHOW maintenance_work_mem is 32MB on every member" all_show maintenance_work_mem 32MB
t_check "--apply merges: work_mem still 12MB everywhere" all_show work_mem 12MB

# --replace: the whole configuration; the parameters it leaves out are removed.
cat >"$T_DIR/replace.yaml" <<'EOF'
synchronous_mode: quorum
synchronous_node_count: 1
synchronous_commit: 'on'
postgresql:
  parameters:
    effective_cache_size: 200MB
EOF
echo yes >"$T_DIR/replace.in"
run replace --replace "$T_DIR/replace.yaml"
t_check "--replace FILE, answered yes: exit 0" rc_is replace 0
t_check "--replace: the removed parameter in the diff" has replace "-    work_mem: 12MB"
for i in 1 2 3; do
  t_wait 5 "node$i's GET /config has exactly the replacement's parameters" \
    params_are "$i" '{"effective_cache_size":"200MB"}'
done
t_wait 10 "SHOW effective_cache_size is 200MB on every member" all_show effective_cache_size 200MB
t_wait 10 "SHOW work_mem is back to 4MB on every member" all_show work_mem 4MB
t_check "SHOW maintenance_work_mem is back to 64MB on every member" all_show maintenance_work_mem 64MB

# YAML that does not parse: file, line and column; nothing sent.
before=$(config_of 1)
printf 'postgresql:\n  parameters:\n    work_mem: [8MB\n' >"$T_DIR/bad.yaml"
run bad --apply "$T_DIR/bad.yaml" --force
t_check "bad YAML: exit 1" rc_is bad 1
t_check "bad YAML: named by file, line and column" has bad \
  "raftpg ctl edit-config: $T_DIR/bad.yaml:4:1: did not find expected ',' or ']' while parsing a flow sequence"
EDIT_SED='s/^synchronous_node_count: 1$/synchronous_node_count: [1/' run badedit --force
t_check "bad YAML from the editor: exit 1" rc_is badedit 1
t_check "bad YAML from the editor: line and column, the edit kept" matches badedit \
  "^raftpg ctl edit-config: $TMPDIR/raftpg-config-[A-Za-z0-9]{6}\\.yaml:3:19: did not find expected .*; nothing changed \\(the edit is kept in "
rm -f "$TMPDIR"/raftpg-config-*.yaml
# Keys the leader refuses: named, nothing changes.
printf 'postgresql:\n  parameters:\n    synchronous_standby_names: "*"\n' >"$T_DIR/owned.yaml"
run owned --apply "$T_DIR/owned.yaml" --force
t_check "a parameter raftpg owns: exit 1, the diff first" t_eq "$(cat "$T_DIR/owned.rc"):$(head -n 1 "$T_DIR/owned.out")" \
  "1:--- current"
t_check "a parameter raftpg owns: the refusal names it" matches owned \
  "^raftpg ctl edit-config: refused \\(http 400\\): postgresql\\.parameters\\.synchronous_standby_names: not settable here: raftpg manages it"
EDIT_SED='s/^synchronous_mode: quorum$/synchronous_mod: strict/' run unknown --force
t_check "an unknown key from the editor: refused with the key" has unknown \
  'raftpg ctl edit-config: refused (http 400): unknown key "synchronous_mod" (settable: synchronous_mode, synchronous_node_count, synchronous_commit, maximum_lag_on_failover, postgresql.parameters, postgresql.pg_hba, pause)'
for i in 1 2 3; do
  t_check "node$i: configuration unchanged after the refusals" t_eq "$(config_of "$i")" "$before"
done

# A change made while the editor runs is not undone.
cat >"$T_DIR/racer.sh" <<EOF
#!/bin/sh
"$T_BIN" ctl --api $(t_api_addr 3) edit-config -s synchronous_node_count=2 >/dev/null || exit 3
exec sed -i 's/^    effective_cache_size: 200MB\$/    effective_cache_size: 300MB/' "\$1"
EOF
chmod 755 "$T_DIR/racer.sh"
EDITOR="$T_DIR/racer.sh" run race --force
t_check "a change during the edit: exit 1, said so" t_eq "$(cat "$T_DIR/race.rc"):$(tail -n 1 "$T_DIR/race.out")" \
  "1:raftpg ctl edit-config: the configuration changed since it was read: run edit-config again; nothing changed"
race_state() { t_eq "$(curl -s -m 3 "http://$(t_api_addr "$1")/config" | jq -c '[.synchronous_node_count, .postgresql.parameters.effective_cache_size]')" '[2,"200MB"]'; }
for i in 1 2 3; do
  t_wait 5 "node$i: the other change stays, the edit is not applied" race_state "$i"
done

# No editor at all.
EDITOR=/nonexistent/editor run noeditor
t_check "a missing EDITOR: exit 1, named" t_eq "$(cat "$T_DIR/noeditor.rc"):$(tail -n 1 "$T_DIR/noeditor.out")" \
  '1:raftpg ctl edit-config: editor "/nonexistent/editor" could not be run (exit 127; EDITOR names it); nothing changed'
rc=0
env -u EDITOR PATH=/nonexistent "$T_BIN" ctl --api "$(t_api_addr 1)" edit-config </dev/null >"$T_DIR/nopath.out" 2>&1 || rc=$?
t_check "no EDITOR, no editor or vi on PATH: exit 1, said so" t_eq "$rc:$(cat "$T_DIR/nopath.out")" \
  "1:raftpg ctl edit-config: EDITOR is not set and neither editor nor vi is on PATH (or give -s, -p, --apply or --replace)"
t_check "no file left in TMPDIR" t_eq "$(ls -A "$TMPDIR")" ""
for i in 1 2 3; do t_alive "$i" && t_kill "$i" TERM; done
t_done
