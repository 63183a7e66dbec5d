#!/usr/bin/env python3
"""Build the small trainer fixtures under tests/testdata/trainer/ (deterministic).

Usage: /usr/bin/python3 self_train/trainer/tools/build_trainer_fixtures.py [--out DIR]

Synthetic arithmetic word problems, tokenized with the tiny test tokenizer
(tests/testdata/models/decoder-fp32). Files, in the layouts arborist's exports use:
  reward_paper_mc.jsonl      paper format, Monte-Carlo float labels (MSE, 1 label)
  reward_paper_binary.jsonl  paper format, 0/1 labels (CE with 2 labels / BCE with 1)
  reward_trl.jsonl           trl stepwise format (qwen-prm / math-shepherd heads)
  reward_openrlhf.jsonl      openrlhf format as arborist writes it (Math-Shepherd layout, "ки")
  sft.jsonl                  KL-SFT rows: prompt/completion text and ids, the reference policy's
                             (decoder-fp32's) log-prob of every completion token and its top-5
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "self_train" / "trainer"))

from arborist_trainer.data import paper_prompt  # noqa: E402
from arborist_trainer.tokenizer import BPETokenizer  # noqa: E402
from arborist_trainer.weights import init_model  # noqa: E402

MODEL = ROOT / "tests" / "testdata" / "models" / "decoder-fp32"
NAMES = ["Tom", "Ann", "Raj", "Mia", "Leo", "Sara"]
TOP_K = 5


def problems(rng: random.Random, n: int) -> list[dict]:
    out = []
    for i in range(n):
        a, b = rng.randint(2, 9), rng.randint(2, 9)
        name = NAMES[i % len(NAMES)]
        wrong = a + b + rng.choice([-2, -1, 1, 2])
        out.append({
            "question": f"{name} has {a} apples and buys {b} more. How many apples does {name} have?",
            "first": f"{name} starts with {a} apples.",
            "good": f"{name} buys {b} more, so {a} + {b} = {a + b}.",
            "bad": f"{name} buys {b} more, so {a} + {b} = {wrong}.",
            "answer_good": f"The answer is {a + b}.",
            "answer_bad": f"The answer is {wrong}.",
        })
    return out


def reward_rows(probs: list[dict], rng: random.Random) -> tuple[list[dict], list[dict], list[dict], list[dict]]:
    mc, binary, trl, openrlhf = [], [], [], []
    for k, p in enumerate(probs):
        ok = k % 2 == 0
        steps = [p["first"], p["good"] if ok else p["bad"], p["answer_good"] if ok else p["answer_bad"]]
        labels = [1, 1, 1] if ok else [1, 0, 0]
        scores = [round(rng.uniform(0.6, 0.9), 3), round(rng.uniform(0.7, 1.0) if ok else rng.uniform(0.0, 0.3), 3),
                  1.0 if ok else 0.0]
        for j in range(len(steps)):
            text = paper_prompt(p["question"], steps[:j], steps[j])
            mc.append({"input": text, "label": scores[j]})
            binary.append({"input": text, "label": labels[j]})
        trl.append({"prompt": p["question"], "completions": steps, "labels": [bool(x) for x in labels]})
        # arborist's openrlhf export: the Math-Shepherd layout with the placeholder "ки"
        text = f"{p['question']} " + "\n".join(f"{s} ки" for s in steps)
        openrlhf.append({"input": text, "label": ["+" if x else "-" for x in labels]})
    return mc, binary, trl, openrlhf


@torch.no_grad()
def sft_rows(probs: list[dict], tok: BPETokenizer) -> list[dict]:
    lm, _, _ = init_model("causal-lm", 0, init=str(MODEL), config=None, seed=0)
    lm.eval()
    rows = []
    for p in probs:
        prompt = f"<|im_start|>user\n{p['question']}<|im_end|>\n<|im_start|>assistant\n"
        completion = f"{p['first']} {p['good']} {p['answer_good']}<|im_end|>"
        prompt_ids, completion_ids = tok.encode(prompt), tok.encode(completion)
        ids = torch.tensor([prompt_ids + completion_ids])
        logits, _ = lm(ids)
        logp = torch.log_softmax(logits[0, len(prompt_ids) - 1 : -1].float(), dim=-1)
        top = torch.topk(logp, TOP_K, dim=-1)
        rows.append({
            "prompt": prompt,
            "completion": completion,
            "prompt_ids": prompt_ids,
            "completion_ids": completion_ids,
            "ref_logprobs": [round(float(logp[j, t]), 4) for j, t in enumerate(completion_ids)],
            "ref_top": [
                [{"id": int(i), "logprob": round(float(v), 4)} for v, i in zip(vals, idx)]
                for vals, idx in zip(top.values, top.indices)
            ],
            "score": 1.0,
        })
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n" for r in rows), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "tests" / "testdata" / "trainer"))
    out = Path(parser.parse_args().out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    rng = random.Random(7)
    tok = BPETokenizer.from_file(MODEL)
    mc, binary, trl, openrlhf = reward_rows(problems(rng, 16), rng)
    write_jsonl(out / "reward_paper_mc.jsonl", mc)
    write_jsonl(out / "reward_paper_binary.jsonl", binary)
    write_jsonl(out / "reward_trl.jsonl", trl)
    write_jsonl(out / "reward_openrlhf.jsonl", openrlhf)
    write_jsonl(out / "sft.jsonl", sft_rows(problems(random.Random(11), 8), tok))
    print(json.dumps({"out": str(out), "files": sorted(p.name for p in out.glob("*.jsonl"))}))


if __name__ == "__main__":
    main()
