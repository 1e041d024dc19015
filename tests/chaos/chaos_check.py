#!/usr/bin/env python3
"""Checks one fault of a fencing chaos test against DESIGN.md §4 from the client's logs.

Inputs: the writer's acknowledgements (raftpg_chaos_writer: "TARGET NODE ACK_MS ID" a line) and
the VIP watcher's polls (raftpg_chaos_vipwatch: "MS addr=NAMES arp=NAMES" a line), both on the
CLOCK_MONOTONIC time line, and the monotonic times just before and just after the fault was
injected. Prints one JSON object: figures (milliseconds) and named checks, each
{"ok": bool, "detail": text}. A human-readable report goes to --report. Exits 0 when it could
read its inputs, whatever the checks say; the test decides.

Definitions:
- old: the primary before the fault (given). new: the first other node to acknowledge a write
  after the fault started.
- I1 (one writer): sort every acknowledgement by time; a node's window is [its first ack, its
  last ack]. For two distinct nodes A and B with first(A) < first(B), the switch from A to B is
  clean only if no ack from A comes after first(B). Any ack of A after first(B) is a violation;
  each is counted, by target, with how long after first(B) it came.
- I3 (one VIP holder): at no poll may two nodes have the VIP on an interface (addr=), and at no
  poll may two MACs answer the client's ARP request for it (arp=).
  A node taken off the network (--lost NODE START END: its link is down) is not counted as a
  holder between START and END: nothing can reach its addresses, as with a dead machine.
- Within the lease: the old primary's last acknowledgement, and its last poll holding the VIP,
  are at most lease_ms after the fault took effect (fault end). For a pause (--resume), the bound
  is instead margin_ms (0.2 ET) after the paused agent was resumed, as it cannot act before.
- Settled (--settled T, when the test saw the old primary rejoin as a standby): from T on, only
  the new primary has the VIP.
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
            acks.append((float(p[2]), p[0], p[1], int(p[3])))
    acks.sort()
    return acks


def read_polls(path):
    polls, macs = [], {}
    with open(path) as f:
        for line in f:
            p = line.split()
            if line.startswith("#"):
                if len(p) == 3 and p[2].startswith("mac="):
                    macs[p[1]] = p[2][4:]
                continue
            if len(p) != 3 or not p[1].startswith("addr=") or not p[2].startswith("arp="):
                continue

            def names(v):
                return [] if v == "-" else v.split(",")

            polls.append((float(p[0]), names(p[1][5:]), names(p[2][4:])))
    polls.sort()
    return polls, macs


def r1(x):
    return None if x is None else round(x, 1)


def by_target(acks):
    out = {}
    for a in acks:
        out[a[1]] = out.get(a[1], 0) + 1
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--acks", required=True)
    ap.add_argument("--vip", required=True)
    ap.add_argument("--fault", required=True)
    ap.add_argument("--old", required=True)
    ap.add_argument("--fault-start", type=float, required=True)
    ap.add_argument("--fault-end", type=float, required=True)
    ap.add_argument("--lease-ms", type=float, required=True)
    ap.add_argument("--resume", type=float, help="pause: when the paused agent was resumed")
    ap.add_argument("--heal", type=float, help="when the fault was healed")
    ap.add_argument("--settled", type=float, help="when the old primary was seen as a standby")
    ap.add_argument("--lost", nargs=3, metavar=("NODE", "START", "END"),
                    help="NODE was off the network from START to END")
    ap.add_argument("--ids", help="the ids in chaos_acks on the final primary, one a line")
    ap.add_argument("--report", required=True)
    a = ap.parse_args()

    acks = read_acks(a.acks)
    polls, macs = read_polls(a.vip)
    lost_polls = 0
    if a.lost:
        ln, ls, le = a.lost[0], float(a.lost[1]), float(a.lost[2])
        kept = []
        for p in polls:
            if ls <= p[0] <= le and ln in p[1]:
                lost_polls += 1
                p = (p[0], [h for h in p[1] if h != ln], p[2])
            kept.append(p)
        polls = kept
    t0, t1, old = a.fault_start, a.fault_end, a.old
    lease = a.lease_ms
    margin = lease / 4  # 0.2 ET = lease / 4 (include/raftpg/fence.h)
    lines = []
    checks = {}

    def check(name, ok, detail):
        checks[name] = {"ok": bool(ok), "detail": detail}
        lines.append("%s %s: %s" % ("ok  " if ok else "FAIL", name, detail))

    # --- who took over
    new = None
    for t, tgt, node, _ in acks:
        if t >= t0 and node != old and node != "?":
            new = node
            break
    old_acks = [x for x in acks if x[2] == old]
    new_acks = [x for x in acks if x[2] == new] if new else []
    old_after = [x for x in old_acks if x[0] >= t0]
    old_last = old_acks[-1][0] if old_acks else None
    old_last_vip = max((x[0] for x in old_acks if x[1] == "vip"), default=None)
    new_first = new_acks[0][0] if new_acks else None
    new_first_vip = min((x[0] for x in new_acks if x[1] == "vip" and x[0] >= t0), default=None)

    # --- I1: pairwise windows
    first, last = {}, {}
    for t, _, node, _ in acks:
        first.setdefault(node, t)
        last[node] = t
    i1 = []
    nodes = sorted(first, key=lambda n: first[n])
    for i, na in enumerate(nodes):
        for nb in nodes[i + 1:]:
            late = [x for x in acks if x[2] == na and x[0] > first[nb]]
            if late:
                i1.append({
                    "earlier": na, "later": nb, "acks_after": len(late),
                    "by_target": by_target(late),
                    "last_after_ms": r1(late[-1][0] - first[nb]),
                    "later_first_ack_rel_fault_ms": r1(first[nb] - t0),
                    "first_ids": [x[3] for x in late[:5]],
                })
    if i1:
        check("i1", False, "; ".join(
            "%s acknowledged %d writes (%s) after %s's first ack (at fault%+.1f ms), the last "
            "%.1f ms after it" % (v["earlier"], v["acks_after"],
                                  ", ".join("%s=%d" % kv for kv in sorted(v["by_target"].items())),
                                  v["later"], v["later_first_ack_rel_fault_ms"],
                                  v["last_after_ms"]) for v in i1))
    else:
        check("i1", True, "windows " + ", ".join(
            "%s [%+.1f, %+.1f]" % (n, first[n] - t0, last[n] - t0) for n in nodes) +
            " ms from the fault do not overlap")

    # --- I3
    two_addr = [p for p in polls if len(p[1]) > 1]
    two_arp = [p for p in polls if len(p[2]) > 1]
    unknown = [p for p in polls if any(h.endswith("?") for h in p[1])]

    def span(ps):
        return "%d polls from fault%+.1f to %+.1f ms, e.g. addr=%s arp=%s" % (
            len(ps), ps[0][0] - t0, ps[-1][0] - t0, ",".join(ps[0][1]) or "-",
            ",".join(ps[0][2]) or "-")

    check("i3_addr", not two_addr and not unknown,
          span(two_addr) if two_addr else
          ("%d polls could not read a namespace's addresses" % len(unknown) if unknown else
           "%d polls, never two nodes with the VIP on an interface" % len(polls)))
    check("i3_arp", not two_arp, span(two_arp) if two_arp else
          "%d ARP polls, never two MACs answering for the VIP" % len(polls))
    gaps = [b[0] - a_[0] for a_, b in zip(polls, polls[1:])]
    poll_gap_max = max(gaps) if gaps else None

    # --- the old side
    old_vip_polls = [p for p in polls if p[0] >= t0 and old in p[1]]
    old_vip_last = old_vip_polls[-1][0] if old_vip_polls else None
    if a.resume is not None:
        bound, what = a.resume + margin, "the resume + margin (%.0f ms)" % margin
    else:
        bound, what = t1 + lease, "the fault + lease (%.0f ms)" % lease
    late = [x for x in old_after if x[0] > bound]
    if late:
        check("old_stops_writes", False,
              "%s acknowledged %d writes (%s) after %s, the last at fault%+.1f ms" % (
                  old, len(late), ", ".join("%s=%d" % kv for kv in sorted(by_target(late).items())),
                  what, late[-1][0] - t0))
    else:
        check("old_stops_writes", True, "%s's last ack at fault%+.1f ms, within %s" % (
            old, (old_last - t0) if old_last is not None else float("nan"), what))
    if a.lost and a.lost[0] == old:
        what += ", not counting %d polls while %s was off the network" % (lost_polls, old)
    if old_vip_last is not None and old_vip_last > bound:
        check("old_releases_vip", False,
              "%s still had the VIP at fault%+.1f ms, after %s" % (old, old_vip_last - t0, what))
    else:
        check("old_releases_vip", True, "%s's last poll with the VIP at %s, within %s" % (
            old, "fault%+.1f ms" % (old_vip_last - t0) if old_vip_last else "none after the fault",
            what))

    # --- the new side
    new_vip_polls = [p for p in polls if p[0] >= t0 and new is not None and p[1] == [new]]
    new_vip_first = new_vip_polls[0][0] if new_vip_polls else None
    check("new_primary", new is not None,
          "%s acknowledged first after the fault, at fault%+.1f ms" % (new, new_first - t0)
          if new else "no other node acknowledged a write after the fault")
    check("new_claims_vip", new_vip_first is not None,
          "%s alone has the VIP from fault%+.1f ms" % (new, new_vip_first - t0)
          if new_vip_first is not None else "%s never held the VIP alone" % new)
    check("vip_client_continues", new_first_vip is not None,
          "first write through the VIP acknowledged by %s at fault%+.1f ms" % (
              new, new_first_vip - t0) if new_first_vip is not None else
          "no write through the VIP was acknowledged by %s" % new)

    # --- the end state: once the old primary is back as a standby, only new has the VIP
    if a.settled is not None:
        after = [p for p in polls if p[0] >= a.settled]
        bad = [p for p in after if p[1] != [new] or p[2] != [new]]
        check("settled_vip", after and not bad,
              "%d polls after the rejoin, every one with the VIP on %s alone" % (
                  len(after), new) if after and not bad else
              ("no poll after the rejoin" if not after else span(bad)))

    # --- acknowledged rows missing on the final primary (a figure: replication is asynchronous)
    missing = None
    if a.ids:
        with open(a.ids) as f:
            have = set(int(l) for l in f if l.strip().isdigit())
        gone = [x for x in acks if x[3] not in have]
        missing = {
            "total": len(gone),
            "by_node": {n: sum(1 for x in gone if x[2] == n) for n in nodes
                        if any(x[2] == n for x in gone)},
            "after_new_first_ack": (sum(1 for x in gone if x[0] > new_first)
                                    if new_first is not None else None),
        }
        lines.append("info acknowledged rows missing on the final primary: %d %s" % (
            len(gone), json.dumps(missing["by_node"])))

    figures = {
        "fault": a.fault,
        "old": old,
        "new": new,
        "lease_ms": lease,
        "fault_inject_ms": r1(t1 - t0),
        "old_last_ack_ms": r1(old_last - t0) if old_last is not None else None,
        "old_last_vip_ack_ms": r1(old_last_vip - t0) if old_last_vip is not None else None,
        "old_acks_after_fault": len(old_after),
        "old_vip_last_held_ms": r1(old_vip_last - t0) if old_vip_last is not None else None,
        "new_first_ack_ms": r1(new_first - t0) if new_first is not None else None,
        "new_vip_claimed_ms": r1(new_vip_first - t0) if new_vip_first is not None else None,
        "first_vip_ack_ms": r1(new_first_vip - t0) if new_first_vip is not None else None,
        "gap_ms": r1(new_first - old_last) if None not in (new_first, old_last) else None,
        "vip_gap_ms": (r1(new_first_vip - old_last_vip)
                       if None not in (new_first_vip, old_last_vip) else None),
        "resume_ms": r1(a.resume - t0) if a.resume is not None else None,
        "heal_ms": r1(a.heal - t0) if a.heal is not None else None,
        "settled_ms": r1(a.settled - t0) if a.settled is not None else None,
        "lost_node_polls_ignored": lost_polls,
        "acks": len(acks),
        "acks_by_node": {n: sum(1 for x in acks if x[2] == n) for n in nodes},
        "polls": len(polls),
        "poll_gap_max_ms": r1(poll_gap_max),
        "acked_rows_missing": missing,
        "i1_violations": i1,
        "i3_addr_violations": len(two_addr),
        "i3_arp_violations": len(two_arp),
    }
    out = dict(figures)
    out["checks"] = checks
    with open(a.report, "w") as f:
        f.write("fault %s: old=%s new=%s (times relative to the fault start)\n" % (
            a.fault, old, new))
        for l in lines:
            f.write(l + "\n")
    print(json.dumps(out, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
