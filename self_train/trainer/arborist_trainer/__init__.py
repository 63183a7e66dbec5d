"""arborist_trainer: the PyTorch side of arborist.

Qwen2-style models (`model`), their ONNX export in optimum / transformers.js layouts
(`export`), and the byte-level BPE tokenizer of the test fixtures (`tokenizer`).
"""

from .model import (
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen2ForSequenceClassification,
    Qwen2ForTokenClassification,
    Qwen2Model,
    init_weights,
)

__all__ = [
    "Qwen2Config",
    "Qwen2ForCausalLM",
    "Qwen2ForSequenceClassification",
    "Qwen2ForTokenClassification",
    "Qwen2Model",
    "init_weights",
]
