"""The key lifecycle, and that a raw secret is stored nowhere."""

from sqlalchemy import Engine, inspect, select, text
from sqlalchemy.orm import Session, sessionmaker

from db.models import ApiKey
from db.repositories import keys
from db.session import unit_of_work
from tests.conftest import Builders


def test_create_authorize_revoke(build: Builders, sessions: sessionmaker[Session]) -> None:
    shop, blog = build.website(name="shop"), build.website(name="blog")
    with unit_of_work(sessions) as session:
        key, secret = keys.create(
            session, websites=[session.merge(shop)], scopes=["payments:write"], name="backend"
        )
        key_id = key.id
    assert secret.startswith("mk_live_")
    assert len(secret) >= len("mk_live_") + 43  # 32 random bytes, base64url

    with unit_of_work(sessions) as session:
        found = keys.find_active(session, secret)
        assert found is not None
        assert found.id == key_id
        assert found.website_ids == [shop.id]
        assert blog.id not in found.website_ids
        assert found.prefix == secret[:12]
        assert keys.find_active(session, secret + "x") is None

    with unit_of_work(sessions) as session:
        keys.revoke(session, session.get_one(ApiKey, key_id))
    with unit_of_work(sessions) as session:
        assert keys.find_active(session, secret) is None
        assert session.get_one(ApiKey, key_id).revoked_at is not None


def test_secret_appears_nowhere_in_the_database(
    build: Builders, engine: Engine, sessions: sessionmaker[Session]
) -> None:
    site = build.website()
    secret = build.key(websites_=(site,))
    random_part = secret.removeprefix("mk_live_")
    with engine.connect() as connection:
        for table in inspect(engine).get_table_names():
            for row in connection.execute(text(f'SELECT * FROM "{table}"')):  # noqa: S608
                dump = repr(tuple(row))
                assert random_part not in dump, f"secret stored in {table}"
                assert random_part[:16] not in dump, f"secret fragment stored in {table}"
    with unit_of_work(sessions) as session:
        stored = session.scalars(
            select(ApiKey.key_hash).where(ApiKey.key_hash == keys.hash_secret_key(secret))
        ).all()
    assert len(stored) == 1


def test_mark_used_is_throttled(build: Builders, sessions: sessionmaker[Session]) -> None:
    site = build.website()
    secret = build.key(websites_=(site,))
    with unit_of_work(sessions) as session:
        key = keys.find_active(session, secret)
        assert key is not None
        assert key.last_used_at is None
        keys.mark_used(session, key.id)
    with unit_of_work(sessions) as session:
        first = session.scalar(select(ApiKey.last_used_at).where(ApiKey.id == key.id))
        keys.mark_used(session, key.id)
    with unit_of_work(sessions) as session:
        assert session.scalar(select(ApiKey.last_used_at).where(ApiKey.id == key.id)) == first
