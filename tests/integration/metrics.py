#!/usr/bin/python3
"""Reads an agent's GET /metrics with Prometheus's own Python client parser (a malformed
exposition raises) and prints one "NAME VALUE" line per sample, labels checked on the way; a
sample with labels beyond scope and name is printed as NAME{KEY=VALUE,...}, keys sorted.

usage: metrics.py HOST:PORT SCOPE NAME
"""
import sys
import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def main():
    addr, scope, name = sys.argv[1], sys.argv[2], sys.argv[3]
    with urllib.request.urlopen("http://%s/metrics" % addr, timeout=3) as r:
        ctype = r.headers.get("Content-Type", "")
        text = r.read().decode("utf-8")
    if not ctype.startswith("text/plain"):
        sys.exit("unexpected Content-Type %r" % ctype)
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.labels.get("scope") != scope or s.labels.get("name") != name:
                sys.exit("%s: labels %r" % (s.name, s.labels))
            # The parser names a counter's sample NAME_total and its family NAME without _total:
            # print the family's name (the exposed one, less a trailing _total).
            shown = family.name if s.name in (family.name, family.name + "_total") else s.name
            extra = sorted((k, v) for k, v in s.labels.items() if k not in ("scope", "name"))
            if extra:
                shown += "{%s}" % ",".join("%s=%s" % kv for kv in extra)
            print("%s %r" % (shown, s.value))


if __name__ == "__main__":
    main()
