"""Latency of the provenance questions (Q1–Q12) and of the paper's Listing 4 at scale.

A synthetic store (``benchmarks/synthetic.py``: the demo's dataflow, N executions × E epochs,
written by the real recorder and StoreWriter) per size; for each query the cold first call (a
fresh Store: new engine and connection), then the warm median and p90 of repeated calls. Targets
at 1,000 executions: Q1–Q9, Q11 and Listing 4 under 50 ms, Q10 and Q12 under 100 ms; from the
smallest to the largest size the growth should be linear or better (ratio ≤ the size ratio);
at 10,000 executions every query under 100 ms. Beside each, on the largest store, its floor: the
same statement run by the database alone through the raw driver on an open connection
(:func:`database_alone`). ``--plans FILE`` writes the ``EXPLAIN`` of each statement on the
largest store (Markdown), as the database plans it.

A report, not a test: it exits 0 whether targets are met or not.

    python benchmarks/queries.py                       # 1,000 and 10,000 × 100 (cached stores)
    python benchmarks/queries.py --quick               # 20 and 40 × 5, a few seconds
    python benchmarks/queries.py --executions 1000 --epochs 100 --json out.json --plot q.png
    python benchmarks/queries.py --store postgresql://postgres@127.0.0.1:5432/test
    python benchmarks/queries.py --plans benchmarks/PLANS.md
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

import synthetic  # noqa: E402  (a sibling script, not a package)

import dlprov.query as q  # noqa: E402
from dlprov.demo.workflow import LISTING_4  # noqa: E402
from dlprov.store.store import Store  # noqa: E402

QUERIES = [f"q{i}" for i in range(1, 13)] + ["listing4"]
TARGET_MS = {name: (100.0 if name in ("q10", "q12") else 50.0) for name in QUERIES}
TARGET_SIZE = 1000  # the executions the latency targets are set for
LARGE_SIZE, LARGE_TARGET_MS = 10_000, 100.0  # and at 10,000 executions: every query


# -- figures and the report (shared with export.py) ------------------------------------------------

@dataclass
class Figure:
    """One reported figure; ``target`` None means measured, not judged. ``spread`` is the
    (low, high) of the repeats the value is the median of."""

    figure: str
    value: float | None
    unit: str
    target: float | None = None
    result: str = "info"
    spread: tuple[float, float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def judged(cls, figure: str, value: float, unit: str, target: float, *,
               higher_is_better: bool = False, **extra: Any) -> "Figure":
        met = value >= target if higher_is_better else value <= target
        return cls(figure, value, unit, target, "PASS" if met else "FAIL", **extra)

    @property
    def ratio(self) -> float | None:
        return None if self.target in (None, 0) or self.value is None else self.value / self.target

    def as_json(self) -> dict[str, Any]:
        found = asdict(self)
        found["ratio"] = self.ratio
        found.update(found.pop("extra"))
        return found


def report_table(title: str, figures: list[Figure]) -> list[str]:
    """The figures as a text table: figure, measured (spread), target, ratio, result."""
    lines = [title, f"{'figure':<44}{'measured':>12}{'spread':>19}{'target':>11}{'ratio':>8}"
                    f"  result"]
    for f in figures:
        value = "—" if f.value is None else f"{f.value:,.2f} {f.unit}"
        spread = "" if f.spread is None else f"{f.spread[0]:,.3g}–{f.spread[1]:,.3g}"
        target = "" if f.target is None else f"{f.target:,g}"
        ratio = "" if f.ratio is None else f"{f.ratio:.2f}"
        lines.append(f"{f.figure:<44}{value:>12}{spread:>19}{target:>11}{ratio:>8}  {f.result}")
    return lines


def write_json(path: str | None, figures: list[Figure], series: dict[str, Any]) -> None:
    """The figures (and the plot series as one more object) as a JSON list at ``path``."""
    if not path:
        return
    rows = [f.as_json() for f in figures]
    rows.append({"figure": "series", "value": None, "unit": "", "target": None,
                 "result": "info", "series": series})
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(rows, indent=2, default=str))


# -- timing --------------------------------------------------------------------------------------

def time_ms(call: Callable[[], Any]) -> tuple[float, Any]:
    began = time.perf_counter()
    answer = call()
    return (time.perf_counter() - began) * 1000, answer


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def question_params(url: str, dataflow: str, store: Store) -> dict[str, dict[str, Any]]:
    """Each question's real parameters: Q7–Q12 ask about Q3's best model, Q1 about a learning
    rate several models used, Q6 about the training set file every run wrote."""
    best = q.q3(store=store, dataflow=dataflow).records()
    if not best or best[0]["model_id"] is None:
        raise SystemExit(f"no best model in {url}: the synthetic store is incomplete")
    model = best[0]["model_id"]
    return {**{name: {} for name in QUERIES if name != "listing4"},
            "q1": {"learning_rate": 1e-3}, "q6": {"training_set": "train.npz"},
            **{f"q{i}": {"model": model} for i in range(7, 13)}}


def calls(url: str, dataflow: str, store: Store) -> dict[str, Callable[[Store], Any]]:
    """One call per query, with the parameters of :func:`question_params`."""
    params = question_params(url, dataflow, store)
    return {**{name: (lambda s, name=name: q.ask(name, store=s, dataflow=dataflow,
                                                 **params[name])) for name in params},
            "listing4": lambda s: q.sql(LISTING_4, store=s, dataflow=dataflow)}


def measure(built: synthetic.SyntheticStore, repeats: int) -> dict[str, dict[str, Any]]:
    """Cold first call, warm median, p90, min and max (ms) and the answer's rows, per query."""
    store = Store(built.url)
    found = {}
    for name, call in calls(built.url, built.dataflow, store).items():
        fresh = Store(built.url)
        cold, answer = time_ms(lambda: call(fresh))
        fresh.dispose()
        warm = [time_ms(lambda: call(store))[0] for _ in range(repeats)]
        found[name] = {"cold": cold, "median": statistics.median(warm),
                       "p90": percentile(warm, 0.9), "min": min(warm), "max": max(warm),
                       "rows": len(answer.rows)}
    store.dispose()
    return found


# -- the run -------------------------------------------------------------------------------------

def statements(built: synthetic.SyntheticStore, store: Store) -> dict[str, tuple[str, dict]]:
    """Each query's SQL statement and bound parameters, as dlprov sends them (Listing 4 as
    printed; the questions as :func:`dlprov.query.questions.prepare` writes them)."""
    from dlprov.query.questions import prepare

    params = question_params(built.url, built.dataflow, store)
    found = {}
    for name in QUERIES:
        if name == "listing4":
            found[name] = (LISTING_4, {})
        else:
            statement = prepare(name, store=store, dataflow=built.dataflow, **params[name])
            found[name] = (statement.sql, statement.params)
    return found


def database_alone(built: synthetic.SyntheticStore, repeats: int) -> dict[str, float]:
    """The floor of each query: warm median milliseconds of its very statement run by the
    database alone, through the raw driver on one open connection (SQLite: ``sqlite3`` with
    the dataflow's set names as temporary views, as dlprov makes them; PostgreSQL: ``psycopg``
    with the dataflow's schema first on the search path and, for the questions, JIT off, as
    dlprov runs them), rows fetched as tuples. What dlprov adds beyond it is its per-call cost:
    a fresh read connection and views, the read-only guards, result checks."""
    from sqlalchemy import text

    from dlprov.query.sql import set_views

    store = Store(built.url)
    sent = statements(built, store)
    spec = store.load_spec(built.dataflow)
    engine = store.engine(read_only=True)
    dialect = engine.dialect
    raw = engine.raw_connection()
    driver = raw.driver_connection
    quote = dialect.identifier_preparer.quote
    if store.backend == "sqlite":
        for view in set_views(spec, dialect.identifier_preparer):  # as dlprov makes them
            driver.execute(view)
        driver.execute("PRAGMA query_only = ON")
    else:
        driver.execute(f"SET search_path TO {quote(spec.tag)}, public")
    found = {}
    for name, (sql, params) in sent.items():
        if store.backend == "postgresql":  # :name parameters in psycopg's form
            compiled = text(sql).compile(dialect=dialect)
            sql, params = compiled.string, compiled.construct_params(params)
            driver.execute(f"SET jit = {'on' if name == 'listing4' else 'off'}")
        times = []
        for _ in range(repeats + 1):  # the first warms the connection's cache: not counted
            began = time.perf_counter()
            driver.execute(sql, params).fetchall()
            times.append((time.perf_counter() - began) * 1000)
        found[name] = statistics.median(times[1:])
    raw.close()
    store.dispose()
    return found


def plans(built: synthetic.SyntheticStore) -> dict[str, list[str]]:
    """The database's plan of each query's statement on ``built``, one line per step (SQLite's
    ``EXPLAIN QUERY PLAN`` indented by depth; PostgreSQL's ``EXPLAIN``), run the way dlprov
    runs it (the dataflow's set names resolved, the question's parameters bound)."""
    from dlprov.query.sql import builtin_sql

    store = Store(built.url)
    sqlite = store.backend == "sqlite"
    explain = "EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN "
    found = {}
    for name, (sql, bound) in statements(built, store).items():
        rows = builtin_sql(explain + sql, store=store, dataflow=built.dataflow,
                           params=bound).rows
        if sqlite:  # (id, parent, notused, detail): indent each step under its parent
            depth: dict[int, int] = {0: -1}
            lines = []
            for step, parent, _, detail in rows:
                depth[step] = depth.get(parent, -1) + 1
                lines.append("  " * depth[step] + detail)
        else:
            lines = [row[0] for row in rows]
        found[name] = lines
    store.dispose()
    return found


def write_plans(path: str, built: synthetic.SyntheticStore, epochs: int) -> None:
    backend = "SQLite" if built.url.startswith("sqlite") else "PostgreSQL"
    out = [f"# Query plans at {built.executions:,} executions × {epochs} epochs ({backend})",
           "", "Written by `benchmarks/queries.py --plans` (`make bench`): the plan the "
           "database makes of each statement `queries.py` times, run as dlprov runs it. How "
           "to read them: `benchmarks/README.md`.", ""]
    for name, lines in plans(built).items():
        out += [f"## {name}", "```", *lines, "```", ""]
    Path(path).write_text("\n".join(out))


def floor_figures(size: int, results: dict[str, dict], floors: dict[str, float]
                  ) -> list[Figure]:
    """Per query at ``size``: the database alone (its floor) and dlprov's warm median over it."""
    figures = []
    for name in QUERIES:
        extra = {"query": name, "executions": size}
        figures.append(Figure(f"{name} @ {size:,} executions: the database alone",
                              floors[name], "ms", extra=extra))
        figures.append(Figure(f"{name} @ {size:,} executions: dlprov / the database alone",
                              results[name]["median"] / floors[name], "×", extra=extra))
    return figures


def figures_of(sizes: list[int], results: dict[int, dict[str, dict]]) -> list[Figure]:
    figures = []
    for size in sizes:
        # the 1,000-execution targets judge that size (or the smallest, where it is not run)
        judged = size == TARGET_SIZE or (size == sizes[0] and TARGET_SIZE not in sizes
                                         and size != LARGE_SIZE)
        for name in QUERIES:
            m = results[size][name]
            label = f"{name} @ {size:,} executions: warm median"
            extra = {"query": name, "executions": size, "p90_ms": m["p90"],
                     "cold_ms": m["cold"], "rows": m["rows"]}
            if judged or size == LARGE_SIZE:
                target = TARGET_MS[name] if judged else LARGE_TARGET_MS
                figures.append(Figure.judged(label, m["median"], "ms", target,
                                             spread=(m["min"], m["max"]), extra=extra))
            else:
                figures.append(Figure(label, m["median"], "ms", spread=(m["min"], m["max"]),
                                      extra=extra))
            figures.append(Figure(f"{name} @ {size:,} executions: p90", m["p90"], "ms",
                                  extra={"query": name, "executions": size}))
            figures.append(Figure(f"{name} @ {size:,} executions: cold first call", m["cold"],
                                  "ms", extra={"query": name, "executions": size}))
    if len(sizes) > 1:
        small, large = sizes[0], sizes[-1]
        linear = large / small
        for name in QUERIES:
            growth = results[large][name]["median"] / results[small][name]["median"]
            figures.append(Figure.judged(f"{name} growth {large:,}/{small:,}", growth, "×",
                                         linear, extra={"query": name, "linear": linear}))
    return figures


def plot(path: str | None, sizes: list[int], results: dict[int, dict[str, dict]]) -> None:
    """Bars of the warm median per query, one colour per size, with the targets marked."""
    if not path:
        return
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 4.5))
    width = 0.8 / len(sizes)
    for k, size in enumerate(sizes):
        xs = [i + (k - (len(sizes) - 1) / 2) * width for i in range(len(QUERIES))]
        ax.bar(xs, [results[size][n]["median"] for n in QUERIES], width,
               label=f"{size:,} executions")
    for i, name in enumerate(QUERIES):
        ax.hlines(TARGET_MS[name], i - 0.45, i + 0.45, colors="red", linestyles="dashed",
                  label="target" if i == 0 else None)
    ax.set_xticks(range(len(QUERIES)), [n.upper() if n != "listing4" else "Listing 4"
                                        for n in QUERIES])
    ax.set_yscale("log")
    ax.set_ylabel("warm median latency (ms, log)")
    ax.set_title("dlprov query latency by store size")
    ax.legend()
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--executions", type=int, nargs="+", default=[1000, 10000],
                        help="store sizes in executions (default 1000 10000)")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=15, help="warm calls per query")
    parser.add_argument("--quick", action="store_true", help="20 and 40 × 5, 3 repeats")
    parser.add_argument("--store", help="a PostgreSQL URL (default: cached SQLite files)")
    parser.add_argument("--json", help="write the figures as JSON here")
    parser.add_argument("--plot", help="write a PNG of latency per query per size here")
    parser.add_argument("--plans", help="write the plan of every statement on the largest "
                                        "store here (Markdown)")
    args = parser.parse_args(argv)
    if args.quick:
        args.executions, args.epochs, args.repeats = [20, 40], 5, 3
    sizes = sorted(set(args.executions))
    results, builds = {}, []
    for size in sizes:
        built = synthetic.build(size, args.epochs, store=args.store)
        how = "cached" if built.cached else f"built in {built.build_seconds:.1f} s"
        print(f"store {size:,}×{args.epochs}: {how} ({built.url})", flush=True)
        builds.append(Figure(f"build {size:,}×{args.epochs} store", built.build_seconds, "s",
                             extra={"executions": size, "epochs": args.epochs,
                                    "cached": built.cached}))
        results[size] = measure(built, args.repeats)
    figures = figures_of(sizes, results)
    floors = database_alone(built, args.repeats)  # the largest store's
    figures += floor_figures(sizes[-1], results[sizes[-1]], floors)
    if args.plans:
        write_plans(args.plans, built, args.epochs)
    backend = "PostgreSQL" if args.store else "SQLite"
    print()
    print("\n".join(report_table(
        f"Query latency ({backend}, {args.epochs} epochs per execution, warm median of "
        f"{args.repeats}, spread min–max; targets at {TARGET_SIZE:,} and "
        f"{LARGE_SIZE:,} executions)",
        [f for f in figures if "warm median" in f.figure])))
    print()
    print(f"{'query':<10}" + "".join(f"{f'cold @{s:,}':>14}{f'p90 @{s:,}':>14}" for s in sizes)
          + f"{'rows':>8}")
    for name in QUERIES:
        print(f"{name:<10}" + "".join(f"{results[s][name]['cold']:>14.1f}"
                                      f"{results[s][name]['p90']:>14.1f}" for s in sizes)
              + f"{results[sizes[-1]][name]['rows']:>8}")
    print()
    print(f"At {sizes[-1]:,} executions, dlprov beside its floor (the same statement run by "
          f"the database alone on an open connection, warm median ms):")
    print(f"{'query':<10}{'dlprov':>10}{'database':>10}{'÷':>10}")
    for name in QUERIES:
        mine = results[sizes[-1]][name]["median"]
        print(f"{name:<10}{mine:>10.1f}{floors[name]:>10.2f}{mine / floors[name]:>9.1f}×")
    growth = [f for f in figures if "growth" in f.figure]
    if growth:
        print()
        print("\n".join(report_table("Growth of the warm median (≤ size ratio = linear or "
                                     "better)", growth)))
    series = {"latency_ms": {str(s): {n: results[s][n]["median"] for n in QUERIES}
                             for s in sizes},
              "p90_ms": {str(s): {n: results[s][n]["p90"] for n in QUERIES} for s in sizes},
              "cold_ms": {str(s): {n: results[s][n]["cold"] for n in QUERIES} for s in sizes},
              "database_alone_ms": {str(sizes[-1]): floors},
              "targets_ms": TARGET_MS}
    write_json(args.json, builds + figures, series)
    plot(args.plot, sizes, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
