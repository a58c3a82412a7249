"""Channel classification: source, medium, campaign and channel group of a visit.

Evidence is tried in this order (design.md section 7):

1. UTM parameters of the landing URL (keys and values case-insensitive). `utm_source`
   alone is enough: the medium then defaults to what the source is known for (google ->
   organic, facebook -> social, gmail -> email, chatgpt -> ai, ...), else "referral".
   Known sources are spelled our way (utm_source=chatgpt.com -> chatgpt, fb -> facebook,
   x -> twitter); others are kept as given, lowercased. `utm_medium` without a source
   keeps the source the other evidence gives ("unknown" when that is direct).
   Campaign, term and content are kept as given.
2. Click ids: gclid & co -> google/cpc, msclkid -> bing/cpc, fbclid -> facebook/social
   (or the social network of the referrer: Instagram and Threads links carry fbclid
   too), ttclid, twclid, li_fat_id, rdt_cid, epik, sccid -> the network/paid_social,
   mc_cid -> mailchimp/email, plus yclid, _hsenc, _kx and the affiliate ids of Impact,
   CJ and Awin.
3. `ref`, `source` or `via` query parameters: the value, with the medium of a known
   source or "referral". Ignored when the referrer is the site itself or a provider,
   since that is internal navigation.
4. The referrer: search engine -> organic, social network -> social, webmail -> email,
   AI assistant -> ai, ad server -> cpc/display, anything else -> its host without
   "www." / referral. Own domains (and the landing URL's host) and payment or sign-in
   providers give direct/none, as does no referrer.

X is always "twitter" (twitter.com, x.com, t.co, twclid, utm_source=x).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from attribution import domains

MAX_INPUT = 16_384
MAX_VALUE = 255
_MAX_HOST = 253  # the longest DNS name

_CLICK_IDS: tuple[tuple[str, str, str], ...] = (
    ("gclid", "google", "cpc"),
    ("gbraid", "google", "cpc"),
    ("wbraid", "google", "cpc"),
    ("dclid", "google", "cpc"),
    ("msclkid", "bing", "cpc"),
    ("yclid", "yandex", "cpc"),
    ("fbclid", "facebook", "social"),
    ("ttclid", "tiktok", "paid_social"),
    ("twclid", "twitter", "paid_social"),
    ("li_fat_id", "linkedin", "paid_social"),
    ("rdt_cid", "reddit", "paid_social"),
    ("epik", "pinterest", "paid_social"),
    ("sccid", "snapchat", "paid_social"),
    ("mc_cid", "mailchimp", "email"),
    ("_hsenc", "hubspot", "email"),
    ("_kx", "klaviyo", "email"),
    ("irclickid", "impact", "affiliate"),
    ("cjevent", "cj", "affiliate"),
    ("awc", "awin", "affiliate"),
)
_UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
_REF_KEYS = ("ref", "source", "via")
_TRACKED_KEYS = frozenset(_UTM_KEYS + _REF_KEYS + tuple(key for key, _, _ in _CLICK_IDS))
_APP_SCHEMES = frozenset({"android-app", "ios-app"})
_REFERRER_SCHEMES = frozenset({"", "http", "https"}) | _APP_SCHEMES
_HOST = re.compile(r"[\w-]+(?:\.[\w-]+)*")
_IPV6 = re.compile(r"[0-9a-f:.]+", re.IGNORECASE)
_BARE_HOST = re.compile(r"[\w.-]+\.[^\W\d_]{2,}(?::\d+)?(?:[/?#].*)?", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Acquisition:
    source: str
    medium: str
    channel: str
    campaign: str | None = None
    term: str | None = None
    content: str | None = None
    click_id: str | None = None
    referrer_host: str | None = None


@dataclass(frozen=True, slots=True)
class _Url:
    scheme: str
    host: str
    path: str
    query: str
    fragment: str


def classify(
    landing_url: str | None, referrer: str | None, *, own_domains: Sequence[str] = ()
) -> Acquisition:
    """Source, medium, campaign and channel of a visit from its landing URL and referrer."""
    landing = _parse(landing_url, bare_host_ok=False)
    return _classify(landing, _params(landing), referrer, own_domains)


def classify_metadata(
    metadata: Mapping[str, object], *, own_domains: Sequence[str] = ()
) -> Acquisition | None:
    """Acquisition from payment metadata carrying utm_source/utm_medium/utm_campaign/utm_term/
    utm_content, referrer, landing_url (any may be missing; values may be non-strings, ignore
    those). None when the metadata carries none of them. utm_* keys of the metadata win over
    those of its landing_url."""
    fields: dict[str, str] = {}
    for key, value in metadata.items():
        if isinstance(key, str) and isinstance(value, str) and value.strip():
            fields.setdefault(key.strip().lower(), value)
    wanted = (*_UTM_KEYS, "referrer", "landing_url")
    if not any(key in fields for key in wanted):
        return None
    landing = _parse(fields.get("landing_url"), bare_host_ok=False)
    params = _params(landing)
    for key in _UTM_KEYS:
        if key in fields:
            params[key] = _clean(fields[key])
    return _classify(landing, params, fields.get("referrer"), own_domains)


def is_ignored_referrer(referrer: str | None, own_domains: Sequence[str] = ()) -> bool:
    """True for referrers that must never start a new acquisition: the website's own domains
    (and their subdomains) and payment/auth providers (checkout.stripe.com, paypal.com,
    paddle.com, lemonsqueezy.com, accounts.google.com, ...)."""
    return _is_ignored(_parse_referrer(referrer), _own_domains(own_domains))


def _is_ignored(url: _Url | None, own: list[str]) -> bool:
    if url is None or not url.host:
        return False
    if url.scheme in _APP_SCHEMES:
        return url.host in domains.PROVIDER_APPS
    return _is_own(url.host, own) or domains.is_provider(url.host, url.path)


_PAID_MEDIUM = re.compile(r".*cp.*|ppc|retargeting|paid.*", re.DOTALL)
_SHOP_CAMPAIGN = re.compile(r"(?:^|[^a-df-z])shop|shopping")
_DIRECT_MEDIUMS = frozenset({"none", "(none)", "(not set)", "not set", ""})
_DISPLAY_MEDIUMS = frozenset({"display", "banner", "expandable", "interstitial", "cpm"})
_SOCIAL_MEDIUMS = frozenset(
    {"social", "social-network", "social-media", "sm", "social network", "social media"}
)
_EMAIL_WORDS = frozenset({"email", "e-mail", "e_mail", "e mail"})


def channel_group(source: str, medium: str, campaign: str | None = None) -> str:
    """GA4 default channel group for a source/medium/campaign triple.

    The rules and their order are GA4's, with three changes, all after the paid groups:
    - an email medium decides "Email" before the source lists do: our source names are
      shared by a search engine and its webmail (yahoo, aol, yandex, naver), so yahoo/email
      is Email where GA4 would say Organic Search;
    - "AI" (medium "ai" or an AI assistant as source) comes next;
    - a video site as source decides "Organic Video" before a social medium does, so
      youtube/social is Organic Video, as GA4 reports youtube.com/referral.
    """
    src = source.strip().lower()
    med = medium.strip().lower()
    camp = (campaign or "").lower()
    category = _category(src)
    paid = _PAID_MEDIUM.fullmatch(med) is not None
    shopping = category == "shopping" or _SHOP_CAMPAIGN.search(camp) is not None
    if src in ("direct", "(direct)") and med in _DIRECT_MEDIUMS:
        return "Direct"
    if "cross-network" in camp:
        return "Cross-network"
    if paid:
        if shopping:
            return "Paid Shopping"
        paid_groups = {"search": "Paid Search", "social": "Paid Social", "video": "Paid Video"}
        if category in paid_groups:
            return paid_groups[category]
    if med in _DISPLAY_MEDIUMS:
        return "Display"
    if paid:
        return "Paid Other"
    if med in _EMAIL_WORDS:
        return "Email"
    if med == "ai" or category == "ai":
        return "AI"
    if shopping:
        return "Organic Shopping"
    if category == "social":
        return "Organic Social"
    if category == "video":
        return "Organic Video"
    if med in _SOCIAL_MEDIUMS:
        return "Organic Social"
    if "video" in med:
        return "Organic Video"
    if category == "search" or med == "organic":
        return "Organic Search"
    if med in ("referral", "app", "link"):
        return "Referral"
    if src in _EMAIL_WORDS:
        return "Email"
    if med == "affiliate":
        return "Affiliates"
    if med == "audio":
        return "Audio"
    if "sms" in (src, med):
        return "SMS"
    if med.endswith("push") or "mobile" in med or "notification" in med or src == "firebase":
        return "Mobile Push Notifications"
    return "Unassigned"


def _category(source: str) -> str | None:
    name = _known_name(source)
    return domains.CATEGORY.get(name) if name else None


def _known_name(value: str) -> str | None:
    """Our name for a source given as a name, an alias, a host or a URL; None if unknown."""
    value = value.strip().lower()
    if value in domains.DEFAULT_MEDIUM:
        return value
    if value in domains.ALIASES:
        return domains.ALIASES[value]
    url = _parse_referrer(value)
    if url is None or not url.host or url.scheme in _APP_SCHEMES:
        return None
    match = domains.lookup(url.host, url.path)
    return match[0] if match and match[0] else None


def _classify(
    landing: _Url | None, params: dict[str, str], referrer: str | None, own_domains: Sequence[str]
) -> Acquisition:
    own = _own_domains(own_domains)
    if landing is not None and landing.host:
        own.append(landing.host.removeprefix("www."))
    ref_url = _parse_referrer(referrer)
    ref_host = ref_url.host if ref_url is not None and ref_url.host else None
    ignored = _is_ignored(ref_url, own)
    from_referrer = ("direct", "none") if ignored else _from_referrer(ref_url)
    source, medium, click_id = _from_click_id(params, from_referrer)
    if not click_id:
        source, medium = _from_ref_param(params, own, ignored) or from_referrer
    utm_source = params.get("utm_source")
    utm_medium = params.get("utm_medium")
    if utm_source:
        name = _known_name(utm_source)
        source = name or utm_source.lower()
        if utm_medium:
            medium = utm_medium.lower()
        elif not click_id:
            medium = domains.DEFAULT_MEDIUM.get(name or "", "referral")
        click_id = None
    elif utm_medium:
        medium = utm_medium.lower()
        if source == "direct":
            source = "unknown"
    elif source == "direct" and any(key in params for key in _UTM_KEYS):
        source = "unknown"
    campaign = params.get("utm_campaign")
    return Acquisition(
        source=source,
        medium=medium,
        channel=channel_group(source, medium, campaign),
        campaign=campaign,
        term=params.get("utm_term"),
        content=params.get("utm_content"),
        click_id=click_id,
        referrer_host=ref_host,
    )


def _from_referrer(url: _Url | None) -> tuple[str, str]:
    if url is None or not url.host:
        return ("direct", "none")
    if url.scheme in _APP_SCHEMES:
        return domains.ANDROID_APPS.get(url.host, (url.host, "referral"))
    match = domains.lookup(url.host, url.path)
    if match is None:
        return (url.host.removeprefix("www."), "referral")
    source, medium = match
    return (source or url.host.removeprefix("www."), medium)


def _from_click_id(
    params: dict[str, str], from_referrer: tuple[str, str]
) -> tuple[str, str, str | None]:
    for key, source, medium in _CLICK_IDS:
        value = params.get(key)
        if not value:
            continue
        if key == "fbclid" and domains.CATEGORY.get(from_referrer[0]) == "social":
            source = from_referrer[0]
        return (source, medium, value)
    return (*from_referrer, None)


def _from_ref_param(
    params: dict[str, str], own: list[str], ignored: bool
) -> tuple[str, str] | None:
    if ignored:
        return None
    for key in _REF_KEYS:
        value = params.get(key, "").strip().lower()
        if not value or len(value) > 100:
            continue
        url = _parse_referrer(value)
        if url is not None and url.host and _is_own(url.host, own):
            continue
        name = _known_name(value)
        if name:
            return (name, domains.DEFAULT_MEDIUM.get(name, "referral"))
        if url is not None and url.host and ("." in value or "/" in value):
            return (url.host.removeprefix("www."), "referral")
        return (value, "referral")
    return None


def _parse_referrer(raw: str | None) -> _Url | None:
    """A referrer-like URL: http(s), app or scheme-less ("www.example.com/page"); None for
    other schemes (about:, file:, chrome-extension:) and for text that is not a URL."""
    url = _parse(raw, bare_host_ok=True)
    if url is None or url.scheme not in _REFERRER_SCHEMES:
        return None
    return url


def _parse(raw: str | None, *, bare_host_ok: bool) -> _Url | None:
    """Lenient URL parsing: never raises; None when there is nothing usable.

    With `bare_host_ok`, "www.example.com/page" is read as a URL with that host.
    """
    if not isinstance(raw, str):
        return None
    text = raw.strip()[:MAX_INPUT]
    if not text:
        return None
    if "://" not in text and not text.startswith("//") and bare_host_ok:
        if _BARE_HOST.fullmatch(text) is None:
            return None
        text = "//" + text
    try:
        parts = urlsplit(text)
        netloc = parts.netloc
    except ValueError:
        return None
    return _Url(parts.scheme.lower(), _host(netloc), parts.path, parts.query, parts.fragment)


def _host(netloc: str) -> str:
    """Lowercase host without credentials, port or trailing dot; "" when it is not a host."""
    host = netloc.rpartition("@")[2]
    if host.startswith("["):
        host = host.partition("]")[0].lstrip("[")
        return host.lower() if _IPV6.fullmatch(host) else ""
    host = host.partition(":")[0].strip(".").lower()
    return host if len(host) <= _MAX_HOST and _HOST.fullmatch(host) else ""


def _params(url: _Url | None) -> dict[str, str]:
    """Tracked query parameters (lowercase keys, first non-empty value wins); the fragment
    is read too when the query has none (single-page apps put them there)."""
    if url is None:
        return {}
    found = _tracked(url.query)
    if not found and "=" in url.fragment:
        found = _tracked(url.fragment.partition("?")[2] or url.fragment)
    return found


def _tracked(query: str) -> dict[str, str]:
    found: dict[str, str] = {}
    try:
        pairs = parse_qsl(query)
    except ValueError:
        return found
    for key, value in pairs:
        key = key.strip().lower().removeprefix("amp;")
        if key in _TRACKED_KEYS and key not in found:
            cleaned = _clean(value)
            if cleaned:
                found[key] = cleaned
    return found


def _clean(value: str) -> str:
    return " ".join(value.split())[:MAX_VALUE]


def _own_domains(own_domains: Sequence[str]) -> list[str]:
    hosts: list[str] = []
    for entry in own_domains:
        url = _parse(entry, bare_host_ok=True) if isinstance(entry, str) else None
        if url is not None and url.host:
            hosts.append(url.host.strip(".").removeprefix("www."))
        elif isinstance(entry, str) and entry.strip(". "):
            hosts.append(entry.strip(". ").lower().removeprefix("www."))
    return hosts


def _is_own(host: str, own: list[str]) -> bool:
    return any(host == domain or host.endswith("." + domain) for domain in own)
