"""Headless Chromium for browser tests: Debian's /usr/bin/chromium driven by Playwright.

`chromium()` launches it (skipping, loudly, when it is not installed); `desktop_context()`
opens an isolated context with a normal desktop Chrome user agent (the collector drops
HeadlessChrome as a bot) that records console errors and uncaught page errors and fails
when it closes if there were any.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, WebError, sync_playwright

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def require_chromium() -> None:
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.skip(
            "Chromium not installed at /usr/bin/chromium: install Debian's chromium package "
            "(.ci/run does)"
        )


def desktop_user_agent(version: str) -> str:
    """The user agent desktop Chrome `version` sends, without the "Headless" marker."""
    major = version.split(".", 1)[0]
    return (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        f"Chrome/{major}.0.0.0 Safari/537.36"
    )


@contextmanager
def chromium() -> Iterator[Browser]:
    require_chromium()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


class WatchedContext:
    """A browser context and the errors its pages reported."""

    def __init__(self, context: BrowserContext) -> None:
        self.context = context
        self.errors: list[str] = []
        context.on("console", self._on_console)
        context.on("weberror", self._on_page_error)

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            url = message.location.get("url") or "inline script"
            self.errors.append(f"console error: {message.text} ({url})")

    def _on_page_error(self, error: WebError) -> None:
        self.errors.append(f"page error: {error.error}")

    def assert_no_errors(self) -> None:
        for page in self.context.pages:
            if not page.is_closed():
                page.evaluate("0")  # a round trip delivers the events still in flight
        assert self.errors == [], "\n".join(self.errors)


@contextmanager
def desktop_context(browser: Browser, **options: Any) -> Iterator[WatchedContext]:
    """A fresh context (own storage and cookies); asserts no console or page errors on exit."""
    context = browser.new_context(user_agent=desktop_user_agent(browser.version), **options)
    try:
        watched = WatchedContext(context)
        yield watched
        watched.assert_no_errors()
    finally:
        context.close()
