"""The Python example of bindings/python/README.md runs as written (with the model
path pointed at a tiny random model)."""

import contextlib
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", "..", ".."))


class ReadmeTest(unittest.TestCase):
    def test_example(self):
        with open(os.path.join(HERE, "..", "README.md"), encoding="utf-8") as f:
            blocks = re.findall(r"```python\n(.*?)```", f.read(), re.S)
        self.assertTrue(blocks)
        code = blocks[0]
        self.assertLessEqual(len(code.strip().splitlines()), 10)
        self.assertIn('"models/demo"', code)
        tmp = tempfile.mkdtemp(prefix="llmgpu-readme-")
        try:
            model = os.path.join(tmp, "tiny")
            subprocess.run([sys.executable, os.path.join(ROOT, "tests", "tools", "mkmodel.py"),
                            "--out", model, "--layers", "1", "--hidden", "64", "--heads", "4",
                            "--kv-heads", "2", "--ff", "128", "--vocab", "320", "--seed", "7"],
                           check=True, stdout=subprocess.DEVNULL)
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                exec(compile(code.replace('"models/demo"', repr(model)), "README.md", "exec"), {})
            self.assertIn("LlamaForCausalLM", out.getvalue())
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
