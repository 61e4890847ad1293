"""dlprov reproduce on a tiny real PyTorch training: a recipe, a rerun that matches, missing
information line by line, and a dirty tree's patch that round-trips."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from dlprov.cli.main import cli
from dlprov.reproduce import build_recipe, write_recipe
from dlprov.store import schema

SCRIPT = """
import sys
from pathlib import Path
import numpy as np
import torch
import dlprov

torch.manual_seed(0)
torch.set_num_threads(1)
lr = float(sys.argv[sys.argv.index("--lr") + 1]) if "--lr" in sys.argv else 0.1
data = np.load("data.npy")
x, y = torch.from_numpy(data[:, :3]), torch.from_numpy(data[:, 3:])
model = torch.nn.Linear(3, 1)
opt = torch.optim.SGD(model.parameters(), lr=lr)
with dlprov.run("tiny") as run:
    with run.task("train") as train:
        train.input("itrain", learning_rate=lr, num_epochs=3)
        train.input("itraindataset", path=Path("data.npy").resolve(), n_records=len(data))
        for epoch in (1, 2, 3):
            loss = torch.nn.functional.mse_loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            train.output("otrain", epoch=epoch, loss=loss.item())
        torch.save(model.state_dict(), "model.pt")
        train.model("model.pt", model, name="tiny")
"""


def _project(folder: Path) -> Path:
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    np.save(folder / "data.npy", rng.normal(size=(32, 4)).astype(np.float32))
    (folder / "train.py").write_text(textwrap.dedent(SCRIPT))
    return folder


def _train(folder: Path, store: Path, *args: str) -> None:
    subprocess.run([sys.executable, "train.py", *args], cwd=folder, check=True,
                   env={"DLPROV_STORE": str(store), "PATH": "/usr/bin:/bin"})


def test_rerun_matches_and_the_recipe_holds_everything(tmp_path, monkeypatch):
    folder, store = _project(tmp_path / "project"), tmp_path / "tiny.db"
    _train(folder, store, "--lr", "0.05")
    monkeypatch.setenv("DLPROV_STORE", str(store))
    out = tmp_path / "recipe"
    result = CliRunner().invoke(cli, ["reproduce", "tiny", "-o", str(out)])
    assert result.exit_code == 0, result.output
    recipe = json.loads((out / "recipe.json").read_text())
    assert recipe["cwd"] == str(folder) and recipe["command_line"].endswith("train.py --lr 0.05")
    assert recipe["hyperparameters"]["learning_rate"] == 0.05
    lock = (out / "requirements.lock").read_text().splitlines()
    assert "torch==2.13.0" in lock and any(line.startswith("numpy==") for line in lock)
    assert len(lock) > 20  # every distribution, not only the ML ones
    [(digest, path)] = [line.split("  ") for line in
                        (out / "inputs.sha256").read_text().splitlines()]
    assert path == str(folder / "data.npy")
    subprocess.run(["sha256sum", "-c", str(out / "inputs.sha256")], check=True,
                   capture_output=True)
    script = (out / "reproduce.sh").read_text()
    assert '-m venv "$HERE/venv"' in script and "sha256sum -c" in script
    assert f"cd {folder}" in script and '"$HERE/venv/bin/python" train.py --lr 0.05' in script
    subprocess.run(["bash", "-n", str(out / "reproduce.sh")], check=True)

    result = CliRunner().invoke(cli, ["reproduce", "tiny", "--run", "--rtol", "1e-5"])
    assert result.exit_code == 0, result.output
    for section in ("hyperparameters: match", "data: match", "metrics: match (within rtol",
                    "environment: match"):
        assert section in result.output
    assert "\nreproduced: new model" in result.output
    # the new model's sha256 is the old one's: same code, data, seed, single thread
    assert "model: match" in result.output


def test_changed_data_is_not_reproduced(tmp_path, monkeypatch):
    folder, store = _project(tmp_path / "project"), tmp_path / "tiny.db"
    _train(folder, store)
    np.save(folder / "data.npy", np.ones((32, 4), dtype=np.float32))
    monkeypatch.setenv("DLPROV_STORE", str(store))
    result = CliRunner().invoke(cli, ["reproduce", "tiny", "--run"])
    assert result.exit_code == 1, result.output
    assert "NOT reproduced" in result.output and "metrics: " in result.output


def test_missing_information_is_reported_line_by_line(tmp_path, monkeypatch):
    folder, store = _project(tmp_path / "project"), tmp_path / "tiny.db"
    _train(folder, store)
    (folder / "data.npy").unlink()
    monkeypatch.setenv("DLPROV_STORE", str(store))
    result = CliRunner().invoke(cli, ["reproduce", "tiny", "--run"])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert f"cannot run: input file {folder / 'data.npy'} is gone" in result.output
    assert "no git commit recorded" in result.output
    recipe = build_recipe("tiny", store=store)
    assert any("is gone" in line for line in recipe.missing)
    result = CliRunner().invoke(cli, ["reproduce", "tiny"])
    assert result.exit_code == 1 and result.output.startswith("error: give -o DIR")


def test_dirty_tree_patch_round_trips(tmp_path, monkeypatch):
    folder, store = _project(tmp_path / "project"), tmp_path / "tiny.db"
    git = ["git", "-C", str(folder), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "train.py"], check=True)
    subprocess.run([*git, "commit", "-qm", "init"], check=True)
    commit = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True,
                            check=True).stdout.strip()
    edited = (folder / "train.py").read_text().replace("lr = float", "lr = 1.0 * float")
    (folder / "train.py").write_text(edited)
    _train(folder, store)
    out = write_recipe("tiny", tmp_path / "recipe", store=store).data
    assert out["git_commit"] == commit and out["git_dirty"] is True
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(folder), str(clone)], check=True)
    subprocess.run(["git", "-C", str(clone), "checkout", "-q", commit], check=True)
    subprocess.run(["git", "-C", str(clone), "apply", str(tmp_path / "recipe" / "patch.diff")],
                   check=True)
    assert (clone / "train.py").read_text() == edited
    assert "git -C \"$REPO\" apply \"$HERE/patch.diff\"" in (
        tmp_path / "recipe" / "reproduce.sh").read_text()


def _dirty_repo(folder: Path) -> tuple[Path, str]:
    folder.mkdir()
    git = ["git", "-C", str(folder), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    (folder / "train.py").write_text("print(1)\n")
    subprocess.run([*git, "add", "train.py"], check=True)
    subprocess.run([*git, "commit", "-qm", "init"], check=True)
    (folder / "train.py").write_text("print(2)\n")
    return folder, "print(2)\n"


def test_the_patch_probe_records_a_bounded_patch_that_applies(tmp_path, monkeypatch):
    from dlprov.capture import environment
    folder, edited = _dirty_repo(tmp_path / "repo")
    found = environment._git_state(folder)
    assert found["git_dirty"] is True and found["git_patch"].startswith("diff --git")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(folder), str(clone)], check=True)
    (clone / "p.diff").write_text(found["git_patch"])
    subprocess.run(["git", "-C", str(clone), "apply", "p.diff"], check=True)
    assert (clone / "train.py").read_text() == edited
    monkeypatch.setenv("DLPROV_MAX_PATCH_BYTES", "10")  # too large: left out, not cut
    assert environment._git_state(folder)["git_patch"] is None
