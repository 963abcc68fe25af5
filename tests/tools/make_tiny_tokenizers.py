#!/usr/bin/env python3
"""Write the hand-made tokenizer.json files of tests/check_tokenizer.c (Core TCase).

    python3 tests/tools/make_tiny_tokenizers.py tests/fixtures/tokenizer/tiny
Small enough that the expected ids in the tests can be derived by hand.
"""
import json
import os
import sys

LLAMA3_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
             r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def added(i, content, special=True, **kw):
    d = {"id": i, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": False, "special": special}
    d.update(kw)
    return d


def tiny_bl():
    """Byte-level BPE like Llama 3: id b is the byte-level char of byte b."""
    b2u = bytes_to_unicode()
    vocab = {b2u[b]: b for b in range(256)}
    extra = ["\u0120t", "he", "\u0120the", "ll", "hell", "hello", "\u0120hello"]
    for i, s in enumerate(extra):
        vocab[s] = 256 + i
    merges = ["\u0120 t", ["h", "e"], "\u0120t he", "l l", ["he", "ll"], "hell o", "\u0120 hello"]
    return {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [
            added(300, "<|bos|>"), added(301, "<|eot|>"),
            added(302, "<L>", special=False, lstrip=True),
            added(303, "<R>", special=False, rstrip=True),
            added(304, "word", special=False, single_word=True),
        ],
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": LLAMA3_RE}, "behavior": "Isolated",
             "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
             "use_regex": False}]},
        "post_processor": {"type": "Sequence", "processors": [
            {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False,
             "use_regex": True},
            {"type": "TemplateProcessing",
             "single": [{"SpecialToken": {"id": "<|bos|>", "type_id": 0}},
                        {"Sequence": {"id": "A", "type_id": 0}}],
             "pair": [{"Sequence": {"id": "A", "type_id": 0}},
                      {"Sequence": {"id": "B", "type_id": 1}}],
             "special_tokens": {"<|bos|>": {"id": "<|bos|>", "ids": [300],
                                            "tokens": ["<|bos|>"]}}}]},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                    "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": False, "byte_fallback": False, "ignore_merges": True,
                  "vocab": vocab, "merges": merges},
    }


def tiny_sp(byte_fallback=True):
    """SentencePiece-style BPE like Llama 2 / Mistral with a Metaspace pre-tokenizer."""
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab["<0x%02X>" % b] = 3 + b
    for s in ["\u2581", "a", "b", "\u2581a", "ab", "\u2581ab", "c"]:
        vocab[s] = len(vocab)
    return {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [added(0, "<unk>"), added(1, "<s>"), added(2, "</s>")],
        "normalizer": None,
        "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581",
                          "prepend_scheme": "first", "split": False},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"Sequence": {"id": "A", "type_id": 0}},
                     {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>",
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": True, "byte_fallback": byte_fallback,
                  "vocab": vocab, "merges": ["\u2581 a", "a b", "\u2581a b"]},
    }


def tiny_misc():
    """Normalizers and pre-tokenizers that Llama models do not use, no decoder."""
    vocab = {"[UNK]": 0}
    for c in "abcdefghijklmnopqrstuvwxyz0123456789":
        vocab[c] = len(vocab)
    vocab["ab"] = len(vocab)
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": [],
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "NFKC"}, {"type": "Lowercase"},
            {"type": "Replace", "pattern": {"Regex": "\\s+"}, "content": " "},
            {"type": "Strip", "strip_left": True, "strip_right": True}]},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "WhitespaceSplit"}, {"type": "Digits", "individual_digits": True}]},
        "post_processor": None, "decoder": None,
        "model": {"type": "BPE", "unk_token": "[UNK]", "fuse_unk": False,
                  "vocab": vocab, "merges": [["a", "b"]]},
    }


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/tokenizer/tiny"
    os.makedirs(out, exist_ok=True)
    files = {"bytelevel/tokenizer.json": tiny_bl(), "sp/tokenizer.json": tiny_sp(),
             "sp_unk/tokenizer.json": tiny_sp(False), "misc/tokenizer.json": tiny_misc(),
             "sp_map/tokenizer.json": tiny_sp(False)}
    cfgs = {"sp/tokenizer_config.json": {"add_bos_token": True, "add_eos_token": True,
                                         "bos_token": "<s>", "eos_token": "</s>",
                                         "tokenizer_class": "LlamaTokenizer", "legacy": True,
                                         "clean_up_tokenization_spaces": False,
                                         "chat_template": "{{ bos_token }}{{ messages }}"},
            "bytelevel/tokenizer_config.json": {"bos_token": "<|bos|>", "eos_token": "<|eot|>",
                                                "clean_up_tokenization_spaces": True,
                                                "tokenizer_class": "PreTrainedTokenizerFast"},
            "bytelevel/generation_config.json": {"bos_token_id": 300, "eos_token_id": [301, 304]},
            # legacy layout: special_tokens_map.json overrides a config without
            # added_tokens_decoder
            "sp_map/tokenizer_config.json": {"tokenizer_class": "LlamaTokenizer",
                                             "add_bos_token": True, "add_eos_token": True,
                                             "eos_token": "<unk>", "legacy": False},
            "sp_map/special_tokens_map.json": {"bos_token": {"content": "<s>"},
                                               "eos_token": "</s>"}}
    for name, obj in list(files.items()) + list(cfgs.items()):
        path = os.path.join(out, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(obj, f, ensure_ascii=False, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
