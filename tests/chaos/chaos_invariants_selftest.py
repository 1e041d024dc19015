#!/usr/bin/env python3
"""chaos_invariants.py against made-up client logs: each rule must fail on its violation and pass
on a clean run, so that a passing chaos run means something."""
import json
import os
import subprocess
import sys
import tempfile

CHECKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "chaos_invariants.py")


def run(acks, polls, ids, extra=()):
    with tempfile.TemporaryDirectory() as d:
        paths = {}
        for name, lines in (("acks", acks), ("vip", polls), ("ids", ids)):
            paths[name] = os.path.join(d, name)
            with open(paths[name], "w") as f:
                f.write("".join(l + "\n" for l in lines))
        out = subprocess.run(
            [sys.executable, CHECKER, "--acks", paths["acks"], "--vip", paths["vip"],
             "--ids", paths["ids"], "--start", "0", "--end", "10000", "--budget-ms", "3000",
             "--report", os.path.join(d, "report")] + list(extra),
            check=True, capture_output=True, text=True).stdout
        return {k: v["ok"] for k, v in json.loads(out)["checks"].items()}


def polls_one_holder(node, n=100):
    return ["%d addr=%s arp=%s" % (i * 100, node, node) for i in range(n)]


def main():
    failed = 0

    def expect(what, got, want):
        nonlocal failed
        ok = got == want
        failed += not ok
        print("%s - %s%s" % ("ok" if ok else "not ok", what, "" if ok else ": got %s" % got))

    # Clean: node1 writes until 4000, node2 from 5000 on; every id present.
    acks = ["vip node1 %d %d" % (t, t) for t in range(0, 4000, 100)]
    acks += ["vip node2 %d %d" % (t, t) for t in range(5000, 10000, 100)]
    ids = [a.split()[3] for a in acks]
    clean = run(acks, polls_one_holder("node1"), ids)
    expect("a clean failover passes every rule", clean,
           {"i1": True, "i2": True, "i3": True, "i4": True})
    # I1: node1 acknowledges once more after node2's first.
    late = acks + ["node1 node1 6000 999999"]
    expect("I1 fails on an ack after a later writer's first",
           run(late, polls_one_holder("node1"), ids + ["999999"])["i1"], False)
    # I2: an acknowledged id missing at the end.
    expect("I2 fails on a missing acknowledged row",
           run(acks, polls_one_holder("node1"), ids[1:])["i2"], False)
    # I3: two holders at one poll; not counted while the second is off the network.
    two = polls_one_holder("node1") + ["5050 addr=node1,node2 arp=node2"]
    expect("I3 fails on two VIP holders", run(acks, two, ids)["i3"], False)
    expect("I3 ignores a holder that is off the network",
           run(acks, two, ids, ["--lost", "node1", "5000", "5100"])["i3"], True)
    expect("I3 fails on two ARP answers",
           run(acks, polls_one_holder("node1") + ["5050 addr=node2 arp=node1,node2"], ids)["i3"],
           False)
    # I4: a 4 s gap fails a 3 s budget, unless no majority existed then.
    gap = ["vip node1 %d %d" % (t, t) for t in range(0, 3000, 100)]
    gap += ["vip node1 %d %d" % (t, t) for t in range(7000, 10000, 100)]
    gids = [a.split()[3] for a in gap]
    expect("I4 fails on a gap over the budget", run(gap, polls_one_holder("node1"), gids)["i4"],
           False)
    expect("I4 does not count a window without a majority",
           run(gap, polls_one_holder("node1"), gids, ["--no-majority", "2900", "6000"])["i4"],
           True)
    print("chaos_invariants_selftest: %s" % ("FAILED" if failed else "all checks passed"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
