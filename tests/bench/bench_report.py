#!/usr/bin/env python3
"""scripts/bench's figures.

analyse: turns one benchmark's raw records (the writer's acknowledgements, the runs' fault times,
the ids present at the end, the nodes' logs around each fault) into one system's JSON.
report: prints the Markdown table of one or two systems' JSON and writes them together.

Times: the writer stamps acknowledgements with CLOCK_MONOTONIC (ms); each run records the
monotonic and the wall time of its fault together, so log lines (wall clock) map onto the same
axis.
"""
import argparse
import datetime
import json
import os
import re
import statistics
import sys

# Log events on the new primary's node, in the order a failover passes them. The first pattern
# that matches after the fault gives the event's time; "acting" adds the delay the line names.
EVENTS = {
    "raftpg": [
        ("election_started", r"starting an election", "any"),
        ("leader_elected", r"raft role candidate -> leader", "new"),
        ("own_term_barrier", r"leader ready: own-term barrier committed", "new"),
        ("lease_and_watchdog_waited", r"acting as leader in (\d+) ms", "new"),
        # The wait above ended early (every other member shown to have stood down).
        ("acted_early", r"acting now: every other member", "new"),
        ("recorded_primary", r"record_primary done", "new"),
        ("promoted", r"promote done", "new"),
    ],
    "patroni": [
        ("leader_lock", r"acquired session lock as a leader|promoted self to leader", "new"),
        ("promoted", r"cleared rewind state after becoming the leader|"
                     r"updated leader lock during promote", "new"),
    ],
}

RAFTPG_TS = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z ")
PATRONI_TS = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) ")


def wall_ms(line):
    m = RAFTPG_TS.match(line)
    if m:
        t = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f")
    else:
        m = PATRONI_TS.match(line)
        if not m:
            return None
        t = datetime.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S")
        t = t.replace(microsecond=int(m.group(2)) * 1000)
    return t.replace(tzinfo=datetime.timezone.utc).timestamp() * 1000.0


def read_acks(path):
    acks = []
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) != 4:
                continue
            try:
                acks.append((parts[0], parts[1], float(parts[2]), int(parts[3])))
            except ValueError:
                continue
    acks.sort(key=lambda a: a[2])
    return acks


def first_ack_after(acks, targets, t0, not_node):
    for tgt, node, t, _ in acks:
        if tgt in targets and t > t0 and node != not_node:
            return t
    return None


# "direct": a connection to each node's own address, so the figure is the cluster's, without a
# client's way of finding the primary.
TARGETS = {"direct": ("node1", "node2", "node3", "node4", "node5"), "vip": ("vip",)}


def longest_gap(acks, targets, a, b):
    times = [t for tgt, _, t, _ in acks if tgt in targets and a <= t <= b]
    gaps = [y - x for x, y in zip(times, times[1:])]
    return max(gaps) if gaps else None


def events_of(system, logs, run, new):
    out = {}
    offset = run["wall0"] - run["t0"]
    for name, pattern, where in EVENTS[system]:
        rx = re.compile(pattern)
        nodes = sorted(logs) if where == "any" else [new]
        best = None
        for node in nodes:
            for line in logs.get(node, []):
                m = rx.search(line)
                w = wall_ms(line) if m else None
                if w is None:
                    continue
                t = w - offset
                if m.groups():
                    t += float(m.group(1))
                if t < run["t0"]:
                    continue
                if best is None or t < best:
                    best = t
                break
        if best is not None:
            out[name] = round(best - run["t0"], 1)
    return out


def summary(values):
    v = sorted(x for x in values if x is not None)
    if not v:
        return {"n": 0}
    p95 = v[min(len(v) - 1, int(round(0.95 * (len(v) - 1))))]
    return {"n": len(v), "median": round(statistics.median(v), 1), "p95": round(p95, 1),
            "min": round(v[0], 1), "max": round(v[-1], 1)}


def analyse(a):
    acks = read_acks(a.acks)
    runs = [json.loads(l) for l in open(a.runs) if l.strip()]
    sws = [json.loads(l) for l in open(a.switchovers) if l.strip()] if a.switchovers else []
    out_runs = []
    for run in runs:
        logs = {}
        for f in os.listdir(a.logs):
            m = re.match(r"run%d\.(node\d)\.log$" % run["run"], f)
            if m:
                with open(os.path.join(a.logs, f), errors="replace") as fh:
                    logs[m.group(1)] = fh.read().splitlines()
        r = {"run": run["run"], "old": run["old"], "new": run.get("new")}
        for target, names in TARGETS.items():
            t = first_ack_after(acks, names, run["t0"], run["old"])
            r["first_ack_%s_ms" % target] = None if t is None else round(t - run["t0"], 1)
        r["events_ms"] = events_of(a.system, logs, run, run.get("new"))
        out_runs.append(r)
    out_sws = []
    for sw in sws:
        out_sws.append({"from": sw["from"], "to": sw.get("to"), "ok": sw["ok"],
                        "write_pause_ms": longest_gap(acks, TARGETS["direct"], sw["t0"], sw["t1"])})
    acked = {i for _, _, _, i in acks}
    present = set()
    with open(a.ids) as f:
        for line in f:
            line = line.strip()
            if line.isdigit():
                present.add(int(line))
    lost = sorted(acked - present)
    res = {
        "system": a.system,
        "version": a.version,
        "settings": a.settings,
        "idle": json.load(open(a.idle)) if a.idle else {},
        "failover": {
            "fault": "kill -9 of every process of the primary's node, its link down",
            "runs": out_runs,
            "first_ack_direct_ms": summary([r["first_ack_direct_ms"] for r in out_runs]),
            "first_ack_vip_ms": summary([r["first_ack_vip_ms"] for r in out_runs]),
            "no_new_primary": sum(1 for r in out_runs if not r["new"]),
        },
        "switchover": {"runs": out_sws,
                       "write_pause_ms": summary([s["write_pause_ms"] for s in out_sws if s["ok"]]),
                       "failed": sum(1 for s in out_sws if not s["ok"])},
        "acknowledged": len(acked),
        "acknowledged_lost": len(lost),
        "lost_ids_sample": lost[:20],
    }
    with open(a.out, "w") as f:
        json.dump(res, f, indent=1)
    return 0


def fmt(s, key="median"):
    if not s or s.get("n", 0) == 0:
        return "n/a"
    return "%.0f / %.0f / %.0f (n=%d)" % (s["median"], s["p95"], s["max"], s["n"])


def report(a):
    systems = [json.load(open(p)) for p in a.json]
    rows = [
        ("kill -9 of the primary's node to the first acknowledged write on the new primary "
         "(ms, median / p95 / max)", lambda s: fmt(s["failover"]["first_ack_direct_ms"])),
        ("... through the VIP (ms)", lambda s: fmt(s["failover"].get("first_ack_vip_ms"))),
        ("runs without a new primary", lambda s: str(s["failover"]["no_new_primary"])),
        ("switchover: longest write pause (ms, median / p95 / max)",
         lambda s: fmt(s["switchover"]["write_pause_ms"])),
        ("switchovers that failed", lambda s: str(s["switchover"]["failed"])),
        ("acknowledged writes / lost", lambda s: "%d / %d" % (s["acknowledged"],
                                                              s["acknowledged_lost"])),
    ]
    groups = sorted({g for s in systems for g in s["idle"]})
    for g in groups:
        rows.append(("idle, per node: %s CPU %% of a core / RSS MiB" % g,
                     lambda s, g=g: ("%.2f / %.1f" % (s["idle"][g]["cpu_pct"],
                                                      s["idle"][g]["rss_kib"] / 1024.0))
                     if g in s["idle"] else "n/a"))
    head = "| | " + " | ".join("%s %s" % (s["system"], s["version"]) for s in systems) + " |"
    lines = [head, "|---" * (len(systems) + 1) + "|"]
    for label, f in rows:
        lines.append("| %s | %s |" % (label, " | ".join(f(s) for s in systems)))
    for s in systems:
        names = [n for n, _, _ in EVENTS[s["system"]]] + ["first_ack_direct", "first_ack_vip"]
        lines.append("")
        lines.append("%s, where each failover's time went (ms after the kill):" % s["system"])
        lines.append("")
        lines.append("| run | old -> new | " + " | ".join(names) + " |")
        lines.append("|---" * (len(names) + 2) + "|")
        for r in s["failover"]["runs"]:
            ev = dict(r["events_ms"])
            ev["first_ack_direct"] = r["first_ack_direct_ms"]
            ev["first_ack_vip"] = r["first_ack_vip_ms"]
            lines.append("| %d | %s -> %s | %s |" % (
                r["run"], r["old"], r["new"] or "none",
                " | ".join("-" if ev.get(n) is None else "%.0f" % ev[n] for n in names)))
        lines.append("")
        lines.append("%s settings: %s" % (s["system"], s["settings"]))
    text = "\n".join(lines) + "\n"
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write(text)
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump({"systems": systems}, f, indent=1)
    sys.stdout.write(text)
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    an = sub.add_parser("analyse")
    an.add_argument("--system", required=True, choices=sorted(EVENTS))
    an.add_argument("--version", default="")
    an.add_argument("--settings", default="")
    an.add_argument("--acks", required=True)
    an.add_argument("--runs", required=True)
    an.add_argument("--switchovers")
    an.add_argument("--ids", required=True)
    an.add_argument("--idle")
    an.add_argument("--logs", required=True)
    an.add_argument("--out", required=True)
    rp = sub.add_parser("report")
    rp.add_argument("json", nargs="+")
    rp.add_argument("--markdown")
    rp.add_argument("--json-out")
    a = p.parse_args()
    return analyse(a) if a.cmd == "analyse" else report(a)


if __name__ == "__main__":
    sys.exit(main())
