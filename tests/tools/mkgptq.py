#!/usr/bin/env python3
"""mkgptq.py - write a tiny GPTQ or AWQ checkpoint (4-bit, Hugging Face layout)
for the tests: mkmodel.py writes a random float model, then every projection
(q/k/v/o, gate/up/down) is quantized round-to-nearest per group and packed as
the public tools store it; embeddings, norms and lm_head stay float.

Python 3 standard library only; deterministic (mkmodel's PRNG).

Packing (what AutoGPTQ / GPTQModel and AutoAWQ write; K inputs, N outputs,
G group size, NG = ceil(K / G), q and zeros 4-bit integers):
  GPTQ qweight int32 [K/8, N]: word [k/8][n] holds q[n][k] in bits 4 (k % 8)
       qzeros  int32 [NG, N/8]: word [g][n/8] holds the zero of (g, n) in bits
               4 (n % 8); checkpoint_format "gptq" (v1) stores zero - 1,
               "gptq_v2" the zero itself
       scales  f16 [NG, N];  g_idx int32 [K] = k // G
  AWQ  qweight int32 [K, N/8]: word [k][n/8] holds q[n][k] in nibble p where
       n % 8 = ORDER[p], ORDER = [0, 2, 4, 6, 1, 3, 5, 7] (AutoAWQ's GEMM pack)
       qzeros  int32 [NG, N/8] packed the same way (zero itself)
       scales  f16 [NG, N]
  w[n][k] = scale[g][n] * (q[n][k] - zero[g][n]),  g = k // G.

Quantization (round to nearest, not GPTQ's error feedback: the loader must
reproduce whatever integers the file holds, so how they were chosen does not
matter): asymmetric: scale = (max(x, 0) - min(x, 0)) / 15 rounded to f16,
zero = round(-min / scale) clamped to [0, 15] ([1, 15] for GPTQ v1, which
cannot store zero 0); symmetric (GPTQ): scale = 2 max|x| / 15, zero = 8.

Corrupting options for the error tests: --bad (bits8, qzeros-shape,
qweight-dtype, permuted-gidx, no-method, method-string, group-0, awq-gemv,
bias-nonzero).

Example:
  python3 tests/tools/mkgptq.py --out /tmp/g --method gptq --group 32 --asym \\
      -- --layers 2 --hidden 64 --heads 4 --kv-heads 2 --ff 128
"""
import argparse
import json
import math
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mkmodel  # noqa: E402

PROJ = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
        "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")
AWQ_ORDER = (0, 2, 4, 6, 1, 3, 5, 7)


def f16(v):
    return struct.unpack("<e", struct.pack("<e", v))[0]


def quantize(w, n_out, k_in, group, sym, zmin):
    """w: n_out * k_in floats (row-major [out, in]) -> q [out][in], scales and
    zeros [ng][out]."""
    ng = (k_in + group - 1) // group
    q = [[0] * k_in for _ in range(n_out)]
    scales = [[0.0] * n_out for _ in range(ng)]
    zeros = [[0] * n_out for _ in range(ng)]
    for o in range(n_out):
        row = w[o * k_in:(o + 1) * k_in]
        for g in range(ng):
            vals = row[g * group:(g + 1) * group]
            if sym:
                amax = max(abs(v) for v in vals)
                s = f16(2.0 * amax / 15.0) or 1.0
                z = 8
            else:
                lo, hi = min(min(vals), 0.0), max(max(vals), 0.0)
                s = f16((hi - lo) / 15.0) or 1.0
                z = min(15, max(zmin, int(math.floor(-lo / s + 0.5))))
            scales[g][o] = s
            zeros[g][o] = z
            for i, v in enumerate(vals):
                q[o][g * group + i] = min(15, max(0, int(math.floor(v / s + 0.5)) + z))
    return q, scales, zeros


def i32_bytes(words):
    return struct.pack("<%di" % len(words), *[w - (1 << 32) if w >= 1 << 31 else w for w in words])


def pack_gptq(q, scales, zeros, n_out, k_in, v1):
    qweight = [0] * (k_in // 8 * n_out)
    for o in range(n_out):
        for k in range(k_in):
            qweight[(k // 8) * n_out + o] |= q[o][k] << (4 * (k % 8))
    ng = len(scales)
    qzeros = [0] * (ng * (n_out // 8))
    for g in range(ng):
        for o in range(n_out):
            z = zeros[g][o] - (1 if v1 else 0)
            assert 0 <= z <= 15
            qzeros[g * (n_out // 8) + o // 8] |= z << (4 * (o % 8))
    return qweight, qzeros


def pack_awq(q, scales, zeros, n_out, k_in):
    nw = n_out // 8
    qweight = [0] * (k_in * nw)
    for k in range(k_in):
        for c in range(nw):
            word = 0
            for p in range(8):
                word |= q[c * 8 + AWQ_ORDER[p]][k] << (4 * p)
            qweight[k * nw + c] = word
    ng = len(scales)
    qzeros = [0] * (ng * nw)
    for g in range(ng):
        for c in range(nw):
            word = 0
            for p in range(8):
                word |= zeros[g][c * 8 + AWQ_ORDER[p]] << (4 * p)
            qzeros[g * nw + c] = word
    return qweight, qzeros


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--method", choices=["gptq", "awq"], default="gptq")
    ap.add_argument("--group", type=int, default=128, help="group size; -1: one group a row")
    ap.add_argument("--asym", action="store_true", help="GPTQ: asymmetric (sym false)")
    ap.add_argument("--format", choices=["gptq", "gptq_v2"], default="gptq",
                    help="GPTQ checkpoint_format (v1 stores zero - 1)")
    ap.add_argument("--bad", default="", help="corrupt the checkpoint (see the top comment)")
    ap.add_argument("mkmodel_args", nargs="*", help="after --: mkmodel.py arguments")
    args = ap.parse_args(argv)

    if mkmodel.main(["--out", args.out, "--dtype", "f16"] + args.mkmodel_args) != 0:
        return 1
    cfg_path = os.path.join(args.out, "config.json")
    cfg = json.load(open(cfg_path))
    src = mkmodel.load_safetensors_dir(args.out)
    # keep mkmodel's file order for the float tensors
    raw = open(os.path.join(args.out, "model.safetensors"), "rb").read()
    hl = struct.unpack("<Q", raw[:8])[0]
    names = [n for n in json.loads(raw[8:8 + hl]) if n != "__metadata__"]

    awq = args.method == "awq"
    sym = not awq and not args.asym
    v1 = not awq and args.format == "gptq"
    out = []
    for name in names:
        shape, vals = src[name]
        base = name[:-len(".weight")] if name.endswith(".weight") else None
        if base is None or not any(base.endswith(p) for p in PROJ):
            out.append((name, "F16", shape, struct.pack("<%de" % len(vals), *vals)))
            continue
        n_out, k_in = shape
        group = k_in if args.group == -1 else args.group
        ng = (k_in + group - 1) // group
        q, scales, zeros = quantize(vals, n_out, k_in, group, sym, 1 if v1 else 0)
        if awq:
            qweight, qzeros = pack_awq(q, scales, zeros, n_out, k_in)
            qshape = [k_in, n_out // 8]
        else:
            qweight, qzeros = pack_gptq(q, scales, zeros, n_out, k_in, v1)
            qshape = [k_in // 8, n_out]
        zshape = [ng, n_out // 8]
        if args.bad == "qzeros-shape" and base.endswith("layers.1.mlp.down_proj"):
            zshape = [ng + 1, n_out // 8]
            qzeros += [0] * (n_out // 8)
        qdtype = "I32"
        qbytes = i32_bytes(qweight)
        if args.bad == "qweight-dtype" and base.endswith("layers.0.self_attn.k_proj"):
            qdtype = "F32"
        out.append((base + ".qweight", qdtype, qshape, qbytes))
        out.append((base + ".qzeros", "I32", zshape, i32_bytes(qzeros)))
        flat = [scales[g][o] for g in range(ng) for o in range(n_out)]
        out.append((base + ".scales", "F16", [ng, n_out], struct.pack("<%de" % len(flat), *flat)))
        if not awq:
            gidx = [k // group for k in range(k_in)]
            if args.bad == "permuted-gidx" and base.endswith("layers.0.mlp.up_proj"):
                gidx[0], gidx[-1] = gidx[-1], gidx[0]
            out.append((base + ".g_idx", "I32", [k_in], i32_bytes(gidx)))
        if args.bad == "bias-nonzero" and base.endswith("layers.0.self_attn.o_proj"):
            b = [0.0] * n_out
            b[3] = 0.5
            out.append((base + ".bias", "F16", [n_out], struct.pack("<%de" % n_out, *b)))
        elif base.endswith("self_attn.o_proj") and not cfg.get("attention_bias"):
            # AutoGPTQ writes a zero bias for every QuantLinear of older models
            out.append((base + ".bias", "F16", [n_out], bytes(2 * n_out)))
    mkmodel.write_safetensors(os.path.join(args.out, "model.safetensors"), out)

    if awq:
        qc = {"quant_method": "awq", "bits": 4, "group_size": args.group, "zero_point": True,
              "version": "gemm", "modules_to_not_convert": None}
    else:
        qc = {"quant_method": "gptq", "bits": 4, "group_size": args.group, "desc_act": False,
              "sym": sym, "true_sequential": True, "damp_percent": 0.01,
              "checkpoint_format": args.format}
    if args.bad == "bits8":
        qc["bits"] = 8
    elif args.bad == "no-method":
        del qc["quant_method"]
    elif args.bad == "method-string":
        qc["quant_method"] = "bitsandbytes"
    elif args.bad == "group-0":
        qc["group_size"] = 0
    elif args.bad == "awq-gemv":
        qc["version"] = "gemv"
    elif args.bad == "permuted-gidx":
        qc["desc_act"] = True
    cfg["quantization_config"] = qc
    cfg["torch_dtype"] = "float16"
    with open(cfg_path, "w", encoding="utf-8") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
