#!/usr/bin/env python3
"""mkmodel.py - write a tiny deterministic random-weight Llama-family model
directory in Hugging Face layout, for the tests (weights cannot be downloaded).

Writes into --out:
  config.json, generation_config.json,
  model.safetensors (or model-0000i-of-0000N.safetensors + model.safetensors.index.json
  with --shards N), tokenizer.json (SentencePiece-style BPE with byte_fallback and a
  Metaspace pre-tokenizer/decoder, like Llama 2), tokenizer_config.json.

Python 3 standard library only. Every weight comes from a PRNG implemented here
(splitmix64 seeding an xorshift64* stream per tensor, keyed by seed and tensor
name), drawn uniform with the requested standard deviation, so the same
arguments give byte-identical files on any machine.

--check-margins STEPS runs a plain-Python forward pass (RMSNorm, RoPE with
linear/llama3 scaling, GQA, Mistral's sliding window, Qwen2's q/k/v biases,
SwiGLU) after writing and fails if a greedy top-1 margin is under 1e-3 (STYLE
rule 42). Against the transformers-written checkpoints in
tests/fixtures/golden it reproduced transformers' logits (NMSE 2e-13..6e-13)
and greedy tokens for all 7 variants over 16 steps.

Weight scales (std): embeddings 1.0; q/k/v/o, gate/up/down scale/sqrt(fan_in);
lm_head head_gain*scale/sqrt(hidden) so logits are peaked (large argmax
margins); norms 1 + 0.1*u; q/k/v biases (qwen2) 0.1*scale. scale defaults to 1,
or 2 with --tie (tied embeddings at scale 1 make greedy decoding repeat one
token). Measured with a pure-Python forward pass (20-token prompt, 33 greedy
steps): top-1 minus top-2 logit >= 0.015 at every step, medians 0.7-1.6, 23-30
distinct tokens, for the defaults with and without --tie, GQA and several seeds.

Example:
  python3 tests/tools/mkmodel.py --out /tmp/m --arch llama --layers 2 --hidden 64 \\
      --heads 4 --kv-heads 2 --dtype bf16 --shards 2
"""
import argparse
import array
import json
import math
import os
import struct
import sys

MASK64 = (1 << 64) - 1


def splitmix64(x):
    x = (x + 0x9E3779B97F4A7C15) & MASK64
    z = x
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def fnv1a64(s):
    h = 0xCBF29CE484222325
    for b in s.encode("utf-8"):
        h ^= b
        h = (h * 0x100000001B3) & MASK64
    return h


class Rng:
    """xorshift64* seeded through splitmix64; uniform() in [0, 1) with 53 bits."""

    def __init__(self, seed, name):
        self.s = splitmix64(seed ^ fnv1a64(name)) or 1

    def next64(self):
        x = self.s
        x ^= x >> 12
        x ^= (x << 25) & MASK64
        x ^= x >> 27
        self.s = x
        return (x * 0x2545F4914F6CDD1D) & MASK64

    def uniform(self):
        return (self.next64() >> 11) * (1.0 / 9007199254740992.0)


def tensor_values(seed, name, n, std, mean=0.0):
    """n values, uniform with the given mean and standard deviation."""
    rng = Rng(seed, name)
    half = std * math.sqrt(3.0)
    return [mean + (2.0 * rng.uniform() - 1.0) * half for _ in range(n)]


def f32_bits(v):
    return struct.unpack("<I", struct.pack("<f", v))[0]


def encode(values, dtype):
    if dtype == "F32":
        return array.array("f", values).tobytes() if sys.byteorder == "little" else \
            struct.pack("<%df" % len(values), *values)
    if dtype == "F16":
        return struct.pack("<%de" % len(values), *values)  # round-half-even
    if dtype == "BF16":
        out = bytearray(2 * len(values))
        for i, v in enumerate(values):
            x = f32_bits(v)
            if (x & 0x7FFFFFFF) > 0x7F800000:
                b = (x >> 16) | 0x40
            else:
                b = ((x + 0x7FFF + ((x >> 16) & 1)) >> 16) & 0xFFFF
            out[2 * i] = b & 0xFF
            out[2 * i + 1] = b >> 8
        return bytes(out)
    raise ValueError(dtype)


def write_safetensors(path, tensors):
    """tensors: list of (name, dtype, shape, bytes), written in that order."""
    header = {"__metadata__": {"format": "pt"}}
    off = 0
    for name, dtype, shape, data in tensors:
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [off, off + len(data)]}
        off += len(data)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for _, _, _, data in tensors:
            f.write(data)
    return off


# ---- tokenizer ----

CORPUS = (
    "Once upon a time there was a little girl who lived in a village near the forest. "
    "Whenever she went out, the little girl wore a red riding cloak, so everyone in the "
    "village called her Little Red Riding Hood. The quick brown fox jumps over the lazy dog. "
    "Hello world! The cat sat on the mat and the dog sat on the log. "
    "It was the best of times, it was the worst of times. "
    "1234567890 + - = ( ) , . ? ! ' \" : ;"
)
SPACE = "\u2581"  # the SentencePiece meta-space


def train_bpe(n_learned, corpus=CORPUS):
    """Deterministic BPE over the corpus split at meta-spaces: base characters by
    descending frequency, then merges; ties broken by the pair's text."""
    if n_learned <= 0:
        return [], []
    text = SPACE + corpus.replace(" ", SPACE)
    words = {}
    for w in text.split(SPACE):
        if w:
            words[SPACE + w] = words.get(SPACE + w, 0) + 1
    char_freq = {}
    for w, c in words.items():
        for ch in w:
            char_freq[ch] = char_freq.get(ch, 0) + c
    chars = sorted(char_freq, key=lambda ch: (-char_freq[ch], ch))
    n_chars = min(len(chars), max(1, n_learned // 2))  # the meta-space comes first
    chars = chars[:n_chars]
    known = set(chars)
    vocab_new = list(chars)
    merges = []
    segs = {w: [ch for ch in w] for w in words}
    while len(vocab_new) < n_learned:
        pairs = {}
        for w, s in segs.items():
            for a, b in zip(s, s[1:]):
                if a in known and b in known:
                    pairs[(a, b)] = pairs.get((a, b), 0) + words[w]
        if not pairs:
            break
        best = sorted(pairs, key=lambda p: (-pairs[p], p[0] + " " + p[1]))[0]
        new = best[0] + best[1]
        merges.append(best)
        if new not in known:
            known.add(new)
            vocab_new.append(new)
        for w, s in segs.items():
            out, i = [], 0
            while i < len(s):
                if i + 1 < len(s) and (s[i], s[i + 1]) == best:
                    out.append(new)
                    i += 2
                else:
                    out.append(s[i])
                    i += 1
            segs[w] = out
    # pad with unused filler pieces if the corpus ran out of merges
    k = 0
    while len(vocab_new) < n_learned:
        filler = "<extra_%d>" % k
        k += 1
        vocab_new.append(filler)
    return vocab_new, merges


def tokenizer_files(n_vocab, style="metaspace"):
    specials = ["<unk>", "<s>", "</s>"]
    byte_tokens = ["<0x%02X>" % i for i in range(256)]
    n_learned = n_vocab - len(specials) - len(byte_tokens)
    if n_learned < 0:
        raise SystemExit("mkmodel: --vocab must be at least 259 (3 specials + 256 byte tokens; "
                         "from 260 on the meta-space is a token of its own)")
    learned, merges = train_bpe(n_learned)
    pieces = specials + byte_tokens + learned
    vocab = {p: i for i, p in enumerate(pieces)}
    tok = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {"id": i, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": False, "special": True}
            for i, s in enumerate(specials)
        ],
        # "metaspace": tokenizers >= 0.14's conversion of Llama 2; "normalizer": the
        # original Llama 2 file (Prepend + Replace normalizers, no pre-tokenizer)
        "normalizer": None if style == "metaspace" else {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": SPACE},
            {"type": "Replace", "pattern": {"String": " "}, "content": SPACE}]},
        "pre_tokenizer": {"type": "Metaspace", "replacement": SPACE, "prepend_scheme": "first",
                          "split": False} if style == "metaspace" else None,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                     {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "<s>", "type_id": 1}},
                     {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}},
        },
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": SPACE}, "content": " "},
            {"type": "ByteFallback"},
            {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0},
        ]},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": "<unk>",
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": True,
            "byte_fallback": True,
            "ignore_merges": False,
            "vocab": vocab,
            "merges": ["%s %s" % m for m in merges],
        },
    }
    tok_cfg = {
        "add_bos_token": True,
        "add_eos_token": False,
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "pad_token": None,
        "clean_up_tokenization_spaces": False,
        "legacy": False,
        "model_max_length": 1000000000000000019884624838656,
        "sp_model_kwargs": {},
        "tokenizer_class": "LlamaTokenizer",
        "added_tokens_decoder": {
            str(i): {"content": s, "lstrip": False, "normalized": False, "rstrip": False,
                     "single_word": False, "special": True}
            for i, s in enumerate(specials)
        },
        "chat_template": (
            "{% for message in messages %}"
            "{{ '<|' + message['role'] + '|>\\n' + message['content'] + eos_token + '\\n' }}"
            "{% endfor %}"
            "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
        ),
    }
    return tok, tok_cfg


# ---- model ----

ARCH = {
    "llama": ("LlamaForCausalLM", False),
    "mistral": ("MistralForCausalLM", False),
    "qwen2": ("Qwen2ForCausalLM", True),
}


def build(args):
    cls, qkv_bias = ARCH[args.arch]
    h, nl, nh = args.hidden, args.layers, args.heads
    nkv = args.kv_heads or nh
    hd = args.head_dim or (h // nh)
    if not args.head_dim and h % nh:
        raise SystemExit("mkmodel: --hidden must be divisible by --heads (or give --head-dim)")
    if nh % nkv:
        raise SystemExit("mkmodel: --kv-heads must divide --heads")
    ff, nv = args.ff, args.vocab
    dtype = {"f32": "F32", "f16": "F16", "bf16": "BF16"}[args.dtype]
    torch_dtype = {"f32": "float32", "f16": "float16", "bf16": "bfloat16"}[args.dtype]

    cfg = {
        "architectures": [cls],
        "model_type": args.arch,
        "hidden_size": h,
        "intermediate_size": ff,
        "num_hidden_layers": nl,
        "num_attention_heads": nh,
        "num_key_value_heads": nkv,
        "vocab_size": nv,
        "max_position_embeddings": args.ctx,
        "rms_norm_eps": args.eps,
        "rope_theta": args.rope_theta,
        "rope_scaling": None,
        "hidden_act": "silu",
        "initializer_range": 0.02,
        "tie_word_embeddings": bool(args.tie),
        "bos_token_id": 1,
        "eos_token_id": 2,
        "torch_dtype": torch_dtype,
        "use_cache": True,
        "transformers_version": "4.44.0",
    }
    if args.head_dim:
        cfg["head_dim"] = hd
    if args.arch == "llama":
        cfg["attention_bias"] = False
        cfg["mlp_bias"] = False
        cfg["pretraining_tp"] = 1
    elif args.arch == "mistral":
        cfg["sliding_window"] = args.sliding_window if args.sliding_window else None
    elif args.arch == "qwen2":
        cfg["use_sliding_window"] = False
        cfg["sliding_window"] = args.sliding_window or args.ctx
        cfg["max_window_layers"] = nl
    if args.rope_scaling == "llama3":
        cfg["rope_scaling"] = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                               "high_freq_factor": 4.0,
                               "original_max_position_embeddings": max(1, args.ctx // 8)}
    elif args.rope_scaling == "linear":
        cfg["rope_scaling"] = {"type": "linear", "factor": 2.0}

    # Tied embeddings: the current token's own embedding dominates the logits
    # unless the layers weigh more, and greedy decoding would repeat one token.
    s = args.scale if args.scale is not None else (2.0 if args.tie else 1.0)
    specs = [("model.embed_tokens.weight", (nv, h), 1.0, 0.0)]
    for i in range(nl):
        p = "model.layers.%d." % i
        specs += [
            (p + "input_layernorm.weight", (h,), 0.1, 1.0),
            (p + "self_attn.q_proj.weight", (nh * hd, h), s / math.sqrt(h), 0.0),
            (p + "self_attn.k_proj.weight", (nkv * hd, h), s / math.sqrt(h), 0.0),
            (p + "self_attn.v_proj.weight", (nkv * hd, h), s / math.sqrt(h), 0.0),
        ]
        if qkv_bias:
            specs += [
                (p + "self_attn.q_proj.bias", (nh * hd,), 0.1 * s, 0.0),
                (p + "self_attn.k_proj.bias", (nkv * hd,), 0.1 * s, 0.0),
                (p + "self_attn.v_proj.bias", (nkv * hd,), 0.1 * s, 0.0),
            ]
        specs += [
            (p + "self_attn.o_proj.weight", (h, nh * hd), s / math.sqrt(nh * hd), 0.0),
            (p + "post_attention_layernorm.weight", (h,), 0.1, 1.0),
            (p + "mlp.gate_proj.weight", (ff, h), s / math.sqrt(h), 0.0),
            (p + "mlp.up_proj.weight", (ff, h), s / math.sqrt(h), 0.0),
            (p + "mlp.down_proj.weight", (h, ff), s / math.sqrt(ff), 0.0),
        ]
    specs.append(("model.norm.weight", (h,), 0.1, 1.0))
    if not args.tie:
        specs.append(("lm_head.weight", (nv, h), args.head_gain * s / math.sqrt(h), 0.0))

    tensors = []
    for name, shape, std, mean in specs:
        n = 1
        for d in shape:
            n *= d
        tensors.append((name, dtype, shape, encode(tensor_values(args.seed, name, n, std, mean), dtype)))
    return cfg, tensors


# ---- optional: greedy margins by a plain-Python forward pass ----

def load_safetensors_dir(d):
    """name -> (shape, list of float values) for every tensor of the directory."""
    files = ["model.safetensors"]
    idx = os.path.join(d, "model.safetensors.index.json")
    if os.path.exists(idx):
        files = sorted(set(json.load(open(idx))["weight_map"].values()))
    out = {}
    for fn in files:
        raw = open(os.path.join(d, fn), "rb").read()
        hl = struct.unpack("<Q", raw[:8])[0]
        hdr = json.loads(raw[8:8 + hl])
        base = 8 + hl
        for name, m in hdr.items():
            if name == "__metadata__":
                continue
            b, e = m["data_offsets"]
            buf = raw[base + b:base + e]
            if m["dtype"] == "F32":
                v = list(struct.unpack("<%df" % ((e - b) // 4), buf))
            elif m["dtype"] == "F16":
                v = list(struct.unpack("<%de" % ((e - b) // 2), buf))
            else:
                v = [struct.unpack("<f", struct.pack("<I", x << 16))[0]
                     for x in struct.unpack("<%dH" % ((e - b) // 2), buf)]
            out[name] = (m["shape"], v)
    return out


def inv_freqs(cfg, hd):
    """transformers' rotary inv_freq with linear or llama3 scaling."""
    theta = cfg.get("rope_theta", 10000.0)
    inv = [1.0 / theta ** (2 * i / hd) for i in range(hd // 2)]
    rs = cfg.get("rope_scaling") or {}
    kind = rs.get("rope_type") or rs.get("type")
    if kind == "linear":
        inv = [f / rs["factor"] for f in inv]
    elif kind == "llama3":
        f, lo, hi, old = (rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"],
                          rs["original_max_position_embeddings"])
        out = []
        for x in inv:
            wl = 2 * math.pi / x
            if wl < old / hi:
                out.append(x)
            elif wl > old / lo:
                out.append(x / f)
            else:
                sm = (old / wl - lo) / (hi - lo)
                out.append((1 - sm) * x / f + sm * x)
        inv = out
    return inv


def greedy_margins(d, prompt_len=20, steps=32, prompt=None, keep_logits=None):
    """Top-1 minus top-2 logit at each greedy step after a fixed prompt (or the
    given one); keep_logits, a list, receives each step's logits."""
    cfg = json.load(open(os.path.join(d, "config.json")))
    W = load_safetensors_dir(d)

    def mat(name):
        shape, v = W[name]
        return [v[i * shape[1]:(i + 1) * shape[1]] for i in range(shape[0])]

    h, nh = cfg["hidden_size"], cfg["num_attention_heads"]
    nkv = cfg.get("num_key_value_heads") or nh
    hd = cfg.get("head_dim") or h // nh
    eps, nv = cfg.get("rms_norm_eps", 1e-6), cfg["vocab_size"]
    window = cfg.get("sliding_window") if cfg.get("model_type") == "mistral" else None
    if "rope_parameters" in cfg and "rope_scaling" not in cfg:  # transformers 5
        cfg = dict(cfg, rope_theta=cfg["rope_parameters"].get("rope_theta", 10000.0),
                   rope_scaling=cfg["rope_parameters"])
    inv = inv_freqs(cfg, hd)
    emb = mat("model.embed_tokens.weight")
    head = emb if cfg.get("tie_word_embeddings") else mat("lm_head.weight")
    norm = W["model.norm.weight"][1]
    layers = []
    for i in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % i
        L = {k: mat(p + n) for k, n in [
            ("q", "self_attn.q_proj.weight"), ("k", "self_attn.k_proj.weight"),
            ("v", "self_attn.v_proj.weight"), ("o", "self_attn.o_proj.weight"),
            ("g", "mlp.gate_proj.weight"), ("u", "mlp.up_proj.weight"),
            ("d", "mlp.down_proj.weight")]}
        L["an"] = W[p + "input_layernorm.weight"][1]
        L["fn"] = W[p + "post_attention_layernorm.weight"][1]
        for b in "qkv":
            name = p + "self_attn.%s_proj.bias" % b
            L["b" + b] = W[name][1] if name in W else None
        layers.append(L)

    def mv(M, x, b=None):
        y = [sum(a * c for a, c in zip(r, x)) for r in M]
        return [a + c for a, c in zip(y, b)] if b else y

    def rms(x, w):
        s = math.sqrt(sum(a * a for a in x) / len(x) + eps)
        return [a / s * c for a, c in zip(x, w)]

    def rope(v, pos):
        out = list(v)
        for hh in range(len(v) // hd):
            for i in range(hd // 2):
                c, s_ = math.cos(pos * inv[i]), math.sin(pos * inv[i])
                a, b = v[hh * hd + i], v[hh * hd + i + hd // 2]
                out[hh * hd + i] = a * c - b * s_
                out[hh * hd + i + hd // 2] = b * c + a * s_
        return out

    K = [[] for _ in layers]
    V = [[] for _ in layers]

    def step(tok, pos):
        x = list(emb[tok])
        for l, w in enumerate(layers):
            xn = rms(x, w["an"])
            q = rope(mv(w["q"], xn, w["bq"]), pos)
            K[l].append(rope(mv(w["k"], xn, w["bk"]), pos))
            V[l].append(mv(w["v"], xn, w["bv"]))
            lo = max(0, pos - window + 1) if window else 0
            att = []
            for hh in range(nh):
                kh = hh // (nh // nkv)
                qh = q[hh * hd:(hh + 1) * hd]
                sc = [sum(a * b for a, b in zip(qh, K[l][t][kh * hd:(kh + 1) * hd])) / math.sqrt(hd)
                      for t in range(lo, pos + 1)]
                m = max(sc)
                e = [math.exp(x_ - m) for x_ in sc]
                z = sum(e)
                att += [sum(e[t - lo] / z * V[l][t][kh * hd + j] for t in range(lo, pos + 1))
                        for j in range(hd)]
            x = [a + b for a, b in zip(x, mv(w["o"], att))]
            xn = rms(x, w["fn"])
            g, u = mv(w["g"], xn), mv(w["u"], xn)
            x = [a + b for a, b in zip(x, mv(w["d"], [gg / (1 + math.exp(-gg)) * uu
                                                      for gg, uu in zip(g, u)]))]
        return mv(head, rms(x, norm))

    toks = list(prompt) if prompt else [1] + [(7 * i + 3) % nv for i in range(prompt_len - 1)]
    prompt_len = len(toks)
    margins = []
    for pos in range(prompt_len + steps - 1):
        lg = step(toks[pos], pos)
        if pos >= prompt_len - 1:
            top = sorted(lg, reverse=True)
            margins.append(top[0] - top[1])
            if keep_logits is not None:
                keep_logits.append(lg)
            if pos + 1 >= len(toks):
                toks.append(max(range(nv), key=lambda i: lg[i]))
    return margins, toks[prompt_len:]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="directory to write (created)")
    ap.add_argument("--arch", choices=sorted(ARCH), default="llama")
    ap.add_argument("--dtype", choices=["f32", "f16", "bf16"], default="f32")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=0, help="default: --heads")
    ap.add_argument("--head-dim", type=int, default=0, help="written to config.json when given")
    ap.add_argument("--ff", type=int, default=160)
    ap.add_argument("--vocab", type=int, default=320)
    ap.add_argument("--ctx", type=int, default=512, help="max_position_embeddings")
    ap.add_argument("--tie", action="store_true", help="tie_word_embeddings (no lm_head)")
    ap.add_argument("--rope-scaling", choices=["llama3", "linear"])
    ap.add_argument("--rope-theta", type=float, default=10000.0)
    ap.add_argument("--eps", type=float, default=1e-5, help="rms_norm_eps")
    ap.add_argument("--sliding-window", type=int, default=0)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--scale", type=float, default=None,
                    help="gain on the std of linear layers (default 1, or 2 with --tie)")
    ap.add_argument("--head-gain", type=float, default=4.0, help="extra gain on lm_head")
    ap.add_argument("--shards", type=int, default=1)
    ap.add_argument("--check-margins", type=int, default=0, metavar="STEPS",
                    help="after writing, run a plain-Python forward pass over a 20-token prompt "
                         "and STEPS greedy steps, print the top-1 minus top-2 logit margins, and "
                         "fail if one is below 1e-3 (slow for large models)")
    ap.add_argument("--tokenizer-style", choices=["metaspace", "normalizer"], default="metaspace",
                    help="Metaspace pre-tokenizer, or Llama 2's original Prepend/Replace normalizer")
    args = ap.parse_args(argv)
    for k in ("layers", "hidden", "heads", "ff", "vocab", "ctx", "shards"):
        if getattr(args, k) < 1:
            raise SystemExit("mkmodel: --%s must be positive" % k)

    cfg, tensors = build(args)
    tok, tok_cfg = tokenizer_files(args.vocab, args.tokenizer_style)
    os.makedirs(args.out, exist_ok=True)

    def dump(name, obj):
        with open(os.path.join(args.out, name), "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2, ensure_ascii=False)
            f.write("\n")

    dump("config.json", cfg)
    dump("generation_config.json", {"_from_model_config": True, "bos_token_id": 1,
                                     "eos_token_id": 2, "transformers_version": "4.44.0"})
    dump("tokenizer.json", tok)
    dump("tokenizer_config.json", tok_cfg)
    dump("special_tokens_map.json", {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"})

    for stale in os.listdir(args.out):
        if stale.endswith(".safetensors") or stale == "model.safetensors.index.json":
            os.remove(os.path.join(args.out, stale))
    n = min(args.shards, len(tensors))
    if n == 1:
        write_safetensors(os.path.join(args.out, "model.safetensors"), tensors)
    else:
        total = sum(len(t[3]) for t in tensors)
        per = total / n
        groups, cur, acc = [], [], 0
        for t in tensors:
            if cur and acc >= per * (len(groups) + 1) and len(groups) < n - 1:
                groups.append(cur)
                cur = []
            cur.append(t)
            acc += len(t[3])
        groups.append(cur)
        while len(groups) < n:  # tiny models: split the largest group
            big = max(range(len(groups)), key=lambda i: len(groups[i]))
            g = groups[big]
            groups[big:big + 1] = [g[:len(g) // 2], g[len(g) // 2:]]
        weight_map = {}
        for i, g in enumerate(groups):
            fname = "model-%05d-of-%05d.safetensors" % (i + 1, n)
            write_safetensors(os.path.join(args.out, fname), g)
            for t in g:
                weight_map[t[0]] = fname
        dump("model.safetensors.index.json", {"metadata": {"total_size": total},
                                              "weight_map": weight_map})
    if args.check_margins:
        margins, toks = greedy_margins(args.out, steps=args.check_margins)
        print("mkmodel: %d greedy steps, margin min %.4g median %.4g, %d distinct tokens"
              % (len(margins), min(margins), sorted(margins)[len(margins) // 2], len(set(toks))))
        if min(margins) < 1e-3:
            print("mkmodel: a margin is below 1e-3: pick another --seed", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
