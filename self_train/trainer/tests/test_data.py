"""Reading the reward and KL-SFT exports into examples."""

from __future__ import annotations

import json
import tempfile
import unittest
from pathlib import Path

from arborist_trainer.data import paper_prompt, read_reward_data, read_sft_data, reward_batch
from arborist_trainer.tokenizer import BPETokenizer

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = ROOT / "tests" / "testdata" / "trainer"
TOK = BPETokenizer.from_file(ROOT / "tests" / "testdata" / "models" / "decoder-fp32")


def jsonl(rows: list[dict]) -> Path:
    f = tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False, encoding="utf-8")
    f.write("".join(json.dumps(r) + "\n" for r in rows))
    f.close()
    return Path(f.name)


class RewardData(unittest.TestCase):
    def test_paper_prompt_is_the_engines(self) -> None:
        # reward/prompts.ts paperPrompt's documented example
        self.assertEqual(
            paper_prompt("1+1?", [], "1+1=2"),
            "Question:\n1+1?\n\nLet's break it down step by step!\n\nNow, let's focus on the current step:\n1+1=2\n",
        )
        self.assertTrue(paper_prompt("q", ["a", "b"], "c").endswith("Previous reasoning:\na\n\nb\n\n"
                                                                     "Now, let's focus on the current step:\nc"))

    def test_paper_rows_label_the_last_token(self) -> None:
        ex = read_reward_data(FIXTURES / "reward_paper_mc.jsonl", "paper", "sequence-classification", TOK)
        self.assertEqual(len(ex), 48)
        self.assertTrue(all(e.positions == [len(e.ids) - 1] and 0 <= e.labels[0] <= 1 for e in ex))
        b = reward_batch(ex[:3], 352)
        self.assertEqual(b["input_ids"].shape[0], 3)
        self.assertEqual(b["attention_mask"].sum(1).tolist(), [len(e.ids) for e in ex[:3]])

    def test_dense_rows_label_every_token_of_the_current_step(self) -> None:
        path = jsonl([{"input": paper_prompt("q", ["a b"], "c d e"), "label": 0.25},
                      {"input": paper_prompt("q", [], "x"), "label": 1}])
        ex = read_reward_data(path, "paper", "sequence-classification", TOK, dense=True)
        for e, step in zip(ex, ("c d e", "x\n")):
            self.assertEqual(e.positions[-1], len(e.ids) - 1)
            self.assertEqual(TOK.decode(e.ids[e.positions[0]:]), step)
            self.assertEqual(len(set(e.labels)), 1)
        self.assertEqual(ex[0].labels[0], 0.25)
        b = reward_batch(ex, 352)
        self.assertEqual(b["label_last"].tolist(), [False] * (len(ex[0].positions) - 1) + [True]
                         + [False] * (len(ex[1].positions) - 1) + [True])
        sparse = read_reward_data(path, "paper", "sequence-classification", TOK)
        self.assertEqual(reward_batch(sparse, 352)["label_last"].tolist(), [True, True])

    def test_dense_rows_need_the_paper_prompt(self) -> None:
        path = jsonl([{"input": "no prompt here", "label": 1}])
        with self.assertRaisesRegex(ValueError, r"jsonl:1.*current step"):
            read_reward_data(path, "paper", "sequence-classification", TOK, dense=True)

    def test_trl_rows_become_one_paper_prompt_per_step(self) -> None:
        path = jsonl([{"prompt": "q", "completions": ["a", "b"], "labels": [True, False]}])
        ex = read_reward_data(path, "trl", "sequence-classification", TOK)
        self.assertEqual([e.labels for e in ex], [[1.0], [0.0]])
        self.assertEqual(TOK.decode(ex[1].ids), paper_prompt("q", ["a"], "b"))

    def test_trl_and_openrlhf_align_labels_with_step_tags(self) -> None:
        trl = read_reward_data(FIXTURES / "reward_trl.jsonl", "trl", "token-classification", TOK)
        tag = TOK.token_to_id("<extra_0>")
        self.assertTrue(all(e.ids[p] == tag for e in trl for p in e.positions))
        self.assertEqual([len(e.positions) for e in trl], [3] * 16)
        ms = read_reward_data(FIXTURES / "reward_trl.jsonl", "trl", "lm-tokens", TOK)
        self.assertTrue(all(e.ids[p] == TOK.token_to_id(" ки") for e in ms for p in e.positions))
        # arborist's openrlhf export is the Math-Shepherd text: the same examples as trl
        orl = read_reward_data(FIXTURES / "reward_openrlhf.jsonl", "openrlhf", "lm-tokens", TOK)
        self.assertEqual([(e.ids, e.positions, e.labels) for e in ms], [(e.ids, e.positions, e.labels) for e in orl])
        with self.assertRaisesRegex(ValueError, "--step-tag"):
            read_reward_data(FIXTURES / "reward_openrlhf.jsonl", "openrlhf", "token-classification", TOK)

    def test_custom_reward_tokens_and_soft_openrlhf_labels(self) -> None:
        path = jsonl([{"input": "q a ки\nb ки\nc ки", "label": ["good", "bad", 0.25]}])
        (e,) = read_reward_data(path, "openrlhf", "lm-tokens", TOK, reward_tokens=("good", "bad"))
        self.assertEqual(e.labels, [1.0, 0.0, 0.25])

    def test_bad_rows_name_the_line(self) -> None:
        path = jsonl([{"input": "x", "label": 0.5}, {"input": "y", "label": 3}])
        with self.assertRaisesRegex(ValueError, r"\.jsonl:2"):
            read_reward_data(path, "paper", "sequence-classification", TOK)
        path = jsonl([{"input": "a<extra_0>", "label": [1, 0]}])
        with self.assertRaisesRegex(ValueError, "2 labels but 1 step tags"):
            read_reward_data(path, "openrlhf", "token-classification", TOK, step_tag="<extra_0>")


class SftData(unittest.TestCase):
    def test_fixture_rows(self) -> None:
        rows = read_sft_data(FIXTURES / "sft.jsonl")
        self.assertEqual(len(rows), 8)
        for r in rows:
            self.assertEqual(len(r.ref_top_ids), len(r.completion_ids))
            self.assertTrue(all(len(t) == 5 for t in r.ref_top_ids))

    def test_long_rows_cut_the_prompt_from_the_left(self) -> None:
        top = [[{"id": 1, "logprob": -0.1}]] * 3
        path = jsonl([{"prompt_ids": [1, 2, 3, 4, 5], "completion_ids": [6, 7, 8], "ref_top": top}])
        (r,) = read_sft_data(path, max_len=5)
        self.assertEqual((r.prompt_ids, r.completion_ids), ([4, 5], [6, 7, 8]))

    def test_missing_reference_is_an_error_unless_beta_is_zero(self) -> None:
        path = jsonl([{"prompt_ids": [1], "completion_ids": [2]}])
        with self.assertRaisesRegex(ValueError, "ref_top"):
            read_sft_data(path)
        self.assertEqual(len(read_sft_data(path, need_ref=False)), 1)


if __name__ == "__main__":
    unittest.main()
