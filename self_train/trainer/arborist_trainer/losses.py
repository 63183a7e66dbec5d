"""Losses of the reward heads and of KL-regularized SFT.

Reward heads (`reward_loss`), labels y in [0, 1] (0/1 human labels or Monte-Carlo scores):
  1 logit z (sequence classification, regression):
    mse  (z - y)^2                    the engine reads z clipped to [0, 1]
    bce  -(y log s(z) + (1-y) log(1 - s(z))), s = sigmoid; the export then ends in a sigmoid so
         that the engine's clip reads s(z)
  2 logits (sequence / token classification, or the "+"/"-" logits of an lm-tokens head,
  ordered (bad, good)), p = softmax class 1:
    ce   -(y log p + (1-y) log(1-p))  (soft cross-entropy; plain CE for 0/1 labels)
    mse  (p - y)^2

KL-SFT (`sft_loss`): see its docstring.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

REWARD_LOSSES = ("mse", "bce", "ce")
KL_FORMS = ("plain", "log1p")
KL_SUPPORTS = ("topk", "topk+rest")


def check_reward_loss(loss: str, num_labels: int) -> None:
    """Raise ValueError unless `loss` goes with `num_labels` outputs."""
    if loss not in REWARD_LOSSES:
        raise ValueError(f"Cannot train with loss {loss!r}: use {', '.join(REWARD_LOSSES)}")
    if num_labels not in (1, 2):
        raise ValueError(f"Cannot train {num_labels} labels: a reward head has 1 or 2")
    if loss == "ce" and num_labels != 2:
        raise ValueError("Cannot use --loss ce with 1 label: use --labels 2, or --loss bce / mse")
    if loss == "bce" and num_labels != 1:
        raise ValueError("Cannot use --loss bce with 2 labels: use --loss ce (the same loss for 2 classes)")


def reward_loss(logits: torch.Tensor, labels: torch.Tensor, loss: str) -> torch.Tensor:
    """Mean loss of `logits` [n, 1 or 2] against `labels` [n] (see the module docstring)."""
    logits = logits.float()
    check_reward_loss(loss, logits.shape[-1])
    if logits.shape[-1] == 1:
        z = logits[:, 0]
        if loss == "mse":
            return F.mse_loss(z, labels)
        return F.binary_cross_entropy_with_logits(z, labels)
    logp = F.log_softmax(logits, dim=-1)
    if loss == "ce":
        return -(labels * logp[:, 1] + (1.0 - labels) * logp[:, 0]).mean()
    return F.mse_loss(logp[:, 1].exp(), labels)


def reward_scores(logits: torch.Tensor, loss: str) -> torch.Tensor:
    """What the engine reads from these logits, as trained: [n] scores in [0, 1]."""
    logits = logits.float()
    if logits.shape[-1] == 1:
        z = logits[:, 0]
        return torch.sigmoid(z) if loss == "bce" else z.clamp(0.0, 1.0)
    return torch.softmax(logits, dim=-1)[:, 1]


def sft_loss(
    logits: torch.Tensor,
    input_ids: torch.Tensor,
    completion_mask: torch.Tensor,
    ref_ids: torch.Tensor | None = None,
    ref_logprobs: torch.Tensor | None = None,
    ref_mask: torch.Tensor | None = None,
    *,
    beta: float = 0.1,
    kl_form: str = "log1p",
    kl_support: str = "topk",
) -> tuple[torch.Tensor, dict[str, float]]:
    """KL-regularized SFT loss of one batch; returns (loss, {"ce", "kl", "tokens"}).

    Inputs are aligned to TOKEN positions t of `input_ids` [b, s]: `completion_mask[b, t]` is 1
    where token t belongs to the completion (0 on the prompt and on padding), and
    `ref_ids` / `ref_logprobs` / `ref_mask` [b, s, k] hold the reference policy's top-k
    (ids, log-probabilities, 1 where present) for the distribution of token t. The logits at
    position t predict token t + 1, so everything is shifted once, here: logits[:, :-1] against
    the targets input_ids[:, 1:] with completion_mask[:, 1:]. Prompt and padding targets get
    weight 0 (changing their logits changes nothing); logits at the last prompt position do
    count, since they predict the first completion token.

    CE = mean over completion tokens of -log p_θ(token)  (p_θ: full-vocabulary softmax).

    KL(π_ref ‖ π_θ) per completion token, from the exported top-k only. The full reference
    distribution is unknown, so this is an approximation:
      kl_support "topk" (default): renormalize π_ref over its top-k, p̂(v) = p_ref(v) / Σ_topk p_ref,
        KL_t = Σ_{v ∈ topk} p̂(v) (log p̂(v) − log p_θ(v)),  p_θ the full-vocabulary softmax.
        It is ≥ 0 (= KL(p̂ ‖ p_θ renormalized on topk) − log p_θ(topk)) and 0 exactly when π_θ
        puts probability p̂(v) on each top-k token (hence nothing elsewhere). Its minimum is the
        truncated reference, so it also pulls the policy's mass into the reference's top-k.
      kl_support "topk+rest": the KL between the two distributions coarsened to {top-k tokens,
        "everything else"} with the reference's log-probs as given (not renormalized). A lower
        bound of the true KL (data processing), 0 when π_θ equals π_ref on the top-k.
    KL = mean of KL_t over completion tokens.

    kl_form "log1p" (default, the reference code): loss = CE + β · log(1 + KL);
    kl_form "plain": loss = CE + β · KL. β = 0 gives plain SFT (the KL is still reported).
    """
    if kl_form not in KL_FORMS:
        raise ValueError(f"Cannot use kl_form {kl_form!r}: use {', '.join(KL_FORMS)}")
    if kl_support not in KL_SUPPORTS:
        raise ValueError(f"Cannot use kl_support {kl_support!r}: use {', '.join(KL_SUPPORTS)}")
    logp = F.log_softmax(logits[:, :-1].float(), dim=-1)  # [b, s-1, V]: distribution of token t+1
    targets = input_ids[:, 1:]
    mask = completion_mask[:, 1:].float()
    n_tokens = mask.sum().clamp(min=1.0)
    nll = -logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    ce = (nll * mask).sum() / n_tokens
    kl = torch.zeros((), dtype=ce.dtype)
    if ref_ids is not None and ref_logprobs is not None:
        kl = (_kl_per_token(logp, ref_ids[:, 1:], ref_logprobs[:, 1:].float(), _mask(ref_mask, ref_ids)[:, 1:],
                            kl_support) * mask).sum() / n_tokens
    elif beta != 0:
        raise ValueError("Cannot compute the KL term: no reference top-k given (use beta 0 for plain SFT)")
    reg = kl if kl_form == "plain" else torch.log1p(kl)
    loss = ce + beta * reg if beta != 0 else ce
    return loss, {"ce": float(ce.detach()), "kl": float(kl.detach()), "tokens": float(mask.sum())}


def _mask(ref_mask: torch.Tensor | None, ref_ids: torch.Tensor) -> torch.Tensor:
    return torch.ones_like(ref_ids, dtype=torch.float32) if ref_mask is None else ref_mask.float()


def _kl_per_token(
    logp: torch.Tensor, ref_ids: torch.Tensor, ref_lp: torch.Tensor, ref_mask: torch.Tensor, support: str
) -> torch.Tensor:
    """KL_t [b, s-1] (0 where a position has no reference entries)."""
    present = ref_mask > 0
    neg_inf = torch.finfo(ref_lp.dtype).min
    ref_lp = torch.where(present, ref_lp, torch.full_like(ref_lp, neg_inf))
    policy_lp = logp.gather(-1, ref_ids)  # [b, s-1, k]
    any_present = present.any(-1)
    if support == "topk":
        ref_hat = ref_lp - torch.logsumexp(ref_lp, dim=-1, keepdim=True)
        p_hat = ref_hat.exp() * ref_mask
        kl = (p_hat * (ref_hat - policy_lp)).sum(-1)
    else:
        p_ref = ref_lp.exp() * ref_mask
        kl = (p_ref * (ref_lp - policy_lp)).sum(-1)
        eps = 1e-6
        ref_rest = (1.0 - p_ref.sum(-1)).clamp(min=eps)
        pol_rest = (1.0 - (policy_lp.exp() * ref_mask).sum(-1)).clamp(min=eps)
        kl = kl + ref_rest * (ref_rest.log() - pol_rest.log())
    return torch.where(any_present, kl, torch.zeros_like(kl))
