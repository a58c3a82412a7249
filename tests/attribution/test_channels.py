from __future__ import annotations

import pytest

from attribution.channels import (
    Acquisition,
    channel_group,
    classify,
    classify_metadata,
    is_ignored_referrer,
)

OWN = ("example.com",)
SITE = "https://example.com/pricing"

# (landing URL, referrer, source, medium, channel); every case runs with own_domains=OWN.
CASES: list[tuple[str | None, str | None, str, str, str]] = [
    # Direct
    (None, None, "direct", "none", "Direct"),
    ("", "", "direct", "none", "Direct"),
    (SITE, None, "direct", "none", "Direct"),
    (SITE, "   ", "direct", "none", "Direct"),
    ("https://example.com/?utm_source=&utm_medium=", None, "direct", "none", "Direct"),
    (SITE + "?ref=", None, "direct", "none", "Direct"),
    # Search engines
    (SITE, "https://www.google.com/", "google", "organic", "Organic Search"),
    (SITE, "https://www.google.co.uk/", "google", "organic", "Organic Search"),
    (SITE, "https://www.google.com.au/search?q=x", "google", "organic", "Organic Search"),
    (SITE, "https://www.google.de/", "google", "organic", "Organic Search"),
    (SITE, "http://www.google.com.br/url?sa=t", "google", "organic", "Organic Search"),
    (SITE, "https://www.google.fr/imgres?imgurl=x", "google", "organic", "Organic Search"),
    (SITE, "https://images.google.com/", "google", "organic", "Organic Search"),
    (SITE, "https://google.co.jp/", "google", "organic", "Organic Search"),
    (SITE, "HTTPS://WWW.GOOGLE.COM/", "google", "organic", "Organic Search"),
    (SITE, "https://www.google.com:443/", "google", "organic", "Organic Search"),
    (SITE, "https://www.google.com./", "google", "organic", "Organic Search"),
    (SITE, "www.google.com", "google", "organic", "Organic Search"),
    (SITE, "https://www.bing.com/search?q=x", "bing", "organic", "Organic Search"),
    (SITE, "https://cn.bing.com/", "bing", "organic", "Organic Search"),
    (SITE, "https://search.yahoo.com/", "yahoo", "organic", "Organic Search"),
    (SITE, "https://uk.search.yahoo.com/search?p=x", "yahoo", "organic", "Organic Search"),
    (SITE, "https://search.yahoo.co.jp/search", "yahoo", "organic", "Organic Search"),
    (SITE, "https://duckduckgo.com/", "duckduckgo", "organic", "Organic Search"),
    (SITE, "https://html.duckduckgo.com/html", "duckduckgo", "organic", "Organic Search"),
    (SITE, "https://www.baidu.com/link?url=x", "baidu", "organic", "Organic Search"),
    (SITE, "https://m.baidu.com/", "baidu", "organic", "Organic Search"),
    (SITE, "https://yandex.ru/search/?text=x", "yandex", "organic", "Organic Search"),
    (SITE, "https://yandex.com.tr/", "yandex", "organic", "Organic Search"),
    (SITE, "https://ya.ru/", "yandex", "organic", "Organic Search"),
    (SITE, "https://www.ecosia.org/search?q=x", "ecosia", "organic", "Organic Search"),
    (SITE, "https://www.startpage.com/", "startpage", "organic", "Organic Search"),
    (SITE, "https://www.qwant.com/?q=x", "qwant", "organic", "Organic Search"),
    (SITE, "https://search.naver.com/search.naver", "naver", "organic", "Organic Search"),
    (SITE, "https://search.seznam.cz/", "seznam", "organic", "Organic Search"),
    (SITE, "https://www.so.com/s?q=x", "so", "organic", "Organic Search"),
    (SITE, "https://www.sogou.com/web", "sogou", "organic", "Organic Search"),
    (SITE, "https://www.ask.com/web?q=x", "ask", "organic", "Organic Search"),
    (SITE, "https://search.aol.com/aol/search", "aol", "organic", "Organic Search"),
    (SITE, "https://search.brave.com/search?q=x", "brave", "organic", "Organic Search"),
    (SITE, "https://kagi.com/search?q=x", "kagi", "organic", "Organic Search"),
    (SITE, "https://www.mojeek.com/search", "mojeek", "organic", "Organic Search"),
    (SITE, "https://search.daum.net/search", "daum", "organic", "Organic Search"),
    # Social networks and video sites
    (SITE, "https://www.facebook.com/", "facebook", "social", "Organic Social"),
    (SITE, "https://m.facebook.com/story.php", "facebook", "social", "Organic Social"),
    (SITE, "https://l.facebook.com/l.php?u=x", "facebook", "social", "Organic Social"),
    (SITE, "https://lm.facebook.com/l.php?u=x", "facebook", "social", "Organic Social"),
    (SITE, "https://fb.com/", "facebook", "social", "Organic Social"),
    (SITE, "https://www.instagram.com/", "instagram", "social", "Organic Social"),
    (SITE, "https://l.instagram.com/?u=x", "instagram", "social", "Organic Social"),
    (SITE, "https://www.linkedin.com/feed/", "linkedin", "social", "Organic Social"),
    (SITE, "https://lnkd.in/abc", "linkedin", "social", "Organic Social"),
    (SITE, "https://x.com/someone/status/1", "twitter", "social", "Organic Social"),
    (SITE, "https://twitter.com/", "twitter", "social", "Organic Social"),
    (SITE, "https://mobile.twitter.com/", "twitter", "social", "Organic Social"),
    (SITE, "https://t.co/AbC123", "twitter", "social", "Organic Social"),
    (SITE, "https://www.reddit.com/r/python/", "reddit", "social", "Organic Social"),
    (SITE, "https://old.reddit.com/", "reddit", "social", "Organic Social"),
    (SITE, "https://out.reddit.com/t3_x", "reddit", "social", "Organic Social"),
    (SITE, "https://www.youtube.com/watch?v=1", "youtube", "social", "Organic Video"),
    (SITE, "https://m.youtube.com/", "youtube", "social", "Organic Video"),
    (SITE, "https://youtu.be/abc", "youtube", "social", "Organic Video"),
    (SITE, "https://vimeo.com/123", "vimeo", "social", "Organic Video"),
    (SITE, "https://www.twitch.tv/someone", "twitch", "social", "Organic Video"),
    (SITE, "https://www.tiktok.com/@someone", "tiktok", "social", "Organic Social"),
    (SITE, "https://www.pinterest.com/pin/1/", "pinterest", "social", "Organic Social"),
    (SITE, "https://www.pinterest.co.uk/", "pinterest", "social", "Organic Social"),
    (SITE, "https://pinterest.de/", "pinterest", "social", "Organic Social"),
    (SITE, "https://www.quora.com/q", "quora", "social", "Organic Social"),
    (SITE, "https://someone.tumblr.com/", "tumblr", "social", "Organic Social"),
    (SITE, "https://vk.com/", "vk", "social", "Organic Social"),
    (SITE, "https://weibo.com/", "weibo", "social", "Organic Social"),
    (SITE, "https://www.threads.net/@someone", "threads", "social", "Organic Social"),
    (SITE, "https://bsky.app/profile/someone", "bluesky", "social", "Organic Social"),
    (SITE, "https://mastodon.social/@someone", "mastodon", "social", "Organic Social"),
    (SITE, "https://news.ycombinator.com/item?id=1", "hackernews", "social", "Organic Social"),
    (SITE, "https://www.producthunt.com/posts/x", "producthunt", "social", "Organic Social"),
    (SITE, "https://discord.com/channels/1", "discord", "social", "Organic Social"),
    (SITE, "https://t.me/channel", "telegram", "social", "Organic Social"),
    (SITE, "https://web.whatsapp.com/", "whatsapp", "social", "Organic Social"),
    (SITE, "https://www.snapchat.com/", "snapchat", "social", "Organic Social"),
    (SITE, "https://medium.com/@someone/post", "medium", "social", "Organic Social"),
    (SITE, "https://app.slack.com/client/T1", "slack", "social", "Organic Social"),
    (SITE, "https://linktr.ee/someone", "linktree", "social", "Organic Social"),
    # Webmail
    (SITE, "https://mail.google.com/", "gmail", "email", "Email"),
    (SITE, "https://outlook.live.com/mail/0/", "outlook", "email", "Email"),
    (SITE, "https://outlook.office.com/mail/", "outlook", "email", "Email"),
    (SITE, "https://outlook.office365.com/owa/", "outlook", "email", "Email"),
    (SITE, "https://mail.yahoo.com/d/folders/1", "yahoo", "email", "Email"),
    (SITE, "https://us-mg5.mail.yahoo.com/neo/", "yahoo", "email", "Email"),
    (SITE, "https://mail.aol.com/webmail-std/", "aol", "email", "Email"),
    (SITE, "https://mail.proton.me/u/0/inbox", "proton", "email", "Email"),
    (SITE, "https://mail.yandex.ru/", "yandex", "email", "Email"),
    (SITE, "https://e.mail.ru/inbox/", "mailru", "email", "Email"),
    (SITE, "https://navigator.gmx.net/mail", "gmx", "email", "Email"),
    (SITE, "https://deref-gmx.net/mail/client/x/dereferrer/", "gmx", "email", "Email"),
    (SITE, "https://3c.web.de/mail/client/", "webde", "email", "Email"),
    (SITE, "https://mail.zoho.com/zm/", "zoho", "email", "Email"),
    (SITE, "https://www.icloud.com/mail/", "icloud", "email", "Email"),
    (SITE, "https://webmail.example-isp.net/", "example-isp", "email", "Email"),
    (SITE, "https://owa.corp-example.org/owa/", "corp-example", "email", "Email"),
    (SITE, "https://mailchi.mp/x/newsletter", "mailchimp", "email", "Email"),
    # AI assistants
    (SITE, "https://chatgpt.com/", "chatgpt", "ai", "AI"),
    (SITE, "https://chat.openai.com/c/1", "chatgpt", "ai", "AI"),
    (SITE, "https://www.perplexity.ai/search/x", "perplexity", "ai", "AI"),
    (SITE, "https://claude.ai/chat/1", "claude", "ai", "AI"),
    (SITE, "https://gemini.google.com/app", "gemini", "ai", "AI"),
    (SITE, "https://copilot.microsoft.com/", "copilot", "ai", "AI"),
    (SITE, "https://www.bing.com/chat?q=x", "copilot", "ai", "AI"),
    (SITE, "https://edgeservices.bing.com/edgesvc/chat", "copilot", "ai", "AI"),
    (SITE, "https://you.com/search?q=x", "you", "ai", "AI"),
    (SITE, "https://poe.com/", "poe", "ai", "AI"),
    (SITE, "https://chat.deepseek.com/", "deepseek", "ai", "AI"),
    (SITE, "https://chat.mistral.ai/chat", "mistral", "ai", "AI"),
    (SITE, "https://grok.com/", "grok", "ai", "AI"),
    (SITE, "https://www.meta.ai/", "metaai", "ai", "AI"),
    (SITE + "?utm_source=chatgpt.com", None, "chatgpt", "ai", "AI"),
    # Other referrers
    (SITE, "https://news.example.org/story", "news.example.org", "referral", "Referral"),
    (SITE, "https://www.example.org/", "example.org", "referral", "Referral"),
    (SITE, "https://github.com/someone/repo", "github.com", "referral", "Referral"),
    (SITE, "https://docs.google.com/document/d/1", "docs.google.com", "referral", "Referral"),
    (SITE, "https://news.yahoo.com/article", "news.yahoo.com", "referral", "Referral"),
    (SITE, "https://stackoverflow.com/q/1", "stackoverflow.com", "referral", "Referral"),
    (SITE, "http://192.168.1.1/", "192.168.1.1", "referral", "Referral"),
    (SITE, "http://localhost:3000/", "localhost", "referral", "Referral"),
    (SITE, "https://пример.рф/", "пример.рф", "referral", "Referral"),
    (SITE, "//news.example.org/x", "news.example.org", "referral", "Referral"),
    (SITE, "https://www.amazon.com/dp/1", "amazon", "referral", "Organic Shopping"),
    (SITE, "https://www.googleadservices.com/pagead/aclk", "google", "cpc", "Paid Search"),
    (SITE, "https://www.google.com/aclk?sa=l", "google", "cpc", "Paid Search"),
    (SITE, "https://tpc.googlesyndication.com/", "google", "display", "Display"),
    (SITE, "https://trc.taboola.com/", "taboola", "cpc", "Paid Other"),
    # Click ids
    (SITE + "?gclid=abc", None, "google", "cpc", "Paid Search"),
    (SITE + "?gbraid=abc", None, "google", "cpc", "Paid Search"),
    (SITE + "?wbraid=abc", None, "google", "cpc", "Paid Search"),
    (SITE + "?dclid=abc", None, "google", "cpc", "Paid Search"),
    (SITE + "?GCLID=abc", None, "google", "cpc", "Paid Search"),
    (SITE + "?gclid=abc", "https://www.youtube.com/", "google", "cpc", "Paid Search"),
    (SITE + "?gclid=", "https://www.google.com/", "google", "organic", "Organic Search"),
    (SITE + "?msclkid=abc", "https://www.bing.com/", "bing", "cpc", "Paid Search"),
    (SITE + "?yclid=abc", None, "yandex", "cpc", "Paid Search"),
    (SITE + "?fbclid=abc", None, "facebook", "social", "Organic Social"),
    (SITE + "?fbclid=abc", "https://l.instagram.com/", "instagram", "social", "Organic Social"),
    (SITE + "?fbclid=abc", "https://news.example.org/", "facebook", "social", "Organic Social"),
    (SITE + "?ttclid=abc", None, "tiktok", "paid_social", "Paid Social"),
    (SITE + "?twclid=abc", "https://t.co/x", "twitter", "paid_social", "Paid Social"),
    (SITE + "?li_fat_id=abc", None, "linkedin", "paid_social", "Paid Social"),
    (SITE + "?rdt_cid=abc", None, "reddit", "paid_social", "Paid Social"),
    (SITE + "?epik=abc", None, "pinterest", "paid_social", "Paid Social"),
    (SITE + "?ScCid=abc", None, "snapchat", "paid_social", "Paid Social"),
    (SITE + "?mc_cid=abc&mc_eid=def", None, "mailchimp", "email", "Email"),
    (SITE + "?irclickid=abc", None, "impact", "affiliate", "Affiliates"),
    (SITE + "?gclid=abc", "https://checkout.stripe.com/", "google", "cpc", "Paid Search"),
    # UTM parameters
    (SITE + "?utm_source=google&utm_medium=cpc", None, "google", "cpc", "Paid Search"),
    (SITE + "?utm_source=Google&utm_medium=CPC", None, "google", "cpc", "Paid Search"),
    (
        SITE + "?UTM_SOURCE=Facebook&UTM_MEDIUM=Paid_Social",
        None,
        "facebook",
        "paid_social",
        "Paid Social",
    ),
    (SITE + "?utm_source=facebook&utm_medium=cpc", None, "facebook", "cpc", "Paid Social"),
    (SITE + "?utm_source=bing&utm_medium=ppc", None, "bing", "ppc", "Paid Search"),
    (
        SITE + "?utm_source=duckduckgo&utm_medium=paidsearch",
        None,
        "duckduckgo",
        "paidsearch",
        "Paid Search",
    ),
    (
        SITE + "?utm_source=linkedin&utm_medium=retargeting",
        None,
        "linkedin",
        "retargeting",
        "Paid Social",
    ),
    (SITE + "?utm_source=youtube&utm_medium=cpc", None, "youtube", "cpc", "Paid Video"),
    (SITE + "?utm_source=amazon&utm_medium=cpc", None, "amazon", "cpc", "Paid Shopping"),
    (SITE + "?utm_source=taboola&utm_medium=cpc", None, "taboola", "cpc", "Paid Other"),
    (SITE + "?utm_source=adnet&utm_medium=display", None, "adnet", "display", "Display"),
    (SITE + "?utm_source=adnet&utm_medium=cpm", None, "adnet", "cpm", "Display"),
    (SITE + "?utm_source=adnet&utm_medium=banner", None, "adnet", "banner", "Display"),
    (SITE + "?utm_source=newsletter&utm_medium=email", None, "newsletter", "email", "Email"),
    (SITE + "?utm_source=newsletter&utm_medium=e-mail", None, "newsletter", "e-mail", "Email"),
    (SITE + "?utm_source=partner&utm_medium=affiliate", None, "partner", "affiliate", "Affiliates"),
    (SITE + "?utm_source=partner&utm_medium=referral", None, "partner", "referral", "Referral"),
    (SITE + "?utm_source=blog&utm_medium=link", None, "blog", "link", "Referral"),
    (SITE + "?utm_source=podcast&utm_medium=audio", None, "podcast", "audio", "Audio"),
    (SITE + "?utm_source=twilio&utm_medium=sms", None, "twilio", "sms", "SMS"),
    (
        SITE + "?utm_source=firebase&utm_medium=push",
        None,
        "firebase",
        "push",
        "Mobile Push Notifications",
    ),
    (
        SITE + "?utm_source=app&utm_medium=notification",
        None,
        "app",
        "notification",
        "Mobile Push Notifications",
    ),
    (
        SITE + "?utm_source=forum&utm_medium=social-network",
        None,
        "forum",
        "social-network",
        "Organic Social",
    ),
    (SITE + "?utm_source=reddit&utm_medium=sm", None, "reddit", "sm", "Organic Social"),
    (SITE + "?utm_source=partner&utm_medium=video", None, "partner", "video", "Organic Video"),
    (SITE + "?utm_source=foo&utm_medium=organic", None, "foo", "organic", "Organic Search"),
    (SITE + "?utm_source=foo&utm_medium=weird", None, "foo", "weird", "Unassigned"),
    (SITE + "?utm_source=(direct)&utm_medium=(none)", None, "(direct)", "(none)", "Direct"),
    (SITE + "?utm_source=chatgpt&utm_medium=referral", None, "chatgpt", "referral", "AI"),
    # utm_source alone: the medium the source is known for, else referral
    (SITE + "?utm_source=newsletter", None, "newsletter", "referral", "Referral"),
    (SITE + "?utm_source=google", None, "google", "organic", "Organic Search"),
    (SITE + "?utm_source=fb", None, "facebook", "social", "Organic Social"),
    (SITE + "?utm_source=x", None, "twitter", "social", "Organic Social"),
    (SITE + "?utm_source=l.facebook.com", None, "facebook", "social", "Organic Social"),
    (SITE + "?utm_source=perplexity", None, "perplexity", "ai", "AI"),
    (SITE + "?utm_source=gmail", None, "gmail", "email", "Email"),
    (SITE + "?utm_source=vimeo", None, "vimeo", "social", "Organic Video"),
    (SITE + "?utm_source=google&gclid=abc", None, "google", "cpc", "Paid Search"),
    (SITE + "?utm_source=&utm_source=bing", None, "bing", "organic", "Organic Search"),
    # utm_medium or utm_campaign without a source
    (SITE + "?utm_medium=email", None, "unknown", "email", "Email"),
    (SITE + "?utm_campaign=spring", None, "unknown", "none", "Unassigned"),
    (
        SITE + "?utm_medium=paid_social",
        "https://l.facebook.com/",
        "facebook",
        "paid_social",
        "Paid Social",
    ),
    # UTM beats the referrer, click ids and ref
    (
        SITE + "?utm_source=newsletter&utm_medium=email",
        "https://www.google.com/",
        "newsletter",
        "email",
        "Email",
    ),
    (SITE + "?utm_source=bing&utm_medium=cpc&gclid=abc", None, "bing", "cpc", "Paid Search"),
    (
        SITE + "?ref=producthunt&utm_source=newsletter&utm_medium=email",
        None,
        "newsletter",
        "email",
        "Email",
    ),
    (
        SITE + "?utm_source=partner&utm_medium=referral",
        "https://blog.example.com/",
        "partner",
        "referral",
        "Referral",
    ),
    ("https://example.com/#/?utm_source=bing&utm_medium=cpc", None, "bing", "cpc", "Paid Search"),
    (
        "https://example.com/?a=1&amp;utm_source=bing&amp;utm_medium=cpc",
        None,
        "bing",
        "cpc",
        "Paid Search",
    ),
    ("/pricing?utm_source=google&utm_medium=cpc", None, "google", "cpc", "Paid Search"),
    ("?utm_source=google&utm_medium=cpc", None, "google", "cpc", "Paid Search"),
    # ref / source / via
    (SITE + "?ref=producthunt", None, "producthunt", "social", "Organic Social"),
    (SITE + "?ref=hn", None, "hackernews", "social", "Organic Social"),
    (SITE + "?ref=news.ycombinator.com", None, "hackernews", "social", "Organic Social"),
    (SITE + "?REF=Twitter", None, "twitter", "social", "Organic Social"),
    (SITE + "?ref=ChatGPT", None, "chatgpt", "ai", "AI"),
    (SITE + "?ref=partner-blog", None, "partner-blog", "referral", "Referral"),
    (SITE + "?ref=https://www.example.org/post", None, "example.org", "referral", "Referral"),
    (SITE + "?source=google", None, "google", "organic", "Organic Search"),
    (SITE + "?via=john", None, "john", "referral", "Referral"),
    (SITE + "?ref=x", "https://www.google.com/", "twitter", "social", "Organic Social"),
    (SITE + "?ref=nav", "https://example.com/", "direct", "none", "Direct"),
    (SITE + "?ref=example.com", None, "direct", "none", "Direct"),
    # Self-referrals and payment or sign-in providers
    (SITE, "https://example.com/cart", "direct", "none", "Direct"),
    (SITE, "https://www.example.com/", "direct", "none", "Direct"),
    (SITE, "https://blog.example.com/post", "direct", "none", "Direct"),
    ("https://shop.test/thanks", "https://shop.test/cart", "direct", "none", "Direct"),
    (SITE, "https://checkout.stripe.com/c/pay/cs_1", "direct", "none", "Direct"),
    (SITE, "https://hooks.stripe.com/3d_secure", "direct", "none", "Direct"),
    (SITE, "https://www.paypal.com/checkoutnow?token=1", "direct", "none", "Direct"),
    (SITE, "https://www.paypal.de/", "direct", "none", "Direct"),
    (SITE, "https://www.sandbox.paypal.com/", "direct", "none", "Direct"),
    (SITE, "https://buy.paddle.com/checkout", "direct", "none", "Direct"),
    (SITE, "https://store.lemonsqueezy.com/checkout", "direct", "none", "Direct"),
    (SITE, "https://accounts.google.com/o/oauth2/auth", "direct", "none", "Direct"),
    (SITE, "https://accounts.google.co.uk/", "direct", "none", "Direct"),
    (SITE, "https://github.com/login/oauth/authorize", "direct", "none", "Direct"),
    (SITE, "https://appleid.apple.com/auth/authorize", "direct", "none", "Direct"),
    (SITE, "https://login.microsoftonline.com/common/", "direct", "none", "Direct"),
    (SITE, "android-app://com.paypal.android.p2pmobile", "direct", "none", "Direct"),
    (
        SITE + "?utm_source=google&utm_medium=cpc",
        "https://checkout.stripe.com/",
        "google",
        "cpc",
        "Paid Search",
    ),
    # android-app:// referrers
    (SITE, "android-app://com.google.android.gm", "gmail", "email", "Email"),
    (SITE, "ANDROID-APP://com.google.android.gm/", "gmail", "email", "Email"),
    (
        SITE,
        "android-app://com.google.android.googlequicksearchbox/https/www.google.com",
        "google",
        "organic",
        "Organic Search",
    ),
    (SITE, "android-app://com.facebook.katana", "facebook", "social", "Organic Social"),
    (SITE, "android-app://com.slack", "slack", "social", "Organic Social"),
    (SITE, "android-app://com.linkedin.android", "linkedin", "social", "Organic Social"),
    (SITE, "android-app://org.telegram.messenger", "telegram", "social", "Organic Social"),
    (SITE, "android-app://com.microsoft.office.outlook", "outlook", "email", "Email"),
    (SITE, "android-app://com.openai.chatgpt", "chatgpt", "ai", "AI"),
    (SITE, "android-app://com.example.reader", "com.example.reader", "referral", "Referral"),
    # Malformed input
    (SITE, "http://[::1", "direct", "none", "Direct"),
    ("http://[::1", None, "direct", "none", "Direct"),
    ("http://[::1?utm_source=x", "not a url", "direct", "none", "Direct"),
    ("not a url", "not a url", "direct", "none", "Direct"),
    (SITE, "about:blank", "direct", "none", "Direct"),
    (SITE, "file:///C:/page.html", "direct", "none", "Direct"),
    (SITE, "chrome-extension://abcdef/popup.html", "direct", "none", "Direct"),
    (SITE, "javascript:alert(1)", "direct", "none", "Direct"),
    (SITE, "https://", "direct", "none", "Direct"),
    (SITE, "http://exa mple.com/", "direct", "none", "Direct"),
    (SITE, "https://user:pass@news.example.org:8080/x", "news.example.org", "referral", "Referral"),
    (SITE, "http://[2001:db8::1]/page", "2001:db8::1", "referral", "Referral"),
]


@pytest.mark.parametrize(("landing", "referrer", "source", "medium", "channel"), CASES)
def test_classify(
    landing: str | None, referrer: str | None, source: str, medium: str, channel: str
) -> None:
    result = classify(landing, referrer, own_domains=OWN)
    assert (result.source, result.medium, result.channel) == (source, medium, channel)


def test_table_is_large_enough() -> None:
    assert len(CASES) >= 150


def test_campaign_term_and_content_are_kept_as_given() -> None:
    result = classify(
        SITE + "?utm_source=Google&utm_medium=cpc&utm_campaign=Spring%20Sale"
        "&utm_term=Running+Shoes&utm_content=Ad_B",
        "https://www.google.com/",
    )
    assert result == Acquisition(
        source="google",
        medium="cpc",
        channel="Paid Search",
        campaign="Spring Sale",
        term="Running Shoes",
        content="Ad_B",
        referrer_host="www.google.com",
    )


@pytest.mark.parametrize(
    ("query", "channel"),
    [
        ("utm_source=google&utm_medium=cpc&utm_campaign=Shopping_Q4", "Paid Shopping"),
        ("utm_source=google&utm_medium=cpc&utm_campaign=eshop", "Paid Shopping"),
        ("utm_source=google&utm_medium=cpc&utm_campaign=workshop", "Paid Search"),
        ("utm_source=partner&utm_medium=referral&utm_campaign=shop-launch", "Organic Shopping"),
        ("utm_source=google&utm_medium=cpc&utm_campaign=pmax-cross-network", "Cross-network"),
    ],
)
def test_campaign_decides_shopping_and_cross_network(query: str, channel: str) -> None:
    assert classify(f"{SITE}?{query}", None).channel == channel


def test_click_id_is_recorded_when_it_decided_the_source() -> None:
    assert classify(SITE + "?gclid=Cj0KCQ", None).click_id == "Cj0KCQ"
    assert classify(SITE + "?msclkid=m1&fbclid=f1", None).click_id == "m1"
    assert classify(SITE + "?utm_source=google&gclid=Cj0KCQ", None).click_id is None
    assert classify(SITE + "?gclid=" + "x" * 1000, None).click_id == "x" * 255


def test_referrer_host_is_kept_whatever_decided_the_source() -> None:
    result = classify(SITE + "?utm_source=newsletter", "https://Blog.Example.COM:8443/x")
    assert result.referrer_host == "blog.example.com"
    assert classify(SITE, None).referrer_host is None


def test_own_domains_accept_urls_and_www() -> None:
    for own in ("https://www.example.com/", "EXAMPLE.com", ".example.com", "www.example.com"):
        result = classify(None, "https://app.example.com/x", own_domains=[own])
        assert result.source == "direct", own


def test_landing_host_counts_as_own_domain() -> None:
    assert classify("https://shop.test/", "https://shop.test/cart").source == "direct"
    assert classify(None, "https://shop.test/cart").source == "shop.test"


GARBAGE = [
    None,
    "",
    " ",
    "http://",
    "http://[::1",
    "http://[::1]:99999/",
    "https://exa%mple.com/",
    "http://host:port/",
    "not a url",
    "::::",
    "?",
    "#",
    "&&&===",
    "utm_source",
    "?utm_source=%FF%FE&utm_medium=%00",
    "http://" + "a" * 50_000 + ".com/",
    "https://example.com/?" + "&".join(f"k{i}=v" for i in range(5000)),
    "https://example.com/?utm_source=" + "g" * 10_000,
    "HTTP://WWW.GOOGLE.COM/",
    "https://\uff47\uff4f\uff4f\uff47\uff4c\uff45.com/",  # fullwidth "google"
    "https://例え.テスト/パス?ref=テスト",
    "android-app://",
    "android-app:///",
    "ios-app://123/https/example.org",
    "data:text/html,hello",
    "\x00\x01\x02",
    "http://\u2100.com",
    "https://www.google.com/search?q=" + "%" * 100,
]


@pytest.mark.parametrize("landing", GARBAGE)
@pytest.mark.parametrize("referrer", GARBAGE)
def test_never_raises(landing: str | None, referrer: str | None) -> None:
    result = classify(landing, referrer, own_domains=["example.com", "", "http://[::1"])
    assert result.source
    assert result.medium
    assert result.channel in CHANNELS
    assert len(result.source) <= 16_384
    assert isinstance(is_ignored_referrer(referrer, ["example.com"]), bool)


CHANNELS = {
    "Direct",
    "Organic Search",
    "Paid Search",
    "Organic Social",
    "Paid Social",
    "Email",
    "Referral",
    "Display",
    "Affiliates",
    "AI",
    "Organic Video",
    "Paid Video",
    "Paid Other",
    "Cross-network",
    "Organic Shopping",
    "Paid Shopping",
    "SMS",
    "Audio",
    "Mobile Push Notifications",
    "Unassigned",
}


@pytest.mark.parametrize(
    ("referrer", "own_domains", "ignored"),
    [
        ("https://checkout.stripe.com/c/pay/cs_test_1", (), True),
        ("https://billing.stripe.com/p/session/1", (), True),
        ("https://www.paypal.com/webapps/hermes", (), True),
        ("https://paypal.me/someone", (), True),
        ("https://checkout.paddle.com/checkout", (), True),
        ("https://sandbox-buy.paddle.com/", (), True),
        ("https://mystore.lemonsqueezy.com/checkout/buy/1", (), True),
        ("https://accounts.google.com/signin", (), True),
        ("https://accounts.google.de/", (), True),
        ("https://appleid.apple.com/", (), True),
        ("https://login.microsoftonline.com/", (), True),
        ("https://acme.us.auth0.com/authorize", (), True),
        ("https://github.com/login/oauth/authorize?client_id=1", (), True),
        ("https://www.linkedin.com/oauth/v2/authorization", (), True),
        ("https://example.com/cart", ("example.com",), True),
        ("https://app.example.com/", ("example.com",), True),
        ("https://www.example.com/", ("https://www.example.com",), True),
        ("https://app.example.com/", ("www.example.com",), True),
        ("HTTPS://EXAMPLE.COM/", ("Example.com",), True),
        ("android-app://com.paypal.android.p2pmobile", (), True),
        ("https://notexample.com/", ("example.com",), False),
        ("https://example.com.evil.net/", ("example.com",), False),
        ("https://github.com/someone/repo", (), False),
        ("https://www.google.com/", (), False),
        ("https://mail.google.com/", (), False),
        ("https://stripe-fan.blog/", (), False),
        ("android-app://com.google.android.gm", ("example.com",), False),
        (None, ("example.com",), False),
        ("", (), False),
        ("not a url", ("example.com",), False),
        ("http://[::1", ("example.com",), False),
    ],
)
def test_is_ignored_referrer(
    referrer: str | None, own_domains: tuple[str, ...], ignored: bool
) -> None:
    assert is_ignored_referrer(referrer, own_domains) is ignored


@pytest.mark.parametrize(
    ("source", "medium", "campaign", "channel"),
    [
        ("direct", "none", None, "Direct"),
        ("(direct)", "(none)", None, "Direct"),
        ("(direct)", "(not set)", None, "Direct"),
        ("direct", "referral", None, "Referral"),
        ("google", "cpc", "Brand Cross-Network", "Cross-network"),
        ("google", "cpc", "summer_shopping", "Paid Shopping"),
        ("ebay", "paid", None, "Paid Shopping"),
        ("google", "cpc", None, "Paid Search"),
        ("Google", " CPC ", None, "Paid Search"),
        ("google.com", "paid_search", None, "Paid Search"),
        ("bing", "ppc", None, "Paid Search"),
        ("facebook", "paid_social", None, "Paid Social"),
        ("m.facebook.com", "cpc", None, "Paid Social"),
        ("ig", "paid", None, "Paid Social"),
        ("youtube", "cpv", None, "Paid Video"),
        ("dv360", "display", None, "Display"),
        ("dv360", "interstitial", None, "Display"),
        ("dv360", "expandable", None, "Display"),
        ("facebook", "cpm", None, "Paid Social"),
        ("criteo", "retargeting", None, "Paid Other"),
        ("gmail", "email", None, "Email"),
        ("yahoo", "email", None, "Email"),
        ("newsletter", "e_mail", None, "Email"),
        ("newsletter", "e mail", None, "Email"),
        ("email", "(not set)", None, "Email"),
        ("chatgpt", "ai", None, "AI"),
        ("claude.ai", "referral", None, "AI"),
        ("newsletter", "ai", None, "AI"),
        ("amazon", "referral", None, "Organic Shopping"),
        ("partner", "referral", "Black Friday Shop", "Organic Shopping"),
        ("facebook", "social", None, "Organic Social"),
        ("linkedin", "referral", None, "Organic Social"),
        ("forum", "social media", None, "Organic Social"),
        ("forum", "social network", None, "Organic Social"),
        ("forum", "social-media", None, "Organic Social"),
        ("youtube", "social", None, "Organic Video"),
        ("youtube.com", "referral", None, "Organic Video"),
        ("partner", "video_embed", None, "Organic Video"),
        ("google", "organic", None, "Organic Search"),
        ("duckduckgo", "referral", None, "Organic Search"),
        ("unknown", "organic", None, "Organic Search"),
        ("blog.example.org", "referral", None, "Referral"),
        ("partner", "app", None, "Referral"),
        ("partner", "affiliate", None, "Affiliates"),
        ("spotify", "audio", None, "Audio"),
        ("sms", "text", None, "SMS"),
        ("braze", "sms", None, "SMS"),
        ("braze", "web_push", None, "Mobile Push Notifications"),
        ("braze", "mobile", None, "Mobile Push Notifications"),
        ("firebase", "inapp", None, "Mobile Push Notifications"),
        ("foo", "bar", None, "Unassigned"),
        ("", "", None, "Unassigned"),
    ],
)
def test_channel_group(source: str, medium: str, campaign: str | None, channel: str) -> None:
    assert channel_group(source, medium, campaign) == channel


def test_classify_metadata_with_utm() -> None:
    result = classify_metadata(
        {"utm_source": "Newsletter", "utm_medium": "Email", "utm_campaign": "April"}
    )
    assert result == Acquisition(
        source="newsletter", medium="email", channel="Email", campaign="April"
    )


def test_classify_metadata_with_referrer_and_landing_url() -> None:
    result = classify_metadata(
        {
            "referrer": "https://www.google.com/",
            "landing_url": "https://example.com/pricing?utm_campaign=spring",
            "plan": "pro",
        }
    )
    assert result is not None
    assert (result.source, result.medium, result.channel) == ("google", "organic", "Organic Search")
    assert result.campaign == "spring"


def test_classify_metadata_utm_keys_win_over_landing_url() -> None:
    result = classify_metadata(
        {
            "utm_source": "partner",
            "landing_url": "https://example.com/?utm_source=google&utm_medium=cpc",
        }
    )
    assert result is not None
    assert (result.source, result.medium, result.channel) == ("partner", "cpc", "Paid Other")


def test_classify_metadata_ignores_non_strings_and_blanks() -> None:
    result = classify_metadata({"utm_source": 42, "utm_medium": None, "referrer": "https://t.co/x"})
    assert result is not None
    assert (result.source, result.medium) == ("twitter", "social")
    assert classify_metadata({"utm_source": ["google"], "utm_medium": {"a": 1}}) is None
    assert classify_metadata({"utm_source": "", "referrer": "   "}) is None


def test_classify_metadata_none_without_acquisition_keys() -> None:
    assert classify_metadata({}) is None
    assert classify_metadata({"order_id": "123", "user_id": "u_1"}) is None


def test_classify_metadata_self_referral_is_direct() -> None:
    result = classify_metadata(
        {"referrer": "https://example.com/checkout", "landing_url": "https://example.com/"}
    )
    assert result is not None
    assert (result.source, result.medium, result.channel) == ("direct", "none", "Direct")
    provider = classify_metadata({"referrer": "https://checkout.stripe.com/"}, own_domains=OWN)
    assert provider is not None
    assert provider.source == "direct"


def test_classify_metadata_keys_are_case_insensitive() -> None:
    result = classify_metadata({"UTM_SOURCE": "Bing", "Utm_Medium": "CPC"})
    assert result is not None
    assert (result.source, result.medium, result.channel) == ("bing", "cpc", "Paid Search")


def test_acquisition_is_frozen() -> None:
    result = classify(None, None)
    with pytest.raises(AttributeError):
        result.source = "google"  # type: ignore[misc]
