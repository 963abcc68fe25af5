#!/usr/bin/env python3
"""make_chat_fixtures.py - expected chat-template renderings for tests/check_chat.c.

For every template x conversation x add_generation_prompt in
tests/fixtures/chat/conversations.json, render the conversation the way transformers'
tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=...) does and
write tests/fixtures/chat/expected.json (text, or the exception a template raised).

Engines (--engine):
  transformers  (default when importable) tokenizer directories go through
                AutoTokenizer.from_pretrained(dir).apply_chat_template(...); template files
                through transformers.utils.chat_template_utils' own compiled template with
                the manifest's bos_token / eos_token. An empty conversation goes through the
                compiled template as well (apply_chat_template itself indexes messages[0]).
  jinja2        transformers' Jinja environment rebuilt from its source (sandboxed,
                trim_blocks, lstrip_blocks, loopcontrols, {% generation %}, tojson with
                ensure_ascii=False, raise_exception, strftime_now); marks the output
                provisional.
strftime_now() is pinned to conversations.json's strftime_now_epoch (formatted as UTC) in
both engines, so the renderings are reproducible.

Offline: needs only the files under tests/ (run tests/tools/fetch_tokenizers.sh for the
tokenizer directories). Usage, from the repository root:
  python3 tests/tools/make_chat_fixtures.py [--engine transformers|jinja2] [--out PATH]
"""
import argparse
import datetime as _dt
import json
import os
import sys
import warnings

# jinja2 compiles templates to Python; literal nonsense in the edge cases makes Python warn
warnings.filterwarnings("ignore", category=SyntaxWarning)

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
FIXED = None  # datetime, set from the manifest


class _FixedDatetime(_dt.datetime):
    @classmethod
    def now(cls, tz=None):
        return FIXED if tz is None else FIXED.replace(tzinfo=_dt.timezone.utc).astimezone(tz)


def read_template(entry):
    if "tokenizer_dir" in entry:
        d = os.path.join(TESTS, entry["tokenizer_dir"])
        jpath = os.path.join(d, "chat_template.jinja")
        with open(os.path.join(d, "tokenizer_config.json"), encoding="utf-8") as f:
            cfg = json.load(f)
        tmpl = cfg.get("chat_template")
        if isinstance(tmpl, list):
            tmpl = next(t["template"] for t in tmpl if t.get("name") == "default")
        if tmpl is None and os.path.exists(jpath):
            with open(jpath, encoding="utf-8", newline="") as f:
                tmpl = f.read()

        def tok(key):
            v = cfg.get(key)
            return v.get("content") if isinstance(v, dict) else v

        return d, tmpl, tok("bos_token"), tok("eos_token")
    with open(os.path.join(TESTS, entry["path"]), encoding="utf-8", newline="") as f:
        return None, f.read(), entry.get("bos_token"), entry.get("eos_token")


def special_kwargs(bos, eos):
    kw = {}
    if bos is not None:
        kw["bos_token"] = bos
    if eos is not None:
        kw["eos_token"] = eos
    return kw


class Jinja2Engine:
    """transformers' _compile_jinja_template, rebuilt (transformers 4.4x-5.x)."""

    name = None

    def __init__(self):
        import jinja2
        from jinja2.ext import Extension
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        self.name = "jinja2 %s with transformers' chat-template environment (provisional)" % jinja2.__version__

        class AssistantTracker(Extension):
            tags = {"generation"}

            def parse(self, parser):
                lineno = next(parser.stream).lineno
                body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
                return jinja2.nodes.CallBlock(self.call_method("_render", []), [], [], body).set_lineno(lineno)

            def _render(self, caller):
                return caller()

        def raise_exception(message):
            raise jinja2.exceptions.TemplateError(message)

        def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
            return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                              sort_keys=sort_keys)

        def strftime_now(fmt):
            return _FixedDatetime.now().strftime(fmt)

        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                            extensions=[AssistantTracker, jinja2.ext.loopcontrols])
        env.filters["tojson"] = tojson
        env.globals["raise_exception"] = raise_exception
        env.globals["strftime_now"] = strftime_now
        self.env = env

    def render(self, tok_dir, tmpl, bos, eos, messages, gen):
        t = self.env.from_string(tmpl)
        return t.render(messages=messages, tools=None, documents=None, add_generation_prompt=gen,
                        **special_kwargs(bos, eos))


class TransformersEngine:
    def __init__(self):
        import transformers
        from transformers.utils import chat_template_utils as ctu

        self.name = "transformers %s" % transformers.__version__
        self.ctu = ctu
        ctu.datetime = _FixedDatetime  # strftime_now() calls datetime.now()
        self.toks = {}

    def _raw(self, tmpl, messages, gen, kw):
        ctu = self.ctu
        if hasattr(ctu, "render_jinja_template"):
            out, _ = ctu.render_jinja_template(conversations=[messages], chat_template=tmpl,
                                               add_generation_prompt=gen, tools=None, documents=None, **kw)
            return out[0]
        return ctu._compile_jinja_template(tmpl).render(messages=messages, tools=None, documents=None,
                                                        add_generation_prompt=gen, **kw)

    def render(self, tok_dir, tmpl, bos, eos, messages, gen):
        if tok_dir is None:
            return self._raw(tmpl, messages, gen, special_kwargs(bos, eos))
        if tok_dir not in self.toks:
            from transformers import AutoTokenizer
            self.toks[tok_dir] = AutoTokenizer.from_pretrained(tok_dir)
        tok = self.toks[tok_dir]
        if not messages:
            kw = {k: v for k, v in tok.special_tokens_map.items()}
            return self._raw(tmpl, messages, gen, kw)
        return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen)


def main():
    global FIXED
    ap = argparse.ArgumentParser()
    ap.add_argument("--engine", choices=["transformers", "jinja2"])
    ap.add_argument("--cases", default=os.path.join(TESTS, "fixtures/chat/conversations.json"))
    ap.add_argument("--out", default=os.path.join(TESTS, "fixtures/chat/expected.json"))
    args = ap.parse_args()
    with open(args.cases, encoding="utf-8") as f:
        cases = json.load(f)
    FIXED = _dt.datetime.fromtimestamp(cases["strftime_now_epoch"], _dt.timezone.utc).replace(tzinfo=None)
    engine_name = args.engine
    if engine_name is None:
        try:
            import transformers  # noqa: F401
            engine_name = "transformers"
        except ImportError:
            engine_name = "jinja2"
    engine = TransformersEngine() if engine_name == "transformers" else Jinja2Engine()
    out = []
    for t in cases["templates"]:
        try:
            tok_dir, tmpl, bos, eos = read_template(t)
        except OSError as e:
            if t.get("optional"):
                print("make_chat_fixtures: skipping optional %s: %s" % (t["name"], e))
                continue
            sys.exit("make_chat_fixtures: %s: %s (run tests/tools/fetch_tokenizers.sh)" % (t["name"], e))
        for conv in cases["conversations"]:
            for gen in (False, True):
                rec = {"template": t["name"], "conversation": conv["name"], "add_generation_prompt": gen}
                try:
                    rec["text"] = engine.render(tok_dir, tmpl, bos, eos, conv["messages"], gen)
                except Exception as e:  # the template raised: the C renderer must fail too
                    rec["error"] = type(e).__name__
                    rec["message"] = str(e)
                out.append(rec)
    doc = {
        "_comment": "Generated by tests/tools/make_chat_fixtures.py from conversations.json; do not edit.",
        "engine": engine.name,
        "provisional": engine_name != "transformers",
        "cases": out,
    }
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1, ensure_ascii=False)
        f.write("\n")
    n_err = sum(1 for r in out if "error" in r)
    print("make_chat_fixtures: %d cases (%d raise) with %s -> %s" % (len(out), n_err, engine.name, args.out))


if __name__ == "__main__":
    main()
