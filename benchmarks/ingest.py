"""How fast a store takes in captured elements, per backend, measured side by side in one run.

Three backends from one client: an SQLite file, PostgreSQL (skipped with a message where no
server answers) and a ``dlprov serve`` HTTP server (uvicorn in a thread on a free loopback port,
over an SQLite file). For each:

1. ingest: elements per second through the writer the recorder uses (``Store.writer()``:
   :class:`StoreWriter`, or :class:`HttpWriter` for the server), fed the records that real
   ``task.output`` calls produced (six values each), in batches of the size the recorder drains
   at a time; repeated, median and spread;
2. the cost of one capture call with that store behind it (the recorder's thread writing while
   the training thread captures): it should not depend on the backend.

A report, not a test: it exits 0 whether targets are met or not.

    python benchmarks/ingest.py            # full run, about a minute
    python benchmarks/ingest.py --quick    # smoke run, a few seconds
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import dlprov
from dlprov.recorder.recorder import close_all
from dlprov.store.store import Store

TARGETS = {"sqlite": 200_000, "postgresql": 100_000, "server": 50_000}
PG_URL = os.environ.get("DLPROV_BENCH_POSTGRESQL", "postgresql://postgres@127.0.0.1:5432/test")


def capture_records(run: "dlprov.Run", elements: int) -> list[tuple]:
    """The ELEMENT records that ``elements`` real ``task.output`` calls hand the recorder."""
    records: list[tuple] = []
    with run.task("train") as train:
        train.output("otrain", epoch=0, loss=1.0, accuracy=0.0, val_loss=1.0, val_accuracy=0.0,
                     learning_rate=1e-3)
        run.flush()
        train._put = records.append  # keep them from the recorder: they are replayed below
        for i in range(elements):
            train.output("otrain", epoch=i, loss=1.0 / (i + 1), accuracy=i / elements,
                         val_loss=0.5, val_accuracy=0.25, learning_rate=1e-3)
        train._put = run.put
    return records


def measure_ingest(store: Store, records: list[tuple], batch: int, repeats: int) -> list[float]:
    """Elements per second of each repeat: all ``records`` written in ``batch``-sized batches."""
    writer = store.writer()
    rates = []
    for _ in range(repeats):
        began = time.perf_counter()
        for start in range(0, len(records), batch):
            writer.write_batches([(uuid.uuid4().hex, records[start:start + batch])])
        rates.append(len(records) / (time.perf_counter() - began))
    return rates


def measure_call(run: "dlprov.Run", calls: int, chunk: int = 10) -> float:
    """Median microseconds of one ``task.output`` call, timed in chunks, the recorder live."""
    per_call = []
    with run.task("evaluate") as task:
        task.output("oeval", step=0, loss=1.0, accuracy=0.0, a=1.0, b=2.0, c=3.0)
        for start in range(0, calls, chunk):
            began = time.perf_counter()
            for i in range(start, start + chunk):
                task.output("oeval", step=i, loss=0.5, accuracy=0.5, a=1.0, b=2.0, c=3.0)
            per_call.append((time.perf_counter() - began) / chunk * 1e6)
    run.flush(timeout=120)
    return statistics.median(per_call)


def bench(name: str, url: str, df_tag: str, args: argparse.Namespace) -> dict:
    with dlprov.run(df_tag, store=url, capture_environment=False) as run:
        records = capture_records(run, args.elements)
        rates = measure_ingest(Store(url), records, args.batch, args.repeats)
        call_us = measure_call(run, args.calls)
    close_all()
    return {"name": name, "rates": rates, "call_us": call_us}


# -- the backends ---------------------------------------------------------------------------------

@contextmanager
def postgresql() -> Iterator[tuple[str, str] | None]:
    """(URL, dataflow tag) in a fresh schema of the PostgreSQL server, dropped afterwards."""
    try:
        import psycopg
        admin = psycopg.connect(PG_URL, autocommit=True, connect_timeout=3)
    except Exception as exc:  # noqa: BLE001 - any reason means: no server to measure
        print(f"PostgreSQL skipped: no server at {PG_URL} ({exc})")
        yield None
        return
    home = f"bench_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE SCHEMA "{home}"')
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{home}", f"{home}_df"
    finally:
        admin.execute(f'DROP SCHEMA IF EXISTS "{home}_df" CASCADE')
        admin.execute(f'DROP SCHEMA "{home}" CASCADE')
        admin.close()


@contextmanager
def server(store: Path) -> Iterator[str | None]:
    """The base URL of a ``dlprov serve`` server over ``store`` in a thread, stopped after."""
    try:
        import uvicorn  # noqa: F401

        from dlprov.server.background import serve_in_thread
    except ImportError as missing:
        print(f"server skipped: {missing} (pip install -e '.[server]')")
        yield None
        return
    with serve_in_thread(str(store)) as url:
        yield url


# -- the report -----------------------------------------------------------------------------------

def report(results: list[dict], args: argparse.Namespace) -> list[str]:
    lines = [f"1. Ingest: {args.elements} elements of 6 values, batches of {args.batch}, "
             f"{args.repeats} repeats",
             f"{'backend':<12}{'median el/s':>14}{'min–max el/s':>24}{'target':>10}"
             f"{'÷ target':>10}  result"]
    for found in results:
        rates, target = found["rates"], TARGETS[found["name"]]
        median = statistics.median(rates)
        spread = f"{min(rates):,.0f}–{max(rates):,.0f}"
        verdict = "met" if median >= target else "MISSED"
        lines.append(f"{found['name']:<12}{median:>14,.0f}{spread:>24}{target:>10,}"
                     f"{median / target:>9.2f}×  {verdict}")
    if results:
        base = statistics.median(results[0]["rates"])
        lines.append("ratio to sqlite: " + ", ".join(
            f"{r['name']} {statistics.median(r['rates']) / base:.2f}×" for r in results))
    lines += ["", f"2. Capture call (task.output, 6 values, {args.calls} calls, median)",
              f"{'backend':<12}{'µs/call':>10}{'ratio to sqlite':>18}"]
    for found in results:
        ratio = found["call_us"] / results[0]["call_us"]
        lines.append(f"{found['name']:<12}{found['call_us']:>10.2f}{ratio:>17.2f}×")
    return lines


def figures(results: list[dict]) -> list[dict]:
    """The judged figures, for ``--json`` (read by ``benchmarks/report.py``)."""
    rows = []
    for found in results:
        rates, target = found["rates"], TARGETS[found["name"]]
        median = statistics.median(rates)
        rows.append({"figure": f"ingest into {found['name']}", "value": median,
                     "unit": "elements/s", "spread": [min(rates), max(rates)],
                     "target": f">= {target:,} elements/s",
                     "result": "PASS" if median >= target else "FAIL"})
    for found in results:
        rows.append({"figure": f"capture call with the {found['name']} store",
                     "value": found["call_us"], "unit": "us", "target": None, "result": "-"})
    return rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--elements", type=int, help="elements per repeat (default 100000)")
    parser.add_argument("--batch", type=int, default=10_000,
                        help="records per batch, as the recorder drains them (10000)")
    parser.add_argument("--repeats", type=int, help="timed repeats per backend (default 7)")
    parser.add_argument("--calls", type=int, help="capture calls to time (default 100000)")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--json", help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    quick = args.quick
    args.elements = args.elements or (5_000 if quick else 100_000)
    args.repeats = args.repeats or (2 if quick else 7)
    args.calls = args.calls or (2_000 if quick else 100_000)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(f"dlprov ingest benchmark, Python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    results: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="dlprov-ingest-") as folder:
        runs: list[tuple[str, Callable]] = [
            ("sqlite", lambda: bench("sqlite", str(Path(folder) / "sqlite.db"), "bench", args))]

        def on_postgresql():
            with postgresql() as found:
                return bench("postgresql", *found, args) if found else None

        def on_server():
            with server(Path(folder) / "server.db") as url:
                return bench("server", url, "bench", args) if url else None

        runs += [("postgresql", on_postgresql), ("server", on_server)]
        for name, measure in runs:
            print(f"measuring {name} ...", file=sys.stderr, flush=True)
            found = measure()
            if found is not None:
                results.append(found)
    print("\n".join(report(results, args)))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(figures(results), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
