#!/usr/bin/env python3
"""mkgguf.py - a GGUF writer and reader for the tests, Python 3 standard library only,
written from ggml's docs/gguf.md and independent of lib/model/gguf*.c.

Modes:
  --from-hf DIR --out F [--type f32|f16|q8_0|q6_k] [--no-permute] [--version 2|3]
      Convert a Hugging Face checkpoint (tests/tools/mkmodel.py's output, or any
      single-file model.safetensors of F32/F16/BF16) the way llama.cpp's
      convert_hf_to_gguf.py does for LlamaForCausalLM / MistralForCausalLM
      (architecture "llama") and Qwen2ForCausalLM ("qwen2"): llama.cpp's tensor
      names, dims reversed (ne[0] = row length), attn_q/attn_k rows permuted for
      interleaved RoPE on "llama" (convert_hf_to_gguf's LlamaModel.permute:
      reshape(n_head, 2, hd/2, n_in).swapaxes(1, 2)), norms and biases F32, and the
      tokenizer metadata below when DIR has a tokenizer.json. q8_0 and q6_k quantize
      every matrix, token_embd and output included (as llama.cpp's Q8_0 / Q6_K files);
      q6_k rows that are not a multiple of 256 stay F16.
  --split F --parts N --out-prefix P [--dup-tensor] [--bad-count]
      Split F as llama.cpp's gguf-split does: P-00001-of-0000N.gguf holds F's metadata,
      every part split.no (U16, 0-based), split.count (U16), split.tensors.count (I32),
      the tensors in order, spread over the parts. --dup-tensor also puts the first
      tensor of part 2 into part 1; --bad-count writes split.tensors.count + 1.
  --tokenizer DIR --out F [--pre NAME]
      Only the tokenizer metadata of DIR/tokenizer.json (+ tokenizer_config.json), as
      convert_hf_to_gguf does: "llama" (SentencePiece-style BPE with byte_fallback:
      tokens, scores, token_type; no merges) or "gpt2" (byte-level BPE: tokens,
      token_type, merges, tokenizer.ggml.pre), bos/eos/unk/padding ids,
      add_bos_token/add_eos_token, chat_template.
      Scores for "llama": a tokenizer.json has none (llama.cpp's converter reads them
      from tokenizer.model); they are recovered from the merges' ranks (see
      tokenizer_kv), or with --naive-scores set to -id; 0 for non-normal tokens.
  --dump F
      Print the file as JSON: version, alignment, every key (arrays in full), every
      tensor (type, ne, offset, sha256 of its bytes). Strict: any inconsistency
      (bad magic, truncation, misaligned or overlapping data) raises.
  --seed-corpus DIR
      Write small valid GGUF files for the fuzzer's seed corpus.
"""
import argparse
import hashlib
import json
import os
import struct
import sys

U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)
SCALAR_FMT = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32: "<f",
              BOOL: "<?", U64: "<Q", I64: "<q", F64: "<d"}
# ggml types: (block size, bytes per block)
GGML_F32, GGML_F16, GGML_Q4_0, GGML_Q8_0, GGML_Q4_K, GGML_Q6_K, GGML_BF16 = 0, 1, 2, 8, 12, 14, 30
NAIVE_SCORES = False
GGML_SIZE = {0: (1, 4), 1: (1, 2), 2: (32, 18), 8: (32, 34), 12: (256, 144), 14: (256, 210),
             30: (1, 2)}


# ---------------------------------------------------------------- writer

def _str(s):
    b = s.encode("utf-8") if isinstance(s, str) else bytes(s)
    return struct.pack("<Q", len(b)) + b


def _value(vtype, v):
    if vtype == STRING:
        return _str(v)
    if vtype == ARRAY:
        etype, items = v
        out = [struct.pack("<IQ", etype, len(items))]
        if etype == STRING:
            out.extend(_str(x) for x in items)
        else:
            fmt = SCALAR_FMT[etype]
            out.extend(struct.pack(fmt, x) for x in items)
        return b"".join(out)
    return struct.pack(SCALAR_FMT[vtype], v)


class Writer:
    def __init__(self, version=3, alignment=32):
        self.version = version
        self.alignment = alignment
        self.kv = []       # (key, vtype, value)
        self.raw_kv = []   # encoded key/value pairs copied from another file
        self.tensors = []  # (name, ggml type, ne list, bytes)

    def add(self, key, vtype, value):
        self.kv.append((key, vtype, value))

    def add_tensor(self, name, gtype, ne, data):
        blk, size = GGML_SIZE[gtype]
        n = 1
        for d in ne:
            n *= d
        assert ne[0] % blk == 0 and len(data) == n // blk * size, (name, ne, len(data))
        self.tensors.append((name, gtype, list(ne), bytes(data)))

    def tobytes(self):
        al = self.alignment
        out = [b"GGUF", struct.pack("<IQQ", self.version, len(self.tensors),
                                    len(self.kv) + len(self.raw_kv))]
        out.extend(self.raw_kv)
        for k, t, v in self.kv:
            out.append(_str(k) + struct.pack("<I", t) + _value(t, v))
        off = 0
        offsets = []
        for name, gtype, ne, data in self.tensors:
            offsets.append(off)
            out.append(_str(name) + struct.pack("<I", len(ne)) +
                       b"".join(struct.pack("<Q", d) for d in ne) + struct.pack("<IQ", gtype, off))
            off += (len(data) + al - 1) // al * al
        head = b"".join(out)
        head += b"\0" * (-len(head) % al)
        body = []
        for (name, gtype, ne, data), o in zip(self.tensors, offsets):
            body.append(data + b"\0" * (-len(data) % al))
        return head + b"".join(body)

    def write(self, path):
        with open(path, "wb") as f:
            f.write(self.tobytes())


# ---------------------------------------------------------------- reader

class Reader:
    def __init__(self, data):
        self.d = data
        self.p = 0

    def take(self, n):
        if n > len(self.d) - self.p:
            raise ValueError("truncated at byte %d (need %d)" % (self.p, n))
        b = self.d[self.p:self.p + n]
        self.p += n
        return b

    def scalar(self, t):
        fmt = SCALAR_FMT[t]
        v = struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]
        return v

    def string(self):
        n = struct.unpack("<Q", self.take(8))[0]
        return self.take(n).decode("utf-8", errors="surrogateescape")

    def value(self, t):
        if t == STRING:
            return self.string()
        if t == ARRAY:
            et = self.scalar(U32)
            n = self.scalar(U64)
            if et == ARRAY:
                raise ValueError("nested array")
            return [self.value(et) for _ in range(n)]
        if t not in SCALAR_FMT:
            raise ValueError("unknown value type %d at byte %d" % (t, self.p - 4))
        return self.scalar(t)


def read_gguf(data):
    """The file as a dict; "raw_kv" keeps each key/value pair's bytes (for --split)."""
    r = Reader(data)
    if r.take(4) != b"GGUF":
        raise ValueError("bad magic")
    version = r.scalar(U32)
    if version not in (2, 3):
        raise ValueError("version %d" % version)
    n_t, n_kv = r.scalar(U64), r.scalar(U64)
    kv = {}
    types = {}
    raw_kv = []
    for _ in range(n_kv):
        start = r.p
        k = r.string()
        t = r.scalar(U32)
        if k in kv:
            raise ValueError("duplicate key " + k)
        kv[k] = r.value(t)
        types[k] = t
        raw_kv.append(data[start:r.p])
    align = kv.get("general.alignment", 32)
    infos = []
    for _ in range(n_t):
        name = r.string()
        nd = r.scalar(U32)
        ne = [r.scalar(U64) for _ in range(nd)]
        gtype = r.scalar(U32)
        off = r.scalar(U64)
        infos.append((name, gtype, ne, off))
    data_start = (r.p + align - 1) // align * align
    tensors = {}
    spans = []
    for name, gtype, ne, off in infos:
        if name in tensors:
            raise ValueError("duplicate tensor " + name)
        if off % align:
            raise ValueError("misaligned " + name)
        blk, size = GGML_SIZE[gtype]
        n = 1
        for d in ne:
            n *= d
        if ne[0] % blk:
            raise ValueError("row of %s not a multiple of the block" % name)
        nbytes = n // blk * size
        a = data_start + off
        if a + nbytes > len(data):
            raise ValueError("tensor %s past the end" % name)
        spans.append((a, a + nbytes, name))
        tensors[name] = {"type": gtype, "ne": ne, "offset": a, "nbytes": nbytes,
                         "data": data[a:a + nbytes]}
    spans.sort()
    for x, y in zip(spans, spans[1:]):
        if y[0] < x[1]:
            raise ValueError("overlap %s %s" % (x[2], y[2]))
    return {"version": version, "alignment": align, "kv": kv, "types": types,
            "tensors": tensors, "data_start": data_start, "raw_kv": raw_kv,
            "order": [i[0] for i in infos]}


# ---------------------------------------------------------------- floats

def f16_bytes(vals):
    return struct.pack("<%de" % len(vals), *vals)


def f32_bytes(vals):
    return struct.pack("<%df" % len(vals), *vals)


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    hdr = json.loads(data[8:8 + n])
    out = {}
    for name, e in hdr.items():
        if name == "__metadata__":
            continue
        b, eoff = e["data_offsets"]
        raw = data[8 + n + b:8 + n + eoff]
        dt = e["dtype"]
        if dt == "F32":
            vals = list(struct.unpack("<%df" % (len(raw) // 4), raw))
        elif dt == "F16":
            vals = list(struct.unpack("<%de" % (len(raw) // 2), raw))
        elif dt == "BF16":
            hs = struct.unpack("<%dH" % (len(raw) // 2), raw)
            vals = list(struct.unpack("<%df" % len(hs), b"".join(struct.pack("<I", h << 16) for h in hs)))
        else:
            continue
        out[name] = (e["shape"], vals)
    return out


def q8_0_rows(vals, ncols):
    """ggml's quantize_row_q8_0_ref: d = amax/127 (f16), q = round(x/d)."""
    out = bytearray()
    for b in range(0, len(vals), 32):
        blk = vals[b:b + 32]
        amax = max(abs(x) for x in blk)
        d = amax / 127.0
        inv = 1.0 / d if d else 0.0
        dh = struct.unpack("<e", struct.pack("<e", d))[0]
        out += struct.pack("<e", dh)
        for x in blk:
            q = x * inv
            q = int(q + 0.5) if q >= 0 else -int(-q + 0.5)  # roundf
            out += struct.pack("<b", max(-128, min(127, q)))
    return bytes(out)


# ---------------------------------------------------------------- tokenizer

def tokenizer_kv(w, tdir, pre=None):
    with open(os.path.join(tdir, "tokenizer.json"), encoding="utf-8") as f:
        tok = json.load(f)
    cfg = {}
    p = os.path.join(tdir, "tokenizer_config.json")
    if os.path.exists(p):
        with open(p, encoding="utf-8") as f:
            cfg = json.load(f)
    model = tok["model"]
    vocab = dict(model["vocab"])
    added = {a["content"]: a for a in tok.get("added_tokens", [])}
    for a in added.values():
        vocab.setdefault(a["content"], a["id"])
    n = max(vocab.values()) + 1
    tokens = ["[PAD%d]" % i for i in range(n)]
    for s, i in vocab.items():
        tokens[i] = s
    pre_tok = json.dumps(tok.get("pre_tokenizer"))
    is_bytelevel = "ByteLevel" in pre_tok
    types = []
    scores = []
    unk = model.get("unk_token")
    # SentencePiece scores, recovered from the merges: transformers built the merges of a
    # SentencePiece BPE model by ordering each piece's splits by the piece's score, so a
    # piece's rank is that of the first merge producing it; pieces no merge produces
    # (single characters) rank after all of them, in id order. --naive-scores: -id.
    merge_rank = {}
    if not is_bytelevel and not NAIVE_SCORES:
        for r, m in enumerate(model.get("merges", [])):
            a, b = m.split(" ", 1) if isinstance(m, str) else m
            merge_rank.setdefault(a + b, r)
    n_merges = len(model.get("merges", []))
    for i, s in enumerate(tokens):
        a = added.get(s)
        if s not in vocab:
            t = 5  # unused
        elif a is not None and a["id"] == i:
            t = 3 if a.get("special") else 4
            if s == unk:
                t = 2
        elif s == unk:
            t = 2
        elif not is_bytelevel and len(s) == 6 and s.startswith("<0x") and s.endswith(">"):
            t = 6
        else:
            t = 1
        types.append(t)
        if t != 1:
            scores.append(0.0)
        elif NAIVE_SCORES:
            scores.append(-float(i))
        else:
            scores.append(-float(merge_rank.get(s, n_merges + i)))
    w.add("tokenizer.ggml.model", STRING, "gpt2" if is_bytelevel else "llama")
    w.add("tokenizer.ggml.tokens", ARRAY, (STRING, tokens))
    w.add("tokenizer.ggml.token_type", ARRAY, (I32, types))
    if is_bytelevel:
        if pre is None:
            pre = "qwen2" if "\\p{N}|" in pre_tok else "llama-bpe" if "\\p{N}{1,3}" in pre_tok else "default"
        w.add("tokenizer.ggml.pre", STRING, pre)
        merges = [m if isinstance(m, str) else "%s %s" % tuple(m) for m in model["merges"]]
        w.add("tokenizer.ggml.merges", ARRAY, (STRING, merges))
    else:
        w.add("tokenizer.ggml.pre", STRING, "default")
        w.add("tokenizer.ggml.scores", ARRAY, (F32, scores))

    def tok_id(v):
        if isinstance(v, dict):
            v = v.get("content")
        return vocab.get(v) if v is not None else None
    for key, name in (("bos", "bos_token"), ("eos", "eos_token"), ("unknown", "unk_token"),
                      ("padding", "pad_token")):
        i = tok_id(cfg.get(name))
        if i is None and name == "unk_token" and unk is not None:
            i = vocab.get(unk)
        if i is not None:
            w.add("tokenizer.ggml.%s_token_id" % key, U32, i)
    # what the HF tokenizer adds: tokenizer_config's flags, else the post-processor's template
    pp = json.dumps(tok.get("post_processor"))
    bos = tok_id(cfg.get("bos_token"))
    add_bos = cfg.get("add_bos_token")
    if add_bos is None:
        add_bos = bos is not None and tokens[bos] in pp and "TemplateProcessing" in pp
    w.add("tokenizer.ggml.add_bos_token", BOOL, bool(add_bos))
    w.add("tokenizer.ggml.add_eos_token", BOOL, bool(cfg.get("add_eos_token", False)))
    if not is_bytelevel:
        w.add("tokenizer.ggml.add_space_prefix", BOOL, True)
    if isinstance(cfg.get("chat_template"), str):
        w.add("tokenizer.chat_template", STRING, cfg["chat_template"])


# ---------------------------------------------------------------- model

def q6_k_rows(vals):
    """A valid ggml block_q6_K encoding (not ggml's search): per 16 values a scale
    s = amax/31, d = max(s)/127 (f16), scale q = round(s/d), q = round(x/(d*scale)) in
    -32..31, packed as ggml's quantize_row_q6_K packs L = q + 32."""
    out = bytearray()
    for b in range(0, len(vals), 256):
        x = vals[b:b + 256]
        subs = [max(abs(v) for v in x[16 * j:16 * j + 16]) / 31.0 for j in range(16)]
        d = max(subs) / 127.0
        dh = struct.unpack("<e", struct.pack("<e", d))[0]
        sc = [max(-128, min(127, round(s / dh))) if dh else 0 for s in subs]
        L = []
        for i, v in enumerate(x):
            m = dh * sc[i // 16]
            q = round(v / m) if m else 0
            L.append(max(-32, min(31, q)) + 32)
        ql = bytearray(128)
        qh = bytearray(64)
        for n in range(2):
            for l in range(32):
                a, b2, c, e = (L[128 * n + l], L[128 * n + l + 32], L[128 * n + l + 64],
                               L[128 * n + l + 96])
                ql[64 * n + l] = (a & 15) | (c & 15) << 4
                ql[64 * n + l + 32] = (b2 & 15) | (e & 15) << 4
                qh[32 * n + l] = (a >> 4) | (b2 >> 4) << 2 | (c >> 4) << 4 | (e >> 4) << 6
        out += ql + qh + struct.pack("<16b", *sc) + struct.pack("<e", dh)
    return bytes(out)


def split(args):
    with open(args.split, "rb") as f:
        g = read_gguf(f.read())
    names = g["order"]
    n = args.parts
    total = len(names)
    chunks = [names[k * total // n:(k + 1) * total // n] for k in range(n)]
    if args.dup_tensor:
        chunks[0] = chunks[0] + chunks[1][:1]
    for k in range(n):
        w = Writer(version=g["version"], alignment=g["alignment"])
        if k == 0:
            w.raw_kv = list(g["raw_kv"])
        elif g["alignment"] != 32:
            w.add("general.alignment", U32, g["alignment"])
        w.add("split.no", U16, k)
        w.add("split.count", U16, n)
        w.add("split.tensors.count", I32, total + (1 if args.bad_count else 0))
        for name in chunks[k]:
            t = g["tensors"][name]
            w.add_tensor(name, t["type"], t["ne"], t["data"])
        w.write("%s-%05d-of-%05d.gguf" % (args.out_prefix, k + 1, n))


def permute(vals, rows, cols, n_head):
    """convert_hf_to_gguf LlamaModel.permute: per head, row j*hd/2 + i -> 2*i + j."""
    hd = rows // n_head
    out = [0.0] * len(vals)
    for h in range(n_head):
        for j in range(2):
            for i in range(hd // 2):
                src = h * hd + j * (hd // 2) + i
                dst = h * hd + 2 * i + j
                out[dst * cols:(dst + 1) * cols] = vals[src * cols:(src + 1) * cols]
    return out


def from_hf(args):
    with open(os.path.join(args.from_hf, "config.json")) as f:
        cfg = json.load(f)
    cls = cfg["architectures"][0]
    arch = {"LlamaForCausalLM": "llama", "MistralForCausalLM": "llama",
            "Qwen2ForCausalLM": "qwen2"}[cls]
    ts = read_safetensors(os.path.join(args.from_hf, "model.safetensors"))
    h, nh = cfg["hidden_size"], cfg["num_attention_heads"]
    nkv = cfg.get("num_key_value_heads", nh)
    hd = cfg.get("head_dim") or h // nh
    w = Writer(version=args.version)
    w.add("general.architecture", STRING, arch)
    w.add("general.name", STRING, "mkgguf")
    w.add("general.alignment", U32, 32)
    a = arch
    w.add(a + ".context_length", U32, cfg.get("max_position_embeddings", 2048))
    w.add(a + ".embedding_length", U32, h)
    w.add(a + ".block_count", U32, cfg["num_hidden_layers"])
    w.add(a + ".feed_forward_length", U32, cfg["intermediate_size"])
    w.add(a + ".attention.head_count", U32, nh)
    w.add(a + ".attention.head_count_kv", U32, nkv)
    w.add(a + ".attention.layer_norm_rms_epsilon", F32, cfg.get("rms_norm_eps", 1e-6))
    w.add(a + ".rope.freq_base", F32, cfg.get("rope_theta", 10000.0))
    w.add(a + ".rope.dimension_count", U32, hd)
    if cfg.get("head_dim"):
        w.add(a + ".attention.key_length", U32, hd)
        w.add(a + ".attention.value_length", U32, hd)
    if cls == "MistralForCausalLM" and cfg.get("sliding_window"):
        w.add(a + ".attention.sliding_window", U32, cfg["sliding_window"])
    w.add(a + ".vocab_size", U32, cfg["vocab_size"])
    rs = cfg.get("rope_scaling") or {}
    if rs.get("type", rs.get("rope_type")) == "linear":
        w.add(a + ".rope.scaling.type", STRING, "linear")
        w.add(a + ".rope.scaling.factor", F32, rs["factor"])
    if rs.get("type", rs.get("rope_type")) == "llama3":
        # convert_hf_to_gguf LlamaModel: per-frequency divisors as the tensor rope_freqs
        import math
        base = cfg.get("rope_theta", 10000.0)
        factor = rs.get("factor", 8.0)
        lo, hi = rs.get("low_freq_factor", 1.0), rs.get("high_freq_factor", 4.0)
        old = rs.get("original_max_position_embeddings", 8192)
        lw, hw = old / lo, old / hi
        facs = []
        for i in range(0, hd, 2):
            freq = struct.unpack("<f", struct.pack("<f", 1.0 / base ** (struct.unpack("<f", struct.pack("<f", float(i)))[0] / hd)))[0]
            wl = 2 * math.pi / freq
            if wl < hw:
                facs.append(1.0)
            elif wl > lw:
                facs.append(factor)
            else:
                sm = (old / wl - lo) / (hi - lo)
                facs.append(1 / ((1 - sm) / factor + sm))
        w.add_tensor("rope_freqs.weight", GGML_F32, [hd // 2], f32_bytes(facs))
        w.add(a + ".rope.scaling.original_context_length", U32, old)
    if os.path.exists(os.path.join(args.from_hf, "tokenizer.json")):
        tokenizer_kv(w, args.from_hf)
    names = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
             "lm_head.weight": "output.weight"}
    per = {"input_layernorm.weight": "attn_norm.weight", "self_attn.q_proj.weight": "attn_q.weight",
           "self_attn.k_proj.weight": "attn_k.weight", "self_attn.v_proj.weight": "attn_v.weight",
           "self_attn.q_proj.bias": "attn_q.bias", "self_attn.k_proj.bias": "attn_k.bias",
           "self_attn.v_proj.bias": "attn_v.bias", "self_attn.o_proj.weight": "attn_output.weight",
           "post_attention_layernorm.weight": "ffn_norm.weight", "mlp.gate_proj.weight": "ffn_gate.weight",
           "mlp.up_proj.weight": "ffn_up.weight", "mlp.down_proj.weight": "ffn_down.weight"}
    for name in sorted(ts):
        shape, vals = ts[name]
        if name in names:
            gname = names[name]
        elif name.startswith("model.layers."):
            rest = name[len("model.layers."):]
            layer, sub = rest.split(".", 1)
            if sub not in per:
                continue
            gname = "blk.%s.%s" % (layer, per[sub])
        else:
            continue
        if arch == "llama" and not args.no_permute and gname.endswith(("attn_q.weight", "attn_k.weight")):
            vals = permute(vals, shape[0], shape[1], nh if "attn_q" in gname else nkv)
        ne = list(reversed(shape))
        if len(shape) == 1 or args.type == "f32":
            w.add_tensor(gname, GGML_F32, ne, f32_bytes(vals))
        elif args.type == "f16" or (args.type == "q6_k" and shape[1] % 256):
            w.add_tensor(gname, GGML_F16, ne, f16_bytes(vals))
        elif args.type == "q6_k":
            w.add_tensor(gname, GGML_Q6_K, ne, q6_k_rows(vals))
        else:
            w.add_tensor(gname, GGML_Q8_0, ne, q8_0_rows(vals, shape[1]))
    w.write(args.out)


def seed_corpus(d):
    os.makedirs(d, exist_ok=True)
    w = Writer()
    w.add("general.architecture", STRING, "llama")
    w.add("general.alignment", U32, 32)
    w.add("tokenizer.ggml.tokens", ARRAY, (STRING, ["<s>", "a", "b"]))
    w.add("tokenizer.ggml.scores", ARRAY, (F32, [0.0, -1.0, -2.0]))
    w.add("x.bool", BOOL, True)
    w.add("x.i64", I64, -5)
    w.add("x.f64", F64, 0.5)
    w.add_tensor("a", GGML_F32, [4, 2], f32_bytes([float(i) for i in range(8)]))
    w.add_tensor("b", GGML_Q8_0, [32, 2], bytes(68))
    w.add_tensor("c", GGML_Q4_K, [256], bytes(144))
    w.add_tensor("d", GGML_Q6_K, [256], bytes(210))
    w.add_tensor("e", GGML_Q4_0, [32], bytes(18))
    w.add_tensor("f", GGML_BF16, [2, 1, 1, 2], bytes(8))
    w.write(os.path.join(d, "basic.gguf"))
    w.version = 2
    w.write(os.path.join(d, "basic_v2.gguf"))
    # a whole tiny llama model's metadata + tensors (f32), 1 layer, 8 wide
    m = Writer()
    m.add("general.architecture", STRING, "llama")
    for k, v in (("context_length", 64), ("embedding_length", 8), ("block_count", 1),
                 ("feed_forward_length", 16), ("attention.head_count", 2),
                 ("attention.head_count_kv", 1)):
        m.add("llama." + k, U32, v)
    m.add("llama.attention.layer_norm_rms_epsilon", F32, 1e-5)
    m.add("llama.rope.freq_base", F32, 10000.0)
    m.add("tokenizer.ggml.model", STRING, "llama")
    m.add("tokenizer.ggml.tokens", ARRAY, (STRING, ["<unk>", "<s>", "</s>", "\u2581a", "b", "\u2581", "a"]))
    m.add("tokenizer.ggml.scores", ARRAY, (F32, [0.0, 0.0, 0.0, -3.0, -4.0, -5.0, -6.0]))
    m.add("tokenizer.ggml.token_type", ARRAY, (I32, [2, 3, 3, 1, 1, 1, 1]))
    m.add("tokenizer.ggml.bos_token_id", U32, 1)
    m.add("tokenizer.ggml.eos_token_id", U32, 2)
    shapes = {"token_embd.weight": [8, 7], "output_norm.weight": [8], "blk.0.attn_norm.weight": [8],
              "blk.0.attn_q.weight": [8, 8], "blk.0.attn_k.weight": [8, 4], "blk.0.attn_v.weight": [8, 4],
              "blk.0.attn_output.weight": [8, 8], "blk.0.ffn_norm.weight": [8],
              "blk.0.ffn_gate.weight": [8, 16], "blk.0.ffn_up.weight": [8, 16], "blk.0.ffn_down.weight": [16, 8]}
    for name, ne in shapes.items():
        n = 1
        for x in ne:
            n *= x
        m.add_tensor(name, GGML_F32, ne, f32_bytes([0.25] * n))
    m.write(os.path.join(d, "tiny_llama.gguf"))
    # a byte-level (gpt2) tokenizer only: Llama 3 style pre-tokenizer, 3 merges, 1 special
    t = Writer()
    t.add("general.architecture", STRING, "llama")
    t.add("tokenizer.ggml.model", STRING, "gpt2")
    t.add("tokenizer.ggml.pre", STRING, "llama-bpe")
    toks = ["H", "e", "l", "o", "\u0120", "w", "r", "d", "He", "ll", "\u0120w", "<|end|>"]
    t.add("tokenizer.ggml.tokens", ARRAY, (STRING, toks))
    t.add("tokenizer.ggml.token_type", ARRAY, (I32, [1] * 11 + [3]))
    t.add("tokenizer.ggml.merges", ARRAY, (STRING, ["H e", "l l", "\u0120 w"]))
    t.add("tokenizer.ggml.eos_token_id", U32, 11)
    t.add("tokenizer.ggml.add_bos_token", BOOL, False)
    t.add("tokenizer.chat_template", STRING, "{{ messages }}")
    t.write(os.path.join(d, "tok_gpt2.gguf"))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--from-hf")
    ap.add_argument("--tokenizer")
    ap.add_argument("--dump")
    ap.add_argument("--seed-corpus")
    ap.add_argument("--out")
    ap.add_argument("--type", default="f32", choices=["f32", "f16", "q8_0", "q6_k"])
    ap.add_argument("--split")
    ap.add_argument("--parts", type=int, default=3)
    ap.add_argument("--out-prefix")
    ap.add_argument("--dup-tensor", action="store_true")
    ap.add_argument("--bad-count", action="store_true")
    ap.add_argument("--version", type=int, default=3)
    ap.add_argument("--pre")
    ap.add_argument("--no-permute", action="store_true")
    ap.add_argument("--naive-scores", action="store_true",
                    help="SentencePiece scores -id instead of ranks recovered from the merges")
    args = ap.parse_args()
    global NAIVE_SCORES
    NAIVE_SCORES = args.naive_scores
    if args.from_hf:
        from_hf(args)
    elif args.split:
        split(args)
    elif args.tokenizer:
        w = Writer(version=args.version)
        w.add("general.architecture", STRING, "llama")
        tokenizer_kv(w, args.tokenizer, args.pre)
        w.write(args.out)
    elif args.dump:
        with open(args.dump, "rb") as f:
            g = read_gguf(f.read())
        out = {"version": g["version"], "alignment": g["alignment"], "data_start": g["data_start"],
               "kv": {k: {"type": g["types"][k], "value": v} for k, v in g["kv"].items()},
               "tensors": {n: {"type": t["type"], "ne": t["ne"], "offset": t["offset"],
                               "sha256": hashlib.sha256(t["data"]).hexdigest()}
                           for n, t in g["tensors"].items()}}
        json.dump(out, sys.stdout, ensure_ascii=False, sort_keys=True)
        sys.stdout.write("\n")
    elif args.seed_corpus:
        seed_corpus(args.seed_corpus)
    else:
        ap.error("one of --from-hf, --split, --tokenizer, --dump, --seed-corpus")


if __name__ == "__main__":
    main()
