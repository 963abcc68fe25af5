"""End-to-end tests of the bindings on a tiny random model (tests/tools/mkmodel.py)
on whatever Vulkan device there is (lavapipe in CI). One context and one model
are shared by all tests to keep the run short."""

import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import llmgpu

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", "..", ".."))
MKMODEL = os.path.join(ROOT, "tests", "tools", "mkmodel.py")
PROMPT = "Hello world"


class ModelTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="llmgpu-py-")
        cls.model_dir = os.path.join(cls.tmp, "tiny")
        subprocess.run([sys.executable, MKMODEL, "--out", cls.model_dir, "--arch", "llama",
                        "--dtype", "f16", "--layers", "2", "--hidden", "64", "--heads", "4",
                        "--kv-heads", "2", "--ff", "128", "--vocab", "320", "--seed", "5"],
                       check=True, stdout=subprocess.DEVNULL)
        cls.ctx = llmgpu.Context()
        cls.model = llmgpu.Model(cls.model_dir, context=cls.ctx)
        cls.session = cls.model.session(n_ctx=128)

    @classmethod
    def tearDownClass(cls):
        cls.ctx.close()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        self.session.reset()

    # ---- model, tokenizer

    def test_info(self):
        info = self.model.info
        self.assertEqual(info.architecture, "LlamaForCausalLM")
        self.assertEqual((info.n_layer, info.n_embd, info.n_head, info.n_kv_head, info.n_ff),
                         (2, 64, 4, 2, 128))
        self.assertEqual(info.n_vocab, 320)
        self.assertGreater(info.weight_bytes, 0)
        self.assertLessEqual(self.model.n_tokens, info.n_vocab)

    def test_devices(self):
        devs = llmgpu.devices()
        self.assertTrue(devs)
        self.assertIn(self.ctx.device_info.name, [d.name for d in devs])
        self.assertIsInstance(llmgpu.version(), str)

    def test_tokenize_round_trip(self):
        for text in ["Hello world", "Once upon a time, there was a tiny model.", "", "a  b\nc"]:
            with self.subTest(text=text):
                ids = self.model.tokenize(text)
                self.assertTrue(all(isinstance(i, int) for i in ids))
                self.assertEqual(self.model.detokenize(ids, skip_special=True), text)
                plain = self.model.tokenize(text, add_special=False)
                self.assertEqual(self.model.detokenize(plain), text)
        ids = self.model.tokenize(PROMPT)
        if self.model.bos is not None:
            self.assertEqual(ids[0], self.model.bos)
            self.assertNotEqual(self.model.tokenize(PROMPT, add_special=False)[0],
                                self.model.bos)

    def test_vocab_only(self):
        with llmgpu.Model(self.model_dir, context=self.ctx, vocab_only=True) as m:
            self.assertEqual(m.tokenize(PROMPT), self.model.tokenize(PROMPT))
            with self.assertRaises(llmgpu.LlmgpuError):
                m.session()

    # ---- sessions

    def test_logits_and_greedy(self):
        s = self.session
        with self.assertRaises(llmgpu.LlmgpuError) as cm:
            s.logits()  # nothing evaluated yet
        self.assertEqual(cm.exception.name, "ERR_INVALID_ARGUMENT")
        ids = self.model.tokenize(PROMPT)
        s.prefill(ids)
        self.assertEqual(s.position, len(ids))
        logits = s.logits()
        self.assertEqual(len(logits), self.model.info.n_vocab)
        best = max(range(len(logits)), key=lambda i: (logits[i], -i))
        tok = s.sample_greedy()
        self.assertEqual(tok, best)
        s.decode(tok)
        self.assertEqual(s.position, len(ids) + 1)

    def test_greedy_generate_is_deterministic(self):
        a = self.session.generate(PROMPT, max_tokens=16)
        toks_a = list(self.session.last_tokens)
        self.session.reset()
        b = self.session.generate(PROMPT, max_tokens=16)
        self.assertEqual(a, b)
        self.assertEqual(toks_a, self.session.last_tokens)
        self.assertTrue(toks_a)

    def test_max_tokens(self):
        n_prompt = len(self.model.tokenize(PROMPT))
        self.session.generate(PROMPT, max_tokens=8)
        self.assertLessEqual(len(self.session.last_tokens), 8)
        self.assertIn(self.session.stop_reason, ("length", "eos"))
        if self.session.stop_reason == "length":
            self.assertEqual(len(self.session.last_tokens), 8)
        self.assertEqual(self.session.position, n_prompt + len(self.session.last_tokens))
        self.assertEqual(self.session.tokens,
                         self.model.tokenize(PROMPT) + self.session.last_tokens)

    def test_stream_equals_generate(self):
        text = self.session.generate(PROMPT, max_tokens=24)
        toks = list(self.session.last_tokens)
        self.session.reset()
        pieces = list(self.session.stream(PROMPT, max_tokens=24))
        self.assertTrue(all(isinstance(p, str) and p for p in pieces))
        # only the final flush may end in U+FFFD (an incomplete character)
        self.assertFalse(any(p.endswith("\ufffd") for p in pieces[:-1]))
        self.assertEqual("".join(pieces), text)
        self.assertEqual(self.session.last_tokens, toks)
        # The generated text is the suffix of the decoded prompt+generated ids, unless
        # the random model made invalid UTF-8 (byte-fallback tokens decoded together
        # turn earlier, already streamed bytes into U+FFFD).
        full = self.model.detokenize(self.model.tokenize(PROMPT) + toks, skip_special=True)
        if "\ufffd" not in full:
            self.assertTrue(full.endswith(text))

    def test_same_ids_as_cli(self):
        lib = os.environ.get("LLMGPU_LIBRARY", "")
        cli = os.path.join(os.path.dirname(lib) if lib else os.path.join(ROOT, "build"),
                           "llmgpu")
        if not os.access(cli, os.X_OK):
            self.skipTest("no CLI at %s" % cli)
        out = subprocess.run([cli, "generate", "-m", self.model_dir, "-p", PROMPT, "-n", "8",
                              "--temp", "0", "--ids"], check=True, capture_output=True,
                             text=True).stdout
        self.session.generate(PROMPT, max_tokens=8)
        self.assertEqual([int(t) for t in out.split()], self.session.last_tokens)

    def test_stop_string(self):
        text = self.session.generate(PROMPT, max_tokens=24)
        if len(text) < 6:
            self.skipTest("generated text too short for a stop string")
        stop = text[3:5]
        self.session.reset()
        cut = self.session.generate(PROMPT, max_tokens=24, stop=[stop, "\x00never"])
        self.assertEqual(cut, text[:text.find(stop)])
        self.assertEqual(self.session.stop_reason, "stop")
        self.session.reset()
        self.assertEqual("".join(self.session.stream(PROMPT, max_tokens=24, stop=stop)), cut)

    def test_temperature_seed(self):
        a = self.session.generate(PROMPT, max_tokens=12, temperature=0.9, seed=42)
        ta = list(self.session.last_tokens)
        self.session.reset()
        b = self.session.generate(PROMPT, max_tokens=12, temperature=0.9, seed=42)
        self.assertEqual((a, ta), (b, self.session.last_tokens))
        self.assertTrue(all(0 <= t < self.model.info.n_vocab for t in ta))

    def test_kv_type(self):
        # head_dim 16: an 8-bit cache needs a multiple of 32
        with self.assertRaises(llmgpu.LlmgpuError) as cm:
            self.model.session(n_ctx=32, kv_type="q8_0")
        self.assertEqual(cm.exception.name, "ERR_UNSUPPORTED")
        self.assertIn("multiple of 32", cm.exception.message)
        with self.assertRaises(KeyError):
            self.model.session(n_ctx=32, kv_type="q4")
        d32 = os.path.join(self.tmp, "hd32")
        subprocess.run([sys.executable, MKMODEL, "--out", d32, "--arch", "llama", "--dtype",
                        "f16", "--layers", "1", "--hidden", "64", "--heads", "2", "--kv-heads",
                        "1", "--ff", "64", "--vocab", "320", "--seed", "6"],
                       check=True, stdout=subprocess.DEVNULL)
        with llmgpu.Model(d32, context=self.ctx) as m:
            with m.session(n_ctx=64, kv_type=llmgpu.KvType.Q8_0) as s, \
                    m.session(n_ctx=64, kv_type="f16") as f:
                n = len(m.tokenize(PROMPT))
                s.generate(PROMPT, max_tokens=6, temperature=0)
                f.generate(PROMPT, max_tokens=6, temperature=0)
                self.assertTrue(s.last_tokens and f.last_tokens)
                self.assertEqual(s.position, n + len(s.last_tokens))
                self.assertTrue(all(0 <= t < m.info.n_vocab for t in s.last_tokens))

    def test_generate_continues_session(self):
        self.session.generate(PROMPT, max_tokens=4)
        pos = self.session.position
        self.session.generate(" and more", max_tokens=4)
        n_more = len(self.model.tokenize(" and more", add_special=False))
        self.assertEqual(self.session.position,
                         pos + n_more + len(self.session.last_tokens))

    def test_early_close_of_stream(self):
        it = self.session.stream(PROMPT, max_tokens=24)
        next(it)
        it.close()
        n = self.session.position
        self.assertEqual(n, len(self.session.tokens))
        self.session.generate("", max_tokens=2)  # continues after what was generated
        self.assertEqual(self.session.position, n + len(self.session.last_tokens))

    def test_profile(self):
        with self.assertRaises(llmgpu.LlmgpuError) as cm:
            self.session.profile()  # the context was made without profile=True
        self.assertEqual(cm.exception.name, "ERR_UNSUPPORTED")
        with llmgpu.Context(profile=True) as ctx:
            with llmgpu.Model(self.model_dir, context=ctx) as m, m.session(n_ctx=32) as s:
                s.generate(PROMPT, max_tokens=3)
                try:
                    entries = s.profile()
                except llmgpu.LlmgpuError as e:
                    if e.name == "ERR_UNSUPPORTED":
                        self.skipTest("no timestamps: " + e.message)
                    raise
                self.assertTrue(entries)
                self.assertTrue(all(isinstance(e.name, str) and e.name for e in entries))
                self.assertTrue(any(e.count > 0 for e in entries))
                by = {e.name: e for e in entries}
                self.assertGreater(by["norm+qkv"].bytes, 0)
                self.assertGreater(by["attention"].bytes, 0)
                self.assertGreater(by["norm+qkv"].barriers, 0)
                s.profile_reset()
                self.assertTrue(all(e.ns == 0 and e.count == 0 and e.bytes == 0 and
                                    e.barriers == 0 for e in s.profile()))

    # ---- errors

    def test_progress_abort(self):
        calls = []

        def progress(done, total):
            calls.append((done, total))
            return True  # abort

        with self.assertRaises(llmgpu.LlmgpuError) as cm:
            llmgpu.Model(self.model_dir, context=self.ctx, progress=progress)
        self.assertEqual(cm.exception.name, "ERR_ABORTED")
        self.assertTrue(calls)

        def broken(done, total):
            raise KeyError("from the callback")

        with self.assertRaises(KeyError):
            llmgpu.Model(self.model_dir, context=self.ctx, progress=broken)
        seen = []
        with llmgpu.Model(self.model_dir, context=self.ctx,
                          progress=lambda d, t: seen.append((d, t))) as m:
            self.assertEqual(m.info.n_layer, 2)
        self.assertTrue(seen and seen[-1][0] == seen[-1][1])

    def test_errors_are_logged(self):
        path = os.path.join(self.tmp, "also-missing")
        with self.assertLogs("llmgpu", "ERROR") as logs:
            with self.assertRaises(llmgpu.LlmgpuError):
                llmgpu.Model(path, context=self.ctx)
        self.assertTrue(any(path in line for line in logs.output))


    def test_missing_model_dir(self):
        path = os.path.join(self.tmp, "no-such-model")
        with self.assertRaises(llmgpu.LlmgpuError) as cm:
            llmgpu.Model(path, context=self.ctx)
        e = cm.exception
        self.assertEqual(e.name, "ERR_IO")
        self.assertEqual(e.status, llmgpu.Status.ERR_IO)
        self.assertIn(path, e.message)
        self.assertIn(path, str(e))
        self.assertTrue(e.log)

    def test_context_full(self):
        with self.model.session(n_ctx=16) as s:
            self.assertEqual(s.n_ctx, 16)
            ids = self.model.tokenize(" ".join(["word"] * 20))
            self.assertGreater(len(ids), 16)
            with self.assertRaises(llmgpu.LlmgpuError) as cm:
                s.prefill(ids)
            self.assertEqual(cm.exception.name, "ERR_CONTEXT_FULL")
            self.assertEqual(cm.exception.status, llmgpu.Status.ERR_CONTEXT_FULL)
            self.assertIn("context full", cm.exception.message)
            self.assertEqual(s.position, 0)  # nothing was run
            # still usable
            s.prefill(ids[:10])
            self.assertEqual(s.position, 10)
            with self.assertRaises(llmgpu.LlmgpuError) as cm:
                s.generate([], max_tokens=100)
            self.assertEqual(cm.exception.name, "ERR_CONTEXT_FULL")
            self.assertLessEqual(s.position, 17)
            s.reset()
            self.assertEqual(s.position, 0)
            self.assertTrue(s.generate(PROMPT, max_tokens=4) is not None)

    def test_with_closes(self):
        with self.model.session(n_ctx=32) as s:
            s.prefill(self.model.tokenize(PROMPT))
        self.assertTrue(s.closed)
        with self.assertRaises(ValueError):
            s.position
        s.close()  # twice is fine
        with llmgpu.Model(self.model_dir, context=self.ctx) as m:
            s2 = m.session(n_ctx=32)
        self.assertTrue(m.closed)
        self.assertTrue(s2.closed)  # closing a model closes its sessions
        self.assertFalse(self.ctx.closed)
        with llmgpu.Context() as c:
            m2 = llmgpu.Model(self.model_dir, context=c)
        self.assertTrue(c.closed and m2.closed)

    def test_default_context(self):
        m = llmgpu.Model(self.model_dir, vocab_only=True)
        self.assertFalse(m.context.closed)
        ctx = m.context
        m.close()
        self.assertTrue(ctx.closed)


if __name__ == "__main__":
    unittest.main()
