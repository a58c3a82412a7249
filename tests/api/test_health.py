from pathlib import Path

import httpx

from api.app import create_app
from config import Environment, Settings
from tests.conftest import TEST_SECRET, LiveServer


def test_healthz(http: httpx.Client) -> None:
    response = http.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response.headers["x-request-id"]


def test_request_id_is_echoed_when_well_formed(http: httpx.Client) -> None:
    assert (
        http.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"]
        == "abc-123"
    )
    odd = http.get("/healthz", headers={"X-Request-ID": "<script>"}).headers["x-request-id"]
    assert odd != "<script>"
    assert len(odd) == 32


def test_readyz_checks_database_and_broker(http: httpx.Client) -> None:
    response = http.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "broker": "ok"}}


def test_readyz_fails_when_the_database_is_unreachable(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        environment=Environment.DEVELOPMENT,
        database_url="postgresql://nobody@127.0.0.1:9/none",
        secret=TEST_SECRET,
    )
    with LiveServer(create_app(settings)) as live:
        response = httpx.get(f"{live.url}/readyz", timeout=30)
    assert response.status_code == 503
    assert response.headers["retry-after"]
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"].startswith("unreachable")
    assert body["checks"]["broker"] == "ok"


def test_unknown_route_uses_the_json_error_format(http: httpx.Client) -> None:
    response = http.get("/nope")
    assert response.status_code == 404
    assert response.json() == {
        "success": False,
        "error": {"code": "not_found", "message": "Not Found"},
    }


def test_oversized_bodies_get_413(http: httpx.Client) -> None:
    big = b'{"x": "' + b"a" * (64 * 1024) + b'"}'
    response = http.post("/api/payments/manual", content=big)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"

    def chunks() -> object:  # no Content-Length: the limit counts the streamed bytes
        for _ in range(70):
            yield b"a" * 1024

    streamed = http.post("/api/payments/manual", content=chunks())  # type: ignore[arg-type]
    assert streamed.status_code == 413
