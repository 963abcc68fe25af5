"""Pure-Python pieces of the streaming logic (no GPU)."""

import unittest

from llmgpu import _api


class StreamHelpersTest(unittest.TestCase):
    def test_complete_utf8(self):
        self.assertEqual(_api._complete_utf8(b"ab\xef\xbf\xbd\xef\xbf\xbd"), b"ab")
        self.assertEqual(_api._complete_utf8(b"a\xef\xbf\xbdb"), b"a\xef\xbf\xbdb")
        self.assertEqual(_api._complete_utf8(b""), b"")

    def test_find_stop(self):
        self.assertIsNone(_api._find_stop("hello", []))
        self.assertEqual(_api._find_stop("hello world", ["wor", "llo"]), 2)
        self.assertIsNone(_api._find_stop("hello", ["xyz"]))

    def test_stop_prefix_len(self):
        self.assertEqual(_api._stop_prefix_len("hello wo", ["world"]), 2)
        self.assertEqual(_api._stop_prefix_len("hello w", ["world", "lo w!"]), 4)
        self.assertEqual(_api._stop_prefix_len("hello", ["xyz"]), 0)
        self.assertEqual(_api._stop_prefix_len("", ["xyz"]), 0)
        # a complete stop string is _find_stop's business, not a held-back prefix
        self.assertEqual(_api._stop_prefix_len("abc", ["abc"]), 0)


if __name__ == "__main__":
    unittest.main()
