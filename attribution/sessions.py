"""Session rules: which visits count, and how a new session gets its acquisition."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import lru_cache
from urllib.parse import parse_qsl, urlsplit

from attribution.channels import Acquisition, classify, is_ignored_referrer

# The tracker starts a new session after this long without activity.
SESSION_TIMEOUT_SECONDS = 30 * 60

_BOT = re.compile(
    r"bot|crawl|spider|slurp|scrapy|headlesschrome|phantomjs|lighthouse|pingdom|"
    r"facebookexternalhit|embedly|quora link preview|whatsapp|skypeuripreview",
    re.IGNORECASE,
)


def is_bot(user_agent: str | None) -> bool:
    """Obvious automated clients: crawlers, link previewers, monitors, headless browsers.

    A request without a User-Agent (a server-side call) is not a bot.
    """
    if not user_agent:
        return False
    if len(user_agent) > _CACHED_AGENT_LENGTH:
        return _BOT.search(user_agent) is not None
    return _is_bot_agent(user_agent)


# Page views come from few distinct User-Agents: the answer for each is kept (for those
# of a usual length, so the cache stays small), as the case-insensitive search costs
# more than the rest of the page view's validation.
_CACHED_AGENT_LENGTH = 512


@lru_cache(maxsize=4096)
def _is_bot_agent(user_agent: str) -> bool:
    return _BOT.search(user_agent) is not None


def is_ignored_visit(url: str) -> bool:
    """`?metrivo_ignore=true` marks the owner's own browsing."""
    try:
        query = urlsplit(url).query
    except ValueError:
        return False
    return any(k == "metrivo_ignore" and v.lower() in ("true", "1") for k, v in parse_qsl(query))


def landing_path(url: str) -> str | None:
    try:
        return urlsplit(url).path or "/"
    except ValueError:
        return None


def acquisition_for_new_session(
    landing_url: str,
    referrer: str | None,
    *,
    own_domains: Sequence[str],
    previous: Callable[[], Acquisition | None],
) -> Acquisition:
    """The acquisition a new session starts with.

    A visitor coming back from the site itself or from a payment or login
    provider (checkout.stripe.com, accounts.google.com, …) did not arrive
    through a new channel: unless the landing URL carries campaign data, the
    session keeps the acquisition of the visitor's previous session, which
    `previous` looks up (only when needed).
    """
    classified = classify(landing_url, referrer, own_domains=own_domains)
    returning = referrer is not None and is_ignored_referrer(referrer, own_domains)
    if returning and classified.source == "direct":
        return previous() or classified
    return classified
