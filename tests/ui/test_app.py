"""The UI's app through its HTTP interface (no browser): pages and their JSON twins, the token
(header or cookie), read-only, escaping, the server's /ui mount and the series' thinning."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from fastapi.testclient import TestClient

from dlprov.server.app import create_app
from dlprov.ui.app import create_ui
from dlprov.ui.run import thin
from tests.ui.stores import PAYLOAD, demo_store, free_port

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
LOCAL = "http://127.0.0.1"


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    return demo_store(tmp_path_factory.mktemp("ui-app"))


@pytest.fixture(scope="module")
def client(store):
    return TestClient(create_ui(store), base_url=LOCAL)


@pytest.mark.parametrize("path", ["/", "/runs/exp-mlp-a", "/compare?runs=exp-mlp-a,exp-mlp-b",
                                  "/compare?models=mlp-a,mlp-b", "/models?dataflow=exp",
                                  "/models/mlp-a", "/dataflows/exp", "/query"])
def test_every_page_renders_with_the_packaged_scripts(client, path):
    answer = client.get(path)
    assert answer.status_code == 200, answer.text
    assert "text/html" in answer.headers["content-type"]
    assert "script-src 'self'" in answer.headers["content-security-policy"]
    for src in ("/static/ui.js", "/static/vendor/htmx-2.0.11.min.js"):
        assert src in answer.text
        assert client.get(src).status_code == 200
    assert "http://" not in answer.text.split("<main>")[0].replace(LOCAL, "")  # no CDN


def test_runs_json_filters_sorts_and_pages(client):
    found = client.get("/api/runs", params={"where": "df_tag = exp",
                                             "sort": "otrain.accuracy:last:desc"}).json()
    assert [r["exec_tag"] for r in found["rows"]] == ["exp-mlp-a", "exp-mlp-b"]
    assert found["matched"] == 2 and found["total"] >= 3
    assert "itrain.learning_rate" in found["columns"]
    one = client.get("/api/runs", params={"size": 1, "page": 2, "sort": "id"}).json()
    assert len(one["rows"]) == 1 and one["pages"] == one["matched"]
    best = client.get("/api/runs", params={"agg": "best", "where": "df_tag=exp"}).json()
    assert "otrain.loss:best" in best["columns"]
    bad = client.get("/api/runs", params={"where": "nosuchcolumn > 1"})
    assert bad.status_code == 400 and "unknown column" in bad.json()["detail"]


def test_run_shows_the_data_it_used(client):
    found = client.get("/api/runs/exp-mlp-a").json()
    used = {row["set"] for row in found["data_used"]}
    assert {"oloaddata", "oclean", "otrainset", "otestset", "otrainedmodel"} <= used
    assert found["hyperparameters"]["itrain.learning_rate"] == 0.001
    assert [t["transformation"] for t in found["tasks"]][:3] == ["audit", "loaddata", "clean"]


def test_series_returns_only_new_rows(client):
    every = client.get("/api/runs/exp-mlp-a/series").json()
    assert every["series"]["loss"]["x"] == [1, 2, 3]
    assert every["series"]["loss"]["mode"] == "min"
    later = client.get("/api/runs/exp-mlp-a/series",
                       params={"after": every["last_id"] - 1}).json()
    assert later["series"]["loss"]["x"] == [3] and later["last_id"] == every["last_id"]
    assert client.get("/api/runs/nope/series").status_code == 404


def test_thinning_keeps_extremes_and_ends():
    points = [(i, float((i * 7919) % 1000)) for i in range(100_000)]
    points[51_234] = (51_234, -5.0)
    points[77_777] = (77_777, 5000.0)
    kept = thin(points, 2000)
    assert len(kept) <= 2000
    assert kept[0] == points[0] and kept[-1] == points[-1]
    assert (51_234, -5.0) in kept and (77_777, 5000.0) in kept
    assert [p[0] for p in kept] == sorted(p[0] for p in kept)


def test_compare_marks_what_differs(client):
    found = client.get("/api/compare", params={"runs": "exp-mlp-a,exp-mlp-b"}).json()
    rows = {r["name"]: r for r in found["sections"]["hyperparameters"]}
    assert rows["itrain.learning_rate"]["differs"]
    assert not rows["itrain.optimizer_name"]["differs"]
    prep = {r["name"]: r for r in found["sections"]["preparation"]}
    assert prep["steps"]["differs"]  # three preprocessing steps against one
    models = client.get("/api/compare", params={"models": "mlp-a,mlp-b"}).json()
    sha = {r["name"]: r for r in models["sections"]["model"]}["sha256"]
    assert sha["differs"] and all(len(v) == 64 for v in sha["values"])
    assert client.get("/api/compare").status_code == 400


def test_model_card_answers_the_questions(client):
    card = client.get("/api/models/mlp-a").json()
    assert card["model"]["exec_tag"] == "exp-mlp-a"
    assert set(card["answers"]) == {"q7", "q8", "q9", "q10", "q11", "q12"}
    assert not any(a.get("error") for a in card["answers"].values())
    assert card["tests"] == [{"loss": 0.3, "accuracy": 0.9}]
    labels = [n["label"] for n in card["lineage"]["nodes"]]
    assert "audit" not in labels and "train" in labels  # the model's trace only


def test_query_console_is_read_only(client):
    found = client.get("/api/query", params={"q": "SELECT COUNT(*) AS n FROM task"}).json()
    assert found["columns"] == ["n"]
    refused = client.get("/api/query", params={"q": "DELETE FROM task"})
    assert refused.status_code == 400 and "ReadOnlyViolation" in refused.text
    assert client.get("/api/query", params={"q": "SELECT COUNT(*) FROM task"}).json()[
        "rows"] == found["rows"]
    page = client.get("/query", params={"q": "DROP TABLE task"})
    assert page.status_code == 200 and "class=\"error\"" in page.text
    csv = client.get("/api/query", params={"q": "SELECT 1 AS one", "format": "csv"})
    assert csv.text.splitlines() == ["one", "1"]


def test_no_request_writes(client):
    for method in ("post", "put", "delete"):
        answer = getattr(client, method)("/api/runs")
        assert answer.status_code in (405, 415)


def test_recorded_markup_is_escaped(client):
    for path in ("/", "/runs/xss-1", "/dataflows/xss", "/?where=note~script"):
        text = client.get(path).text
        assert PAYLOAD not in text and "<script>window.__xss" not in text
        assert "&lt;script&gt;window.__xss=1&lt;/script&gt;" in text
    data = client.get("/runs/xss-1").text.split('id="page-data">')[1].split("</script>")[0]
    assert "<" not in data and json.loads(data)["agent"]["username"] == PAYLOAD


def test_token_by_header_or_cookie_from_a_link(store):
    client = TestClient(create_ui(store, "s3cret"), base_url=LOCAL)
    assert client.get("/").status_code == 401
    assert client.get("/", headers={"authorization": "Bearer s3cret"}).status_code == 200
    assert client.get("/?token=wrong", follow_redirects=False).status_code == 401
    link = client.get("/runs/exp-mlp-a?token=s3cret&x=1", follow_redirects=False)
    assert link.status_code == 303 and link.headers["location"] == "/runs/exp-mlp-a?x=1"
    cookie = link.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert client.get("/runs/exp-mlp-a").status_code == 200  # the cookie now stands in
    assert client.get("/api/runs").status_code == 200
    other = TestClient(create_ui(store, "s3cret"), base_url=LOCAL)
    other.cookies.set("dlprov_token", "wrong")
    assert other.get("/").status_code == 401
    # another site's page is refused, cookie or not
    assert client.get("/", headers={"origin": "https://evil.example"}).status_code == 403
    assert client.get("/", headers={"host": "evil.example"}).status_code == 421


def test_server_mounts_the_ui(store):
    client = TestClient(create_app(store, "tok"), base_url=LOCAL)
    assert client.get("/ui/").status_code == 401
    link = client.get("/ui/?token=tok", follow_redirects=False)
    assert link.status_code == 303 and link.headers["location"] == "/ui/"
    page = client.get("/ui/")
    assert page.status_code == 200 and 'href="/ui/runs/exp-mlp-a"' in page.text
    assert "/ui/static/ui.js" in page.text
    assert client.get("/ui/api/runs/exp-mlp-a").json()["run"]["tag"] == "exp-mlp-a"
    # the cookie opens the UI's reads only, not the server's writes
    assert client.post("/v1/applied", json={"ids": []}).status_code == 401
    assert client.get("/v1/runs").status_code == 401


def test_cli_prints_the_url_and_refuses_open_binds_without_token(store):
    refused = subprocess.run([sys.executable, "-m", "dlprov", "ui", "--store", store,
                              "--host", "0.0.0.0"], capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "--token" in refused.stderr
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "dlprov", "ui", "--store", store,
                                "--port", str(port)], stdout=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        assert f"http://127.0.0.1:{port}/" in line
        import httpx
        for _ in range(100):
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/api/runs")
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        assert answer.status_code == 200 and answer.json()["total"] >= 3
    finally:
        process.terminate()
        process.wait(10)


def test_over_a_dlprov_server(store):
    """`dlprov ui --store http://…`: runs, a run and its curves through the server's reads."""
    import threading

    import uvicorn
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(store, port=port), host="127.0.0.1",
                                           port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        client = TestClient(create_ui(f"http://127.0.0.1:{port}"), base_url=LOCAL)
        runs = client.get("/api/runs", params={"where": "df_tag=exp"}).json()
        assert sorted(r["exec_tag"] for r in runs["rows"]) == ["exp-mlp-a", "exp-mlp-b"]
        page = client.get("/runs/exp-mlp-a")
        assert page.status_code == 200 and "itrain.learning_rate" in page.text
        curves = client.get("/api/runs/exp-mlp-a/series").json()
        assert curves["series"]["loss"]["x"] == [1, 2, 3]
        assert client.get("/api/runs/exp-mlp-a/series",
                          params={"after": 3}).json()["series"] == {}
    finally:
        server.should_exit = True
        thread.join(10)


def test_over_postgresql(tmp_path):
    from tests.conftest import postgresql_home
    from tests.prov.workflows import experiment
    with postgresql_home("ui") as (url, home):
        df = f"{home}_df"  # its own schema, dropped afterwards
        a, b = f"{df}-mlp-a", f"{df}-mlp-b"
        experiment(tmp_path, url, df_tag=df)
        client = TestClient(create_ui(url), base_url=LOCAL)
        runs = client.get("/api/runs", params={"sort": "otrain.accuracy:last"}).json()
        assert [r["exec_tag"] for r in runs["rows"]] == [b, a]
        assert client.get(f"/api/runs/{a}/series").json()["series"]["loss"]["x"] == [1, 2, 3]
        card = client.get("/api/models/mlp-a").json()
        assert not any(x.get("error") for x in card["answers"].values())
        found = client.get("/api/compare", params={"runs": f"{a},{b}"}).json()
        assert {r["name"] for r in found["sections"]["hyperparameters"] if r["differs"]} == {
            "itrain.learning_rate"}
        for path in ("/", f"/runs/{a}", "/models/mlp-a", f"/dataflows/{df}"):
            assert client.get(path).status_code == 200, path
        from dlprov.store.store import Store
        Store(url).dispose()


def test_cypher_console(client):
    found = client.get("/api/query", params={
        "lang": "cypher", "dataflow": "exp",
        "q": "MATCH (a:Activity) RETURN count(a) AS activities"}).json()
    assert found["columns"] == ["activities"] and found["rows"][0][0] > 0
    refused = client.get("/api/query", params={"lang": "cypher", "dataflow": "exp",
                                                "q": "MATCH (a) DETACH DELETE a"})
    assert refused.status_code == 400


def test_runs_table_reads_again_only_what_can_change(tmp_path):
    """Finished runs' columns are kept; a running one's metrics are read on every request,
    and the table always equals `dlprov runs`' own."""
    import threading

    import dlprov
    from dlprov.query.runs import runs_table
    store = str(tmp_path / "live.db")
    for lr in (0.1, 0.2):
        with dlprov.run("grow", store=store, capture_environment=False) as run:
            with run.task("train") as train:
                train.input("itrain", learning_rate=lr)
                train.output("otrain", epoch=1, loss=lr)
    client = TestClient(create_ui(store), base_url=LOCAL)
    step, done = threading.Semaphore(0), threading.Event()

    def train() -> None:
        with dlprov.run("grow", store=store, exec_tag="growing",
                        capture_environment=False) as run:
            with run.task("train") as task:
                task.input("itrain", learning_rate=0.3)
                for epoch in range(1, 4):
                    task.output("otrain", epoch=epoch, loss=1.0 / epoch)
                    run.flush()
                    done.set()
                    step.acquire()
    thread = threading.Thread(target=train, daemon=True)
    thread.start()
    try:
        seen = []
        for _ in range(3):
            assert done.wait(20)
            done.clear()
            rows = client.get("/api/runs", params={"columns": "exec_tag,otrain.loss:last",
                                                     "sort": "id"}).json()["rows"]
            seen.append([r["otrain.loss:last"] for r in rows])
            step.release()
        assert [s[:2] for s in seen] == [[0.1, 0.2]] * 3
        assert [s[2] for s in seen] == [1.0, 0.5, 1 / 3]
    finally:
        step.release()
        thread.join(20)
    from dlprov.store.store import as_store
    from dlprov.ui.runs import table
    expected, found = runs_table(store), table(as_store(store))
    assert found.columns == expected.columns
    assert found.rows == expected.rows
