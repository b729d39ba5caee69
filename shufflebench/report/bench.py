"""REPORT.md and the plots of a `bench` run: the papers' tables with the published values beside the measured."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..bench import FULL, QUICK, BenchResults, Fidelity, Suite
from ..compare import Comparison
from ..devices import DeviceProfile
from ..errors import SetupError, UsageError
from ..files import check_output_paths, write_text_atomic
from ..profile import ProfileResult
from ..published import claim, latency_for
from ..runners.lookup import runner_for
from ..zoo.papers import all_figures
from .banner import EMULATED
from .breakdown import breakdown_markdown
from .compare import compare_markdown, plot_compare, pyplot, save_figure
from .guidelines import guidelines_markdown
from .profile import environment_line
from .units import binary_bytes, si


def _zoo_table(zoo: tuple[ProfileResult, ...]) -> list[str]:
    lines = ["| model | multiply-adds | params | MAC deployed | median latency | throughput | achieved MAdd/s |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for result in zoo:
        m = result.timed
        pm = f" ±{(m.ci95[1] - m.ci95[0]) / 2 / m.median:.1%}" if m.ci95 else ""
        lines.append(f"| {result.model.short_label} | {si(result.cost.flops_madd)} | {si(result.cost.params)} | "
                     f"{binary_bytes(result.cost.mac_bytes['deployed'])} | {m.median * 1e3:.3f} ms{pm} | "
                     f"{result.throughput_per_s or 0:.1f}/s | {si(result.achieved_madd_per_s or 0)} |")
    return lines


def _paper_madd(model: str, variant: dict) -> float | None:
    """The multiply-adds a paper printed for this variant (data/papers.toml), options not given at any value."""
    for figure in all_figures():
        if figure.model == model and all(variant.get(k) == v for k, v in figure.variant):
            return figure.flops_madd
    return None


def _speedup_summary(comparison: Comparison) -> list[str]:
    """The Table 8 analog in two sentences, each beside what the papers printed (``data/``)."""
    by_width = {m.result.model.variant.get("width"): m for m in comparison.models
                if m.result.model.name == "shufflenet_v1"}
    lines = []
    if 0.5 in by_width and 2.0 in by_width:
        small, big = by_width[0.5].result, by_width[2.0].result
        theory = big.cost.flops_madd / small.cost.flops_madd
        actual = big.timed.median / small.timed.median
        paper_small, paper_big = (latency_for(r.model.name, r.model.variant) for r in (small, big))
        madd_small, madd_big = (_paper_madd(r.model.name, r.model.variant) for r in (small, big))
        rule = claim("table8_rule")
        paper = ""
        if paper_small and paper_big and madd_small and madd_big:
            paper = (f" (paper: {si(madd_big)} -> {si(madd_small)} multiply-adds gave {paper_big.latency_ms:g} -> "
                     f"{paper_small.latency_ms:g} ms, {paper_big.latency_ms / paper_small.latency_ms:.1f}x; "
                     f"{rule.source}: '{rule.text}')")
        lines.append(f"- 2x -> 0.5x: {theory:.1f}x fewer multiply-adds gave {actual:.1f}x actual speedup here{paper}.")
    if 0.5 in by_width:
        half = by_width[0.5]
        base = next(m.result for m in comparison.models if m.result.model.label == comparison.baseline)
        paper_half = half.paper
        madd_half = _paper_madd(half.result.model.name, half.result.model.variant)
        madd_base = _paper_madd(base.model.name, base.model.variant)
        paper = ""
        if paper_half and paper_half.speedup_vs_baseline and madd_half and madd_base:
            paper = (f" (paper: {paper_half.speedup_vs_baseline:.1f}x actual, {madd_base / madd_half:.1f}x "
                     f"theoretical; {paper_half.source})")
        lines.append(f"- 0.5x against {base.model.short_label}: {half.actual_speedup.estimate:.1f}x actual against "
                     f"{half.theoretical_speedup or 0:.1f}x theoretical{paper}.")
    return lines


def _fidelity(data: Fidelity) -> list[str]:
    return [
        f"- paired (profile's session and a bare `InferenceSession.run` loop alternating run by run, "
        f"{data.paired_runs} runs each): profile's median is {data.paired_profile_vs_bare:+.2%} off the bare "
        f"loop's (target: within 3%)",
        f"- timing-loop overhead inside the timed bracket: {data.loop_overhead_us:.2f} us per run",
        f"- sequential ({len(data.profile_medians_ms)} whole profile runs, each followed by a bare loop): "
        f"{data.sequential_profile_vs_bare:+.2%}; spread of the profile medians (max-min over median) "
        f"{data.profile_spread:.2%} (target: within 3%); medians "
        + ", ".join(f"{m:.3f}" for m in data.profile_medians_ms) + " ms; runs worth "
        + ", ".join(f"{e} of {n}" for e, n in data.profile_effective_runs)
        + " independent ones; their 95% CIs (widened for dependent runs) "
        + ("share a common value." if data.profile_cis_share_a_value else
           "share NO common value: the machine changed between runs, beyond the drift within each."),
        f"- the machine's own drift (a fixed pure-Python loop, medians of consecutive blocks, max-min over median): "
        f"{data.machine_drift:.2%}. Repeated runs cannot agree more closely than the machine holds still, which "
        "is why `compare` and `regress` interleave what they compare.",
    ]


def plot_zoo(zoo: tuple[ProfileResult, ...], path: Path) -> Path:
    """Latency against multiply-adds for the zoo: how far FLOPs are from speed."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for result in zoo:
        madd, median_ms = result.cost.flops_madd / 1e6, result.timed.median * 1e3
        ax.scatter(madd, median_ms)
        ax.annotate(result.model.short_label, (madd, median_ms), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set(xscale="log", yscale="log", xlabel="multiply-adds (M)", ylabel="median latency (ms)",
           title=f"zoo on {zoo[0].device.name}" + (" (EMULATED)" if zoo[0].emulated else ""))
    fig.tight_layout()
    return save_figure(plt, fig, path)


def write_report(folder: Path, results: BenchResults) -> Path:
    """Write REPORT.md (atomically) and the plots for a finished (or resumed) run."""
    device, zoo, speed = results.device, results.zoo, results.v1_speedup
    lines = [f"# shufflebench: the papers' experiments on `{device.name}`", "",
             f"{device.description}; {device.threads} thread(s), batch {device.batch}.", ""]
    if device.emulated:
        lines += [f"> **{EMULATED}**. Every timing below is an emulated timing, 60-650x slower than hardware and "
                  "shaped by the emulated CPU; compare structure, never absolute times.", ""]
    lines += [f"Environment: {environment_line(zoo[0].environment)}.", ""]
    plots = []
    try:
        plots.append(plot_zoo(zoo, folder / "zoo.png"))
        plots.append(plot_compare(speed, folder / "v1-speedup.png"))
    except SetupError as exc:
        lines += [f"_Plots skipped: {exc}_", ""]
    lines += ["## The zoo: theoretical cost next to measured latency", ""] + _zoo_table(zoo) + [""]
    if plots:
        lines += ["![latency against multiply-adds](zoo.png)", ""]
    lines += ["## ShuffleNet V1, Table 8: theoretical against actual speedup", "",
              compare_markdown(speed)] + _speedup_summary(speed) + [""]
    if plots:
        lines += ["![theoretical against actual speedup](v1-speedup.png)", ""]
    lines += ["## ShuffleNet V2, Tables 1-4: the guideline experiments", "",
              "Throughput here in images/s; the paper's GPU column in batches/s (GTX 1080Ti), its ARM column in "
              "images/s (Snapdragon 810, single thread).", ""]
    lines += [guidelines_markdown(entry) for entry in results.guidelines]
    if results.breakdowns:
        lines += ["## ShuffleNet V2, Figure 2: where the time goes", ""]
        lines += [breakdown_markdown(data, label) for label, data in results.breakdowns]
    if results.fidelity:
        lines += ["## Measurement fidelity", ""] + _fidelity(results.fidelity) + [""]
    lines += [f"Measuring took {results.seconds / 60:.1f} min in all (resumed runs add up the original times).", ""]
    return write_text_atomic(folder / "REPORT.md", "\n".join(lines))


def run_suite(device: DeviceProfile, out_root: Path, *, quick: bool, log: Callable[[str], None] = print) -> Path:
    """Run (or resume) every experiment for ``device`` under ``out_root/<device>/`` and write the report (what
    ``bench.py`` runs). Returns the folder."""
    if out_root.exists() and not out_root.is_dir():
        raise UsageError(f"--out {str(out_root)!r} is a file; give a folder for the results")
    runner_for(device)  # a reference-only device is refused before anything is written
    folder = out_root / device.name
    check_output_paths({"--out": folder / "REPORT.md"})  # before anything is measured
    suite = Suite(device, folder, QUICK if quick else FULL, log)
    results = suite.run_all()
    write_report(folder, results)
    log(f"measured {len(suite.measured)} experiment(s) this run; report: {folder / 'REPORT.md'}")
    return folder
