"""The training loop shared by the trainers: deterministic batches, AdamW, checkpoints that a
later run resumes from (bit-exact), progress on stderr, and a JSON summary on stdout.

Batches: the sample at global index g = step * batch + i is example perm_e[g mod N] with
e = g div N and perm_e a permutation seeded by (seed, e). The order is a function of the seed
and the step alone, so a resumed run sees exactly the batches the uninterrupted one would.

`ckpt.pt` in the output directory: {"model", "optimizer", "step", "rng", "losses", "tokens",
"seconds", "args", "version"}; written every `save_every` steps, on `stop_after`, on SIGINT /
SIGTERM (after the step in flight) and at the end, through a temporary file and a rename.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import signal
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from .data import MIN_MAX_LEN
from .weights import load_trusted, log

CKPT_NAME = "ckpt.pt"
CKPT_VERSION = 1
# Arguments that must not change between a run and its resumption.
RESUME_FIXED = ("batch", "seed", "lr", "weight_decay", "warmup", "schedule", "grad_clip")
_UNRECORDED = object()
# Settings in a trainer's run args that must not change on --resume: (the option, the value a
# checkpoint that lacks the key ran with; _UNRECORDED: unknown, so not compared). The reward
# trainer wrote dense / extra_layers / likelihood_marker / heads_only only when set, from the
# version that introduced them; max_len was not recorded before.
RESUME_SETTINGS = {
    "kind": ("the trainer", _UNRECORDED),
    "head": ("--head", _UNRECORDED),
    "labels": ("--labels", _UNRECORDED),
    "loss": ("--loss", _UNRECORDED),
    "beta": ("--beta", _UNRECORDED),
    "kl_form": ("--kl-form", _UNRECORDED),
    "kl_support": ("--kl-support", _UNRECORDED),
    "data_digest": ("--data (the file's sha256)", _UNRECORDED),
    "max_len": ("--max-len", _UNRECORDED),
    "dense": ("--dense", False),
    "extra_layers": ("--extra-layers", 0),
    "likelihood_marker": ("--likelihood-features (the marker's token ids)", None),
    "heads_only": ("--heads-only", False),
}


def check_common_args(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Usage errors (argparse's exit code 2) for the options both trainers share."""
    for name in ("threads", "save_every"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be an integer >= 1: current value is {getattr(args, name)}")
    for name in ("log_every", "stop_after", "warmup"):
        if getattr(args, name) < 0:
            p.error(f"--{name.replace('_', '-')} must be an integer >= 0: current value is {getattr(args, name)}")
    if args.max_len is not None and args.max_len < MIN_MAX_LEN:
        p.error(f"--max-len must be an integer >= {MIN_MAX_LEN} (one prompt and one completion or scored token): "
                f"current value is {args.max_len}")
    for name, low, strict in (("lr", 0.0, True), ("weight_decay", 0.0, False), ("grad_clip", 0.0, False),
                              ("init_std", 0.0, False)):
        value = getattr(args, name)
        if not math.isfinite(value) or value < low or (strict and value == low):
            p.error(f"--{name.replace('_', '-')} must be a finite number {'>' if strict else '>='} {low:g}: "
                    f"current value is {value}")


def setup_runtime(threads: int) -> None:
    """torch threads (the malloc environment is `_runtime.ensure_malloc_env`'s, before torch loads)."""
    torch.set_num_threads(threads)


@dataclass
class LoopConfig:
    """Optimizer, schedule and bookkeeping of a run."""

    out: Path
    steps: int
    batch: int
    lr: float
    seed: int = 0
    weight_decay: float = 0.0
    warmup: int = 0
    schedule: str = "constant"  # or "cosine" (to 10% of lr at the last step)
    grad_clip: float = 1.0
    save_every: int = 100
    log_every: int = 0  # 0: about 20 lines per run
    stop_after: int = 0  # 0: run to `steps`; n: stop (with a checkpoint) after n steps of this run
    resume: bool = False
    device: str = "cpu"  # "cuda" where a GPU is lent (never required); the model ends on the CPU

    @classmethod
    def from_args(cls, args: object) -> LoopConfig:
        """The loop settings of a trainer's parsed arguments (the fields of the same names)."""
        return cls(**{f.name: getattr(args, f.name) for f in fields(cls)})

    def check(self) -> None:
        """Raise ValueError on bad values."""
        for name in ("steps", "batch", "save_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"Cannot train as '{name}' must be a positive integer: current value is "
                                 f"{getattr(self, name)}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"Cannot train as 'lr' must be positive and finite: current value is {self.lr}")
        if self.schedule not in ("constant", "cosine"):
            raise ValueError(f"Cannot use schedule {self.schedule!r}: use constant or cosine")
        if self.device != "cpu" and not self.device.startswith("cuda"):
            raise ValueError(f"Cannot train on device {self.device!r}: use cpu or cuda (cuda:N)")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"Cannot train on device {self.device!r}: no CUDA device is visible here; use cpu")

    def lr_at(self, step: int) -> float:
        """Learning rate of the optimizer step that makes `step` + 1 steps."""
        if self.warmup and step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        if self.schedule == "cosine":
            span = max(1, self.steps - self.warmup)
            t = min(1.0, (step - self.warmup) / span)
            return self.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))
        return self.lr


def batch_indices(step: int, batch: int, n: int, seed: int) -> list[int]:
    """Example indices of the batch of `step` (see the module docstring)."""
    out = []
    perms: dict[int, torch.Tensor] = {}
    for g in range(step * batch, (step + 1) * batch):
        epoch = g // n
        if epoch not in perms:
            perms[epoch] = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
        out.append(int(perms[epoch][g % n]))
    return out


def weights_digest(model: nn.Module) -> str:
    """sha256 of the parameters' bytes, in name order (bit-exact comparison of two runs)."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _rng_state() -> dict:
    return {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()}


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])


def save_checkpoint(path: Path, payload: dict) -> None:
    """torch.save through a temporary file, so a kill never leaves half a checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".pt.tmp")
    torch.save(payload, str(tmp))
    os.replace(tmp, path)


def _fmt_seconds(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


class _StopFlag:
    """Set by SIGINT / SIGTERM: finish the step, checkpoint, exit."""

    def __init__(self) -> None:
        self.signum = 0

    def __call__(self, signum: int, _frame: object) -> None:
        self.signum = signum
        log(f"signal {signum}: stopping after this step (a checkpoint follows; --resume continues)")


def train(
    model: nn.Module,
    examples: list,
    collate: Callable[[list], dict[str, torch.Tensor]],
    step_loss: Callable[[nn.Module, dict[str, torch.Tensor]], tuple[torch.Tensor, dict[str, float]]],
    cfg: LoopConfig,
    args: dict,
) -> dict:
    """Run (or resume) the loop; returns the summary (also what the caller prints).

    step_loss(model, batch) -> (loss, metrics): metrics are averaged into the progress lines;
    `tokens` in them counts toward tokens/s (else the batch's attention mask does)."""
    cfg.check()
    ckpt_path = cfg.out / CKPT_NAME
    model.to(cfg.device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    step, losses, tokens, seconds = 0, [], 0.0, 0.0
    metrics_log: list[dict[str, float]] = []
    if cfg.resume and ckpt_path.is_file():
        ck = load_trusted(ckpt_path)
        _check_resume(ck, args, cfg)
        try:
            model.load_state_dict(ck["model"])
        except RuntimeError as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ValueError(f"Cannot resume from {ckpt_path}: its weights do not fit this model ({first}); was it "
                             "written with another --init or --config? (or use a new --out without --resume)") from None
        optimizer.load_state_dict(ck["optimizer"])
        _set_rng_state(ck["rng"])
        step, losses, tokens, seconds = ck["step"], ck["losses"], ck["tokens"], ck["seconds"]
        metrics_log = ck.get("metrics", [])
        log(f"resumed from {ckpt_path} at step {step}/{cfg.steps}")
    elif cfg.resume:
        log(f"--resume: no {ckpt_path} yet, starting at step 0")
    else:
        torch.manual_seed(cfg.seed)
    if step > cfg.steps:
        raise ValueError(f"Cannot resume to {cfg.steps} steps: the checkpoint is at step {step}")
    log_every = cfg.log_every or max(1, cfg.steps // 20)
    stop = _StopFlag()
    old = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    model.train()
    start_step, t0 = step, time.time()
    run_tokens = 0.0
    window: list[tuple[float, dict[str, float]]] = []
    try:
        while step < cfg.steps:
            batch = collate([examples[i] for i in batch_indices(step, cfg.batch, len(examples), cfg.seed)])
            if cfg.device != "cpu":
                batch = {k: v.to(cfg.device, non_blocking=True) for k, v in batch.items()}
            for group in optimizer.param_groups:
                group["lr"] = cfg.lr_at(step)
            loss, metrics = step_loss(model, batch)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"Cannot train on: the loss at step {step + 1} is {float(loss)}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            optimizer.step()
            step += 1
            n_tok = metrics.pop("tokens", None)
            n_tok = float(batch["attention_mask"].sum()) if n_tok is None else n_tok
            run_tokens += n_tok
            tokens += n_tok
            losses.append(float(loss.detach()))
            metrics_log.append(metrics)
            window.append((losses[-1], metrics))
            done_this_run = step - start_step
            if step % log_every == 0 or step == cfg.steps:
                _progress(step, cfg.steps, window, run_tokens, time.time() - t0, done_this_run)
                window = []
            stopping = bool(stop.signum) or (cfg.stop_after and done_this_run >= cfg.stop_after)
            if step % cfg.save_every == 0 or step == cfg.steps or stopping:
                elapsed = seconds + time.time() - t0
                save_checkpoint(ckpt_path, {
                    "version": CKPT_VERSION, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "step": step, "rng": _rng_state(), "losses": losses, "metrics": metrics_log,
                    "tokens": tokens, "seconds": elapsed, "args": args, "loop": asdict(cfg) | {"out": str(cfg.out)},
                })
            if stopping:
                break
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    run_seconds = time.time() - t0
    model.eval()
    model.to("cpu")  # the callers export and digest on the CPU
    return _summary(losses, metrics_log, step, cfg, run_seconds, run_tokens, seconds + run_seconds, model,
                    stop.signum)


def _check_resume(ck: dict, args: dict, cfg: LoopConfig) -> None:
    """ValueError naming every setting that differs from the checkpoint's run (stored vs now);
    a setting the checkpoint did not record is compared only where RESUME_SETTINGS knows the
    value it ran with."""
    if ck.get("version") != CKPT_VERSION:
        raise ValueError(f"Cannot resume from a checkpoint of version {ck.get('version')}: expected {CKPT_VERSION}")
    before = ck.get("loop", {})
    stored_args = ck.get("args", {})
    changed = [(f"--{k.replace('_', '-')}", before[k], getattr(cfg, k))
               for k in RESUME_FIXED if k in before and before[k] != getattr(cfg, k)]
    for k, (option, default) in RESUME_SETTINGS.items():
        if k not in args:
            continue
        stored = stored_args.get(k, default)
        if stored is not _UNRECORDED and stored != args[k]:
            changed.append((option, stored, args[k]))
    if changed:
        raise ValueError(
            "Cannot resume: " + "; ".join(f"{o} was {a!r} in the checkpoint's run, now {b!r}" for o, a, b in changed)
            + "; use the same values (or a new --out without --resume)"
        )


def _progress(step: int, total: int, window: list, tokens: float, elapsed: float, done: int) -> None:
    loss = sum(x for x, _ in window) / len(window)
    keys = sorted({k for _, m in window for k in m})
    extra = "".join(f" {k} {sum(m.get(k, 0.0) for _, m in window) / len(window):.4f}" for k in keys)
    rate = tokens / elapsed if elapsed > 0 else 0.0
    eta = (total - step) * elapsed / done if done else 0.0
    log(f"step {step}/{total} loss {loss:.4f}{extra} {rate:.0f} tok/s elapsed {_fmt_seconds(elapsed)} "
        f"ETA {_fmt_seconds(eta)}")


def _summary(losses: list[float], metrics: list[dict], step: int, cfg: LoopConfig, run_seconds: float,
             run_tokens: float, seconds: float, model: nn.Module, signum: int) -> dict:
    w = max(1, min(10, len(losses) // 4))
    mean = lambda xs: sum(xs) / len(xs) if xs else None  # noqa: E731
    out = {
        "first_loss": losses[0] if losses else None,
        "last_loss": losses[-1] if losses else None,
        "first_loss_avg": mean(losses[:w]),
        "last_loss_avg": mean(losses[-w:]),
        "avg_window": w,
        "losses": [round(x, 6) for x in losses],
        "step": step,
        "steps": cfg.steps,
        "finished": step >= cfg.steps,
        "stopped_by_signal": signum or None,
        "seconds": round(seconds, 3),
        "run_seconds": round(run_seconds, 3),
        "tokens_per_s": round(run_tokens / run_seconds, 1) if run_seconds > 0 else None,
        "checkpoint": str(cfg.out / CKPT_NAME),
        "weights_sha256": weights_digest(model),
    }
    for key in sorted({k for m in metrics for k in m}):
        out[f"first_{key}"] = mean([m[key] for m in metrics[:w] if key in m])
        out[f"last_{key}"] = mean([m[key] for m in metrics[-w:] if key in m])
    return out


def file_digest(path: Path) -> str:
    """sha256 of a file (to notice a changed data file on --resume)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def run_cli(name: str, main: Callable[[], int]) -> int:
    """Run a trainer's main: bad input (ValueError, FileNotFoundError, NotImplementedError,
    FloatingPointError) is one "NAME: error: ..." line on stderr and exit code 1, no traceback."""
    try:
        return main()
    except (ValueError, FileNotFoundError, NotImplementedError, FloatingPointError) as e:
        print(f"{name}: error: {e}", file=sys.stderr, flush=True)
        return 1


def print_summary(summary: dict) -> None:
    """The summary as one JSON line on stdout (the last line a caller parses)."""
    print(json.dumps(summary), flush=True)
