"""Ed25519 keys and signatures for packages (through ``cryptography``).

A package's ``manifest.json`` lists the sha256 of every other member, so a signature over the
manifest's bytes covers the whole package: change any byte of the model, the document or the
extract and its digest no longer matches; change the digests too and the signature no longer
does. Keys are PEM files: PKCS#8 for the private key, SubjectPublicKeyInfo for the public one,
as :func:`generate_key` (``dlprov keygen``) and ``openssl genpkey -algorithm ed25519`` write them.

::

    from dlprov.prov.signing import generate_key
    private, public = generate_key("release.pem")   # release.pem and release.pem.pub
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from dlprov.prov.archive import PackageError

ALGORITHM = "ed25519"
_MAX_KEY_FILE = 64 * 1024


def generate_key(path: str | os.PathLike) -> tuple[Path, Path]:
    """Write a new Ed25519 private key to ``path`` (PEM, readable by its owner only) and its
    public key to ``path.pub``; returns both paths. Refuses to overwrite either file."""
    private = Path(path)
    public = private.with_name(private.name + ".pub")
    key = Ed25519PrivateKey.generate()
    secret = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                               serialization.NoEncryption())
    for target in (private, public):
        if target.exists() or target.is_symlink():
            raise PackageError(f"{target} exists already; choose another name (a key is never "
                               f"overwritten)")
    _write_new(private, secret, 0o600)
    _write_new(public, public_pem(key.public_key()), 0o644)
    return private, public


def _write_new(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def public_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def fingerprint(key: Ed25519PublicKey) -> str:
    """The sha256 (hex) of the raw 32-byte public key: the name a signature gives its key."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def load_private_key(path: str | os.PathLike) -> Ed25519PrivateKey:
    """The Ed25519 private key in the PEM file ``path``; :class:`PackageError` if it is none."""
    data = _read_key_file(path)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise PackageError(f"the key {os.fspath(path)} is protected by a passphrase; dlprov "
                           f"reads unencrypted PEM keys (keep the file readable by you only)") \
            from None
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise PackageError(f"{os.fspath(path)} is not a PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise PackageError(f"{os.fspath(path)} is not an Ed25519 key ({type(key).__name__}); "
                           f"make one with `dlprov keygen`")
    return key


def load_public_key(path: str | os.PathLike) -> Ed25519PublicKey:
    """The Ed25519 public key in the PEM file ``path`` (a private key file gives its public
    key); :class:`PackageError` if it holds none."""
    data = _read_key_file(path)
    if b"PRIVATE KEY" in data:
        return load_private_key(path).public_key()
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise PackageError(f"{os.fspath(path)} is not a PEM public key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise PackageError(f"{os.fspath(path)} is not an Ed25519 key ({type(key).__name__}); "
                           f"a package is verified with the .pub file of `dlprov keygen`")
    return key


def _read_key_file(path: str | os.PathLike) -> bytes:
    try:
        with open(path, "rb") as stream:
            data = stream.read(_MAX_KEY_FILE + 1)
    except OSError as exc:
        raise PackageError(f"cannot read the key {os.fspath(path)}: "
                           f"{exc.strerror or exc}") from None
    if len(data) > _MAX_KEY_FILE:
        raise PackageError(f"{os.fspath(path)} is too large to be a key file")
    return data


def sign(key: Ed25519PrivateKey, message: bytes) -> bytes:
    """The signature document (JSON bytes) stored beside the manifest."""
    return json.dumps({"algorithm": ALGORITHM, "key_sha256": fingerprint(key.public_key()),
                       "signature": base64.b64encode(key.sign(message)).decode()},
                      indent=2).encode()


def check(signature: bytes, message: bytes, key: Ed25519PublicKey) -> str | None:
    """None if ``signature`` (as :func:`sign` wrote it) is ``key``'s over ``message``, else
    why not."""
    try:
        found: Any = json.loads(signature)
        algorithm, raw = found["algorithm"], base64.b64decode(found["signature"], validate=True)
        named = str(found.get("key_sha256", "?"))
    except (ValueError, TypeError, KeyError, RecursionError):
        return "the signature is not readable"
    if algorithm != ALGORITHM:
        return f"the signature's algorithm is {algorithm!r}, not {ALGORITHM}"
    try:
        key.verify(raw, message)
    except InvalidSignature:
        given = fingerprint(key)
        whose = ("the manifest was changed after it was signed" if named == given else
                 f"it was signed by key {named[:16]}…, not by the given key {given[:16]}…")
        return f"the signature does not match: {whose}"
    return None


def signer(signature: bytes) -> str:
    """The key fingerprint a signature names (unchecked), for messages."""
    try:
        return str(json.loads(signature)["key_sha256"])
    except (ValueError, TypeError, KeyError, RecursionError):
        return "?"
