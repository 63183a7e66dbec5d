"""The likelihood-feature classifier reads its own LM's log-probabilities of the text after the
last marker, ignores padding, and rebuilds itself from the config it writes."""

from __future__ import annotations

import unittest
from pathlib import Path

import torch

from arborist_trainer.model import LIKELIHOOD_MARKER_KEY, Qwen2ForLikelihoodClassification
from arborist_trainer.weights import build_model, init_model, load_weights

MODELS = Path(__file__).resolve().parents[3] / "tests" / "testdata" / "models"
MARKER = [11, 12]


def reference(model: Qwen2ForLikelihoodClassification, ids: list[int], start: int) -> list[float]:
    """min, mean and min gap over tokens at positions >= start, computed the plain way."""
    x = torch.tensor([ids])
    with torch.no_grad():
        h, _ = model.model(x, torch.ones_like(x))
        lp = model.lm_head(h)[0].log_softmax(-1)
    written = [float(lp[t - 1, ids[t]]) for t in range(start, len(ids))]
    gaps = [float(lp[t - 1, ids[t]] - lp[t - 1].max()) for t in range(start, len(ids))]
    return [min(written), sum(written) / len(written), min(gaps)]


class LikelihoodFeatures(unittest.TestCase):
    def setUp(self) -> None:
        self.model, self.hf, self.fresh = init_model(
            "sequence-classification", 1, init=str(MODELS / "decoder-fp32"), config=None, seed=0,
            likelihood_marker=MARKER,
        )
        self.model.eval()

    def features(self, rows: list[list[int]]) -> torch.Tensor:
        x = torch.tensor(rows)
        mask = (x != self.model.config.pad_token_id).to(torch.int64)
        with torch.no_grad():
            h, _ = self.model.model(x, mask)
            return self.model.features(h, x)

    def test_the_new_weights_are_the_heads_and_features_start_unused(self) -> None:
        self.assertIsInstance(self.model, Qwen2ForLikelihoodClassification)
        self.assertEqual(sorted(self.fresh), ["feature_score.bias", "feature_score.weight", "score.weight"])
        self.assertEqual(float(self.model.feature_score.weight.abs().sum()), 0.0)
        self.assertEqual(self.hf[LIKELIHOOD_MARKER_KEY], MARKER)

    def test_features_cover_the_text_after_the_last_marker(self) -> None:
        ids = [5, 11, 12, 30, 31, 11, 12, 40, 41, 42]  # the marker twice: the scored text is 40 41 42
        got = self.features([ids])[0].tolist()
        want = reference(self.model, ids, 7)
        for g, w in zip(got, want):
            self.assertAlmostEqual(g, max(w, -20.0), places=4)
        whole = reference(self.model, ids, 4)  # a wider region gives other values: the marker matters
        self.assertNotAlmostEqual(got[1], whole[1], places=4)

    def test_without_a_marker_the_whole_row_is_scored(self) -> None:
        ids = [5, 30, 31, 40, 41, 42]
        got = self.features([ids])[0].tolist()
        for g, w in zip(got, reference(self.model, ids, 1)):
            self.assertAlmostEqual(g, max(w, -20.0), places=4)

    def test_padding_changes_nothing(self) -> None:
        pad = self.model.config.pad_token_id
        ids = [5, 11, 12, 40, 41, 42]
        alone = self.features([ids])
        padded = self.features([ids + [pad, pad, pad], [5, 11, 12, 40, 41, 42, 43, 44, 45]])
        self.assertLess(float((alone[0] - padded[0]).abs().max()), 1e-5)
        x = torch.tensor([ids + [pad, pad]])
        with torch.no_grad():
            a = self.model(torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.int64))
            b = self.model(x, (x != pad).to(torch.int64))
        self.assertLess(float((a - b).abs().max()), 1e-5)

    def test_the_config_rebuilds_the_class(self) -> None:
        from arborist_trainer.model import Qwen2Config

        cfg = Qwen2Config.from_hf_dict(self.hf)
        again = build_model("sequence-classification", cfg, 1)
        self.assertIsInstance(again, Qwen2ForLikelihoodClassification)
        self.assertEqual(load_weights(again, self.model.state_dict(), torch.Generator()), [])
        with self.assertRaises(ValueError):
            init_model("lm-tokens", 2, init=str(MODELS / "decoder-fp32"), config=None, seed=0,
                       likelihood_marker=MARKER)
        with self.assertRaises(ValueError):
            build_model("sequence-classification", Qwen2Config.from_hf_dict(self.hf | {LIKELIHOOD_MARKER_KEY: []}), 1)


if __name__ == "__main__":
    unittest.main()


class HeadsOnly(unittest.TestCase):
    def test_heads_only_leaves_the_decoder_as_it_was(self) -> None:
        import contextlib
        import io
        import tempfile

        from arborist_trainer import train_reward

        data = MODELS.parent / "trainer" / "reward_paper_binary.jsonl"
        with tempfile.TemporaryDirectory() as out, contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            code = train_reward.main([
                "--data", str(data), "--init", str(MODELS / "decoder-fp32"), "--labels", "1", "--loss", "bce",
                "--likelihood-features", "--heads-only", "--out", out, "--steps", "6", "--batch", "4",
                "--lr", "1e-2", "--threads", "1",
            ])
            self.assertEqual(code, 0)
            before, _, _ = init_model("causal-lm", 0, init=str(MODELS / "decoder-fp32"), config=None, seed=0)
            after, _, fresh = init_model("sequence-classification", 1, init=out, config=None, seed=0)
        self.assertEqual(fresh, [])
        old = dict(before.named_parameters())
        for name, p in after.named_parameters():
            if name.startswith("model."):
                self.assertTrue(torch.equal(p, old[name]), name)
        self.assertGreater(float(after.feature_score.weight.abs().sum()), 0.0, "the feature head trained")
        self.assertGreater(float(after.score.weight.abs().sum()), 0.0, "the pooled head trained")
