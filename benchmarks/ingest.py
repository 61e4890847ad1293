"""How fast a store takes in captured elements, per backend, measured side by side in one run.

Three backends from one client: an SQLite file, PostgreSQL (skipped with a message where no
server answers) and a ``dlprov serve`` HTTP server (uvicorn in a thread on a free loopback port,
over an SQLite file). For each:

1. ingest: elements per second through the writer the recorder uses (``Store.writer()``:
   :class:`StoreWriter`, or :class:`HttpWriter` for the server), fed the records that real
   ``task.output`` calls produced (six values each), in batches of the size the recorder drains
   at a time; repeated, median and spread;
2. the cost of one capture call with that store behind it (the recorder's thread writing while
   the training thread captures): it should not depend on the backend;
3. for SQLite and PostgreSQL, the writer's own CPU time (``time.thread_time``, medians), next
   to the floor of the same work done with the driver alone: a run's fixed cost (a per-epoch
   run's records in one batch, against the very statements the writer sent, replayed as raw
   SQL into a mirror store), and the cost per element row (against the rows' multi-row INSERT
   or COPY alone).

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
FIXED_TARGET_MS = 1.0  # a run's fixed writer cost, CPU
ROW_TARGETS = {"sqlite": 1_000_000, "postgresql": 400_000}  # element rows/s of writer CPU
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


def bench(name: str, url: str, df_tag: str, args: argparse.Namespace,
          mirrors: tuple[str, str] | None = None) -> dict:
    """``mirrors``: two more stores of the backend, for the writer's cost (section 3)."""
    with dlprov.run(df_tag, store=url, capture_environment=False) as run:
        records = capture_records(run, args.elements)
        rates = measure_ingest(Store(url), records, args.batch, args.repeats)
        call_us = measure_call(run, args.calls)
        found = {"name": name, "rates": rates, "call_us": call_us}
        if mirrors is not None:
            found["rows"] = measure_rows(run, Store(url), records[:args.batch], args.repeats)
    close_all()
    if mirrors is not None:
        found["fixed"] = measure_fixed(url, *mirrors, df_tag, args.runs)
    return found


# -- 3. the writer's own cost, next to the driver alone ------------------------------------------

def run_records(url: str, df_tag: str) -> list[tuple]:
    """The records of one real per-epoch run (spec, execution, two tasks, the second depending
    on and using the first, a handful of elements), as capture hands them to the recorder."""
    from dlprov.recorder.recorder import recorder_for

    recorder = recorder_for(Store(url))
    seen: list[tuple] = []
    put = recorder.put
    recorder.put = lambda record: (seen.append(record), put(record))
    try:
        with dlprov.run(df_tag, store=url, capture_environment=False, email="a@b.c") as run:
            with run.task("train") as train:
                train.input("itrain", optimizer_name="adam", learning_rate=1e-3, num_epochs=3)
                for epoch in range(3):
                    train.output("otrain", epoch=epoch, loss=1 / (epoch + 1), accuracy=0.5)
                train.output("otrainedmodel", model_name="mlp", model_dir="model.pt")
            with run.task("test", depends_on=train) as test:
                test.output("otest", loss=0.3, accuracy=0.91)
    finally:
        recorder.put = put
    close_all()
    return seen


def rekeyed(records: list[tuple]) -> list[tuple]:
    """``records`` as another run's: new execution and task keys, a new execution tag."""
    from dlprov.model import records as r

    keys = {rec[1]: uuid.uuid4().hex for rec in records if rec[0] in (r.EXEC_START, r.TASK_START)}
    out = []
    for kind, key, *rest in records:
        if kind in (r.EXEC_START, r.TASK_START):
            fields = dict(rest[0])
            if kind == r.EXEC_START:
                fields["tag"] = f"{fields['tag']}-{keys[key][:8]}"
            else:
                fields["exec_key"] = keys[fields["exec_key"]]
                fields["depends_on"] = [keys[k] for k in fields["depends_on"]]
            rest = [fields]
        elif kind == r.USE:
            rest = [keys[rest[0]], rest[1]]
        out.append((kind, key if kind == r.SPEC else keys[key], *rest))
    return out


@contextmanager
def statements_of(store: Store) -> Iterator[list[tuple]]:
    """Every statement the store's engine sends while open, with its parameters, COPY included:
    ``(sql, parameters, executemany)``, or ``("copy", (sql, binary types), rows)``. The
    writer's own statements run at driver level (:func:`dlprov.store.statements.observe`
    shows them); SQLAlchemy's cursor events show the rest."""
    from sqlalchemy import event

    from dlprov.store import statements

    sent: list[tuple] = []
    engine = store.engine()

    def listen(_conn, _cursor, sql, parameters, _context, many):
        sent.append((sql, parameters, many))

    def driver_level(sql, parameters, many):
        if sql == "copy":
            many = [list(row) for row in many]
        elif isinstance(parameters, list) and not many:
            parameters = tuple(parameters)
        sent.append((sql, parameters, many))

    event.listen(engine, "before_cursor_execute", listen)
    try:
        with statements.observe(driver_level):
            yield sent
    finally:
        event.remove(engine, "before_cursor_execute", listen)


def replay(driver, sent: list[tuple]) -> None:
    """``sent`` through the DB-API connection ``driver`` alone, then commit: the floor."""
    cursor = driver.cursor()
    for sql, parameters, many in sent:
        if sql == "copy":
            copy_sql, binary = parameters
            with cursor.copy(copy_sql) as copy:
                if binary:
                    copy.set_types(binary)
                for row in many:
                    copy.write_row(row)
        elif many:
            cursor.executemany(sql, parameters)
        else:
            cursor.execute(sql, parameters)
            if cursor.description is not None:
                cursor.fetchall()
    driver.commit()


def measure_fixed(url: str, capture_url: str, mirror_url: str, df_tag: str,
                  runs: int) -> dict:
    """Milliseconds of CPU of one run's batch: the writer's (into ``url``), and the floor: the
    statements a writer sent for the same records to ``capture_url``, replayed as raw SQL into
    ``mirror_url``, which has received every statement ``capture_url`` has (the same ids)."""
    records = run_records(url, df_tag)
    for target in (capture_url, mirror_url):  # the same history: the same ids
        Store(target).writer().write_batches([(uuid.uuid4().hex, records)])
    timed, capture = Store(url).writer(), Store(capture_url)
    captor = capture.writer()
    driver = Store(mirror_url).engine().raw_connection().driver_connection
    writer_ms, floor_ms = [], []
    for i in range(runs + 10):  # 10 to warm up: caches, psycopg's prepared statements
        batch = rekeyed(records)
        with statements_of(capture) as sent:
            captor.write_batches([(uuid.uuid4().hex, batch)])
        began = time.thread_time()
        replay(driver, sent)
        floor = time.thread_time() - began
        batch, batch_id = rekeyed(records), uuid.uuid4().hex
        began = time.thread_time()
        timed.write_batches([(batch_id, batch)])
        if i >= 10:
            writer_ms.append((time.thread_time() - began) * 1e3)
            floor_ms.append(floor * 1e3)
    driver.close()
    return {"writer_ms": writer_ms, "floor_ms": floor_ms, "statements": len(sent)}


def measure_rows(run: "dlprov.Run", store: Store, records: list[tuple], repeats: int) -> dict:
    """Microseconds of CPU per element row: the writer's, for ``records`` (ELEMENT records of
    one task and set) in one batch, and the floor: the same rows, built beforehand, through the
    driver alone (SQLite: multi-row INSERTs; PostgreSQL: COPY, binary where the writer's is).
    Each repeat writes as a new run's training task would: into a task of its own, so that the
    set's indexes grow as a store's do (rows of one task stored again and again would land
    among their own duplicates all over the index, which no run does)."""
    from dlprov.store import bulk

    writer = store.writer()

    def fresh_task() -> tuple[str, int]:
        with run.task("train") as task:
            run.flush()
        writer.write_batches([(None, [(kind, task.key, *rest) for kind, _, *rest in records[:1]])])
        return task.key, writer._tasks[task.key].id

    fresh_task()  # the set's table known to the writer: its statements, warm
    set_tag = str(records[0][2]).lower()
    target = next(table for (_, tag), table in writer._tables.items() if tag == set_tag)
    column = "train_task_id"
    writer_us, floor_us = [], []
    for repeat in range(max(repeats, 3)):
        # a row fewer each time: a recorder's batches have a new row count each time, and a
        # statement of a new length is prepared anew
        some = records[:max(1, len(records) - repeat)]
        key, _ = fresh_task()
        batch = [(kind, key, *rest) for kind, _, *rest in some]
        began = time.thread_time()
        writer.write_batches([(uuid.uuid4().hex, batch)])
        writer_us.append((time.thread_time() - began) / len(some) * 1e6)
        rows = []
        task_id = fresh_task()[1]
        for record in some:
            row = [None] * len(target.position)
            for name, value in record[3].items():
                row[target.position[name]] = value
            row[target.position[column]] = task_id
            rows.append(row)
        flat = [value for row in rows for value in row]
        with store.engine().connect() as conn:
            driver = conn.connection.driver_connection
            began = time.thread_time()
            if conn.dialect.name == "sqlite":
                _floor_multirow(conn, driver, target, flat, bulk)
            else:
                with driver.cursor() as cursor, cursor.copy(target.copy_sql) as copy:
                    if target.copy_binary:  # the writer's own COPY: binary where it can be
                        copy.set_types(target.copy_binary)
                    for row in rows:
                        copy.write_row(row)
                driver.commit()
            floor_us.append((time.thread_time() - began) / len(rows) * 1e6)
    return {"writer_us": writer_us, "floor_us": floor_us, "count": len(records)}


def _floor_multirow(conn, driver, target, flat: list, bulk) -> None:
    """The rows' values ``flat`` (row after row) as multi-row INSERTs of the row counts the
    writer sends (:func:`dlprov.store.bulk.statement_sizes`)."""
    width = len(target.position)
    driver.execute("BEGIN IMMEDIATE")
    for sql, values in bulk.multirow_statements(target.insert_sql, flat, width,
                                                bulk._variable_limit(conn) // width):
        driver.execute(sql, values)
    driver.commit()


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
    costed = [found for found in results if "fixed" in found]
    if costed:
        lines += ["", f"3. Writer CPU (thread_time, median) next to the driver alone "
                      f"(a run: {costed[0]['fixed']['statements']} statements, {args.runs} runs; "
                      f"rows: {costed[0]['rows']['count']} elements in one batch)",
                  f"{'backend':<12}{'run ms':>8}{'floor ms':>10}{'÷ floor':>9}{'target':>8}"
                  f"  result  {'µs/row':>7}{'floor':>7}{'÷ floor':>9}{'rows/s':>11}"
                  f"{'target':>11}  result"]
    for found in costed:
        run, floor = (statistics.median(found["fixed"][k]) for k in ("writer_ms", "floor_ms"))
        row, row_floor = (statistics.median(found["rows"][k]) for k in ("writer_us", "floor_us"))
        target = ROW_TARGETS[found["name"]]
        lines.append(f"{found['name']:<12}{run:>8.3f}{floor:>10.3f}{run / floor:>8.2f}×"
                     f"{f'< {FIXED_TARGET_MS:g}':>8}  {_met(run < FIXED_TARGET_MS):<6}  "
                     f"{row:>7.2f}{row_floor:>7.2f}{row / row_floor:>8.2f}×{1e6 / row:>11,.0f}"
                     f"{target:>11,}  {_met(1e6 / row >= target)}")
    return lines


def _met(met: bool) -> str:
    return "met" if met else "MISSED"


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
    for found in (f for f in results if "fixed" in f):
        name, fixed, per_row = found["name"], found["fixed"], found["rows"]
        run = statistics.median(fixed["writer_ms"])
        rows += [{"figure": f"writer fixed cost per run ({name})", "value": run, "unit": "ms CPU",
                  "spread": [min(fixed["writer_ms"]), max(fixed["writer_ms"])],
                  "target": f"< {FIXED_TARGET_MS:g} ms CPU",
                  "result": "PASS" if run < FIXED_TARGET_MS else "FAIL"},
                 {"figure": f"same statements as raw SQL ({name})",
                  "value": statistics.median(fixed["floor_ms"]), "unit": "ms CPU",
                  "target": None, "result": "-"}]
        rate = 1e6 / statistics.median(per_row["writer_us"])
        rows += [{"figure": f"writer element rows/s of CPU ({name})", "value": rate,
                  "unit": "rows/s", "target": f">= {ROW_TARGETS[name]:,} rows/s",
                  "result": "PASS" if rate >= ROW_TARGETS[name] else "FAIL"},
                 {"figure": f"{'COPY' if name == 'postgresql' else 'multi-row INSERT'} alone "
                            f"({name})", "value": 1e6 / statistics.median(per_row["floor_us"]),
                  "unit": "rows/s", "target": None, "result": "-"}]
    return rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--elements", type=int, help="elements per repeat (default 100000)")
    parser.add_argument("--batch", type=int, default=10_000,
                        help="records per batch, as the recorder drains them (10000)")
    parser.add_argument("--repeats", type=int, help="timed repeats per backend (default 7)")
    parser.add_argument("--calls", type=int, help="capture calls to time (default 100000)")
    parser.add_argument("--runs", type=int, help="runs timed for the writer's fixed cost "
                        "(default 200)")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--json", help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    quick = args.quick
    args.elements = args.elements or (5_000 if quick else 100_000)
    args.repeats = args.repeats or (2 if quick else 7)
    args.calls = args.calls or (2_000 if quick else 100_000)
    args.runs = args.runs or (20 if quick else 200)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(f"dlprov ingest benchmark, Python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    results: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="dlprov-ingest-") as folder:
        runs: list[tuple[str, Callable]] = [
            ("sqlite", lambda: bench("sqlite", str(Path(folder) / "sqlite.db"), "bench", args,
                                     (str(Path(folder) / "capture.db"),
                                      str(Path(folder) / "mirror.db"))))]

        def on_postgresql():
            with postgresql() as found, postgresql() as capture, postgresql() as mirror:
                if not (found and capture and mirror):
                    return None
                # each in its own schema, the dataflow too: the same tag in each
                return bench("postgresql", *found, args, (capture[0], mirror[0]))

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
