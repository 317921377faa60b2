"""`bench methods` and `bench runs`: what can be run, and what is stored."""

from __future__ import annotations

import json
from typing import Optional

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from bench import cli
from bench.errors import BenchError


@cli.app.command("methods")
@cli.friendly
def list_methods(
    name: Optional[str] = typer.Argument(None, help="A method: show its settings (type, default, meaning)."),
    as_json: bool = typer.Option(False, "--json", help="Print as JSON (with a name: its settings)."),
):
    """List the registered methods (built-in and plugins), or one method's settings."""
    from bench.registry import all_specs

    if name is not None:
        from rich.text import Text

        from bench.describe import default_text, describe
        from bench.tables import print_table

        info = describe(name)
        if as_json:
            print(json.dumps(info, indent=2))
            return
        cli.console.print(Text(f"{info['name']} (version {info['version']}, {info['origin']}): {info['description']}"))
        settings = info["settings"]
        if not settings:
            cli.console.print(Text(f"{name} has no settings."))
            return
        rows = [([s["name"]], [s["type"], default_text(s["default"]), s["acts"]]) for s in settings]
        notes = [f"{s['name']}: {s['help'] or '(no description)'}" for s in settings]
        notes.append(f"Change one with --set {name}.SETTING=VALUE.")
        notes.append("acts: fit (a new value fits the method again) or decode (a grid over it shares one fit).")
        print_table(cli.console, None, ["setting"], ["type", "default", "acts"], rows, notes=notes,
                    value_justify=["left", "left", "left"])  # fmt: skip
        return
    if as_json:
        specs = sorted(all_specs().values(), key=lambda s: s.name)
        print(json.dumps([{"name": s.name, "description": s.description, "origin": s.origin} for s in specs], indent=2))
        return
    table = Table(title="methods", box=box.SIMPLE_HEAD, show_edge=False, title_justify="left")
    names = all_specs()
    table.add_column("name", style="bold", no_wrap=True, min_width=max(map(len, names)))
    table.add_column("description", ratio=1)
    table.add_column("from", no_wrap=True)
    for spec in sorted(names.values(), key=lambda s: s.name):
        table.add_row(spec.name, spec.description, spec.origin)
    cli.console.print(table)


@cli.app.command("runs")
@cli.friendly
def runs_command(
    dataset: Optional[str] = typer.Option(None, "--dataset", "-d", help="One dataset; every dataset when omitted."),
    prune: bool = typer.Option(
        False, "--prune", help="Delete damaged runs, leftover work and temporary folders, and the fit cache (never a stored run)."
    ),
):
    """List stored runs with their state; find damaged runs and leftover files and folders, and prune them
    with the fit cache."""
    from bench.data.prepare import leftovers as data_leftovers
    from bench.fitcache import FitCache
    from bench.store import RunStore

    store = RunStore()
    runs, damaged = store.scan(dataset)
    cache = FitCache(store.root)
    leftovers = store.leftovers() + data_leftovers() + cache.leftovers()
    _print_stored(runs, dataset)
    failed = []
    for path, sentence in [(d.folder, d.sentence()) for d in damaged] + [(f, str(f)) for f in leftovers]:
        kind = "damaged: " if path in {d.folder for d in damaged} else "leftover: "
        if not prune:
            cli.console.print(Text(kind + sentence), soft_wrap=True)
            continue
        problem = _remove(path)
        if problem is None:
            cli.console.print(Text("removed: " + sentence), soft_wrap=True)
        else:
            failed.append(problem)
    if (damaged or leftovers) and not prune:
        cli.console.print("Run `bench runs --prune` to delete the damaged runs and leftover files and folders listed above.")
    if not (damaged or leftovers):
        cli.console.print("No damaged run and no leftover file or folder.")
    failed += _cached_fits(cache, prune)
    if failed:
        raise BenchError(
            f"{len(failed)} of them could not be removed ({failed[0]}); make the results and data folders writable and "
            "run `bench runs --prune` again."
        )


def _cached_fits(cache, prune: bool) -> list[str]:
    """Say what the fit cache holds; with `prune`, empty it of every fit no process is using.
    Returns what could not be removed."""
    entries = cache.entries()
    if not entries:
        return []
    if not prune:
        cli.console.print(Text(cache.summary()))
        return []
    failed, removed, size = [], 0, 0
    for entry in entries:
        bytes_ = entry.size()
        called, problem = cache.remove_unused(entry, _remove)
        if not called:
            continue  # a process is fitting or loading it now
        if problem is None:
            removed, size = removed + 1, size + bytes_
        else:
            failed.append(problem)
    cli.console.print(Text(f"removed: {removed} cached fit(s), {size / 1e6:.1f} MB, from {cache.root}"))
    return failed


def _remove(path) -> str | None:
    """Delete a file or folder; None when done, else what stopped it."""
    import shutil

    try:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    except OSError as exc:
        return f"{path}: {exc.strerror or type(exc).__name__}"
    return None


def _print_stored(runs: list, dataset: str | None) -> None:
    from bench.labels import letters, short_name
    from bench.tables import NAME_MAX, print_table

    rows, legend = [], []
    for mark, run in zip(letters(len(runs)), runs):
        r = run.record
        shown = short_name(r.label, r.method, NAME_MAX)
        if shown != r.label:
            legend.append(f"{mark} = {r.label}")
        rows.append(([mark, shown], [r.dataset, str(r.seed), f"{r.n_test:,}", ",".join(r.experiments) or "-", r.key[:8]]))
    title = f"{len(runs)} stored run(s)" + (f" of {dataset}" if dataset else "")
    print_table(cli.console, title, ["", "method"], ["dataset", "seed", "test", "experiments", "key"], rows, legend=legend,
                value_justify=["left", "right", "right", "left", "left"])  # fmt: skip
