"""Metrivo's settings: one object, read from the environment.

With no `DATABASE_URL` Metrivo runs embedded: a SQLite file and a server-less
Celery broker in the data directory, and a secret generated there on first use.
With a server database it runs in production mode, where `METRIVO_SECRET` is
required and placeholders are refused.
"""

from __future__ import annotations

import secrets
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRETS = frozenset({"changeme", "change-me", "secret", "metrivo", "dev", "test"})
MIN_SECRET_LENGTH = 32


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class SettingsError(ValueError):
    """The environment does not describe a runnable Metrivo."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    data_dir: Path = Field(
        default=Path(".metrivo"), validation_alias=AliasChoices("METRIVO_DATA_DIR", "data_dir")
    )
    environment: Environment | None = Field(
        default=None, validation_alias=AliasChoices("METRIVO_ENV", "environment")
    )
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "database_url"), repr=False
    )
    broker_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("BROKER_URL", "REDIS_URL", "broker_url"),
        repr=False,
    )
    secret: str | None = Field(
        default=None, validation_alias=AliasChoices("METRIVO_SECRET", "secret"), repr=False
    )

    # Limits.
    max_body_bytes: int = Field(
        default=64 * 1024,
        ge=1024,
        validation_alias=AliasChoices("METRIVO_MAX_BODY_BYTES", "max_body_bytes"),
    )
    db_pool_size: int = Field(
        default=10, ge=1, validation_alias=AliasChoices("METRIVO_DB_POOL_SIZE", "db_pool_size")
    )
    # Group commit: how many payments one transaction (and one queue message) may
    # carry, and how long a batch may wait for more (0: batches form while the
    # previous transaction commits, so an idle server never waits).
    batch_window_ms: float = Field(
        default=0.0,
        ge=0,
        le=1000,
        validation_alias=AliasChoices("METRIVO_BATCH_WINDOW_MS", "batch_window_ms"),
    )
    batch_max_size: int = Field(
        default=200,
        ge=1,
        le=5000,
        validation_alias=AliasChoices("METRIVO_BATCH_MAX_SIZE", "batch_max_size"),
    )
    # How long the API's publisher holds a batch of payment ids open for more before
    # it sends them as one queue message (0: send what came while the last send ran).
    # A message costs a worker a few ms of CPU whatever it carries.
    publish_window_ms: float = Field(
        default=50.0,
        ge=0,
        le=1000,
        validation_alias=AliasChoices("METRIVO_PUBLISH_WINDOW_MS", "publish_window_ms"),
    )
    # How long a payment may stay pending before the sweeper queues it again.
    pending_requeue_seconds: int = Field(
        default=60,
        ge=5,
        validation_alias=AliasChoices("METRIVO_PENDING_REQUEUE_SECONDS", "pending_requeue_seconds"),
    )
    sweep_interval_seconds: float = Field(
        default=30.0,
        gt=0,
        validation_alias=AliasChoices("METRIVO_SWEEP_INTERVAL_SECONDS", "sweep_interval_seconds"),
    )
    log_level: str = Field(
        default="INFO", validation_alias=AliasChoices("METRIVO_LOG_LEVEL", "log_level")
    )
    # Rate limits, per minute (0 disables one): per secret key, per website for the
    # public-key endpoints (track and identify together), and per website and visitor
    # for a public-key identify. Counted in Redis when there is one, else per process.
    rate_limit_secret_per_minute: int = Field(
        default=6000,
        ge=0,
        validation_alias=AliasChoices(
            "METRIVO_RATE_LIMIT_SECRET_PER_MINUTE", "rate_limit_secret_per_minute"
        ),
    )
    rate_limit_public_per_minute: int = Field(
        default=3000,
        ge=0,
        validation_alias=AliasChoices(
            "METRIVO_RATE_LIMIT_PUBLIC_PER_MINUTE", "rate_limit_public_per_minute"
        ),
    )
    rate_limit_identify_public_per_minute: int = Field(
        default=10,
        ge=0,
        validation_alias=AliasChoices(
            "METRIVO_RATE_LIMIT_IDENTIFY_PUBLIC_PER_MINUTE",
            "rate_limit_identify_public_per_minute",
        ),
    )
    rate_limit_redis_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "METRIVO_RATE_LIMIT_REDIS_URL", "REDIS_URL", "rate_limit_redis_url"
        ),
        repr=False,
    )

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.environment is None:
            embedded = self.database_url is None or self.database_url.startswith("sqlite")
            self.environment = Environment.DEVELOPMENT if embedded else Environment.PRODUCTION
        if self.environment is Environment.PRODUCTION:
            if not self.secret:
                raise SettingsError(
                    "METRIVO_SECRET is required in production: set it to a random value of at "
                    f"least {MIN_SECRET_LENGTH} characters (e.g. `openssl rand -hex 32`)."
                )
            if self.secret.lower() in PLACEHOLDER_SECRETS or len(self.secret) < MIN_SECRET_LENGTH:
                raise SettingsError(
                    f"METRIVO_SECRET must be a random value of at least {MIN_SECRET_LENGTH} "
                    "characters, not a placeholder."
                )
            if self.database_url is None:
                raise SettingsError("DATABASE_URL is required in production.")
            if self.broker_url is None:
                raise SettingsError("REDIS_URL (or BROKER_URL) is required in production.")
        return self

    @property
    def is_embedded(self) -> bool:
        return self.database_url is None

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url is None:
            return f"sqlite:///{(self.data_dir / 'metrivo.db').resolve()}"
        return normalize_database_url(self.database_url)

    @property
    def celery_broker_url(self) -> str:
        if self.broker_url is None:
            return f"sqla+sqlite:///{(self.data_dir / 'broker.db').resolve()}"
        return self.broker_url

    @property
    def rate_limit_redis(self) -> str | None:
        """The Redis that keeps the rate-limit counters: `REDIS_URL`, else a Redis broker."""
        if self.rate_limit_redis_url:
            return self.rate_limit_redis_url
        if self.broker_url and self.broker_url.startswith(("redis://", "rediss://")):
            return self.broker_url
        return None

    @property
    def hmac_key(self) -> bytes:
        """The key for email HMACs; in development it is generated once and kept."""
        if self.secret:
            return self.secret.encode()
        return _development_secret(self.data_dir).encode()

    def safe_summary(self) -> dict[str, Any]:
        """The settings as an operator may see them: no secret, no passwords."""
        return {
            "environment": str(self.environment),
            "database": redact_url(self.sqlalchemy_url),
            "broker": redact_url(self.celery_broker_url),
            "secret": "set" if self.secret else "generated in the data directory",
            "data_dir": str(self.data_dir.resolve()),
            "max_body_bytes": self.max_body_bytes,
            "rate_limits": (
                f"{self.rate_limit_secret_per_minute}/min per secret key, "
                f"{self.rate_limit_public_per_minute}/min per website, "
                f"{self.rate_limit_identify_public_per_minute}/min per identified visitor "
                f"({'Redis' if self.rate_limit_redis else 'per process'})"
            ),
        }


def normalize_database_url(url: str) -> str:
    """Let operators paste the `postgres://` URLs hosting providers hand out."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def redact_url(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in credentials else f"{scheme}://{user}@{host}"


def _development_secret(data_dir: Path) -> str:
    path = data_dir / "secret"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_hex(32)
    try:
        with path.open("x") as fh:  # lose a race to another process gracefully
            fh.write(value)
        path.chmod(0o600)
    except FileExistsError:
        return path.read_text().strip()
    return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
