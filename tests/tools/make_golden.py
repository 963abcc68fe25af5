#!/usr/bin/env python3
"""make_golden.py - golden outputs from Hugging Face transformers for tiny models.

transformers is the authority here: for every architecture variant the library
supports, this script builds a tiny random model with transformers itself
(seeded, weights scaled so the logits are peaked), saves it with
save_pretrained(), reloads the saved files in float32 with
attn_implementation="eager" (so the rounding of f16/bf16 weights is part of the
model) and records:

  golden.json          prompt ids, the greedy continuation, the top-1/top-2
                       logit margin at every greedy step, mean NLL of a fixed
                       sequence, transformers' RoPE inv_freq, sanity checks,
                       versions and the exact command
  logits_steps.bin     float32 little-endian [n_steps][n_vocab]: row s holds the
                       logits that choose greedy token s, i.e. the logits at the
                       last position of prompt + greedy[0:s]
  config.json, model.safetensors (or an index and shards), generation_config.json,
  tokenizer.json, tokenizer_config.json, special_tokens_map.json

plus tokenizer_cases.json (text -> ids by HF tokenizers) at the top.

Greedy decoding runs the whole sequence through the model at every step (no KV
cache), so the goldens do not depend on transformers' cache classes.

Runs offline on the GPU machine (on its CPU: the models are tiny and CPU f32
has no TF32 surprises). `--selftest` checks the parts that need neither torch nor
transformers (BPE vocabulary, RoPE formulas, file writers) on any machine.

Usage:
  python3 tests/tools/make_golden.py --out tests/fixtures/golden
  python3 tests/tools/make_golden.py --selftest
The fixtures change only by re-running this script and reviewing the diff.
"""
import argparse
import collections
import json
import math
import os
import platform
import random
import shutil
import struct
import sys
import tempfile
import time
import traceback

VOCAB = 384
BOS, EOS, UNK = 1, 2, 0
N_PROMPT = 20
N_GEN = 64
N_NLL = 96
MARGIN_MIN = 0.05
WRONG_THETA_DIV = 100.0

# Each variant: the transformers class, its config, the dtype the weights are
# saved in, and what save_pretrained is told. rope: None, or the scaling dict.
VARIANTS = [
    dict(name="llama_gqa", cls="LlamaForCausalLM", save_dtype="float32", seed=101,
         cfg=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=8, num_key_value_heads=2, rope_theta=10000.0,
                  rms_norm_eps=1e-5, tie_word_embeddings=False)),
    dict(name="llama_mqa", cls="LlamaForCausalLM", save_dtype="float16", seed=102,
         cfg=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=1, rope_theta=10000.0,
                  rms_norm_eps=1e-6, tie_word_embeddings=False)),
    # head_dim 16: wavelengths 2*pi*10000^(2i/16) = 6.3 (kept), 19.9 (smoothed),
    # 62.8.. (divided by 8) against low/high wavelengths 32/1 and 32/4: all
    # three branches of the llama3 rule are used.
    dict(name="llama3_tied_bf16", cls="LlamaForCausalLM", save_dtype="bfloat16", seed=103,
         rope=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0,
                   high_freq_factor=4.0, original_max_position_embeddings=32),
         cfg=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, rope_theta=10000.0,
                  rms_norm_eps=1e-5, tie_word_embeddings=True)),
    dict(name="llama_sharded_f32", cls="LlamaForCausalLM", save_dtype="float32", seed=104,
         max_shard_size="300KB", rope=dict(rope_type="linear", factor=2.0),
         cfg=dict(hidden_size=96, intermediate_size=128, num_hidden_layers=3,
                  num_attention_heads=6, num_key_value_heads=3, rope_theta=10000.0,
                  rms_norm_eps=1e-5, tie_word_embeddings=False)),
    dict(name="mistral_sw", cls="MistralForCausalLM", save_dtype="float32", seed=105,
         cfg=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, rope_theta=10000.0,
                  rms_norm_eps=1e-5, tie_word_embeddings=False, sliding_window=8)),
    dict(name="qwen2_bias", cls="Qwen2ForCausalLM", save_dtype="float32", seed=106,
         cfg=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, rope_theta=1000000.0,
                  rms_norm_eps=1e-6, tie_word_embeddings=True, use_sliding_window=False)),
    # head_dim 32 while hidden/heads = 16: q/o projections are not square.
    dict(name="llama_headdim", cls="LlamaForCausalLM", save_dtype="float32", seed=107,
         optional=True,
         cfg=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, head_dim=32,
                  rope_theta=10000.0, rms_norm_eps=1e-5, tie_word_embeddings=False)),
]

COMMON_CFG = dict(vocab_size=VOCAB, max_position_embeddings=128, bos_token_id=BOS,
                  eos_token_id=EOS, pad_token_id=None, hidden_act="silu",
                  initializer_range=0.02)

CORPUS = """
Once upon a time there was a little robot who lived in a small town by the sea.
Every morning the robot walked to the harbour and counted the boats. One day the
robot found a tiny bird with a broken wing sitting on the stones. The robot picked
up the bird and carried it home. It made a warm bed from an old hat and gave the
bird water and seeds. The bird was afraid at first, but after some days it began
to sing. The robot listened to the song and felt happy. When the wing was strong
again the bird flew over the roofs of the town, and every evening it came back to
sing for the robot. The people of the town heard the song and smiled. They said
that the little robot had the kindest heart in the whole world. The moral of the
story is that kindness makes the world brighter, and that a friend can be found
in the most surprising places. The end. Then the children asked for another
story, and their mother told them about the moon, the stars and the sleepy cat
that watched the garden at night while everyone in the house was dreaming.
"""

TOKENIZER_CASES = [
    "Hello world",
    "Once upon a time",
    "the robot and the bird",
    " leading space",
    "double  space and trailing ",
    "tabs\tand\nnew lines",
    "na\u00efve caf\u00e9 \u2603 \u65e5\u672c",
    "emoji \U0001F600!",
    "<s> looks special but is text </s>",
    "",
    "x",
    "1234567890",
]


# ---------------------------------------------------------------- tokenizer --

def train_bpe(corpus, n_merges_and_chars):
    """Character vocabulary plus merges learned greedily from corpus.

    Words are '\u2581' + word, so no merge crosses a word boundary (Metaspace
    with or without split gives the same pieces). Most frequent pair first,
    ties broken by the pair's strings. Returns (chars, merges).
    """
    words = collections.Counter("\u2581" + w for w in corpus.split())
    char_freq = collections.Counter()
    for w, n in words.items():
        for c in w:
            char_freq[c] += n
    chars = sorted(char_freq, key=lambda c: (-char_freq[c], c))
    if len(chars) > n_merges_and_chars:
        raise ValueError("corpus has too many distinct characters")
    known = set(chars)
    segs = {w: list(w) for w in words}
    merges = []
    while len(chars) + len(merges) < n_merges_and_chars:
        pairs = collections.Counter()
        for w, n in words.items():
            s = segs[w]
            for a, b in zip(s, s[1:]):
                if a + b not in known:
                    pairs[(a, b)] += n
        if not pairs:
            raise ValueError("corpus too small for the vocabulary")
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        known.add(best[0] + best[1])
        for w in segs:
            s, out, i = segs[w], [], 0
            while i < len(s):
                if i + 1 < len(s) and (s[i], s[i + 1]) == best:
                    out.append(s[i] + s[i + 1])
                    i += 2
                else:
                    out.append(s[i])
                    i += 1
            segs[w] = out
    return chars, merges


def tokenizer_vocab():
    """<unk> <s> </s>, 256 <0xNN> byte tokens, characters, merges: VOCAB ids."""
    vocab = {"<unk>": UNK, "<s>": BOS, "</s>": EOS}
    for b in range(256):
        vocab["<0x%02X>" % b] = len(vocab)
    chars, merges = train_bpe(CORPUS, VOCAB - len(vocab))
    for c in chars:
        vocab[c] = len(vocab)
    for a, b in merges:
        vocab[a + b] = len(vocab)
    assert len(vocab) == VOCAB and sorted(vocab.values()) == list(range(VOCAB))
    return vocab, merges


def build_tokenizer():
    """A SentencePiece-style BPE (Llama-2 like) built with HF tokenizers."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors
    vocab, merges = tokenizer_vocab()
    tk = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>",
                              byte_fallback=True, fuse_unk=True))
    specials = []
    for s in ("<unk>", "<s>", "</s>"):
        try:
            specials.append(AddedToken(s, special=True, normalized=False))
        except TypeError:
            specials.append(AddedToken(s, normalized=False))
    tk.add_special_tokens(specials)
    try:
        tk.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581",
                                                    prepend_scheme="first", split=False)
    except TypeError:
        tk.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", add_prefix_space=True)
    steps = [decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse()]
    try:
        steps.append(decoders.Strip(content=" ", left=1, right=0))
    except TypeError:
        pass
    tk.decoder = decoders.Sequence(steps)
    tk.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", BOS)])
    assert tk.get_vocab_size() == VOCAB, tk.get_vocab_size()
    return tk


def save_tokenizer(tk, d):
    tk.save(os.path.join(d, "tokenizer.json"))
    write_json(os.path.join(d, "tokenizer_config.json"), {
        "add_bos_token": True, "add_eos_token": False, "bos_token": "<s>",
        "eos_token": "</s>", "unk_token": "<unk>", "pad_token": None,
        "clean_up_tokenization_spaces": False, "legacy": False,
        "model_max_length": COMMON_CFG["max_position_embeddings"],
        "tokenizer_class": "LlamaTokenizerFast"})
    write_json(os.path.join(d, "special_tokens_map.json"),
               {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"})


def tokenizer_cases(tk, model_dir):
    """Text -> ids (with <s>) and ids -> text by HF tokenizers; transformers'
    AutoTokenizer on the saved directory must agree."""
    cases = []
    auto = None
    try:
        from transformers import AutoTokenizer
        auto = AutoTokenizer.from_pretrained(model_dir)
    except Exception as e:  # recorded, not fatal: tokenizers is the authority
        print("  AutoTokenizer failed: %r" % (e,))
    for text in TOKENIZER_CASES:
        enc = tk.encode(text)
        case = {"text": text, "ids": enc.ids, "pieces": enc.tokens,
                "decoded": tk.decode(enc.ids, skip_special_tokens=True)}
        if auto is not None:
            case["transformers_ids_agree"] = list(auto(text)["input_ids"]) == enc.ids
        cases.append(case)
    return cases


# --------------------------------------------------------------------- RoPE --

def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def expected_inv_freq(head_dim, theta, rope):
    """inv_freq as transformers' _compute_*_parameters define it (in double
    here; compared with a relative tolerance)."""
    inv = [1.0 / (theta ** (i / head_dim)) for i in range(0, head_dim, 2)]
    if rope is None:
        return inv
    if rope["rope_type"] == "linear":
        return [f / rope["factor"] for f in inv]
    assert rope["rope_type"] == "llama3"
    factor, lo, hi = rope["factor"], rope["low_freq_factor"], rope["high_freq_factor"]
    old = rope["original_max_position_embeddings"]
    lo_wl, hi_wl = old / lo, old / hi
    out = []
    for f in inv:
        wl = 2 * math.pi / f
        if wl < hi_wl:
            out.append(f)
        elif wl > lo_wl:
            out.append(f / factor)
        else:
            s = (old / wl - lo) / (hi - lo)
            out.append((1 - s) * f / factor + s * f)
    return out


# -------------------------------------------------------------------- files --

def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as fp:
        json.dump(obj, fp, indent=1, ensure_ascii=False)
        fp.write("\n")


def write_f32(path, rows):
    """Rows of floats as float32 little-endian, row after row."""
    with open(path, "wb") as fp:
        for r in rows:
            fp.write(struct.pack("<%df" % len(r), *r))


def read_f32(path, n_cols):
    with open(path, "rb") as fp:
        data = fp.read()
    vals = struct.unpack("<%df" % (len(data) // 4), data)
    return [list(vals[i:i + n_cols]) for i in range(0, len(vals), n_cols)]


def selftest():
    vocab, merges = tokenizer_vocab()
    assert vocab["<0x41>"] == 3 + 0x41 and vocab["\u2581"] >= 259
    for a, b in merges:
        assert a in vocab and b in vocab and vocab[a + b] > max(vocab[a], vocab[b])
    assert len(set(vocab)) == VOCAB
    # llama3 rule: the three regimes for head_dim 16, theta 1e4.
    r = VARIANTS[2]["rope"]
    inv = expected_inv_freq(16, 10000.0, r)
    base = expected_inv_freq(16, 10000.0, None)
    assert inv[0] == base[0]                     # wavelength 6.3 < 8: kept
    assert base[1] / 8 < inv[1] < base[1]        # 19.9 in [8, 32]: smoothed
    assert all(abs(inv[i] - base[i] / 8) < 1e-15 for i in range(2, 8))
    lin = expected_inv_freq(16, 10000.0, dict(rope_type="linear", factor=2.0))
    assert all(abs(a - b / 2) < 1e-15 for a, b in zip(lin, base))
    d = tempfile.mkdtemp()
    try:
        p = os.path.join(d, "x.bin")
        write_f32(p, [[1.0, -2.5, f32(0.1)], [3.0, 4.0, 5.0]])
        assert read_f32(p, 3) == [[1.0, -2.5, f32(0.1)], [3.0, 4.0, 5.0]]
        assert os.path.getsize(p) == 24
    finally:
        shutil.rmtree(d)
    rng = random.Random(7)
    assert prompt_ids(rng, 5)[0] == BOS
    print("selftest: ok (%d chars + %d merges, merges[:5]=%s)"
          % (VOCAB - 259 - len(merges), len(merges), merges[:5]))


def prompt_ids(rng, n):
    return [BOS] + [rng.randrange(3, VOCAB) for _ in range(n - 1)]


# ------------------------------------------------------------------- models --

class Ctx:
    """Imported modules and version facts, filled by main()."""


def load_kwargs(ctx, dtype):
    # transformers renamed torch_dtype to dtype in 4.56; an unknown kwarg of
    # from_pretrained would silently land in the config, so pick by version.
    key = "dtype" if ctx.tf_version >= (4, 56) else "torch_dtype"
    return {key: dtype, "attn_implementation": "eager"}


def make_config(ctx, v, rope_style):
    """The transformers config of variant v; rope_style 'scaling' passes
    rope_scaling/rope_theta (4.x), 'parameters' passes rope_parameters (5.x)."""
    tf = ctx.transformers
    cfg_cls = getattr(tf, v["cls"].replace("ForCausalLM", "Config"))
    kw = dict(COMMON_CFG)
    kw.update(v["cfg"])
    rope = v.get("rope")
    if rope_style == "scaling":
        if rope is not None:
            r = dict(rope)
            r["type"] = r["rope_type"]
            kw["rope_scaling"] = r
    else:
        params = dict(rope) if rope is not None else {"rope_type": "default"}
        params["rope_theta"] = kw.pop("rope_theta")
        kw["rope_parameters"] = params
    return cfg_cls(**kw)


def find_inv_freq(model):
    m = model.model
    for obj in (getattr(m, "rotary_emb", None),
                getattr(m.layers[0].self_attn, "rotary_emb", None)):
        if obj is not None and hasattr(obj, "inv_freq"):
            return [float(x) for x in obj.inv_freq.detach().double().cpu()]
    return None


def init_weights(ctx, model, seed, tied):
    """Weights scaled so activations stay O(1) and logits are peaked: a random
    model with transformers' default init (std 0.02) has near-flat logits that
    hide bugs. Norm weights are 1 + noise so a skipped or swapped norm shows.
    Tied models get embeddings of std 0.3: with std 1 the embedding dominates
    the residual stream and the tied head predicts the input token again, so
    greedy decoding repeats one token and tests little."""
    torch = ctx.torch
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            shape = tuple(p.shape)
            z = torch.randn(shape, generator=g, dtype=torch.float32)
            if name.endswith("norm.weight"):
                val = 1.0 + 0.25 * z
            elif "embed_tokens" in name:
                val = z * (0.3 if tied else 1.0)
            elif "lm_head" in name:
                val = z * (6.0 / math.sqrt(shape[1]))
            elif name.endswith(".bias"):
                val = 0.5 * z
            elif len(shape) == 2 and ("q_proj" in name or "k_proj" in name):
                val = z * (1.5 / math.sqrt(shape[1]))
            elif len(shape) == 2:
                val = z * (1.0 / math.sqrt(shape[1]))
            else:
                raise RuntimeError("init_weights: unexpected parameter %s %s" % (name, shape))
            p.copy_(val)


def logits_of(ctx, model, ids):
    torch = ctx.torch
    with torch.no_grad():
        out = model(input_ids=torch.tensor([ids], dtype=torch.long), use_cache=False)
    return out.logits[0].float()


def greedy(ctx, model, prompt, n):
    """Greedy continuation, recomputing the whole sequence every step.
    Returns (tokens, margins, step_logits)."""
    torch = ctx.torch
    ids, toks, margins, rows = list(prompt), [], [], []
    for _ in range(n):
        lg = logits_of(ctx, model, ids)[-1]
        top = torch.topk(lg, 2)
        # torch.argmax returns the first maximal index; topk may not on ties.
        t = int(torch.argmax(lg))
        margins.append(float(top.values[0] - top.values[1]))
        rows.append(lg.tolist())
        toks.append(t)
        ids.append(t)
    return toks, margins, rows


def mean_nll(ctx, model, ids):
    """Mean natural-log NLL of ids[1:] given their prefixes: what transformers'
    shifted cross-entropy (labels=ids) gives; both are computed and compared."""
    torch = ctx.torch
    x = torch.tensor([ids], dtype=torch.long)
    with torch.no_grad():
        out = model(input_ids=x, labels=x, use_cache=False)
    lp = torch.log_softmax(out.logits[0, :-1].float(), dim=-1)
    per = -lp.gather(1, x[0, 1:, None])[:, 0]
    manual = float(per.mean())
    if abs(manual - float(out.loss)) > 1e-4 * max(1.0, abs(manual)):
        raise RuntimeError("NLL: manual %r vs loss %r" % (manual, float(out.loss)))
    return manual, [float(v) for v in per]


def edited_copy(src, edit):
    """A temporary copy of a saved model dir with config.json changed by edit."""
    d = tempfile.mkdtemp(prefix="golden_edit_")
    for f in os.listdir(src):
        shutil.copy(os.path.join(src, f), d)
    p = os.path.join(d, "config.json")
    with open(p) as fp:
        cfg = json.load(fp)
    edit(cfg)
    write_json(p, cfg)
    return d


def edit_theta(cfg):
    """rope_theta / WRONG_THETA_DIV, wherever this version keeps it."""
    if "rope_theta" in cfg:
        cfg["rope_theta"] = cfg["rope_theta"] / WRONG_THETA_DIV
    rp = cfg.get("rope_parameters")
    if isinstance(rp, dict) and "rope_theta" in rp:
        rp["rope_theta"] = rp["rope_theta"] / WRONG_THETA_DIV


def edit_no_scaling(cfg):
    if cfg.get("rope_scaling") is not None:
        cfg["rope_scaling"] = None
    rp = cfg.get("rope_parameters")
    if isinstance(rp, dict):
        keep = {"rope_type": "default"}
        if "rope_theta" in rp:
            keep["rope_theta"] = rp["rope_theta"]
        cfg["rope_parameters"] = keep


def edit_no_window(cfg):
    cfg["sliding_window"] = None


def check_changes(ctx, v, d, prompt, toks, what, edit):
    """Reload with a deliberately wrong config; the greedy tokens must change."""
    e = edited_copy(d, edit)
    try:
        m = reload(ctx, v, e)
        t2, _, _ = greedy(ctx, m, prompt, N_GEN)
    finally:
        shutil.rmtree(e)
    first = next((i for i, (a, b) in enumerate(zip(toks, t2)) if a != b), None)
    ok = first is not None
    print("  check %-22s greedy %s (first difference at step %s)"
          % (what, "changed" if ok else "UNCHANGED", first))
    return {"what": what, "changed": ok, "first_diff_step": first}


def window_probe(ctx, model, ids, n_layer):
    """Measure the attention window transformers really applies: change one
    earlier token at a time and see which ones reach the logits at the last
    position. Each layer reaches (window - 1) positions back, so the total
    reach is n_layer * (window - 1)."""
    torch = ctx.torch
    p = len(ids) - 1
    base = logits_of(ctx, model, ids)[p]
    j_min, diffs = None, {}
    for j in range(p + 1):
        alt = list(ids)
        alt[j] = 3 + (alt[j] - 3 + 11) % (VOCAB - 3)
        d = float((logits_of(ctx, model, alt)[p] - base).abs().max())
        if d > 0.0 and j_min is None:
            j_min = j
        diffs[j] = d
    reach = p - j_min
    res = {"query_pos": p, "first_key_pos_that_matters": j_min, "reach": reach,
           "effective_window": reach / n_layer + 1,
           "max_logit_change_by_key_pos": [diffs[j] for j in range(p + 1)]}
    # The same from the attention probabilities of layer 0 (eager returns them).
    try:
        with torch.no_grad():
            out = model(input_ids=torch.tensor([ids]), use_cache=False, output_attentions=True)
        a = out.attentions[0][0]  # (n_head, q, k)
        res["attn_keys_per_query_layer0"] = [int((a[:, q] > 0).any(0).sum()) for q in range(p + 1)]
    except Exception as e:
        res["attn_keys_per_query_layer0"] = "unavailable: %r" % (e,)
    return res


def reload(ctx, v, d):
    torch, tf = ctx.torch, ctx.transformers
    m = getattr(tf, v["cls"]).from_pretrained(d, **load_kwargs(ctx, torch.float32))
    m.eval()
    for n, p in m.named_parameters():
        if p.dtype != torch.float32:
            raise RuntimeError("reload: %s is %s, not float32" % (n, p.dtype))
    impl = getattr(m.config, "_attn_implementation", None)
    if impl not in (None, "eager"):
        raise RuntimeError("reload: attention implementation %r, not eager" % (impl,))
    return m


def parse_size(s):
    units = {"KB": 10 ** 3, "MB": 10 ** 6, "GB": 10 ** 9}
    return int(float(s[:-2]) * units[s[-2:].upper()])


def reshard(d, max_bytes):
    """Split d/model.safetensors into shards of at most max_bytes (a tensor
    larger than that gets a shard of its own) with the index transformers
    writes: {"metadata": {"total_size": N}, "weight_map": {name: file}}."""
    from safetensors import safe_open
    from safetensors.torch import save_file
    src = os.path.join(d, "model.safetensors")
    with safe_open(src, framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in sorted(f.keys())}
    groups, cur, size = [], [], 0
    for k, t in tensors.items():
        n = t.numel() * t.element_size()
        if cur and size + n > max_bytes:
            groups.append(cur)
            cur, size = [], 0
        cur.append(k)
        size += n
    groups.append(cur)
    weight_map, total = {}, 0
    for i, g in enumerate(groups):
        name = "model-%05d-of-%05d.safetensors" % (i + 1, len(groups))
        save_file({k: tensors[k].contiguous() for k in g}, os.path.join(d, name),
                  metadata={"format": "pt"})
        for k in g:
            weight_map[k] = name
            total += tensors[k].numel() * tensors[k].element_size()
    write_json(os.path.join(d, "model.safetensors.index.json"),
               {"metadata": {"total_size": total}, "weight_map": weight_map})
    os.remove(src)


def nmse(a, b):
    num = sum((x - y) ** 2 for ra, rb in zip(a, b) for x, y in zip(ra, rb))
    den = sum(y * y for rb in b for y in rb)
    return num / den


def make_variant(ctx, v, out_dir, tk, command):
    torch, tf = ctx.torch, ctx.transformers
    name = v["name"]
    d = os.path.join(out_dir, name)
    if os.path.exists(d):
        shutil.rmtree(d)
    os.makedirs(d)
    t0 = time.time()
    torch.manual_seed(v["seed"])

    # 1. Build, checking transformers took the RoPE settings as meant.
    hd = v["cfg"].get("head_dim", v["cfg"]["hidden_size"] // v["cfg"]["num_attention_heads"])
    want = expected_inv_freq(hd, v["cfg"]["rope_theta"], v.get("rope"))
    model, inv, style, errors = None, None, None, []
    for style in ("scaling", "parameters"):
        try:
            cfg = make_config(ctx, v, style)
            model = getattr(tf, v["cls"])(cfg)
            inv = find_inv_freq(model)
            if inv is not None and max(abs(a - b) / b for a, b in zip(inv, want)) > 1e-5:
                raise RuntimeError("inv_freq %s != expected %s" % (inv, want))
            break
        except Exception as e:  # try the other config style
            errors.append("%s: %r" % (style, e))
            model = None
    if model is None:
        raise RuntimeError("could not build %s: %s" % (name, "; ".join(errors)))
    q = model.model.layers[0].self_attn.q_proj
    if q.out_features != v["cfg"]["num_attention_heads"] * hd:
        raise RuntimeError("head_dim not honoured: q_proj out %d" % q.out_features)
    init_weights(ctx, model, v["seed"], v["cfg"]["tie_word_embeddings"])
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.bos_token_id = BOS
        model.generation_config.eos_token_id = EOS

    # 2. Save in the variant's dtype, with the tokenizer.
    save_dtype = getattr(torch, v["save_dtype"])
    # 5.x writes safetensors only and dropped the safe_serialization argument.
    kw = {"safe_serialization": True} if ctx.tf_version < (5, 0) else {}
    if "max_shard_size" in v:
        kw["max_shard_size"] = v["max_shard_size"]
    try:
        model.to(save_dtype).save_pretrained(d, **kw)
    except (TypeError, ValueError):  # an argument this version no longer takes: shard by hand below
        kw.pop("max_shard_size", None)
        model.to(save_dtype).save_pretrained(d, **kw)
    if tk is not None:
        save_tokenizer(tk, d)
    if not os.path.exists(os.path.join(d, "generation_config.json")):
        write_json(os.path.join(d, "generation_config.json"),
                   {"bos_token_id": BOS, "eos_token_id": EOS})
    files = sorted(os.listdir(d))
    shards = [f for f in files if f.endswith(".safetensors")]
    if "max_shard_size" in v and (len(shards) < 2 or
                                  "model.safetensors.index.json" not in files):
        print("  save_pretrained did not shard (%s); sharding by hand" % files)
        reshard(d, parse_size(v["max_shard_size"]))
        files = sorted(os.listdir(d))
        shards = [f for f in files if f.endswith(".safetensors")]
        if len(shards) < 2 or "model.safetensors.index.json" not in files:
            raise RuntimeError("expected a sharded checkpoint, got %s" % files)

    # 3. Reload in f32 (eager) and record.
    m = reload(ctx, v, d)
    inv_reloaded = find_inv_freq(m)
    if v["cfg"]["tie_word_embeddings"] and not torch.equal(m.lm_head.weight,
                                                           m.model.embed_tokens.weight):
        raise RuntimeError("tie_word_embeddings: lm_head differs from embed_tokens")
    rng = random.Random(v["seed"])
    prompt = prompt_ids(rng, N_PROMPT)
    nll_ids = prompt_ids(rng, N_NLL)
    toks, margins, rows = greedy(ctx, m, prompt, N_GEN)
    write_f32(os.path.join(d, "logits_steps.bin"), rows)
    nll, nll_per = mean_nll(ctx, m, nll_ids)

    # Teacher-forced single forward over the greedy sequence: the batched
    # computation must agree with the step-wise one (a noise floor), and so
    # must a float64 run (how far f32 itself is from exact).
    seq = prompt + toks
    full = logits_of(ctx, m, seq[:-1])[N_PROMPT - 1:]
    batched_nmse = nmse(full.tolist(), rows)
    f64_nmse = None
    try:
        m64 = reload(ctx, v, d).double()
        with torch.no_grad():
            o = m64(input_ids=torch.tensor([seq[:-1]]), use_cache=False).logits[0]
        f64_nmse = nmse(rows, o[N_PROMPT - 1:].tolist())
        del m64
    except Exception as e:
        print("  float64 run failed: %r" % (e,))

    # 4. Sanity checks: wrong settings must change the greedy tokens.
    checks = [check_changes(ctx, v, d, prompt, toks, "rope_theta/%g" % WRONG_THETA_DIV,
                            edit_theta)]
    if v.get("rope") is not None:
        checks.append(check_changes(ctx, v, d, prompt, toks, "rope scaling removed",
                                    edit_no_scaling))
    window = None
    if v["cfg"].get("sliding_window"):
        checks.append(check_changes(ctx, v, d, prompt, toks, "sliding window removed",
                                    edit_no_window))
        window = window_probe(ctx, m, seq[:41], v["cfg"]["num_hidden_layers"])
        window["config_window"] = v["cfg"]["sliding_window"]
        print("  window probe: %s" % (window,))
    failed = [c["what"] for c in checks if not c["changed"]]

    n_small = sum(1 for x in margins if x < MARGIN_MIN)
    with open(os.path.join(d, "config.json")) as fp:
        saved_cfg = json.load(fp)
    golden = {
        "variant": name,
        "architecture": v["cls"],
        "saved_dtype": v["save_dtype"],
        "config_style": style,
        "head_dim": hd,
        "seed": v["seed"],
        "n_vocab": VOCAB,
        "prompt_ids": prompt,
        "greedy_ids": toks,
        "greedy_margins": margins,
        "margin_min": MARGIN_MIN,
        "n_margins_below_min": n_small,
        "logits_file": "logits_steps.bin",
        "logits_layout": "float32 little-endian [n_steps=%d][n_vocab=%d]; row s = logits at "
                         "the last position of prompt_ids + greedy_ids[:s]" % (N_GEN, VOCAB),
        "nll_ids": nll_ids,
        "nll_mean": nll,
        "nll_per_token": nll_per,
        "nll_definition": "mean over i=1..N-1 of -log softmax(logits[i-1])[ids[i]], natural log",
        "inv_freq": inv_reloaded,
        "inv_freq_expected_f64": want,
        "nmse_stepwise_vs_batched_f32": batched_nmse,
        "nmse_f32_vs_f64": f64_nmse,
        "window_probe": window,
        "checks": checks,
        "files": sorted(os.listdir(d)) + ["golden.json"],
        "saved_config": saved_cfg,
        "versions": ctx.versions,
        "command": command,
    }
    write_json(os.path.join(d, "golden.json"), golden)
    print("  %s: %d/%d margins < %g, min margin %.4f, nll %.4f, nmse batched %.3g f64 %s, "
          "%.1fs, files %s" % (name, n_small, N_GEN, MARGIN_MIN, min(margins), nll,
                               batched_nmse, "%.3g" % f64_nmse if f64_nmse is not None else "-",
                               time.time() - t0, files))
    if failed:
        raise RuntimeError("sanity checks did not change the output: %s" % failed)
    if window is not None and window["effective_window"] != window["config_window"]:
        print("  NOTE: transformers %s applies a window of %s keys for sliding_window=%d"
              % (ctx.versions["transformers"], window["effective_window"],
                 window["config_window"]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="tests/fixtures/golden")
    ap.add_argument("--only", action="append", help="variant name (repeatable)")
    ap.add_argument("--tar", help="also pack the output directory into this tar file, "
                    "with members under golden/")
    ap.add_argument("--selftest", action="store_true")
    args = ap.parse_args()
    if args.selftest:
        selftest()
        return 0
    selftest()

    import safetensors
    import tokenizers
    import torch
    import transformers
    ctx = Ctx()
    ctx.torch, ctx.transformers = torch, transformers
    ctx.tf_version = tuple(int(x) for x in transformers.__version__.split(".")[:2])
    ctx.versions = {"python": platform.python_version(), "torch": torch.__version__,
                    "transformers": transformers.__version__,
                    "tokenizers": tokenizers.__version__,
                    "safetensors": getattr(safetensors, "__version__", "?")}
    print("versions: %s" % ctx.versions)
    torch.set_num_threads(min(8, os.cpu_count() or 1))
    torch.use_deterministic_algorithms(True, warn_only=True)
    command = "python3 tests/tools/make_golden.py --out tests/fixtures/golden" + "".join(
        " --only " + o for o in (args.only or []))

    os.makedirs(args.out, exist_ok=True)
    try:
        tk = build_tokenizer()
    except Exception:  # the models are still worth having
        traceback.print_exc()
        tk = None
    failures = []
    first_dir = None
    for v in VARIANTS:
        if args.only and v["name"] not in args.only:
            continue
        print("variant %s" % v["name"])
        try:
            make_variant(ctx, v, args.out, tk, command)
            first_dir = first_dir or os.path.join(args.out, v["name"])
        except Exception:
            traceback.print_exc()
            if v.get("optional"):
                print("  optional variant %s skipped" % v["name"])
                shutil.rmtree(os.path.join(args.out, v["name"]), ignore_errors=True)
            else:
                failures.append(v["name"])
    if tk is None:
        failures.append("tokenizer")
    elif first_dir is not None:
        try:
            cases = tokenizer_cases(tk, first_dir)
            write_json(os.path.join(args.out, "tokenizer_cases.json"),
                       {"tokenizer": "tokenizer.json of every variant (identical)",
                        "add_special_tokens": True, "versions": ctx.versions, "cases": cases})
            bad = [c["text"] for c in cases if c.get("transformers_ids_agree") is False]
            if bad:
                print("tokenizer: transformers disagrees with tokenizers on %r" % bad)
        except Exception:
            traceback.print_exc()
            failures.append("tokenizer_cases")
    if args.tar:
        import tarfile
        with tarfile.open(args.tar, "w") as tf_:
            tf_.add(args.out, arcname="golden")
        print("packed %s into %s (%d bytes)" % (args.out, args.tar, os.path.getsize(args.tar)))
    print("done: %d failed %s" % (len(failures), failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
