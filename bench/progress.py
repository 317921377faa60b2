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


class _NoTask:
    def advance(self, n: float = 1, **fields) -> None:
        pass


class _Task:
    def __init__(self, progress: Progress, task_id):
        self.progress, self.id = progress, task_id

    def advance(self, n: float = 1, **fields) -> None:
        self.progress.update(self.id, advance=n, **fields)


class step_task:
    """A progress task that disappears when its step ends, so finished steps do not pile up:

        with step_task(progress, "beam search", total=len(batches)) as task:
            for batch in batches:
                ...
                task.advance()

    With progress None it does nothing."""

    def __init__(self, progress: Progress | None, description: str, total: float | None):
        self.progress, self.description, self.total = progress, description, total

    def __enter__(self):
        if self.progress is None:
            return _NoTask()
        self.task = _Task(self.progress, self.progress.add_task(self.description, total=self.total))
        return self.task

    def __exit__(self, *exc) -> None:
        if self.progress is not None:
            self.progress.remove_task(self.task.id)
