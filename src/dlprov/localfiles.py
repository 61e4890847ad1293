"""Folders of dlprov's own on the local disk (caches, spools, temporary extracts), private to
the user: mode 0700, owned by the user, never reached through a symbolic link.

A folder under a shared place such as ``/tmp`` with a predictable name can be planted by another
local user (a symlink to a folder of the victim's, or a folder the attacker owns); every folder
dlprov writes its own files into is made or checked here.
"""
from __future__ import annotations

import os
import shutil
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from dlprov.errors import DlprovError

CACHE_ENV = "DLPROV_CACHE_DIR"


class UnsafeFolder(DlprovError):
    """A folder dlprov would keep its files in is a symbolic link, not the user's, or open to others."""


def cache_root() -> Path:
    """dlprov's cache folder: ``$DLPROV_CACHE_DIR``, else ``$XDG_CACHE_HOME/dlprov``, else
    ``~/.cache/dlprov``."""
    given = os.environ.get(CACHE_ENV)
    if given:
        return Path(given)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "dlprov"


def private_dir(path: str | os.PathLike) -> Path:
    """Make ``path`` (and missing parents) if needed and return it, checked private: a real
    folder (no symbolic link at the last step), owned by this user, mode 0700 (a folder of ours
    made looser is tightened). Raises :class:`UnsafeFolder` if it is a link or someone else's."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    found = os.lstat(path)
    if stat.S_ISLNK(found.st_mode) or not stat.S_ISDIR(found.st_mode):
        raise UnsafeFolder(f"{path} is a symbolic link or not a folder; dlprov keeps its files "
                           f"only in a real folder of its own: remove it or choose another")
    if found.st_uid != os.getuid():
        raise UnsafeFolder(f"{path} belongs to another user (uid {found.st_uid}); dlprov keeps "
                           f"its files only in a folder of the user running it")
    if stat.S_IMODE(found.st_mode) & 0o077:
        os.chmod(path, 0o700, follow_symlinks=False)
    return path


def private_cache(*parts: str) -> Path:
    """A private folder ``cache_root()/parts...`` (each part made private)."""
    path = private_dir(cache_root())
    for part in parts:
        path = private_dir(path / part)
    return path


@contextmanager
def private_tempdir(prefix: str = "dlprov-") -> Iterator[Path]:
    """A fresh private temporary folder (mode 0700, unpredictable name), removed on every way
    out of the ``with`` block; made under the private cache, so that one killed before it could
    clean up is not left in a shared ``/tmp``."""
    root = private_cache("tmp")
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=root))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
