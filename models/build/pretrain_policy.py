"""Train the tiny policy of the embedded default on synthetic solutions, on a CPU.

Resumable: a checkpoint (model, optimizer, step, data order, RNG) is written every
--ckpt-every steps and at the time budget; run the same command again to continue.
Progress (step, loss, tokens/s, ETA) goes to stderr; the last stdout line is JSON.

Usage (from the repository root):
  /usr/bin/python3 models/build/pretrain_policy.py --data .build/policy_data.jsonl \
      --work .build/policy --out models/policy [--steps 3600] [--stop-at 1200] [--minutes 30]
      [--eval-data .build/policy_eval.jsonl] [--export-only]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "self_train" / "trainer"))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from arborist_trainer.export import export_decoder, save_model  # noqa: E402
from arborist_trainer.model import Qwen2Config, Qwen2ForCausalLM, init_weights  # noqa: E402
from arborist_trainer.tokenizer import Tokenizer, learn_merges, write_json  # noqa: E402
from arborist_trainer.weights import load_trusted  # noqa: E402


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="JSONL of {prompt, completion}")
    p.add_argument("--work", required=True, help="checkpoints and tokenized data")
    p.add_argument("--out", required=True, help="model directory to export")
    p.add_argument("--steps", type=int, default=3600, help="length of the learning-rate schedule")
    p.add_argument("--stop-at", type=int, default=0,
                   help="stop (with a checkpoint) at this step, inside the --steps schedule; 0 = at --steps")
    p.add_argument("--minutes", type=float, default=0, help="stop (with a checkpoint) after this long; 0 = no limit")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=2.5e-3)
    p.add_argument("--warmup", type=int, default=150)
    p.add_argument("--ckpt-every", type=int, default=200)
    p.add_argument("--merges", type=int, default=320)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--kv-heads", type=int, default=2)
    p.add_argument("--intermediate", type=int, default=384)
    p.add_argument("--max-len", type=int, default=384)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu", help="cpu, or cuda where a GPU is lent (never required)")
    p.add_argument("--export-only", action="store_true", help="export the last checkpoint and stop")
    p.add_argument("--eval-data", help="JSONL of held-out {prompt, completion} (correct solutions)")
    p.add_argument("--eval-every", type=int, default=200, help="steps between teacher-forced evaluations")
    return p.parse_args()


def load_records(path: Path) -> list[dict]:
    out = []
    with path.open(encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise SystemExit(f"{path}:{i}: not valid JSON: {e}")
            if not isinstance(rec.get("prompt"), str) or not isinstance(rec.get("completion"), str):
                raise SystemExit(f"{path}:{i}: expected {{'prompt': str, 'completion': str}}")
            out.append(rec)
    return out


def tokenizer_for(records: list[dict], work: Path, merges: int) -> Tokenizer:
    path = work / "merges.json"
    if path.exists():
        return Tokenizer([tuple(m) for m in json.loads(path.read_text())])
    corpus = "\n".join(r["prompt"] + r["completion"] for r in records[:4000])
    tok = Tokenizer(learn_merges(corpus, merges))
    write_json(path, [list(m) for m in tok.merges], indent=None)
    return tok


def encode_all(records: list[dict], tok: Tokenizer, work: Path, max_len: int) -> list[tuple[list[int], int]]:
    """(ids, prompt length) per record; cached in work/encoded.json."""
    path = work / "encoded.json"
    if path.exists():
        return [tuple(x) for x in json.loads(path.read_text())]
    eos = tok.special_ids()["eos_token_id"]
    out = []
    for r in records:
        p = tok.encode(r["prompt"])
        c = tok.encode(r["completion"]) + [eos]
        ids = (p + c)[:max_len]
        out.append((ids, len(p)))
    write_json(path, out, indent=None)
    return out


def batches(data: list, batch: int, rng: random.Random):
    """Length-bucketed batches in a seeded random order (the same order after a resume)."""
    order = list(range(len(data)))
    rng.shuffle(order)
    chunks = [order[i : i + batch * 50] for i in range(0, len(order), batch * 50)]
    for chunk in chunks:
        chunk.sort(key=lambda i: len(data[i][0]))
        group = [chunk[i : i + batch] for i in range(0, len(chunk), batch)]
        rng.shuffle(group)
        yield from group


def collate(items: list[tuple[list[int], int]], pad: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    n = max(len(ids) for ids, _ in items)
    ids = torch.full((len(items), n), pad, dtype=torch.long)
    mask = torch.zeros((len(items), n), dtype=torch.long)
    labels = torch.full((len(items), n), -100, dtype=torch.long)
    for b, (seq, plen) in enumerate(items):
        ids[b, : len(seq)] = torch.tensor(seq)
        mask[b, : len(seq)] = 1
        labels[b, plen : len(seq)] = torch.tensor(seq[plen:])  # completion + EOS only
    return ids, mask, labels


def loss_of(model: Qwen2ForCausalLM, ids: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    logits, _ = model(ids, mask, pos)
    # logits at t predict token t+1: shift once
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=-100)


@torch.no_grad()
def teacher_forced(model: Qwen2ForCausalLM, data: list[tuple[list[int], int]], pad: int, device: str) -> dict:
    """Share of held-out solutions whose every completion token is the model's argmax.

    Such a solution is exactly what greedy decoding writes, so this is a lower bound of greedy
    accuracy that costs one forward pass (greedy may also reach the answer another way).
    """
    was = model.training
    model.eval()
    exact, tokens, right = 0, 0, 0
    for i in range(0, len(data), 32):
        ids, mask, labels = (t.to(device) for t in collate(data[i : i + 32], pad))
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        logits, _ = model(ids, mask, pos)
        pred, gold = logits[:, :-1].argmax(-1), labels[:, 1:]
        ok = (pred == gold) | (gold == -100)
        exact += int(ok.all(-1).sum())
        tokens += int((gold != -100).sum())
        right += int(((pred == gold) & (gold != -100)).sum())
    model.train(was)
    return {"exact": exact / max(1, len(data)), "token_acc": right / max(1, tokens)}


def lr_at(step: int, a: argparse.Namespace) -> float:
    if step < a.warmup:
        return a.lr * (step + 1) / a.warmup
    t = (step - a.warmup) / max(1, a.steps - a.warmup)
    return a.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


def fmt_secs(s: float) -> str:
    s = int(s)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def export(model: Qwen2ForCausalLM, tok: Tokenizer, cfg: Qwen2Config, out: Path, meta: dict) -> None:
    model.to("cpu").eval()
    save_model(export_decoder(model, with_past=True, keep_logits_input=True), out / "model.onnx")
    write_json(out / "config.json", cfg.to_hf_dict(["Qwen2ForCausalLM"]))
    ids = tok.special_ids()
    write_json(out / "generation_config.json", {
        "bos_token_id": ids["bos_token_id"],
        "eos_token_id": [ids["eos_token_id"], ids["bos_token_id"]],
        "pad_token_id": ids["pad_token_id"],
    })
    tok.save(out)
    write_json(out / "training.json", meta)


def main() -> None:
    a = parse_args()
    torch.set_num_threads(a.threads)
    work, out = Path(a.work), Path(a.out)
    work.mkdir(parents=True, exist_ok=True)
    records = load_records(Path(a.data))
    tok = tokenizer_for(records, work, a.merges)
    data = encode_all(records, tok, work, a.max_len)
    sp = tok.special_ids()
    cfg = Qwen2Config(
        vocab_size=tok.vocab_size, hidden_size=a.hidden, intermediate_size=a.intermediate,
        num_hidden_layers=a.layers, num_attention_heads=a.heads, num_key_value_heads=a.kv_heads,
        max_position_embeddings=max(512, a.max_len), tie_word_embeddings=True, **sp,
    )
    torch.manual_seed(a.seed)
    model = Qwen2ForCausalLM(cfg)
    with torch.no_grad():
        init_weights(model, torch.Generator().manual_seed(a.seed), std=0.02)
    model.to(a.device)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=0.01, betas=(0.9, 0.98))
    ckpt = work / "ckpt.pt"
    step, epoch, seen_tokens, trained_s = 0, 0, 0, 0.0
    if ckpt.exists():
        state = load_trusted(ckpt, map_location=a.device)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        step, epoch, seen_tokens, trained_s = state["step"], state["epoch"], state["tokens"], state["seconds"]
        print(f"resumed from {ckpt} at step {step}", file=sys.stderr)
    params = sum(p.numel() for p in model.parameters())
    held = []
    if a.eval_data:
        for r in load_records(Path(a.eval_data)):
            held.append((tok.encode(r["prompt"]), tok.encode(r["completion"]) + [sp["eos_token_id"]]))
        held = [(p + c, len(p)) for p, c in held]
    evals: list[dict] = json.loads((work / "evals.json").read_text()) if (work / "evals.json").exists() else []
    meta = lambda: {  # noqa: E731
        "params": params, "steps": step, "tokens": seen_tokens, "train_seconds": round(trained_s, 1),
        "examples": len(data), "vocab": tok.vocab_size, "config": vars(a),
        "teacher_forced_evals": evals,
    }
    if a.export_only:
        export(model, tok, cfg, out, meta())
        print(json.dumps({"exported": str(out), **meta()}))
        return

    def save() -> None:
        tmp = ckpt.with_suffix(".tmp")
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "epoch": epoch,
                    "tokens": seen_tokens, "seconds": trained_s}, tmp)
        os.replace(tmp, ckpt)

    start = time.time()
    t_last, tok_last, losses = time.time(), seen_tokens, []
    model.train()
    done = False
    while not done:
        rng = random.Random(a.seed * 1000 + epoch)
        per_epoch = math.ceil(len(data) / a.batch)
        skip = step - epoch * per_epoch  # resume inside an epoch: skip the batches already seen
        for i, idx in enumerate(batches(data, a.batch, rng)):
            if i < skip:
                continue
            if step >= a.steps or (a.stop_at and step >= a.stop_at) or (a.minutes and time.time() - start > a.minutes * 60):
                done = True
                break
            ids, mask, labels = (t.to(a.device) for t in collate([data[j] for j in idx], sp["pad_token_id"]))
            for g in opt.param_groups:
                g["lr"] = lr_at(step, a)
            t0 = time.time()
            loss = loss_of(model, ids, mask, labels)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            trained_s += time.time() - t0
            step += 1
            seen_tokens += int(mask.sum())
            losses.append(float(loss))
            if step % 20 == 0:
                now = time.time()
                rate = (seen_tokens - tok_last) / max(1e-9, now - t_last)
                eta = (a.steps - step) * (now - start) / max(1, step - (step - len(losses)))
                print(f"\rstep {step}/{a.steps}  loss {sum(losses[-20:]) / len(losses[-20:]):.4f}  "
                      f"{rate:.0f} tok/s  ETA {fmt_secs(eta)}", end="", file=sys.stderr, flush=True)
                t_last, tok_last = now, seen_tokens
            if held and step % a.eval_every == 0:
                e = {"step": step, "tokens": seen_tokens, "seconds": round(trained_s, 1),
                     **teacher_forced(model, held, sp["pad_token_id"], a.device)}
                evals.append(e)
                write_json(work / "evals.json", evals, indent=None)
                print(f"\n[eval] step {step}: exact {e['exact']:.3f}  token acc {e['token_acc']:.4f}",
                      file=sys.stderr, flush=True)
            if step % a.ckpt_every == 0:
                save()
        else:
            epoch += 1
            continue
    print(file=sys.stderr)
    save()
    export(model, tok, cfg, out, meta())
    first = sum(losses[:20]) / max(1, len(losses[:20])) if losses else None
    last = sum(losses[-20:]) / max(1, len(losses[-20:])) if losses else None
    print(json.dumps({"exported": str(out), "first_loss": first, "last_loss": last, **meta()}))


if __name__ == "__main__":
    main()
