"""Write ``benchmarks/RESULTS.md`` from what the benchmark scripts left in one folder.

``make bench`` runs each script with ``--json OUT/<name>.json`` (its figures) and saves its
printed report as ``OUT/<name>.txt``; plots are PNG files beside RESULTS.md under ``plots/``.
This script only gathers: it measures nothing. It describes the machine it runs on (the one the
figures were measured on when run by ``make bench``), puts every figure in one summary table,
links the plots and quotes each full report.

    python benchmarks/report.py benchmarks/out -o benchmarks/RESULTS.md

GPU figures cannot be measured by ``make bench`` (the project never needs a GPU): ``gpu.py``'s
outputs from a lent GPU machine are kept in ``benchmarks/gpu-h200/`` (with a README saying when,
where and how) and quoted as they are, in a section of their own.

A figure file is a JSON list of objects (or an object with a ``figures`` list), each with
``figure`` and ``result`` and either ``measured`` (text) or ``value`` + ``unit`` (and optionally
``spread``, ``target``); objects without ``figure`` (plot series) are ignored.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

# The order in RESULTS.md: the order of figures. (name of the figure files, title,
# the script and options that write them)
BENCHMARKS = (
    ("overhead", "Capture overhead on real training (dlprov alone)", "overhead.py"),
    ("peers", "Side by side with MLflow and yProv4ML", "peers.py"),
    ("ingest", "Ingest into each store", "ingest.py"),
    ("queries", "Queries at scale", "queries.py"),
    ("queries_postgresql", "Queries at scale on PostgreSQL", "queries.py --store postgresql://…"),
    ("export", "PROV export at scale", "export.py"),
    ("export_stream", "Whole-dataflow export, streamed", "export_stream.py"),
    ("faults", "Faults during a run", "faults.py"),
    ("imports", "PROV import memory", "imports.py"),
    ("cli_startup", "CLI start-up", "cli_startup.py"),
    ("ui", "Web UI", "ui.py"),
)
# Kept results of gpu.py from a lent GPU machine: (name of the files, title)
GPU_RESULTS = Path(__file__).resolve().parent / "gpu-h200"
GPU_BENCHMARKS = (
    ("gpu", "beside MLflow and yProv4ML"),
    ("gpu_dlprov", "dlprov alone, more rounds"),
)


def machine() -> list[str]:
    """What the figures were measured on (dlprov's own environment probe, as a run records it)."""
    from dlprov.capture.environment import collect_environment
    found = collect_environment(git=False, gpus=False, packages=False, command_line=False)
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    lines = [f"- host: {found['hostname']}, {found['platform']}"
             + (" (in a container)" if found.get("in_container") else ""),
             f"- CPU: {found.get('processor') or found['architecture']}, "
             f"{found['cpu_count']} logical CPUs" + (f" ({usable} usable)" if usable else "")]
    if found.get("memory_bytes"):
        lines.append(f"- memory: {found['memory_bytes'] / 2**30:.1f} GiB")
    if _hypervisor():
        lines.append("- virtualization: a virtual machine (hypervisor flag set)")
    packages = ", ".join(f"{name} {_version(name)}" for name in
                         ("dlprov", "torch", "sqlalchemy", "psycopg", "prov", "numpy"))
    lines.append(f"- Python {found['python_version']}; {packages}")
    lines.append("- GPU: none used (every figure is CPU, except in the GPU section: kept "
                 "from a lent GPU machine, described there)")
    return lines


def _hypervisor() -> bool:
    try:
        flags = next((line for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("flags")), "")
    except OSError:
        return False
    return " hypervisor" in flags


def _version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def load_figures(path: Path) -> list[dict[str, Any]]:
    """The figure objects of one ``--json`` file (plot series and other objects left out)."""
    found = json.loads(path.read_text())
    rows = found.get("figures", []) if isinstance(found, dict) else found
    return [row for row in rows if isinstance(row, dict) and "figure" in row]


def measured_text(row: dict[str, Any]) -> str:
    if row.get("measured") is not None:
        return str(row["measured"])
    value, unit = row.get("value"), row.get("unit") or ""
    if value is None:
        return "—"
    text = f"{value:,.2f} {unit}".strip() if isinstance(value, float) else f"{value} {unit}"
    spread = row.get("spread")
    if spread:
        text += f" ({spread[0]:,.2f}–{spread[1]:,.2f})"
    return text.strip()


def target_text(row: dict[str, Any]) -> str:
    target = row.get("target")
    if target is None:
        return "(reported)"
    if isinstance(target, (int, float)):
        return f"{target:,g} {row.get('unit') or ''}".strip()
    return str(target)


def result_text(row: dict[str, Any]) -> str:
    result = str(row.get("result") or "-")
    return "-" if result in ("info", "-") else f"**{result}**" if result == "FAIL" else result


def _section(name: str, title: str, figures_file: Path, report_file: Path, plots: Path,
             results_md: Path, heading: str = "##") -> tuple[list[str], list[str]]:
    """One benchmark's summary rows and its section (titled at Markdown level ``heading``):
    plots, then the report quoted."""
    rows = load_figures(figures_file) if figures_file.exists() else []
    summary = [f"| {name} | {row['figure']} | {measured_text(row)} | {target_text(row)} | "
               f"{result_text(row)} |" for row in rows]
    section = [f"{heading} {title}", ""]
    for picture in sorted(plots.glob(f"{name}.png")) + sorted(plots.glob(f"{name}-*.png")):
        link = os.path.relpath(picture, results_md.parent)
        section += [f"![{picture.stem}]({link})", ""]
    if report_file.exists():
        section += ["```", report_file.read_text().rstrip(), "```", ""]
    return summary, section


def _gpu_results(folder: Path | None, plots: Path, results_md: Path
                 ) -> tuple[list[str], list[str]]:
    """The kept GPU results (see the module's docstring), if ``folder`` holds any."""
    if folder is None or not (folder / "README.md").exists():
        return [], []
    summary: list[str] = []
    sections = ["## GPU training (`gpu.py`, kept from a lent GPU machine)", "",
                folder.joinpath("README.md").read_text().split("\n", 2)[-1].strip(), ""]
    for name, title in GPU_BENCHMARKS:
        if (folder / f"{name}.txt").exists():
            rows, section = _section(name, f"GPU: {title}", folder / f"{name}.json",
                                     folder / f"{name}.txt", plots, results_md, "###")
            summary += rows
            sections += section
    return summary, sections


def render(folder: Path, plots: Path, results_md: Path, gpu_folder: Path | None = None) -> str:
    out = ["# Benchmark results", "",
           f"Written by `make bench` ({Path(__file__).name}) on {datetime.now():%Y-%m-%d %H:%M}. "
           "Every figure was measured side by side in one run of its script and is reported "
           "with its spread; a shared 2-core VM is noisy, so read the spreads, not only the "
           "medians. How each figure is measured is in `benchmarks/README.md`.", "",
           "## Machine", ""] + machine() + [""]
    summary = ["## Summary", "", "| benchmark | figure | measured | target | result |",
               "|---|---|---|---|---|"]
    sections: list[str] = []
    missing: list[str] = []
    for name, title, script in BENCHMARKS:
        figures_file, report_file = folder / f"{name}.json", folder / f"{name}.txt"
        if not figures_file.exists() and not report_file.exists():
            missing.append(script)
            continue
        rows, section = _section(name, f"{title} (`{script}`)", figures_file, report_file,
                                 plots, results_md)
        summary += rows
        sections += section
    gpu_summary, gpu_sections = _gpu_results(gpu_folder, plots, results_md)
    summary += gpu_summary
    sections += gpu_sections
    if missing:
        summary += ["", "Not run: " + ", ".join(f"`{m}`" for m in missing) +
                    " (see `make bench`'s output)."]
    failed = [line for line in summary if "**FAIL**" in line]
    summary += ["", f"{len(failed)} figure(s) missed their target." if failed
                else "Every judged figure met its target.", ""]
    return "\n".join(out + summary + sections).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="where the scripts left <name>.json/.txt")
    parser.add_argument("-o", "--output", type=Path, default=Path("benchmarks/RESULTS.md"))
    parser.add_argument("--plots", type=Path, help="folder of the PNG plots "
                        "(default: plots/ beside the output)")
    parser.add_argument("--gpu", type=Path, default=GPU_RESULTS,
                        help="kept gpu.py results (default: benchmarks/gpu-h200)")
    args = parser.parse_args(argv)
    if not args.folder.is_dir():
        parser.error(f"{args.folder} is not a folder of benchmark outputs")
    plots = args.plots or args.output.parent / "plots"
    args.output.write_text(render(args.folder, plots, args.output, args.gpu))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
