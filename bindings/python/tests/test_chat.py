"""Chat templates through the bindings: Model.apply_chat_template and Session.chat on a
tiny random model (tests/tools/mkmodel.py, whose tokenizer_config.json carries a small
chat template), on whatever Vulkan device there is (lavapipe in CI)."""

import json
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
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]


class ChatTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="llmgpu-py-chat-")
        cls.model_dir = os.path.join(cls.tmp, "tiny")
        subprocess.run([sys.executable, MKMODEL, "--out", cls.model_dir, "--arch", "llama",
                        "--dtype", "f16", "--layers", "2", "--hidden", "64", "--heads", "4",
                        "--kv-heads", "2", "--ff", "128", "--vocab", "320", "--seed", "7"],
                       check=True, stdout=subprocess.DEVNULL)
        cls.ctx = llmgpu.Context()
        cls.model = llmgpu.Model(cls.model_dir, context=cls.ctx)

    @classmethod
    def tearDownClass(cls):
        cls.ctx.close()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_apply_chat_template(self):
        self.assertEqual(self.model.apply_chat_template(MESSAGES),
                         "<|system|>\nBe brief.</s>\n<|user|>\nHi</s>\n<|assistant|>\n")
        self.assertEqual(self.model.apply_chat_template(MESSAGES[1:], add_generation_prompt=False),
                         "<|user|>\nHi</s>\n")
        self.assertEqual(self.model.apply_chat_template([]), "<|assistant|>\n")
        long = "é" * 10000
        self.assertEqual(self.model.apply_chat_template([{"role": "user", "content": long}], False),
                         "<|user|>\n" + long + "</s>\n")
        # None content: the template's '+' raises a TypeError, as in transformers
        with self.assertRaises(llmgpu.LlmgpuError) as cm:
            self.model.apply_chat_template([{"role": "user", "content": None}])
        self.assertEqual(cm.exception.status, llmgpu.Status.ERR_INVALID_ARGUMENT)

    def test_template_file_and_raise(self):
        # chat_template.jinja beside a tokenizer_config.json without chat_template
        d = os.path.join(self.tmp, "jinja")
        shutil.copytree(self.model_dir, d)
        with open(os.path.join(d, "tokenizer_config.json"), encoding="utf-8") as f:
            cfg = json.load(f)
        del cfg["chat_template"]
        with open(os.path.join(d, "tokenizer_config.json"), "w", encoding="utf-8") as f:
            json.dump(cfg, f)
        with open(os.path.join(d, "chat_template.jinja"), "w", encoding="utf-8") as f:
            f.write("{%- for m in messages %}{% if m.role == 'system' %}"
                    "{{ raise_exception('System role not supported') }}{% endif %}"
                    "[{{ m.role }}] {{ m.content | trim }}\n{% endfor %}\n")
        with llmgpu.Model(d, context=self.ctx, vocab_only=True) as m:
            self.assertEqual(m.apply_chat_template(MESSAGES[1:] + [{"role": "assistant", "content": " ok "}]),
                             "[user] Hi\n[assistant] ok\n")
            with self.assertRaises(llmgpu.LlmgpuError) as cm:
                m.apply_chat_template(MESSAGES)
            self.assertEqual(cm.exception.status, llmgpu.Status.ERR_INVALID_ARGUMENT)
            self.assertIn("System role not supported", str(cm.exception))
        # no template at all
        os.remove(os.path.join(d, "chat_template.jinja"))
        with llmgpu.Model(d, context=self.ctx, vocab_only=True) as m:
            with self.assertRaises(llmgpu.LlmgpuError) as cm:
                m.apply_chat_template(MESSAGES)
            self.assertEqual(cm.exception.status, llmgpu.Status.ERR_UNSUPPORTED)

    def test_session_chat(self):
        with self.model.session(n_ctx=256) as s:
            resets = []
            real_reset = s.reset
            s.reset = lambda: (resets.append(1), real_reset())[1]
            s.chat(MESSAGES, max_tokens=0)
            prompt1 = self.model.tokenize(self.model.apply_chat_template(MESSAGES), add_special=False)
            self.assertEqual(s.tokens, prompt1)
            reply = s.chat(MESSAGES, max_tokens=8)
            self.assertIsInstance(reply, str)
            # a later turn of the same conversation reuses the KV cache when its tokens
            # extend what the session holds
            msgs2 = MESSAGES + [{"role": "assistant", "content": "x"}, {"role": "user", "content": "y"}]
            s.reset()
            s.chat(MESSAGES, max_tokens=0)
            n_resets = len(resets)
            ids2 = self.model.tokenize(self.model.apply_chat_template(msgs2), add_special=False)
            s.chat(msgs2, max_tokens=4)
            self.assertEqual(s.tokens[:len(ids2)], ids2)
            if ids2[:len(prompt1)] == prompt1:
                self.assertEqual(len(resets), n_resets, "the first turn's tokens were prefilled again")
            # a different conversation starts over
            s.chat([{"role": "user", "content": "another"}], max_tokens=2)
            self.assertGreater(len(resets), n_resets)


if __name__ == "__main__":
    unittest.main()
