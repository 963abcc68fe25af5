#!/usr/bin/env python3
"""Write a random-weight Hugging Face Llama checkpoint of a real model's shape, for
benchmarks (needs torch and safetensors; runs on the GPU machine).

usage: make_random_model.py --shape tinyllama|llama2-7b --out DIR --tokenizer DIR [--seed S]

Weights are N(0, 0.02) in f16, norms 1: the values do not matter for speed, only the
shapes and dtype. The tokenizer directory (tokenizer.json, tokenizer_config.json) is
copied, e.g. Llama 2's from tests/fixtures/tokenizers/npm/llama2 (vocab 32000).
"""
import argparse, json, os, shutil
import torch
from safetensors.torch import save_file

SHAPES = {
    # TinyLlama-1.1B: hidden 2048, 22 layers, 32 heads, 4 KV heads, intermediate 5632
    "tinyllama": dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
                      num_attention_heads=32, num_key_value_heads=4, vocab_size=32000,
                      max_position_embeddings=2048),
    # Llama-2-7B: hidden 4096, 32 layers, 32 heads (MHA), intermediate 11008
    "llama2-7b": dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                      num_attention_heads=32, num_key_value_heads=32, vocab_size=32000,
                      max_position_embeddings=4096),
}

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", choices=SHAPES, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    s = SHAPES[a.shape]
    os.makedirs(a.out, exist_ok=True)
    cfg = dict(architectures=["LlamaForCausalLM"], model_type="llama", rms_norm_eps=1e-5,
               rope_theta=10000.0, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2,
               hidden_act="silu", torch_dtype="float16", **s)
    json.dump(cfg, open(os.path.join(a.out, "config.json"), "w"), indent=1)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(a.tokenizer, f), a.out)
    g = torch.Generator(device="cuda").manual_seed(a.seed)
    E, F, L = s["hidden_size"], s["intermediate_size"], s["num_hidden_layers"]
    hd = E // s["num_attention_heads"]
    kv = s["num_key_value_heads"] * hd
    def w(*shape):
        return (torch.randn(*shape, generator=g, device="cuda", dtype=torch.float32) * 0.02).half().cpu()
    shapes = {"model.embed_tokens.weight": (s["vocab_size"], E), "lm_head.weight": (s["vocab_size"], E),
              "model.norm.weight": (E,)}
    for l in range(L):
        p = f"model.layers.{l}."
        shapes.update({p + "self_attn.q_proj.weight": (E, E), p + "self_attn.k_proj.weight": (kv, E),
                       p + "self_attn.v_proj.weight": (kv, E), p + "self_attn.o_proj.weight": (E, E),
                       p + "mlp.gate_proj.weight": (F, E), p + "mlp.up_proj.weight": (F, E),
                       p + "mlp.down_proj.weight": (E, F), p + "input_layernorm.weight": (E,),
                       p + "post_attention_layernorm.weight": (E,)})
    # shards of at most ~4 GB, as save_pretrained would write them
    shards, cur, size = [], {}, 0
    for name, shp in shapes.items():
        t = torch.ones(shp, dtype=torch.float16) if len(shp) == 1 else w(*shp)
        cur[name] = t
        size += t.numel() * 2
        if size > 4e9:
            shards.append(cur); cur, size = {}, 0
    if cur:
        shards.append(cur)
    if len(shards) == 1:
        save_file(shards[0], os.path.join(a.out, "model.safetensors"), metadata={"format": "pt"})
    else:
        wm = {}
        for i, sh in enumerate(shards):
            fn = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
            save_file(sh, os.path.join(a.out, fn), metadata={"format": "pt"})
            wm.update({k: fn for k in sh})
        json.dump({"metadata": {}, "weight_map": wm}, open(os.path.join(a.out, "model.safetensors.index.json"), "w"))
    print(f"{a.shape}: {sum(t.numel() for sh in shards for t in sh.values()) / 1e9:.3f} B params in {len(shards)} file(s)")

if __name__ == "__main__":
    main()
