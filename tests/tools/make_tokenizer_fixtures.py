#!/usr/bin/env python3
"""Authoritative tokenizer fixtures from Python transformers (offline, local dirs only).

Fixtures:
    python3 tests/tools/make_tokenizer_fixtures.py \
        --corpus tests/fixtures/tokenizer/corpus.jsonl --out tests/fixtures/tokenizer/py \
        tests/fixtures/tokenizers/npm/llama2 tests/fixtures/tokenizers/npm/llama3 \
        tests/fixtures/tokenizers/npm/qwen3
  writes <out>/<dirname>.jsonl: a header line {"header": true, versions...}, then one line
  per corpus entry:
    {"name", "ids": tok(text).input_ids, "ids_nospecial": tok(text, add_special_tokens=False),
     "ids_split": tok(text, add_special_tokens=False, split_special_tokens=True) (or null),
     "decoded": tok.decode(ids), "decoded_skip": tok.decode(ids, skip_special_tokens=True),
     "decoded_b64", "decoded_skip_b64": the same as base64 of their UTF-8 bytes,
     "ids_tokenizers": tokenizers.Tokenizer.from_file(tokenizer.json).encode(text,
         add_special_tokens=False).ids (the file as written, whatever transformers does)}
  where text = raw_bytes.decode("utf-8", errors="replace").

Benchmark (HF tokenizers, one thread):
    python3 tests/tools/make_tokenizer_fixtures.py --bench DIR [DIR...]
  prints one JSON line per tokenizer with MB/s on a generated English and CJK text
  (the same generator as tests/tools/bench_tokenizer.c, so numbers are comparable).
"""
import argparse
import base64
import json
import os
import sys
import time

os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# ---- deterministic bench text, mirrored in tests/tools/bench_tokenizer.c ----
MASK64 = (1 << 64) - 1
WORDS = ("the of and to in is was for that with as on by at from his her it an were are "
         "which this be or has had not but also first new one their after its who two they "
         "have been other all time year city during would some there more into school "
         "world state government between people under these years however called most "
         "company used known number may same only later such including while them work "
         "university national where part many through family second when both three "
         "because example language computer running quickly beautiful important").split()


class Lcg:
    def __init__(self, seed):
        self.x = seed & MASK64

    def next(self):
        self.x = (self.x * 6364136223846793005 + 1442695040888963407) & MASK64
        return self.x >> 33


def bench_english(nbytes):
    r = Lcg(42)
    out = []
    n = 0
    sent = 0
    while n < nbytes:
        k = 5 + r.next() % 16
        words = []
        for i in range(k):
            w = WORDS[r.next() % len(WORDS)]
            if i == 0:
                w = w[:1].upper() + w[1:]
            if r.next() % 23 == 0:
                w = str(r.next() % 100000)
            words.append(w)
        s = " ".join(words) + (", " if r.next() % 5 == 0 else ". ")
        sent += 1
        if sent % 8 == 0:
            s += "\n\n"
        out.append(s)
        n += len(s)
    return "".join(out)


def bench_cjk(nbytes):
    r = Lcg(7)
    out = []
    n = 0
    while n < nbytes:
        k = 8 + r.next() % 24
        s = "".join(chr(0x4E00 + r.next() % 0x5000) for _ in range(k))
        s += "，" if r.next() % 3 == 0 else "。"
        if r.next() % 10 == 0:
            s += "\n"
        out.append(s)
        n += len(s.encode("utf-8"))
    return "".join(out)


def versions():
    import transformers
    import tokenizers
    return {"transformers": transformers.__version__, "tokenizers": tokenizers.__version__,
            "python": sys.version.split()[0]}


def load(d):
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(d, local_files_only=True)


def b64(s):
    """The exact UTF-8 bytes of a decoded string (JSON strings with NULs are fragile)."""
    return base64.b64encode(s.encode("utf-8", errors="surrogatepass")).decode("ascii")


def make_fixtures(args):
    entries = []
    with open(args.corpus, "rb") as f:
        for line in f:
            line = line.strip()
            if line:
                entries.append(json.loads(line))
    os.makedirs(args.out, exist_ok=True)
    for d in args.dirs:
        name = os.path.basename(os.path.normpath(d))
        tok = load(d)
        from tokenizers import Tokenizer
        raw_tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
        path = os.path.join(args.out, name + ".jsonl")
        with open(path, "w", encoding="utf-8") as out:
            hdr = {"header": True, "tokenizer": name, "class": type(tok).__name__,
                   "generator": "python"}
            hdr.update(versions())
            out.write(json.dumps(hdr, ensure_ascii=False) + "\n")
            for e in entries:
                text = base64.b64decode(e["b64"]).decode("utf-8", errors="replace")
                ids = tok(text).input_ids
                ids_ns = tok(text, add_special_tokens=False).input_ids
                try:
                    ids_split = tok(text, add_special_tokens=False,
                                    split_special_tokens=True).input_ids
                except Exception:  # older transformers: no split_special_tokens
                    ids_split = None
                # the tokenizers library on tokenizer.json as written (transformers 4
                # semantics even when transformers 5 rebuilds the pipeline)
                ids_raw = raw_tok.encode(text, add_special_tokens=False).ids
                dec = tok.decode(ids)
                dec_skip = tok.decode(ids, skip_special_tokens=True)
                rec = {"name": e["name"], "ids": ids, "ids_nospecial": ids_ns,
                       "ids_split": ids_split, "decoded": dec, "decoded_skip": dec_skip,
                       "decoded_b64": b64(dec), "decoded_skip_b64": b64(dec_skip),
                       "ids_tokenizers": ids_raw}
                out.write(json.dumps(rec, ensure_ascii=False) + "\n")
        print("wrote %s (%d entries)" % (path, len(entries)), file=sys.stderr)


def bench(args):
    from tokenizers import Tokenizer
    texts = {"english": bench_english(args.bench_bytes), "cjk": bench_cjk(args.bench_bytes)}
    for d in args.dirs:
        tk = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
        res = {"tokenizer": os.path.basename(os.path.normpath(d)), "threads": 1}
        res.update(versions())
        for tname, text in texts.items():
            # one paragraph per encode() call so the work is single-threaded
            paras = text.split("\n")
            nb = len(text.encode("utf-8"))
            best = None
            ntok = 0
            for _ in range(args.bench_reps):
                t0 = time.perf_counter()
                ntok = 0
                for p in paras:
                    ntok += len(tk.encode(p, add_special_tokens=False).ids)
                dt = time.perf_counter() - t0
                best = dt if best is None else min(best, dt)
            res[tname] = {"bytes": nb, "tokens": ntok, "seconds": round(best, 4),
                          "MBps": round(nb / best / 1e6, 3)}
        print(json.dumps(res))


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dirs", nargs="+", help="local tokenizer directories")
    ap.add_argument("--corpus", default="tests/fixtures/tokenizer/corpus.jsonl")
    ap.add_argument("--out", default="tests/fixtures/tokenizer/py")
    ap.add_argument("--bench", action="store_true", help="time HF tokenizers instead")
    ap.add_argument("--bench-bytes", type=int, default=8 << 20)
    ap.add_argument("--bench-reps", type=int, default=3)
    args = ap.parse_args()
    if args.bench:
        bench(args)
    else:
        make_fixtures(args)


if __name__ == "__main__":
    main()
