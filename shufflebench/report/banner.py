"""The one EMULATED banner, shown above every result that ran under qemu-user (its ``emulated`` flag): its timings
are not hardware timings, and a counted result (an ``arm-counted`` device) has no timings at all."""

from __future__ import annotations

from rich.text import Text

EMULATED = "EMULATED: aarch64 under qemu-user; these timings are not hardware timings"
EMULATED_COUNTED = ("EMULATED: aarch64 under qemu-user; counts of the real aarch64 kernels, no timings: "
                    "instructions are not hardware speed")


def _banner(counted: bool) -> str:
    return EMULATED_COUNTED if counted else EMULATED


def emulated_text(counted: bool = False) -> Text:
    """The banner for a terminal (``counted``: the result holds counts, not timings)."""
    return Text(_banner(counted), style="bold red")


def emulated_markdown(counted: bool = False) -> list[str]:
    """The banner as Markdown lines (a quote, then a blank line)."""
    return [f"> {_banner(counted)}.", ""]
