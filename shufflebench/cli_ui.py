"""What the command line shows around a result: consoles, one-line errors, JSON on stdout, a progress bar, and the
emission of a result in the format asked for (and to the ``--output`` file)."""

from __future__ import annotations

import functools
import json
import sys
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import typer
from rich.console import Console, RenderableType
from typer.core import TyperGroup

from .cli_options import Format, Output
from .errors import ShufflebenchError


def stdout() -> Console:
    """The console for results: 100 columns when not a terminal, so captured output is stable."""
    return Console(width=100) if not Console().is_terminal else Console()


def stderr() -> Console:
    return Console(stderr=True, width=200, highlight=False, soft_wrap=True)


INTERRUPTED = 130  # the shell's exit status for Ctrl-C (128 + SIGINT)


def fail(message: str, code: int, hint: str | None = None) -> None:
    """Print ``error: <message>`` (and an optional hint line) on stderr and exit with ``code``."""
    stderr().print(f"error: {' '.join(message.split())}", markup=False)
    if hint:
        stderr().print(hint, markup=False, style="dim")
    raise typer.Exit(code)


def friendly(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a `ShufflebenchError` into ``error: <message>`` on stderr and its exit code, and Ctrl-C before anything
    finished into one line and exit 130: never a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ShufflebenchError as exc:
            fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            fail("interrupted (Ctrl-C) before any measurement finished; nothing to keep", INTERRUPTED)

    return wrapper


def _given_value(flag: str, args: list[str]) -> str | None:
    """What the user typed for ``flag`` (``--flag VALUE`` or ``--flag=VALUE``; the last one wins)."""
    value = None
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith(flag + "="):
            value = arg.partition("=")[2]
    return value


def _allowed(param: Any) -> str | None:
    """What an option accepts, from its declared type and range (None when that is not known)."""
    kind = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    if isinstance(kind, type) and issubclass(kind, Enum):
        return ", ".join(str(member.value) for member in kind)
    noun = "a whole number" if kind is int else "a number" if kind is float else None
    if noun is None:
        return None
    low, high = getattr(param, "min", None), getattr(param, "max", None)
    if low is not None and high is not None:
        return f"{noun} from {low:g} to {high:g}"
    if low is not None or high is not None:
        return f"{noun} {'>=' if low is not None else '<='} {low if low is not None else high:g}"
    return noun


def _parse_error(exc: Any, args: list[str]) -> str:
    """A parser error as one line: the option, the value given, and what is allowed."""
    message = " ".join(exc.format_message().split()).rstrip(".")
    command = getattr(exc, "cmd", None)
    option = getattr(exc, "option_name", None)
    if option and command is not None:  # an option the command does not have
        options = sorted({opt for p in command.params for opt in p.opts if opt.startswith("--")})
        close = getattr(exc, "possibilities", None)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        return f"{option} is not an option of this command{hint}; allowed: {', '.join(options)}"
    commands = getattr(command, "commands", None)
    if message.startswith("No such command") and commands:
        return f"{message.partition('No such command ')[2]} is not a command; allowed: {', '.join(commands)}"
    param = getattr(exc, "param", None)
    flags = [opt for opt in getattr(param, "opts", []) if opt.startswith("-")]
    if not flags:
        return message
    value = _given_value(flags[0], args)
    allowed = _allowed(param)
    if value is None or allowed is None:
        return message
    return f"{flags[0]} {value!r} is not allowed; allowed: {allowed}"


class OneLineErrors(TyperGroup):
    """The command group, with errors of the command line itself (a value that is not a number, an option that does
    not exist, a missing argument) reported like every other error: one line naming the value and what is allowed,
    and a hint line, instead of a usage box."""

    def main(self, args: Optional[Sequence[str]] = None, prog_name: Optional[str] = None,
             complete_var: Optional[str] = None, standalone_mode: bool = True, windows_expand_args: bool = True,
             **extra: Any) -> Any:
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False,
                                  windows_expand_args=windows_expand_args, **extra)
        except typer.Abort:
            stderr().print("error: aborted", markup=False)
            if not standalone_mode:
                raise
            sys.exit(1)
        except Exception as exc:
            # Typer's parser errors (a bad value, an unknown option, a missing argument), recognised by what they
            # offer rather than by the parser's private class names.
            if not (hasattr(exc, "format_message") and isinstance(getattr(exc, "exit_code", None), int)):
                raise
            message = _parse_error(exc, list(sys.argv[1:] if args is None else args))
            where = getattr(getattr(exc, "ctx", None), "command_path", None) or "shufflebench"
            stderr().print(f"error: {message}", markup=False)
            stderr().print(f"see: {where} --help", markup=False, style="dim")
            if not standalone_mode:
                raise
            sys.exit(getattr(exc, "exit_code"))
        if standalone_mode:
            sys.exit(result if isinstance(result, int) else 0)
        return result


def echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2))


def guard_outputs(outputs: dict[str, Any], inputs: Sequence[Any]) -> None:
    """Before anything is measured: every output file can be written, none is another's, none is an input (a model
    file, a baseline, a config, a device profile among ``inputs``: the command's file-like arguments)."""
    from .files import check_output_paths

    check_output_paths(outputs, [item for item in inputs if isinstance(item, (str, Path))])


def emit(out: Output, data: Callable[[], dict[str, Any]], table: Callable[[], RenderableType],
         markdown: Optional[Callable[[], str]] = None, csv: Optional[Callable[[], str]] = None) -> None:
    """Print the result in ``out.format``, then write its JSON to ``out.path`` (atomically) when asked: if the write
    fails after measuring, the result has been shown all the same."""
    from .files import write_json_atomic

    payload = data() if out.path is not None or out.format is Format.json else None
    if out.format is Format.json:
        echo_json(payload)
    elif out.format is Format.md and markdown is not None:
        typer.echo(markdown(), nl=False)
    elif out.format is Format.csv and csv is not None:
        typer.echo(csv(), nl=False)
    else:
        stdout().print(table())
    if out.path is not None and payload is not None:
        write_json_atomic(out.path, payload)


def exit_if_interrupted(interrupted: bool) -> None:
    """After a result cut short by Ctrl-C has been shown (marked incomplete): say so and exit 130."""
    if interrupted:
        fail("interrupted (Ctrl-C): what finished is shown above, marked INCOMPLETE", INTERRUPTED)


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
