"""Process set-up that must happen before PyTorch is imported (no torch import here)."""

from __future__ import annotations

import os
import sys

# glibc malloc settings that keep freed memory around: page faults are costly on these
# machines, and DESIGN.md measured tensor code 5x faster with them. glibc reads them at
# start-up, so a process that lacks them re-executes itself once.
MALLOC_ENV = {
    "MALLOC_MMAP_THRESHOLD_": str(32 * 1024 * 1024),  # glibc's maximum on 64-bit
    "MALLOC_TRIM_THRESHOLD_": str(1024 * 1024 * 1024),
    "MALLOC_TOP_PAD_": str(256 * 1024 * 1024),
}
NO_REEXEC = "ARBORIST_TRAINER_NO_REEXEC"


def ensure_malloc_env(module: str) -> None:
    """Re-execute `python3 -m module` with the same arguments and MALLOC_ENV added, unless the
    environment has them already or ARBORIST_TRAINER_NO_REEXEC=1."""
    missing = {k: v for k, v in MALLOC_ENV.items() if k not in os.environ}
    if not missing or os.environ.get(NO_REEXEC) == "1":
        return
    env = dict(os.environ, **missing)
    env[NO_REEXEC] = "1"
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", module, *sys.argv[1:]], env)
