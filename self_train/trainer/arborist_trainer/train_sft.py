"""KL-regularized SFT of a policy on self-training trajectories, exported as a KV decoder.

  /usr/bin/python3 -m arborist_trainer.train_sft --data FILE (--init DIR|FILE.pt | --config JSON
      --tokenizer DIR) --out DIR [--steps N] [--batch B] [--lr LR] [--beta 0.1]
      [--kl-form log1p|plain] [--kl-support topk|topk+rest] [--resume] ...

Data: JSONL rows {"prompt_ids", "completion_ids", "ref_top": [[{"id", "logprob"}, ...] per
completion token], ...} in the policy's token ids (no tokenizer needed).

Loss (`arborist_trainer.losses.sft_loss`, which documents the details):
  CE on completion tokens only (prompt and padding masked; logits at t predict token t + 1,
  shifted once) + β · KL(π_ref ‖ π_θ) from the reference's exported top-k:
    --kl-form log1p (default, as the paper's reference code): CE + β · log(1 + KL)
    --kl-form plain: CE + β · KL
  KL over the top-k support: π_ref renormalized over its top-k, against the policy's
  full-vocabulary log-probabilities (--kl-support topk, default), or the {top-k, rest}
  coarse-graining (--kl-support topk+rest). β = 0 is plain SFT.

Checkpoints, --resume, progress and the summary line work as in train_reward. At the end OUT
holds model.onnx (inputs input_ids, attention_mask, position_ids, past_key_values.*; outputs
logits, present.*), config.json, tokenizer files and generation_config.json from the init dir.
"""

from __future__ import annotations

if __name__ == "__main__":  # before torch loads: glibc reads the malloc settings at start-up
    from ._runtime import ensure_malloc_env

    ensure_malloc_env("arborist_trainer.train_sft")

import argparse
import math
import sys
import warnings
from pathlib import Path

import torch
from torch import nn

from . import export as ex
from .data import MIN_MAX_LEN, read_sft_data, sft_batch
from .losses import KL_FORMS, KL_SUPPORTS, sft_loss
from .model import LIKELIHOOD_MARKER_KEY
from .training import LoopConfig, check_common_args, file_digest, print_summary, run_cli, setup_runtime, train
from .weights import DEFAULT_MAX_LEN, init_model, log, model_config, resolve_max_len, write_model_dir
from .weights import tokenizer_dir as find_tokenizer_dir


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python3 -m arborist_trainer.train_sft",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data", required=True, type=Path, help="KL-SFT JSONL export")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--init", help="policy model directory (ONNX weights), directory with ckpt.pt, or .pt file")
    src.add_argument("--config", help="Hugging Face Qwen2 config.json path or inline JSON (random init)")
    p.add_argument("--tokenizer", type=Path, help="directory whose tokenizer files are copied (default: --init's)")
    p.add_argument("--out", required=True, type=Path, help="output model directory (and ckpt.pt)")
    p.add_argument("--beta", type=float, default=0.1, help="KL weight (0: plain SFT)")
    p.add_argument("--kl-form", default="log1p", choices=KL_FORMS, help="log1p: CE + β·log(1+KL); plain: CE + β·KL")
    p.add_argument("--kl-support", default="topk", choices=KL_SUPPORTS)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--lr", type=float, default=1e-5)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--warmup", type=int, default=0)
    p.add_argument("--schedule", default="constant", choices=("constant", "cosine"))
    p.add_argument("--grad-clip", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-len", type=int, help="tokens per row (the prompt is cut from the left); default and maximum: "
                   f"the model's context (max_position_embeddings), else {DEFAULT_MAX_LEN}; at least {MIN_MAX_LEN}")
    p.add_argument("--init-std", type=float, default=0.02)
    p.add_argument("--save-every", type=int, default=100)
    p.add_argument("--log-every", type=int, default=0)
    p.add_argument("--stop-after", type=int, default=0)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu", help="cpu, or cuda where a GPU is lent (never required)")
    args = p.parse_args(argv)
    if not (math.isfinite(args.beta) and args.beta >= 0):
        p.error(f"--beta must be a finite number >= 0: current value is {args.beta}")
    if args.config is not None and args.tokenizer is None:
        p.error("--config needs --tokenizer DIR (the exported model directory needs tokenizer files)")
    check_common_args(p, args)
    return args


def make_step_loss(beta: float, kl_form: str, kl_support: str):  # noqa: ANN201
    """(model, batch) -> (loss, {"ce", "kl", "tokens"})."""

    def step_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        logits, _ = model(batch["input_ids"], batch["attention_mask"])
        return sft_loss(
            logits, batch["input_ids"], batch["completion_mask"], batch["ref_ids"], batch["ref_logprobs"],
            batch["ref_mask"], beta=beta, kl_form=kl_form, kl_support=kl_support,
        )

    return step_loss


def check_policy_config(hf: dict, where: str) -> None:
    """ValueError when the config is not a policy's (a causal LM): KL-SFT of a reward model's
    decoder would train its classifier-tuned weights as a language model and export a policy
    that writes nonsense."""
    arch = hf.get("architectures") or []
    name = arch[0] if isinstance(arch, list) and arch else None
    if (name is not None and not str(name).endswith("ForCausalLM")) or LIKELIHOOD_MARKER_KEY in hf:
        raise ValueError(
            f"Cannot train a policy from {where}: it is a reward model's config (architectures {arch!r}"
            + (f", {LIKELIHOOD_MARKER_KEY}" if LIKELIHOOD_MARKER_KEY in hf else "")
            + "); give the policy to fine-tune as --init (a causal LM, e.g. models/policy)")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_runtime(args.threads)
    warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)  # the export's constant masks
    hf_source, config_where = model_config(args.init, args.config)
    check_policy_config(hf_source, config_where)
    args.max_len = resolve_max_len(args.max_len, hf_source, config_where)
    tokenizer_dir = find_tokenizer_dir(args.init, args.tokenizer)
    vocab_size = hf_source["vocab_size"]  # model_config checked it (a required integer >= 1)
    # token ids are checked against the vocabulary as they are read (FILE:LINE, field)
    examples = read_sft_data(args.data, max_len=args.max_len, need_ref=args.beta != 0, vocab_size=vocab_size)
    model, hf, fresh = init_model("causal-lm", 0, init=args.init, config=args.config, seed=args.seed,
                                  init_std=args.init_std)
    cfg_model = model.config
    pad = cfg_model.pad_token_id if cfg_model.pad_token_id is not None else (cfg_model.eos_token_id or 0)
    n_tok = sum(len(e.completion_ids) for e in examples)
    log(f"data: {len(examples)} rows, {n_tok} completion tokens; beta {args.beta}, kl {args.kl_form} "
        f"over {args.kl_support}; init: {args.init or 'random (--config)'}"
        + (f", drawn at random: {', '.join(fresh)}" if fresh else ""))
    cfg = LoopConfig.from_args(args)
    run_args = {"kind": "sft", "beta": args.beta, "kl_form": args.kl_form, "kl_support": args.kl_support,
                "data_digest": file_digest(args.data), "max_len": args.max_len}
    summary = train(model, examples, lambda rows: sft_batch(rows, pad),
                    make_step_loss(args.beta, args.kl_form, args.kl_support), cfg, run_args)
    if summary["finished"]:
        write_model_dir(args.out, ex.export_decoder(model), hf_config=hf, architecture="Qwen2ForCausalLM",
                        tokenizer_dir=tokenizer_dir)
        summary["out"] = str(args.out)
    summary |= {"kind": "sft", "beta": args.beta, "kl_form": args.kl_form, "kl_support": args.kl_support,
                "examples": len(examples)}
    print_summary(summary)
    return 130 if summary["stopped_by_signal"] else 0


if __name__ == "__main__":
    sys.exit(run_cli("arborist_trainer.train_sft", main))
