"""arborist_trainer: the PyTorch side of arborist.

Qwen2-style models (`model`), their ONNX export in optimum / transformers.js layouts
(`export`), the byte-level BPE tokenizers (`tokenizer`), and the trainers
(`train_reward`, `train_sft`, on `data`, `losses`, `training`, `weights`).

The model names below are imported lazily (PEP 562), so that `python3 -m
arborist_trainer.train_*` can set its malloc environment and re-execute itself before
PyTorch is loaded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = [
    "Qwen2Config",
    "Qwen2ForCausalLM",
    "Qwen2ForSequenceClassification",
    "Qwen2ForTokenClassification",
    "Qwen2Model",
    "init_weights",
]

if TYPE_CHECKING:
    from .model import (
        Qwen2Config,
        Qwen2ForCausalLM,
        Qwen2ForSequenceClassification,
        Qwen2ForTokenClassification,
        Qwen2Model,
        init_weights,
    )


def __getattr__(name: str) -> object:
    if name in __all__:
        from . import model

        return getattr(model, name)
    raise AttributeError(f"module 'arborist_trainer' has no attribute {name!r}")
