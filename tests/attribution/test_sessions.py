"""Session rules: bots, ignored visits, and the acquisition of a new session."""

from __future__ import annotations

import pytest

from attribution.channels import Acquisition
from attribution.sessions import (
    acquisition_for_new_session,
    is_bot,
    is_ignored_visit,
    landing_path,
)

CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0"
EARLIER = Acquisition(
    source="twitter", medium="social", channel="Organic Social", campaign="launch"
)


@pytest.mark.parametrize(
    ("agent", "bot"),
    [
        (CHROME, False),
        (None, False),
        ("", False),
        ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", True),
        ("Mozilla/5.0 (compatible; bingbot/2.0)", True),
        ("facebookexternalhit/1.1", True),
        ("Mozilla/5.0 HeadlessChrome/126.0", True),
        ("Slackbot-LinkExpanding 1.0", True),
        ("Mozilla/5.0 (compatible; AhrefsBot/7.0)", True),
        ("Mozilla/5.0 (Windows NT 10.0) Chrome-Lighthouse", True),
        ("Scrapy/2.11", True),
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Safari/604.1", False),
    ],
)
def test_is_bot(agent: str | None, bot: bool) -> None:
    assert is_bot(agent) is bot
    assert is_bot(agent) is bot  # the remembered answer is the same


@pytest.mark.parametrize(("padding", "bot"), [("x" * 600, False), ("x" * 600 + " Googlebot", True)])
def test_is_bot_reads_long_agents_too(padding: str, bot: bool) -> None:
    assert is_bot(f"Mozilla/5.0 {padding}") is bot


@pytest.mark.parametrize(
    ("url", "ignored"),
    [
        ("https://shop.example.com/?metrivo_ignore=true", True),
        ("https://shop.example.com/?a=1&metrivo_ignore=TRUE", True),
        ("https://shop.example.com/?metrivo_ignore=1", True),
        ("https://shop.example.com/?metrivo_ignore=false", False),
        ("https://shop.example.com/", False),
        ("http://[::1", False),
    ],
)
def test_is_ignored_visit(url: str, ignored: bool) -> None:
    assert is_ignored_visit(url) is ignored


def test_landing_path() -> None:
    assert landing_path("https://shop.example.com/pricing?x=1") == "/pricing"
    assert landing_path("https://shop.example.com") == "/"


def never() -> Acquisition | None:
    raise AssertionError("the previous acquisition must not be looked up")


def test_a_search_visit_starts_its_own_acquisition() -> None:
    chosen = acquisition_for_new_session(
        "https://shop.example.com/",
        "https://www.google.com/",
        own_domains=["shop.example.com"],
        previous=never,
    )
    assert (chosen.source, chosen.medium) == ("google", "organic")


@pytest.mark.parametrize(
    "referrer",
    [
        "https://checkout.stripe.com/c/pay/cs_1",
        "https://www.paypal.com/checkoutnow",
        "https://accounts.google.com/o/oauth2",
        "https://shop.example.com/cart",
    ],
)
def test_returning_from_a_provider_or_the_site_keeps_the_previous_acquisition(
    referrer: str,
) -> None:
    chosen = acquisition_for_new_session(
        "https://shop.example.com/thanks",
        referrer,
        own_domains=["shop.example.com"],
        previous=lambda: EARLIER,
    )
    assert chosen == EARLIER


def test_returning_without_history_is_direct() -> None:
    chosen = acquisition_for_new_session(
        "https://shop.example.com/thanks",
        "https://checkout.stripe.com/",
        own_domains=["shop.example.com"],
        previous=lambda: None,
    )
    assert (chosen.source, chosen.medium) == ("direct", "none")


def test_campaign_data_on_a_return_still_counts() -> None:
    chosen = acquisition_for_new_session(
        "https://shop.example.com/?utm_source=partner&utm_medium=affiliate",
        "https://checkout.stripe.com/",
        own_domains=["shop.example.com"],
        previous=never,
    )
    assert (chosen.source, chosen.medium) == ("partner", "affiliate")
