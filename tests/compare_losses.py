#!/usr/bin/env python3
"""compare_losses.py A.jsonl B.jsonl RTOL: the training records (kind step1 or
step2; of a step logged twice, as a resumed run does after a kill, the last)
of two metrics.jsonl files must have the same steps, kinds and keys,
and every loss value (keys not starting with lr_, img/s, s/it) must agree
within RTOL relative (absolute 1e-7 floor). Learning rates must match exactly.
Prints the worst difference; exit 0 ok, 1 on a mismatch."""
import json
import sys


def records(path):
    by_step = {}
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            if r.get("kind") in ("step1", "step2"):
                by_step[r["step"]] = r
    return [by_step[k] for k in sorted(by_step)]


def main():
    a, b, rtol = records(sys.argv[1]), records(sys.argv[2]), float(sys.argv[3])
    if not a or len(a) != len(b):
        print(f"FAIL: {len(a)} vs {len(b)} training records")
        return 1
    worst, where, bad = 0.0, "", False
    for ra, rb in zip(a, b):
        if ra.keys() != rb.keys() or ra["step"] != rb["step"] or ra["kind"] != rb["kind"]:
            print(f"FAIL: records differ in shape at step {ra['step']}")
            return 1
        for k, va in ra.items():
            if k in ("step", "stage", "kind", "img/s", "s/it"):
                continue
            vb = rb[k]
            if k.startswith("lr_"):
                if va != vb:
                    print(f"FAIL: step {ra['step']} {k}: {va} vs {vb}")
                    bad = True
                continue
            d = abs(va - vb) / max(abs(va), 1e-7)
            if d > worst:
                worst, where = d, f"step {ra['step']} {k} ({va} vs {vb})"
            bad |= d > rtol
    print(f"{len(a)} records; largest relative loss difference {worst:.3g} at {where}; "
          f"tolerance {rtol}: {'FAIL' if bad else 'ok'}")
    return 1 if bad else 0


sys.exit(main())
