"""Fault injection: a training process records while its store is killed, locked, filled,
made read-only, and its spool folder filled, at random (seeded) points; afterwards the faults are
healed, `dlprov replay` runs, and the elements sent are counted against those stored.

Each trial is one training process (this script with ``--worker``) writing one run of one task;
between epochs it starts and ends the faults of its plan itself:

- SQLite: ``lock`` (another connection holds an exclusive transaction), ``full`` (the tmpfs of
  the store is filled: the store and the spool beside it fail, the spool goes to the cache
  folder), ``readonly`` (the tmpfs is remounted read-only), ``full+cache`` (the cache's tmpfs is
  filled too: records are held in memory);
- PostgreSQL: ``kill`` (``pg_terminate_backend`` on the writer's backends), ``down`` (the TCP
  proxy in front of the server stops), ``down+cache`` (and the cache's tmpfs is filled).

The mount-based kinds need root (tmpfs); without it only the others run. A fault may outlast
the process: its records stay spooled, and the replay after healing writes them. Every element
must be stored exactly once (lost 0, duplicated 0) and the run must end ``finished``.

    python benchmarks/faults.py                       # 30 faults per backend
    python benchmarks/faults.py --faults 50 --json faults.json
"""
from __future__ import annotations

import argparse
import json
import os
import random
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

PG_URL = os.environ.get("DLPROV_BENCH_POSTGRESQL", "postgresql://postgres@127.0.0.1:5432/test")
SQLITE_KINDS = ("lock", "full", "readonly", "full+cache")
PG_KINDS = ("kill", "down", "down+cache")
MOUNTED = {"full", "readonly", "full+cache", "down+cache"}
IN_MEMORY = {"full+cache", "down+cache"}  # must end before the process does (else: lost)


@dataclass
class Trial:
    """One backend's campaign and what it found."""
    backend: str
    faults: int = 0
    kinds: dict[str, int] = field(default_factory=dict)
    sent: int = 0
    stored: int = 0
    lost: int = 0
    duplicated: int = 0
    refused: int = 0
    outages: int = 0      # failed writes the training processes' recorders met
    replayed: int = 0     # records written by `dlprov replay` after the processes ended
    consistent: bool = False
    processes: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


# -- mounts -------------------------------------------------------------------------------------
def can_mount() -> bool:
    """Whether this process may mount a tmpfs (root, and a `mount` that works)."""
    if os.geteuid() != 0:
        return False
    probe = Path(tempfile.mkdtemp(prefix="dlprov-mount-"))
    try:
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe)],
                          capture_output=True).returncode != 0:
            return False
        subprocess.run(["umount", str(probe)], capture_output=True)
        return True
    except OSError:
        return False
    finally:
        probe.rmdir()


def _mount(args: list[str]) -> bool:
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


@contextmanager
def tmpfs(size: str) -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="dlprov-faults-"))
    if not _mount(["-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(folder)]):
        raise RuntimeError(f"cannot mount a tmpfs at {folder}")
    try:
        yield folder
    finally:
        _mount(["-o", "remount,rw", str(folder)])
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)
        folder.rmdir()


def fill(folder: Path) -> None:
    """Fill ``folder``'s file system (a file ``filler`` takes every free byte)."""
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for size in (1 << 16, 512):
            try:
                while os.write(fd, b"\0" * size):
                    pass
            except OSError:
                pass
    finally:
        os.close(fd)


def unfill(folder: Path) -> None:
    (folder / "filler").unlink(missing_ok=True)


def _open_under(folder: str) -> list[str]:
    """The files under ``folder`` that processes hold open (what keeps a remount busy)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith(folder):
                found.append(f"{pid}:{target}")
        try:
            maps = Path(f"/proc/{pid}/maps").read_text()
        except OSError:
            continue
        found += [f"{pid} maps {line.split()[-1]}" for line in maps.splitlines()
                  if folder in line]
    return found


# -- a TCP proxy in front of PostgreSQL ------------------------------------------------------------
class Proxy:
    """Forwards ``port`` to ``target``; :meth:`stop` drops every connection and refuses new ones
    (the server "down"), :meth:`start` listens again."""

    def __init__(self, target: tuple[str, int], port: int = 0) -> None:
        self.target, self.port = target, port
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            try:
                listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() blocked on it
            except OSError:
                pass
            listener.close()
        with self._lock:
            for sock in self._open:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()
            self._open.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open.update((client, server))
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


# -- the training process --------------------------------------------------------------------------
class Injector:
    """Starts and ends the faults of a plan from inside the training process."""

    def __init__(self, plan: dict, run) -> None:
        self.plan, self.run = plan, run
        self.proxy: Proxy | None = None
        self._unlock: threading.Event | None = None
        self.injected: list[str] = []

    def start(self, kind: str) -> None:
        plan = self.plan
        if kind == "lock":
            self._unlock, locked = threading.Event(), threading.Event()
            self._locker = threading.Thread(target=self._hold_lock, args=(locked,), daemon=True)
            self._locker.start()
            locked.wait(5)
        elif kind in ("full", "full+cache"):
            fill(Path(plan["store_mount"]))
        elif kind == "readonly":
            recorder = self.run.recorder
            with recorder._busy:  # between two batches: no write open on the mount
                self.run.store.dispose()  # the writer's pooled connection: closed
                if not _mount(["-o", "remount,ro", plan["store_mount"]]):
                    self.injected.append(f"readonly (not injected: mount busy: "
                                         f"{_open_under(plan['store_mount'])})")
                    return
        elif kind == "kill":
            import psycopg
            with psycopg.connect(plan["admin_url"], autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE application_name = %s", (plan["application"],))
        elif kind.startswith("down"):
            self.proxy.stop()
        if kind.endswith("+cache"):
            fill(Path(plan["cache_mount"]))
        self.injected.append(kind)

    def end(self, kind: str) -> None:
        plan = self.plan
        if kind.endswith("+cache"):
            unfill(Path(plan["cache_mount"]))
        if kind == "lock" and self._unlock is not None:
            self._unlock.set()
            self._locker.join(10)
        elif kind in ("full", "full+cache"):
            unfill(Path(plan["store_mount"]))
        elif kind == "readonly":
            _mount(["-o", "remount,rw", plan["store_mount"]])
        elif kind.startswith("down"):
            self.proxy.start()
        self.run.flush(timeout=30)  # the recorder retries the store now, not in 5 s

    def _hold_lock(self, locked: threading.Event) -> None:
        conn = sqlite3.connect(self.plan["database"], timeout=30, isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        locked.set()
        self._unlock.wait(60)
        conn.execute("COMMIT")
        conn.close()


def worker(plan_path: str) -> None:
    """The training process: one run, one task, ``epochs`` elements, the plan's faults."""
    import dlprov
    plan = json.loads(Path(plan_path).read_text())
    starts, ends = {}, {}
    for at, kind, until in plan["events"]:
        starts.setdefault(at, []).append(kind)
        ends.setdefault(until, []).append(kind)
    blob = "x" * plan["element_bytes"]
    injector = Injector(plan, None)
    if plan.get("proxy_port"):
        injector.proxy = Proxy(("127.0.0.1", plan["pg_port"]), plan["proxy_port"])
        injector.proxy.start()
    with dlprov.run(plan["df_tag"], store=plan["url"], exec_tag=plan["exec_tag"],
                    capture_environment=False) as run:
        injector.run = run
        with run.task("train") as train:
            for epoch in range(plan["epochs"]):
                for kind in ends.get(epoch, []):
                    injector.end(kind)
                for kind in starts.get(epoch, []):
                    injector.start(kind)
                train.output("otrain", epoch=plan["first_epoch"] + epoch,
                             loss=1.0 / (epoch + 1), blob=blob)
                if epoch in starts:
                    run.flush(timeout=30)  # a write while the fault holds
                time.sleep(plan["pause_s"])
    recorder = run.recorder
    print(json.dumps({"injected": injector.injected, "failures": recorder.failures,
                      "refused": recorder.rejected, "lost": recorder.spool.lost}))


# -- the campaign ----------------------------------------------------------------------------------
def plan_events(rng: random.Random, kinds: tuple[str, ...], faults: int,
                epochs: int) -> list[tuple[int, str, int]]:
    """``faults`` non-overlapping (start epoch, kind, end epoch) at random points; the last may
    outlast the process (its records are then replayed), unless it holds records in memory."""
    slots = sorted(rng.sample(range(1, epochs), faults))
    events = []
    for i, at in enumerate(slots):
        nxt = slots[i + 1] if i + 1 < len(slots) else epochs + rng.randint(0, 3)
        kind = rng.choice(kinds)
        until = max(min(nxt, at + rng.randint(1, 6)), at + 1)
        if kind in IN_MEMORY and until >= epochs:
            if epochs - 1 > at:
                until = epochs - 1
            else:
                kind = next(k for k in kinds if k not in IN_MEMORY)
        events.append((at, kind, until))
    return events


def campaign(backend: str, faults: int, seed: int = 12, epochs_per_fault: int = 12,
             processes: int = 1, element_bytes: int = 200, pause_s: float = 0.01,
             mount: bool | None = None) -> Trial:
    """Run ``faults`` faults over ``processes`` training processes writing to one store on
    ``backend``, heal, replay, count."""
    from dlprov.recorder.replay import replay
    from dlprov.recorder.spool import spool_folders
    from dlprov.store.store import Store
    mount = can_mount() if mount is None else mount
    kinds = tuple(k for k in (SQLITE_KINDS if backend == "sqlite" else PG_KINDS)
                  if mount or k not in MOUNTED)
    rng = random.Random(seed)
    trial = Trial(backend, processes=processes)
    started = time.perf_counter()
    with ExitStack() as stack:
        home = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dlprov-faults-")))
        store_mount = stack.enter_context(tmpfs("32m")) if mount else home / "store"
        cache_mount = stack.enter_context(tmpfs("4m")) if mount else home / "cache"
        store_mount.mkdir(exist_ok=True)
        cache_mount.mkdir(exist_ok=True)
        env = {**os.environ, "DLPROV_CACHE_DIR": str(cache_mount / "dlprov"),
               "DLPROV_FLUSH_INTERVAL": "0.01", "DLPROV_BUSY_TIMEOUT": "0.2"}
        base = {"element_bytes": element_bytes, "pause_s": pause_s,
                "store_mount": str(store_mount), "cache_mount": str(cache_mount)}
        if backend == "sqlite":
            database = store_mount / "store.db"
            base.update(url=str(database), database=str(database), df_tag="faults")
            direct, folders_of = str(database), str(database)
        else:
            schema = f"faults_{uuid.uuid4().hex[:8]}"
            stack.enter_context(_pg_schema(schema))
            application = schema
            proxy_port = _free_port()
            host_port = PG_URL.split("@")[-1].split("/")[0]
            pg_port = int(host_port.split(":")[1]) if ":" in host_port else 5432
            options = f"?options=-csearch_path%3D{schema}&application_name={application}"
            direct = PG_URL + options
            proxied = PG_URL.replace(host_port, f"127.0.0.1:{proxy_port}") + options
            base.update(url=proxied, df_tag=f"{schema}_df", admin_url=PG_URL,
                        application=application, proxy_port=proxy_port, pg_port=pg_port)
            folders_of = proxied
        per_process = [faults // processes + (i < faults % processes) for i in range(processes)]
        for n, count in enumerate(per_process):
            epochs = max(count * epochs_per_fault, 10)
            events = plan_events(rng, kinds, count, epochs)
            for _, kind, _ in events:
                trial.kinds[kind] = trial.kinds.get(kind, 0) + 1
            plan = {**base, "epochs": epochs, "events": events, "exec_tag": f"trial-{n}",
                    "first_epoch": trial.sent}
            plan_file = home / f"plan-{n}.json"
            plan_file.write_text(json.dumps(plan))
            done = subprocess.run([sys.executable, __file__, "--worker", str(plan_file)],
                                  capture_output=True, text=True, env=env, timeout=600)
            if done.returncode != 0:
                raise RuntimeError(f"training process failed:\n{done.stderr[-3000:]}")
            report = json.loads(done.stdout.strip().splitlines()[-1])
            trial.faults += sum(1 for k in report["injected"] if "not injected" not in k)
            trial.notes += [k for k in report["injected"] if "not injected" in k]
            trial.refused += report["refused"]
            trial.outages += report["failures"]
            trial.sent += epochs
            # Heal whatever outlasted the process, then replay what it left.
            if mount:
                _mount(["-o", "remount,rw", str(store_mount)])
                unfill(store_mount)
                unfill(cache_mount)
            with _cache_dir(env["DLPROV_CACHE_DIR"]):
                for folder in _spool_folders(folders_of, spool_folders):
                    replayed = replay(direct, folder)
                    trial.refused += replayed.rejected
                    trial.replayed += replayed.written
                    if replayed.failed:
                        trial.notes.append(f"replay failed: {replayed.failed}")
            Store(direct).dispose()  # the next process may remount the store's disk
        trial.stored, distinct, finished = _count(backend, direct, base["df_tag"])
        trial.lost = trial.sent - distinct
        trial.duplicated = trial.stored - distinct
        trial.consistent = finished == processes
    trial.seconds = round(time.perf_counter() - started, 1)
    return trial


@contextmanager
def _cache_dir(path: str) -> Iterator[None]:
    """The training processes' cache folder, where their spools may be, for the replay."""
    before = os.environ.get("DLPROV_CACHE_DIR")
    os.environ["DLPROV_CACHE_DIR"] = path
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("DLPROV_CACHE_DIR", None)
        else:
            os.environ["DLPROV_CACHE_DIR"] = before


def _spool_folders(url: str, spool_folders) -> list[Path]:
    from dlprov.store.engine import resolve_store_url
    return [f for f in spool_folders(resolve_store_url(url)) if f.is_dir()]


def _count(backend: str, url: str, df_tag: str) -> tuple[int, int, int]:
    from sqlalchemy import create_engine, text
    from dlprov.store.engine import resolve_store_url
    table = f'"{df_tag}"."otrain"' if backend == "postgresql" else f"{df_tag}__otrain"
    engine = create_engine(resolve_store_url(url))
    try:
        with engine.connect() as conn:
            stored, distinct = conn.execute(text(
                f"SELECT count(*), count(DISTINCT epoch) FROM {table}")).one()
            finished = conn.execute(text(
                "SELECT count(*) FROM dataflow_execution e WHERE e.status = 'finished' AND "
                "NOT EXISTS (SELECT 1 FROM task t WHERE t.exec_id = e.id "
                "AND t.status <> 'finished')")).scalar_one()
    finally:
        engine.dispose()
    return stored, distinct, finished


@contextmanager
def _pg_schema(schema: str) -> Iterator[None]:
    import psycopg
    admin = psycopg.connect(PG_URL, autocommit=True, connect_timeout=3)
    admin.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield
    finally:
        admin.execute(f'DROP SCHEMA IF EXISTS "{schema}_df" CASCADE')
        admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _pg_available() -> bool:
    try:
        import psycopg
        psycopg.connect(PG_URL, connect_timeout=3).close()
        return True
    except Exception:  # noqa: BLE001 - any failure: no server to test against
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--faults", type=int, default=30, help="faults per backend")
    parser.add_argument("--processes", type=int, default=3,
                        help="training processes per backend, one after another")
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--json", metavar="FILE", help="write the figures as JSON")
    parser.add_argument("--worker", metavar="PLAN", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker)
        return
    mount = can_mount()
    if not mount:
        print("note: not root or no tmpfs: the disk-full and read-only faults are skipped")
    trials = []
    for backend in ("sqlite", "postgresql"):
        if backend == "postgresql" and not _pg_available():
            print(f"note: no PostgreSQL server at {PG_URL}: skipped")
            continue
        trials.append(campaign(backend, args.faults, args.seed, processes=args.processes,
                               mount=mount))
    header = ("backend", "faults", "kinds", "outages met", "sent", "stored", "by replay",
              "lost", "duplicated", "refused", "runs consistent", "seconds")
    rows = [(t.backend, t.faults, ", ".join(f"{k} {n}" for k, n in sorted(t.kinds.items())),
             t.outages, t.sent, t.stored, t.replayed, t.lost, t.duplicated, t.refused,
             "yes" if t.consistent else "NO", t.seconds) for t in trials]
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows)]
    for row in (header, *rows):
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths)))
    for t in trials:
        for note in t.notes:
            print(f"note ({t.backend}): {note}")
    verdict = all(t.lost == 0 and t.duplicated == 0 and t.consistent for t in trials)
    print("every element stored exactly once: " + ("yes" if verdict else "NO"))
    if args.json:
        Path(args.json).write_text(json.dumps({"figures": figures(trials),
                                               "trials": [asdict(t) for t in trials],
                                               "exactly_once": verdict}, indent=2))


def figures(trials: list[Trial]) -> list[dict]:
    """One summary row per backend for report.py: faults, sent, stored, lost and duplicated,
    judged on exactly-once (lost 0, duplicated 0, runs consistent)."""
    return [{"figure": f"{t.backend}: {t.faults} faults, elements sent / stored / lost / "
                       f"duplicated",
             "measured": f"{t.sent} / {t.stored} / {t.lost} / {t.duplicated}",
             "target": "lost 0, duplicated 0",
             "result": "PASS" if t.lost == 0 and t.duplicated == 0 and t.consistent
             else "FAIL"} for t in trials]


if __name__ == "__main__":
    main()
