"""Reading a package's zip archive without trusting it: bounded sizes, safe names, streamed
members.

A package may come from anywhere, so before a byte is decompressed every member is checked
against its entry in the zip's central directory: a plain relative name (no absolute path, no
``..``, no drive), a regular file (no symbolic link or device), unencrypted, stored or deflated,
named once, and no larger than :class:`Limits` allow, alone and all together; a member other
than the model may not be compressed more than ``max_ratio`` to 1 (a zip bomb is a few bytes
that inflate to gigabytes). Members are then read in chunks, never whole, and the count of bytes
read is checked again, so the declared sizes cannot lie. The manifest is read under its own small
limit, and JSON nested too deep to read is a one-line error, not a traceback.
"""
from __future__ import annotations

import json
import os
import stat
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from dlprov.errors import DlprovError

GiB = 1024 ** 3
MiB = 1024 ** 2
CHUNK = MiB

MODEL_DIR = "model/"


class PackageError(DlprovError, ValueError):
    """A package cannot be made or read: no model file, not a zip, no manifest, unsafe names,
    over a size limit, a bad key."""


@dataclass(frozen=True)
class Limits:
    """What a package may hold. The defaults fit any model one would deploy from a package;
    pass others to :func:`~dlprov.prov.package.verify_package` for larger ones."""

    #: bytes, decompressed, of the model's files together
    model_bytes: int = 4 * GiB
    #: bytes, decompressed, of any other member (document, picture, extract)
    member_bytes: int = 1 * GiB
    #: bytes, decompressed, of all members together
    total_bytes: int = 6 * GiB
    #: decompressed over compressed size, for members other than the model's
    max_ratio: int = 200
    #: members under this many bytes are never refused for their ratio
    ratio_floor: int = 1 * MiB
    #: number of members
    members: int = 100_000
    #: bytes of manifest.json and of the signature
    manifest_bytes: int = 16 * MiB
    #: bytes of the PROV-JSON document that verify reads (the import's limit)
    document_bytes: int = 64 * MiB
    #: seconds a query on the extract may run
    query_seconds: float = 30.0


DEFAULT_LIMITS = Limits()


def safe_name(name: str) -> bool:
    """Whether ``name`` stays inside the folder it would be extracted to."""
    parts = PurePosixPath(name.replace("\\", "/")).parts
    return bool(parts) and not name.startswith(("/", "\\")) and ".." not in parts \
        and ":" not in parts[0] and "\x00" not in name


def open_archive(path: str | os.PathLike, limits: Limits = DEFAULT_LIMITS) -> zipfile.ZipFile:
    """The zip at ``path``, its members checked as the module says; :class:`PackageError` if
    it is no zip or any member is refused. Nothing is decompressed here."""
    where = os.fspath(path)
    try:
        zf = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile, ValueError) as exc:
        raise PackageError(f"{where} is not a readable dlprov package: {exc}") from None
    try:
        _check_members(where, zf.infolist(), limits)
    except PackageError:
        zf.close()
        raise
    return zf


def _check_members(where: str, infos: list[zipfile.ZipInfo], limits: Limits) -> None:
    if len(infos) > limits.members:
        raise PackageError(f"{where} has {len(infos):,} members, over the limit of "
                           f"{limits.members:,}; refused")
    names = [info.filename for info in infos]
    unsafe = [name for name in names if not safe_name(name)]
    if unsafe:
        raise PackageError(f"{where} has members with unsafe names (absolute or with '..'): "
                           f"{', '.join(map(repr, unsafe[:5]))}; refused")
    twice = sorted(name for name, n in Counter(names).items() if n > 1)
    if twice:
        raise PackageError(f"{where} names a member more than once ({twice[0]!r}): which copy "
                           f"is meant is ambiguous; refused")
    model_total = total = 0
    for info in infos:
        name = info.filename
        kind = stat.S_IFMT(info.external_attr >> 16)
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise PackageError(f"{where}: member {name!r} is a symbolic link or special file, "
                               f"never part of a package; refused")
        if info.flag_bits & 0x1:
            raise PackageError(f"{where}: member {name!r} is encrypted; refused")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise PackageError(f"{where}: member {name!r} uses compression method "
                               f"{info.compress_type}, which dlprov never writes; refused")
        size = info.file_size
        total += size
        if name.startswith(MODEL_DIR):
            model_total += size
            continue
        if size > limits.member_bytes:
            raise PackageError(f"{where}: member {name!r} inflates to {size:,} bytes, over the "
                               f"limit of {limits.member_bytes:,}; refused")
        if size > limits.ratio_floor and size > limits.max_ratio * max(info.compress_size, 1):
            raise PackageError(f"{where}: member {name!r} inflates from {info.compress_size:,} "
                               f"to {size:,} bytes, over the limit of {limits.max_ratio}:1 "
                               f"(a zip bomb?); refused")
    if model_total > limits.model_bytes:
        raise PackageError(f"{where}: the model's files inflate to {model_total:,} bytes, over "
                           f"the limit of {limits.model_bytes:,}; refused")
    if total > limits.total_bytes:
        raise PackageError(f"{where}: the members inflate to {total:,} bytes, over the limit of "
                           f"{limits.total_bytes:,}; refused")


def stream(zf: zipfile.ZipFile, name: str, sinks: Iterable[Callable[[bytes], Any]],
           limit: int) -> int:
    """Feed member ``name`` to each of ``sinks`` (``hash.update``, ``file.write``) in chunks;
    returns its size. :class:`PackageError` if it inflates beyond ``limit`` or is damaged."""
    sinks = list(sinks)
    size = 0
    try:
        with zf.open(name) as member:
            while chunk := member.read(CHUNK):
                size += len(chunk)
                if size > limit:
                    raise PackageError(f"member {name!r} inflates beyond {limit:,} bytes; "
                                       f"refused")
                for sink in sinks:
                    sink(chunk)
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, RuntimeError) as exc:
        raise PackageError(f"member {name!r} cannot be read: {exc}") from None
    return size


def read_small(zf: zipfile.ZipFile, name: str, limit: int) -> bytes:
    """Member ``name`` whole, for one known to be small (the manifest, the signature)."""
    parts: list[bytes] = []
    stream(zf, name, [parts.append], limit)
    return b"".join(parts)


def load_json(data: bytes, what: str) -> Any:
    """``data`` as JSON; :class:`PackageError` naming ``what`` if it is not valid."""
    try:
        return json.loads(data)
    except RecursionError:
        raise PackageError(f"{what} is not valid: nested too deep") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise PackageError(f"{what} is not valid JSON: {exc}") from None
