"""The one EMULATED banner, shown above every result whose timings come from qemu-user (its ``emulated`` flag)."""

from __future__ import annotations

from rich.text import Text

EMULATED = "EMULATED: aarch64 under qemu-user; these timings are not hardware timings"


def emulated_text() -> Text:
    """The banner for a terminal."""
    return Text(EMULATED, style="bold red")


def emulated_markdown() -> list[str]:
    """The banner as Markdown lines (a quote, then a blank line)."""
    return [f"> {EMULATED}.", ""]
