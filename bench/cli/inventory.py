"""`bench methods` and `bench runs`: what can be run, and what is stored."""

from __future__ import annotations

import json
from typing import Optional

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from bench import cli


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
        rows = [([s["name"]], [s["type"], default_text(s["default"])]) for s in settings]
        notes = [f"{s['name']}: {s['help'] or '(no description)'}" for s in settings]
        notes.append(f"Change one with --set {name}.SETTING=VALUE.")
        print_table(cli.console, None, ["setting"], ["type", "default"], rows, notes=notes, value_justify=["left", "left"])
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
    prune: bool = typer.Option(False, "--prune", help="Delete damaged runs and leftover work and temporary folders."),
):
    """List stored runs with their state; find damaged runs and leftover folders, and prune them."""
    import shutil

    from bench.labels import letters, short_name
    from bench.store import RunStore
    from bench.tables import NAME_MAX, print_table

    store = RunStore()
    runs, damaged = store.scan(dataset)
    leftovers = store.leftovers()
    marks = letters(len(runs))
    rows, legend = [], []
    for mark, run in zip(marks, runs):
        r = run.record
        shown = short_name(r.label, r.method, NAME_MAX)
        if shown != r.label:
            legend.append(f"{mark} = {r.label}")
        rows.append(([mark, shown], [r.dataset, str(r.seed), f"{r.n_test:,}", ",".join(r.experiments) or "-", r.key[:8]]))
    title = f"{len(runs)} stored run(s)" + (f" of {dataset}" if dataset else "")
    print_table(cli.console, title, ["", "method"], ["dataset", "seed", "test", "experiments", "key"], rows, legend=legend,
                value_justify=["left", "right", "right", "left", "left"])  # fmt: skip
    for problem in damaged:
        cli.console.print(Text(("removed: " if prune else "damaged: ") + problem.sentence()), soft_wrap=True)
        if prune:
            shutil.rmtree(problem.folder, ignore_errors=True)
    for folder in leftovers:
        cli.console.print(Text(("removed: " if prune else "leftover: ") + str(folder)), soft_wrap=True)
        if prune:
            shutil.rmtree(folder, ignore_errors=True)
    if (damaged or leftovers) and not prune:
        cli.console.print("Run `bench runs --prune` to delete the damaged runs and leftover folders listed above.")
    if not (damaged or leftovers):
        cli.console.print("No damaged run and no leftover folder.")
