"""Whole-dataflow export, whole document vs streamed: CPU time and peak memory per format.

Over synthetic stores of growing size (``benchmarks/synthetic.py``, N executions × E epochs),
each export runs in a child process of its own, ``dlprov.prov.write(path, format=...,
streaming=...)`` into a file (what ``dlprov export -o`` does): its CPU time (measured in the
child, around the export only) and its peak resident memory (the child's own high-water mark,
VmHWM: the whole process, imports included; the baseline line is a child that only imports).
``streaming=False`` is the path that builds prov's document and serializes it (RDF through an
rdflib graph); Turtle and TriG of the old path are skipped above ``--old-max`` executions (at
1,000 they took 251 s and 8.3 GB). ``--api text`` measures ``export()`` instead, which returns
the whole text (what ``dlprov export`` without ``-o`` prints). ``--check`` reads both outputs
back and compares them, up to ``--old-max`` executions (rdflib graphs, blank nodes matched by
content; PROV-JSON as prov documents).

    python benchmarks/export_stream.py                        # 100 and 1,000 × 100
    python benchmarks/export_stream.py --executions 20 100 --epochs 5 --check
    python benchmarks/export_stream.py --executions 1000 --json out.json   # as make bench

Targets (issue 20), streamed, on the largest store: Turtle and TriG under 20 s of CPU, PROV-JSON
under 8 s, every format's peak memory under 1 GB.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
FORMATS = ("ttl", "trig", "json")
CPU_TARGET_S = {"ttl": 20.0, "trig": 20.0, "json": 8.0}
MEMORY_TARGET_MB = 1024.0


def child(url: str, fmt: str, streaming: bool, out: str, api: str) -> None:
    """The measured export, run in this (child) process; prints its figures as JSON."""
    from dlprov.prov.export import export, write
    from dlprov.store.store import Store

    store = Store(url)
    cpu, wall = time.process_time(), time.perf_counter()
    if api == "file":
        write(out, store, format=fmt, streaming=streaming)
    else:  # the text in memory, as export() returns it (then saved, outside the timing)
        text = export(store, format=fmt, streaming=streaming)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    peak = peak_mb()  # before the text is saved, which the export itself does not do
    if api == "text":
        Path(out).write_text(text, encoding="utf-8")
    print(json.dumps({"cpu_s": cpu, "wall_s": wall, "bytes": os.path.getsize(out),
                      "rss_mb": peak}))


def peak_mb() -> float:
    """This process's peak resident memory in MB: VmHWM, the high-water mark of its own
    memory since exec (``ru_maxrss`` of a child also counts the parent it was forked from,
    whose memory the --check step grows)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(args: list[str]) -> dict:
    """Run this script as a child with ``args``; its JSON line, with its peak RSS in MB."""
    process = subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE,
                               text=True)
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"child {' '.join(args)} failed ({process.returncode})")
    found = json.loads(output.strip().splitlines()[-1])
    found.setdefault("rss_mb", usage.ru_maxrss / 1024)  # kilobytes on Linux
    return found


def same_output(old: Path, new: Path, fmt: str) -> bool:
    """Whether two exports hold the same graph (RDF) or equal documents (PROV-JSON)."""
    import warnings

    from rdflib import Dataset, Graph

    from dlprov.prov.export import deserialize
    from dlprov.prov.stream.compare import same_dataset, same_graph

    if fmt == "json":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            a, b = (deserialize(p.read_bytes(), "json") for p in (old, new))
        return a == b and b == a
    if fmt == "ttl":
        return same_graph(Graph().parse(old, format="turtle"),
                          Graph().parse(new, format="turtle"))
    a, b = Dataset(), Dataset()
    a.parse(old, format="trig")
    b.parse(new, format="trig")
    return same_dataset(a, b)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--executions", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--formats", nargs="+", default=list(FORMATS), choices=FORMATS)
    parser.add_argument("--old-max", type=int, default=100,
                        help="largest store (executions) the old Turtle/TriG path runs on")
    parser.add_argument("--check", action="store_true",
                        help="read both outputs back and compare them")
    parser.add_argument("--store", help="a store URL to measure instead of synthetic ones")
    parser.add_argument("--api", choices=("file", "text"), default="file",
                        help="write() into a file (default), or export() as text")
    parser.add_argument("--json", help="write the largest store's figures as JSON here "
                                       "(for report.py)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(HERE))
    import synthetic

    if args.store:
        stores = [(args.store, "given store")]
    else:
        stores = []
        for n in args.executions:
            built = synthetic.build(n, args.epochs)
            how = "cached" if built.cached else f"built in {built.build_seconds:.0f} s"
            print(f"store {n:,}×{args.epochs}: {how}", flush=True)
            stores.append((built.url, f"{n:,}×{args.epochs}"))
    baseline = measure(["--baseline"])
    print(f"\nbaseline (a child that only imports dlprov's export): "
          f"{baseline['rss_mb']:,.0f} MB peak RSS; measuring "
          f"{'write() into a file' if args.api == 'file' else 'export() as text'}\n")
    header = (f"{'store':<12}{'format':<7}{'old cpu s':>10}{'new cpu s':>10}{'ratio':>8}"
              f"{'old MB':>9}{'new MB':>9}{'ratio':>8}{'out MB':>9}  same")
    print(header)
    print("-" * len(header))
    figures: list[dict] = []
    with tempfile.TemporaryDirectory() as folder:
        for url, label in stores:
            executions = int(label.split("×")[0].replace(",", "")) if "×" in label else 0
            for fmt in args.formats:
                new_path, old_path = Path(folder, f"new.{fmt}"), Path(folder, f"old.{fmt}")
                new = measure(["--child", url, fmt, "1", str(new_path), args.api])
                old = None
                if fmt == "json" or executions <= args.old_max:
                    old = measure(["--child", url, fmt, "0", str(old_path), args.api])
                same = ""
                if args.check and old is not None and executions <= args.old_max:
                    same = "yes" if same_output(old_path, new_path, fmt) else "NO"
                print(row(label, fmt, old, new, same), flush=True)
                if (url, label) == stores[-1]:
                    figures += judged(label, fmt, old, new)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 0


def judged(label: str, fmt: str, old: dict | None, new: dict) -> list[dict]:
    """The streamed export's CPU time and peak memory against the targets, the whole-document
    path's beside them where it ran."""
    def figure(name: str, value: float, unit: str, target: float) -> dict:
        return {"figure": f"{label}, {fmt} streamed: {name}", "value": round(value, 2),
                "unit": unit, "target": f"< {target:g} {unit}",
                "result": "PASS" if value < target else "FAIL"}
    found = [figure("CPU", new["cpu_s"], "s", CPU_TARGET_S[fmt]),
             figure("peak memory", new["rss_mb"], "MB", MEMORY_TARGET_MB)]
    if old is not None:
        found.append({"figure": f"{label}, {fmt} whole document: CPU", "unit": "s",
                      "value": round(old["cpu_s"], 2), "target": None, "result": "info"})
    return found


def row(label: str, fmt: str, old: dict | None, new: dict, same: str) -> str:
    def ratio(key: str) -> str:
        return f"{new[key] / old[key]:.3f}" if old else "—"
    old_cpu = f"{old['cpu_s']:.2f}" if old else "skipped"
    old_rss = f"{old['rss_mb']:,.0f}" if old else "—"
    return (f"{label:<12}{fmt:<7}{old_cpu:>10}{new['cpu_s']:>10.2f}{ratio('cpu_s'):>8}"
            f"{old_rss:>9}{new['rss_mb']:>9,.0f}{ratio('rss_mb'):>8}"
            f"{new['bytes'] / 1e6:>9.1f}  {same}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        url, fmt, streaming, out, api = sys.argv[2:7]
        child(url, fmt, streaming == "1", out, api)
    elif sys.argv[1:2] == ["--baseline"]:
        import dlprov.prov.export  # noqa: F401
        print(json.dumps({"rss_mb": peak_mb()}))
    else:
        sys.exit(main())
