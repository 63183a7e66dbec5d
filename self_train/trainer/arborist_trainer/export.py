"""ONNX export in the layouts Hugging Face optimum and transformers.js produce.

Decoders (`export_decoder`):
  inputs  input_ids int64 [batch, seq], attention_mask int64 [batch, past + seq],
          position_ids int64 [batch, seq],
          past_key_values.{i}.key / .value float [batch, kv_heads, past, head_dim] (with_past),
          num_logits_to_keep int64 [] (optional; 0 keeps all positions, as transformers)
  outputs logits float [batch, seq or num_logits_to_keep, vocab],
          present.{i}.key / .value float [batch, kv_heads, past + seq, head_dim] (with_past)
Classifiers (`export_classifier`): inputs input_ids, attention_mask; output logits.

Graph rewrites on ONNX protos (no onnxruntime needed):
  `convert_to_float16`  every float tensor (weights, IO, casts, constants) to float16;
  `quantize_matmul_nbits`  linear MatMul/Gemm with a constant weight -> com.microsoft.MatMulNBits;
  `merge_decoders`  optimum's decoder_model_merged layout (If on `use_cache_branch`).

Every export wraps the model in a module put in eval mode (the exporter restores the
wrapper's training flag onto its children afterwards).
"""

from __future__ import annotations

import hashlib
import inspect
import tempfile
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from .model import Qwen2ForCausalLM

OPSET = 17
INT64_MAX = 2**63 - 1
FP16_MAX = float(np.finfo(np.float16).max)


class _KeepLastPositions(torch.autograd.Function):
    """hidden[:, -n:, :] with n a runtime int64 scalar, exported as one ONNX Slice.

    Same semantics as Python slicing with -n: n == 0 (or n > seq) keeps every position."""

    @staticmethod
    def forward(ctx, hidden: torch.Tensor, n: torch.Tensor) -> torch.Tensor:  # noqa: ARG004
        k = int(n)
        return hidden.clone() if k == 0 else hidden[:, -k:, :].clone()

    @staticmethod
    def symbolic(g, hidden, n):  # noqa: ANN001, ANN205
        zero = g.op("Constant", value_t=torch.tensor([0], dtype=torch.int64))
        starts = g.op("Unsqueeze", g.op("Neg", n), zero)
        ends = g.op("Constant", value_t=torch.tensor([INT64_MAX], dtype=torch.int64))
        axes = g.op("Constant", value_t=torch.tensor([1], dtype=torch.int64))
        return g.op("Slice", hidden, starts, ends, axes)


class DecoderExportWrapper(nn.Module):
    """Flat positional signature of a causal LM for torch.onnx.export."""

    def __init__(self, lm: Qwen2ForCausalLM, with_past: bool, keep_logits_input: bool) -> None:
        super().__init__()
        self.lm = lm
        self.with_past = with_past
        self.keep_logits_input = keep_logits_input
        self.eval()

    def forward(self, input_ids, attention_mask, position_ids, *rest):  # noqa: ANN001, ANN201
        n_layers = self.lm.config.num_hidden_layers
        past = None
        if self.with_past:
            past = [(rest[2 * i], rest[2 * i + 1]) for i in range(n_layers)]
            rest = rest[2 * n_layers :]
        hidden, presents = self.lm.model(input_ids, attention_mask, position_ids, past)
        if self.keep_logits_input:
            hidden = _KeepLastPositions.apply(hidden, rest[0])
        logits = self.lm.logits(hidden)
        if not self.with_past:
            return logits
        return (logits, *[t for kv in presents for t in kv])


class ClassifierExportWrapper(nn.Module):
    """(input_ids, attention_mask) -> logits of a classification model."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.inner = model
        self.eval()

    def forward(self, input_ids, attention_mask):  # noqa: ANN001, ANN201
        return self.inner(input_ids, attention_mask)


def _kv_names(n_layers: int, prefix: str) -> list[str]:
    return [f"{prefix}.{i}.{kind}" for i in range(n_layers) for kind in ("key", "value")]


def export_decoder(
    lm: Qwen2ForCausalLM,
    *,
    with_past: bool = True,
    keep_logits_input: bool = False,
    include_present: bool | None = None,
) -> onnx.ModelProto:
    """Export a causal LM (fp32) and return the ONNX model (opset 17, dynamic batch/seq/past).

    with_past: take past_key_values.* inputs and return present.* outputs.
    keep_logits_input: add the `num_logits_to_keep` int64 scalar input.
    include_present: return present.* (defaults to with_past; True without past gives the
      "decoder_model" of optimum: no past inputs, presents out).
    """
    include_present = with_past if include_present is None else include_present
    cfg = lm.config
    wrapper = _PresentWrapper(lm, with_past, keep_logits_input) if include_present and not with_past else (
        DecoderExportWrapper(lm, with_past, keep_logits_input)
    )
    batch, seq, past_len = 2, 3, 2
    gen = torch.Generator().manual_seed(0)
    input_ids = torch.randint(0, cfg.vocab_size, (batch, seq), generator=gen)
    total = seq + (past_len if with_past else 0)
    attention_mask = torch.ones(batch, total, dtype=torch.int64)
    position_ids = torch.arange(total - seq, total)[None, :].expand(batch, seq).contiguous()
    args: list[torch.Tensor] = [input_ids, attention_mask, position_ids]
    input_names = ["input_ids", "attention_mask", "position_ids"]
    dynamic_axes: dict[str, dict[int, str]] = {
        "input_ids": {0: "batch_size", 1: "sequence_length"},
        "attention_mask": {0: "batch_size", 1: "total_sequence_length"},
        "position_ids": {0: "batch_size", 1: "sequence_length"},
    }
    if with_past:
        shape = (batch, cfg.num_key_value_heads, past_len, cfg.head_dim)
        for name in _kv_names(cfg.num_hidden_layers, "past_key_values"):
            args.append(torch.randn(shape, generator=gen))
            input_names.append(name)
            dynamic_axes[name] = {0: "batch_size", 2: "past_sequence_length"}
    if keep_logits_input:
        args.append(torch.tensor(1, dtype=torch.int64))
        input_names.append("num_logits_to_keep")
    output_names = ["logits"]
    dynamic_axes["logits"] = {0: "batch_size", 1: "sequence_length"}
    if include_present:
        for name in _kv_names(cfg.num_hidden_layers, "present"):
            output_names.append(name)
            dynamic_axes[name] = {0: "batch_size", 2: "total_sequence_length"}
    return _export(wrapper, tuple(args), input_names, output_names, dynamic_axes)


class _PresentWrapper(DecoderExportWrapper):
    """No past inputs, but present outputs (optimum's decoder_model.onnx)."""

    def forward(self, input_ids, attention_mask, position_ids, *rest):  # noqa: ANN001, ANN201
        hidden, presents = self.lm.model(input_ids, attention_mask, position_ids, None)
        if self.keep_logits_input:
            hidden = _KeepLastPositions.apply(hidden, rest[0])
        return (self.lm.logits(hidden), *[t for kv in presents for t in kv])


def export_classifier(model: nn.Module) -> onnx.ModelProto:
    """Export a sequence/token classifier: (input_ids, attention_mask) -> logits."""
    gen = torch.Generator().manual_seed(0)
    input_ids = torch.randint(0, model.config.vocab_size, (2, 5), generator=gen)
    attention_mask = torch.ones(2, 5, dtype=torch.int64)
    logits_axes = {0: "batch_size", 1: "sequence_length"} if _is_token_classifier(model) else {0: "batch_size"}
    return _export(
        ClassifierExportWrapper(model),
        (input_ids, attention_mask),
        ["input_ids", "attention_mask"],
        ["logits"],
        {
            "input_ids": {0: "batch_size", 1: "sequence_length"},
            "attention_mask": {0: "batch_size", 1: "sequence_length"},
            "logits": logits_axes,
        },
    )


def _is_token_classifier(model: nn.Module) -> bool:
    return type(model).__name__ == "Qwen2ForTokenClassification"


# PyTorch >= 2.9 exports through torch.export (dynamo) by default, which rejects these
# dynamic_axes on the decoder and writes another graph (opset 18) for the classifier: ask for the
# TorchScript exporter this module's graph surgery is written for (older versions lack the flag).
_TORCHSCRIPT_EXPORTER = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}


def _export(
    wrapper: nn.Module,
    args: tuple,
    input_names: list[str],
    output_names: list[str],
    dynamic_axes: dict[str, dict[int, str]],
) -> onnx.ModelProto:
    wrapper.eval()
    with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
        path = Path(tmp) / "model.onnx"
        torch.onnx.export(
            wrapper,
            args,
            str(path),
            input_names=input_names,
            output_names=output_names,
            dynamic_axes=dynamic_axes,
            opset_version=OPSET,
            do_constant_folding=True,
            **_TORCHSCRIPT_EXPORTER,
        )
        model = onnx.load(str(path), load_external_data=True)
    model.producer_name = "arborist_trainer"
    _strip_wrapper_prefix(model.graph)
    _use_gemm_for_transposed_copies(model.graph)
    _shorten_value_names(model.graph)
    return model


def _shorten_value_names(graph: onnx.GraphProto) -> None:
    """Rename intermediate values ("/model/layers.0/self_attn/Mul_3_output_0") to "t0", "t1", ...
    (a third of a tiny model's file was names). Node names, IO and weight names are kept."""
    keep = {v.name for v in graph.input} | {v.name for v in graph.output} | {t.name for t in graph.initializer}
    renames: dict[str, str] = {}
    for node in graph.node:
        for i, name in enumerate(node.output):
            if name and name not in keep:
                renames.setdefault(name, f"t{len(renames)}")
                node.output[i] = renames[name]
    for g in _graphs(graph):
        for node in g.node:
            node.input[:] = [renames.get(x, x) for x in node.input]
        if g is not graph:
            for o in g.output:
                o.name = renames.get(o.name, o.name)
    del graph.value_info[:]


def _strip_wrapper_prefix(graph: onnx.GraphProto) -> None:
    """Name weights as transformers does ("model.layers.0..."), not "lm.model.layers.0..."."""
    renames = {}
    for t in graph.initializer:
        name = t.name
        while name.startswith(("lm.", "inner.")):  # wrappers may nest (a sigmoid output in the export wrapper)
            name = name.split(".", 1)[1]
        if name != t.name:
            renames[t.name] = name
            t.name = name
    for node in graph.node:
        node.input[:] = [renames.get(x, x) for x in node.input]


def _use_gemm_for_transposed_copies(graph: onnx.GraphProto) -> None:
    """Constant folding turns `x @ E.T` (tied lm_head) into MatMul(x, copy of E.T), storing the
    embedding matrix twice. Where x is 2-D (a Reshape to a 2-element shape), use
    Gemm(x, E, transB=1) instead and drop the copy."""
    inits = {t.name: t for t in graph.initializer}
    producers = {o: n for n in graph.node for o in n.output}
    by_shape: dict[tuple, list[str]] = {}
    for t in graph.initializer:
        if len(t.dims) == 2 and t.data_type == TensorProto.FLOAT:
            by_shape.setdefault(tuple(t.dims), []).append(t.name)
    for i, node in enumerate(graph.node):
        if node.op_type != "MatMul" or node.input[1] not in inits or not _is_2d_reshape(node.input[0], producers):
            continue
        copy = numpy_helper.to_array(inits[node.input[1]])
        if copy.ndim != 2:
            continue
        for name in by_shape.get((copy.shape[1], copy.shape[0]), []):
            if np.array_equal(numpy_helper.to_array(inits[name]).T, copy):
                gemm = helper.make_node("Gemm", [node.input[0], name], list(node.output), name=node.name, transB=1)
                graph.node[i].CopyFrom(gemm)
                break
    _drop_unused_initializers(graph)


def _is_2d_reshape(name: str, producers: dict[str, onnx.NodeProto]) -> bool:
    node = producers.get(name)
    if node is None or node.op_type != "Reshape":
        return False
    shape = producers.get(node.input[1])
    if shape is None:
        return False
    if shape.op_type == "Concat":
        return len(shape.input) == 2 and all(_is_scalar_like(x, producers) for x in shape.input)
    if shape.op_type == "Constant":
        return len(helper.get_attribute_value(shape.attribute[0]).dims) == 1 and (
            helper.get_attribute_value(shape.attribute[0]).dims[0] == 2
        )
    return False


def _is_scalar_like(name: str, producers: dict[str, onnx.NodeProto]) -> bool:
    """A 1-element 1-D tensor: an Unsqueeze of a scalar or a 1-element Constant."""
    node = producers.get(name)
    if node is None:
        return False
    if node.op_type == "Constant":
        return list(helper.get_attribute_value(node.attribute[0]).dims) == [1]
    return node.op_type == "Unsqueeze"


# ---------------------------------------------------------------------------------------
# Saving


def save_model(model: onnx.ModelProto, path: Path, external_data_location: str | None = None) -> None:
    """Check and write `model`; with `external_data_location`, all weights go to that one file
    next to it (every tensor, size_threshold 0)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if external_data_location is None:
        onnx.checker.check_model(model, full_check=True)
        onnx.save_model(model, str(path))
        return
    data = path.parent / external_data_location
    if data.exists():
        data.unlink()
    onnx.save_model(
        model,
        str(path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=external_data_location,
        size_threshold=0,
        convert_attribute=False,
    )
    onnx.checker.check_model(str(path), full_check=False)


# ---------------------------------------------------------------------------------------
# float16


def _graphs(graph: onnx.GraphProto):  # noqa: ANN201
    """`graph` and all its subgraphs (If/Loop bodies), depth first."""
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from _graphs(attr.g)
            for g in attr.graphs:
                yield from _graphs(g)


def _to_fp16_tensor(t: TensorProto) -> TensorProto:
    arr = numpy_helper.to_array(t)
    return numpy_helper.from_array(np.clip(arr, -FP16_MAX, FP16_MAX).astype(np.float16), t.name)


def convert_to_float16(model: onnx.ModelProto) -> onnx.ModelProto:
    """Copy of `model` with every float32 tensor made float16: initializers, graph inputs and
    outputs, Cast targets, Constant / ConstantOfShape values (clipped to the float16 range, so
    "most negative float32" masks become -65504 instead of -inf). onnxruntime's CPU provider
    runs ops that lack float16 kernels through inserted casts."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    for graph in _graphs(out.graph):
        for i, init in enumerate(graph.initializer):
            if init.data_type == TensorProto.FLOAT:
                graph.initializer[i].CopyFrom(_to_fp16_tensor(init))
        for vi in list(graph.input) + list(graph.output) + list(graph.value_info):
            if vi.type.tensor_type.elem_type == TensorProto.FLOAT:
                vi.type.tensor_type.elem_type = TensorProto.FLOAT16
        for node in graph.node:
            for attr in node.attribute:
                if node.op_type == "Cast" and attr.name == "to" and attr.i == TensorProto.FLOAT:
                    attr.i = TensorProto.FLOAT16
                if attr.type == onnx.AttributeProto.TENSOR and attr.t.data_type == TensorProto.FLOAT:
                    attr.t.CopyFrom(_to_fp16_tensor(attr.t))
    return out


# ---------------------------------------------------------------------------------------
# 4-bit block quantization (com.microsoft.MatMulNBits)


def quantize_blocks_4bit(weight: np.ndarray, block_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Symmetric 4-bit block quantization of `weight` [N, K] along K.

    Returns (packed uint8 [N, n_blocks, block_size / 2], scales float32 [N * n_blocks],
    dequantized float32 [N, K]). Codes q in 0..15 stand for (q - 8) * scale; two codes per
    byte, the lower K index in the low nibble. scale = max|w| / 7 per block."""
    n, k = weight.shape
    n_blocks = (k + block_size - 1) // block_size
    padded = np.zeros((n, n_blocks * block_size), dtype=np.float32)
    padded[:, :k] = weight
    blocks = padded.reshape(n, n_blocks, block_size)
    scales = np.abs(blocks).max(axis=-1) / 7.0
    scales = np.where(scales == 0, 1.0, scales).astype(np.float32)
    codes = np.clip(np.rint(blocks / scales[..., None]), -8, 7).astype(np.int32) + 8
    packed = (codes[..., 0::2] | (codes[..., 1::2] << 4)).astype(np.uint8)
    dequant = ((codes - 8).astype(np.float32) * scales[..., None]).reshape(n, -1)[:, :k]
    return packed, scales.reshape(-1), dequant


def dequantize_4bit(weight: np.ndarray, block_size: int) -> np.ndarray:
    """What MatMulNBits computes with for `weight` [N, K] after `quantize_blocks_4bit`."""
    return quantize_blocks_4bit(weight, block_size)[2]


def quantize_matmul_nbits(model: onnx.ModelProto, block_size: int = 32) -> onnx.ModelProto:
    """Copy of `model` with every MatMul / Gemm(transB=1) whose weight is a 2-D float initializer
    replaced by com.microsoft.MatMulNBits (bits 4, `block_size`, no zero points = 8)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    inits = {t.name: t for t in graph.initializer}
    new_nodes: list[onnx.NodeProto] = []
    new_inits: list[TensorProto] = []
    for node in graph.node:
        weight_nk = _linear_weight(node, inits)
        if weight_nk is None:
            new_nodes.append(node)
            continue
        n, k = weight_nk.shape
        packed, scales, _ = quantize_blocks_4bit(weight_nk, block_size)
        base = f"{node.name or node.output[0]}_q4"
        new_inits.append(numpy_helper.from_array(packed, f"{base}.B"))
        new_inits.append(numpy_helper.from_array(scales, f"{base}.scales"))
        new_nodes.append(
            helper.make_node(
                "MatMulNBits",
                [node.input[0], f"{base}.B", f"{base}.scales"],
                list(node.output),
                name=base,
                domain="com.microsoft",
                K=k,
                N=n,
                bits=4,
                block_size=block_size,
            )
        )
    del graph.node[:]
    graph.node.extend(new_nodes)
    graph.initializer.extend(new_inits)
    _drop_unused_initializers(graph)
    if not any(o.domain == "com.microsoft" for o in out.opset_import):
        out.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return out


def _linear_weight(node: onnx.NodeProto, inits: dict[str, TensorProto]) -> np.ndarray | None:
    """The [N, K] weight of a linear MatMul/Gemm node with a constant 2-D weight, else None."""
    if len(node.input) < 2 or node.input[1] not in inits:
        return None
    w = numpy_helper.to_array(inits[node.input[1]])
    if w.ndim != 2 or w.dtype != np.float32:
        return None
    if node.op_type == "MatMul":
        return np.ascontiguousarray(w.T)
    if node.op_type == "Gemm" and len(node.input) == 2:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if attrs.get("transA", 0) == 0 and attrs.get("transB", 0) == 1 and attrs.get("alpha", 1.0) == 1.0:
            return w
    return None


def _drop_unused_initializers(graph: onnx.GraphProto) -> None:
    used: set[str] = set()
    for g in _graphs(graph):
        for node in g.node:
            used.update(node.input)
        used.update(o.name for o in g.output)
    keep = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)


# ---------------------------------------------------------------------------------------
# optimum's merged decoder


def merge_decoders(no_past: onnx.ModelProto, with_past: onnx.ModelProto) -> onnx.ModelProto:
    """optimum's `decoder_model_merged` layout: the inputs of `with_past` plus a bool
    `use_cache_branch` [1]; an If node runs `with_past` when it is true and `no_past` (which
    ignores the past inputs) when false. Weights shared by content are stored once."""
    then_g, then_inits = _as_branch(with_past.graph, "with_past")
    else_g, else_inits = _as_branch(no_past.graph, "no_past")
    by_hash: dict[tuple, str] = {}
    inits: list[TensorProto] = []
    renames: dict[str, str] = {}
    for t in then_inits + else_inits:
        key = (t.data_type, tuple(t.dims), hashlib.sha256(numpy_helper.to_array(t).tobytes()).hexdigest())
        if key in by_hash:
            renames[t.name] = by_hash[key]
        else:
            by_hash[key] = t.name
            inits.append(t)
    for g in (then_g, else_g):
        for sub in _graphs(g):
            for node in sub.node:
                for i, name in enumerate(node.input):
                    if name in renames:
                        node.input[i] = renames[name]
    outputs = [o.name for o in with_past.graph.output]
    if_node = helper.make_node(
        "If", ["use_cache_branch"], outputs, name="optimum::if", then_branch=then_g, else_branch=else_g
    )
    inputs = list(with_past.graph.input) + [
        helper.make_tensor_value_info("use_cache_branch", TensorProto.BOOL, [1])
    ]
    graph = helper.make_graph([if_node], "decoder_model_merged", inputs, list(with_past.graph.output), inits)
    merged = helper.make_model(graph, opset_imports=list(with_past.opset_import))
    merged.ir_version = with_past.ir_version
    merged.producer_name = "arborist_trainer"
    return merged


def _as_branch(graph: onnx.GraphProto, prefix: str) -> tuple[onnx.GraphProto, list[TensorProto]]:
    """`graph` as an If branch: no inputs, every internal name prefixed, outputs renamed
    `{prefix}/{name}`; returns it and its (renamed) initializers."""
    outer = {i.name for i in graph.input}

    def rename(name: str) -> str:
        return name if (not name or name in outer) else f"{prefix}/{name}"

    nodes = []
    for node in graph.node:
        n = onnx.NodeProto()
        n.CopyFrom(node)
        n.name = f"{prefix}/{node.name}" if node.name else ""
        n.input[:] = [rename(x) for x in node.input]
        n.output[:] = [rename(x) for x in node.output]
        nodes.append(n)
    inits = []
    for t in graph.initializer:
        c = TensorProto()
        c.CopyFrom(t)
        c.name = rename(t.name)
        inits.append(c)
    outputs = []
    for o in graph.output:
        vi = onnx.ValueInfoProto()
        vi.CopyFrom(o)
        vi.name = rename(o.name)
        outputs.append(vi)
    return helper.make_graph(nodes, f"{prefix}_branch", [], outputs), inits
