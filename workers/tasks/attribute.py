"""The attribution task: a batch of payment ids in, guarded result writes out."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from celery import Task, shared_task
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

from attribution.identity import user_id_hash
from attribution.resolver import resolve
from attribution.types import Attribution, Journey, Method, Model, PaymentFacts, Touch
from db.repositories import attribution as repo
from db.repositories.attribution import PendingPayment, RecordedSession
from db.session import unit_of_work
from workers.app import ATTRIBUTE_TASK
from workers.runtime import runtime_for

logger = logging.getLogger(__name__)

TRANSIENT = (OperationalError, PoolTimeout, DBAPIError)
MAX_RETRIES = 5


def attribute_payments(
    sessions: sessionmaker[Session], hmac_key: bytes, payment_ids: Sequence[uuid.UUID]
) -> dict[str, int]:
    """Attribute the pending payments among `payment_ids`; returns counts.

    Database errors propagate (the task retries them). Any other error is a
    payment the rules cannot handle: the batch is split so that only that
    payment is marked failed with the error, for a replay after the fix.
    """
    try:
        return _attribute_batch(sessions, hmac_key, payment_ids)
    except TRANSIENT:
        raise
    except Exception as exc:
        if len(payment_ids) > 1:
            logger.warning("attribution batch failed (%s); retrying one by one", type(exc).__name__)
            totals = {"attributed": 0, "failed": 0, "skipped": 0}
            for payment_id in payment_ids:
                for name, count in attribute_payments(sessions, hmac_key, [payment_id]).items():
                    totals[name] += count
            return totals
        logger.exception("attribution of payment %s failed", payment_ids[0] if payment_ids else "-")
        with unit_of_work(sessions) as session:
            failed = repo.mark_failed(session, payment_ids, f"{type(exc).__name__}: {exc}")
        return {"attributed": 0, "failed": failed, "skipped": 0}


def _attribute_batch(
    sessions: sessionmaker[Session], hmac_key: bytes, payment_ids: Sequence[uuid.UUID]
) -> dict[str, int]:
    with unit_of_work(sessions) as session:
        pending = repo.load_pending(session, payment_ids)
        journeys = load_journeys(session, hmac_key, pending)
        results: list[dict[str, Any]] = []
        poisoned: list[tuple[uuid.UUID, str]] = []
        for payment in pending:
            try:
                outcome = resolve(
                    facts(payment),
                    journeys[payment.id],
                    model=Model(payment.attribution_model),
                    lookback_days=payment.lookback_days,
                    own_domains=payment.domains,
                )
            except Exception as exc:  # a bug or bad data in one payment: keep the rest going
                logger.exception("attribution of payment %s failed", payment.id)
                poisoned.append((payment.id, f"{type(exc).__name__}: {exc}"))
                continue
            results.append(result_row(payment, outcome))
        written = repo.write_results(session, results)
        for payment_id, error in poisoned:
            repo.mark_failed(session, [payment_id], error)
    return {
        "attributed": written,
        "failed": len(poisoned),
        "skipped": len(payment_ids) - len(pending),
    }


def facts(payment: PendingPayment) -> PaymentFacts:
    return PaymentFacts(
        paid_at=payment.paid_at,
        session_id=payment.session_id or _uuid(payment.metadata.get("metrivo_session_id")),
        visitor_id=payment.visitor_id or _uuid(payment.metadata.get("metrivo_visitor_id")),
        metadata=payment.metadata,
    )


def load_journeys(
    session: Session, hmac_key: bytes, pending: Sequence[PendingPayment]
) -> dict[uuid.UUID, Journey]:
    """Everything the batch's payments could match, in as few set-based queries as it takes.

    `load_pending` brought the session, visitor and email identities the payments'
    columns name; ids found only in their metadata, and user ids, are looked up here.
    Then one query reads the sessions of every visitor any payment could be credited to.
    """
    if not pending:
        return {}
    payment_facts = {p.id: facts(p) for p in pending}
    named_sessions = {(p.website_id, p.session.id): p.session for p in pending if p.session}
    named_sessions |= repo.sessions_by_id(
        session,
        [
            (p.website_id, f.session_id)
            for p in pending
            if p.session_id is None and (f := payment_facts[p.id]).session_id
        ],
    )
    known = {(p.website_id, p.visitor_id) for p in pending if p.visitor_known and p.visitor_id}
    known |= repo.known_visitors(
        session,
        {
            (p.website_id, f.visitor_id)
            for p in pending
            if p.visitor_id is None and (f := payment_facts[p.id]).visitor_id
        },
    )
    identity_keys: dict[uuid.UUID, list[tuple[uuid.UUID, str, str]]] = {}
    identities: dict[tuple[uuid.UUID, str, str], set[uuid.UUID]] = {}
    user_id_keys = []
    for p in pending:
        keys = []
        if p.customer_email_hash:
            key = (p.website_id, "email", p.customer_email_hash)
            keys.append(key)
            if p.email_visitors:
                identities[key] = set(p.email_visitors)
        user_id = p.metadata.get("user_id")
        if isinstance(user_id, str | int) and str(user_id).strip():
            key = (p.website_id, "user_id", user_id_hash(hmac_key, str(user_id)))
            keys.append(key)
            user_id_keys.append(key)
        identity_keys[p.id] = keys
    identities |= repo.identity_visitors(session, user_id_keys)

    # One query for the sessions of every visitor any payment could be credited to.
    wanted: set[tuple[uuid.UUID, uuid.UUID]] = set(known)
    wanted |= {(s.website_id, s.visitor_id) for s in named_sessions.values()}
    for keys in identity_keys.values():
        for key in keys:
            wanted |= {(key[0], v) for v in identities.get(key, ())}
    since = min(p.paid_at - timedelta(days=p.lookback_days) for p in pending)
    until = max(p.paid_at for p in pending)
    by_visitor = repo.sessions_of_visitors(session, wanted, since=since, until=until)

    journeys = {}
    for p in pending:
        f = payment_facts[p.id]
        named = named_sessions.get((p.website_id, f.session_id)) if f.session_id else None
        visitors = set()
        if named is not None:
            visitors.add(named.visitor_id)
        visitor_known = f.visitor_id is not None and (p.website_id, f.visitor_id) in known
        if visitor_known and f.visitor_id is not None:
            visitors.add(f.visitor_id)
        method = None
        identity_visitors: set[uuid.UUID] = set()
        for kind, key in ((k[1], k) for k in identity_keys[p.id]):
            if key in identities and method is None:
                method = Method.EMAIL if kind == "email" else Method.USER_ID
                identity_visitors = identities[key]
        journeys[p.id] = Journey(
            session=touch(named) if named is not None else None,
            visitor_known=visitor_known,
            visitor_touches=tuple(
                touch(s)
                for v in sorted(visitors, key=str)
                for s in by_visitor.get((p.website_id, v), ())
            ),
            identity_method=method,
            identity_touches=tuple(
                touch(s)
                for v in sorted(identity_visitors, key=str)
                for s in by_visitor.get((p.website_id, v), ())
            ),
        )
    return journeys


def touch(s: RecordedSession) -> Touch:
    return Touch(
        session_id=s.id,
        visitor_id=s.visitor_id,
        started_at=s.started_at,
        source=s.source,
        medium=s.medium,
        campaign=s.campaign,
        landing_page=s.landing_path,
        channel=s.channel,
    )


def result_row(payment: PendingPayment, outcome: Attribution) -> dict[str, Any]:
    return {
        "id": payment.id,
        "enqueued_at": payment.enqueued_at,
        "attribution_confidence": str(outcome.confidence),
        "attribution_method": str(outcome.method),
        "attribution_model": str(outcome.model),
        "attributed_source": outcome.source,
        "attributed_medium": outcome.medium,
        "attributed_campaign": outcome.campaign,
        "attributed_landing_page": outcome.landing_page,
        "attributed_channel": outcome.channel,
        "matched_session_id": outcome.matched_session_id,
        "matched_visitor_id": outcome.matched_visitor_id,
    }


def _uuid(value: object) -> uuid.UUID | None:
    if not isinstance(value, str):
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


class AttributionTask(Task):  # type: ignore[type-arg]
    """After the last retry, the batch's still-pending payments are marked failed."""

    def on_failure(self, exc: Exception, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        ids = [uid for raw in (args[0] if args else []) if (uid := _uuid(raw))]
        runtime = runtime_for(self.app)
        try:
            with unit_of_work(runtime.sessions) as session:
                count = repo.mark_failed(session, ids, f"{type(exc).__name__}: {exc}")
            logger.error("attribution gave up on %d payment(s): %s", count, type(exc).__name__)
        except Exception:
            # The database is still down: the rows stay pending and the sweeper retries.
            logger.exception("could not mark %d payment(s) failed", len(ids))


@shared_task(
    name=ATTRIBUTE_TASK,
    bind=True,
    base=AttributionTask,
    autoretry_for=TRANSIENT,
    retry_backoff=2,
    retry_backoff_max=300,  # well under the broker's visibility timeout
    retry_jitter=True,
    max_retries=MAX_RETRIES,
    ignore_result=True,
)
def attribute(self: Task, payment_ids: list[str]) -> dict[str, int]:  # type: ignore[type-arg]
    runtime = runtime_for(self.app)
    ids = [uid for raw in payment_ids if (uid := _uuid(raw))]
    counts = attribute_payments(runtime.sessions, runtime.settings.hmac_key, ids)
    logger.info("attribution batch of %d: %s", len(ids), counts)
    return counts
