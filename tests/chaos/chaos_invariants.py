#!/usr/bin/env python3
"""Checks one chaos scenario run against DESIGN.md §4 (I1-I4) from what the clients saw.

Unlike chaos_check.py, which measures one fault of the primary against its lease, this checker
knows nothing about the fault: it reads the writer's acknowledgements, the VIP watcher's polls and
the ids present on the final primary, and proves or refutes the four rules over the whole run.

Inputs (times on the writer's CLOCK_MONOTONIC line, milliseconds):
  --acks FILE     raftpg_chaos_writer output: "TARGET NODE ACK_MS ID" a line
  --vip FILE      raftpg_chaos_vipwatch output: "MS addr=NAMES arp=NAMES" a line
  --ids FILE      the ids in chaos_acks on the final primary, one a line
  --lost NODE START END   NODE was off the network (its link down or cut from everyone) in
                  [START, END]: its VIP is reachable by nobody then, as with a dead machine, so
                  it does not count as a holder for I3 (may be given several times)
  --no-majority START END no majority of nodes was up and connected in [START, END]: I4 does not
                  apply there (may be given several times)
  --budget-ms N   I4: the longest time without any acknowledged write while a majority is up
                  and connected (default 8000, the simulation's budget)
  --start T --end T   the window the run covers (acks outside it are ignored for I4 gaps)

Rules, as the clients can observe them:
  I1 one writer: order the nodes by their first acknowledgement; no node acknowledges a write
     after a later node's first. Evidence: the ids, times and targets of the late acks.
  I2 no lost commit: every acknowledged id is on the final primary. Evidence: the missing ids,
     which node acknowledged each and when.
  I3 one VIP holder: never two nodes with the VIP on an interface, never two MACs answering ARP.
  I4 liveness: between --start and --end, outside the --no-majority windows, no gap between two
     consecutive acknowledgements (any node, any target) longer than the budget.
Prints one JSON object (figures and checks, each {"ok", "detail"}); a readable report goes to
--report. Exits 0 when it could read its inputs; the caller decides.
"""
import argparse
import json
import sys


def read_acks(path):
    acks = []
    with open(path) as f:
        for line in f:
            p = line.split()
            if len(p) != 4 or line.startswith("#"):
                continue
            try:
                acks.append((float(p[2]), p[0], p[1], int(p[3])))
            except ValueError:
                continue
    acks.sort()
    return acks


def read_polls(path):
    polls = []
    with open(path) as f:
        for line in f:
            p = line.split()
            if line.startswith("#") or len(p) != 3:
                continue
            if not p[1].startswith("addr=") or not p[2].startswith("arp="):
                continue

            def names(v):
                return [] if v == "-" else v.split(",")

            polls.append((float(p[0]), names(p[1][5:]), names(p[2][4:])))
    polls.sort()
    return polls


def within(t, spans):
    return any(s <= t <= e for s, e in spans)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--acks", required=True)
    ap.add_argument("--vip", required=True)
    ap.add_argument("--ids", required=True)
    ap.add_argument("--lost", nargs=3, action="append", default=[],
                    metavar=("NODE", "START", "END"))
    ap.add_argument("--no-majority", nargs=2, action="append", default=[],
                    metavar=("START", "END"))
    ap.add_argument("--budget-ms", type=float, default=8000)
    ap.add_argument("--start", type=float, required=True)
    ap.add_argument("--end", type=float, required=True)
    ap.add_argument("--report", required=True)
    a = ap.parse_args()

    acks = read_acks(a.acks)
    polls = read_polls(a.vip)
    lost = [(n, float(s), float(e)) for n, s, e in a.lost]
    no_majority = [(float(s), float(e)) for s, e in a.no_majority]
    t0 = a.start
    checks, lines = {}, []

    def check(name, ok, detail):
        checks[name] = {"ok": bool(ok), "detail": detail}
        lines.append("%s %s: %s" % ("ok  " if ok else "FAIL", name, detail))

    def rel(t):
        return "%+.0f ms" % (t - t0)

    # I1
    first = {}
    for t, _, node, _ in acks:
        first.setdefault(node, t)
    order = sorted(first, key=lambda n: first[n])
    late = []
    for i, na in enumerate(order):
        for nb in order[i + 1:]:
            for x in acks:
                if x[2] == na and x[0] > first[nb]:
                    late.append((na, nb, x))
    if late:
        ev = ["%s acknowledged id %d (via %s) at %s, after %s's first ack at %s" % (
            na, x[3], x[1], rel(x[0]), nb, rel(first[nb])) for na, nb, x in late[:5]]
        check("i1", False, "%d late acks: %s" % (len(late), "; ".join(ev)))
    else:
        check("i1", True, "writers in order %s, no ack after a later writer's first" %
              " -> ".join("%s@%s" % (n, rel(first[n])) for n in order))

    # I2
    with open(a.ids) as f:
        have = set(int(l) for l in f if l.strip().isdigit())
    gone = [x for x in acks if x[3] not in have]
    if gone:
        ev = ["id %d acknowledged by %s via %s at %s" % (x[3], x[2], x[1], rel(x[0]))
              for x in gone[:5]]
        check("i2", False, "%d acknowledged rows missing on the final primary: %s" % (
            len(gone), "; ".join(ev)))
    else:
        check("i2", True, "all %d acknowledged rows on the final primary" % len(acks))

    # I3
    def holders(p):
        return [h for h in p[1] if not any(n == h and s <= p[0] <= e for n, s, e in lost)]

    two_addr = [p for p in polls if len(holders(p)) > 1]
    two_arp = [p for p in polls if len(p[2]) > 1]
    unknown = [p for p in polls if any(h.endswith("?") for h in p[1])]
    if two_addr or two_arp:
        ev = two_addr[0] if two_addr else two_arp[0]
        check("i3", False, "%d polls with two VIP holders, %d with two ARP answers; first at %s: "
              "addr=%s arp=%s" % (len(two_addr), len(two_arp), rel(ev[0]),
                                  ",".join(ev[1]) or "-", ",".join(ev[2]) or "-"))
    elif unknown:
        check("i3", False, "%d polls could not read a namespace's addresses" % len(unknown))
    elif not polls:
        check("i3", False, "no VIP poll was recorded")
    else:
        check("i3", True, "%d polls, never two holders or two ARP answers" % len(polls))

    # I4: gaps between consecutive acks within [start, end], the no-majority windows excluded
    # (a gap that overlaps one counts only from the window's end).
    times = [x[0] for x in acks if a.start <= x[0] <= a.end]
    marks = [a.start] + times + [a.end]
    worst = (0.0, a.start, a.start)
    for p, q in zip(marks, marks[1:]):
        s = p
        for ws, we in no_majority:
            if ws <= s <= we or (s < ws < q):
                s = max(s, we)
        if q > s and q - s > worst[0]:
            worst = (q - s, s, q)
    if not times:
        check("i4", False, "no write acknowledged between %s and %s" % (rel(a.start), rel(a.end)))
    elif worst[0] > a.budget_ms:
        check("i4", False, "no acknowledged write for %.0f ms (%s to %s), budget %.0f ms" % (
            worst[0], rel(worst[1]), rel(worst[2]), a.budget_ms))
    else:
        check("i4", True, "longest time without an acknowledged write %.0f ms (%s to %s), "
              "budget %.0f ms" % (worst[0], rel(worst[1]), rel(worst[2]), a.budget_ms))

    out = {
        "acks": len(acks),
        "acks_by_node": {n: sum(1 for x in acks if x[2] == n) for n in order},
        "writers": order,
        "longest_gap_ms": round(worst[0], 1),
        "missing": len(gone),
        "polls": len(polls),
        "checks": checks,
    }
    with open(a.report, "w") as f:
        for l in lines:
            f.write(l + "\n")
    print(json.dumps(out, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
