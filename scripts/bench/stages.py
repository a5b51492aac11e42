#!/usr/bin/env python3
"""Where an event's freshness goes, from two /metrics scrapes of `recstream run`
taken before and after a measured window: for each stage histogram
(recstream_event_lag_seconds, _dirty_wait_, _rank_, _publish_duration_) the
observations in the window and the bucket bounds that hold their p50 and p99.

  stages.py BEFORE AFTER RATE   -> one JSON line {"bench":"freshness-stages",...}
"""
import json
import re
import sys

STAGES = ["event_lag", "dirty_wait", "rank", "publish_duration"]
LINE = re.compile(r'^recstream_(\w+)_seconds_bucket\{le="([^"]+)"\} (\d+)$')


def buckets(path):
    out = {}
    for line in open(path):
        m = LINE.match(line.strip())
        if m:
            out.setdefault(m.group(1), []).append((m.group(2), int(m.group(3))))
    return out


def quantile_bound(pairs, q):
    total = pairs[-1][1]
    for le, cum in pairs:
        if total and cum >= q * total:
            return le
    return "none"


before, after = buckets(sys.argv[1]), buckets(sys.argv[2])
row = {"bench": "freshness-stages", "target_rate": int(sys.argv[3])}
for st in STAGES:
    a = after.get(st, [])
    b = dict(before.get(st, []))
    diff = [(le, cum - b.get(le, 0)) for le, cum in a]
    if not diff:
        continue
    row[st] = {"count": diff[-1][1], "p50_le_s": quantile_bound(diff, 0.5),
               "p99_le_s": quantile_bound(diff, 0.99)}
print(json.dumps(row))
