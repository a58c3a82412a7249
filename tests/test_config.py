from pathlib import Path

import pytest
from pydantic import ValidationError

from config import Environment, Settings, SettingsError, normalize_database_url, redact_url


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "DATABASE_URL",
        "REDIS_URL",
        "BROKER_URL",
        "METRIVO_SECRET",
        "METRIVO_ENV",
        "METRIVO_DATA_DIR",
    ):
        monkeypatch.delenv(name, raising=False)


PG = "postgresql://metrivo:pw@db.internal/metrivo"
GOOD_SECRET = "a" * 16 + "b" * 16


def test_embedded_default_is_development_with_files_in_the_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.environment is Environment.DEVELOPMENT
    assert settings.is_embedded
    assert settings.sqlalchemy_url == f"sqlite:///{tmp_path.resolve() / 'metrivo.db'}"
    assert settings.celery_broker_url.startswith("sqla+sqlite:///")


def test_development_generates_a_secret_once_and_keeps_it(tmp_path: Path) -> None:
    first = Settings(data_dir=tmp_path).hmac_key
    assert len(first) == 64
    assert Settings(data_dir=tmp_path).hmac_key == first
    assert (tmp_path / "secret").stat().st_mode & 0o077 == 0


def test_server_database_means_production_and_needs_a_secret(tmp_path: Path) -> None:
    with pytest.raises((SettingsError, ValidationError), match="METRIVO_SECRET is required"):
        Settings(data_dir=tmp_path, database_url=PG, broker_url="redis://r:6379/0")


@pytest.mark.parametrize("secret", ["changeme", "short", "secret"])
def test_production_refuses_placeholder_or_short_secrets(tmp_path: Path, secret: str) -> None:
    with pytest.raises((SettingsError, ValidationError), match="METRIVO_SECRET must be"):
        Settings(data_dir=tmp_path, database_url=PG, broker_url="redis://r", secret=secret)


def test_production_needs_a_broker(tmp_path: Path) -> None:
    with pytest.raises((SettingsError, ValidationError), match="REDIS_URL"):
        Settings(data_dir=tmp_path, database_url=PG, secret=GOOD_SECRET)


def test_production_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgres://u:pw@h/db")
    monkeypatch.setenv("REDIS_URL", "redis://h:6379/0")
    monkeypatch.setenv("METRIVO_SECRET", GOOD_SECRET)
    monkeypatch.setenv("METRIVO_MAX_BODY_BYTES", "2048")
    settings = Settings()
    assert settings.environment is Environment.PRODUCTION
    assert settings.sqlalchemy_url == "postgresql+psycopg://u:pw@h/db"
    assert settings.celery_broker_url == "redis://h:6379/0"
    assert settings.max_body_bytes == 2048
    assert settings.hmac_key == GOOD_SECRET.encode()


def test_summary_never_shows_secrets_or_passwords(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        database_url="postgres://u:hunter2@h/db",
        broker_url="redis://:hunter3@h:6379/0",
        secret=GOOD_SECRET,
    )
    text = repr(settings.safe_summary()) + repr(settings)
    assert "hunter2" not in text
    assert "hunter3" not in text
    assert GOOD_SECRET not in text


def test_url_helpers() -> None:
    assert normalize_database_url("postgresql://h/db") == "postgresql+psycopg://h/db"
    assert normalize_database_url("sqlite:///x.db") == "sqlite:///x.db"
    assert redact_url("redis://:pw@h:1/0") == "redis://:***@h:1/0"
    assert redact_url("redis://h:1/0") == "redis://h:1/0"


def test_limits_are_validated(tmp_path: Path) -> None:
    with pytest.raises(ValidationError):
        Settings(data_dir=tmp_path, max_body_bytes=10)


def test_publish_window_defaults_reads_the_environment_and_is_validated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert Settings(data_dir=tmp_path).publish_window_ms == 50
    monkeypatch.setenv("METRIVO_PUBLISH_WINDOW_MS", "0")
    assert Settings(data_dir=tmp_path).publish_window_ms == 0
    for bad in (-1, 1001):
        with pytest.raises(ValidationError):
            Settings(data_dir=tmp_path, publish_window_ms=bad)
