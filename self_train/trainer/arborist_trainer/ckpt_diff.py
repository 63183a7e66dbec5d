"""Compare the model weights of two checkpoints (ckpt.pt or state-dict .pt files).

  /usr/bin/python3 -m arborist_trainer.ckpt_diff A.pt B.pt
prints {"max_abs_diff": float, "equal": bool, "tensors": n} (equal: bit-identical) and exits
0, or 1 when the tensor names or shapes differ.
"""

from __future__ import annotations

import json
import sys

import torch

from .weights import load_trusted


def load_state(path: str) -> dict[str, torch.Tensor]:
    """The model state dict of a checkpoint or of a plain state-dict file."""
    obj = load_trusted(path)
    return obj["model"] if isinstance(obj, dict) and isinstance(obj.get("model"), dict) else obj


def diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> dict:
    """Largest absolute difference over all tensors, and whether all are bit-identical."""
    if sorted(a) != sorted(b):
        raise ValueError(f"Cannot compare: the tensor names differ ({sorted(set(a) ^ set(b))[:5]})")
    worst, equal = 0.0, True
    for name in a:
        x, y = a[name], b[name]
        if x.shape != y.shape:
            raise ValueError(f"Cannot compare {name}: shapes {tuple(x.shape)} and {tuple(y.shape)}")
        equal = equal and torch.equal(x, y)
        if x.numel():
            worst = max(worst, float((x.double() - y.double()).abs().max()))
    return {"max_abs_diff": worst, "equal": equal, "tensors": len(a)}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        print(json.dumps(diff(load_state(args[0]), load_state(args[1]))))
    except ValueError as e:
        print(str(e), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
