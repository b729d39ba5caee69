"""The one EMULATED banner, shown above every result whose timings come from qemu-user (its ``emulated`` flag)."""

from __future__ import annotations

from rich.text import Text

EMULATED = "EMULATED: aarch64 under qemu-user; these timings are not hardware timings"
INCOMPLETE = "INCOMPLETE: interrupted (Ctrl-C); shown is what finished before it"


def emulated_text() -> Text:
    """The banner for a terminal."""
    return Text(EMULATED, style="bold red")


def emulated_markdown() -> list[str]:
    """The banner as Markdown lines (a quote, then a blank line)."""
    return [f"> {EMULATED}.", ""]


def banners(*, emulated: bool, interrupted: bool) -> list[Text]:
    """The banners a result needs, for a terminal: EMULATED and INCOMPLETE."""
    return ([emulated_text()] if emulated else []) + ([Text(INCOMPLETE, style="bold yellow")] if interrupted else [])


def banners_markdown(*, emulated: bool, interrupted: bool) -> list[str]:
    """The same banners as Markdown lines."""
    return (emulated_markdown() if emulated else []) + ([f"> {INCOMPLETE}.", ""] if interrupted else [])
