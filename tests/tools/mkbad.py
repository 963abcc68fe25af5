#!/usr/bin/env python3
"""mkbad.py - regenerate the handcrafted malformed checkpoints under tests/data/bad/.

Each case is a directory with a tiny valid config.json, one malformed file, and
EXPECT: "<llmgpu_status value> <substring the log must contain>", checked by
tests/check_model.c (test_ckpt_bad_files_dir). Run from the repository root:
  python3 tests/tools/mkbad.py
"""
import json
import os
import shutil
import struct

ROOT = os.path.join("tests", "data", "bad")
BAD, UNSUP, IO = -9, -10, -8

CONFIG = {
    "architectures": ["LlamaForCausalLM"], "hidden_size": 4, "intermediate_size": 8,
    "num_hidden_layers": 1, "num_attention_heads": 2, "vocab_size": 4,
    "rms_norm_eps": 1e-5, "tie_word_embeddings": True,
}


def st(header, data=b"", hlen=None):
    h = header.encode() if isinstance(header, str) else header
    return struct.pack("<Q", len(h) if hlen is None else hlen) + h + data


def case(name, files, expect, config=CONFIG):
    d = os.path.join(ROOT, name)
    os.makedirs(d)
    if config is not None:
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(config, f)
    for fname, content in files.items():
        with open(os.path.join(d, fname), "wb") as f:
            f.write(content.encode() if isinstance(content, str) else content)
    with open(os.path.join(d, "EXPECT"), "w") as f:
        f.write("%d %s\n" % expect)


def main():
    shutil.rmtree(ROOT, ignore_errors=True)
    os.makedirs(ROOT)
    case("header-past-eof", {"model.safetensors": st("{}", b"", hlen=1000) + b"x" * 40},
         (BAD, "model.safetensors: header length 1000 (at byte 0) runs past the end of the file (50 bytes)"))
    case("header-huge", {"model.safetensors": st("{}", b"", hlen=(1 << 64) - 1)},
         (BAD, "header length 18446744073709551615 (at byte 0) runs past the end"))
    case("header-not-json", {"model.safetensors": st('{"a": {"dtype": "F32",')},
         (BAD, "model.safetensors: header is not valid JSON (error at byte"))
    case("truncated-7-bytes", {"model.safetensors": b"\x02\x00\x00\x00\x00\x00\x00"},
         (BAD, "model.safetensors: truncated: 7 bytes"))
    case("unknown-dtype", {"model.safetensors": st(
        '{"model.embed_tokens.weight":{"dtype":"Q4_0","shape":[4,4],"data_offsets":[0,16]}}',
        b"\0" * 16)}, (BAD, 'tensor "model.embed_tokens.weight": unknown dtype "Q4_0"'))
    case("offsets-outside", {"model.safetensors": st(
        '{"model.norm.weight":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}', b"\0" * 8)},
        (BAD, 'tensor "model.norm.weight": data_offsets [0, 16]'))
    case("size-mismatch", {"model.safetensors": st(
        '{"model.norm.weight":{"dtype":"F16","shape":[4],"data_offsets":[0,16]}}', b"\0" * 16)},
        (BAD, "hold 16 bytes but F16 shape of 4 elements needs 8"))
    case("overlap", {"model.safetensors": st(
        '{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},'
        '"b":{"dtype":"F32","shape":[4],"data_offsets":[12,28]}}', b"\0" * 28)},
        (BAD, "overlap"))
    case("index-escape", {"model.safetensors.index.json": json.dumps(
        {"weight_map": {"model.norm.weight": "../../../../../../etc/passwd"}})},
        (BAD, 'contains ".."'))
    case("index-absolute", {"model.safetensors.index.json": json.dumps(
        {"weight_map": {"model.norm.weight": "/etc/passwd"}})},
        (BAD, "is an absolute path"))
    case("config-not-json", {"model.safetensors": st("{}")},
         (BAD, "config.json: not valid JSON: syntax error at byte 2 (line 1, column 3)"),
         config=None)
    with open(os.path.join(ROOT, "config-not-json", "config.json"), "w") as f:
        f.write("{,}")
    case("config-unknown-arch", {"model.safetensors": st("{}")},
         (UNSUP, 'architecture "FalconForCausalLM" is not supported'),
         config=dict(CONFIG, architectures=["FalconForCausalLM"]))
    case("missing-tensor", {"model.safetensors": st(
        '{"model.norm.weight":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}', b"\0" * 16)},
        (BAD, 'model.safetensors: tensor "model.embed_tokens.weight" is missing'))


if __name__ == "__main__":
    main()
