"""Loss values on hand-made logits: masking, the single shift, the KL term, reward losses.

Run: cd self_train/trainer && /usr/bin/python3 -m unittest discover -s tests -t .
"""

from __future__ import annotations

import math
import unittest

import torch
import torch.nn.functional as F

from arborist_trainer.data import SftExample, sft_batch
from arborist_trainer.losses import reward_loss, reward_scores, sft_loss

V = 11
PAD = 10


def _batch(top_k: int = 3) -> dict[str, torch.Tensor]:
    """Row 0: prompt 3 + completion 3 + 1 pad; row 1: prompt 2 + completion 5."""
    g = torch.Generator().manual_seed(0)

    def top(n: int) -> tuple[list[list[int]], list[list[float]]]:
        ids = [torch.randperm(V - 1, generator=g)[:top_k].tolist() for _ in range(n)]
        lps = [torch.log_softmax(torch.randn(V, generator=g), -1)[:top_k].sort(descending=True).values.tolist()
               for _ in range(n)]
        return ids, lps

    e0 = SftExample([1, 2, 3], [4, 5, 6], *top(3))
    e1 = SftExample([7, 8], [1, 2, 3, 4, 5], *top(5))
    return sft_batch([e0, e1], PAD)


def _logits(seed: int = 1) -> torch.Tensor:
    return torch.randn(2, 7, V, generator=torch.Generator().manual_seed(seed)) * 2


def _loss(logits: torch.Tensor, b: dict, **kw: object) -> tuple[torch.Tensor, dict]:
    return sft_loss(logits, b["input_ids"], b["completion_mask"], b["ref_ids"], b["ref_logprobs"], b["ref_mask"],
                    **kw)  # type: ignore[arg-type]


class SftCrossEntropy(unittest.TestCase):
    def test_batch_layout(self) -> None:
        b = _batch()
        self.assertEqual(b["input_ids"].tolist(), [[1, 2, 3, 4, 5, 6, PAD], [7, 8, 1, 2, 3, 4, 5]])
        self.assertEqual(b["completion_mask"].tolist(), [[0, 0, 0, 1, 1, 1, 0], [0, 0, 1, 1, 1, 1, 1]])
        self.assertEqual(b["attention_mask"].tolist(), [[1, 1, 1, 1, 1, 1, 0], [1] * 7])

    def test_ce_is_the_mean_nll_of_completion_tokens_shifted_once(self) -> None:
        b, logits = _batch(), _logits()
        _, parts = _loss(logits, b, beta=0.0)
        logp = F.log_softmax(logits, -1)
        # token t is predicted by the logits at t - 1
        terms = [-logp[0, t - 1, b["input_ids"][0, t]] for t in (3, 4, 5)]
        terms += [-logp[1, t - 1, b["input_ids"][1, t]] for t in (2, 3, 4, 5, 6)]
        self.assertAlmostEqual(parts["ce"], float(sum(terms) / len(terms)), places=5)
        self.assertEqual(parts["tokens"], 8.0)

    def test_prompt_and_padding_logits_do_not_change_the_loss(self) -> None:
        b, logits = _batch(), _logits()
        base, _ = _loss(logits, b, beta=0.1)
        changed = logits.clone()
        changed[0, 0:2] = torch.randn(2, V) * 5  # predict prompt tokens 1, 2 of row 0
        changed[0, 6] = torch.randn(V) * 5  # the pad position (predicts nothing)
        changed[1, 0] = torch.randn(V) * 5  # predicts prompt token 1 of row 1
        # the pad TOKEN of row 0 is a target of logits[0, 5] only through the mask: change the pad id too
        b2 = dict(b)
        b2["input_ids"] = b["input_ids"].clone()
        b2["input_ids"][0, 6] = 3
        again, _ = _loss(changed, b2, beta=0.1)
        self.assertAlmostEqual(float(base), float(again), places=6)

    def test_the_last_prompt_position_counts_it_predicts_the_first_completion_token(self) -> None:
        b, logits = _batch(), _logits()
        base, _ = _loss(logits, b, beta=0.0)
        changed = logits.clone()
        changed[0, 2] += torch.randn(V) * 5
        moved, _ = _loss(changed, b, beta=0.0)
        self.assertNotAlmostEqual(float(base), float(moved), places=3)

    def test_perfect_next_token_logits_give_zero_ce_and_a_double_shift_does_not(self) -> None:
        b = _batch()
        ids = b["input_ids"]
        right = torch.full((2, 7, V), -30.0)
        wrong = torch.full((2, 7, V), -30.0)
        for r in range(2):
            for t in range(6):
                right[r, t, ids[r, t + 1]] = 30.0  # logits at t predict token t + 1
                if t + 2 < 7:
                    wrong[r, t, ids[r, t + 2]] = 30.0  # labels shifted twice
        self.assertLess(_loss(right, b, beta=0.0)[1]["ce"], 1e-6)
        self.assertGreater(_loss(wrong, b, beta=0.0)[1]["ce"], 10.0)

    def test_prompt_tokens_are_not_in_the_loss_even_if_wrong(self) -> None:
        b = _batch()
        ids = b["input_ids"]
        logits = torch.full((2, 7, V), -30.0)
        for r in range(2):
            for t in range(6):
                if b["completion_mask"][r, t + 1] > 0:
                    logits[r, t, ids[r, t + 1]] = 30.0  # only completion targets right
        self.assertLess(_loss(logits, b, beta=0.0)[1]["ce"], 1e-6)


class SftKl(unittest.TestCase):
    def _policy_equal_to_renormalized_reference(self, b: dict) -> torch.Tensor:
        logits = torch.full((2, 7, V), -1e4)
        for r in range(2):
            for t in range(1, 7):
                m = b["ref_mask"][r, t] > 0
                if not m.any():
                    continue
                lp = b["ref_logprobs"][r, t][m]
                logits[r, t - 1, b["ref_ids"][r, t][m]] = lp - torch.logsumexp(lp, 0)
        return logits

    def test_kl_is_zero_when_the_policy_equals_the_renormalized_reference_on_its_support(self) -> None:
        b = _batch()
        _, parts = _loss(self._policy_equal_to_renormalized_reference(b), b, beta=0.1)
        self.assertLess(abs(parts["kl"]), 1e-5)

    def test_topk_rest_kl_is_zero_when_the_policy_equals_the_reference(self) -> None:
        b = _batch(top_k=V - 1)
        logits = torch.zeros(2, 7, V)
        for r in range(2):
            for t in range(1, 7):
                if b["ref_mask"][r, t].any():
                    logits[r, t - 1, b["ref_ids"][r, t]] = b["ref_logprobs"][r, t]
                    rest = 1 - b["ref_logprobs"][r, t].exp().sum()
                    others = [v for v in range(V) if v not in b["ref_ids"][r, t].tolist()]
                    logits[r, t - 1, others] = math.log(max(float(rest), 1e-12) / len(others))
        _, parts = _loss(logits, b, beta=0.1, kl_support="topk+rest")
        self.assertLess(abs(parts["kl"]), 1e-5)

    def test_kl_is_positive_and_matches_the_formula(self) -> None:
        b, logits = _batch(), _logits(3)
        _, parts = _loss(logits, b, beta=0.1)
        logp = F.log_softmax(logits, -1)
        total, n = 0.0, 0
        for r in range(2):
            for t in range(1, 7):
                if b["completion_mask"][r, t] == 0:
                    continue
                m = b["ref_mask"][r, t] > 0
                ref = b["ref_logprobs"][r, t][m]
                ref = ref - torch.logsumexp(ref, 0)
                pol = logp[r, t - 1, b["ref_ids"][r, t][m]]
                total += float((ref.exp() * (ref - pol)).sum())
                n += 1
        self.assertGreater(parts["kl"], 0)
        self.assertAlmostEqual(parts["kl"], total / n, places=5)

    def test_kl_forms_and_beta(self) -> None:
        b, logits = _batch(), _logits(4)
        ce = _loss(logits, b, beta=0.0)[1]["ce"]
        loss0, parts = _loss(logits, b, beta=0.0)
        kl = parts["kl"]
        self.assertAlmostEqual(float(loss0), ce, places=5)
        plain, _ = _loss(logits, b, beta=0.5, kl_form="plain")
        log1p, _ = _loss(logits, b, beta=0.5, kl_form="log1p")
        self.assertAlmostEqual(float(plain), ce + 0.5 * kl, places=4)
        self.assertAlmostEqual(float(log1p), ce + 0.5 * math.log1p(kl), places=4)

    def test_padded_top_k_entries_are_ignored(self) -> None:
        b, logits = _batch(top_k=3), _logits(5)
        base = _loss(logits, b, beta=0.1)[1]["kl"]
        wider = {k: v for k, v in b.items()}
        for key, fill in (("ref_ids", 7), ("ref_logprobs", 0.0), ("ref_mask", 0.0)):
            extra = torch.full(b[key].shape[:-1] + (2,), fill, dtype=b[key].dtype)
            wider[key] = torch.cat([b[key], extra], -1)
        self.assertAlmostEqual(_loss(logits, wider, beta=0.1)[1]["kl"], base, places=6)

    def test_gradients_reach_only_completion_predicting_positions(self) -> None:
        b, logits = _batch(), _logits(6).requires_grad_()
        loss, _ = _loss(logits, b, beta=0.1)
        loss.backward()
        g = logits.grad.abs().sum(-1)
        self.assertEqual((g[0] > 0).tolist(), [False, False, True, True, True, False, False])
        self.assertEqual((g[1] > 0).tolist(), [False, True, True, True, True, True, False])


class RewardLosses(unittest.TestCase):
    def test_two_label_ce_is_cross_entropy_on_hard_labels(self) -> None:
        logits = torch.randn(6, 2, generator=torch.Generator().manual_seed(0))
        labels = torch.tensor([0, 1, 1, 0, 1, 0], dtype=torch.float32)
        self.assertAlmostEqual(float(reward_loss(logits, labels, "ce")),
                               float(F.cross_entropy(logits, labels.long())), places=6)

    def test_one_label_losses(self) -> None:
        z = torch.tensor([[0.2], [1.5], [-0.3]])
        y = torch.tensor([0.0, 1.0, 0.5])
        self.assertAlmostEqual(float(reward_loss(z, y, "mse")), float(((z[:, 0] - y) ** 2).mean()), places=6)
        self.assertAlmostEqual(float(reward_loss(z, y, "bce")),
                               float(F.binary_cross_entropy(torch.sigmoid(z[:, 0]), y)), places=5)
        self.assertTrue(torch.allclose(reward_scores(z, "mse"), torch.tensor([0.2, 1.0, 0.0])))
        with self.assertRaises(ValueError):
            reward_loss(z, y, "ce")

    def test_two_label_mse_is_on_the_softmax_probability(self) -> None:
        logits = torch.tensor([[0.0, 0.0], [0.0, 2.0]])
        y = torch.tensor([1.0, 0.0])
        p = torch.softmax(logits, -1)[:, 1]
        self.assertAlmostEqual(float(reward_loss(logits, y, "mse")), float(((p - y) ** 2).mean()), places=6)


if __name__ == "__main__":
    unittest.main()
