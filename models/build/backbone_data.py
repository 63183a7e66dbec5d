"""Language-modelling data that teaches the policy to read the paper's reward prompt.

The tiny policy only ever saw "Question: ...\\nAnswer:\\n" followed by its steps; inside the
paper's reward prompt ("Question:\\n... Now, let's focus on the current step:\\n...") its
arithmetic does not switch on (measured: the log-probability of a step's tokens separates
arithmetically right from wrong steps with AUC 0.87 in its own format, 0.51 in the paper's),
so a reward model fine-tuned from it starts without the one feature it needs. Each row here is
a span of a training solution as the completion, and the paper's prompt around the previous
steps as the prompt: SFT on it (train_sft --beta 0) gives the reward models a backbone that
computes the current step's arithmetic where the reward head reads it. The spans are what the
reward models are given as "the current step": one step (half the rows: the PRM), two steps
joined by a blank line (a quarter: the HRM's merged samples) and a whole solution (a quarter:
the ORM). Measured: a backbone taught single steps only gave its likelihood of a whole solution
no meaning past the first step (best-of-16 by it 0.35 against greedy 0.64 on 80 problems).

--good-steps-only (the third version, 2026-12-04): given data whose every mistake is corrected in
the next step (make_data.ts --correction-rate 1), a wrong step is never a completion, only context
before its correction. The reward heads read this model's likelihood of the current step, so what
it learns to expect is what they reward: right steps, and a correction after a wrong one. Measured
with 2,000 SFT steps instead of 400: the backbone's own argmax reproduces 97.5% of the gold steps of
tuning problems inside the reward prompt (the second version's 94.8%: it put "18 + 1 = 29" above
"= 19"), and step-greedy N = 16 on 300 tuning problems rose from PRM 238 / HRM 231 to 245 / 243;
with 3,000 more steps on fresh spans (build.ts's second pass, the committed backbone) 99.1% and
252 / 249. The flag relies on the "Wait, " marker: a mistake left uncorrected in the data is not
recognised and can still become a completion.

Usage: python3 backbone_data.py --data POLICY_DATA.jsonl --tokenizer DIR --out OUT.jsonl
          [--rows 20000] [--seed 0]
"""

import argparse
import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "self_train" / "trainer"))
from arborist_trainer.data import paper_prompt  # noqa: E402
from arborist_trainer.tokenizer import load_tokenizer  # noqa: E402


def is_wrong(steps: list[str], k: int) -> bool:
    """Whether step k is a mistake the data marks: the next step corrects it."""
    return k + 1 < len(steps) and steps[k + 1].startswith("Wait, ")


def pick_span(steps: list[str], rng: random.Random, good_only: bool) -> tuple[int, int] | None:
    """Steps [i, j) as the current step: one step (half), two (a quarter) or all (a quarter).

    With good_only, a span holding a wrong step is drawn again (up to 8 times, then the row is
    skipped), so that the backbone learns the likelihood of good steps only.
    """
    for _ in range(8 if good_only else 1):
        i = rng.randrange(len(steps))
        r = rng.random()
        if r < 0.5:
            j = i + 1
        elif r < 0.75:
            j = min(i + 2, len(steps))
        else:
            i, j = 0, len(steps)
        if not good_only or not any(is_wrong(steps, k) for k in range(i, j)):
            return i, j
    return None


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, type=Path, help="policy pre-training JSONL ({prompt, completion})")
    p.add_argument("--tokenizer", required=True, type=Path, help="directory with tokenizer.json")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--rows", type=int, default=20000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--good-steps-only",
        action="store_true",
        help="never make a wrong step a completion: a step followed by its correction ('Wait, ...') "
        "stays in the previous steps only (use data whose every mistake is corrected)",
    )
    args = p.parse_args()
    tok = load_tokenizer(args.tokenizer / "tokenizer.json")
    rng = random.Random(args.seed)
    written = 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".partial")
    with args.data.open() as src, tmp.open("w") as dst:
        for n, line in enumerate(src, 1):
            if written >= args.rows:
                break
            row = json.loads(line)
            prompt = row["prompt"]
            if not prompt.startswith("Question: ") or "\nAnswer:\n" not in prompt:
                raise ValueError(f"{args.data}:{n}: expected a prompt 'Question: ...\\nAnswer:\\n', got {prompt[:40]!r}")
            question = prompt[len("Question: "):].split("\nAnswer:\n")[0]
            steps = row["completion"].split("\n\n")
            span = pick_span(steps, rng, args.good_steps_only)
            if span is None:
                continue
            i, j = span
            current = "\n\n".join(steps[i:j])
            text = paper_prompt(question, steps[:i], current)
            cut = len(text) - len(current) - (0 if i else 1)  # the first step's prompt ends with "\n"
            prompt_ids = tok.encode(text[:cut], add_special_tokens=False)
            completion_ids = tok.encode(text[cut:], add_special_tokens=False)
            dst.write(json.dumps({"prompt_ids": prompt_ids, "completion_ids": completion_ids}) + "\n")
            written += 1
    tmp.replace(args.out)
    print(f"{written} rows -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
