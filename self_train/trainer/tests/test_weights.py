"""ONNX weights read back into PyTorch reproduce the fixtures' reference logits; an export of
those modules reads back to the same tensors."""

from __future__ import annotations

import json
import tempfile
import unittest
from pathlib import Path

import warnings

import torch

from arborist_trainer import export as ex
from arborist_trainer.weights import init_model, onnx_state_dict

warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
MODELS = Path(__file__).resolve().parents[3] / "tests" / "testdata" / "models"

CASES = [
    ("reward-paper-2", "sequence-classification", 2),
    ("reward-paper-1", "sequence-classification", 1),
    ("reward-qwen-prm", "token-classification", 2),
    ("reward-math-shepherd", "lm-tokens", 0),
    ("decoder-fp32", "causal-lm", 0),
    ("decoder-external", "causal-lm", 0),
    ("decoder-merged", "causal-lm", 0),
    ("decoder-fp16", "causal-lm", 0),
]


class OnnxWeights(unittest.TestCase):
    def test_fixtures_reproduce_their_reference_logits(self) -> None:
        for name, head, labels in CASES:
            with self.subTest(name):
                model, _, fresh = init_model(head, labels, init=str(MODELS / name), config=None, seed=0)
                self.assertEqual(fresh, [])
                ref = json.loads((MODELS / name / "reference.json").read_text())
                model.eval()
                for seq in ref["sequences"]:
                    ids = torch.tensor([seq["input_ids"]])
                    with torch.no_grad():
                        if head in ("causal-lm", "lm-tokens"):
                            got, want = model(ids)[0][0, -1], torch.tensor(seq["logits_last"])
                        else:
                            key = "logits" if "logits" in seq else "logits_all_positions"
                            got, want = model(ids, torch.ones_like(ids))[0], torch.tensor(seq[key])
                    self.assertLess(float((got - want).abs().max()), 1e-4)

    def test_a_classifier_can_start_from_a_decoder_with_a_new_head(self) -> None:
        model, _, fresh = init_model("sequence-classification", 2, init=str(MODELS / "decoder-fp32"), config=None,
                                     seed=0)
        self.assertEqual(fresh, ["score.weight"])
        self.assertEqual(tuple(model.score.weight.shape), (2, 32))

    def test_extra_layers_start_as_the_identity(self) -> None:
        base, _, _ = init_model("sequence-classification", 1, init=str(MODELS / "decoder-fp32"), config=None, seed=0)
        deep, hf, fresh = init_model("sequence-classification", 1, init=str(MODELS / "decoder-fp32"), config=None,
                                     seed=0, extra_layers=2)
        n = len(base.model.layers)
        self.assertEqual(len(deep.model.layers), n + 2)
        self.assertEqual(hf["num_hidden_layers"], n + 2)
        self.assertIn("score.weight", fresh)
        self.assertTrue(any("new" in f for f in fresh))
        ids = torch.tensor([[5, 17, 42, 9, 3]])
        with torch.no_grad():
            same = deep.model(ids, torch.ones_like(ids))[0], base.model(ids, torch.ones_like(ids))[0]
        self.assertLess(float((same[0] - same[1]).abs().max()), 1e-6)
        self.assertGreater(float(deep.model.layers[n].self_attn.q_proj.weight.abs().sum()), 0)

    def test_export_then_read_back_is_lossless(self) -> None:
        for head, labels in (("sequence-classification", 2), ("token-classification", 2), ("causal-lm", 0)):
            with self.subTest(head):
                src = "decoder-fp32" if head == "causal-lm" else (
                    "reward-paper-2" if head == "sequence-classification" else "reward-qwen-prm")
                model, _, _ = init_model(head, labels, init=str(MODELS / src), config=None, seed=0)
                graph = ex.export_decoder(model) if head == "causal-lm" else ex.export_classifier(model.eval())
                with tempfile.TemporaryDirectory() as tmp:
                    path = Path(tmp) / "model.onnx"
                    ex.save_model(graph, path)
                    state = onnx_state_dict(path)
                seen = set()
                for name, p in model.named_parameters():
                    if id(p) in seen:
                        continue
                    seen.add(id(p))
                    self.assertTrue(torch.equal(state[name], p.detach()), name)

    def test_random_init_from_a_config(self) -> None:
        config = json.dumps(json.loads((MODELS / "decoder-fp32" / "config.json").read_text()))
        model, hf, fresh = init_model("sequence-classification", 1, init=None, config=config, seed=3)
        self.assertEqual(hf["vocab_size"], 357)
        self.assertEqual(model.score.weight.shape[0], 1)
        with self.assertRaises(ValueError):
            init_model("sequence-classification", 1, init=None, config=None, seed=0)


if __name__ == "__main__":
    unittest.main()


class ModelDir(unittest.TestCase):
    def test_write_model_dir_with_external_data_reads_back(self) -> None:
        from arborist_trainer.weights import write_model_dir

        model, hf, _ = init_model("causal-lm", 0, init=str(MODELS / "decoder-fp32"), config=None, seed=0)
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp)
            write_model_dir(out, ex.export_decoder(model), hf_config=hf, architecture="Qwen2ForCausalLM",
                            tokenizer_dir=MODELS / "decoder-fp32", external_data=True)
            self.assertTrue((out / "model.onnx.data").is_file())
            names = sorted(p.name for p in out.iterdir())
            self.assertEqual(names, ["config.json", "generation_config.json", "model.onnx", "model.onnx.data",
                                     "tokenizer.json", "tokenizer_config.json"])
            again, _, fresh = init_model("causal-lm", 0, init=str(out), config=None, seed=0)
            self.assertEqual(fresh, [])
            for (name, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items()):
                self.assertTrue(torch.equal(a, b), name)
