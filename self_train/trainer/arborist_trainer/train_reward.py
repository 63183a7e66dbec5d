"""Train a reward model in one of the head layouts the engine loads, and export it.

  /usr/bin/python3 -m arborist_trainer.train_reward --data FILE --format paper|trl|openrlhf \\
      (--init DIR|FILE.pt | --config JSON --tokenizer DIR) \\
      [--head sequence-classification|token-classification|lm-tokens] [--labels 1|2] \\
      [--loss mse|bce|ce] --out DIR [--steps N] [--batch B] [--lr LR] [--resume] ...

Heads (reward.json "head"/"format" of the exported directory):
  sequence-classification / paper  one input per step (the paper's prompt), pooled at the last
      non-pad token. 1 label: --loss mse (Monte-Carlo scores; the engine clips the raw logit to
      [0, 1]) or bce (0/1 labels; the exported graph ends in a sigmoid so the engine reads the
      probability). 2 labels: --loss ce (the engine reads softmax class 1) or mse on it.
  token-classification / qwen-prm  2 labels at every step token (`<extra_0>`).
  lm-tokens / math-shepherd  a causal LM read at the step tag (" ки"): softmax over the label
      tokens ("+", "-"); exported as a decoder with KV cache.
With --likelihood-features a sequence classifier also reads its own language model's
log-probabilities of the scored text (Qwen2ForLikelihoodClassification; the export keeps the
engine's contract); --heads-only trains only the heads on a frozen decoder (the bundled reward
models: the backbone's likelihoods are the step checker, the labels calibrate it).
Data formats: see `arborist_trainer.data`.

--init takes a model directory (its ONNX weights are read back by name; a classifier may start
from a decoder: the new `score` head is drawn at random), a directory with ckpt.pt, or a .pt file.
--config gives a Hugging Face Qwen2 config (file or inline JSON) for a random init.

Checkpoints go to OUT/ckpt.pt (every --save-every steps, at the end, on SIGINT/SIGTERM); --resume
continues from it bit-exactly. Progress on stderr; the last stdout line is a JSON summary
({"first_loss", "last_loss", "losses", ..., "out"}). At the end OUT holds model.onnx,
config.json, tokenizer files, generation_config.json and reward.json.
"""

from __future__ import annotations

if __name__ == "__main__":  # before torch loads: glibc reads the malloc settings at start-up
    from ._runtime import ensure_malloc_env

    ensure_malloc_env("arborist_trainer.train_reward")

import argparse
import sys
import warnings
from pathlib import Path

import torch
from torch import nn

from . import export as ex
from .data import MIN_MAX_LEN, read_reward_data, reward_batch
from .losses import check_reward_loss, reward_loss, reward_scores
from .tokenizer import BPETokenizer
from .training import LoopConfig, check_common_args, file_digest, print_summary, run_cli, setup_runtime, train
from .weights import (
    DEFAULT_MAX_LEN,
    HEAD_ARCH,
    HEAD_FORMAT,
    HEADS,
    init_model,
    log,
    model_config,
    resolve_max_len,
    tokenizer_dir as find_tokenizer_dir,
    write_model_dir,
)


PAPER_MARKER = " the current step:\n"
"""Where the scored text of the paper prompt begins (reward/prompts.ts `paperPrompt`)."""


class SigmoidOutput(nn.Module):
    """A 1-label sequence classifier whose output is sigmoid(logit): what a BCE-trained head
    exports, so that the engine's [0, 1] clip of a 1-label output reads the probability."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.config = inner.config

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        return torch.sigmoid(self.inner(input_ids, attention_mask))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python3 -m arborist_trainer.train_reward",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data", required=True, type=Path, help="JSONL training data")
    p.add_argument("--format", default="paper", choices=("paper", "trl", "openrlhf"), help="data format")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--init", help="model directory (ONNX weights), directory with ckpt.pt, or .pt file")
    src.add_argument("--config", help="Hugging Face Qwen2 config.json path or inline JSON (random init)")
    p.add_argument("--tokenizer", type=Path, help="directory with tokenizer.json (default: --init's)")
    p.add_argument("--head", default="sequence-classification", choices=HEADS)
    p.add_argument("--labels", type=int, choices=(1, 2), help="outputs of a sequence classifier "
                   "(default: 2 for --loss ce, else 1; token-classification: 2)")
    p.add_argument("--loss", choices=("mse", "bce", "ce"), help="default: mse for 1 label, ce for 2")
    p.add_argument("--out", required=True, type=Path, help="output model directory (and ckpt.pt)")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--warmup", type=int, default=0, help="linear warm-up steps")
    p.add_argument("--schedule", default="constant", choices=("constant", "cosine"))
    p.add_argument("--grad-clip", type=float, default=1.0, help="max gradient norm (0: off)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-len", type=int, help="tokens per example (paper: the end is kept); default and maximum: "
                   f"the model's context (max_position_embeddings), else {DEFAULT_MAX_LEN}; at least {MIN_MAX_LEN}")
    p.add_argument("--step-tag", help="step token of token-classification / lm-tokens heads "
                   "(default <extra_0> / ' ки')")
    p.add_argument("--label-tokens", nargs=2, default=["+", "-"], metavar=("GOOD", "BAD"),
                   help="lm-tokens: the tokens read at each tag; also the hard labels of openrlhf data")
    p.add_argument("--dense", action="store_true",
                   help="sequence-classification: also learn the label at every token of the current step "
                        "(paper prompt), not only at the last token the engine reads (half the loss each)")
    p.add_argument("--extra-layers", type=int, default=0,
                   help="with --init: decoder layers added on top, starting as the identity (room for the "
                        "head's feature: a 4-layer policy computes the next token in its last layers)")
    p.add_argument("--likelihood-features", nargs="?", const=PAPER_MARKER, metavar="MARKER",
                   help="sequence-classification: also read the model's own log-probability of the scored "
                        "text (the tokens after the last MARKER, default the paper prompt's "
                        f"{PAPER_MARKER!r}): its minimum, mean and gap to the argmax, through a linear "
                        "feature head (Qwen2ForLikelihoodClassification); the export is still "
                        "(input_ids, attention_mask) -> logits")
    p.add_argument("--heads-only", action="store_true",
                   help="train only the new head(s) (score, feature_score); the decoder stays as --init "
                        "gave it (with --likelihood-features: the features are the initial model's own)")
    p.add_argument("--init-std", type=float, default=0.02, help="std of a --config random init")
    p.add_argument("--save-every", type=int, default=100)
    p.add_argument("--log-every", type=int, default=0, help="0: about 20 progress lines")
    p.add_argument("--stop-after", type=int, default=0, help="stop (with a checkpoint) after N steps of this run")
    p.add_argument("--resume", action="store_true", help="continue from OUT/ckpt.pt")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu", help="cpu, or cuda where a GPU is lent (never required)")
    args = p.parse_args(argv)
    if args.head == "sequence-classification":
        if args.labels is None:
            args.labels = 2 if args.loss == "ce" else 1
        if args.loss is None:
            args.loss = "ce" if args.labels == 2 else "mse"
    else:
        args.labels = 2
        args.loss = args.loss or "ce"
        if args.loss == "bce":
            p.error("--loss bce is for 1-label sequence classification; use ce")
    if args.dense and args.head != "sequence-classification":
        p.error("--dense is for --head sequence-classification (tagged heads are labelled at their tags)")
    if args.likelihood_features is not None and (args.head != "sequence-classification" or args.dense):
        p.error("--likelihood-features is for --head sequence-classification without --dense")
    try:
        check_reward_loss(args.loss, args.labels)
    except ValueError as e:
        p.error(str(e))
    if args.config is not None and args.tokenizer is None:
        p.error("--config needs --tokenizer DIR (reward data is text)")
    if args.extra_layers < 0:
        p.error(f"--extra-layers must be an integer >= 0: current value is {args.extra_layers}")
    check_common_args(p, args)
    return args


def _contains(ids: list[int], sub: list[int]) -> bool:
    return any(ids[i : i + len(sub)] == sub for i in range(len(ids) - len(sub) + 1))


def label_token_ids(tok: BPETokenizer, tokens: list[str]) -> list[int]:
    """Ids of (good, bad) single tokens (the last id if a token encodes to several)."""
    out = []
    for t in tokens:
        i = tok.token_to_id(t)
        if i is None:
            ids = tok.encode(t, add_special_tokens=False)
            if not ids:
                raise ValueError(f"Cannot use the label token {t!r}: it encodes to nothing")
            i = ids[-1]
        out.append(i)
    return out


def make_step_loss(head: str, loss: str, good_bad: list[int] | None, dense: bool = False):  # noqa: ANN201
    """(model, batch) -> (loss, metrics) for a head. `dense`: the mean of the loss at the last
    tokens (what the engine reads) and the loss at every labelled token of the current steps."""

    def step_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        labels = batch["labels"]
        if dense:
            hidden, _ = model.model(batch["input_ids"], batch["attention_mask"])
            logits = model.score(hidden[batch["label_rows"], batch["label_positions"]])
            last = batch["label_last"]
            value = 0.5 * reward_loss(logits[last], labels[last], loss) + 0.5 * reward_loss(logits, labels, loss)
            logits, labels = logits[last], labels[last]
        else:
            logits = head_logits(model, head, batch, good_bad)
            value = reward_loss(logits, labels, loss)
        with torch.no_grad():
            scores = reward_scores(logits.detach(), loss)
            acc = ((scores > 0.5) == (labels > 0.5)).float().mean()
        return value, {"acc": float(acc)}

    return step_loss


def head_logits(
    model: nn.Module, head: str, batch: dict[str, torch.Tensor], good_bad: list[int] | None
) -> torch.Tensor:
    """[n_labels, 1 or 2] logits at the labelled positions ((bad, good) for lm-tokens)."""
    if head == "sequence-classification":
        return model(batch["input_ids"], batch["attention_mask"])
    rows, pos = batch["label_rows"], batch["label_positions"]
    if head == "token-classification":
        return model(batch["input_ids"], batch["attention_mask"])[rows, pos]
    hidden, _ = model.model(batch["input_ids"], batch["attention_mask"])
    picked = hidden[rows, pos]  # [n, hidden]: the lm_head only where it is read
    good, bad = good_bad  # type: ignore[misc]
    weight = model.lm_head.weight[[bad, good]]
    return picked @ weight.T


def export_reward(model: nn.Module, args: argparse.Namespace, hf: dict, tokenizer_dir: Path) -> None:
    """Write the engine's model directory into args.out."""
    reward = {"head": args.head, "format": HEAD_FORMAT[args.head]}
    if args.head == "lm-tokens":
        reward |= {"step_tag": args.step_tag or " ки", "label_tokens": list(args.label_tokens)}
        graph = ex.export_decoder(model)
    else:
        if args.step_tag and args.head == "token-classification":
            reward["step_token"] = args.step_tag
        target = model
        if args.head == "sequence-classification" and args.labels == 1 and args.loss == "bce":
            target = SigmoidOutput(model)
        graph = ex.export_classifier(target.eval())
    reward["trained"] = {
        "loss": args.loss,
        "labels": args.labels,
        "output": "sigmoid" if args.loss == "bce" else ("softmax" if args.labels == 2 else "raw clipped to [0, 1]"),
    }
    write_model_dir(
        args.out,
        graph,
        hf_config=hf,
        architecture=HEAD_ARCH[args.head],
        tokenizer_dir=tokenizer_dir,
        num_labels=None if args.head == "lm-tokens" else args.labels,
        reward=reward,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_runtime(args.threads)
    warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)  # the export's constant masks
    hf_source, config_where = model_config(args.init, args.config)
    args.max_len = resolve_max_len(args.max_len, hf_source, config_where)
    tokenizer_dir = find_tokenizer_dir(args.init, args.tokenizer)
    tok = BPETokenizer.from_file(tokenizer_dir)
    examples = read_reward_data(args.data, args.format, args.head, tok, max_len=args.max_len, step_tag=args.step_tag,
                                reward_tokens=tuple(args.label_tokens), dense=args.dense)
    marker = None
    if args.likelihood_features is not None:
        marker = tok.encode(args.likelihood_features, add_special_tokens=False)
        if not marker:
            raise ValueError(f"Cannot use --likelihood-features {args.likelihood_features!r}: it encodes to no tokens")
        missing = [i for i, e in enumerate(examples[:200]) if not _contains(e.ids, marker)]
        if missing:
            raise ValueError(
                f"Cannot use --likelihood-features {args.likelihood_features!r}: its tokens {marker} do not occur in "
                f"example {missing[0] + 1} of {args.data} (of the first 200, {len(missing)} lack it); give the marker "
                "that precedes the scored text in this data's prompts"
            )
    model, hf, fresh = init_model(
        args.head, args.labels, init=args.init, config=args.config, seed=args.seed, init_std=args.init_std,
        extra_layers=args.extra_layers, likelihood_marker=marker,
    )
    if args.heads_only:
        if args.head != "sequence-classification" and args.head != "token-classification":
            raise ValueError(f"Cannot train --heads-only with head {args.head!r}: it has no head apart from the decoder")
        for name, p in model.named_parameters():
            p.requires_grad_(name.startswith(("score.", "feature_score.")))
    if tok.vocab_size > model.config.vocab_size:
        raise ValueError(f"Cannot train: the tokenizer has {tok.vocab_size} ids, the model {model.config.vocab_size}")
    pad = model.config.pad_token_id
    if pad is None:
        raise ValueError("Cannot pad batches: the config has no pad_token_id")
    good_bad = label_token_ids(tok, args.label_tokens) if args.head == "lm-tokens" else None
    n_labels = sum(len(e.labels) for e in examples)  # >= 1: read_reward_data refuses data with no labels
    log(f"data: {len(examples)} examples, {n_labels} labels, mean label "
        f"{sum(x for e in examples for x in e.labels) / n_labels:.3f}; init: "
        f"{args.init or 'random (--config)'}" + (f", drawn at random: {', '.join(fresh)}" if fresh else ""))
    cfg = LoopConfig.from_args(args)
    run_args = {"kind": "reward", "head": args.head, "labels": args.labels, "loss": args.loss,
                "data_digest": file_digest(args.data), "max_len": args.max_len, "dense": args.dense,
                "extra_layers": args.extra_layers, "likelihood_marker": marker, "heads_only": args.heads_only}
    summary = train(model, examples, lambda rows: reward_batch(rows, pad),
                    make_step_loss(args.head, args.loss, good_bad, args.dense), cfg, run_args)
    if summary["finished"]:
        export_reward(model, args, hf, tokenizer_dir)
        summary["out"] = str(args.out)
    summary |= {"kind": "reward", "head": args.head, "labels": args.labels, "loss": args.loss,
                "examples": len(examples)}
    print_summary(summary)
    return 130 if summary["stopped_by_signal"] else 0


if __name__ == "__main__":
    sys.exit(run_cli("arborist_trainer.train_reward", main))
