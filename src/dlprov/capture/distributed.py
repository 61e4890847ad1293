"""Recording under ``torchrun``: every rank of a torch.distributed world joins ONE execution.

Every rank runs the same script, so every rank calls :func:`dlprov.run` (or
``track_training``). This module tells a run which world it is in (:func:`detect`) and makes the
ranks agree on the execution's key and exec tag (:func:`agree`):

- if ``torch.distributed`` is initialized, rank 0 makes them and broadcasts them
  (``broadcast_object_list``: a collective every rank reaches, since every rank starts the run);
- otherwise they are derived from the launcher's environment, identical on every rank:
  ``uuid5(df_tag, TORCHELASTIC_RUN_ID, restart count, n-th run of df_tag in this process)``, or,
  where the run id is ``none`` (static rendezvous), ``MASTER_ADDR:MASTER_PORT`` and the pid of
  the launcher (``os.getppid()``) in its place.

Limits of the derived key: a rendezvous id reused by a later job joins that job to the earlier
execution (torchrun asks for a unique id per job); without a rendezvous id, the launcher's pid
is per node, so ranks of a multi-node job join one execution per node unless the process group
is initialized before the run starts; each restart of the workers is an execution of its own.

PyTorch is never imported here: it is looked up in ``sys.modules``, where a script that
initialized a process group has put it.
"""
from __future__ import annotations

import os
import socket
import sys
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Mapping

#: The namespace of derived execution keys (uuid5).
KEY_NAMESPACE = uuid.UUID("6f1d2c8e-5b7a-4e0c-9a51-3d2b8f0e7c41")

# How many runs of each dataflow this process started in a world: the n-th run of a dataflow
# on every rank is the same execution (same code on every rank), the (n+1)-th another one.
_runs_started: Counter[str] = Counter()


@dataclass(frozen=True)
class World:
    """The distributed world of this process, as the launcher described it."""
    rank: int
    world_size: int
    local_rank: int = 0
    run_id: str | None = None        # TORCHELASTIC_RUN_ID, None when "none" or unset
    master: str | None = None        # "MASTER_ADDR:MASTER_PORT"
    restart_count: int = 0           # TORCHELASTIC_RESTART_COUNT
    launcher_pid: int = 0            # the process that started this rank (torchrun's agent)
    hostname: str = ""

    @property
    def leader(self) -> bool:
        """Rank 0: it ends the execution and captures its environment."""
        return self.rank == 0


def detect(environ: Mapping[str, str] | None = None) -> World | None:
    """The world this process is a rank of, or None outside one: from ``RANK`` and
    ``WORLD_SIZE`` (set by torchrun), else from an initialized torch.distributed process group
    (``mp.spawn`` scripts pass the rank to ``init_process_group`` themselves).
    Raises ValueError naming the variable when the launcher's variables make no sense."""
    env = os.environ if environ is None else environ
    if "RANK" in env and "WORLD_SIZE" in env:
        rank, world_size = _integer(env, "RANK"), _integer(env, "WORLD_SIZE")
    else:
        dist = _process_group()
        if dist is None:
            return None
        rank, world_size = dist.get_rank(), dist.get_world_size()
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"RANK={rank} and WORLD_SIZE={world_size} do not describe a rank of a "
                         f"world: expected 0 <= RANK < WORLD_SIZE; unset them or give "
                         f"dlprov.run(..., distributed=False)")
    run_id = env.get("TORCHELASTIC_RUN_ID") or None
    master = (f"{env['MASTER_ADDR']}:{env.get('MASTER_PORT', '')}"
              if env.get("MASTER_ADDR") else None)
    return World(rank=rank, world_size=world_size,
                 local_rank=_integer(env, "LOCAL_RANK", 0),
                 run_id=None if run_id is None or run_id.lower() == "none" else run_id,
                 master=master, restart_count=_integer(env, "TORCHELASTIC_RESTART_COUNT", 0),
                 launcher_pid=os.getppid(), hostname=socket.gethostname())


def derived_key(df_tag: str, world: World, sequence: int = 1) -> str:
    """The execution key every rank derives alike for its ``sequence``-th run of ``df_tag``,
    from the launcher's environment alone (see the module's limits)."""
    launch = (f"rdzv={world.run_id}" if world.run_id is not None
              else f"master={world.master}|launcher={world.launcher_pid}")
    name = f"{df_tag}|{launch}|restart={world.restart_count}|run={sequence}"
    return uuid.uuid5(KEY_NAMESPACE, name).hex


def agree(world: World, df_tag: str,
          propose: Callable[[str, bool], str]) -> tuple[str, str]:
    """``(key, exec_tag)`` of the execution every rank of ``world`` records into.

    ``propose(key, derived)`` returns the exec tag for a key (``derived``: every rank derives it
    alone, so it must not depend on this rank's clock); it may raise ValueError (the tag is
    taken, or malformed).
    With a process group, rank 0 alone proposes and broadcasts the key, the tag or its error,
    so every rank returns the same or raises the same (none is left waiting in a collective).
    Without one, every rank derives the key (:func:`derived_key`) and proposes alike.
    """
    _runs_started[df_tag] += 1
    dist = _process_group()
    if dist is None:
        key = derived_key(df_tag, world, _runs_started[df_tag])
        return key, propose(key, True)
    payload: list[Any] = [None]
    if dist.get_rank() == 0:
        key = uuid.uuid4().hex
        try:
            payload = [(key, propose(key, False), None)]
        except ValueError as exc:
            payload = [(None, None, str(exc))]
    dist.broadcast_object_list(payload, src=0)
    key, exec_tag, error = payload[0]
    if error is not None:
        raise ValueError(error)
    return key, exec_tag


def _process_group() -> Any:
    """``torch.distributed`` if the script imported it and initialized a process group."""
    dist = sys.modules.get("torch.distributed")
    try:
        if dist is not None and dist.is_available() and dist.is_initialized():
            return dist
    except Exception:  # noqa: BLE001 - a half-imported torch is no world
        return None
    return None


def _integer(env: Mapping[str, str], name: str, default: int | None = None) -> int:
    text = env.get(name)
    if text is None or (text == "" and default is not None):
        if default is None:
            raise ValueError(f"{name} is not set")
        return default
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{name}={text!r} is not an integer: torchrun sets it to one; unset it "
                         f"or give dlprov.run(..., distributed=False)") from None
