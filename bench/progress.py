"""One rich progress display shared by every long step (downloads, training, decoding).
A task may carry a free-text `info` field (loss, tokens/s, validation score):
`progress.update(task, info="loss 2.31 | 850 tok/s")`."""

from __future__ import annotations

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class InfoColumn(ProgressColumn):
    def render(self, task) -> Text:
        return Text(str(task.fields.get("info", "")), style="cyan")


def make_progress(console=None, enabled: bool = True) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        InfoColumn(),
        console=console,
        disable=not enabled,
    )
