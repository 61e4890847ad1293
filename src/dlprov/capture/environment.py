"""The computational environment and the responsible agent, captured once per execution.

Collected when a run starts, on the run's probe thread (never in the training loop): host, OS,
CPU, memory, GPUs, container, Python, every installed distribution and its version (the ML ones
first; listed once per process, so a second run costs nothing), the git state of the training
script and, if its tree is dirty, the patch against the commit
(``git diff HEAD``, at most :data:`MAX_PATCH_BYTES`; a larger one is left out, with a note), the
command line. Each probe is best effort: a probe that fails leaves its field empty and never
stops a run.
"""
from __future__ import annotations

import functools
import getpass
import os
import platform
import shutil
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

# Distributions whose versions say how a model was trained (reported when installed).
ML_PACKAGES = ("torch", "keras", "tensorflow", "jax", "lightning", "pytorch-lightning",
               "deepxde", "numpy", "scipy", "scikit-learn", "pandas", "parsl", "dlprov")

#: the largest working-tree patch recorded (bytes); ``$DLPROV_MAX_PATCH_BYTES`` overrides it
MAX_PATCH_BYTES = 256 * 1024

ENV_USER, ENV_EMAIL, ENV_ORGANIZATION = "DLPROV_USER", "DLPROV_EMAIL", "DLPROV_ORGANIZATION"


def collect_environment(*, git: bool = True, gpus: bool = True,
                        packages: bool = True, command_line: bool = True) -> dict[str, Any]:
    """The environment of this process, as a dict of plain values (see the module docstring).
    Each keyword turns one probe off."""
    found = dict(_machine())
    if gpus:
        found["gpus"] = list(_gpus())
    if packages:
        found["packages"] = dict(_package_versions())
    if git:
        found.update(_git_state(_script_dir()))
    if command_line:
        found["command_line"] = " ".join([Path(sys.executable).name, *sys.argv])
    return found


@functools.lru_cache(maxsize=1)
def _machine() -> dict[str, Any]:
    """What does not change while a process lives (probed once per process)."""
    uname = platform.uname()
    return {
        "hostname": socket.gethostname(),
        "os": uname.system,
        "os_version": uname.release,
        "platform": platform.platform(),
        "architecture": uname.machine,
        "processor": _cpu_model() or uname.processor or None,
        "cpu_count": os.cpu_count(),
        "memory_bytes": _memory_bytes(),
        "in_container": _in_container(),
        "python_version": platform.python_version(),
        "python_implementation": platform.python_implementation(),
    }


def collect_agent(user: str | None = None, email: str | None = None,
                  organization: str | None = None, *, ask_git: bool = True) -> dict[str, Any]:
    """Who is responsible: given values, else ``$DLPROV_USER``/``$DLPROV_EMAIL``/
    ``$DLPROV_ORGANIZATION``, else the login name and (``ask_git``) git's ``user.email``.
    A run does not ask git here: it runs a process, so the environment probe asks it on its
    own thread (:func:`git_email`)."""
    return {
        "username": user or os.environ.get(ENV_USER) or _login_name(),
        "email": email or os.environ.get(ENV_EMAIL) or (
            git_email() if ask_git else None),
        "organization": organization or os.environ.get(ENV_ORGANIZATION),
    }


def git_email() -> str | None:
    """git's ``user.email`` where the process runs, if git knows one."""
    return _git_config("user.email")


def _login_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _memory_bytes() -> int | None:
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        return int(pages * size)
    except (ValueError, OSError, AttributeError):
        return None


def _in_container() -> bool:
    if Path("/.dockerenv").exists() or Path("/run/.containerenv").exists():
        return True
    try:
        cgroup = Path("/proc/1/cgroup").read_text()
    except OSError:
        return False
    return any(word in cgroup for word in ("docker", "kubepods", "containerd", "lxc"))


@functools.lru_cache(maxsize=1)
def _gpus() -> tuple[dict[str, Any], ...]:
    """GPUs from torch when it is already imported (never imported here), else nvidia-smi."""
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            if torch.cuda.is_available():
                return tuple({"name": torch.cuda.get_device_name(i),
                              "memory_bytes": torch.cuda.get_device_properties(i).total_memory,
                              "driver": torch.version.cuda and f"CUDA {torch.version.cuda}"}
                             for i in range(torch.cuda.device_count()))
        except Exception:  # noqa: BLE001 - a broken driver is "no GPU", not a failed run
            pass
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(
                ["nvidia-smi", "--query-gpu=name,memory.total,driver_version",
                 "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=5)
            gpus = []
            for line in out.stdout.strip().splitlines():
                name, memory_mib, driver = [part.strip() for part in line.split(",")]
                gpus.append({"name": name, "memory_bytes": int(float(memory_mib)) * 2**20,
                             "driver": driver})
            return tuple(gpus)
        except (OSError, ValueError, subprocess.SubprocessError):
            pass
    return ()


@functools.lru_cache(maxsize=1)
def _package_versions() -> dict[str, str]:
    """Every installed distribution and its version, the ML packages first: what a venv must
    hold to run the training again (``dlprov reproduce``)."""
    versions = {}
    for name in ML_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    others: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"] if dist.metadata else None
        if name and name not in versions and name.lower() not in others:
            others[name.lower()] = (name, dist.version)
    for name, version in sorted(others.values(), key=lambda nv: nv[0].lower()):
        versions[name] = version
    return versions


def _script_dir() -> Path:
    main = sys.modules.get("__main__")
    script = getattr(main, "__file__", None)
    return Path(script).resolve().parent if script else Path.cwd()


def _git(args: list[str], cwd: Path, *, strip: bool = True) -> str | None:
    if not shutil.which("git"):
        return None
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() if strip else out.stdout


def _git_state(directory: Path) -> dict[str, Any]:
    commit = _git(["rev-parse", "HEAD"], directory)
    if commit is None:
        return {"git_commit": None, "git_dirty": None, "git_repository": None}
    # --no-optional-locks: never take .git/index.lock while the user may be running git
    status = _git(["--no-optional-locks", "status", "--porcelain", "--untracked-files=no"],
                  directory)
    found = {"git_commit": commit, "git_dirty": bool(status),
             "git_repository": _git(["rev-parse", "--show-toplevel"], directory)}
    if status:
        found["git_patch"] = _patch(directory)
    return found


def _patch(directory: Path) -> str | None:
    """``git diff HEAD`` of the tracked files (binary too), if at most the bound in size."""
    patch = _git(["--no-optional-locks", "diff", "--binary", "HEAD"], directory, strip=False)
    limit = int(os.environ.get("DLPROV_MAX_PATCH_BYTES", MAX_PATCH_BYTES))
    if patch is None or len(patch.encode()) > limit:
        return None
    return patch


def _git_config(key: str) -> str | None:
    return _git(["config", "--get", key], Path.cwd()) or None
