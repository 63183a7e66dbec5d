"""models/build/backbone_data.py: which spans of a solution become the backbone's completions."""

from __future__ import annotations

import importlib.util
import json
import random
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

from arborist_trainer.tokenizer import load_tokenizer

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "models" / "build" / "backbone_data.py"
_spec = importlib.util.spec_from_file_location("backbone_data", SCRIPT)
assert _spec and _spec.loader
backbone_data = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(backbone_data)

# A solution with one mistake (step 1) and its correction (step 2), as make_data.ts writes them.
STEPS = [
    "Ava gets more: 10 + 15 = 25.",
    "Ava gives some away: 25 - 13 = 22.",
    "Wait, 25 - 13 = 12, not 22.",
    "Ava gets more: 12 + 8 = 20.",
    "The answer is 20",
]


class Spans(unittest.TestCase):
    def test_a_step_followed_by_its_correction_is_the_wrong_one(self) -> None:
        self.assertEqual([backbone_data.is_wrong(STEPS, k) for k in range(len(STEPS))], [False, True, False, False, False])

    def test_good_only_never_makes_the_wrong_step_a_completion(self) -> None:
        rng = random.Random(0)
        drawn = [backbone_data.pick_span(STEPS, rng, True) for _ in range(400)]
        spans = [s for s in drawn if s is not None]  # None: 8 draws in a row held it, row skipped
        self.assertGreater(len(spans), 390)
        self.assertFalse([s for s in spans if s[0] <= 1 < s[1]])
        # the correction itself is taught, alone and with the step after it
        self.assertIn((2, 3), spans)
        self.assertIn((2, 4), spans)

    def test_without_good_only_the_wrong_step_is_taught_too(self) -> None:
        rng = random.Random(0)
        spans = [backbone_data.pick_span(STEPS, rng, False) for _ in range(400)]
        self.assertTrue(any(s[0] <= 1 < s[1] for s in spans))

    def test_the_script_writes_no_completion_holding_the_wrong_step(self) -> None:
        tok_dir = ROOT / "models" / "policy"
        with tempfile.TemporaryDirectory() as d:
            src = Path(d) / "src.jsonl"
            row = {"prompt": "Question: Ava has 10 cards.\nAnswer:\n", "completion": "\n\n".join(STEPS)}
            src.write_text("".join(json.dumps(row) + "\n" for _ in range(50)), encoding="utf-8")
            out = Path(d) / "out.jsonl"
            cmd = [sys.executable, str(SCRIPT), "--data", str(src), "--tokenizer", str(tok_dir), "--out", str(out)]
            subprocess.run([*cmd, "--good-steps-only"], check=True, capture_output=True)
            tok = load_tokenizer(tok_dir / "tokenizer.json")
            rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
            self.assertGreater(len(rows), 40)  # a row whose 8 draws all hold the mistake is skipped
            completions = [tok.decode(r["completion_ids"]) for r in rows]
            self.assertFalse(any("= 22." in c for c in completions), completions)
            self.assertTrue(any(c.startswith("Wait,") for c in completions), completions)


if __name__ == "__main__":
    unittest.main()
