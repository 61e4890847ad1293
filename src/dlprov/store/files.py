"""Facts about files the provenance points at (size, digest), read by the writer thread."""
from __future__ import annotations

import hashlib
import os
from typing import Any


def file_digest(path: str | os.PathLike) -> dict[str, Any]:
    """``size_bytes`` and ``sha256`` of a file, or of every file below a directory (a saved
    model may be a folder); both None if it cannot be read."""
    digest, size = hashlib.sha256(), 0
    try:
        if os.path.isdir(path):
            files = sorted(os.path.join(root, name) for root, _, names in os.walk(path)
                           for name in names)
        else:
            files = [os.fspath(path)]
        for name in files:
            if len(files) > 1:
                digest.update(os.path.relpath(name, path).encode())
            with open(name, "rb") as stream:
                for chunk in iter(lambda: stream.read(1 << 20), b""):
                    digest.update(chunk)
                    size += len(chunk)
    except OSError:
        return {"size_bytes": None, "sha256": None}
    return {"size_bytes": size, "sha256": digest.hexdigest()}
