#!/usr/bin/env python3
"""Build a random-weight ONNX decoder with the exact Qwen2.5-0.5B geometry, for benchmarks.

Usage: /usr/bin/python3 scripts/build_bench_model.py [--out DIR] [--seed N] [--num-hidden-layers N]

24 layers, 14 heads, 2 KV heads, head_dim 64, hidden 896, intermediate 4864, vocab 151936,
tied embeddings, rope_theta 1e6, fp32, q/k/v biases; weights normal(0, 0.02), norms 1.
Writes DIR/onnx/model.onnx + DIR/onnx/model.onnx_data (all weights, one external file: the
model is past protobuf's 2 GB limit), DIR/config.json, DIR/generation_config.json and the
GPT-2 tokenizer from ../shared/data/tokenizers/gpt2/ (there is no Qwen tokenizer here; its
ids are < 151936). The ONNX inputs are those of tests/testdata/models/decoder-fp32 (with
`num_logits_to_keep`). The tied 151936 x 896 matrix is stored once: the embedding Gather
and the lm_head Gemm(transB=1) share it.

Takes about 1-2 minutes and ~8 GB of RAM on a 2-core machine.
"""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "self_train" / "trainer"))

from arborist_trainer import export as ex  # noqa: E402
from arborist_trainer.model import Qwen2Config, Qwen2ForCausalLM, init_weights  # noqa: E402
from arborist_trainer.tokenizer import write_json  # noqa: E402

GPT2_TOKENIZER = ROOT.parent / "shared" / "data" / "tokenizers" / "gpt2"
GPT2_EOS = 50256  # <|endoftext|> of the GPT-2 tokenizer

# Fields of Qwen/Qwen2.5-0.5B-Instruct's config.json that are not geometry.
QWEN25_EXTRA = {
    "max_window_layers": 21,
    "sliding_window": 32768,
    "transformers_version": "4.43.1",
}


def qwen25_05b_config(num_hidden_layers: int = 24) -> Qwen2Config:
    """Qwen2.5-0.5B geometry; special ids are the GPT-2 tokenizer's <|endoftext|>."""
    return Qwen2Config(
        vocab_size=151936,
        hidden_size=896,
        intermediate_size=4864,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=14,
        num_key_value_heads=2,
        head_dim=64,
        rope_theta=1000000.0,
        max_position_embeddings=32768,
        tie_word_embeddings=True,
        rms_norm_eps=1e-6,
        bos_token_id=GPT2_EOS,
        eos_token_id=GPT2_EOS,
        pad_token_id=GPT2_EOS,
    )


BENCH_ATTENTION = "grouped"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / ".bench" / "qwen2.5-0.5b-geometry"), help="output directory")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-hidden-layers", type=int, default=24, help="fewer layers for a quick try")
    args = parser.parse_args()
    out = Path(args.out)
    torch.set_num_threads(2)
    start = time.time()

    cfg = qwen25_05b_config(args.num_hidden_layers)
    lm = Qwen2ForCausalLM(cfg)
    init_weights(lm, torch.Generator().manual_seed(args.seed), std=0.02)
    lm.eval()
    n_params = sum(p.numel() for p in lm.parameters())
    proto = ex.export_decoder(lm, keep_logits_input=True)
    del lm
    gc.collect()
    export_s = time.time() - start

    (out / "onnx").mkdir(parents=True, exist_ok=True)
    ex.save_model(proto, out / "onnx" / "model.onnx", "model.onnx_data")
    del proto
    gc.collect()
    hf = cfg.to_hf_dict(["Qwen2ForCausalLM"], "float32")
    hf.update(QWEN25_EXTRA)
    write_json(out / "config.json", dict(sorted(hf.items())))
    write_json(
        out / "generation_config.json",
        {"bos_token_id": GPT2_EOS, "eos_token_id": GPT2_EOS, "pad_token_id": GPT2_EOS},
    )
    for name in ("tokenizer.json", "tokenizer_config.json", "LICENSE.openai-gpt-2"):
        shutil.copyfile(GPT2_TOKENIZER / name, out / name)
    info = {
        "out": str(out),
        "parameters": n_params,
        "seed": args.seed,
        # The exporter's attention layout: "grouped" reads each KV head once (model.py); bench/
        # rebuilds a model built before it (repeated K and V per query head), whose batched
        # decode steps cost twice as much.
        "attention": BENCH_ATTENTION,
        "num_hidden_layers": cfg.num_hidden_layers,
        "export_seconds": round(export_s, 1),
        "total_seconds": round(time.time() - start, 1),
        "model_onnx_bytes": (out / "onnx" / "model.onnx").stat().st_size,
        "model_onnx_data_bytes": (out / "onnx" / "model.onnx_data").stat().st_size,
    }
    write_json(out / "build_info.json", info)
    print(json.dumps(info))


if __name__ == "__main__":
    main()
