"""The `metrivo` command, run in-process with its own environment."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from api.cli import main, normalize_domain
from config import get_settings
from db.models import Visitor, VisitSession
from db.repositories import keys
from db.session import make_engine, make_session_factory, unit_of_work


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An embedded installation of its own in a temporary data directory."""
    for name in ("DATABASE_URL", "REDIS_URL", "BROKER_URL", "METRIVO_SECRET", "METRIVO_ENV"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("METRIVO_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> object:
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


def test_website_and_key_lifecycle(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "db", "upgrade")[0] == 0
    site = run_json(
        capsys,
        "website",
        "create",
        "--name",
        "Shop",
        "--domain",
        "https://Shop.Example.com/",
        "--domain",
        "example.com",
    )
    assert isinstance(site, dict)
    assert site["domains"] == ["shop.example.com", "example.com"]
    assert site["public_key"].startswith("pk_")
    assert site["lookback_days"] == 30
    assert site["attribution_model"] == "last_non_direct"

    updated = run_json(
        capsys, "website", "update", site["id"], "--lookback-days", "7", "--model", "first_touch"
    )
    assert isinstance(updated, dict)
    assert (updated["lookback_days"], updated["attribution_model"]) == (7, "first_touch")

    key = run_json(
        capsys,
        "key",
        "create",
        "--website",
        site["id"],
        "--scope",
        "payments:write",
        "--scope",
        "payments:read",
        "--name",
        "backend",
    )
    assert isinstance(key, dict)
    assert key["key"].startswith("mk_live_")
    assert key["scopes"] == ["payments:read", "payments:write"]
    assert key["websites"] == [site["id"]]
    assert key["prefix"] == key["key"][:12]

    listed = run_json(capsys, "key", "list")
    assert isinstance(listed, list)
    assert [k["id"] for k in listed] == [key["id"]]
    assert "key" not in listed[0]
    assert key["key"] not in json.dumps(listed)

    revoked = run_json(capsys, "key", "revoke", key["id"])
    assert isinstance(revoked, dict)
    assert revoked["revoked_at"]
    engine = make_engine(get_settings())
    with unit_of_work(make_session_factory(engine)) as session:
        assert keys.find_active(session, key["key"]) is None
    engine.dispose()


def test_key_create_text_output_shows_the_secret_once(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "db", "upgrade")
    site = run_json(capsys, "website", "create", "--name", "S", "--domain", "s.example")
    assert isinstance(site, dict)
    code, out, _ = run(capsys, "key", "create", "--website", site["id"], "--scope", "admin")
    assert code == 0
    assert "mk_live_" in out
    assert "shown once" in out


def test_operator_errors_are_clear(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "db", "upgrade")
    code, _, err = run(
        capsys,
        "key",
        "create",
        "--website",
        "00000000-0000-0000-0000-000000000000",
        "--scope",
        "admin",
    )
    assert code == 1
    assert "no such website" in err
    code, _, err = run(capsys, "website", "create", "--name", "x", "--domain", "bad domain!")
    assert code == 1
    assert "not a domain name" in err
    code, _, err = run(
        capsys, "website", "create", "--name", "x", "--domain", "a.example", "--lookback-days", "0"
    )
    assert code == 1
    assert "lookback" in err
    with pytest.raises(SystemExit):
        main(["key", "create", "--website", "x", "--scope", "admin"])
    with pytest.raises(SystemExit):
        main(
            [
                "key",
                "create",
                "--website",
                "00000000-0000-0000-0000-000000000000",
                "--scope",
                "everything",
            ]
        )


def test_doctor(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "doctor")
    assert code == 1  # no migrations yet
    assert "metrivo db upgrade" in out
    run(capsys, "db", "upgrade")
    report = run_json(capsys, "doctor")
    assert isinstance(report, dict)
    assert report["ok"] is True
    assert {c["name"] for c in report["checks"]} == {
        "config",
        "database",
        "migrations",
        "broker",
        "backlog",
    }


def test_production_without_a_secret_refuses_to_run(
    cli_env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://127.0.0.1:9/none")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:9/0")
    get_settings.cache_clear()
    code, _, err = run(capsys, "db", "upgrade")
    assert code == 1
    assert "METRIVO_SECRET is required" in err


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("Example.COM", "example.com"),
        ("https://shop.example.com/path?q=1", "shop.example.com"),
        ("localhost:8000", "localhost"),
        ("127.0.0.1", "127.0.0.1"),
        ("a-b.example.", "a-b.example"),
    ],
)
def test_normalize_domain(given: str, expected: str) -> None:
    assert normalize_domain(given) == expected


def test_sessions_link(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "db", "upgrade")
    site = run_json(capsys, "website", "create", "--name", "Shop", "--domain", "shop.example.com")
    assert isinstance(site, dict)
    engine = make_engine(get_settings())
    visitor, now = uuid.uuid4(), datetime.now(UTC)
    try:
        with unit_of_work(make_session_factory(engine)) as session:
            session.add(Visitor(website_id=uuid.UUID(site["id"]), id=visitor))
            for hours in (3, 2, 1):
                session.add(
                    VisitSession(
                        website_id=uuid.UUID(site["id"]),
                        id=uuid.uuid4(),
                        visitor_id=visitor,
                        started_at=now - timedelta(hours=hours),
                        source="google",
                    )
                )
    finally:
        engine.dispose()

    linked = run_json(capsys, "sessions", "link")
    assert linked == {"waiting": 3, "linked": 3, "corrected": 0, "done": True}
    code, out, _ = run(capsys, "sessions", "link")
    assert code == 0
    assert out.strip() == "0 of 0 waiting session(s) linked"
