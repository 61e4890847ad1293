"""Server time of the web UI's pages (``dlprov ui``) at scale.

Over the synthetic stores of ``benchmarks/synthetic.py`` (the demo's dataflow, N executions ×
E epochs, cached under ``benchmarks/.cache/``), requests go through the whole app in process
(routing, the guard, the query, the template) with Starlette's test client, so the figures are
the server's time without the network:

- the runs page (``/``), as it opens and sorted by a metric and filtered by another, and its
  JSON (``/api/runs``): filtered, sorted and paginated by the database (metrics from the
  metric summary), first call and then warm: target < 300 ms at 10,000 executions;
- a run page's curves (``/api/runs/R/series``) when the run holds 100,000 points, thinned to
  at most 2,000 per series;
- the compare page of 10 runs (``/api/compare``);
- the runs page over 10,000 runs of 200 hyperparameter columns each (``--wide``): as it
  opens, sorted by one, filtered by one and sorted by a metric, 50 columns shown: < 300 ms;
- with ``--mlflow``, side by side over real HTTP: ``dlprov ui`` (``GET /api/runs``, a page of
  50 runs sorted by a metric and filtered by a parameter) and MLflow's UI backend (``mlflow
  server`` from ``benchmarks/.venv-peers``: ``POST /ajax-api/2.0/mlflow/runs/search``, what its
  runs page calls, with the same page, sort and filter) over an MLflow SQLite store holding the
  same runs (parameters, per-epoch metrics, test metrics; cached under ``benchmarks/.cache/``).

A report, not a test: it exits 0 whether targets are met or not.

    python benchmarks/ui.py                 # 1,000 and 10,000 executions × 5 epochs
    python benchmarks/ui.py --quick         # 50 and 100 × 3, 10,000 points: seconds
    python benchmarks/ui.py --sizes 1000 --points 100000
    python benchmarks/ui.py --sizes 1000 --mlflow   # and MLflow's server beside it
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import synthetic  # noqa: E402  (a sibling script, not a package)

TARGET_MS = 300.0
REPEATS = 7


def timed(client, url: str, repeats: int = REPEATS) -> tuple[float, float]:
    """(first call, median of the next ``repeats``) in milliseconds; each must answer 200."""
    times: list[float] = []
    for _ in range(repeats + 1):
        began = time.perf_counter()
        answer = client.get(url)
        times.append((time.perf_counter() - began) * 1000)
        if answer.status_code != 200:
            raise SystemExit(f"{url}: HTTP {answer.status_code}: {answer.text[:300]}")
    return times[0], statistics.median(times[1:] or times)


def client_for(url: str):
    from fastapi.testclient import TestClient

    from dlprov.ui.app import create_ui
    return TestClient(create_ui(url), base_url="http://127.0.0.1")


def wide_store(executions: int, columns: int) -> str:
    """A store of ``executions`` runs whose training takes ``columns`` hyperparameters (and 5
    epochs of 4 metrics, a test of 2), written by the real recorder; cached beside the
    synthetic stores."""
    import random

    import dlprov

    def make(url: str) -> None:
        rng = random.Random(1)
        for i in range(executions):
            with dlprov.run("wide", store=url, capture_environment=False,
                            exec_tag=f"wide-{i}") as run:
                with run.task("train") as train:
                    train.input("itrain",
                                **{f"hp_{k:03d}": rng.random() for k in range(columns)})
                    for epoch in range(5):
                        train.output("otrain", epoch=epoch, loss=rng.random(),
                                     accuracy=rng.random(), val_loss=rng.random(),
                                     val_accuracy=rng.random())
                with run.task("test", depends_on=[train]) as test:
                    test.output("otest", accuracy=rng.random(), loss=rng.random())

    path = synthetic.CACHE / f"wide-{executions}x{columns}-{synthetic.schema_hash()}.db"
    began = time.perf_counter()
    if synthetic.build_once(path, make):
        print(f"built {executions:,} runs × {columns} hyperparameters in "
              f"{time.perf_counter() - began:.0f} s", flush=True)
    return f"sqlite:///{path}"


def wide_figures(executions: int, columns: int, rows: list) -> None:
    """The runs page over runs with ``columns`` hyperparameter columns each."""
    client = client_for(wide_store(executions, columns))
    label = f"{executions} executions × {columns} columns"
    last = f"hp_{columns - 1:03d}"
    for name, url in [
        ("runs page", "/"),
        ("runs page sorted by a hyperparameter", f"/?sort=itrain.{last}:desc"),
        ("runs JSON filtered by one, sorted by a metric",
         "/api/runs?where=hp_010>0.5&sort=otest.accuracy:last:desc"),
        ("runs JSON showing 50 columns",
         "/api/runs?" + "&".join(f"columns=hp_{k:03d}" for k in range(min(50, columns)))),
    ]:
        first, warm = timed(client, url)
        rows.append((f"{name}, {label}", first, warm, f"< {TARGET_MS:.0f}"))


def long_run(points: int) -> str:
    """A store holding one run whose training recorded ``points`` otrain elements."""
    import dlprov
    path = Path(tempfile.mkdtemp(prefix="dlprov-ui-bench-")) / "long.db"
    with dlprov.run("long", store=str(path), exec_tag="long-1",
                    capture_environment=False) as run:
        with run.task("train") as train:
            train.input("itrain", learning_rate=0.1)
            for step in range(points):
                train.output("otrain", step=step, loss=1.0 / (step + 1) + (step % 97) * 1e-4,
                             accuracy=step / points)
    return str(path)


def free_port() -> int:
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


PEERS = Path(__file__).resolve().parent / ".venv-peers" / "bin" / "mlflow"


def mlflow_store(built) -> str:
    """An MLflow SQLite store holding the runs of the synthetic store ``built``: each run's
    itrain values as parameters, its otrain values per epoch as metrics (step = epoch) and
    its otest values as ``test_*`` metrics. Cached beside the synthetic stores."""
    import dlprov
    path = synthetic.CACHE / f"mlflow-{built.executions}x{built.epochs}.db"
    if path.exists():
        return f"sqlite:///{path}"
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient
    partial = path.with_suffix(".partial.db")
    partial.unlink(missing_ok=True)
    client = MlflowClient(tracking_uri=f"sqlite:///{partial}")
    experiment = client.create_experiment("synthetic")
    began = time.perf_counter()

    def by_exec(statement: str) -> dict[int, list[dict]]:
        found: dict[int, list[dict]] = {}
        for row in dlprov.sql(statement, store=built.url, max_rows=0).records():
            found.setdefault(row.pop("exec_id"), []).append(row)
        return found
    params = by_exec("SELECT t.exec_id, i.* FROM itrain i JOIN task t ON t.id = i.train_task_id")
    epochs = by_exec("SELECT t.exec_id, o.* FROM otrain o JOIN task t ON t.id = o.train_task_id"
                     " ORDER BY o.id")
    tests = by_exec("SELECT t.exec_id, o.* FROM otest o JOIN task t ON t.id = o.test_task_id")
    now = int(time.time() * 1000)
    for exec_id in sorted(params):
        run = client.create_run(experiment, run_name=f"run-{exec_id}")
        values = {k: v for k, v in params[exec_id][0].items() if k not in ("id",
                                                                           "train_task_id")}
        metrics = [Metric(k, float(v), now, int(row["epoch"]))
                   for row in epochs.get(exec_id, []) for k, v in row.items()
                   if k not in ("id", "train_task_id", "epoch", "timestamp")
                   and isinstance(v, (int, float))]
        metrics += [Metric(f"test_{k}", float(v), now, 0) for row in tests.get(exec_id, [])
                    for k, v in row.items() if k in ("loss", "accuracy")]
        client.log_batch(run.info.run_id, metrics=metrics,
                         params=[Param(k, str(v)) for k, v in values.items()])
        client.set_terminated(run.info.run_id)
    partial.rename(path)
    print(f"built the MLflow store of {len(params)} runs in "
          f"{time.perf_counter() - began:.0f} s")
    return f"sqlite:///{path}"


def side_by_side(built, rows: list) -> None:
    """dlprov ui's runs JSON and MLflow's runs search, both served over HTTP on this machine,
    one server at a time (on 2 cores, MLflow's idle server took CPU from dlprov's)."""
    import httpx

    if not PEERS.exists():
        print(f"MLflow side by side skipped: no {PEERS} (see benchmarks/README.md)")
        return
    mlflow_url = mlflow_store(built)
    cases = [
        ("newest 50", {"size": 50}, {}),
        ("sorted by a metric", {"size": 50, "sort": "otest.accuracy:last:desc"},
         {"order_by": ["metrics.test_accuracy DESC"]}),
        ("filtered by a parameter", {"size": 50, "where": "optimizer_name=adam"},
         {"filter": "params.optimizer_name = 'adam'"}),
    ]
    ours, theirs = {}, {}
    with httpx.Client(timeout=120) as http:
        port = free_port()
        with _server([sys.executable, "-m", "dlprov", "ui", "--store", built.url,
                      "--port", str(port)]):
            dl = f"http://127.0.0.1:{port}/api/runs"
            _wait(http, f"{dl}?size=1")
            for name, params, _ in cases:
                ours[name] = _http_ms(lambda: http.get(dl, params=params))
        port = free_port()
        with _server([str(PEERS), "server", "--backend-store-uri", mlflow_url,
                      "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]):
            base = f"http://127.0.0.1:{port}"
            _wait(http, f"{base}/health")
            experiment = http.get(f"{base}/ajax-api/2.0/mlflow/experiments/get-by-name",
                                  params={"experiment_name": "synthetic"}
                                  ).json()["experiment"]["experiment_id"]
            ml = f"{base}/ajax-api/2.0/mlflow/runs/search"
            for name, _, query in cases:
                body = {"experiment_ids": [experiment], "max_results": 50, **query}
                theirs[name] = _http_ms(lambda: http.post(ml, json=body))
    for name, _, _ in cases:
        a, b = ours[name], theirs[name]
        rows.append((f"HTTP {name}, {built.executions}: dlprov | MLflow {b:.0f} ms", a, a,
                     f"× {b / a:.1f}"))


@contextmanager
def _server(command: list[str]):
    """A server process for the span of the block."""
    import subprocess
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield server
    finally:
        server.terminate()
        server.wait(20)


def _wait(http, url: str) -> None:
    import httpx
    for _ in range(600):
        try:
            if http.get(url).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"no answer from {url}")


def _http_ms(call) -> float:
    call()  # warm: the first call reads the runs table (dlprov) or opens the store (MLflow)
    times = []
    for _ in range(REPEATS):
        began = time.perf_counter()
        answer = call()
        times.append((time.perf_counter() - began) * 1000)
        if answer.status_code != 200:
            raise SystemExit(f"HTTP {answer.status_code}: {answer.text[:300]}")
    return statistics.median(times)


def write_json(path: str, rows: list) -> None:
    """The figures as benchmarks/report.py reads them: the warm median in ms, judged against
    the target where there is one; MLflow's time over dlprov's as ``mlflow_ratio``."""
    import json
    out = []
    for name, first, warm, target in rows:
        row = {"figure": name, "value": round(warm, 1), "unit": "ms", "target": None,
               "result": "info", "first_ms": round(first, 1)}
        if target.startswith("<"):
            row.update(target=TARGET_MS, ratio=warm / TARGET_MS,
                       result="PASS" if warm <= TARGET_MS else "FAIL")
        elif target.startswith("×"):
            row["mlflow_ratio"] = float(target[1:])
        out.append(row)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(out, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON (for "
                        "benchmarks/report.py)")
    parser.add_argument("--mlflow", action="store_true",
                        help="also MLflow's server over the same runs, over HTTP")
    parser.add_argument("--wide", type=int, nargs=2, default=[10_000, 200],
                        metavar=("RUNS", "COLUMNS"),
                        help="runs and hyperparameter columns of the wide store (10000 200)")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.epochs, args.points, args.wide = [50, 100], 3, 10_000, [50, 20]
    warnings.simplefilter("ignore")
    rows: list[tuple[str, float, float, str]] = []
    for size in args.sizes:
        built = synthetic.build(size, args.epochs)
        client = client_for(built.url)
        first, warm = timed(client, "/")
        rows.append((f"runs page, {size} executions", first, warm, f"< {TARGET_MS:.0f}"))
        # sorted by a metric and filtered by another, over every run: in SQL, from the summary
        page = "/?sort=otrain.accuracy:best:desc&where=otest.accuracy:last>0.1"
        first, warm = timed(client, page)
        rows.append((f"runs page sorted by a metric, {size}", first, warm,
                     f"< {TARGET_MS:.0f}"))
        query = "/api/runs?sort=otest.accuracy:last:desc&where=learning_rate>0.001"
        first, warm = timed(client, query)
        rows.append((f"runs JSON sorted+filtered, {size}", first, warm, f"< {TARGET_MS:.0f}"))
        tags = [r["exec_tag"] for r in client.get("/api/runs?size=10").json()["rows"]]
        first, warm = timed(client, "/api/compare?runs=" + ",".join(tags), repeats=3)
        rows.append((f"compare 10 runs, {size}", first, warm, ""))
        first, warm = timed(client, f"/runs/{tags[0]}", repeats=3)
        rows.append((f"run page, {size}", first, warm, ""))
        if args.mlflow:
            side_by_side(built, rows)
    wide_figures(*args.wide, rows)
    began = time.perf_counter()
    store = long_run(args.points)
    print(f"recorded a run of {args.points} points in {time.perf_counter() - began:.1f} s")
    client = client_for(store)
    first, warm = timed(client, "/api/runs/long-1/series", repeats=3)
    shown = client.get("/api/runs/long-1/series").json()
    most = max(len(s["x"]) for s in shown["series"].values())
    rows.append((f"series of {args.points} points (≤ {most} shown/series)", first, warm, ""))
    first, warm = timed(client, "/api/runs/long-1/series?after=" + str(shown["last_id"]))
    rows.append(("series poll, no new points", first, warm, ""))
    if args.json:
        write_json(args.json, rows)
    width = max(len(r[0]) for r in rows)
    print(f"\n{'figure'.ljust(width)}  first ms   warm ms   target ms  ratio")
    for name, first, warm, target in rows:
        ratio = f"{warm / TARGET_MS:.2f}" if target.startswith("<") else ""
        if target.startswith("×"):  # MLflow's time over dlprov's
            target, ratio = "", target
        print(f"{name.ljust(width)}  {first:8.1f}  {warm:8.1f}   {target:>9}  {ratio}")


if __name__ == "__main__":
    main()
