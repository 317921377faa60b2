"""`bench data list|prepare|stats`: dataset cards and prepared splits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from bench import cli
from bench.errors import BenchError


@cli.data_app.command("list")
@cli.friendly
def data_list():
    """List dataset cards and whether each is prepared."""
    from bench.data.cards import list_cards, load_card
    from bench.data.prepare import is_prepared
    from bench.tables import print_table

    rows, notes = [], []
    for name in list_cards():
        card = load_card(name)
        rows.append(([name], [card.source, card.category or "-", "yes" if is_prepared(name) else "no"]))
        notes.append(f"{name}: {card.description}")
    print_table(
        cli.console, "datasets", ["name"], ["source", "category", "prepared"], rows, notes=notes, value_justify=["left"] * 3
    )


@cli.data_app.command("prepare")
@cli.friendly
def data_prepare(
    name: str = typer.Argument(..., help="Dataset card name, e.g. ml-100k or toys."),
    raw_dir: Optional[Path] = typer.Option(
        None,
        "--raw-dir",
        help="Folder holding raw files you already have (Amazon: missing ones are downloaded there; MovieLens: ml-100k.inter and ml-100k.item).",
    ),
    force: bool = typer.Option(False, "--force", help="Rebuild even if prepared."),
    reviews: Optional[str] = typer.Option(None, "--reviews", help="Amazon only: full (default) or 5core."),
):
    """Download (Amazon) or read (MovieLens) raw data and write the canonical split."""
    from bench.data.prepare import prepare
    from bench.progress import make_progress

    with make_progress(cli.console) as progress:
        manifest = prepare(name, raw_dir=raw_dir, force=force, progress=progress, reviews=reviews)
    _print_stats([manifest])


@cli.data_app.command("stats")
@cli.friendly
def data_stats(
    name: Optional[str] = typer.Argument(None, help="A dataset; all prepared ones when omitted."),
    as_json: bool = typer.Option(False, "--json", help="Print the manifests as JSON."),
):
    """Users, items, samples per split, history length, window and what was dropped."""
    from bench.data.cards import list_cards
    from bench.data.prepare import is_prepared, load_split

    names = [name] if name else [n for n in list_cards() if is_prepared(n)]
    if not names:
        raise BenchError("No dataset is prepared yet; run `bench data prepare ml-100k` first.")
    manifests = [load_split(n).manifest for n in names]
    if as_json:
        print(json.dumps(manifests if name is None else manifests[0], indent=2, sort_keys=True))
    else:
        _print_stats(manifests)


def _print_stats(manifests: list[dict]) -> None:
    from bench.tables import print_table

    rows = []
    for m in manifests:
        c, s = m["counts"], m["samples"]
        rows.append(
            (
                [m["dataset"]],
                [
                    f"{c['users']:,}",
                    f"{c['items']:,}",
                    f"{c['merged_raw_items']:,}",
                    f"{s['train']:,}",
                    f"{s['valid']:,}",
                    f"{s['test']:,}",
                    f"{m['avg_history']['train']:.2f}",
                    m["window"],
                    m["split_hash"],
                ],
            )
        )
    print_table(
        cli.console,
        "prepared datasets",
        ["dataset"],
        ["users", "items", "merged ids", "train", "valid", "test", "avg history", "window", "split hash"],
        rows,
        value_justify=["right"] * 7 + ["left"] * 2,
    )
    for m in manifests:
        if m["dropped"]:
            dropped = [([reason.replace("_", " ")], [f"{count:,}"]) for reason, count in m["dropped"].items()]
            print_table(cli.console, f"{m['dataset']}: dropped and why", ["reason"], ["count"], dropped)
