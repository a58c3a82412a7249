/*! Metrivo tracker: <script defer src="https://HOST/js/metrivo.js" data-key="pk_..."></script>
 * data-api="https://..." sends elsewhere than the script's origin. Contract: design.md section 3. */
(() => {
  "use strict";
  const w = window, d = document, VID = "metrivo_vid", SID = "metrivo_sid", IGN = "metrivo_ignore";
  const YEAR = 31536e6, IDLE = 18e5; // ms: visitor id lifetime, session inactivity limit
  const UTM = ["utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content"];
  const UUID = /^[\da-f]{8}(-[\da-f]{4}){3}-[\da-f]{12}$/i;
  if (w.Metrivo && w.Metrivo.getVisitorId) return; // included twice

  // Storage never throws (Safari private mode, blocked cookies, sandboxed frames).
  const json = (text) => { try { return JSON.parse(text); } catch (e) { return null; } };
  const local = (k, v) => {
    try {
      const s = w.localStorage;
      if (v === undefined) return json(s.getItem(k));
      v === null ? s.removeItem(k) : s.setItem(k, JSON.stringify(v));
      return 1;
    } catch (e) { return null; }
  };
  const cookie = (k, v, seconds) => {
    try {
      if (v === undefined) {
        const m = d.cookie.match("(?:^|; )" + k + "=([^;]*)");
        return m && decodeURIComponent(m[1]);
      }
      d.cookie = k + "=" + encodeURIComponent(v) + "; max-age=" + seconds + "; path=/; SameSite=Lax" +
        (location.protocol == "https:" ? "; Secure" : "");
    } catch (e) {}
  };

  const uuid = () => {
    const c = w.crypto;
    if (c.randomUUID) return c.randomUUID();
    const b = c.getRandomValues(new Uint8Array(16));
    b[6] = b[6] & 15 | 64; // version 4
    b[8] = b[8] & 63 | 128; // RFC 4122 variant
    return Array.from(b, (x) => (x | 256).toString(16).slice(1)).join("")
      .replace(/^(.{8})(.{4})(.{4})(.{4})/, "$1-$2-$3-$4-");
  };

  // Visitor id: localStorage {id, exp}, with a plain-id cookie as fallback; one year, renewed on visit.
  const visitor = () => {
    const now = Date.now(), v = local(VID);
    let id = v && v.exp > now && v.id;
    if (!UUID.test(id)) id = cookie(VID);
    if (!UUID.test(id)) id = uuid();
    local(VID, { id, exp: now + YEAR });
    cookie(VID, id, YEAR / 1e3);
    return id;
  };

  // Session: localStorage {id, last, landing_url, referrer, utm_*}; new after 30 idle minutes.
  let ref = d.referrer || null, href, path, mem, key, api, vid, skip;
  const session = (touch) => {
    const now = Date.now();
    let s = local(SID) || mem || json(cookie(SID));
    if (!s || !UUID.test(s.id) || !(now - s.last <= IDLE)) {
      const q = new URLSearchParams(location.search);
      s = { id: uuid(), last: now, landing_url: location.href, referrer: ref };
      for (const k of UTM) if (q.get(k)) s[k] = q.get(k);
      touch = 1;
    }
    if (touch) {
      s.last = now;
      mem = s;
      local(SID, s) || cookie(SID, JSON.stringify(s), IDLE / 1e3);
    }
    return s;
  };

  const off = () => !key || skip || local(IGN) === 1; // ?metrivo_ignore=true: the owner's browsing
  // `again`: an identify sent before this visit's first page view was stored gets 409
  // (unknown visitor); it is sent once more a moment later.
  const send = (route, body, again) => {
    if (off()) return;
    const url = api + route, data = JSON.stringify(body);
    try {
      fetch(url, {
        method: "POST", body: data, keepalive: true, credentials: "omit", mode: "cors",
        headers: { "Content-Type": "application/json" },
      }).then((r) => { if (again && r.status == 409) setTimeout(() => send(route, body), 1500); })
        .catch(() => {});
    } catch (e) {
      try { navigator.sendBeacon(url, new Blob([data], { type: "text/plain" })); } catch (e2) {}
    }
  };
  const hit = (type, name, properties) => off() || send("/api/track", {
    publicKey: key, visitorId: vid, sessionId: session(1).id, type,
    url: location.href, referrer: ref, name, properties,
  });
  const pageview = () => {
    path = location.pathname + location.search;
    href = location.href;
    hit("pageview");
  };
  const navigated = () => {
    try {
      if (location.pathname + location.search == path) return;
      ref = href; // an SPA page's referrer is the previous in-page URL
      pageview();
    } catch (e) {}
  };
  const object = (p) => (p && typeof p == "object" && !Array.isArray(p) ? p : undefined);

  const M = {
    getVisitorId: () => vid,
    getSessionId: () => session().id,
    identify(who, properties) {
      if (typeof who == "number") who = String(who);
      if (typeof who != "string" || !(who = who.trim())) return;
      send("/api/identify", {
        publicKey: key, visitorId: vid, [who.includes("@") ? "email" : "userId"]: who,
        properties: object(properties),
      }, 1);
    },
    track(name, properties) {
      if (typeof name == "string" && name.trim()) hit("event", name.trim(), object(properties));
    },
    getAttributionMetadata() {
      const s = session();
      const m = { metrivo_visitor_id: vid, metrivo_session_id: s.id, landing_url: s.landing_url,
        referrer: s.referrer };
      for (const k of UTM) if (s[k]) m[k] = s[k];
      return m;
    },
    push(call) { M[call[0]].apply(M, [].slice.call(call, 1)); },
  };
  for (const k in M) {
    const f = M[k];
    M[k] = function () { try { return f.apply(M, arguments); } catch (e) {} };
  }

  try {
    const el = d.currentScript || d.querySelector("script[data-key]");
    key = el.getAttribute("data-key");
    api = (el.getAttribute("data-api") || new URL(el.src, location.href).origin).replace(/\/+$/, "");
    if (!key) console.warn('Metrivo: add data-key="pk_..." to the metrivo.js script tag');
    const ignore = new URLSearchParams(location.search).get(IGN);
    skip = ignore == "true";
    if (skip) local(IGN, 1);
    else if (ignore == "false") local(IGN, null);
    vid = visitor();
    const queue = w.Metrivo;
    w.Metrivo = M;
    for (const m of ["pushState", "replaceState"]) {
      const original = history[m];
      history[m] = function () {
        const result = original.apply(this, arguments);
        navigated();
        return result;
      };
    }
    w.addEventListener("popstate", navigated);
    pageview();
    if (queue && queue.length) Array.from(queue).forEach(M.push);
  } catch (e) {}
})();
