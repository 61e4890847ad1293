"""The server against what a web page, a stranger on the network or a hostile client can send
(issue 13's probes): a real uvicorn server in a thread, spoken to with httpx and raw sockets."""
from __future__ import annotations

import select
import socket
import threading
import time
import uuid
from contextlib import contextmanager
from typing import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
from click.testing import CliRunner

from dlprov.recorder.spool import encode
from dlprov.server.background import serve_in_thread
from dlprov.server.guards import Limits, json_bounds_error

JSON = {"content-type": "application/json"}
EVIL = "http://evil.example"



def _readable(sock, timeout: float) -> bool:
    """Whether ``sock`` has something to read within ``timeout`` seconds (poll, not select:
    a long test session opens descriptors past select's 1024)."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(timeout * 1000))

def _records(exec_tag: str) -> list[tuple]:
    """The records of a run by "mallory"."""
    from datetime import datetime, timezone

    from dlprov.model import records as r
    from dlprov.model.spec import DataflowSpec
    now = datetime.now(timezone.utc)
    spec = DataflowSpec.from_dict({"tag": "forged", "transformations": {}, "sets": {},
                                   "dependencies": {}})
    return [(r.SPEC, "forged", spec.to_dict()),
            (r.EXEC_START, uuid.uuid4().hex, {"tag": exec_tag, "df_tag": "forged",
                                              "start_time": now, "username": "mallory"})]


def _forged_batch(exec_tag: str = "forged-1") -> list:
    """A run by "mallory", as a cross-site page would post it to /v1/batch."""
    return [encode(record) for record in _records(exec_tag)]


def _stored_execs(sql) -> list:
    tables = {t for t, in sql("SELECT name FROM sqlite_master WHERE type = 'table'")}
    return sql("SELECT tag, username FROM dataflow_execution") \
        if "dataflow_execution" in tables else []


@contextmanager
def _raw(url: str) -> Iterator[socket.socket]:
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        yield sock


def _head(url: str, request_line: str, *headers: str) -> bytes:
    """A request's line and headers, with the Host of ``url``."""
    lines = [request_line, f"Host: {urlsplit(url).netloc}", *headers, "", ""]
    return "\r\n".join(lines).encode()


def _response(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """What the server sends until it closes the connection or ``timeout`` passes."""
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    return data


def _status(raw: bytes) -> int:
    return int(raw.split(b" ", 2)[1]) if raw.startswith(b"HTTP/1.1 ") else 0


# -- browsers: cross-site writes, DNS rebinding, CORS ----------------------------------------
@pytest.mark.parametrize("content_type", [
    "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None,
    "application/json; charset=latin-1", "application/jsonp"])
@pytest.mark.parametrize("path", ["/v1/batch", "/pde/task/json", "/pde/dataflow/json",
                                  "/v1/applied"])
def test_a_write_that_is_not_json_is_415_and_stores_nothing(server, sql, path, content_type):
    import json
    headers = {"content-type": content_type} if content_type else {}
    answer = httpx.post(f"{server}{path}", content=json.dumps(_forged_batch()), headers=headers)
    assert answer.status_code == 415, answer.text
    assert "application/json" in answer.json()["detail"]
    assert _stored_execs(sql) == []


@pytest.mark.parametrize("content_type", ["text/plain", "application/json"])
def test_a_cross_site_page_cannot_write(server, sql, content_type):
    answer = httpx.post(f"{server}/v1/batch", json=_forged_batch(),
                        headers={"content-type": content_type, "origin": EVIL})
    assert answer.status_code == 403, answer.text
    assert "evil.example" in answer.json()["detail"]
    assert _stored_execs(sql) == []


def test_json_writes_from_the_servers_own_origin_are_taken(server, sql):
    port = urlsplit(server).port
    for number, origin in enumerate((f"http://127.0.0.1:{port}", f"http://localhost:{port}")):
        answer = httpx.post(f"{server}/v1/batch", json=_forged_batch(f"own-{number}"),
                            headers={"origin": origin})
        assert answer.status_code == 200, answer.text
        assert "access-control-allow-origin" not in answer.headers
    assert len(_stored_execs(sql)) == 2
    answer = httpx.post(f"{server}/v1/batch", json=_forged_batch("charset"),
                        headers={"content-type": "application/json; charset=UTF-8"})
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize("origin", [EVIL, "null", "http://localhost:1", "file://",
                                    "http://127.0.0.1.evil.example"])
def test_reads_from_other_origins_are_403_without_cors_headers(server, origin):
    for method in ("GET", "OPTIONS"):
        answer = httpx.request(method, f"{server}/v1/runs",
                               headers={"origin": origin, "access-control-request-method": "POST"})
        assert answer.status_code == 403, (method, answer.text)
        assert not any(h.startswith("access-control-") for h in answer.headers)


@pytest.mark.parametrize("path", ["/health", "/v1/runs", "/openapi.json", "/docs"])
@pytest.mark.parametrize("host", ["evil.example", "rebind.evil.example:{port}",
                                  "127.0.0.1:1", "localhost", "127.0.0.1.nip.io:{port}"])
def test_dns_rebinding_is_refused_by_the_host_check(server, path, host):
    port = urlsplit(server).port
    answer = httpx.get(f"{server}{path}", headers={"host": host.format(port=port)})
    assert answer.status_code == 421, answer.text
    assert "--allowed-host" in answer.json()["detail"]


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "LOCALHOST:{port}",
                                  "[::1]:{port}"])
def test_the_servers_own_names_are_answered(server, host):
    port = urlsplit(server).port
    answer = httpx.get(f"{server}/health", headers={"host": host.format(port=port)})
    assert answer.status_code == 200, answer.text


def test_a_request_without_host_is_400(server):
    with _raw(server) as sock:
        sock.sendall(b"GET /health HTTP/1.0\r\n\r\n")
        assert _status(_response(sock)) == 400


def test_allowed_hosts_and_origins_are_configurable(store_path, monkeypatch):
    monkeypatch.setenv("DLPROV_CAPTURE_ENVIRONMENT", "0")
    with serve_in_thread(str(store_path), allowed_hosts=["prov.example.org", "proxy:8443"],
                         allow_origins=["https://ui.example.org"]) as url:
        get = lambda **headers: httpx.get(f"{url}/health", headers=headers).status_code  # noqa
        assert get(host="prov.example.org") == 200
        assert get(host="prov.example.org:1234") == 200
        assert get(host="proxy:8443") == 200
        assert get(host="proxy:8444") == 421
        assert get(origin="https://prov.example.org") == 200
        assert get(origin="https://ui.example.org") == 200
        assert get(origin="https://ui.example.org:444") == 403
        assert get(origin=EVIL) == 403


# -- the token -----------------------------------------------------------------------------
def test_the_token_protects_everything_but_health(store_path, monkeypatch):
    monkeypatch.setenv("DLPROV_CAPTURE_ENVIRONMENT", "0")
    with serve_in_thread(str(store_path), token="s3cret") as url:
        assert httpx.get(f"{url}/health").json() == {"status": "ok"}  # not where the store is
        for path in ("/docs", "/redoc", "/openapi.json", "/v1/runs", "/docs/oauth2-redirect",
                     "/nowhere", "/v1/query/q1?store=/etc/passwd"):
            for authorization in (None, "Bearer wrong", "Bearer s3cret2", "s3cret"):
                headers = {"authorization": authorization} if authorization else {}
                answer = httpx.get(f"{url}{path}", headers=headers)
                assert answer.status_code == 401, (path, authorization, answer.text)
                assert answer.headers["www-authenticate"] == "Bearer"
        answer = httpx.post(f"{url}/v1/batch", json=_forged_batch())
        assert answer.status_code == 401
        good = {"authorization": "Bearer s3cret"}
        for path in ("/docs", "/redoc", "/openapi.json"):
            assert httpx.get(f"{url}{path}", headers=good).status_code == 200, path
        assert httpx.get(f"{url}/health", headers=good).json()["store"].endswith("dlprov.db")
        assert httpx.post(f"{url}/v1/batch", json=_forged_batch(), headers=good) \
            .status_code == 200


# -- bounded bodies ------------------------------------------------------------------------
def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * (1 << 12)


def test_a_chunked_body_is_cut_at_the_limit_without_being_read_whole(server):
    """The 300 MB chunked body of the probe (the server grew to ~970 MB): answered 413 once
    64 MB have come in, the connection closed, and the server (this process) grows by about
    the limit, not by the body."""
    limit = Limits().max_body_bytes
    piece = b"7" * (1 << 20)
    frame = b"%x\r\n" % len(piece) + piece + b"\r\n"
    peak, baseline, sampling = [0], _rss_bytes(), threading.Event()

    def sample() -> None:
        while not sampling.is_set():
            peak[0] = max(peak[0], _rss_bytes())
            time.sleep(0.01)
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    sent, answer = 0, b""
    with _raw(server) as sock:
        sock.sendall(_head(server, "POST /v1/batch HTTP/1.1", "Content-Type: application/json",
                           "Transfer-Encoding: chunked"))
        try:
            while sent < 300 << 20 and not answer:
                sock.sendall(frame)
                sent += len(piece)
                if _readable(sock, 0):
                    answer = sock.recv(65536)
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer += _response(sock, timeout=5)
    sampling.set()
    sampler.join()
    assert _status(answer) == 413, answer[:300]
    assert b"at most %d bytes" % limit in answer
    assert sent < limit + (16 << 20), f"{sent >> 20} MB were sent before the 413"
    growth = peak[0] - baseline
    assert growth < 2 * limit, f"the server grew by {growth >> 20} MB"


def test_a_declared_length_over_the_limit_is_413_at_once(server):
    with _raw(server) as sock:
        sock.sendall(_head(server, "POST /v1/batch HTTP/1.1", "Content-Type: application/json",
                           f"Content-Length: {65 << 20}") + b"[")
        assert _status(_response(sock)) == 413


def test_a_small_limit_cuts_a_small_body(store_path, monkeypatch):
    monkeypatch.setenv("DLPROV_CAPTURE_ENVIRONMENT", "0")
    with serve_in_thread(str(store_path), limits=Limits(max_body_bytes=1000)) as url:
        def chunks():
            yield b"[" + b" " * 900
            yield b" " * 900 + b"]"
        answer = httpx.post(f"{url}/v1/batch", content=chunks(), headers=JSON)
        assert answer.status_code == 413, answer.text


@pytest.mark.parametrize("body, status, message", [
    (b"[" * 100 + b"]" * 100, 422, "nested deeper than 64 levels"),
    (b'{"a":' * 80 + b"1" + b"}" * 80, 422, "nested deeper than 64 levels"),
    (b"[" + b"0," * 1_000_001 + b"0]", 413, "more than 1000000 values"),
    (b"[" + b"[]," * 1_000_001 + b"[]]", 413, "more than 1000000 values"),
])
def test_json_too_deep_or_too_many_values_is_refused_before_parsing(server, body, status,
                                                                    message):
    answer = httpx.post(f"{server}/v1/batch", content=body, headers=JSON)
    assert answer.status_code == status, answer.text
    assert message in answer.json()["detail"]


def test_json_bounds_count_structure_not_text():
    limits = Limits(max_json_depth=3, max_json_values=10)
    assert json_bounds_error(b'[[["x"]]]', limits) is None
    assert json_bounds_error(b'[[[["x"]]]]', limits)[0] == 422
    assert json_bounds_error(b'["[[[[[[,,,,,,,,,,,,{{{{", "\\"[[[[,,,,,,"]', limits) is None
    assert json_bounds_error(b"[1,2,3,4,5,6,7,8,9]", limits) is None
    assert json_bounds_error(b"[1,2,3,4,5,6,7,8,9,10]", limits)[0] == 413
    assert json_bounds_error(b'{"a": [1, {"c": "}}}}}}"}]}', limits) is None
    assert json_bounds_error(b"]]]]]", limits) is None  # malformed: the parser says why
    assert json_bounds_error(b"[[[[", limits)[0] == 422  # deep even if it never ends
    assert json_bounds_error(rb'["\\", "[[[[", "\"[[[[\\\"{{"]', limits) is None  # escapes
    assert json_bounds_error(rb'["\\", [[[1]]]]', limits)[0] == 422  # the string ends at \\"
    windows = b'["' + b"x" * (3 << 20) + b'[[[[,,,,,,,,,,,"]'  # a string over 1 MB windows
    assert json_bounds_error(windows, limits) is None


# -- parameters ----------------------------------------------------------------------------
@pytest.mark.parametrize("query, named", [
    ("q1?store=/etc/passwd", "'store'"), ("q1?learning_rate=0.1&store=x", "'store'"),
    ("q3?model=m", "'model'"), ("q7?model=m&params=x&sql=1", "'params', 'sql'"),
    ("q1?learning_rate=abc", "learning_rate must be a number"),
    ("q1?learning_rate=1&learning_rate=2", "more than once"),
    ("q7?model=" + "m" * 600, "longer than 500"),
])
def test_query_takes_only_the_questions_parameters(server, query, named):
    answer = httpx.get(f"{server}/v1/query/{query}")
    assert answer.status_code == 422, answer.text
    assert named in answer.json()["detail"]


def test_query_still_answers_with_its_parameters(server):
    with httpx.Client() as http:
        http.post(f"{server}/pde/dataflow/json", json={"tag": "tiny", "transformations": [
            {"tag": "train", "sets": [{"tag": "otrain", "type": "OUTPUT",
                                       "attributes": [{"name": "LOSS", "type": "NUMERIC"}]}]}]})
        answer = http.get(f"{server}/v1/query/q1",
                          params={"learning_rate": "0.001", "dataflow": "tiny"})
    # past the parameter check: tiny lacks the sets Q1 relies on, and says so (not a 500)
    assert answer.status_code not in (422, 500), answer.text


# -- slow clients --------------------------------------------------------------------------
def test_a_stalled_body_is_408(store_path, monkeypatch):
    monkeypatch.setenv("DLPROV_CAPTURE_ENVIRONMENT", "0")
    with serve_in_thread(str(store_path), limits=Limits(body_idle_s=0.5)) as url, \
            _raw(url) as sock:
        sock.sendall(_head(url, "POST /v1/batch HTTP/1.1", "Content-Type: application/json",
                           "Content-Length: 100") + b"[1,")
        started = time.monotonic()
        answer = _response(sock, timeout=10)
        assert _status(answer) == 408, answer
        assert time.monotonic() - started < 5


def test_a_body_dripped_too_slowly_is_408(store_path, monkeypatch):
    monkeypatch.setenv("DLPROV_CAPTURE_ENVIRONMENT", "0")
    with serve_in_thread(str(store_path), limits=Limits(body_idle_s=0.5, body_total_s=1.0)) \
            as url, _raw(url) as sock:
        sock.sendall(_head(url, "POST /v1/batch HTTP/1.1", "Content-Type: application/json",
                           "Content-Length: 100"))
        answer = b""
        for _ in range(40):  # a byte every 0.1 s: never idle for long, but never done
            try:
                sock.sendall(b" ")
            except (BrokenPipeError, ConnectionResetError):
                break
            if _readable(sock, 0.1):
                break
        answer = _response(sock, timeout=5)
        assert _status(answer) == 408, answer


def test_stalled_headers_close_the_connection(store_path, monkeypatch):
    monkeypatch.setenv("DLPROV_CAPTURE_ENVIRONMENT", "0")
    with serve_in_thread(str(store_path), header_timeout_s=0.5) as url:
        with _raw(url) as sock:  # a byte now and then keeps uvicorn's keep-alive timer off
            sock.sendall(b"GET /health HTTP/1.1\r\n")
            started, closed = time.monotonic(), False
            while time.monotonic() - started < 5 and not closed:
                try:
                    sock.sendall(b"X")
                    closed = bool(_readable(sock, 0.1)) and not sock.recv(1)
                except (BrokenPipeError, ConnectionResetError):
                    closed = True
            assert closed, "the connection was still open after 5 s of dripped headers"
        with _raw(url) as sock:  # a prompt client on the same server is answered
            sock.sendall(_head(url, "GET /health HTTP/1.1", "Connection: close"))
            assert _status(_response(sock)) == 200


def test_oversized_headers_are_400(server):
    with _raw(server) as sock:  # headers that never end: h11 holds at most 16 KB of them
        sock.sendall(_head(server, "GET /health HTTP/1.1").rstrip(b"\r\n") + b"\r\nX-Big: ")
        try:
            for _ in range(64):
                sock.sendall(b"x" * 4096)
                time.sleep(0.001)
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert _status(_response(sock)) == 400


# -- the clients that must keep working ------------------------------------------------------
def test_the_original_dfanalyzer_client_posts_as_requests_does(server):
    requests = pytest.importorskip("requests")
    answer = requests.post(f"{server}/pde/dataflow/json", json={
        "tag": "tiny", "transformations": [{"tag": "train", "sets": [
            {"tag": "otrain", "type": "OUTPUT",
             "attributes": [{"name": "LOSS", "type": "NUMERIC"}]}]}]}, timeout=30)
    assert answer.status_code == 200, answer.text


def test_the_http_store_writer_sends_json(server, sql):
    from dlprov.store.http import HttpWriter
    writer = HttpWriter(server)
    try:
        writer.write(_records("writer-1"), batch_id="b-1")
        assert writer.applied(["b-1", "b-2"]) == {"b-1"}
    finally:
        writer.close()
    assert len(_stored_execs(sql)) == 1


def test_serve_refuses_a_malformed_allowed_host(store_path):
    from dlprov.cli.main import cli
    result = CliRunner().invoke(cli, ["serve", "--store", str(store_path), "--port", "1",
                                      "--allowed-host", "evil.example/x"])
    assert result.exit_code == 1, result.output
    assert "--allowed-host 'evil.example/x'" in result.output
