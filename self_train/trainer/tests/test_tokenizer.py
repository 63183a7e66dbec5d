"""The tokenizer.json encoder against the real GPT-2 tokenizer and the fixtures' reference ids."""

from __future__ import annotations

import json
import unittest
from pathlib import Path

from arborist_trainer import tokenizer as T

ROOT = Path(__file__).resolve().parents[3]
SHARED = ROOT.parent / "shared" / "data" / "tokenizers"
MODELS = ROOT / "tests" / "testdata" / "models"


def conformance(tok: T.BPETokenizer) -> tuple[int, int, list[str]]:
    """(matches, cases, ids of the mismatches) on the GPT-2 multilingual conformance set."""
    inputs = json.loads((SHARED / "conformance" / "inputs.json").read_text(encoding="utf-8"))
    ref = json.loads((SHARED / "conformance" / "gpt2_multilingual.json").read_text(encoding="utf-8"))
    expected = {e["id"]: e["input_ids"] for e in ref["entries"]}
    bad = [x["id"] for x in inputs if tok.encode(x["text"]) != expected[x["id"]]]
    return len(inputs) - len(bad), len(inputs), bad


@unittest.skipUnless((SHARED / "gpt2" / "tokenizer.json").is_file(), f"needs {SHARED}")
class Gpt2Conformance(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.tok = T.BPETokenizer.from_file(SHARED / "gpt2")

    def test_all_reference_ids_match(self) -> None:
        ok, n, bad = conformance(self.tok)
        print(f"\nGPT-2 conformance ({'regex' if T.HAVE_REGEX else 're approximation'}): {ok}/{n}")
        self.assertEqual(bad, [])

    def test_the_re_approximation_without_the_regex_module(self) -> None:
        saved = T._regex
        try:
            T._regex = None
            ok, n, bad = conformance(T.BPETokenizer.from_file(SHARED / "gpt2"))
        finally:
            T._regex = saved
        print(f"\nGPT-2 conformance with Python's re approximation: {ok}/{n}")
        self.assertEqual(bad, [])

    def test_decode_round_trips(self) -> None:
        for text in ["Hello world", "café — 数学 ✓", "  two  spaces\n\n"]:
            self.assertEqual(self.tok.decode(self.tok.encode(text)), text)


class FixtureTokenizer(unittest.TestCase):
    def test_loaded_tokenizer_json_gives_the_reference_ids(self) -> None:
        tok = T.BPETokenizer.from_file(MODELS / "decoder-fp32")
        ref = json.loads((MODELS / "tokenizer_reference.json").read_text(encoding="utf-8"))
        self.assertEqual(tok.vocab_size, ref["vocab_size"])
        for case in ref["cases"]:
            self.assertEqual(tok.encode(case["text"]), case["ids"], case["text"])

    def test_same_ids_as_the_builder_encoder(self) -> None:
        built = T.build_default_tokenizer()
        loaded = T.BPETokenizer(built.tokenizer_json())
        for text in ["Step 1: 48 / 2 = 24 ки\n", "<|im_start|>user\nHi<|im_end|>", "x<extra_0>y", "ünïcode"]:
            self.assertEqual(loaded.encode(text), built.encode(text))

    def test_qwen_style_split_pre_tokenizer(self) -> None:
        spec = T.build_default_tokenizer().tokenizer_json()
        spec["normalizer"] = {"type": "NFC"}
        spec["pre_tokenizer"] = {
            "type": "Sequence",
            "pretokenizers": [
                {
                    "type": "Split",
                    "pattern": {"Regex": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+"
                                r"[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"},
                    "behavior": "Isolated",
                    "invert": False,
                },
                {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
            ],
        }
        tok = T.BPETokenizer(spec)
        # Qwen2 splits numbers into single digits and keeps "\n\n" apart from the next word
        ids = tok.encode("x 123\n\nThe")
        self.assertEqual(tok.decode(ids), "x 123\n\nThe")
        pieces = [tok.decode([i]) for i in ids]
        self.assertIn("1", pieces)
        self.assertIn("2", pieces)
        self.assertIn("3", pieces)


if __name__ == "__main__":
    unittest.main()
