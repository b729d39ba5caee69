"""The one EMULATED banner, shown above every result that ran under qemu-user (its ``emulated`` flag): its timings
are not hardware timings, and a counted result (an ``arm-counted`` device) has no timings at all."""

from __future__ import annotations

from rich.text import Text

EMULATED = "EMULATED: aarch64 under qemu-user; these timings are not hardware timings"
INCOMPLETE = "INCOMPLETE: interrupted (Ctrl-C); shown is what finished before it"
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


def banners(*, emulated: bool, interrupted: bool, counted: bool = False) -> list[Text]:
    """The banners a result needs, for a terminal: EMULATED (counted: of counts) and INCOMPLETE."""
    return (([emulated_text(counted)] if emulated else []) +
            ([Text(INCOMPLETE, style="bold yellow")] if interrupted else []))


def banners_markdown(*, emulated: bool, interrupted: bool, counted: bool = False) -> list[str]:
    """The same banners as Markdown lines."""
    return (emulated_markdown(counted) if emulated else []) + ([f"> {INCOMPLETE}.", ""] if interrupted else [])
