"""Grouped-query attention reads each KV head once and gives what repeating K and V per query
head (the reference formulation of transformers) gives, with a cache and a padding mask."""

from __future__ import annotations

import math
import unittest

import torch

from arborist_trainer.model import Attention, Qwen2Config, build_attention_mask, repeat_kv


def reference(att: Attention, x: torch.Tensor, cos_sin, mask, past, mask_value: float):  # noqa: ANN001, ANN201
    """The repeat_kv formulation, written out."""
    b, s = x.shape[0], x.shape[1]
    q = att.q_proj(x).view(b, s, -1, att.head_dim).transpose(1, 2)
    k = att.k_proj(x).view(b, s, -1, att.head_dim).transpose(1, 2)
    v = att.v_proj(x).view(b, s, -1, att.head_dim).transpose(1, 2)
    cos, sin = cos_sin[0][:, None], cos_sin[1][:, None]
    half = att.head_dim // 2
    rot = lambda t: torch.cat((-t[..., half:], t[..., :half]), dim=-1)  # noqa: E731
    q, k = q * cos + rot(q) * sin, k * cos + rot(k) * sin
    if past is not None:
        k, v = torch.cat((past[0], k), dim=2), torch.cat((past[1], v), dim=2)
    n_rep = att.num_heads // att.num_kv_heads
    scores = q @ repeat_kv(k, n_rep).transpose(2, 3) / math.sqrt(att.head_dim)
    scores = torch.where(mask, scores, torch.tensor(mask_value))
    out = torch.softmax(scores, dim=-1) @ repeat_kv(v, n_rep)
    return att.o_proj(out.transpose(1, 2).reshape(b, s, -1)), (k, v)


class GroupedQueryAttention(unittest.TestCase):
    def check(self, heads: int, kv_heads: int) -> None:
        torch.manual_seed(heads * 10 + kv_heads)
        cfg = Qwen2Config(
            vocab_size=32, hidden_size=heads * 8, intermediate_size=16, num_hidden_layers=1,
            num_attention_heads=heads, num_key_value_heads=kv_heads, head_dim=8,
        )
        att = Attention(cfg).eval()
        b, past_len, s, d = 3, 5, 4, 8
        past = (torch.randn(b, kv_heads, past_len, d), torch.randn(b, kv_heads, past_len, d))
        x = torch.randn(b, s, heads * 8)
        pos = torch.arange(past_len, past_len + s, dtype=torch.float32)
        angles = pos[:, None] * torch.rand(d // 2)[None, :]
        cos_sin = (torch.cat((angles, angles), -1).cos()[None].expand(b, s, d),
                   torch.cat((angles, angles), -1).sin()[None].expand(b, s, d))
        attention_mask = torch.ones(b, past_len + s, dtype=torch.int64)
        attention_mask[1, :2] = 0  # left padding in one row
        mask = build_attention_mask(attention_mask, s)
        with torch.no_grad():
            got, (gk, gv) = att(x, cos_sin, mask, past, -1e9)
            want, (wk, wv) = reference(att, x, cos_sin, mask, past, -1e9)
        self.assertLess(float((got - want).abs().max()), 1e-5)
        self.assertTrue(torch.equal(gk, wk) and torch.equal(gv, wv))

    def test_seven_query_heads_per_kv_head(self) -> None:
        self.check(14, 2)

    def test_two_query_heads_per_kv_head(self) -> None:
        self.check(4, 2)

    def test_one_query_head_per_kv_head(self) -> None:
        self.check(4, 4)


if __name__ == "__main__":
    unittest.main()
