"""A Qwen2-style decoder in plain PyTorch, with causal-LM and classification heads.

RMSNorm, rotary position embeddings, grouped-query attention (KV heads repeated
to the query heads), SwiGLU MLP, optional q/k/v biases (Qwen2 has them) and
optional tied embeddings. Parameter names follow Hugging Face transformers
(`model.embed_tokens.weight`, `model.layers.0.self_attn.q_proj.weight`, ...,
`lm_head.weight` / `score.weight`), so state dicts are interchangeable with
`Qwen2ForCausalLM` & co. of the same geometry.

Masking: query position q (absolute position past_len + q in the key sequence)
attends key position k iff k <= past_len + q and attention_mask[b, k] is 1,
where past_len = attention_mask.shape[1] - input_ids.shape[1]. Masked scores
are set (not added) to the dtype's most negative finite value, so a fully
masked row gives a uniform softmax, never NaN.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

KeyValue = tuple[torch.Tensor, torch.Tensor]


@dataclass
class Qwen2Config:
    """Geometry and special ids of a Qwen2-style model (Hugging Face field names)."""

    vocab_size: int
    hidden_size: int = 32
    intermediate_size: int = 64
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    head_dim: int | None = None
    rope_theta: float = 10000.0
    max_position_embeddings: int = 512
    tie_word_embeddings: bool = True
    rms_norm_eps: float = 1e-6
    attention_bias: bool = True
    bos_token_id: int | None = None
    eos_token_id: int | None = None
    pad_token_id: int | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.head_dim is None:
            self.head_dim = self.hidden_size // self.num_attention_heads
        if self.num_attention_heads % self.num_key_value_heads != 0:
            raise ValueError(
                "Cannot group attention heads as 'num_attention_heads' must be a multiple of "
                f"'num_key_value_heads': current values are {self.num_attention_heads} and "
                f"{self.num_key_value_heads}"
            )

    @classmethod
    def from_hf_dict(cls, config: dict, where: str = "the model config") -> "Qwen2Config":
        """Read the geometry and special ids of a Hugging Face Qwen2 `config.json`; a missing
        required field or a field of the wrong type is a ValueError naming it and `where`."""
        check_hf_config(config, where)
        names = [f for f in cls.__dataclass_fields__ if f not in ("extra", "attention_bias")]
        fields = {k: config[k] for k in names if k in config}
        eos = fields.get("eos_token_id")
        if isinstance(eos, list):
            fields["eos_token_id"] = eos[0]
        if LIKELIHOOD_MARKER_KEY in config:
            fields["extra"] = {LIKELIHOOD_MARKER_KEY: config[LIKELIHOOD_MARKER_KEY]}
        return cls(**fields)

    def to_hf_dict(self, architectures: list[str], torch_dtype: str = "float32") -> dict:
        """The `config.json` of a Hugging Face Qwen2 model with this geometry."""
        d = asdict(self)
        extra = d.pop("extra")
        d.pop("attention_bias")  # Qwen2 always has q/k/v biases; not a config field there
        out = {
            "architectures": architectures,
            "attention_dropout": 0.0,
            "hidden_act": "silu",
            "initializer_range": 0.02,
            "max_window_layers": self.num_hidden_layers,
            "model_type": "qwen2",
            "rope_scaling": None,
            "sliding_window": self.max_position_embeddings,
            "torch_dtype": torch_dtype,
            "transformers_version": "4.45.0",
            "use_cache": True,
            "use_sliding_window": False,
        }
        out.update(d)
        out.update(extra)
        return dict(sorted(out.items()))


# Fields of a Hugging Face Qwen2 config that the model reads: (kind, required). "size": an
# integer >= 1; "id": an integer >= 0 or null (eos_token_id may be a list of them); "positive":
# a number > 0.
HF_CONFIG_FIELDS = {
    "vocab_size": ("size", True),
    "hidden_size": ("size", False),
    "intermediate_size": ("size", False),
    "num_hidden_layers": ("size", False),
    "num_attention_heads": ("size", False),
    "num_key_value_heads": ("size", False),
    "head_dim": ("size", False),
    "max_position_embeddings": ("size", False),
    "rope_theta": ("positive", False),
    "rms_norm_eps": ("positive", False),
    "bos_token_id": ("id", False),
    "eos_token_id": ("id", False),
    "pad_token_id": ("id", False),
}


def check_hf_config(config: object, where: str = "the model config") -> None:
    """ValueError naming the field (and `where`) when `config` lacks a required field or holds
    one of the wrong type; see HF_CONFIG_FIELDS."""
    if not isinstance(config, dict):
        raise ValueError(f"Cannot read {where}: expected a JSON object, got {type(config).__name__}")
    for key, (kind, required) in HF_CONFIG_FIELDS.items():
        if key not in config:
            if required:
                raise ValueError(f"Cannot read {where}: the required field '{key}' is missing (expected an "
                                 "integer >= 1)")
            continue
        value = config[key]
        if kind == "id" and value is None:
            continue
        values = value if key == "eos_token_id" and isinstance(value, list) and value else [value]
        for v in values:
            is_int = isinstance(v, int) and not isinstance(v, bool)
            if kind == "size":
                ok, expected = is_int and v >= 1, "an integer >= 1"
            elif kind == "id":
                ok, expected = is_int and v >= 0, "a token id (an integer >= 0) or null"
            else:
                ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0
                expected = "a number > 0"
            if not ok:
                raise ValueError(f"Cannot read {where}: '{key}' must be {expected}, got {value!r}")


class RMSNorm(nn.Module):
    """Root-mean-square layer norm (computed in float32, like transformers)."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        h = x.to(torch.float32)
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(dtype)


class RotaryEmbedding(nn.Module):
    """cos/sin tables of rotary position embeddings for given position ids."""

    def __init__(self, head_dim: int, theta: float) -> None:
        super().__init__()
        inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, position_ids: torch.Tensor, dtype: torch.dtype) -> KeyValue:
        freqs = position_ids[:, :, None].to(torch.float32) * self.inv_freq[None, None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos().to(dtype), emb.sin().to(dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """(x1, x2) -> (-x2, x1) over the last dimension's halves."""
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    """[batch, kv_heads, len, dim] -> [batch, kv_heads * n_rep, len, dim] (each KV head repeated)."""
    if n_rep == 1:
        return x
    b, kvh, t, d = x.shape
    return x[:, :, None, :, :].expand(b, kvh, n_rep, t, d).reshape(b, kvh * n_rep, t, d)


def build_attention_mask(attention_mask: torch.Tensor, query_len: int) -> torch.Tensor:
    """Boolean [batch, 1, query_len, total_len] mask: True where the query may attend the key."""
    total_len = attention_mask.shape[1]
    past_len = total_len - query_len
    device = attention_mask.device
    q_pos = torch.arange(query_len, device=device) + past_len
    k_pos = torch.arange(total_len, device=device)
    causal = k_pos[None, :] <= q_pos[:, None]
    return causal[None, None, :, :] & attention_mask[:, None, None, :].bool()


class Attention(nn.Module):
    """Grouped-query self-attention with rotary embeddings and a KV cache."""

    def __init__(self, cfg: Qwen2Config) -> None:
        super().__init__()
        self.num_heads = cfg.num_attention_heads
        self.num_kv_heads = cfg.num_key_value_heads
        self.head_dim = cfg.head_dim
        h, d = cfg.hidden_size, cfg.head_dim
        self.q_proj = nn.Linear(h, self.num_heads * d, bias=cfg.attention_bias)
        self.k_proj = nn.Linear(h, self.num_kv_heads * d, bias=cfg.attention_bias)
        self.v_proj = nn.Linear(h, self.num_kv_heads * d, bias=cfg.attention_bias)
        self.o_proj = nn.Linear(self.num_heads * d, h, bias=False)

    def forward(
        self,
        x: torch.Tensor,
        cos_sin: KeyValue,
        mask: torch.Tensor,
        past: KeyValue | None,
        mask_value: float,
    ) -> tuple[torch.Tensor, KeyValue]:
        b, s = x.shape[0], x.shape[1]
        q = self.q_proj(x).view(b, s, -1, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, s, -1, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, s, -1, self.head_dim).transpose(1, 2)
        cos, sin = cos_sin[0][:, None], cos_sin[1][:, None]
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if past is not None:
            k = torch.cat((past[0], k), dim=2)
            v = torch.cat((past[1], v), dim=2)
        # Grouped-query attention without copying the cache: the n_rep query heads that share a
        # KV head are stacked as extra query rows ([b, kv_heads, n_rep * s, d]), so each KV head
        # is read once by one matrix product. Repeating K and V per query head (repeat_kv, as
        # transformers does) materializes n_rep copies of the whole cache at every step: with
        # Qwen2.5-0.5B's 7 query heads per KV head and six children of a 512-token prefix, those
        # copies and the 84 small products took a third of a decode step (BENCHMARKS.md).
        n_rep = self.num_heads // self.num_kv_heads
        kvh, d = self.num_kv_heads, self.head_dim
        qg = q.reshape(b, kvh, n_rep * s, d)
        scores = torch.matmul(qg, k.transpose(2, 3)) / math.sqrt(d)
        scores = scores.view(b, kvh, n_rep, s, -1)
        scores = torch.where(mask[:, :, None], scores, torch.tensor(mask_value, dtype=scores.dtype))
        probs = torch.softmax(scores.to(torch.float32), dim=-1).to(q.dtype)
        out = torch.matmul(probs.view(b, kvh, n_rep * s, -1), v)
        out = out.view(b, self.num_heads, s, d).transpose(1, 2).reshape(b, s, -1)
        return self.o_proj(out), (k, v)


class MLP(nn.Module):
    """SwiGLU feed-forward: down(silu(gate(x)) * up(x))."""

    def __init__(self, cfg: Qwen2Config) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.up_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.down_proj = nn.Linear(cfg.intermediate_size, cfg.hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    """Pre-norm transformer block."""

    def __init__(self, cfg: Qwen2Config) -> None:
        super().__init__()
        self.self_attn = Attention(cfg)
        self.mlp = MLP(cfg)
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)

    def forward(
        self, x: torch.Tensor, cos_sin: KeyValue, mask: torch.Tensor, past: KeyValue | None, mask_value: float
    ) -> tuple[torch.Tensor, KeyValue]:
        attn, present = self.self_attn(self.input_layernorm(x), cos_sin, mask, past, mask_value)
        x = x + attn
        x = x + self.mlp(self.post_attention_layernorm(x))
        return x, present


class Qwen2Model(nn.Module):
    """Embeddings, decoder layers and the final norm; returns hidden states and the new KV cache."""

    def __init__(self, cfg: Qwen2Config) -> None:
        super().__init__()
        self.config = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.num_hidden_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.rotary_emb = RotaryEmbedding(cfg.head_dim, cfg.rope_theta)
        # Score of masked positions; None = the most negative finite value of the compute dtype.
        self.mask_value: float | None = None

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        past_key_values: list[KeyValue] | None = None,
    ) -> tuple[torch.Tensor, list[KeyValue]]:
        """Hidden states [batch, seq, hidden] and per-layer (key, value) [batch, kv_heads, past+seq, head_dim]."""
        b, s = input_ids.shape[0], input_ids.shape[1]
        if attention_mask is None:
            past_len = 0 if past_key_values is None else past_key_values[0][0].shape[2]
            attention_mask = torch.ones(b, past_len + s, dtype=torch.int64, device=input_ids.device)
        if position_ids is None:
            position_ids = torch.arange(s, device=input_ids.device)[None, :] + (attention_mask.shape[1] - s)
            position_ids = position_ids.expand(b, s)
        x = self.embed_tokens(input_ids)
        mask_value = self.mask_value if self.mask_value is not None else torch.finfo(x.dtype).min
        mask = build_attention_mask(attention_mask, s)
        cos_sin = self.rotary_emb(position_ids, x.dtype)
        presents: list[KeyValue] = []
        for i, layer in enumerate(self.layers):
            past = None if past_key_values is None else past_key_values[i]
            x, present = layer(x, cos_sin, mask, past, mask_value)
            presents.append(present)
        return self.norm(x), presents


class Qwen2ForCausalLM(nn.Module):
    """Qwen2 language model: `model` + `lm_head` (tied to the embeddings when configured)."""

    def __init__(self, cfg: Qwen2Config) -> None:
        super().__init__()
        self.config = cfg
        self.model = Qwen2Model(cfg)
        self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        if cfg.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        past_key_values: list[KeyValue] | None = None,
    ) -> tuple[torch.Tensor, list[KeyValue]]:
        """Logits [batch, seq, vocab] and the new KV cache."""
        hidden, presents = self.model(input_ids, attention_mask, position_ids, past_key_values)
        return self.logits(hidden), presents

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """lm_head over [batch, seq, hidden], as a 2-D linear so that the ONNX export can use
        Gemm(transB=1) on the tied embedding matrix instead of a transposed copy of it."""
        flat = hidden.reshape(-1, self.config.hidden_size)
        out = F.linear(flat, self.lm_head.weight)
        return out.reshape(hidden.shape[0], hidden.shape[1], self.config.vocab_size)


class Qwen2ForSequenceClassification(nn.Module):
    """`model` + `score` (no bias), pooled at the last non-pad token of each row (as transformers)."""

    def __init__(self, cfg: Qwen2Config, num_labels: int) -> None:
        super().__init__()
        if cfg.pad_token_id is None:
            raise ValueError("Cannot pool sequences as 'pad_token_id' is not set: current value is None")
        self.config = cfg
        self.num_labels = num_labels
        self.model = Qwen2Model(cfg)
        self.score = nn.Linear(cfg.hidden_size, num_labels, bias=False)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Logits [batch, num_labels]."""
        hidden, _ = self.model(input_ids, attention_mask)
        s = input_ids.shape[1]
        token_indices = torch.arange(s, device=input_ids.device)[None, :]
        non_pad = (input_ids != self.config.pad_token_id).to(torch.int64)
        last = (token_indices * non_pad).max(dim=-1).values  # last non-pad index (0 if none)
        index = last[:, None, None].expand(-1, 1, hidden.shape[-1])
        pooled = torch.gather(hidden, 1, index)[:, 0, :]
        return self.score(pooled)


LIKELIHOOD_MARKER_KEY = "arborist_likelihood_marker"
"""config.json key of a likelihood-feature classifier: the token ids after which the scored text
begins (the last occurrence counts; the paper prompt's "...the current step:\n")."""

LIKELIHOOD_FEATURES = ("min_logprob", "mean_logprob", "min_gap_to_argmax")
"""What a likelihood-feature classifier reads over the scored text, per row."""

LIKELIHOOD_FEATURE_SCALE = 10.0
"""The features enter `feature_score` multiplied by this: AdamW moves a weight by about the
learning rate per step whatever its gradient, and these few weights need to reach ~0.1 per nat
(measured: unscaled, 300 steps at lr 1e-3 left them at 0.001, unused)."""


class Qwen2ForLikelihoodClassification(Qwen2ForSequenceClassification):
    """A sequence classifier that also reads its own language model's likelihood of the scored text.

    logits = score(h_last) + feature_score(f), where f = LIKELIHOOD_FEATURES over the tokens after
    the last occurrence of `marker` (the whole row if there is none): the minimum and mean
    log-probability of each written token under the model's own `lm_head` (tied to the embeddings,
    so no new weights but `feature_score`), and the minimum gap between a written token's
    log-probability and the most likely token's (0 where every token is the argmax). A step
    checker needs "is the written result the one this model predicts?": a plain pooled head has
    to learn to move that comparison to the last token, which a tiny model does slowly; here it is
    an input. The graph keeps the engine's contract: (input_ids, attention_mask) -> [batch, labels].
    """

    def __init__(self, cfg: Qwen2Config, num_labels: int) -> None:
        super().__init__(cfg, num_labels)
        marker = cfg.extra.get(LIKELIHOOD_MARKER_KEY)
        if not isinstance(marker, list) or not marker or not all(isinstance(i, int) for i in marker):
            raise ValueError(
                f"Cannot build a likelihood-feature classifier as '{LIKELIHOOD_MARKER_KEY}' must be a non-empty "
                f"list of token ids: current value is {marker!r}"
            )
        self.marker = list(marker)
        self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        if cfg.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight
        self.feature_score = nn.Linear(len(LIKELIHOOD_FEATURES), num_labels, bias=True)
        with torch.no_grad():
            self.feature_score.weight.zero_()
            self.feature_score.bias.zero_()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Logits [batch, num_labels]."""
        hidden, _ = self.model(input_ids, attention_mask)
        features = self.features(hidden, input_ids) * LIKELIHOOD_FEATURE_SCALE
        return self.score(self._pool(hidden, input_ids)) + self.feature_score(features)

    def _pool(self, hidden: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
        s = input_ids.shape[1]
        token_indices = torch.arange(s, device=input_ids.device)[None, :]
        non_pad = (input_ids != self.config.pad_token_id).to(torch.int64)
        last = (token_indices * non_pad).max(dim=-1).values
        return torch.gather(hidden, 1, last[:, None, None].expand(-1, 1, hidden.shape[-1]))[:, 0, :]

    def features(self, hidden: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
        """[batch, len(LIKELIHOOD_FEATURES)] over the scored text of each row."""
        b, s = input_ids.shape
        lp = F.linear(hidden[:, :-1].reshape(-1, hidden.shape[-1]), self.lm_head.weight)
        lp = lp.reshape(b, s - 1, -1).log_softmax(-1)
        written = lp.gather(2, input_ids[:, 1:, None])[:, :, 0]  # [b, s-1]: log p(token t+1)
        gap = written - lp.max(dim=-1).values
        pos = torch.arange(1, s, device=input_ids.device)[None, :]  # position of each written token
        # end position of the last marker occurrence (-1 if none): marker ids compared at each shift
        k = len(self.marker)
        padded = torch.cat([torch.full((b, k), -1, dtype=input_ids.dtype, device=input_ids.device), input_ids], 1)
        match = torch.ones_like(padded[:, k:], dtype=torch.bool)
        for j, mid in enumerate(self.marker):
            match = match & (padded[:, j + 1 : j + 1 + s] == mid)
        all_pos = torch.arange(s, device=input_ids.device)[None, :]
        last_marker = torch.where(match, all_pos, torch.full_like(all_pos, -1)).max(dim=-1).values
        region = (pos > last_marker[:, None]) & (input_ids[:, 1:] != self.config.pad_token_id)
        count = region.sum(-1).clamp(min=1).to(written.dtype)
        big = torch.full_like(written, 1e4)
        min_lp = torch.where(region, written, big).min(-1).values.clamp(-20.0, 0.0)
        mean_lp = (torch.where(region, written, torch.zeros_like(written)).sum(-1) / count).clamp(-20.0, 0.0)
        min_gap = torch.where(region, gap, big).min(-1).values.clamp(-20.0, 0.0)
        return torch.stack([min_lp, mean_lp, min_gap], dim=-1)


class Qwen2ForTokenClassification(nn.Module):
    """`model` + `score` (with bias) applied at every position."""

    def __init__(self, cfg: Qwen2Config, num_labels: int) -> None:
        super().__init__()
        self.config = cfg
        self.num_labels = num_labels
        self.model = Qwen2Model(cfg)
        self.score = nn.Linear(cfg.hidden_size, num_labels, bias=True)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Logits [batch, seq, num_labels]."""
        hidden, _ = self.model(input_ids, attention_mask)
        return self.score(hidden)


@torch.no_grad()
def init_weights(
    module: nn.Module,
    generator: torch.Generator,
    std: float = 0.02,
    embed_std: float | None = None,
    head_std: float | None = None,
    norm_jitter: float = 0.0,
) -> None:
    """Random init: normal(std) for linear weights and biases, normal(embed_std) for embeddings,
    normal(head_std) for `lm_head`/`score` when untied, 1 + normal(norm_jitter) for norm weights."""
    embed_std = std if embed_std is None else embed_std
    head_std = std if head_std is None else head_std
    seen: set[int] = set()
    for name, p in module.named_parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        if name.endswith("embed_tokens.weight"):
            p.normal_(0.0, embed_std, generator=generator)
        elif name.startswith(("lm_head.", "score.")):
            p.normal_(0.0, head_std, generator=generator)
        elif "norm" in name:
            p.fill_(1.0)
            if norm_jitter:
                p.add_(torch.randn(p.shape, generator=generator) * norm_jitter)
        else:
            p.normal_(0.0, std, generator=generator)
