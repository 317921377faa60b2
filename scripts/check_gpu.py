"""After `make setup`: on a machine with an NVIDIA GPU, check that the installed torch can use it.

Run by the environment's own Python. Says nothing and exits 0 when torch sees the GPU, or when
`nvidia-smi -L` lists no GPU (a CPU machine); otherwise prints one sentence saying what to do
(install a torch build for the driver's CUDA version, with the command) and exits 1.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

INDEX = "https://download.pytorch.org/whl"


def nvidia_smi(*args: str) -> str | None:
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        proc = subprocess.run(["nvidia-smi", *args], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout if proc.returncode == 0 else None


def version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", text)[:2])


def channel(driver_cuda: tuple[int, ...]) -> str | None:
    """A PyTorch wheel channel whose builds run on a driver supporting `driver_cuda`: builds for
    CUDA 12.x run on any 12.x driver (CUDA's minor version compatibility), so the major decides."""
    major = driver_cuda[0] if driver_cuda else 0
    return {11: "cu118", 12: "cu126"}.get(major, "cu130" if major >= 13 else None)


def main() -> int:
    gpus = nvidia_smi("-L")
    if not gpus or "GPU" not in gpus:
        return 0  # no NVIDIA GPU: nothing to check
    pip = f"{Path(sys.executable).parent / 'pip'}"
    try:
        import torch
    except Exception as e:  # noqa: BLE001 - any import failure is reported the same way
        print(f"make setup: torch does not import in {sys.prefix} ({type(e).__name__}: {e}); run `make clean setup`.")
        return 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if torch.cuda.is_available():
            return 0
    said = " ".join(" ".join(str(w.message).split()) for w in caught)
    header = nvidia_smi() or ""
    m = re.search(r"CUDA Version:\s*([\d.]+)", header)
    driver = version_tuple(m.group(1)) if m else ()
    driver_text = ".".join(map(str, driver)) if driver else "unknown"
    chan = channel(driver)
    fix = (
        f"`{pip} uninstall -y torch && {pip} install 'torch>=2.6' --index-url {INDEX}/{chan}`, then `make setup` again "
        "(`make setup CHECK_GPU=0` keeps this torch)"
        if chan
        else "update the NVIDIA driver"
    )
    built = torch.version.cuda
    if built is None:
        problem = f"torch {torch.__version__} in {sys.prefix} is a CPU build and cannot use this machine's NVIDIA GPU"
    elif driver and version_tuple(built)[:1] > driver[:1]:
        problem = f"torch {torch.__version__} is built for CUDA {built} but the NVIDIA driver supports CUDA {driver_text} at most"
    else:
        problem = (
            f"torch {torch.__version__} (CUDA {built}) cannot use the GPU that nvidia-smi lists "
            f"(driver CUDA {driver_text}; check CUDA_VISIBLE_DEVICES{'; torch says: ' + said if said else ''})"
        )
    print(f"make setup: {problem}; install a build for the driver's CUDA {driver_text}: {fix}.")
    return 1


if __name__ == "__main__":
    sys.exit(main())
