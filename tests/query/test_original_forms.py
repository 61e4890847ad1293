"""The original DLProv's query forms: ``SET SCHEMA "tag";`` before the statement and
``"tag".set`` names (its ``generate-prov`` scripts use both), on SQLite and PostgreSQL, with the
read-only guard judging the statement after the prefix; and ``dlprov tasks`` showing the
client's task identifiers."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

import dlprov
from dlprov.cli.main import cli
from dlprov.errors import NotFound, QueryError, ReadOnlyViolation
from dlprov.query.catalogue import list_tasks
from dlprov.query.original import split_set_schema
from dlprov.query.sql import sql
from tests.paper_stores import BACKENDS, paper_store


def _alexnet(url: str) -> None:
    """Two dataflows, as the original examples name them: ``alexnet`` and ``dnnp-1``."""
    for tag, loss in (("alexnet", 0.5), ("dnnp-1", 0.75)):
        with dlprov.run(tag, store=url, capture_environment=False) as run:
            with run.task("train") as train:
                train.input("itrain", optimizer_name="adam", learning_rate=0.01)
                train.output("otrain", epoch=1, loss=loss)
            with run.task("test", depends_on=train) as test:
                test.output("otest", loss=loss / 2, accuracy=0.9)


@pytest.fixture(params=BACKENDS)
def store_url(request, tmp_path):
    with paper_store(request.param, tmp_path) as url:
        _alexnet(url)
        yield url


def test_set_schema_chooses_the_dataflow(store_url):
    for prefix in ('SET SCHEMA "alexnet";', "set schema alexnet ;", 'SET SCHEMA "ALEXNET";\n'):
        assert sql(f"{prefix} SELECT loss FROM otrain", store=store_url).rows == [(0.5,)]
    assert sql('SET SCHEMA "dnnp-1"; SELECT loss FROM otrain', store=store_url).rows == [(0.75,)]
    # the same dataflow named twice is fine; two different ones are a question to ask back
    assert sql('SET SCHEMA "dnnp-1"; SELECT loss FROM otrain', store=store_url,
               dataflow="DNNP-1").rows == [(0.75,)]
    with pytest.raises(QueryError, match="sets schema 'alexnet' but dataflow 'dnnp-1'"):
        sql('SET SCHEMA "alexnet"; SELECT loss FROM otrain', store=store_url, dataflow="dnnp-1")
    with pytest.raises(NotFound, match="no dataflow 'vgg'"):
        sql('SET SCHEMA "vgg"; SELECT 1', store=store_url)


def test_qualified_set_names(store_url):
    assert sql('SELECT * FROM "alexnet".itrain', store=store_url).records()[0][
        "optimizer_name"] == "adam"
    assert sql('SELECT otrain.loss FROM "alexnet".otrain', store=store_url).rows == [(0.5,)]
    assert sql('SELECT t.loss FROM "DNNP-1".otrain AS t', store=store_url).rows == [(0.75,)]
    # two dataflows in one statement, whichever is the default
    rows = sql('SELECT a.loss, d.loss FROM "alexnet".otrain a, "dnnp-1".otrain d',
               store=store_url).rows
    assert rows == [(0.5, 0.75)]
    rows = sql('SET SCHEMA "dnnp-1"; SELECT o.loss, t.accuracy FROM "alexnet".otrain o '
               'JOIN "alexnet".otest t ON t.test_task_id = o.test_task_id', store=store_url).rows
    assert rows == [(0.5, 0.9)]


def test_the_cli_takes_both_forms(store_url):
    result = CliRunner().invoke(cli, ["--store", store_url, "sql", "--format", "json",
                                      'SET SCHEMA "dnnp-1"; SELECT loss FROM "alexnet".otrain'])
    assert result.exit_code == 0, result.output
    assert '"loss": 0.5' in result.output


@pytest.mark.parametrize("statement, found", [
    ('SET SCHEMA "alexnet"; DELETE FROM otrain', "DELETE"),
    ('SET SCHEMA "alexnet"; SELECT 1; SELECT 2', "found 2"),
    ('SET SCHEMA "alexnet"; SET SCHEMA "dnnp-1"; SELECT 1', "SET"),
    ('SELECT 1; SET SCHEMA "alexnet";', "found 2"),
    ('SET SCHEMA "alexnet"; DROP TABLE "alexnet".otrain', "DROP"),
    ('SET SCHEMA "alexnet"; UPDATE "alexnet".otrain SET loss = 0', "UPDATE"),
    ('SET SCHEMA "alexnet"; SET search_path TO public', "SET"),
])
def test_the_guard_still_allows_exactly_one_query(store_url, statement, found):
    with pytest.raises(ReadOnlyViolation, match=found):
        sql(statement, store=store_url)
    assert sql('SELECT loss FROM "alexnet".otrain', store=store_url).rows == [(0.5,)]


def test_a_set_schema_of_no_tag_is_refused():
    with pytest.raises(QueryError, match="SET SCHEMA 'a;b'"):
        split_set_schema('SET SCHEMA "a;b"; SELECT 1')
    assert split_set_schema("SELECT 'SET SCHEMA x;'") == (None, "SELECT 'SET SCHEMA x;'")


def test_tasks_show_the_clients_identifiers(store_url):
    """The second run's tasks are rows 3 and 4 of task; its test depends on its task 1."""
    tasks = list_tasks("2", store=store_url)
    assert [(t["id"], t["identifier"], t["depends_on"]) for t in tasks] == \
        [(3, 1, ""), (4, 2, "1")]
    result = CliRunner().invoke(cli, ["--store", store_url, "tasks", "2", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert '"depends_on": "1"' in result.output
