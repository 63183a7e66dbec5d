"""Training data: the JSONL exports of arborist, tokenized into examples, and padded batches.

Reward data (`read_reward_data`), one JSON object per line, in three formats:
  paper     {"input": "<full reference prompt text>", "label": 0|1|float}
            (a list label of one element is accepted too)
  trl       {"prompt": question, "completions": [step, ...], "labels": [0|1|float|bool per step]}
            (TRL's stepwise-supervision layout)
  openrlhf  {"input": text with a step tag after every step, "label": [one label per tag]}
            (OpenRLHF's PRM layout; labels are the reward tokens "+" / "-" or floats). arborist
            writes it in the Math-Shepherd layout, `question + " " + steps joined by "\n", each
            followed by " ки"`.
How a row becomes model input depends on the head:
  sequence-classification  one example per scored step, the paper's prompt (paper: `input` as
            is; trl: one prompt per step, built like reward/prompts.ts `paperPrompt`), the label
            read at the last token. openrlhf is refused (its text holds several steps).
  token-classification (qwen-prm)  one example per solution; trl: the Qwen2.5-Math-PRM ChatML
            text (system, user, assistant = every step followed by `<extra_0>`), as
            reward/onnx_reward.ts builds it; labels at each step token. openrlhf only with an
            explicit step tag (its text must then be in the Qwen-PRM layout the engine scores).
  lm-tokens (math-shepherd)  like token-classification; trl text is
            `question + " " + steps joined by "\n", each followed by " ки"`; openrlhf: `input`
            as is (the same text for arborist's exports).
The step tag's id is found as the engine does: the token itself, else the last id of its
encoding.

KL-SFT data (`read_sft_data`): {"prompt_ids": [...], "completion_ids": [...],
"ref_top": [[{"id", "logprob"}, ...] per completion token], "ref_logprobs": [...], ...} with
the POLICY's token ids, so no tokenizer is needed.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .tokenizer import BPETokenizer

QWEN_PRM_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."
REWARD_DATA_FORMATS = ("paper", "trl", "openrlhf")


@dataclass
class RewardExample:
    """Token ids and the labels to learn at given positions (label in [0, 1])."""

    ids: list[int]
    positions: list[int]
    labels: list[float]


@dataclass
class SftExample:
    """Prompt + completion ids and the reference's top-k per completion token."""

    prompt_ids: list[int]
    completion_ids: list[int]
    ref_top_ids: list[list[int]] = field(default_factory=list)
    ref_top_logprobs: list[list[float]] = field(default_factory=list)


MIN_MAX_LEN = 2
"""The smallest --max-len: one prompt (or context) token and one completion (or scored) token."""


def json_type(x: object) -> str:
    """JSON's name for the type of a parsed value (object, array, string, number, boolean, null)."""
    if x is None:
        return "null"
    if isinstance(x, bool):
        return "boolean"
    if isinstance(x, (int, float)):
        return "number"
    return {dict: "object", list: "array", str: "string"}.get(type(x), type(x).__name__)


def check_max_len(max_len: object) -> int:
    """`max_len` as an int of at least MIN_MAX_LEN, else ValueError."""
    if isinstance(max_len, bool) or not isinstance(max_len, int) or max_len < MIN_MAX_LEN:
        raise ValueError(
            f"Cannot train with --max-len {max_len!r}: expected an integer >= {MIN_MAX_LEN} (one prompt and one "
            "completion or scored token)"
        )
    return max_len


def read_jsonl(path: Path) -> list[tuple[int, dict]]:
    """(line number, object) of every non-empty line; a line that is not UTF-8 text, not JSON or
    not a JSON object is a ValueError naming FILE:LINE, an unreadable file one naming the path."""
    path = Path(path)
    rows = []
    try:
        with open(path, "rb") as f:
            for n, raw in enumerate(f, start=1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise ValueError(
                        f"Cannot read {path}:{n}: expected UTF-8 text, got byte 0x{raw[e.start]:02x} at column "
                        f"{e.start + 1}"
                    ) from None
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(f"Cannot read {path}:{n}: {e}") from None
                if not isinstance(obj, dict):
                    raise ValueError(f"Cannot read {path}:{n}: expected a JSON object, got {json_type(obj)}")
                rows.append((n, obj))
    except OSError as e:
        what = "a directory" if path.is_dir() else (e.strerror or str(e)).lower()
        raise ValueError(f"Cannot read the data file {path}: {what} (expected a JSONL file)") from None
    if not rows:
        raise ValueError(f"Cannot train on {path}: it holds no rows")
    return rows


def label_value(x: object, where: str, reward_tokens: tuple[str, str] = ("+", "-")) -> float:
    """A label as a float in [0, 1]: bool, number, a reward token (good "+" is 1, bad "-" is
    0), or "1" / "0"."""
    if isinstance(x, bool):
        return 1.0 if x else 0.0
    if isinstance(x, str) and x.strip() in (*reward_tokens, "1", "0"):
        return 1.0 if x.strip() in (reward_tokens[0], "1") else 0.0
    if isinstance(x, (int, float)) and math.isfinite(x) and 0.0 <= float(x) <= 1.0:
        return float(x)
    raise ValueError(f"Cannot use the label {x!r} at {where}: expected 0..1, a bool, or '+' / '-'")


def paper_prompt(question: str, previous: list[str], current: str) -> str:
    """The paper's reward-model prompt (same text as reward/prompts.ts `paperPrompt`)."""
    head = f"Question:\n{question}\n\nLet's break it down step by step!\n\n"
    if not previous:
        return f"{head}Now, let's focus on the current step:\n{current}\n"
    return f"{head}Previous reasoning:\n" + "\n\n".join(previous) + f"\n\nNow, let's focus on the current step:\n{current}"


def qwen_prm_text(question: str, steps: list[str], tag: str = "<extra_0>", system: str = QWEN_PRM_SYSTEM) -> str:
    """Qwen2.5-Math-PRM's ChatML input (reward/prompts.ts `qwenPrmPrompt`)."""
    answer = "".join(s + tag for s in steps)
    return (
        f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{question}<|im_end|>\n"
        f"<|im_start|>assistant\n{answer}<|im_end|>\n"
    )


def math_shepherd_text(question: str, steps: list[str], tag: str = " ки") -> str:
    """Math-Shepherd's input, as reward/onnx_reward.ts builds it."""
    return f"{question} " + "\n".join(s + tag for s in steps)


def _field(obj: dict, key: str, where: str) -> object:
    if key not in obj:
        raise ValueError(f"Cannot read {where}: no '{key}' field (fields: {', '.join(sorted(obj))})")
    return obj[key]


def _wrong(where: str, key: str, expected: str, got: object) -> ValueError:
    """The error of a field of the wrong type: FILE:LINE, the field, expected vs got."""
    shown = json.dumps(got, ensure_ascii=False)
    shown = f" {shown}" if len(shown) <= 40 else ""
    return ValueError(f"Cannot read {where}: '{key}' must be {expected}, got {json_type(got)}{shown}")


def _str_field(obj: dict, key: str, where: str) -> str:
    value = _field(obj, key, where)
    if not isinstance(value, str):
        raise _wrong(where, key, "a string", value)
    return value


def _list_field(obj: dict, key: str, where: str) -> list:
    value = _field(obj, key, where)
    if not isinstance(value, list):
        raise _wrong(where, key, "an array", value)
    return value


def _str_list_field(obj: dict, key: str, where: str) -> list[str]:
    value = _list_field(obj, key, where)
    for k, x in enumerate(value):
        if not isinstance(x, str):
            raise _wrong(where, f"{key}[{k}]", "a string", x)
    return value


def _token_id(x: object, where: str, key: str, vocab_size: int | None) -> int:
    if isinstance(x, bool) or not isinstance(x, int):
        raise _wrong(where, key, "an integer token id", x)
    if x < 0 or (vocab_size is not None and x >= vocab_size):
        bound = f"0..{vocab_size - 1}" if vocab_size is not None else ">= 0"
        extra = " (is the data from another policy's tokenizer?)" if vocab_size is not None and x > 0 else ""
        raise ValueError(f"Cannot read {where}: '{key}' must be a token id {bound}, got {x}{extra}")
    return x


def _ids_field(obj: dict, key: str, where: str, vocab_size: int | None) -> list[int]:
    return [_token_id(x, where, f"{key}[{k}]", vocab_size) for k, x in enumerate(_list_field(obj, key, where))]


def read_reward_data(
    path: Path,
    data_format: str,
    head: str,
    tokenizer: BPETokenizer,
    *,
    max_len: int = 1024,
    step_tag: str | None = None,
    reward_tokens: tuple[str, str] = ("+", "-"),
    dense: bool = False,
) -> list[RewardExample]:
    """Tokenized examples of a reward JSONL file (see the module docstring).

    `dense` (sequence classification only): the label is also learnt at every token of the
    current step (the text after the paper prompt's last "current step:\n"), not only at the
    last token the engine reads; the last position stays last in `positions`."""
    if data_format not in REWARD_DATA_FORMATS:
        raise ValueError(f"Cannot read reward data in format {data_format!r}: use {', '.join(REWARD_DATA_FORMATS)}")
    check_max_len(max_len)
    examples: list[RewardExample] = []
    for n, row in read_jsonl(path):
        where = f"{path}:{n}"
        if head == "sequence-classification":
            for text, label in _sequence_rows(row, data_format, where):
                full = tokenizer.encode(text)
                ids = full[-max_len:]  # keep the end: the current step
                if not ids:
                    raise ValueError(f"Cannot train on {where}: the text encodes to no tokens")
                positions = [len(ids) - 1]
                if dense:
                    start = _current_step_start(text, tokenizer, where) - (len(full) - len(ids))
                    positions = list(range(min(max(0, start), len(ids) - 1), len(ids)))  # the last one at least
                examples.append(RewardExample(ids, positions, [label] * len(positions)))
        else:
            if data_format == "openrlhf" and head == "token-classification" and step_tag is None:
                raise ValueError(
                    "Cannot train a token-classification head on openrlhf data without --step-tag: arborist "
                    "writes that format in the Math-Shepherd layout (use --head lm-tokens, or trl data)"
                )
            tag = step_tag or ("<extra_0>" if head == "token-classification" else " ки")
            example = _tagged_example(row, data_format, head, tokenizer, tag, max_len, where, reward_tokens)
            if example is not None:
                examples.append(example)
    if not examples:
        raise ValueError(f"Cannot train: no examples (every record of {path} has no steps)")
    return examples


CURRENT_STEP_MARK = "Now, let's focus on the current step:\n"


def _current_step_start(text: str, tokenizer: BPETokenizer, where: str) -> int:
    """Index of the current step's first token in `tokenizer.encode(text)`."""
    cut = text.rfind(CURRENT_STEP_MARK)
    if cut < 0:
        raise ValueError(
            f"Cannot train densely on {where}: expected the paper's prompt with {CURRENT_STEP_MARK!r}, "
            f"got {text[:60]!r}..."
        )
    return len(tokenizer.encode(text[: cut + len(CURRENT_STEP_MARK)]))


def _sequence_rows(row: dict, data_format: str, where: str) -> list[tuple[str, float]]:
    if data_format == "paper":
        label = _field(row, "label", where)
        if isinstance(label, list) and len(label) == 1:
            label = label[0]
        return [(_str_field(row, "input", where), label_value(label, f"{where} 'label'"))]
    if data_format == "trl":
        question, steps, labels = _trl_fields(row, where)
        return [
            (paper_prompt(question, steps[:k], steps[k]), label_value(labels[k], f"{where} step {k}"))
            for k in range(len(steps))
        ]
    raise ValueError(
        f"Cannot read {where} for a sequence-classification head: format {data_format!r} holds several steps "
        "in one text; use paper or trl"
    )


def _trl_fields(row: dict, where: str) -> tuple[str, list[str], list]:
    """(prompt, completions, labels) of a trl row, their types checked."""
    question = _str_field(row, "prompt", where)
    steps = _str_list_field(row, "completions", where)
    labels = _list_field(row, "labels", where)
    if len(labels) != len(steps):
        raise ValueError(f"Cannot read {where}: {len(steps)} completions but {len(labels)} labels")
    return question, steps, labels


def _tagged_example(
    row: dict,
    data_format: str,
    head: str,
    tokenizer: BPETokenizer,
    tag: str,
    max_len: int,
    where: str,
    reward_tokens: tuple[str, str],
) -> RewardExample | None:
    """The example of a tagged row; None for a row with no steps (no labels, no tags)."""
    if data_format == "trl":
        question, steps, labels = _trl_fields(row, where)
        text = qwen_prm_text(question, steps, tag) if head == "token-classification" else math_shepherd_text(
            question, steps, tag
        )
    elif data_format == "openrlhf":
        text = _str_field(row, "input", where)
        raw = _field(row, "label", where)
        labels = raw if isinstance(raw, list) else [raw]
    else:
        raise ValueError(f"Cannot read {where} for a {head} head: format 'paper' has no step tags; use trl or openrlhf")
    tag_id = tokenizer.token_to_id(tag)
    if tag_id is None:
        tag_ids = tokenizer.encode(tag, add_special_tokens=False)
        tag_id = tag_ids[-1] if tag_ids else None
    if tag_id is None:
        raise ValueError(f"Cannot find the step tag {tag!r} in the tokenizer")
    ids = tokenizer.encode(text)
    positions = [i for i, t in enumerate(ids) if t == tag_id]
    if not positions and not labels:
        return None
    if len(positions) != len(labels):
        raise ValueError(f"Cannot align {where}: {len(labels)} labels but {len(positions)} step tags {tag!r}")
    values = [label_value(x, f"{where} step {k}", reward_tokens) for k, x in enumerate(labels)]
    kept = [(p, v) for p, v in zip(positions, values) if p < max_len]
    if not kept:
        raise ValueError(f"Cannot train on {where}: no step tag within the first {max_len} tokens")
    return RewardExample(ids[:max_len], [p for p, _ in kept], [v for _, v in kept])


def read_sft_data(
    path: Path, *, max_len: int = 1024, need_ref: bool = True, vocab_size: int | None = None
) -> list[SftExample]:
    """KL-SFT examples; prompts are cut from the left (and completions from the right) to fit
    `max_len` tokens. `ref_top` is read where present (for the KL term, or to report the KL at
    β = 0) and required when `need_ref`. The per-token `ref_logprobs` are not needed (the top-k
    holds what the KL uses). Token ids must be integers in 0..vocab_size - 1 (>= 0 without
    `vocab_size`); a bad field is a ValueError naming FILE:LINE and the field."""
    check_max_len(max_len)
    out: list[SftExample] = []
    for n, row in read_jsonl(path):
        where = f"{path}:{n}"
        prompt = _ids_field(row, "prompt_ids", where, vocab_size)
        completion = _ids_field(row, "completion_ids", where, vocab_size)
        if not completion:
            raise ValueError(f"Cannot train on {where}: 'completion_ids' is empty")
        if not prompt:
            raise ValueError(f"Cannot train on {where}: 'prompt_ids' is empty (the first completion token needs one)")
        top_ids: list[list[int]] = []
        top_lps: list[list[float]] = []
        if need_ref or "ref_top" in row:
            top_ids, top_lps = _ref_top(row, len(completion), where, vocab_size)
        completion = completion[: max_len - 1]
        prompt = prompt[-(max_len - len(completion)) :]
        out.append(SftExample(prompt, completion, top_ids[: len(completion)], top_lps[: len(completion)]))
    return out


def _ref_top(
    row: dict, n_completion: int, where: str, vocab_size: int | None
) -> tuple[list[list[int]], list[list[float]]]:
    """The ids and log-probabilities of `ref_top`: one non-empty array of {"id", "logprob"}
    objects per completion token."""
    top = _field(row, "ref_top", where)
    if not isinstance(top, list) or len(top) != n_completion:
        raise ValueError(
            f"Cannot read {where}: 'ref_top' needs one list per completion token ({n_completion}), "
            f"got {len(top) if isinstance(top, list) else json_type(top)}"
        )
    top_ids: list[list[int]] = []
    top_lps: list[list[float]] = []
    for j, entries in enumerate(top):
        if not isinstance(entries, list):
            raise _wrong(where, f"ref_top[{j}]", 'an array of {"id", "logprob"} objects', entries)
        if not entries:
            raise ValueError(f"Cannot read {where}: ref_top[{j}] is empty")
        ids, lps = [], []
        for i, e in enumerate(entries):
            key = f"ref_top[{j}][{i}]"
            if not isinstance(e, dict):
                raise _wrong(where, key, 'an object {"id", "logprob"}', e)
            for name in ("id", "logprob"):
                if name not in e:
                    raise ValueError(f"Cannot read {where}: '{key}' has no '{name}' field (fields: "
                                     f"{', '.join(sorted(e)) or 'none'})")
            ids.append(_token_id(e["id"], where, f"{key}.id", vocab_size))
            lp = e["logprob"]
            if isinstance(lp, bool) or not isinstance(lp, (int, float)) or not math.isfinite(lp):
                raise _wrong(where, f"{key}.logprob", "a finite number", lp)
            lps.append(float(lp))
        top_ids.append(ids)
        top_lps.append(lps)
    return top_ids, top_lps


# ---------------------------------------------------------------------------------------
# Batches


def reward_batch(examples: list[RewardExample], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded input_ids / attention_mask, and label rows (batch index, position, value);
    `label_last` marks each example's last label row."""
    width = max(len(e.ids) for e in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.int64)
    attention_mask = torch.zeros((len(examples), width), dtype=torch.int64)
    rows, positions, labels, last = [], [], [], []
    for b, e in enumerate(examples):
        input_ids[b, : len(e.ids)] = torch.tensor(e.ids)
        attention_mask[b, : len(e.ids)] = 1
        rows.extend([b] * len(e.positions))
        positions.extend(e.positions)
        labels.extend(e.labels)
        last.extend([False] * (len(e.positions) - 1) + [True])
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "label_rows": torch.tensor(rows, dtype=torch.int64),
        "label_positions": torch.tensor(positions, dtype=torch.int64),
        "labels": torch.tensor(labels, dtype=torch.float32),
        "label_last": torch.tensor(last, dtype=torch.bool),
    }


def sft_batch(examples: list[SftExample], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded prompt + completion, with per-token masks and top-k aligned to tokens.

    completion_mask[b, t] = 1 where token t is a completion token (a target of logits t - 1).
    ref_ids / ref_logprobs / ref_mask [b, s, k]: the reference's top-k at token t (k padded
    to the batch's largest k, ref_mask 0 there)."""
    width = max(len(e.prompt_ids) + len(e.completion_ids) for e in examples)
    k = max((len(t) for e in examples for t in e.ref_top_ids), default=1)
    b = len(examples)
    input_ids = torch.full((b, width), pad_id, dtype=torch.int64)
    attention_mask = torch.zeros((b, width), dtype=torch.int64)
    completion_mask = torch.zeros((b, width), dtype=torch.float32)
    ref_ids = torch.zeros((b, width, k), dtype=torch.int64)
    ref_logprobs = torch.zeros((b, width, k), dtype=torch.float32)
    ref_mask = torch.zeros((b, width, k), dtype=torch.float32)
    for i, e in enumerate(examples):
        p, c = len(e.prompt_ids), len(e.completion_ids)
        input_ids[i, : p + c] = torch.tensor(e.prompt_ids + e.completion_ids)
        attention_mask[i, : p + c] = 1
        completion_mask[i, p : p + c] = 1
        for j, (ids, lps) in enumerate(zip(e.ref_top_ids, e.ref_top_logprobs)):
            ref_ids[i, p + j, : len(ids)] = torch.tensor(ids)
            ref_logprobs[i, p + j, : len(lps)] = torch.tensor(lps)
            ref_mask[i, p + j, : len(ids)] = 1
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "completion_mask": completion_mask,
        "ref_ids": ref_ids,
        "ref_logprobs": ref_logprobs,
        "ref_mask": ref_mask,
    }
