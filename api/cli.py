"""The `metrivo` command: thin argument parsing over the packages."""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker

from config import Settings, SettingsError, get_settings
from db import migrate
from db.models import ATTRIBUTION_MODELS, SCOPES, ApiKey
from db.repositories import keys, visit_links, websites
from db.repositories.payments import REPLAY_STATUSES
from db.repositories.visit_links import LinkTotals
from db.session import make_engine, make_session_factory, unit_of_work
from workers.app import create_celery
from workers.enqueue import Publisher
from workers.replay import ReplayFilter, replay


class CommandError(Exception):
    """A problem the operator can fix; printed without a traceback."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return handler(args)
    except (SettingsError, CommandError) as exc:
        print(f"metrivo: {exc}", file=sys.stderr)
        return 1
    except ValidationError as exc:
        print(f"metrivo: invalid settings: {exc}", file=sys.stderr)
        return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="metrivo", description=__doc__)
    commands = parser.add_subparsers(title="commands")

    database = commands.add_parser("db", help="database schema").add_subparsers(title="db")
    upgrade = database.add_parser("upgrade", help="run migrations up to the latest")
    upgrade.set_defaults(handler=cmd_db_upgrade)

    website = commands.add_parser("website", help="websites").add_subparsers(title="website")
    create = website.add_parser("create", help="create a website")
    create.add_argument("--name", required=True)
    create.add_argument("--domain", action="append", required=True, dest="domains")
    create.add_argument("--lookback-days", type=int, default=30)
    create.add_argument("--model", choices=ATTRIBUTION_MODELS, default="last_non_direct")
    create.add_argument("--json", action="store_true")
    create.set_defaults(handler=cmd_website_create)
    update = website.add_parser("update", help="change a website's domains or attribution")
    update.add_argument("website_id", type=_uuid_arg)
    update.add_argument("--name")
    update.add_argument("--domain", action="append", dest="domains")
    update.add_argument("--lookback-days", type=int)
    update.add_argument("--model", choices=ATTRIBUTION_MODELS)
    update.add_argument(
        "--timezone", type=_timezone_arg, help="for report dates, e.g. Europe/Paris"
    )
    update.add_argument("--json", action="store_true")
    update.set_defaults(handler=cmd_website_update)
    website_list = website.add_parser("list", help="list websites")
    website_list.add_argument("--json", action="store_true")
    website_list.set_defaults(handler=cmd_website_list)

    key = commands.add_parser("key", help="secret API keys").add_subparsers(title="key")
    key_create = key.add_parser("create", help="create a key; its secret is shown once")
    key_create.add_argument(
        "--website", action="append", required=True, dest="websites", type=_uuid_arg
    )
    key_create.add_argument(
        "--scope", action="append", required=True, dest="scopes", choices=SCOPES
    )
    key_create.add_argument("--name", default="")
    key_create.add_argument("--json", action="store_true")
    key_create.set_defaults(handler=cmd_key_create)
    key_list = key.add_parser("list", help="list keys (never their secrets)")
    key_list.add_argument("--json", action="store_true")
    key_list.set_defaults(handler=cmd_key_list)
    key_revoke = key.add_parser("revoke", help="revoke a key")
    key_revoke.add_argument("key_id", type=_uuid_arg)
    key_revoke.add_argument("--json", action="store_true")
    key_revoke.set_defaults(handler=cmd_key_revoke)

    doctor = commands.add_parser("doctor", help="check config, database, broker and backlog")
    doctor.add_argument("--json", action="store_true")
    doctor.set_defaults(handler=cmd_doctor)

    replay = commands.add_parser("replay", help="queue attribution again (after a fix)")
    replay.add_argument("--status", choices=REPLAY_STATUSES, default="failed")
    replay.add_argument("--website", type=_uuid_arg)
    replay.add_argument("--since", type=_datetime_arg, help="paid at or after (ISO 8601)")
    replay.add_argument("--until", type=_datetime_arg, help="paid at or before (ISO 8601)")
    replay.add_argument("--dry-run", action="store_true", help="count, change nothing")
    replay.add_argument("--json", action="store_true")
    replay.set_defaults(handler=cmd_replay)

    visits = commands.add_parser("sessions", help="visit sessions").add_subparsers(title="sessions")
    link = visits.add_parser(
        "link",
        help="link every waiting session now (the beat does it every few seconds; run"
        " this after an upgrade or when the beat was off)",
    )
    link.add_argument("--json", action="store_true")
    link.set_defaults(handler=cmd_sessions_link)

    dev = commands.add_parser("dev", help="run the embedded stack: API, worker and beat")
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=8000)
    dev.set_defaults(handler=cmd_dev)
    return parser


def _uuid_arg(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a UUID: {value!r}") from None


def _timezone_arg(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise argparse.ArgumentTypeError(f"not an IANA time zone: {value!r}") from None
    return value


def _datetime_arg(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@contextmanager
def _database(settings: Settings | None = None) -> Iterator[sessionmaker[Session]]:
    """A session factory on a fresh engine, disposed (connections closed) afterwards."""
    engine = make_engine(settings or get_settings())
    try:
        yield make_session_factory(engine)
    finally:
        engine.dispose()


def _print(data: Any, as_json: bool, text: str) -> None:
    print(json.dumps(data, indent=2, default=str) if as_json else text)


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    settings = get_settings()
    engine = make_engine(settings)
    try:
        migrate.upgrade(engine)
        print(f"database at revision {migrate.current_revision(engine)}")
    finally:
        engine.dispose()
    return 0


def cmd_website_create(args: argparse.Namespace) -> int:
    domains = [normalize_domain(d) for d in args.domains]
    _check_lookback(args.lookback_days)
    with _database() as sessions, unit_of_work(sessions) as session:
        site = websites.create(
            session,
            name=args.name,
            domains=domains,
            lookback_days=args.lookback_days,
            attribution_model=args.model,
        )
        data = site.to_dict()
    _print(data, args.json, f"website {data['id']} created; public key {data['public_key']}")
    return 0


def cmd_website_update(args: argparse.Namespace) -> int:
    if args.lookback_days is not None:
        _check_lookback(args.lookback_days)
    domains = [normalize_domain(d) for d in args.domains] if args.domains else None
    with _database() as sessions, unit_of_work(sessions) as session:
        site = websites.get(session, args.website_id)
        if site is None:
            raise CommandError(f"no website {args.website_id}")
        websites.update(
            session,
            site,
            name=args.name,
            domains=domains,
            lookback_days=args.lookback_days,
            attribution_model=args.model,
            timezone=args.timezone,
        )
        data = site.to_dict()
    _print(data, args.json, f"website {data['id']} updated")
    return 0


def cmd_website_list(args: argparse.Namespace) -> int:
    with _database() as sessions, unit_of_work(sessions) as session:
        rows = [site.to_dict() for site in websites.list_all(session)]
    lines = [
        f"{r['id']}  {r['name']}  {','.join(r['domains'])}  {r['public_key']}  "
        f"{r['attribution_model']}/{r['lookback_days']}d"
        for r in rows
    ]
    _print(rows, args.json, "\n".join(lines) or "no websites")
    return 0


def cmd_key_create(args: argparse.Namespace) -> int:
    with _database() as sessions, unit_of_work(sessions) as session:
        found = [websites.get(session, website_id) for website_id in args.websites]
        missing = [str(w) for w, site in zip(args.websites, found, strict=True) if site is None]
        if missing:
            raise CommandError(f"no such website: {', '.join(missing)}")
        key, secret = keys.create(
            session,
            websites=[s for s in found if s is not None],
            scopes=args.scopes,
            name=args.name,
        )
        data = {**key_to_dict(key), "key": secret}
    _print(
        data,
        args.json,
        f"key {data['id']} created with scopes {', '.join(data['scopes'])}\n\n"
        f"    {secret}\n\nThis secret is shown once; Metrivo keeps only its hash.",
    )
    return 0


def cmd_key_list(args: argparse.Namespace) -> int:
    with _database() as sessions, unit_of_work(sessions) as session:
        rows = [key_to_dict(key) for key in keys.list_all(session)]
    lines = [
        f"{r['id']}  {r['prefix']}…  {','.join(r['scopes'])}  "
        f"{'revoked' if r['revoked_at'] else 'active'}  {r['name']}"
        for r in rows
    ]
    _print(rows, args.json, "\n".join(lines) or "no keys")
    return 0


def cmd_key_revoke(args: argparse.Namespace) -> int:
    with _database() as sessions, unit_of_work(sessions) as session:
        key = keys.get(session, args.key_id)
        if key is None:
            raise CommandError(f"no key {args.key_id}")
        keys.revoke(session, key)
        data = key_to_dict(key)
    _print(data, args.json, f"key {data['id']} revoked")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from api.doctor import run_checks

    report = run_checks()
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        for check in report["checks"]:
            mark = "ok " if check["ok"] else "FAIL"
            print(f"[{mark}] {check['name']}: {check['detail']}")
    return 0 if report["ok"] else 1


def cmd_replay(args: argparse.Namespace) -> int:
    settings = get_settings()
    selection = ReplayFilter(
        status=args.status, website_id=args.website, since=args.since, until=args.until
    )
    show_progress = sys.stderr.isatty() and not args.json

    def progress(count: int) -> None:
        if show_progress:
            print(
                f"\r  {count} payment(s) {'counted' if args.dry_run else 'queued'}…",
                end="",
                file=sys.stderr,
                flush=True,
            )

    publisher = None if args.dry_run else Publisher(create_celery(settings))
    with _database(settings) as sessions:
        result = replay(sessions, publisher, selection, dry_run=args.dry_run, progress=progress)
    if show_progress and result.matched:
        print(file=sys.stderr)
    data = {
        "dry_run": args.dry_run,
        **asdict(result),
        "filter": {
            "status": args.status,
            "website": args.website,
            "since": args.since,
            "until": args.until,
        },
    }
    if args.dry_run:
        text = f"{result.matched} payment(s) would be queued for attribution (dry run)"
    else:
        text = f"{result.matched} payment(s) queued for attribution"
        if result.unpublished:
            text += (
                f"; {result.unpublished} could not be sent to the broker now and will be"
                " sent by the pending sweeper"
            )
    _print(data, args.json, text)
    return 0


def cmd_sessions_link(args: argparse.Namespace) -> int:
    show_progress = sys.stderr.isatty() and not args.json

    def progress(totals: LinkTotals) -> None:
        if show_progress:
            print(f"\r  {totals.linked} session(s) linked…", end="", file=sys.stderr, flush=True)

    with _database() as sessions:
        with unit_of_work(sessions) as session:
            waiting = visit_links.waiting_sessions(session)
        totals = visit_links.link_waiting(sessions, wait=True, progress=progress)
    if show_progress:
        print(file=sys.stderr)
    text = f"{totals.linked} of {waiting} waiting session(s) linked"
    if totals.corrected:
        text += f"; {totals.corrected} linked session(s) corrected"
    _print({"waiting": waiting, **asdict(totals)}, args.json, text)
    return 0


def cmd_dev(args: argparse.Namespace) -> int:
    from api.devserver import run_dev

    return run_dev(host=args.host, port=args.port)


def key_to_dict(key: ApiKey) -> dict[str, Any]:
    return {
        "id": str(key.id),
        "name": key.name,
        "prefix": key.prefix,
        "scopes": list(key.scopes),
        "websites": [str(w) for w in key.website_ids],
        "created_at": key.created_at.isoformat(),
        "last_used_at": key.last_used_at.isoformat() if key.last_used_at else None,
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
    }


def normalize_domain(value: str) -> str:
    """`https://Shop.Example.com:443/x` -> `shop.example.com`."""
    host = value.strip().lower()
    if "://" in host:
        host = host.split("://", 1)[1]
    host = host.split("/", 1)[0].split("?", 1)[0].split(":", 1)[0].rstrip(".")
    labels = host.split(".")
    valid = (
        bool(host)
        and len(host) <= 253
        and all(label and len(label) <= 63 and label.replace("-", "").isalnum() for label in labels)
    )
    if not valid:
        raise CommandError(f"not a domain name: {value!r} (give a host like shop.example.com)")
    return host


def _check_lookback(days: int) -> None:
    if not 1 <= days <= 365:
        raise CommandError("--lookback-days must be between 1 and 365")


if __name__ == "__main__":
    sys.exit(main())
