"""The ctypes mirror must match include/llmgpu.h: enum values, flag bits, the
function list, struct field names, sizes and offsets (sizes and offsets as the C
compiler sees them)."""

import ctypes
import os
import re
import shutil
import subprocess
import tempfile
import unittest

from llmgpu import _capi

HERE = os.path.dirname(os.path.abspath(__file__))
INCLUDE = os.path.normpath(os.path.join(HERE, "..", "..", "..", "include"))
HEADER = os.path.join(INCLUDE, "llmgpu.h")


def _source():
    with open(HEADER, encoding="utf-8") as f:
        text = f.read()
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", " ", text)


def _enums(src):
    out = {}
    for name, body in re.findall(r"enum\s+(llmgpu_\w+)\s*\{(.*?)\}\s*;", src, re.S):
        members = {}
        for m, v in re.findall(r"\b(LLMGPU_\w+)\s*=\s*(-?(?:0x[0-9A-Fa-f]+|\d+))", body):
            members[m] = int(v, 0)
        out["enum " + name] = members
    return out


def _structs(src):
    out = {}
    for name, body in re.findall(r"struct\s+(llmgpu_\w+)\s*\{(.*?)\}\s*;", src, re.S):
        fields = []
        for decl in body.split(";"):
            decl = decl.strip()
            if not decl:
                continue
            m = re.search(r"\(\s*\*\s*(\w+)\s*\)", decl) or re.search(r"(\w+)\s*(?:\[[^\]]*\])?$", decl)
            fields.append(m.group(1))
        out[name] = fields
    return out


class HeaderTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.src = _source()

    def test_version_major(self):
        m = re.search(r"#define\s+LLMGPU_VERSION_MAJOR\s+(\d+)", self.src)
        self.assertEqual(int(m.group(1)), _capi.VERSION_MAJOR)
        self.assertEqual(_capi.SONAME, "libllmgpu.so.%s" % m.group(1))

    def test_enums(self):
        enums = _enums(self.src)
        self.assertEqual(set(enums), set(_capi.ENUM_PREFIXES),
                         "every enum of the header must be mirrored")
        for ename, members in enums.items():
            prefix, cls = _capi.ENUM_PREFIXES[ename]
            seen = set()
            for cname, value in members.items():
                if cname.endswith("_MAX_ENUM"):
                    continue
                self.assertTrue(cname.startswith(prefix), cname)
                pyname = cname[len(prefix):]
                with self.subTest(cname):
                    self.assertIn(pyname, cls.__members__, "%s missing in %s" % (cname, cls))
                    self.assertEqual(cls[pyname].value, value, cname)
                seen.add(pyname)
            self.assertEqual(set(cls.__members__), seen, "%s has members the header lacks" % cls)

    def test_flags(self):
        defines = dict((n, int(b)) for n, b in re.findall(
            r"#define\s+(LLMGPU_\w+)\s+\(\s*1u\s*<<\s*(\d+)\s*\)", self.src))
        self.assertTrue(defines)
        seen = {cls: set() for cls in _capi.FLAG_PREFIXES.values()}
        for cname, bit in defines.items():
            matches = [p for p in _capi.FLAG_PREFIXES if cname.startswith(p)]
            self.assertEqual(len(matches), 1, "%s: no (unique) Python flag class" % cname)
            cls = _capi.FLAG_PREFIXES[matches[0]]
            pyname = cname[len(matches[0]):]
            with self.subTest(cname):
                self.assertIn(pyname, cls.__members__)
                self.assertEqual(cls[pyname].value, 1 << bit)
            seen[cls].add(pyname)
        for cls, names in seen.items():
            self.assertEqual(set(cls.__members__), names, "%s has flags the header lacks" % cls)

    def test_functions(self):
        names = set(re.findall(r"LLMGPU_API\b[^;{]*?\b(llmgpu_\w+)\s*\(", self.src))
        self.assertGreater(len(names), 30)
        self.assertEqual(names, set(_capi.FUNCTIONS), "declared functions differ from the header")
        for name, fn in _capi.FUNCTIONS.items():
            self.assertIsNotNone(fn.argtypes, name)

    def test_struct_fields(self):
        structs = _structs(self.src)
        self.assertEqual(set(structs), set(_capi.STRUCTS), "every struct must be mirrored")
        for name, fields in structs.items():
            self.assertEqual([f[0] for f in _capi.STRUCTS[name]._fields_], fields, name)

    @unittest.skipUnless(shutil.which("cc"), "no C compiler")
    def test_struct_layout(self):
        lines = ["#include <stdio.h>", "#include <stddef.h>", '#include "llmgpu.h"',
                 "int main(void) {"]
        for name, cls in _capi.STRUCTS.items():
            lines.append('    printf("%s %%zu\\n", sizeof(struct %s));' % (name, name))
            for field in cls._fields_:
                lines.append('    printf("%s.%s %%zu\\n", offsetof(struct %s, %s));'
                             % (name, field[0], name, field[0]))
        lines += ["    return 0;", "}"]
        with tempfile.TemporaryDirectory() as tmp:
            c_file = os.path.join(tmp, "layout.c")
            exe = os.path.join(tmp, "layout")
            with open(c_file, "w") as f:
                f.write("\n".join(lines) + "\n")
            subprocess.run(["cc", "-std=c11", "-I", INCLUDE, "-o", exe, c_file], check=True)
            out = subprocess.run([exe], check=True, capture_output=True, text=True).stdout
        c_layout = dict(line.rsplit(" ", 1) for line in out.splitlines())
        for name, cls in _capi.STRUCTS.items():
            with self.subTest(name):
                self.assertEqual(ctypes.sizeof(cls), int(c_layout[name]), name)
                for field in cls._fields_:
                    key = "%s.%s" % (name, field[0])
                    self.assertEqual(getattr(cls, field[0]).offset, int(c_layout[key]), key)


if __name__ == "__main__":
    unittest.main()
