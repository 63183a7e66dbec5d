"""Model directories: read their config and ONNX weights back into the PyTorch modules of
`model.py`, and write new ones (ONNX + configs + tokenizer files) in the engine's layout.

ONNX exports keep Hugging Face names for the tensors they use as they are (embeddings, norms,
biases, `score.bias`), but constant folding stores every linear weight transposed under a
generated name (`onnx::MatMul_650`). Those are found through the node that uses them: its
name is the module's scope (`/model/layers.0/self_attn/q_proj/MatMul`, with an `/inner` or
`/lm` wrapper prefix, or a `with_past/` branch prefix in optimum's merged decoder). A MatMul
outside any module scope whose weight is [hidden, vocab] is the untied `lm_head` (the
colleague's export computes it with `F.linear` on the lm_head weight).
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from .model import (
    LIKELIHOOD_MARKER_KEY,
    Qwen2Config,
    Qwen2ForLikelihoodClassification,
    Qwen2ForCausalLM,
    Qwen2ForSequenceClassification,
    Qwen2ForTokenClassification,
    init_weights,
)

# ONNX files looked for in a model directory, in order (fp32 first).
ONNX_CANDIDATES = (
    "model.onnx",
    "onnx/model.onnx",
    "decoder_model_merged.onnx",
    "onnx/decoder_model_merged.onnx",
    "model_fp16.onnx",
    "onnx/model_fp16.onnx",
)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "generation_config.json")

HEADS = ("sequence-classification", "token-classification", "lm-tokens")
HEAD_FORMAT = {"sequence-classification": "paper", "token-classification": "qwen-prm", "lm-tokens": "math-shepherd"}
HEAD_ARCH = {
    "sequence-classification": "Qwen2ForSequenceClassification",
    "token-classification": "Qwen2ForTokenClassification",
    "lm-tokens": "Qwen2ForCausalLM",
    "causal-lm": "Qwen2ForCausalLM",
}


def log(msg: str) -> None:
    """A progress line on stderr."""
    print(msg, file=sys.stderr, flush=True)


def find_onnx(model_dir: Path) -> Path:
    """The fp32 (else fp16) ONNX graph of a model directory."""
    for rel in ONNX_CANDIDATES:
        if (model_dir / rel).is_file():
            return model_dir / rel
    raise FileNotFoundError(
        f"Cannot read weights from {model_dir}: no ONNX file ({', '.join(ONNX_CANDIDATES)}) and no ckpt.pt"
    )


def read_config(source: str | Path) -> dict:
    """A Hugging Face config dict from a model directory, a JSON file, or inline JSON text."""
    text = str(source)
    if text.lstrip().startswith(("{", "[")):
        where, raw = "--config (inline JSON)", text
    else:
        p = Path(text)
        if p.is_dir():
            p = p / "config.json"
        if not p.is_file():
            raise FileNotFoundError(f"Cannot read the model config: {p} does not exist")
        where = str(p)
        try:
            raw = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise ValueError(f"Cannot read the model config {p}: {e}") from None
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ValueError(f"Cannot read the model config {where}: not JSON ({e})") from None
    if not isinstance(config, dict):
        got = {list: "array", str: "string", bool: "boolean", type(None): "null"}.get(type(config), "number")
        raise ValueError(f"Cannot read the model config {where}: expected a JSON object, got {got}")
    return config


INIT_EXPECTED = ("a model directory (config.json and an ONNX file or ckpt.pt), or a .pt file with a config.json "
                 "beside it")


def check_init(init: str) -> Path:
    """--init as a Path: FileNotFoundError / ValueError naming it and what was expected there when
    it does not exist or is a file other than a .pt / .pth / .bin."""
    src = Path(init)
    if not src.exists():
        raise FileNotFoundError(f"Cannot read --init {init}: it does not exist (expected {INIT_EXPECTED})")
    if not src.is_dir() and src.suffix not in (".pt", ".pth", ".bin"):
        raise ValueError(f"Cannot read --init {init}: it is neither a directory nor a .pt file (expected "
                         f"{INIT_EXPECTED})")
    return src


def model_config(init: str | None, config: str | None) -> tuple[dict, str]:
    """(the Hugging Face config of `init` or `config`, where it was read from), as init_model
    reads it; the config's fields are checked (Qwen2Config.from_hf_dict)."""
    if (init is None) == (config is None):
        raise ValueError("Cannot initialize the model: give exactly one of --init DIR|FILE.pt and --config JSON")
    if config is not None:
        source: str | Path = config
        where = "--config (inline JSON)" if config.lstrip().startswith(("{", "[")) else str(config)
    else:
        src = check_init(init)  # type: ignore[arg-type]
        source = src if src.is_dir() else src.parent
        where = str(source / "config.json")
    hf = read_config(source)
    Qwen2Config.from_hf_dict(hf, where)
    return hf, where


def tokenizer_dir(init: str | None, tokenizer: Path | None) -> Path:
    """The directory whose tokenizer files a trainer reads and copies: --tokenizer, else --init's
    directory (a .pt file's parent); FileNotFoundError naming the option when it holds no
    tokenizer.json."""
    if tokenizer is not None:
        if not (tokenizer / "tokenizer.json").is_file():
            raise FileNotFoundError(f"Cannot read --tokenizer {tokenizer}: expected a directory holding "
                                    "tokenizer.json")
        return tokenizer
    src = check_init(init)  # type: ignore[arg-type]
    found = src if src.is_dir() else src.parent
    if not (found / "tokenizer.json").is_file():
        raise FileNotFoundError(f"Cannot read the tokenizer of --init {init}: expected {found / 'tokenizer.json'} "
                                "(or give --tokenizer DIR)")
    return found


DEFAULT_MAX_LEN = 1024


def resolve_max_len(max_len: int | None, hf: dict, where: str) -> int:
    """--max-len: the model's context (`max_position_embeddings`) when not given and the config
    says it, else DEFAULT_MAX_LEN; ValueError when it exceeds that context."""
    context = hf.get("max_position_embeddings")
    if max_len is None:
        return context if context is not None else DEFAULT_MAX_LEN
    if context is not None and max_len > context:
        raise ValueError(f"Cannot train with --max-len {max_len}: the model's context is {context} tokens "
                         f"('max_position_embeddings' in {where}); use --max-len {context} or less")
    return max_len


def build_model(head: str, cfg: Qwen2Config, num_labels: int) -> nn.Module:
    """The PyTorch module for a head: `sequence-classification`, `token-classification`,
    `lm-tokens` or `causal-lm` (the last two are both a Qwen2ForCausalLM)."""
    if head == "sequence-classification":
        if LIKELIHOOD_MARKER_KEY in cfg.extra:
            return Qwen2ForLikelihoodClassification(cfg, num_labels)
        return Qwen2ForSequenceClassification(cfg, num_labels)
    if head == "token-classification":
        return Qwen2ForTokenClassification(cfg, num_labels)
    if head in ("lm-tokens", "causal-lm"):
        return Qwen2ForCausalLM(cfg)
    raise ValueError(f"Cannot build head {head!r}: expected one of {', '.join(HEADS)} or causal-lm")


_SCOPE = re.compile(
    r"^(?:[A-Za-z_]+/)?(?:/(?:inner|lm))*/((?:model|score|lm_head|feature_score)[^ ]*)/(MatMul|Gemm)(?:_\d+)?$"
)


def onnx_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Hugging Face-named float32 tensors of an ONNX graph (see the module docstring)."""
    model = onnx.load(str(path), load_external_data=True)
    inits = {t.name: t for t in model.graph.initializer}
    out: dict[str, torch.Tensor] = {}
    for name, t in inits.items():
        base = name.split("/", 1)[1] if name.startswith(("with_past/", "no_past/")) else name
        if t.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16) and not base.startswith("onnx::"):
            out.setdefault(base, torch.from_numpy(numpy_helper.to_array(t).astype(np.float32).copy()))
    unscoped: list[np.ndarray] = []
    for g in _graphs(model.graph):
        for node in g.node:
            if node.op_type not in ("MatMul", "Gemm") or len(node.input) < 2 or node.input[1] not in inits:
                continue
            w = numpy_helper.to_array(inits[node.input[1]]).astype(np.float32)
            if w.ndim != 2:
                continue
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            if not (node.op_type == "Gemm" and attrs.get("transB", 0) == 1):
                w = w.T  # MatMul / Gemm without transB hold [in, out]; Gemm(transB=1) [out, in]
            m = _SCOPE.match(node.name)
            if m is None:
                unscoped.append(w)
                continue
            key = m.group(1).replace("/", ".") + ".weight"
            if node.input[1] in out and key != node.input[1]:
                continue  # a named tensor used directly (tied lm_head on the embeddings)
            out.setdefault(key, torch.from_numpy(np.ascontiguousarray(w)))
    if "lm_head.weight" not in out:
        emb = out.get("model.embed_tokens.weight")
        for w in unscoped:
            if emb is not None and w.shape == emb.shape:
                out["lm_head.weight"] = torch.from_numpy(np.ascontiguousarray(w))
    return out


def _graphs(graph: onnx.GraphProto):  # noqa: ANN202
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from _graphs(attr.g)


def load_weights(module: nn.Module, state: dict[str, torch.Tensor], generator: torch.Generator) -> list[str]:
    """Copy `state` into `module` by name. Parameters it lacks (a new head: `score.*` when a
    classifier starts from a decoder) or holds with another shape (another label count) are
    drawn at random (normal, std 1/sqrt(fan_in); biases and a likelihood classifier's heads
    start at zero). Returns the names initialized here.
    Tied parameters are filled once."""
    fresh: list[str] = []
    seen: set[int] = set()
    with torch.no_grad():
        for name, p in module.named_parameters():
            if id(p) in seen:
                continue
            seen.add(id(p))
            src = state.get(name)
            if src is not None and tuple(src.shape) == tuple(p.shape):
                p.copy_(src)
                continue
            if not name.startswith(("score.", "lm_head.", "feature_score.")):
                have = "missing" if src is None else f"shape {tuple(src.shape)}, expected {tuple(p.shape)}"
                raise ValueError(f"Cannot initialize {name} from the given weights: {have}")
            fan_in = p.shape[-1] if p.dim() > 1 else 1
            # biases start at zero; so do both heads of a likelihood classifier: its score starts as
            # a constant, not as a random projection of the hidden state (noise in every ranking)
            zero = name.startswith("feature_score.") or (
                name.startswith("score.") and isinstance(module, Qwen2ForLikelihoodClassification)
            )
            if name.endswith(".bias") or zero:
                p.zero_()
            else:
                p.normal_(0.0, fan_in**-0.5, generator=generator)
            fresh.append(name)
    return fresh


def init_model(
    head: str,
    num_labels: int,
    *,
    init: str | None,
    config: str | None,
    seed: int,
    init_std: float = 0.02,
    extra_layers: int = 0,
    likelihood_marker: list[int] | None = None,
) -> tuple[nn.Module, dict, list[str]]:
    """Build a module for `head` and fill it: from `init` (a model directory's ONNX weights, a
    directory holding ckpt.pt, or a .pt file with a state dict or a checkpoint), or at random
    from `config` (a config.json path or inline JSON; normal(init_std), norms 1).

    `extra_layers` (with `init`): that many decoder layers more on top of the given ones, each
    starting as the identity (its output projections zero, the rest normal(init_std)), so the
    model starts as the one given, with depth to spare for what its new head must compute.

    `likelihood_marker` (a sequence-classification head): a likelihood-feature classifier
    (`Qwen2ForLikelihoodClassification`) that scores the text after these token ids; the ids are
    kept in the config (`arborist_likelihood_marker`), so the model directory rebuilds it.

    Returns (module, the Hugging Face config dict, names drawn at random)."""
    generator = torch.Generator().manual_seed(seed)
    hf, _ = model_config(init, config)
    if config is not None:
        model = build_model(head, Qwen2Config.from_hf_dict(hf), num_labels)
        init_weights(model, generator, std=init_std)
        return model, hf, ["all (random init from --config)"]
    src = Path(init)  # type: ignore[arg-type]
    if src.is_file():
        state = _torch_state(src)
    elif (src / "ckpt.pt").is_file() and not any((src / c).is_file() for c in ONNX_CANDIDATES):
        state = _torch_state(src / "ckpt.pt")
    else:
        state = onnx_state_dict(find_onnx(src))
    if likelihood_marker is not None:
        if head != "sequence-classification":
            raise ValueError(f"Cannot add likelihood features to head {head!r}: they are for sequence-classification")
        hf = hf | {LIKELIHOOD_MARKER_KEY: list(likelihood_marker)}
    new: list[str] = []
    if extra_layers > 0:
        n = int(hf["num_hidden_layers"])
        hf = hf | {"num_hidden_layers": n + extra_layers, "max_window_layers": n + extra_layers}
        model = build_model(head, Qwen2Config.from_hf_dict(hf), num_labels)
        state = dict(state)
        for name, p in model.named_parameters():
            parts = name.split(".")
            if name.startswith("model.layers.") and int(parts[2]) >= n:
                if "norm" in name:
                    state[name] = torch.ones_like(p)
                elif parts[-2] in ("o_proj", "down_proj") or name.endswith(".bias"):
                    state[name] = torch.zeros_like(p)
                else:
                    state[name] = torch.empty_like(p).normal_(0.0, init_std, generator=generator)
        new = [f"model.layers.{n}..{n + extra_layers - 1} (new, identity at first)"]
    else:
        model = build_model(head, Qwen2Config.from_hf_dict(hf), num_labels)
    fresh = load_weights(model, state, generator)
    return model, hf, new + fresh


EXTERNAL_DATA_BYTES = 1 << 30


def _tensor_bytes(t: onnx.TensorProto) -> int:
    n = 1
    for d in t.dims:
        n *= d
    return n * (2 if t.data_type == onnx.TensorProto.FLOAT16 else 4)


def load_trusted(path: Path | str, map_location: str | torch.device = "cpu") -> object:
    """torch.load of a file this project wrote or the user gave as weights: checkpoints hold the
    Python, NumPy and torch RNG states, which PyTorch >= 2.6 refuses to unpickle by default
    (weights_only=True). Load only files you trust, as with any pickle."""
    return torch.load(str(path), map_location=map_location, weights_only=False)


def _torch_state(path: Path) -> dict[str, torch.Tensor]:
    obj = load_trusted(path)
    return obj["model"] if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict) else obj


def write_model_dir(
    out: Path,
    onnx_model: onnx.ModelProto,
    *,
    hf_config: dict,
    architecture: str,
    tokenizer_dir: Path | None,
    num_labels: int | None = None,
    reward: dict | None = None,
    extra_files: dict[str, dict] | None = None,
    external_data: bool | None = None,
) -> None:
    """Write `model.onnx`, `config.json` (the given config with `architectures`, labels and
    `torch_dtype` float32 updated), the tokenizer files copied from `tokenizer_dir` (and
    `generation_config.json` if there), `reward.json` when given, and other JSON files.

    external_data: weights in `model.onnx.data` beside the graph (the engine's
    decoder-external layout); None: when they exceed EXTERNAL_DATA_BYTES (protobuf files
    cannot pass 2 GiB)."""
    from .export import save_model
    from .tokenizer import write_json

    out.mkdir(parents=True, exist_ok=True)
    if external_data is None:
        external_data = sum(_tensor_bytes(t) for t in onnx_model.graph.initializer) > EXTERNAL_DATA_BYTES
    for stale in ("model.onnx", "model.onnx.data"):
        if (out / stale).exists():
            (out / stale).unlink()
    save_model(onnx_model, out / "model.onnx.tmp", "model.onnx.data" if external_data else None)
    (out / "model.onnx.tmp").replace(out / "model.onnx")
    config = {k: v for k, v in hf_config.items() if k not in ("id2label", "label2id", "problem_type")}
    config["architectures"] = [architecture]
    config["torch_dtype"] = "float32"
    config.pop("transformers.js_config", None)
    if num_labels is not None:
        config["id2label"] = {str(i): f"LABEL_{i}" for i in range(num_labels)}
        config["label2id"] = {f"LABEL_{i}": i for i in range(num_labels)}
        if num_labels == 1:
            config["problem_type"] = "regression"
    write_json(out / "config.json", dict(sorted(config.items())))
    if tokenizer_dir is not None and tokenizer_dir.resolve() != out.resolve():
        for name in TOKENIZER_FILES:
            if (tokenizer_dir / name).is_file():
                shutil.copyfile(tokenizer_dir / name, out / name)
    if reward is not None:
        write_json(out / "reward.json", reward)
    for name, obj in (extra_files or {}).items():
        write_json(out / name, obj)
