"""What a stored run records about where it came from."""

from __future__ import annotations

import platform
import subprocess
import sys
from importlib import metadata

from bench import paths

PACKAGES = ("bench", "torch", "transformers", "peft", "accelerate", "recbole", "numpy", "pandas", "scipy", "tokenizers")


def git_state() -> dict:
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=paths.PROJECT_ROOT, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"git_commit": commit, "git_dirty": bool(status) if status is not None else None}


def package_versions() -> dict:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def device_description(device: str) -> str:
    if device.startswith("cuda"):
        import torch

        index = torch.device(device).index or 0
        return f"{device} ({torch.cuda.get_device_name(index)}, {torch.cuda.device_count()} visible)"
    return f"cpu ({platform.processor() or platform.machine()})"


def collect(device: str) -> dict:
    return {
        **git_state(),
        "packages": package_versions(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "device": device_description(device),
    }
