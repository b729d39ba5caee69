"""What the command line shows around a result: consoles, one-line errors, JSON on stdout, a progress bar, and the
emission of a result in the format asked for (and to the ``--output`` file)."""

from __future__ import annotations

import functools
import json
from typing import Any, Callable, Optional

import typer
from rich.console import Console, RenderableType

from .cli_options import Format, Output
from .errors import ShufflebenchError


def stdout() -> Console:
    """The console for results: 100 columns when not a terminal, so captured output is stable."""
    return Console(width=100) if not Console().is_terminal else Console()


def stderr() -> Console:
    return Console(stderr=True, width=200, highlight=False, soft_wrap=True)


def friendly(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a `ShufflebenchError` into ``error: <message>`` on stderr and its exit code, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ShufflebenchError as exc:
            stderr().print(f"error: {exc}", markup=False)
            raise typer.Exit(exc.exit_code) from None

    return wrapper


def echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2))


def emit(out: Output, data: Callable[[], dict[str, Any]], table: Callable[[], RenderableType],
         markdown: Optional[Callable[[], str]] = None, csv: Optional[Callable[[], str]] = None) -> None:
    """Write the JSON result to ``out.path`` (atomically) when asked, then print the result in ``out.format``."""
    from .files import write_json_atomic

    payload = data() if out.path is not None or out.format is Format.json else None
    if out.path is not None and payload is not None:
        write_json_atomic(out.path, payload)
    if out.format is Format.json:
        echo_json(payload)
    elif out.format is Format.md and markdown is not None:
        typer.echo(markdown(), nl=False)
    elif out.format is Format.csv and csv is not None:
        typer.echo(csv(), nl=False)
    else:
        stdout().print(table())


class ProgressBar:
    """A transient progress bar on stderr, shown from the first measured run (counting shows nothing): ``update``
    is the timing loop's on_progress callback, ``status`` names what is being measured."""

    def __init__(self, label: str, total_s: float) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.total_s = total_s
        self._progress = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[runs]}"),
                                  TimeElapsedColumn(), console=Console(stderr=True), transient=True)
        self._task = self._progress.add_task(f"measuring {label}", total=total_s, runs="")
        self._started = False

    def status(self, message: str) -> None:
        self._progress.update(self._task, description=message)

    def update(self, phase: str, runs: int, elapsed: float) -> None:
        if not self._started:
            self._progress.start()
            self._started = True
        self._progress.update(self._task, completed=min(elapsed, self.total_s), runs=f"{runs} {phase}")

    def __enter__(self) -> "ProgressBar":
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._started:
            self._progress.stop()
