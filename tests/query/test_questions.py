"""The questions of Table 2 (Q1–Q12) on stores filled through the real capture API.

The experiment below is several candidate runs with preprocessing chains of different depths (up
to four steps between loading and splitting), a run with two test tasks, and tasks that are
*not* part of a model's lineage (an unrelated ``audit`` task, a ``report`` after the test). Every
expected answer is computed here from the candidates' definitions and from what the capture
code below recorded, never read back from the question under test. The same suite runs on SQLite
and on the PostgreSQL server (skipped only where none answers).
"""
from __future__ import annotations

import os
import platform
import socket
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

import dlprov
import dlprov.query as q
from dlprov.errors import NotFound, QueryError
from tests.conftest import postgresql_home



@dataclass(frozen=True)
class Candidate:
    name: str
    dataset: str                      # the raw input's dataset_name
    steps: tuple[str, ...]            # preprocessing between loaddata and splitdata
    optimizer: str
    learning_rate: float
    batch_size: int
    accuracies: tuple[float, ...]     # training accuracy per epoch
    elapsed: tuple[float, ...]        # seconds per epoch
    tests: tuple[tuple[float, float], ...]  # (loss, accuracy) of each test task

    @property
    def avg_accuracy(self) -> float:
        return sum(self.accuracies) / len(self.accuracies)


CANDIDATES = [
    Candidate("mlp-a", "digits", ("normalize",), "adam", 0.001, 32,
              (0.5, 0.6, 0.7), (1.0, 2.0, 3.0), ((0.50, 0.80),)),
    Candidate("mlp-b", "digits", ("clean", "normalize", "augment", "encode"), "sgd", 0.01, 64,
              (0.7, 0.8, 0.9), (0.5, 0.5, 0.8), ((0.45, 0.85), (0.47, 0.83))),
    Candidate("mlp-c", "digits", ("clean", "normalize"), "adam", 0.001, 64,
              (0.6, 0.7, 0.75), (2.0, 2.5, 3.0), ((0.40, 0.90),)),
    Candidate("mlp-d", "mnist", ("normalize", "augment", "encode"), "rmsprop", 0.1, 32,
              (0.3, 0.4, 0.5), (0.2, 0.2, 0.2), ((0.30, 0.70),)),
]
BY_NAME = {c.name: c for c in CANDIDATES}


def torch_model():
    import torch
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))


PARAMETERS = 4 * 3 + 3 + 3 * 2 + 2  # of torch_model(): two Linear layers' weights and biases


@dataclass
class Step:
    identifier: int
    transformation: str
    used: dict[str, int]
    produced: dict[str, int]


@dataclass
class Recorded:
    """What capture() recorded for one candidate."""

    candidate: Candidate
    exec_tag: str
    steps: list[Step] = field(default_factory=list)    # in the order they ran
    files: dict[str, str] = field(default_factory=dict)  # set tag -> file recorded in it
    parameters: dict[str, str] = field(default_factory=dict)  # i<step> set -> its method
    model_id: str = ""
    model_path: str = ""
    ids: dict[int, int] = field(default_factory=dict)  # task identifier -> task.id
    outside: set[str] = field(default_factory=set)     # transformations outside the lineage

    def id_of(self, transformation: str) -> int:
        [found] = [self.ids[s.identifier] for s in self.steps
                   if s.transformation == transformation]
        return found

    def lineage(self) -> list[Step]:
        return [s for s in self.steps if s.transformation not in self.outside]


def capture(store: str, df_tag: str, c: Candidate, root: Path) -> Recorded:
    rec = Recorded(c, f"{df_tag}-{c.name}")
    workdir = root / c.name
    workdir.mkdir(parents=True)

    def data_file(set_tag: str, name: str) -> Path:
        path = workdir / name
        path.write_text(name)
        rec.files[set_tag] = str(path)
        return path

    def done(task, used: dict[str, int], produced: dict[str, int]) -> None:
        rec.steps.append(Step(task.identifier, task.transformation, used, produced))

    with dlprov.run(df_tag, store=store, exec_tag=rec.exec_tag, user=f"user-{c.name}",
                    email=f"{c.name}@lab.example", organization="The Lab",
                    capture_environment={"packages": False, "git": False}) as run:
        with run.task("audit") as audit:  # part of the run, not of any model's lineage
            audit.output("oaudit", note="unrelated")
        done(audit, {}, {"oaudit": 1})
        with run.task("loaddata") as load:
            load.input("iinputdataset", dataset_name=c.dataset)
            load.output("oloaddata", dataset_dir=data_file("oloaddata", "raw.npz"))
        done(load, {"iinputdataset": 1}, {"oloaddata": 1})
        previous, previous_set = load, "oloaddata"
        for name in c.steps:
            with run.task(name, depends_on=previous) as step:
                rec.parameters[f"i{name}"] = f"{name}-{c.name}"
                step.input(f"i{name}", method=f"{name}-{c.name}")
                step.output(f"o{name}", dataset_dir=data_file(f"o{name}", f"{name}.npz"))
            done(step, {f"i{name}": 1, previous_set: 1}, {f"o{name}": 1})
            previous, previous_set = step, f"o{name}"
        with run.task("splitdata", depends_on=previous) as split:
            split.input("isplitconfig", train_size=0.6, val_size=0.2, test_size=0.2)
            for part in ("train", "val", "test"):
                split.output(f"o{part}set", dataset_dir=data_file(f"o{part}set", f"{part}.npz"))
        done(split, {"isplitconfig": 1, previous_set: 1},
             {"otrainset": 1, "ovalset": 1, "otestset": 1})
        with run.task("train", depends_on=split, uses=["otrainset", "ovalset"]) as train:
            train.input("itrain", optimizer_name=c.optimizer, learning_rate=c.learning_rate,
                        batch_size=c.batch_size, num_epochs=len(c.accuracies))
            for epoch, (accuracy, seconds) in enumerate(zip(c.accuracies, c.elapsed), 1):
                train.output("otrain", epoch=epoch, accuracy=accuracy, loss=1 - accuracy,
                             elapsed_time=seconds)
            import torch
            model = torch_model()
            path = workdir / "model.pt"
            torch.save(model.state_dict(), path)
            rec.model_id, rec.model_path = train.model(path, model, name=c.name), str(path)
        done(train, {"itrain": 1, "otrainset": 1, "ovalset": 1},
             {"otrain": len(c.accuracies), "otrainedmodel": 1})
        for loss, accuracy in c.tests:
            with run.task("test", depends_on=[split, train],
                          uses=["otestset", "otrainedmodel"]) as test:
                test.output("otest", loss=loss, accuracy=accuracy)
            done(test, {"otestset": 1, "otrainedmodel": 1}, {"otest": 1})
        with run.task("report", depends_on=test) as report:  # downstream of the test
            report.output("oreport", summary="done")
        done(report, {"otest": 1}, {"oreport": 1})
    rec.outside = {"audit", "report"}
    return rec


@dataclass
class Experiment:
    store: str
    df_tag: str
    runs: dict[str, Recorded]
    engine: object

    def ask(self, question: str, **params) -> list[dict]:
        return q.ask(question, store=self.store, dataflow=self.df_tag, **params).records()

    def raw(self, statement: str, **params) -> list[tuple]:
        """Plain SQL on the store, with no dlprov code in between."""
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(statement), params)]


def _fill(store: str, df_tag: str, root: Path, raw_url: str) -> Experiment:
    runs = {c.name: capture(store, df_tag, c, root) for c in CANDIDATES}
    experiment = Experiment(store, df_tag, runs, create_engine(raw_url))
    for rec in runs.values():
        rec.ids = dict(experiment.raw("SELECT identifier, id FROM task WHERE df_exec = :e",
                                      e=rec.exec_tag))
    return experiment


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def experiment(request, tmp_path_factory):
    root = tmp_path_factory.mktemp("experiment")
    if request.param == "sqlite":
        path = root / "dlprov.db"
        yield _fill(str(path), "exp", root, f"sqlite:///{path}")
        return
    with postgresql_home("q") as (url, home):
        yield _fill(url, f"{home}_df", root, url.replace("postgresql://", "postgresql+psycopg://"))


# -- Q1–Q6: choosing among candidates ------------------------------------------------------------

def test_q1_models_with_a_learning_rate(experiment):
    rows = experiment.ask("q1", learning_rate=0.001)
    expected = {(r.model_id, c.name, r.model_path, r.id_of("train"))
                for c in CANDIDATES if c.learning_rate == 0.001
                for r in [experiment.runs[c.name]]}
    assert {(r["model_id"], r["model_name"], r["model_path"], r["train_task_id"])
            for r in rows} == expected
    assert len(expected) == 2
    assert experiment.ask("q1", learning_rate=0.5) == []


def test_q2_average_epoch_time_per_training_with_filters(experiment):
    everything = {r["model_name"]: r for r in experiment.ask("q2")}
    assert set(everything) == set(BY_NAME)
    for c in CANDIDATES:
        assert everything[c.name]["epochs"] == len(c.elapsed)
        assert everything[c.name]["avg_epoch_time"] == pytest.approx(
            sum(c.elapsed) / len(c.elapsed))
    filtered = experiment.ask("q2", learning_rate=0.001, batch_size=64)
    assert [r["model_name"] for r in filtered] == [
        c.name for c in CANDIDATES if c.learning_rate == 0.001 and c.batch_size == 64]
    [one] = experiment.ask("q2", model="mlp-b")
    assert one["train_task_id"] == experiment.runs["mlp-b"].id_of("train")


def test_q3_highest_average_training_accuracy(experiment):
    best = max(CANDIDATES, key=lambda c: c.avg_accuracy)
    [row] = experiment.ask("q3")
    assert (row["model_name"], row["optimizer_name"], row["learning_rate"], row["batch_size"]) \
        == (best.name, best.optimizer, best.learning_rate, best.batch_size)
    assert row["avg_accuracy"] == pytest.approx(best.avg_accuracy)


def test_q4_highest_test_accuracy(experiment):
    accuracy, best = max((a, c) for c in CANDIDATES for _, a in c.tests)
    assert best.name != max(CANDIDATES, key=lambda c: c.avg_accuracy).name  # not Q3's answer
    [row] = experiment.ask("q4")
    assert (row["model_name"], row["learning_rate"], row["batch_size"], row["test_accuracy"]) \
        == (best.name, best.learning_rate, best.batch_size, pytest.approx(accuracy))
    assert row["model_id"] == experiment.runs[best.name].model_id


def test_q5_data_that_contributed_to_the_best_run(experiment):
    _, best = max((a, c) for c in CANDIDATES for _, a in c.tests)
    rec = experiment.runs[best.name]
    rows = experiment.ask("q5")
    expected = {(rec.ids[s.identifier], s.transformation, set_tag)
                for s in rec.lineage() for set_tag in s.used if set_tag != "itrain"}
    assert {(r["task_id"], r["transformation"], r["set_tag"]) for r in rows} == expected
    assert {r["train_task_id"] for r in rows} == {rec.id_of("train")}
    # the files of the training, validation and test sets, and the raw input's name
    files = {r["set_tag"]: r["files"] for r in rows if r["files"]}
    for set_tag in ("otrainset", "ovalset", "otestset", "oloaddata"):
        assert files[set_tag] == rec.files[set_tag]
    assert any(f"dataset_name={best.dataset}" in r["data"] for r in rows)


@pytest.mark.parametrize("training_set, trained_on", [
    ("train.npz", lambda c, rec: True),                          # the last part of a path
    ("digits", lambda c, rec: c.dataset == "digits"),            # a dataset name upstream
    ("mnist", lambda c, rec: c.dataset == "mnist"),
    (None, lambda c, rec: c.name == "mlp-b"),                    # one run's exact file
])
def test_q6_least_loss_for_a_training_set(experiment, training_set, trained_on):
    if training_set is None:
        training_set = experiment.runs["mlp-b"].files["otrainset"]
    loss, best = min((loss, c) for c in CANDIDATES for loss, _ in c.tests
                     if trained_on(c, experiment.runs[c.name]))
    [row] = experiment.ask("q6", training_set=training_set)
    assert (row["model_name"], row["optimizer_name"], row["learning_rate"]) == (
        best.name, best.optimizer, best.learning_rate)
    assert row["test_loss"] == pytest.approx(loss)
    assert experiment.ask("q6", training_set="no-such-set.npz") == []
    assert experiment.ask("q6", training_set="%") == []  # LIKE's wildcards are plain text


# -- Q7–Q12: one model, named by id, name or file ------------------------------------------------

def test_q7_hyperparameters_and_size(experiment):
    c = BY_NAME["mlp-b"]
    [row] = experiment.ask("q7", model="mlp-b")
    assert (row["optimizer_name"], row["learning_rate"], row["batch_size"], row["num_epochs"]) \
        == (c.optimizer, c.learning_rate, c.batch_size, len(c.accuracies))
    assert (row["framework"], row["parameter_count"], row["layer_count"]) == (
        "torch", PARAMETERS, 2)


def test_q8_environment_of_the_training(experiment):
    rec = experiment.runs["mlp-c"]
    [row] = experiment.ask("q8", model=rec.model_path)
    assert row["train_task_id"] == rec.id_of("train")
    assert (row["hostname"], row["os"], row["cpu_count"], row["python_version"]) == (
        socket.gethostname(), platform.system(), os.cpu_count(), platform.python_version())


def test_q9_responsible_agent(experiment):
    rec = experiment.runs["mlp-d"]
    [row] = experiment.ask("q9", model=rec.model_id)
    assert (row["username"], row["email"], row["organization"], row["hostname"], row["exec_tag"]) \
        == ("user-mlp-d", "mlp-d@lab.example", "The Lab", socket.gethostname(), rec.exec_tag)


@pytest.mark.parametrize("name", list(BY_NAME))
def test_q10_the_whole_process_at_any_depth(experiment, name):
    rec = experiment.runs[name]
    rows = experiment.ask("q10", model=name)
    expected = {(rec.ids[s.identifier], s.transformation, role, set_tag, count)
                for s in rec.lineage()
                for role, sets in (("used", s.used), ("produced", s.produced))
                for set_tag, count in sets.items()}
    assert {(r["task_id"], r["transformation"], r["role"], r["set_tag"], r["elements"])
            for r in rows} == expected
    assert {r["status"] for r in rows} == {"finished"}
    assert all(r["start_time"] and r["end_time"] for r in rows)
    # depth: hops up from the training; loading is before every step of the chain
    depth = {r["transformation"]: r["depth"] for r in rows}
    chain = ["loaddata", *rec.candidate.steps, "splitdata", "train"]
    assert [depth[t] for t in chain] == list(range(len(chain) - 1, -1, -1))
    assert depth["test"] == -1
    assert len({r["task_id"] for r in rows if r["transformation"] == "test"}) \
        == len(rec.candidate.tests)  # every test of the model, not only the first consumer


def test_q11_data_used_to_train(experiment):
    rec = experiment.runs["mlp-a"]
    rows = experiment.ask("q11", model="mlp-a")
    assert {(r["set_tag"], r["files"], r["produced_by"], r["producer_task_id"]) for r in rows} \
        == {(s, rec.files[s], "splitdata", rec.id_of("splitdata")) for s in ("otrainset",
                                                                              "ovalset")}


@pytest.mark.parametrize("name", list(BY_NAME))
def test_q12_feature_transformations_from_raw_input_to_training(experiment, name):
    rec = experiment.runs[name]
    rows = experiment.ask("q12", model=name)
    chain = ["loaddata", *rec.candidate.steps, "splitdata", "train"]
    steps: dict[int, str] = {}
    for r in rows:
        steps.setdefault(r["step"], r["transformation"])
    assert [steps[k] for k in sorted(steps)] == chain
    assert [r["transformation"] for r in rows] == sorted(
        (r["transformation"] for r in rows), key=chain.index)  # rows come in chain order
    # each step used what the step before it produced, and its own parameters
    by_step = {t: {(r["role"], r["set_tag"]) for r in rows if r["transformation"] == t}
               for t in chain}
    expected = {s.transformation: {("used", x) for x in s.used} |
                {("produced", x) for x in s.produced} for s in rec.lineage()}
    expected["train"] = {("used", "otrainset"), ("used", "ovalset")}  # data, not hyperparameters
    assert by_step == {t: expected[t] for t in chain}
    methods = {r["set_tag"]: r["data"] for r in rows if r["set_tag"] in rec.parameters}
    assert methods == {s: f"method={m}" for s, m in rec.parameters.items()}
    assert {r["set_tag"]: r["files"] for r in rows if r["role"] == "produced"} == {
        s: rec.files[s] for s in rec.files}


def test_a_model_is_named_by_id_name_or_path(experiment, monkeypatch):
    rec = experiment.runs["mlp-c"]
    found = {q.find_model(m, store=experiment.store, dataflow=experiment.df_tag).train_task_id
             for m in (rec.model_id, "mlp-c", rec.model_path)}
    monkeypatch.chdir(Path(rec.model_path).parent.parent)
    found.add(q.find_model(os.path.join("mlp-c", "model.pt"), store=experiment.store,
                           dataflow=experiment.df_tag).train_task_id)
    assert found == {rec.id_of("train")}


def test_errors_name_what_is_wrong(experiment):
    with pytest.raises(NotFound, match=r"no model 'mlp-z' in dataflow .*mlp-a, mlp-b"):
        experiment.ask("q7", model="mlp-z")
    with pytest.raises(QueryError, match="Q10 needs model"):
        experiment.ask("q10")
    with pytest.raises(QueryError, match="Q1 needs learning_rate"):
        experiment.ask("q1")
    with pytest.raises(QueryError, match="Q6 needs training_set"):
        experiment.ask("q6", training_set=" ")
    with pytest.raises(QueryError, match="Q7 takes model; not learning_rate"):
        experiment.ask("q7", model="mlp-a", learning_rate=0.1)
    with pytest.raises(QueryError, match="Q2: batch_size must be a number, got 'big'"):
        experiment.ask("q2", batch_size="big")
    with pytest.raises(QueryError, match="no question 'q13'"):
        experiment.ask("q13")
    with pytest.raises(NotFound, match="no dataflow 'nope'"):
        q.q3(store=experiment.store, dataflow="nope")


def test_prepare_gives_the_sql_with_parameters_not_values(experiment):
    statement = q.prepare("q1", store=experiment.store, dataflow=experiment.df_tag,
                          learning_rate=0.001)
    assert ":learning_rate" in statement.sql and "0.001" not in statement.sql
    assert statement.params["learning_rate"] == 0.001
    assert "-- parameter learning_rate = 0.001" in str(statement)
    hostile = "x' OR '1'='1"
    statement = q.prepare("q6", store=experiment.store, dataflow=experiment.df_tag,
                          training_set=hostile)
    assert hostile not in statement.sql and statement.run().rows == []
    rec = experiment.runs["mlp-b"]
    statement = q.prepare("q10", store=experiment.store, dataflow=experiment.df_tag,
                          model="mlp-b")
    assert "WITH RECURSIVE" in statement.sql
    assert statement.params == {"train_task_id": rec.id_of("train")}
    assert "mlp-b" not in statement.sql and "'mlp-b'" in str(statement)  # a comment, not SQL
    # what --sql prints, comments and all, runs through dlprov.sql given its parameters
    again = dlprov.sql(str(statement), store=experiment.store, dataflow=experiment.df_tag,
                       params=statement.params)
    assert again.rows == statement.run().rows != []


def test_the_python_functions_are_the_questions(experiment):
    where = {"store": experiment.store, "dataflow": experiment.df_tag}
    assert q.q1(0.001, **where) == q.ask("q1", learning_rate=0.001, **where)
    assert q.q4(**where) == q.ask("q4", **where)
    assert q.q12("mlp-d", **where) == q.ask("q12", model="mlp-d", **where)
