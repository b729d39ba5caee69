"""REPORT.md and the plots of a `reproduce` run: the papers' tables with the published values beside the measured."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..devices import DeviceProfile
from ..errors import SetupError
from .breakdown import breakdown_markdown
from .compare import compare_markdown, plot_compare
from .files import write_text_atomic
from .guidelines import guidelines_markdown
from .profile import environment_line
from .units import binary_bytes, si


def _zoo_table(zoo: list[dict[str, Any]]) -> list[str]:
    lines = ["| model | multiply-adds | params | MAC deployed | median latency | throughput | achieved MAdd/s |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for entry in zoo:
        d = entry["data"]
        lat = d["latency"]
        ci = lat["ci95_ms"]
        pm = f" ±{(ci[1] - ci[0]) / 2 / lat['median_ms']:.1%}" if ci else ""
        lines.append(f"| {d['short_label']} | {si(d['flops_madd'])} | {si(d['params'])} | "
                     f"{binary_bytes(d['mac_bytes']['deployed'])} | {lat['median_ms']:.3f} ms{pm} | "
                     f"{d['throughput_per_s']:.1f}/s | {si(d['achieved_madd_per_s'])} |")
    return lines


def _speedup_summary(data: dict[str, Any]) -> list[str]:
    by_width = {m["variant"].get("width"): m for m in data["models"] if m["model"] == "shufflenet_v1"}
    lines = []
    if 0.5 in by_width and 2.0 in by_width:
        small, big = by_width[0.5], by_width[2.0]
        theory = big["flops_madd"] / small["flops_madd"]
        actual = big["latency"]["median_ms"] / small["latency"]["median_ms"]
        lines.append(f"- 2x -> 0.5x: {theory:.1f}x fewer multiply-adds gave {actual:.1f}x actual speedup here "
                     f"(paper: 524M -> 38M gave 108.8 -> 15.2 ms, 7.2x; 'every 4x cut gives ~2.6x').")
    if 0.5 in by_width:
        vs = by_width[0.5]["vs_baseline"]
        lines.append(f"- 0.5x against AlexNet: {vs['actual_speedup']['estimate']:.1f}x actual against "
                     f"{vs['theoretical_speedup']:.1f}x theoretical (paper: ~13x actual, 18x theoretical).")
    return lines


def _fidelity(data: dict[str, Any]) -> list[str]:
    return [
        f"- paired (profile's session and a bare `InferenceSession.run` loop alternating run by run, "
        f"{data['paired_runs']} runs each): profile's median is {data['paired_profile_vs_bare']:+.2%} off the bare "
        f"loop's (target: within 3%)",
        f"- timing-loop overhead inside the timed bracket: {data['loop_overhead_us']:.2f} us per run",
        f"- sequential ({len(data['profile_medians_ms'])} whole profile runs, each followed by a bare loop): "
        f"{data['sequential_profile_vs_bare']:+.2%}; spread of the profile medians (max-min over median) "
        f"{data['profile_spread']:.2%} (target: within 3%); medians "
        + ", ".join(f"{m:.3f}" for m in data["profile_medians_ms"]) + " ms; runs worth "
        + ", ".join(f"{e} of {n}" for e, n in data["profile_effective_runs"])
        + " independent ones; their 95% CIs (widened for dependent runs) "
        + ("share a common value." if data["profile_cis_share_a_value"] else
           "share NO common value: the machine changed between runs, beyond the drift within each."),
        f"- the machine's own drift (a fixed pure-Python loop, medians of consecutive blocks, max-min over median): "
        f"{data['machine_drift']:.2%}. Repeated runs cannot agree more closely than the machine holds still, which "
        "is why `compare` and `regress` interleave what they compare.",
    ]


def plot_zoo(zoo: list[dict[str, Any]], path: Path) -> Path:
    """Latency against multiply-adds for the zoo: how far FLOPs are from speed."""
    from .compare import _pyplot

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for entry in zoo:
        d = entry["data"]
        ax.scatter(d["flops_madd"] / 1e6, d["latency"]["median_ms"])
        ax.annotate(d["short_label"], (d["flops_madd"] / 1e6, d["latency"]["median_ms"]), fontsize=7,
                    xytext=(3, 3), textcoords="offset points")
    ax.set(xscale="log", yscale="log", xlabel="multiply-adds (M)", ylabel="median latency (ms)",
           title=f"zoo on {zoo[0]['device']}" + (" (EMULATED)" if zoo[0]["emulated"] else ""))
    fig.tight_layout()
    partial = path.with_name(f".{path.name}.partial{path.suffix}")
    fig.savefig(partial)
    plt.close(fig)
    partial.replace(path)
    return path


def write_report(folder: Path, device: DeviceProfile, results: dict[str, Any]) -> Path:
    """Write REPORT.md (atomically) and the plots for a finished (or resumed) run."""
    zoo, speed = results["zoo"], results["v1_speedup"]
    lines = [f"# shufflebench: the papers' experiments on `{device.name}`", "",
             f"{device.description}; {device.threads} thread(s), batch {device.batch}.", ""]
    if device.emulated:
        lines += ["> **EMULATED**: aarch64 under qemu-user. Every timing below is an emulated timing, 60-650x "
                  "slower than hardware and shaped by the emulated CPU; compare structure, never absolute times.", ""]
    first = zoo[0]["data"]
    lines += [f"Environment: {environment_line(first)}.", ""]
    plots = []
    try:
        plots.append(plot_zoo(zoo, folder / "zoo.png"))
        plots.append(plot_compare(speed["data"], folder / "v1-speedup.png"))
    except SetupError as exc:
        lines += [f"_Plots skipped: {exc}_", ""]
    lines += ["## The zoo: theoretical cost next to measured latency", ""] + _zoo_table(zoo) + [""]
    if plots:
        lines += ["![latency against multiply-adds](zoo.png)", ""]
    lines += ["## ShuffleNet V1, Table 8: theoretical against actual speedup", "",
              compare_markdown(speed["data"])] + _speedup_summary(speed["data"]) + [""]
    if plots:
        lines += ["![theoretical against actual speedup](v1-speedup.png)", ""]
    lines += ["## ShuffleNet V2, Tables 1-4: the guideline experiments", "",
              "Throughput here in images/s; the paper's GPU column in batches/s (GTX 1080Ti), its ARM column in "
              "images/s (Snapdragon 810, single thread).", ""]
    for entry in results["guidelines"]:
        lines += [guidelines_markdown(entry["data"])]
    if results["breakdowns"]:
        lines += ["## ShuffleNet V2, Figure 2: where the time goes", ""]
        for entry in results["breakdowns"]:
            lines += [breakdown_markdown(entry["data"], entry["data"]["label"])]
    if results["fidelity"]:
        lines += ["## Measurement fidelity", ""] + _fidelity(results["fidelity"]["data"]) + [""]
    seconds = sum(e["seconds"] for e in (*zoo, speed, *results["guidelines"], *results["breakdowns"],
                                         *([results["fidelity"]] if results["fidelity"] else [])))
    lines += [f"Measuring took {seconds / 60:.1f} min in all (resumed runs add up the original times).", ""]
    return write_text_atomic(folder / "REPORT.md", "\n".join(lines))
