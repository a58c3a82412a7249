"""Referrer tables for channel classification: which hosts are search engines, social
networks, webmail, AI assistants, ad servers, shops, and payment or sign-in providers.

Hosts are written without "www."; an entry matches the host and all its subdomains.
"name.*" matches that name under any top-level domain, including two-label country
suffixes (google.* covers google.de, google.co.uk and google.com.au). The most specific
entry wins, so "mail.google.com" (webmail) beats "google.*" (search).
"""

from __future__ import annotations

import re

ORGANIC = "organic"
SOCIAL = "social"
EMAIL = "email"
AI = "ai"
REFERRAL = "referral"
CPC = "cpc"
DISPLAY = "display"

# Per kind: source name -> space-separated hosts, then hosts named after their brand label
# (search.seznam.cz -> seznam).
SEARCH_ENGINES: dict[str, str] = {
    "google": "google.* webcache.googleusercontent.com",
    "bing": "bing.com bing.* search.msn.com",
    "yahoo": "yahoo.* search.yahoo.* yahoo-search.jp",
    "duckduckgo": "duckduckgo.com duck.com",
    "yandex": "yandex.* ya.ru",
    "startpage": "startpage.com startpage.nl ixquick.com",
    "so": "so.com m.so.com haosou.com",
    "shenma": "sm.cn",
    "ask": "ask.com search-results.com",
    "aol": "aol.* search.aol.* aolsearch.com",
    "petal": "petalsearch.com",
    "mailru": "go.mail.ru",
    "webde": "suche.web.de",
    "searx": "searx.be searx.org searxng.org",
    "metaua": "meta.ua",
}
SEARCH_HOSTS = (
    "baidu.* m.baidu.com ecosia.org qwant.com lite.qwant.com naver.com search.naver.com "
    "seznam.cz search.seznam.cz sogou.com m.sogou.com search.brave.com kagi.com mojeek.com "
    "mojeek.co.uk daum.net search.daum.net search.nate.com zum.com search.zum.com coccoc.com "
    "presearch.com presearch.org swisscows.com dogpile.com metacrawler.com webcrawler.com "
    "lycos.* search.lycos.com excite.* info.com yep.com metager.de metager.org search.lilo.org "
    "ekoru.org search.goo.ne.jp nova.rambler.ru rambler.ru szukaj.onet.pl szukaj.wp.pl najdi.si "
    "search.centrum.cz suche.t-online.de search.biglobe.ne.jp onesearch.com gibiru.com "
    "search.marginalia.nu wolframalpha.com isearch.avg.com search.avg.com voila.fr "
    "suche.1und1.de babylon.com dalesearch.com"
)

SOCIAL_NETWORKS: dict[str, str] = {
    "facebook": "facebook.com fb.com fb.me",
    "messenger": "messenger.com m.me",
    "instagram": "instagram.com ig.me",
    "linkedin": "linkedin.com linkedin.* lnkd.in",
    "twitter": "twitter.com x.com t.co",
    "reddit": "reddit.com redd.it reddit.app.link",
    "pinterest": "pinterest.* pin.it",
    "tumblr": "tumblr.com t.umblr.com",
    "vk": "vk.com vk.ru vkontakte.ru vk.me",
    "odnoklassniki": "ok.ru odnoklassniki.ru",
    "weibo": "weibo.com weibo.cn t.cn",
    "bluesky": "bsky.app bsky.social go.bsky.app",
    "mastodon": (
        "mastodon.social mastodon.online mastodon.world mstdn.social mstdn.jp mas.to "
        "fosstodon.org hachyderm.io infosec.exchange techhub.social universeodon.com "
        "pawoo.net mastodon.art mastodon.cloud"
    ),
    "hackernews": "news.ycombinator.com hckrnews.com",
    "discord": "discord.com discord.gg discordapp.com",
    "telegram": "t.me telegram.me telegram.org",
    "whatsapp": "whatsapp.com wa.me",
    "teams": "teams.microsoft.com teams.live.com",
    "line": "line.me lin.ee",
    "wechat": "weixin.qq.com wx.qq.com",
    "lobsters": "lobste.rs",
    "googleplus": "plus.google.com plus.url.google.com",
    "linktree": "linktr.ee",
    "lnkbio": "lnk.bio",
}
SOCIAL_HOSTS = (
    "threads.net threads.com tiktok.com quora.com producthunt.com snapchat.com medium.com "
    "substack.com slack.com kakao.com story.kakao.com xing.com meetup.com flipboard.com "
    "digg.com slashdot.org disqus.com goodreads.com deviantart.com behance.net dribbble.com "
    "nextdoor.com yelp.* lemmy.world lemmy.ml douban.com zhihu.com plurk.com skyrock.com "
    "blog.naver.com cafe.naver.com cafe.daum.net workplace.com beacons.ai"
)

# Video platforms: medium "social", channel "Organic Video" (see channels.channel_group).
VIDEO_SITES: dict[str, str] = {
    "youtube": "youtube.com youtu.be youtube-nocookie.com",
    "dailymotion": "dailymotion.com dai.ly",
    "bilibili": "bilibili.com b23.tv",
    "nicovideo": "nicovideo.jp nico.ms",
}
VIDEO_HOSTS = "vimeo.com twitch.tv rumble.com youku.com kick.com"

WEBMAIL: dict[str, str] = {
    "gmail": "mail.google.* inbox.google.com gmail.com googlemail.com",
    "outlook": (
        "outlook.live.com outlook.office.com outlook.office365.com mail.live.com "
        "outlook.cloud.microsoft hotmail.* outlook.*"
    ),
    "proton": "mail.proton.me protonmail.com protonmail.ch",
    "mailru": "mail.ru e.mail.ru",
    "gmx": "gmx.* deref-gmx.*",
    "webde": "web.de deref-web.de",
    "mailcom": "mail.com deref-mail.com",
    "tuta": "tuta.com tutanota.com tuta.io",
    "netease": "mail.163.com mail.126.com mail.yeah.net",
    "daum": "mail.daum.net hanmail.net",
    "seznam": "email.seznam.cz email.cz",
    "rediff": "rediffmail.com",
    "mailbg": "mail.bg",
    "att": "currently.com",
    "mailchimp": "mailchi.mp campaign-archive.com list-manage.com",
}
WEBMAIL_HOSTS = (
    "mail.yahoo.* mail.yahoo.net mail.aol.* webmail.aol.com icloud.com mail.zoho.* "
    "mail.yandex.* mailbusiness.ionos.* email.ionos.* bluewin.ch fastmail.com fastmail.fm "
    "mailbox.org posteo.de posteo.net hey.com mail.superhuman.com mail.qq.com exmail.qq.com "
    "mail.naver.com email.t-online.de messagerie.orange.fr mail.orange.fr laposte.net "
    "zimbra.free.fr connect.xfinity.com"
)

AI_ASSISTANTS: dict[str, str] = {
    "chatgpt": "chatgpt.com chat.openai.com chat.com",
    "perplexity": "perplexity.ai pplx.ai",
    "gemini": "gemini.google.com bard.google.com aistudio.google.com",
    "notebooklm": "notebooklm.google.com",
    "copilot": (
        "copilot.microsoft.com copilot.cloud.microsoft edgeservices.bing.com bing.com/chat "
        "bing.com/copilotsearch"
    ),
    "characterai": "character.ai",
    "grok": "grok.com x.com/i/grok",
    "kimi": "kimi.com kimi.moonshot.cn",
    "metaai": "meta.ai",
    "qwen": "chat.qwen.ai tongyi.aliyun.com",
    "ernie": "yiyan.baidu.com",
    "andi": "andisearch.com",
    "lmarena": "lmarena.ai chat.lmsys.org",
    "duckai": "duck.ai",
    "huggingchat": "huggingface.co/chat",
}
AI_HOSTS = (
    "claude.ai you.com phind.com poe.com chat.mistral.ai chat.deepseek.com doubao.com pi.ai "
    "felo.ai genspark.ai iask.ai"
)

SHOPPING_SITES: dict[str, str] = {
    "mercadolibre": "mercadolibre.* mercadolivre.com.br",
    "shopify": "shopify.com shop.app",
}
SHOPPING_HOSTS = (
    "amazon.* ebay.* etsy.com walmart.com aliexpress.* aliexpress.us alibaba.com rakuten.* "
    "target.com bestbuy.com zalando.* pricerunner.*"
)

# Ad servers: a click that came through them is paid.
AD_SERVERS: dict[str, tuple[str, str]] = {
    "googleadservices.com": ("google", CPC),
    "google.*/aclk": ("google", CPC),
    "google.*/pagead/aclk": ("google", CPC),
    "bing.com/aclk": ("bing", CPC),
    "syndicatedsearch.goog": ("google", CPC),
    "doubleclick.net": ("google", DISPLAY),
    "googlesyndication.com": ("google", DISPLAY),
    "adsensecustomsearchads.com": ("google", CPC),
    "bingads.microsoft.com": ("bing", CPC),
    "taboola.com": ("taboola", CPC),
    "outbrain.com": ("outbrain", CPC),
    "criteo.com": ("criteo", DISPLAY),
    "criteo.net": ("criteo", DISPLAY),
    "adnxs.com": ("appnexus", DISPLAY),
    "ads.yahoo.com": ("yahoo", CPC),
    "ads.linkedin.com": ("linkedin", "paid_social"),
    "ads.tiktok.com": ("tiktok", "paid_social"),
}

# Known hosts under a search/social brand that are plain referrals (source = the host).
PLAIN_REFERRALS = (
    "docs.google.* drive.google.* sites.google.* groups.google.* calendar.google.* "
    "classroom.google.* meet.google.* keep.google.* play.google.* support.google.* "
    "developers.google.* cloud.google.* translate.google.* photos.google.* "
    "news.yahoo.* finance.yahoo.* sports.yahoo.* answers.yahoo.* "
    "developers.facebook.com business.facebook.com engineering.fb.com "
    "support.microsoft.com learn.microsoft.com"
)

# Payment and sign-in providers: a return from them never starts a new acquisition.
PROVIDERS = (
    "stripe.com stripe.network paypal.com paypal.me paypal.* venmo.com paddle.com paddle.net "
    "lemonsqueezy.com gumroad.com chargebee.com recurly.com braintreegateway.com adyen.com "
    "checkout.com mollie.com klarna.com afterpay.com affirm.com squareup.com square.link "
    "checkout.square.site pay.google.com pay.shop.app checkout.shopify.com onfastspring.com "
    "fastspring.com 2checkout.com 2co.com paystack.com razorpay.com polar.sh creem.io "
    "dodopayments.com xsolla.com cardinalcommerce.com arcot.com "
    "accounts.google.* accounts.youtube.com appleid.apple.com idmsa.apple.com "
    "login.microsoftonline.com login.microsoft.com login.live.com account.live.com "
    "account.microsoft.com auth0.com okta.com oktapreview.com clerk.accounts.dev "
    "accounts.dev clerk.com stytch.com workos.com authkit.app id.atlassian.com "
    "login.yahoo.com amazoncognito.com kinde.com api.twitter.com"
)
# Sign-in pages on hosts that are otherwise ordinary referrers: host/path prefix.
PROVIDER_PAGES = (
    "github.com/login github.com/sessions gitlab.com/oauth gitlab.com/users/sign_in "
    "x.com/i/oauth2 twitter.com/i/oauth2 linkedin.com/oauth slack.com/oauth "
    "facebook.com/dialog/oauth discord.com/oauth2"
)

# android-app://<package> referrers: package -> (source, medium).
ANDROID_APPS: dict[str, tuple[str, str]] = {
    "com.google.android.googlequicksearchbox": ("google", ORGANIC),
    "com.google.android.apps.searchlite": ("google", ORGANIC),
    "com.google.android.gm": ("gmail", EMAIL),
    "com.google.android.apps.inbox": ("gmail", EMAIL),
    "com.microsoft.office.outlook": ("outlook", EMAIL),
    "com.yahoo.mobile.client.android.mail": ("yahoo", EMAIL),
    "ch.protonmail.android": ("proton", EMAIL),
    "com.samsung.android.email.provider": ("samsungemail", EMAIL),
    "com.android.email": ("email", EMAIL),
    "com.readdle.spark": ("spark", EMAIL),
    "com.fsck.k9": ("k9", EMAIL),
    "me.bluemail.mail": ("bluemail", EMAIL),
    "ru.yandex.mail": ("yandex", EMAIL),
    "ru.mail.mailapp": ("mailru", EMAIL),
    "com.facebook.katana": ("facebook", SOCIAL),
    "com.facebook.lite": ("facebook", SOCIAL),
    "com.facebook.orca": ("messenger", SOCIAL),
    "com.instagram.android": ("instagram", SOCIAL),
    "com.instagram.barcelona": ("threads", SOCIAL),
    "com.linkedin.android": ("linkedin", SOCIAL),
    "com.twitter.android": ("twitter", SOCIAL),
    "com.reddit.frontpage": ("reddit", SOCIAL),
    "com.google.android.youtube": ("youtube", SOCIAL),
    "com.zhiliaoapp.musically": ("tiktok", SOCIAL),
    "com.ss.android.ugc.trill": ("tiktok", SOCIAL),
    "com.pinterest": ("pinterest", SOCIAL),
    "com.slack": ("slack", SOCIAL),
    "com.discord": ("discord", SOCIAL),
    "org.telegram.messenger": ("telegram", SOCIAL),
    "com.whatsapp": ("whatsapp", SOCIAL),
    "com.snapchat.android": ("snapchat", SOCIAL),
    "jp.naver.line.android": ("line", SOCIAL),
    "com.vkontakte.android": ("vk", SOCIAL),
    "xyz.blueskyweb.app": ("bluesky", SOCIAL),
    "org.joinmastodon.android": ("mastodon", SOCIAL),
    "com.microsoft.teams": ("teams", SOCIAL),
    "com.openai.chatgpt": ("chatgpt", AI),
    "ai.perplexity.app.android": ("perplexity", AI),
    "com.anthropic.claude": ("claude", AI),
    "com.google.android.apps.bard": ("gemini", AI),
    "com.microsoft.copilot": ("copilot", AI),
    "com.microsoft.bing": ("bing", ORGANIC),
    "com.duckduckgo.mobile.android": ("duckduckgo", ORGANIC),
    "ru.yandex.searchplugin": ("yandex", ORGANIC),
    "com.baidu.searchbox": ("baidu", ORGANIC),
    "com.nhn.android.search": ("naver", ORGANIC),
}

# Short names people put in utm_source/ref for a known source.
ALIAS_PAIRS = (
    "fb=facebook ig=instagram yt=youtube x=twitter hn=hackernews ycombinator=hackernews "
    "openai=chatgpt bard=gemini google_ads=google adwords=google"
)

MAX_KEY_LABELS = 6  # no table key has more labels; longer hosts are matched on their end
SECOND_LEVEL_LABELS = frozenset(
    {"co", "com", "net", "org", "ac", "or", "ne", "gob", "gov", "edu", "go", "ltd", "plc"}
)
# First labels of webmail hosts ("webmail.", "mail2.", "upcmail.", "messageriepro3.") and
# "deref-<provider>" hosts through which webmails send clicks (deref-gmx.net).
WEBMAIL_LABEL = re.compile(
    r"[a-z-]*mail(?:box|business|pro)?\d*|webmail\w*|messagerie\w*|correo|poczta|posta|"
    r"courriel|zimbra|roundcube|squirrelmail|horde|owa"
)
DEREFERRER = re.compile(r"deref-([a-z0-9]+)(?:-\d+)?")
WEBMAIL_PATH = re.compile(r"/(?:owa|webmail|roundcube|squirrelmail|horde)(?:/|$)", re.IGNORECASE)


Match = tuple[str, str]  # (source, medium); source "" means "use the referrer host"


def candidates(host: str) -> list[str]:
    """Table keys that may describe `host`, most specific first.

    "www.google.co.uk" gives google.co.uk, google.*, co.uk.
    """
    labels = host.removeprefix("www.").split(".")
    suffix = 1
    if len(labels) >= 3 and len(labels[-1]) == 2 and labels[-2] in SECOND_LEVEL_LABELS:
        suffix = 2
    keys: list[str] = []
    for start in range(max(0, len(labels) - MAX_KEY_LABELS), len(labels) - 1):
        keys.append(".".join(labels[start:]))
        if len(labels) - start > suffix:
            keys.append(".".join(labels[start : len(labels) - suffix]) + ".*")
    return keys


def brand(host: str) -> str:
    """The label before the public suffix: "webmail.bigpond.com" -> "bigpond"."""
    keys = [key for key in candidates(host) if key.endswith(".*")]
    return keys[-1].removesuffix(".*") if keys else host


def _build() -> tuple[dict[str, Match], dict[str, str], dict[str, str]]:
    hosts: dict[str, Match] = {}
    default_medium: dict[str, str] = {}
    category: dict[str, str] = {}
    # Registration order decides what a name means on its own: AI first (gemini is not
    # google search), search before social and email (naver, daum, yahoo, aol).
    tables = (
        (AI_ASSISTANTS, AI_HOSTS, AI, "ai"),
        (SEARCH_ENGINES, SEARCH_HOSTS, ORGANIC, "search"),
        (VIDEO_SITES, VIDEO_HOSTS, SOCIAL, "video"),
        (SOCIAL_NETWORKS, SOCIAL_HOSTS, SOCIAL, "social"),
        (SHOPPING_SITES, SHOPPING_HOSTS, REFERRAL, "shopping"),
        (WEBMAIL, WEBMAIL_HOSTS, EMAIL, "email"),
    )
    for table, by_brand, medium, kind in tables:
        named = [(name, host) for name, spaced in table.items() for host in spaced.split()]
        named += [(brand(host), host) for host in by_brand.split()]
        for name, host in named:
            default_medium.setdefault(name, medium)
            if kind != "email":
                category.setdefault(name, kind)
            if hosts.setdefault(host, (name, medium)) != (name, medium):
                raise ValueError(f"{host} is listed twice")
    for host, match in AD_SERVERS.items():
        hosts[host] = match
    for host in PLAIN_REFERRALS.split():
        hosts[host] = ("", REFERRAL)
    return hosts, default_medium, category


HOSTS, DEFAULT_MEDIUM, CATEGORY = _build()
PROVIDER_HOSTS = frozenset(PROVIDERS.split())
if max(key.partition("/")[0].count(".") + 1 for key in [*HOSTS, *PROVIDER_HOSTS]) > MAX_KEY_LABELS:
    raise ValueError("a table key has more labels than MAX_KEY_LABELS")
PROVIDER_PATHS = [tuple(page.split("/", 1)) for page in PROVIDER_PAGES.split()]
ALIASES = dict(pair.split("=", 1) for pair in ALIAS_PAIRS.split())
PROVIDER_APPS = frozenset({"com.paypal.android.p2pmobile", "com.venmo"})


def lookup(host: str, path: str = "") -> Match | None:
    """Source and medium of a referrer host (and path), or None when it is not known."""
    for key in candidates(host):
        for prefix_key in _PATH_KEYS.get(key, ()):
            if path.lower().startswith(prefix_key):
                return HOSTS[key + prefix_key]
        if key in HOSTS:
            return HOSTS[key]
    labels = host.removeprefix("www.").split(".")
    if (len(labels) >= 3 and WEBMAIL_LABEL.fullmatch(labels[0])) or WEBMAIL_PATH.match(path):
        return (brand(host), EMAIL)
    dereferrer = DEREFERRER.fullmatch(brand(host))
    if dereferrer:
        return (dereferrer[1], EMAIL)
    return None


def is_provider(host: str, path: str = "") -> bool:
    if any(key in PROVIDER_HOSTS for key in candidates(host)):
        return True
    bare = host.removeprefix("www.")
    lowered = path.lower().lstrip("/")
    return any(bare == h and lowered.startswith(prefix) for h, prefix in PROVIDER_PATHS)


def _path_keys() -> dict[str, tuple[str, ...]]:
    keys: dict[str, list[str]] = {}
    for entry in HOSTS:
        host, slash, path = entry.partition("/")
        if slash:
            keys.setdefault(host, []).append("/" + path)
    return {host: tuple(sorted(paths, key=len, reverse=True)) for host, paths in keys.items()}


_PATH_KEYS = _path_keys()
