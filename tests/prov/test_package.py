"""Deployment packages: a model, its provenance and an extract of the store in one zip; verified,
tampered with, and inspected with no store."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

import dlprov
import dlprov.query as q
from dlprov.prov.package import (
    EXTRACT,
    MANIFEST,
    PROV_JSON,
    QUESTIONS,
    PackageError,
    inspect_package,
    package_model,
    verify_package,
)
from tests.prov.workflows import DF, experiment

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # rdflib 7, via prov


def torch_candidate(root: Path, store: str | None = None) -> str:
    """A third candidate whose model is a real PyTorch file: torch.save of a tiny nn.Linear,
    recorded with ``task.model(path, model)``, after a three-step preprocessing chain."""
    torch = pytest.importorskip("torch")
    with dlprov.run(DF, store=store, exec_tag=f"{DF}-mlp-t", user="tess",
                    capture_environment={"packages": False, "git": False}) as run:
        with run.task("loaddata") as load:
            load.input("iinputdataset", dataset_name="digits")
            load.output("oloaddata", dataset_dir=root / "raw.npz")
        previous = load
        for step in ("clean", "normalize", "augment"):
            with run.task(step, depends_on=previous) as task:
                task.input(f"i{step}", method=step)
                task.output(f"o{step}", pp_dataset=root / f"{step}.npz")
            previous = task
        with run.task("splitdata", depends_on=previous) as split:
            split.input("isplitconfig", train_size=0.8, test_size=0.2)
            split.output("otrainset", trainsetx=root / "x_train.npy")
            split.output("otestset", testsetx=root / "x_test.npy")
        with run.task("train", depends_on=split, uses=["otrainset"]) as train:
            train.input("itrain", optimizer_name="sgd", learning_rate=0.1, batch_size=16,
                        layers=[4])
            train.output("otrain", epoch=1, loss=0.5, accuracy=0.7, elapsed_time=0.1)
            net = torch.nn.Linear(4, 2)
            path = root / "mlp-t.pt"
            torch.save(net.state_dict(), path)
            model_id = train.model(path, net, name="mlp-t")
        with run.task("test", depends_on=[split, train],
                      uses=["otestset", "otrainedmodel"]) as test:
            test.output("otest", loss=0.2, accuracy=0.95)
    return model_id


@pytest.fixture
def models(store_path, tmp_path):
    found = {name: rec.model_id for name, rec in experiment(tmp_path / "work").items()}
    (tmp_path / "torch").mkdir()
    found["mlp-t"] = torch_candidate(tmp_path / "torch")
    return found


@pytest.fixture
def package(models, tmp_path) -> Path:
    return package_model("mlp-t", tmp_path / "out" / "mlp-t.zip")


def _rewrite(path: Path, change) -> None:
    """Rewrite the zip at ``path`` with ``change(name, data)`` -> new data, or None to drop."""
    with zipfile.ZipFile(path) as zf:
        members = [(name, zf.read(name)) for name in zf.namelist()]
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members:
            data = change(name, data)
            if data is not None:
                zf.writestr(name, data)


def test_package_holds_model_provenance_picture_and_manifest(package, models, tmp_path):
    with zipfile.ZipFile(package) as zf:
        names = set(zf.namelist())
        manifest = json.loads(zf.read(MANIFEST))
        model_bytes = zf.read("model/mlp-t.pt")
    assert names == {MANIFEST, PROV_JSON, "provenance.provn", "provenance.svg", EXTRACT,
                     "model/mlp-t.pt"}
    assert model_bytes == (tmp_path / "torch" / "mlp-t.pt").read_bytes()
    assert set(manifest["members"]) == names - {MANIFEST}
    assert manifest["model"]["model_id"] == models["mlp-t"]
    assert manifest["model"]["name"] == "mlp-t"
    assert manifest["format_version"] == 1 and manifest["dlprov_version"] == dlprov.__version__
    import hashlib
    assert manifest["model"]["recorded_sha256"] == hashlib.sha256(model_bytes).hexdigest()
    verdict = verify_package(package)
    assert verdict.ok and verdict.exit_code == 0, str(verdict)
    assert str(verdict).startswith("OK ")


@pytest.mark.parametrize("question", QUESTIONS)
def test_inspect_answers_as_the_store_does(package, models, store_path, question):
    from_store = getattr(q, question)("mlp-t")
    from_package = inspect_package(package, question)
    assert from_package.columns == from_store.columns
    assert from_package.rows == from_store.rows
    assert from_store.rows  # something to compare
    # naming the model by its id answers the same
    assert inspect_package(package, question, model=models["mlp-t"]).rows == from_store.rows


def test_inspect_needs_no_store(package, store_path):
    expected = {question: q.ask(question, model="mlp-t").rows for question in QUESTIONS}
    store_path.unlink()
    for suffix in ("-wal", "-shm"):
        Path(str(store_path) + suffix).unlink(missing_ok=True)
    for question in QUESTIONS:
        assert inspect_package(package, question).rows == expected[question]
    assert not store_path.exists()


def test_a_model_of_another_chain(models, tmp_path):
    path = package_model("mlp-b", tmp_path / "b.zip")
    assert verify_package(path).ok
    for question in ("q10", "q12"):
        assert inspect_package(path, question).rows == q.ask(question, model="mlp-b").rows


def test_changed_model_byte_fails(package):
    def flip(name, data):
        return bytes([data[0] ^ 1]) + data[1:] if name.startswith("model/") else data
    _rewrite(package, flip)
    verdict = verify_package(package)
    assert not verdict.ok and verdict.exit_code == 1
    text = str(verdict)
    assert "FAILED: member model/mlp-t.pt does not match its sha256" in text
    assert "is not the" in text and "the store recorded" in text


def test_changed_document_fails(package):
    _rewrite(package, lambda name, data: data.replace(b'"dlprov:sha256": "', b'"dlprov:sha256": "0')
             if name == PROV_JSON else data)
    verdict = verify_package(package)
    assert not verdict.ok
    assert f"member {PROV_JSON} does not match" in str(verdict)
    assert f"not the one {PROV_JSON} records" in str(verdict)


def test_malformed_document_fails(package):
    _rewrite(package, lambda name, data: b"{not json" if name == PROV_JSON else data)
    verdict = verify_package(package)
    assert f"FAILED: {PROV_JSON} is not a well-formed PROV-JSON document" in str(verdict)


def test_removed_member_fails(package):
    _rewrite(package, lambda name, data: None if name == "provenance.svg" else data)
    verdict = verify_package(package)
    assert not verdict.ok and verdict.failures == ["member provenance.svg is missing"]


def test_not_a_package(tmp_path):
    (tmp_path / "x.zip").write_bytes(b"not a zip")
    with pytest.raises(PackageError, match="not a readable dlprov package"):
        verify_package(tmp_path / "x.zip")
    with zipfile.ZipFile(tmp_path / "y.zip", "w") as zf:
        zf.writestr("hello.txt", "hi")
    with pytest.raises(PackageError, match="no readable manifest.json"):
        verify_package(tmp_path / "y.zip")


@pytest.mark.parametrize("name", ["../evil.txt", "/etc/evil", "model/../../evil"])
def test_zip_slip_member_refused(package, name):
    with zipfile.ZipFile(package, "a") as zf:
        zf.writestr(name, "x")
    with pytest.raises(PackageError, match="unsafe names"):
        verify_package(package)
    with pytest.raises(PackageError, match="unsafe names"):
        inspect_package(package, "q7")


def test_inspect_refuses_other_questions_and_damaged_extract(package):
    with pytest.raises(PackageError, match="q7"):
        inspect_package(package, "q1")
    _rewrite(package, lambda name, data: data + b"x" if name == EXTRACT else data)
    with pytest.raises(PackageError, match="does not match the manifest"):
        inspect_package(package, "q10")


def test_model_file_gone(models, tmp_path):
    (tmp_path / "torch" / "mlp-t.pt").unlink()
    with pytest.raises(PackageError, match="not there any more"):
        package_model("mlp-t", tmp_path / "t.zip")


def test_extract_holds_exactly_the_trace(package, models):
    import sqlite3
    with zipfile.ZipFile(package) as zf:
        data = zf.read(EXTRACT)
    path = Path("extract.db")
    path.write_bytes(data)
    with sqlite3.connect(path) as conn:
        transformations = {row[0] for row in conn.execute(
            "SELECT dt.tag FROM task t JOIN data_transformation dt ON dt.id = t.dt_id")}
        executions = [row[0] for row in conn.execute("SELECT tag FROM dataflow_execution")]
        models_held = [row[0] for row in conn.execute("SELECT name FROM trained_model")]
    conn.close()
    assert transformations == {"loaddata", "clean", "normalize", "augment", "splitdata",
                               "train", "test"}
    assert executions == [f"{DF}-mlp-t"] and models_held == ["mlp-t"]


def test_a_model_saved_as_a_folder(store_path, tmp_path):
    folder = tmp_path / "saved"
    (folder / "variables").mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"graph")
    (folder / "variables" / "data").write_bytes(b"weights")
    with dlprov.run("keras", exec_tag="keras-1", capture_environment=False) as run:
        with run.task("train") as train:
            train.input("itrain", learning_rate=0.1)
            train.output("otrain", epoch=1, loss=0.5)
            train.model(folder, name="saved")
        with run.task("test", depends_on=train, uses=["otrainedmodel"]) as test:
            test.output("otest", accuracy=0.5)
    path = package_model("saved", tmp_path / "saved.zip")
    with zipfile.ZipFile(path) as zf:
        assert {"model/saved/saved_model.pb", "model/saved/variables/data"} <= set(zf.namelist())
    assert verify_package(path).ok, str(verify_package(path))
    assert inspect_package(path, "q7").rows == q.q7("saved").rows
    _rewrite(path, lambda name, data: b"other" if name == "model/saved/variables/data" else data)
    assert "the store recorded" in str(verify_package(path))
