#!/usr/bin/env python3
"""Build the tiny random-weight ONNX test models under tests/testdata/models/.

Usage: /usr/bin/python3 scripts/build_test_models.py [--out DIR]

Deterministic: weights come from fixed seeds, the tokenizer's merges from a built-in
corpus. Each model directory gets config.json, generation_config.json, tokenizer.json,
tokenizer_config.json, reference.json (PyTorch fp32 outputs for two fixed token sequences
and a padded batch) and, for reward models, reward.json. See tests/testdata/models/README.md.
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "self_train" / "trainer"))

from arborist_trainer import export as ex  # noqa: E402
from arborist_trainer.model import (  # noqa: E402
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen2ForSequenceClassification,
    Qwen2ForTokenClassification,
    init_weights,
)
from arborist_trainer.tokenizer import Tokenizer, build_default_tokenizer, write_json  # noqa: E402

SEED = 20250101
Q4_BLOCK_SIZE = 32

# Texts whose first 7 / 12 tokens are the reference sequences.
REFERENCE_TEXTS = [
    "<|im_start|>user\nWhat is 48 + 24?",
    "Step 1: She sold 48 / 2 = 24 clips. ки\nStep 2: The answer is 72. ки",
]
REFERENCE_LENGTHS = [7, 12]
# Texts of tokenizer_reference.json (ids from the Python reference encoder).
TOKENIZER_TEXTS = [
    "Hello world",
    "The answer is 72.",
    " the dollars are in the wallet",
    "What is 48 + 24 - 3 * 2 = ?",
    "Step 1: 2 + 3 = 5 ки\nStep 2: 5 * 2 = 10 ки",
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n",
    "Step one<extra_0>Step two<extra_0>",
    "naïve café – ünïcode ✓ 数学",
    "  two  spaces\tand\ttabs\n\nnewlines ",
    "it's they're we've I'm you'll he'd",
]


def round_list(x: torch.Tensor | np.ndarray) -> list:
    """Nested list of floats with 6 significant digits."""
    arr = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else x
    return np.vectorize(lambda v: float(f"{v:.6g}"), otypes=[float])(arr.astype(np.float64)).tolist()


def base_config(tok: Tokenizer, **overrides: object) -> Qwen2Config:
    """The shared tiny geometry: hidden 32, 2 layers, 4 heads, 2 KV heads, head_dim 8, mlp 64."""
    fields = dict(
        vocab_size=tok.vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        rope_theta=10000.0,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        rms_norm_eps=1e-6,
        **tok.special_ids(),
    )
    fields.update(overrides)
    return Qwen2Config(**fields)


def gen(offset: int) -> torch.Generator:
    return torch.Generator().manual_seed(SEED + offset)


# ---------------------------------------------------------------------------------------
# Reference outputs


def reference_sequences(tok: Tokenizer) -> list[list[int]]:
    seqs = []
    for text, n in zip(REFERENCE_TEXTS, REFERENCE_LENGTHS):
        ids = tok.encode(text)
        if len(ids) < n:
            raise ValueError(f"Cannot take {n} tokens of {text!r}: it has {len(ids)}")
        seqs.append(ids[:n])
    return seqs


@torch.no_grad()
def decoder_reference(lm: Qwen2ForCausalLM, seqs: list[list[int]], pad_id: int) -> dict:
    """Last-position logits of each sequence alone (empty past), and of a left-padded batch."""
    lm.eval()
    out: dict = {
        "inputs": "each sequence alone: batch 1, attention_mask all ones, position_ids 0..n-1, "
        "past tensors [1, kv_heads, 0, head_dim]",
        "sequences": [],
    }
    for ids in seqs:
        logits, _ = lm(torch.tensor([ids]))
        out["sequences"].append({"input_ids": ids, "logits_last": round_list(logits[0, -1])})
    width = max(len(s) for s in seqs)
    input_ids = torch.tensor([[pad_id] * (width - len(s)) + s for s in seqs])
    attention_mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in seqs])
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    position_ids = torch.where(attention_mask == 1, position_ids, torch.ones_like(position_ids))
    logits, _ = lm(input_ids, attention_mask, position_ids)
    out["left_padded_batch"] = {
        "input_ids": input_ids.tolist(),
        "attention_mask": attention_mask.tolist(),
        "position_ids": position_ids.tolist(),
        "logits_last": round_list(logits[:, -1]),
        "note": "position_ids = cumsum(attention_mask) - 1, 1 at pads (transformers' convention); "
        "each row's logits_last equals that sequence's alone",
    }
    return out


@torch.no_grad()
def classifier_reference(model: torch.nn.Module, seqs: list[list[int]], pad_id: int, token_level: bool) -> dict:
    """Logits of each sequence alone, and of a right-padded batch."""
    model.eval()
    key = "logits" if not token_level else "logits_all_positions"
    out: dict = {"inputs": "each sequence alone: batch 1, attention_mask all ones", "sequences": []}
    for ids in seqs:
        logits = model(torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.int64))
        out["sequences"].append({"input_ids": ids, key: round_list(logits[0])})
    width = max(len(s) for s in seqs)
    input_ids = torch.tensor([s + [pad_id] * (width - len(s)) for s in seqs])
    attention_mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs])
    logits = model(input_ids, attention_mask)
    out["right_padded_batch"] = {
        "input_ids": input_ids.tolist(),
        "attention_mask": attention_mask.tolist(),
        key: round_list(logits),
        "note": "rows right-padded with pad_token_id; "
        + (
            "positions before the padding equal the sequence alone"
            if token_level
            else "pooled at the last non-pad token, so each row equals the sequence alone"
        ),
    }
    return out


# ---------------------------------------------------------------------------------------
# Files of a model directory


def write_common(
    out_dir: Path, tok: Tokenizer, cfg: Qwen2Config, architectures: list[str], torch_dtype: str = "float32",
    extra: dict | None = None,
) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    config = cfg.to_hf_dict(architectures, torch_dtype)
    if extra:
        config.update(extra)
    write_json(out_dir / "config.json", dict(sorted(config.items())))
    ids = tok.special_ids()
    write_json(
        out_dir / "generation_config.json",
        {
            "bos_token_id": ids["bos_token_id"],
            "eos_token_id": [ids["eos_token_id"], ids["bos_token_id"]],
            "pad_token_id": ids["pad_token_id"],
            "transformers_version": "4.45.0",
        },
    )
    tok.save(out_dir)


def labels_config(num_labels: int) -> dict:
    extra = {
        "id2label": {str(i): f"LABEL_{i}" for i in range(num_labels)},
        "label2id": {f"LABEL_{i}": i for i in range(num_labels)},
    }
    if num_labels == 1:
        extra["problem_type"] = "regression"
    return extra


def max_abs_diff(a: list, b: list) -> float:
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))))


# ---------------------------------------------------------------------------------------
# The fixtures


def build_decoders(out: Path, tok: Tokenizer, seqs: list[list[int]]) -> None:
    cfg = base_config(tok)
    pad = cfg.pad_token_id
    lm = Qwen2ForCausalLM(cfg)
    init_weights(lm, gen(1), std=0.15, embed_std=0.5, norm_jitter=0.1)
    lm.eval()
    arch = ["Qwen2ForCausalLM"]
    ref = decoder_reference(lm, seqs, pad)

    # 1. decoder-fp32: model.onnx with num_logits_to_keep
    d = out / "decoder-fp32"
    write_common(d, tok, cfg, arch)
    ex.save_model(ex.export_decoder(lm, keep_logits_input=True), d / "model.onnx")
    write_json(d / "reference.json", ref | {"model": "model.onnx", "dtype": "float32"})

    # 3. decoder-external: same graph, weights in model.onnx.data
    d = out / "decoder-external"
    write_common(d, tok, cfg, arch)
    ex.save_model(ex.export_decoder(lm, keep_logits_input=True), d / "model.onnx", "model.onnx.data")
    write_json(d / "reference.json", ref | {"model": "model.onnx", "dtype": "float32"})

    # 4. decoder-merged: optimum's decoder_model_merged.onnx with use_cache_branch
    d = out / "decoder-merged"
    write_common(d, tok, cfg, arch)
    no_past = ex.export_decoder(lm, with_past=False, include_present=True)
    with_past = ex.export_decoder(lm, with_past=True)
    ex.save_model(ex.merge_decoders(no_past, with_past), d / "decoder_model_merged.onnx")
    write_json(
        d / "reference.json",
        ref
        | {
            "model": "decoder_model_merged.onnx",
            "dtype": "float32",
            "use_cache_branch": "false on the first call (past of length 0), true afterwards; "
            "with false the past inputs are ignored",
        },
    )

    # 5. decoder-q4: onnx/model_q4.onnx (MatMulNBits) + onnx/model.onnx (fp32)
    d = out / "decoder-q4"
    write_common(d, tok, cfg, arch, extra={"transformers.js_config": {"kv_cache_dtype": {"fp16": "float16"}}})
    fp32 = ex.export_decoder(lm)
    ex.save_model(fp32, d / "onnx" / "model.onnx")
    ex.save_model(ex.quantize_matmul_nbits(fp32, Q4_BLOCK_SIZE), d / "onnx" / "model_q4.onnx")
    ref_q4 = decoder_reference(dequantized_copy(lm, Q4_BLOCK_SIZE), seqs, pad)
    q4_diff = max(
        max_abs_diff(a["logits_last"], b["logits_last"]) for a, b in zip(ref["sequences"], ref_q4["sequences"])
    )
    q4 = {
        "logits_last_q4": [s["logits_last"] for s in ref_q4["sequences"]],
        "max_abs_diff_q4_vs_fp32": round(q4_diff, 6),
        "note": "sequences[].logits_last: fp32 (onnx/model.onnx). logits_last_q4: PyTorch with the "
        "dequantized 4-bit weights ((q - 8) * scale, block 32, every linear incl. lm_head; the "
        "embedding gather stays fp32), which onnx/model_q4.onnx should match to ~1e-4.",
    }
    write_json(d / "reference.json", ref | {"model": "onnx/model.onnx", "dtype": "float32", "q4": q4})

    # 2. decoder-fp16: the same weights rounded to float16; onnx/model_fp16.onnx + onnx/model.onnx
    lm16 = copy.deepcopy(lm)
    with torch.no_grad():
        for p in lm16.parameters():
            p.copy_(p.half().float())
    d = out / "decoder-fp16"
    write_common(
        d, tok, cfg, arch, torch_dtype="float16",
        extra={"transformers.js_config": {"kv_cache_dtype": {"fp16": "float16"}}},
    )
    fp32 = ex.export_decoder(lm16)
    ex.save_model(fp32, d / "onnx" / "model.onnx")
    ex.save_model(ex.convert_to_float16(fp32), d / "onnx" / "model_fp16.onnx")
    write_json(
        d / "reference.json",
        decoder_reference(lm16, seqs, pad)
        | {
            "model": "onnx/model.onnx",
            "dtype": "float32",
            "note": "weights are float16-exact, so onnx/model.onnx (fp32) and onnx/model_fp16.onnx hold "
            "the same values; the references are fp32 PyTorch outputs",
        },
    )


def dequantized_copy(lm: Qwen2ForCausalLM, block_size: int) -> Qwen2ForCausalLM:
    """A copy of `lm` whose linear weights (lm_head included, untied) are 4-bit round-tripped."""
    cfg = copy.deepcopy(lm.config)
    cfg.tie_word_embeddings = False
    q = Qwen2ForCausalLM(cfg)
    q.load_state_dict(lm.state_dict(), strict=False)
    with torch.no_grad():
        q.lm_head.weight.copy_(lm.lm_head.weight)
        for module in q.modules():
            if isinstance(module, torch.nn.Linear):
                w = module.weight.detach().numpy()
                module.weight.copy_(torch.from_numpy(ex.dequantize_4bit(w, block_size)))
    return q.eval()


def build_rewards(out: Path, tok: Tokenizer, seqs: list[list[int]]) -> None:
    pad = tok.special_ids()["pad_token_id"]

    # a. qwen-prm: token classification, 2 classes, no KV
    cfg = base_config(tok)
    model = Qwen2ForTokenClassification(cfg, 2)
    init_weights(model, gen(2), std=0.15, embed_std=0.5, head_std=0.6, norm_jitter=0.1)
    d = out / "reward-qwen-prm"
    write_common(d, tok, cfg, ["Qwen2ForTokenClassification"], extra=labels_config(2))
    ex.save_model(ex.export_classifier(model.eval()), d / "model.onnx")
    write_json(d / "reference.json", classifier_reference(model, seqs, pad, True) | {"model": "model.onnx"})
    write_json(d / "reward.json", {"head": "token-classification", "format": "qwen-prm"})

    # b. math-shepherd: causal LM with KV, untied lm_head with a large init so +/- differ
    cfg = base_config(tok, tie_word_embeddings=False)
    lm = Qwen2ForCausalLM(cfg)
    init_weights(lm, gen(3), std=0.15, embed_std=0.5, head_std=0.6, norm_jitter=0.1)
    d = out / "reward-math-shepherd"
    write_common(d, tok, cfg, ["Qwen2ForCausalLM"])
    ex.save_model(ex.export_decoder(lm.eval()), d / "model.onnx")
    ref = decoder_reference(lm, seqs, pad)
    ref["label_token_ids"] = {"+": tok.token_id("+"), "-": tok.token_id("-"), " ки": tok.token_id(" ки")}
    write_json(d / "reference.json", ref | {"model": "model.onnx", "dtype": "float32"})
    write_json(
        d / "reward.json",
        {"head": "lm-tokens", "format": "math-shepherd", "step_tag": " ки", "label_tokens": ["+", "-"]},
    )

    # c, d, e. paper: sequence classification with 2 labels / 1 label; noconfig = c without reward.json
    for name, num_labels, offset in (("reward-paper-2", 2, 4), ("reward-paper-1", 1, 5)):
        cfg = base_config(tok)
        model = Qwen2ForSequenceClassification(cfg, num_labels)
        init_weights(model, gen(offset), std=0.15, embed_std=0.5, head_std=0.3, norm_jitter=0.1)
        d = out / name
        write_common(d, tok, cfg, ["Qwen2ForSequenceClassification"], extra=labels_config(num_labels))
        ex.save_model(ex.export_classifier(model.eval()), d / "model.onnx")
        write_json(d / "reference.json", classifier_reference(model, seqs, pad, False) | {"model": "model.onnx"})
        write_json(d / "reward.json", {"head": "sequence-classification", "format": "paper"})
    d = out / "reward-noconfig"
    if d.exists():
        shutil.rmtree(d)
    shutil.copytree(out / "reward-paper-2", d)
    (d / "reward.json").unlink()


def write_tokenizer_reference(out: Path, tok: Tokenizer) -> None:
    write_json(
        out / "tokenizer_reference.json",
        {
            "note": "ids from the Python reference encoder (arborist_trainer.tokenizer); no BOS is added",
            "vocab_size": tok.vocab_size,
            "special_ids": {content: tok.added_ids[content] for content, _ in tok.added},
            "cases": [{"text": t, "ids": tok.encode(t)} for t in TOKENIZER_TEXTS],
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "tests" / "testdata" / "models"), help="output directory")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    torch.manual_seed(SEED)
    start = time.time()
    tok = build_default_tokenizer()
    seqs = reference_sequences(tok)
    write_tokenizer_reference(out, tok)
    build_decoders(out, tok, seqs)
    build_rewards(out, tok, seqs)
    print(json.dumps({"out": str(out), "seconds": round(time.time() - start, 1), "vocab_size": tok.vocab_size}))


if __name__ == "__main__":
    main()
