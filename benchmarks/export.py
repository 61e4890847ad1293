"""Time and size of PROV documents: one model's trace and a whole dataflow, in each format.

Over the synthetic store of ``benchmarks/synthetic.py`` (default 1,000 executions × 100 epochs),
the model being Q3's best: building the ``prov`` document from the store, then serializing it
in each text format dlprov offers (PROV-N, PROV-JSON, PROV-XML, Turtle, TriG) and, for the
model, the pictures (SVG, PNG; summarised past 150 nodes). Each figure is the median of a few
repeats. A whole-dataflow serialization whose time, estimated from the model's, is above
``--limit`` seconds is skipped and says so. No targets: the figures are measured, not judged.

Validation is timed beside export: ``dlprov.prov.constraints.validate`` (every
PROV-CONSTRAINTS check) against ``prov``'s ``ProvDocument.unified()`` (term unification only)
on the same document, with their ratio to the PROV-JSON serialization time.

    python benchmarks/export.py                  # 1,000 × 100
    python benchmarks/export.py --quick          # 20 × 5, a few seconds
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import synthetic  # noqa: E402  (sibling scripts, not a package)
from queries import Figure, report_table, time_ms, write_json  # noqa: E402

import dlprov.query as q  # noqa: E402
from dlprov.prov import document, serialize  # noqa: E402
from dlprov.prov.constraints import validate  # noqa: E402
from dlprov.store.store import Store  # noqa: E402

TEXT_FORMATS = ("provn", "json", "xml", "ttl", "trig")
PICTURE_FORMATS = ("svg", "png")


def records_of(doc) -> int:
    """PROV records in ``doc`` and its bundles: what serialization time grows with."""
    return len(doc.records) + sum(len(b.records) for b in doc.bundles)


def timed(call, repeats: int) -> tuple[float, float, float, object]:
    """(median, min, max) seconds of ``repeats`` calls, and the last answer."""
    times, answer = [], None
    for _ in range(repeats):
        ms, answer = time_ms(call)
        times.append(ms / 1000)
    return statistics.median(times), min(times), max(times), answer


def scope_figures(scope: str, build, formats: tuple[str, ...], repeats: int,
                  per_record: dict[str, float] | None, limit: float) -> tuple[list[Figure], dict]:
    """Build the document of one scope, then serialize it in each of ``formats``. With
    ``per_record`` (seconds per record of each format, measured on a smaller document), a
    format estimated over ``limit`` seconds is skipped."""
    median, low, high, doc = timed(build, repeats)
    records = records_of(doc)
    figures = [Figure(f"{scope}: build document", median, "s", spread=(low, high),
                      extra={"scope": scope, "records": records})]
    rates = {}
    for fmt in formats:
        estimate = per_record[fmt] * records if per_record and fmt in per_record else None
        if estimate is not None and estimate > limit:
            figures.append(Figure(f"{scope}: {fmt} (skipped, estimated {estimate:,.0f} s > "
                                  f"limit {limit:g} s)", None, "s",
                                  extra={"scope": scope, "format": fmt, "estimate_s": estimate}))
            continue
        times = 1 if estimate is not None and estimate > 5 else repeats
        median, low, high, data = timed(lambda: serialize(doc, fmt), times)
        rates[fmt] = median / max(records, 1)
        figures.append(Figure(f"{scope}: {fmt} time", median, "s", spread=(low, high),
                              extra={"scope": scope, "format": fmt, "records": records}))
        figures.append(Figure(f"{scope}: {fmt} size", len(data) / 1e6, "MB",
                              extra={"scope": scope, "format": fmt, "bytes": len(data)}))
    figures += validation_figures(scope, doc, records, repeats, rates, limit)
    return figures, rates


def validation_figures(scope: str, doc, records: int, repeats: int, rates: dict[str, float],
                       limit: float) -> list[Figure]:
    """dlprov's validation and prov's unified() of ``doc``, and their ratios to export
    (PROV-JSON) time. unified() is skipped above ``limit`` seconds, estimated from the
    validation time (it is never faster here)."""
    times = 1 if records > 100_000 else repeats
    median, low, high, report = timed(lambda: validate(doc), times)
    figures = [Figure(f"{scope}: validate (dlprov, all constraints)", median, "s",
                      spread=(low, high), extra={"scope": scope, "format": "validate",
                                                 "records": records,
                                                 "valid": report.valid})]
    json_time = rates.get("json", 0) * records
    if json_time:
        figures.append(Figure(f"{scope}: validate / json export (ratio)", median / json_time,
                              "x", extra={"scope": scope}))
    if median * 10 > limit:
        figures.append(Figure(f"{scope}: unified() (prov, skipped: validation alone took "
                              f"{median:,.0f} s)", None, "s", extra={"scope": scope}))
        return figures
    flat = doc.flattened() if doc.bundles else doc
    unified_median, low, high, _ = timed(flat.unified, times)
    figures.append(Figure(f"{scope}: unified() (prov, unification only)", unified_median,
                          "s", spread=(low, high), extra={"scope": scope,
                                                          "format": "unified"}))
    figures.append(Figure(f"{scope}: validate / unified()", median / unified_median, "x",
                          extra={"scope": scope}))
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--executions", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--limit", type=float, default=300.0,
                        help="skip a whole-dataflow format estimated above this many seconds")
    parser.add_argument("--quick", action="store_true", help="20 × 5, 1 repeat")
    parser.add_argument("--store", help="a PostgreSQL URL (default: a cached SQLite file)")
    parser.add_argument("--json", help="write the figures as JSON here")
    args = parser.parse_args(argv)
    if args.quick:
        args.executions, args.epochs, args.repeats = 20, 5, 1
    built = synthetic.build(args.executions, args.epochs, store=args.store)
    how = "cached" if built.cached else f"built in {built.build_seconds:.1f} s"
    print(f"store {args.executions:,}×{args.epochs}: {how} ({built.url})", flush=True)
    store = Store(built.url)
    model = q.q3(store=store, dataflow=built.dataflow).records()[0]["model_id"]

    figures, rates = scope_figures(
        "one model", lambda: document(store, dataflow=built.dataflow, model=model),
        TEXT_FORMATS + PICTURE_FORMATS, args.repeats, None, args.limit)
    whole = f"dataflow of {args.executions:,} executions"
    more, _ = scope_figures(
        whole, lambda: document(store, dataflow=built.dataflow), TEXT_FORMATS,
        max(1, args.repeats - 2), rates, args.limit)
    figures += more
    print()
    print("\n".join(report_table(
        f"PROV export ({args.epochs} epochs per execution; median of {args.repeats} for the "
        f"model, {max(1, args.repeats - 2)} for the dataflow; limit {args.limit:g} s)",
        figures)))
    series = {"time_s": {}, "size_mb": {}}
    for f in figures:
        kind = "time_s" if f.figure.endswith(" time") else "size_mb" if f.figure.endswith(
            " size") else None
        if kind:
            series[kind].setdefault(f.extra["scope"], {})[f.extra["format"]] = f.value
    write_json(args.json, figures, series)
    store.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
