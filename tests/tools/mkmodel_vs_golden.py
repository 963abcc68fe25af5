#!/usr/bin/env python3
"""mkmodel_vs_golden.py - check mkmodel.py's plain-Python forward pass (the one
behind --check-margins) against transformers' own outputs in the golden
fixtures: same greedy tokens and logits (NMSE) for the first STEPS steps.

  python3 tests/tools/mkmodel_vs_golden.py tests/fixtures/golden/*/
"""
import importlib.util
import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("mkmodel", os.path.join(HERE, "mkmodel.py"))
mk = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mk)

STEPS = 16


def main(dirs):
    bad = 0
    for d in dirs:
        g = json.load(open(os.path.join(d, "golden.json")))
        nv = json.load(open(os.path.join(d, "config.json")))["vocab_size"]
        logits = []
        margins, toks = mk.greedy_margins(d, steps=STEPS, prompt=g["prompt_ids"],
                                          keep_logits=logits)
        raw = open(os.path.join(d, "logits_steps.bin"), "rb").read()
        err = ref2 = 0.0
        for s in range(STEPS):
            ref = struct.unpack("<%df" % nv, raw[4 * nv * s:4 * nv * (s + 1)])
            err += sum((a - b) ** 2 for a, b in zip(logits[s], ref))
            ref2 += sum(b * b for b in ref)
        same = toks[:STEPS] == g["greedy_ids"][:STEPS]
        nmse = err / ref2
        ok = same and nmse < 1e-9
        bad += not ok
        print("%-24s greedy %s  nmse %.2e  min margin %.4g (transformers %.4g)  %s"
              % (os.path.basename(os.path.normpath(d)), "same" if same else "DIFFERENT", nmse,
                 min(margins), min(g["greedy_margins"][:STEPS]), "ok" if ok else "FAIL"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
