#!/usr/bin/env python3
"""ctx_loop.py - create and free N contexts one after another in one process, as the
reliability suite does, and print what the process holds every STEP contexts (open file
descriptors, threads, VmRSS, mappings) and the first failure. Used on the H100, where
vkCreateInstance once answered VK_ERROR_INCOMPATIBLE_DRIVER after some hundreds of
contexts in one process (bench/RESULTS.md, issue 10).

    LLMGPU_LIBRARY=build/libllmgpu.so PYTHONPATH=bindings/python \
        python3 tests/tools/ctx_loop.py [N [STEP [MODEL]]]

With MODEL, every context also loads it (and frees it) before it is freed.
"""
import os
import sys

import llmgpu


def held():
    fds = len(os.listdir("/proc/self/fd"))
    st = {}
    with open("/proc/self/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            st[k] = v.strip()
    with open("/proc/self/maps") as f:
        maps = sum(1 for _ in f)
    return "fds %d threads %s VmRSS %s maps %d" % (fds, st.get("Threads"), st.get("VmRSS"), maps)


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    step = int(sys.argv[2]) if len(sys.argv) > 2 else 25
    model = sys.argv[3] if len(sys.argv) > 3 else None
    print("start:", held(), flush=True)
    for i in range(1, n + 1):
        try:
            ctx = llmgpu.Context(no_disk_cache=True)
            if model:
                m = llmgpu.Model(model, context=ctx)
                m.close()
            ctx.close()
        except Exception as e:  # report the first failure and what the process held
            print("context %d failed: %s" % (i, e), flush=True)
            print("at failure:", held(), flush=True)
            return 1
        if i % step == 0:
            print("after %d:" % i, held(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
