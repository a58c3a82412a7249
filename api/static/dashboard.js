/* Metrivo dashboard: plain DOM and SVG, no dependencies, no innerHTML with data.
 * The secret key lives only in sessionStorage ("metrivo_key"). Contract: design.md section 3. */
(() => {
  "use strict";
  const KEY = "metrivo_key", SITE = "metrivo_website";
  const SVG = "http://www.w3.org/2000/svg";
  const GROUPS = {
    source: "Source", medium: "Medium", campaign: "Campaign", channel: "Channel",
    landing_page: "Landing page", confidence: "Confidence",
  };
  const CONFIDENCE = ["high", "medium", "low", "unknown", "pending"];
  const PAYMENTS_SHOWN = 10;
  const TOP = 5;

  const $ = (id) => document.getElementById(id);
  const state = {
    key: null, websites: [], site: null, from: "", to: "", group: "source", currency: null,
    reports: {}, payments: [], generation: 0, loadingAll: false,
  };

  // ---- DOM helpers ---------------------------------------------------------------------------
  const el = (tag, props, ...children) => {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (name === "class") node.className = value;
      else if (name === "text") node.textContent = value;
      else node.setAttribute(name, value);
    }
    for (const child of children) {
      if (child !== null && child !== undefined) node.append(child);
    }
    return node;
  };
  const svgEl = (tag, attrs, text) => {
    const node = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, String(value));
    if (text !== undefined) node.textContent = text;
    return node;
  };
  const titled = (node, text) => { node.append(svgEl("title", {}, text)); return node; };

  // ---- Formatting ----------------------------------------------------------------------------
  const formats = new Map();
  const format = (options) => {
    const id = JSON.stringify(options);
    if (!formats.has(id)) formats.set(id, new Intl.NumberFormat(undefined, options));
    return formats.get(id);
  };
  const money = (amount, currency, options) => {
    if (!currency) return count(amount);
    try {
      return format({ style: "currency", currency, ...options }).format(amount);
    } catch (e) {
      return count(amount) + " " + currency;
    }
  };
  const shortMoney = (amount, currency) =>
    money(amount, currency, { notation: "compact", maximumFractionDigits: 1 });
  const count = (n) => (n === null || n === undefined ? "—" : format({}).format(n));
  const percent = (ratio) => {
    if (ratio === null || ratio === undefined) return "—";
    const digits = ratio > 0 && ratio < 0.01 ? 2 : 1;
    return format({ style: "percent", minimumFractionDigits: 1, maximumFractionDigits: digits }).format(ratio);
  };
  const share = (ratio) => {
    if (ratio > 0 && ratio < 0.01) return "<1%";
    return format({ style: "percent", maximumFractionDigits: 0 }).format(ratio);
  };
  const amountIn = (map, currency) => {
    const value = map && currency ? Number(map[currency]) : 0;
    return Number.isFinite(value) ? value : 0;
  };
  const shortId = (id, length) => (id ? String(id).slice(0, length) + "…" : "—");
  const capitalize = (text) => text.charAt(0).toUpperCase() + text.slice(1);

  const timezone = () => (state.site && state.site.timezone) || "UTC";
  const dateParts = (date, timeZone) => {
    const parts = {};
    const formatter = new Intl.DateTimeFormat("en-CA", {
      timeZone, year: "numeric", month: "2-digit", day: "2-digit",
    });
    for (const part of formatter.formatToParts(date)) parts[part.type] = part.value;
    return parts.year + "-" + parts.month + "-" + parts.day;
  };
  const today = () => {
    try {
      return dateParts(new Date(), timezone());
    } catch (e) {
      return dateParts(new Date(), "UTC");
    }
  };
  const addDays = (iso, days) => {
    const date = new Date(iso + "T00:00:00Z");
    date.setUTCDate(date.getUTCDate() + days);
    return date.toISOString().slice(0, 10);
  };
  const dayLabel = (iso, withYear) => new Intl.DateTimeFormat(undefined, {
    month: "short", day: "numeric", year: withYear ? "numeric" : undefined, timeZone: "UTC",
  }).format(new Date(iso + "T00:00:00Z"));
  const paidAt = (iso) => {
    if (!iso) return "—";
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return String(iso);
    const options = { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" };
    try {
      return new Intl.DateTimeFormat(undefined, { ...options, timeZone: timezone() }).format(date);
    } catch (e) {
      return new Intl.DateTimeFormat(undefined, options).format(date);
    }
  };

  // ---- API -----------------------------------------------------------------------------------
  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  const api = async (path, params, as) => {
    const url = params ? path + "?" + new URLSearchParams(params) : path;
    let response;
    try {
      response = await fetch(url, { headers: { Authorization: "Bearer " + state.key } });
    } catch (e) {
      throw new ApiError(0, "network", "Metrivo could not be reached. Check your connection and try again.");
    }
    if (!response.ok) {
      let error = {};
      try {
        error = ((await response.json()) || {}).error || {};
      } catch (e) { /* not JSON: keep the status text */ }
      throw new ApiError(response.status, error.code || "http_" + response.status,
        error.message || response.statusText || "Request failed.");
    }
    return as === "blob" ? response.blob() : response.json();
  };

  const revenueParams = (groupBy, extra) => ({
    website_id: state.site.id, from: state.from, to: state.to, group_by: groupBy, ...extra,
  });
  const fetchRevenue = (groupBy) => api("/api/reports/revenue", revenueParams(groupBy));

  // ---- Sign in / out -------------------------------------------------------------------------
  const setState = (name) => { $("app").dataset.state = name; };

  const signInMessage = (error) => {
    if (error.status === 401) {
      return "That key was not accepted (401): it is unknown or revoked. Paste the whole secret key.";
    }
    if (error.status === 403) {
      return "This key is valid but not allowed here (403). Use a key with the reports:read scope.";
    }
    return error.message;
  };

  const showSignIn = (message) => {
    setState("signed-out");
    $("dashboard").hidden = true;
    const box = $("signin-error");
    box.textContent = message || "";
    box.hidden = !message;
    $("key-input").focus();
  };

  const signIn = async (key) => {
    state.key = key;
    const button = $("signin-submit");
    button.disabled = true;
    button.textContent = "Signing in…";
    let body;
    try {
      body = await api("/api/websites");
    } catch (error) {
      state.key = null;
      if (error.status === 401 || error.status === 403) sessionStorage.removeItem(KEY);
      showSignIn(signInMessage(error));
      return;
    } finally {
      button.disabled = false;
      button.textContent = "Sign in";
    }
    sessionStorage.setItem(KEY, key);
    $("key-input").value = "";
    $("signin-error").hidden = true;
    state.websites = body.websites || [];
    fillWebsites();
    $("dashboard").hidden = false;
    if (!state.websites.length) {
      setState("error");
      showStatus("This key is not authorized for any website. Create a key for your website with the reports:read scope.", true);
      return;
    }
    selectWebsite(sessionStorage.getItem(SITE));
    setRange(30);
    loadAll();
  };

  const signOut = (message) => {
    sessionStorage.removeItem(KEY);
    sessionStorage.removeItem(SITE);
    state.key = null;
    state.generation += 1; // drop answers still in flight
    state.loadingAll = false;
    state.reports = {};
    state.payments = [];
    state.currency = null;
    clearRendered();
    showSignIn(message);
  };

  const showStatus = (message, isError) => {
    const box = $("status");
    box.textContent = message || "";
    box.hidden = !message;
    box.classList.toggle("message-error", Boolean(isError));
  };

  const failed = (error) => {
    if (error.status === 401) {
      signOut("Your key is no longer accepted (401): it may have been revoked. Sign in again.");
      return;
    }
    setState("error");
    if (error.status === 403) {
      showStatus("This key cannot read reports for this website (403). It needs the reports:read scope " +
        "and access to this website.", true);
    } else {
      showStatus("Could not load the report: " + error.message, true);
    }
  };

  // ---- Controls ------------------------------------------------------------------------------
  const fillWebsites = () => {
    const select = $("website");
    select.replaceChildren(...state.websites.map((site) => el("option", { value: site.id, text: site.name })));
  };

  const selectWebsite = (id) => {
    state.site = state.websites.find((site) => site.id === id) || state.websites[0];
    $("website").value = state.site.id;
    sessionStorage.setItem(SITE, state.site.id);
    $("payments-time-heading").textContent = "Time (" + timezone() + ")";
    syncRangeInputs();
  };

  const setRange = (days) => {
    state.to = today();
    state.from = addDays(state.to, -(days - 1));
    syncRangeInputs();
  };

  const syncRangeInputs = () => {
    $("from").value = state.from;
    $("to").value = state.to;
    $("from").max = state.to;
    $("to").min = state.from;
    $("to").max = today();
    const end = today();
    for (const button of document.querySelectorAll("[data-range]")) {
      const days = Number(button.dataset.range);
      const active = state.to === end && state.from === addDays(end, -(days - 1));
      button.setAttribute("aria-pressed", String(active));
    }
  };

  const syncGroupButtons = () => {
    for (const button of document.querySelectorAll("[data-group-by]")) {
      button.setAttribute("aria-pressed", String(button.dataset.groupBy === state.group));
    }
    $("group-title").textContent = "Revenue by " + GROUPS[state.group].toLowerCase();
    $("group-key-heading").textContent = GROUPS[state.group];
  };

  const chooseCurrency = () => {
    const report = state.reports.source;
    const currencies = (report && report.currencies) || [];
    if (!currencies.includes(state.currency)) {
      const revenue = (report && report.totals.revenue) || {};
      state.currency = currencies.reduce(
        (best, c) => (best === null || amountIn(revenue, c) > amountIn(revenue, best) ? c : best), null);
    }
    const select = $("currency");
    select.replaceChildren(...currencies.map((c) => el("option", { value: c, text: c })));
    if (!currencies.length) select.append(el("option", { value: "", text: "—" }));
    select.value = state.currency || "";
    select.disabled = !currencies.length;
  };

  // ---- Loading -------------------------------------------------------------------------------
  const loadAll = async () => {
    const generation = ++state.generation;
    state.loadingAll = true;
    setState("loading");
    showStatus("");
    const groups = [...new Set([state.group, "source", "day", "confidence", "campaign", "landing_page"])];
    try {
      const [reports, payments] = await Promise.all([
        Promise.all(groups.map(fetchRevenue)),
        api("/api/reports/payments", { website_id: state.site.id, limit: PAYMENTS_SHOWN }),
      ]);
      if (generation !== state.generation) return;
      state.reports = Object.fromEntries(groups.map((g, i) => [g, reports[i]]));
      state.payments = payments.payments || [];
      chooseCurrency();
      render();
      setState("ready");
    } catch (error) {
      if (generation === state.generation) failed(error);
    } finally {
      if (generation === state.generation) state.loadingAll = false;
    }
  };

  const loadGroup = async () => {
    const generation = ++state.generation;
    setState("loading");
    showStatus("");
    try {
      const report = await fetchRevenue(state.group);
      if (generation !== state.generation) return;
      state.reports[state.group] = report;
      renderGroup();
      setState("ready");
    } catch (error) {
      if (generation === state.generation) failed(error);
    }
  };

  const downloadCsv = async () => {
    const button = $("download-csv");
    button.disabled = true;
    button.textContent = "Preparing…";
    try {
      const blob = await api("/api/reports/revenue", revenueParams(state.group, { format: "csv" }), "blob");
      const url = URL.createObjectURL(blob);
      const link = el("a", {
        href: url, download: "metrivo-revenue-" + state.group + "-" + state.from + "-" + state.to + ".csv",
      });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    } catch (error) {
      failed(error);
    } finally {
      button.disabled = false;
      button.textContent = "Download CSV";
    }
  };

  // ---- Rendering -----------------------------------------------------------------------------
  const render = () => {
    renderTotals();
    renderDays();
    renderGroup();
    renderConfidence();
    renderTop("top-campaigns", state.reports.campaign, "No campaign revenue in this range.");
    renderTop("top-landing-pages", state.reports.landing_page, "No landing page revenue in this range.");
    renderPayments();
  };

  const clearRendered = () => {
    for (const id of ["total-revenue", "total-payments", "total-paying-visitors", "total-visitors",
      "total-conversion-rate", "unattributed-share"]) {
      $(id).textContent = "—";
      delete $(id).dataset.value;
    }
    for (const id of ["total-revenue-detail", "total-refunds", "unattributed-detail", "days-summary"]) {
      $(id).textContent = "";
    }
    for (const id of ["day-chart", "group-chart", "confidence-bar", "confidence-legend"]) {
      $(id).replaceChildren();
    }
    for (const id of ["group-table", "top-campaigns", "top-landing-pages"]) {
      $(id).tBodies[0].replaceChildren();
    }
    $("group-table").tFoot.replaceChildren();
    for (const body of [...$("payments").tBodies]) body.remove();
    $("website").replaceChildren();
    $("currency").replaceChildren();
    showStatus("");
  };

  const setValue = (id, text, value) => {
    const node = $(id);
    node.textContent = text;
    if (value === null || value === undefined) delete node.dataset.value;
    else node.dataset.value = String(value);
  };

  const renderTotals = () => {
    const report = state.reports.source;
    const totals = report.totals;
    const currency = state.currency;
    const revenue = amountIn(totals.revenue, currency);
    setValue("total-revenue", currency ? money(revenue, currency) : "—", currency ? revenue : null);
    $("total-revenue").dataset.currency = currency || "";
    const refunded = amountIn(totals.refunded, currency);
    $("total-revenue-detail").textContent = !currency ? "No payments in this range"
      : money(amountIn(totals.gross, currency), currency) + " gross" +
        (refunded ? " · " + money(refunded, currency) + " refunded" : "");
    setValue("total-payments", count(totals.payments), totals.payments);
    $("total-refunds").textContent = totals.refunds ? count(totals.refunds) + " refunded" : "";
    setValue("total-paying-visitors", count(totals.paying_visitors), totals.paying_visitors);
    setValue("total-visitors", count(totals.visitors), totals.visitors);
    setValue("total-conversion-rate", percent(totals.conversion_rate), totals.conversion_rate);

    const unattributed = report.rows.find((row) => row.unattributed);
    const missing = unattributed ? amountIn(unattributed.revenue, currency) : 0;
    const ratio = revenue > 0 ? Math.max(0, missing) / revenue : 0;
    const node = $("unattributed-share");
    setValue("unattributed-share", "—", currency ? ratio : null);
    if (currency) {
      node.replaceChildren(el("span", { class: "figure", text: share(ratio) }),
        el("span", { class: "unit", text: " unattributed" }));
    }
    node.classList.toggle("is-notable", ratio >= 0.2);
    $("unattributed-detail").textContent = !currency ? ""
      : missing ? money(missing, currency) + " of revenue came with no known source"
        : "Every payment has a source";
  };

  const chartWidth = (container) => Math.max(260, Math.floor(container.clientWidth || 600));

  const niceStep = (span, ticks) => {
    const raw = span / ticks;
    const power = Math.pow(10, Math.floor(Math.log10(raw)));
    const fraction = raw / power;
    return (fraction <= 1 ? 1 : fraction <= 2 ? 2 : fraction <= 5 ? 5 : 10) * power;
  };

  const renderDays = () => {
    const container = $("day-chart");
    const report = state.reports.day;
    const currency = state.currency;
    const rows = report.rows;
    const values = rows.map((row) => amountIn(row.revenue, currency));
    const width = chartWidth(container);
    const height = width < 500 ? 180 : 220;
    const margin = { top: 10, right: 4, bottom: 24, left: width < 500 ? 44 : 60 };
    const plotWidth = width - margin.left - margin.right;
    const plotHeight = height - margin.top - margin.bottom;
    const max = Math.max(0, ...values), min = Math.min(0, ...values);
    const step = max === min ? 1 : niceStep(max - min, 4);
    const top = max === min ? 1 : Math.ceil(max / step) * step;
    const bottom = Math.floor(min / step) * step;
    const y = (v) => margin.top + plotHeight * (top - v) / (top - bottom || 1);
    const chart = svgEl("svg", {
      width, height, viewBox: "0 0 " + width + " " + height, role: "img",
      "aria-label": "Daily net revenue in " + (currency || "no currency") + ", " + state.from + " to " + state.to,
    });
    const ticks = Math.round((top - bottom) / step);
    for (let i = 0; i <= (max === min ? 0 : ticks); i += 1) {
      const tick = bottom + i * step;
      chart.append(svgEl("line", { class: Math.abs(tick) < step / 1e6 ? "axis" : "grid", x1: margin.left, x2: width - margin.right, y1: y(tick), y2: y(tick) }));
      chart.append(svgEl("text", { x: margin.left - 8, y: y(tick) + 4, "text-anchor": "end" },
        currency ? shortMoney(tick, currency) : count(tick)));
    }
    const slot = plotWidth / Math.max(1, rows.length);
    const barWidth = Math.max(1, Math.min(28, slot * (rows.length > 60 ? 0.85 : 0.7)));
    const years = new Set(rows.map((row) => row.key.slice(0, 4))).size > 1;
    rows.forEach((row, i) => {
      const value = values[i];
      const x = margin.left + slot * i + (slot - barWidth) / 2;
      const y0 = y(Math.max(0, value)), y1 = y(Math.min(0, value));
      const bar = svgEl("rect", {
        class: value < 0 ? "bar bar-negative" : "bar", x: x.toFixed(2), y: y0.toFixed(2),
        width: barWidth.toFixed(2), height: Math.max(value ? 1 : 0, y1 - y0).toFixed(2), rx: Math.min(3, barWidth / 3),
        "data-day": row.key,
      });
      const paid = row.payments === 1 ? "1 payment" : count(row.payments) + " payments";
      chart.append(titled(bar, dayLabel(row.key, true) + ": " + (currency ? money(value, currency) : "—") + " · " + paid));
    });
    const labels = Math.max(2, Math.floor(plotWidth / 70));
    const every = Math.max(1, Math.ceil(rows.length / labels));
    rows.forEach((row, i) => {
      if (i % every !== 0) return;
      chart.append(svgEl("text", {
        x: margin.left + slot * i + slot / 2, y: height - 6, "text-anchor": "middle",
      }, dayLabel(row.key, years)));
    });
    if (!values.some((v) => v !== 0)) {
      chart.append(svgEl("text", { class: "empty", x: margin.left + plotWidth / 2, y: margin.top + plotHeight / 2, "text-anchor": "middle" },
        currency ? "No " + currency + " revenue in this range" : "No revenue in this range"));
    }
    container.replaceChildren(chart);

    let best = -1;
    values.forEach((v, i) => { if (v > 0 && (best < 0 || v > values[best])) best = i; });
    $("days-summary").textContent = best < 0 ? ""
      : "Best day: " + dayLabel(rows[best].key, years) + " · " + money(values[best], currency);
  };

  const keyLabel = (row, group) => {
    if (row.unattributed) return "Unattributed";
    if (row.key === null || row.key === undefined || row.key === "") return "(none)";
    return group === "confidence" ? capitalize(String(row.key)) : String(row.key);
  };

  const sortedRows = (report) => {
    if (report.group_by === "confidence" || report.group_by === "day") return report.rows.slice();
    const currency = state.currency;
    const rows = report.rows.map((row, index) => ({ row, index }));
    rows.sort((a, b) => (a.row.unattributed - b.row.unattributed) ||
      (amountIn(b.row.revenue, currency) - amountIn(a.row.revenue, currency)) || (a.index - b.index));
    return rows.map((item) => item.row);
  };

  const truncate = (text, pixels) => {
    const chars = Math.max(4, Math.floor(pixels / 7));
    return text.length > chars ? text.slice(0, chars - 1) + "…" : text;
  };

  const renderGroupChart = (rows, group) => {
    const container = $("group-chart");
    const currency = state.currency;
    const shown = rows.filter((row) => amountIn(row.revenue, currency) !== 0);
    const top = shown.filter((row) => !row.unattributed).slice(0, 8);
    const unattributed = shown.find((row) => row.unattributed);
    if (unattributed) top.push(unattributed);
    if (!top.length || !currency) {
      const note = currency ? "No " + currency + " revenue in this range." : "No revenue in this range.";
      container.replaceChildren(el("p", { class: "panel-note", text: note }));
      return;
    }
    const width = chartWidth(container);
    const rowHeight = 28;
    const labelWidth = Math.min(200, Math.round(width * 0.32));
    const valueWidth = width < 500 ? 76 : 96;
    const barSpace = width - labelWidth - valueWidth - 12;
    const max = Math.max(...top.map((row) => amountIn(row.revenue, currency)), 0) || 1;
    const height = top.length * rowHeight;
    const chart = svgEl("svg", {
      width, height, viewBox: "0 0 " + width + " " + height, role: "img",
      "aria-label": "Net revenue by " + GROUPS[group].toLowerCase() + " in " + currency,
    });
    top.forEach((row, i) => {
      const value = amountIn(row.revenue, currency);
      const label = keyLabel(row, group);
      const y = i * rowHeight;
      chart.append(titled(svgEl("text", {
        class: row.unattributed ? "label label-unattributed" : "label", x: 0, y: y + 18,
      }, truncate(label, labelWidth - 10)), label));
      chart.append(svgEl("rect", { class: "bar-track", x: labelWidth, y: y + 6, width: barSpace, height: 16, rx: 3 }));
      const bar = svgEl("rect", {
        class: row.unattributed ? "bar bar-unattributed" : "bar", x: labelWidth, y: y + 6,
        width: Math.max(value > 0 ? 2 : 0, barSpace * Math.max(0, value) / max).toFixed(2), height: 16, rx: 3,
      });
      chart.append(titled(bar, label + ": " + money(value, currency)));
      chart.append(svgEl("text", { class: "value", x: width, y: y + 18, "text-anchor": "end" }, money(value, currency)));
    });
    container.replaceChildren(chart);
  };

  const renderGroup = () => {
    const group = state.group;
    const report = state.reports[group];
    if (!report) return;
    const currency = state.currency;
    const rows = sortedRows(report);
    renderGroupChart(rows, group);
    const table = $("group-table");
    const cells = (data) => data.map(([text, cls]) => el("td", { class: cls, text }));
    const perVisitor = (map) => (map === null || map === undefined || !currency ? "—"
      : money(amountIn(map, currency), currency));
    const body = rows.map((row) => {
      const label = keyLabel(row, group);
      const key = el("td", { class: row.key === null && !row.unattributed ? "key key-none" : "key", text: label, title: label });
      if (row.unattributed) key.append(el("span", { class: "tag", text: "no source" }));
      return el("tr", {
        "data-key": row.key === null || row.key === undefined ? "" : String(row.key),
        "data-unattributed": row.unattributed ? "true" : null,
        class: row.unattributed ? "is-unattributed" : null,
      }, key, ...cells([
        [currency ? money(amountIn(row.revenue, currency), currency) : "—", "num"],
        [count(row.payments), "num"],
        [count(row.paying_visitors), "num"],
        [count(row.visitors), "num"],
        [percent(row.conversion_rate), "num"],
        [perVisitor(row.revenue_per_visitor), "num"],
      ]));
    });
    if (!body.length) {
      body.push(el("tr", { class: "empty-row" }, el("td", { colspan: 7, text: "No payments in this range." })));
    }
    table.tBodies[0].replaceChildren(...body);
    const totals = report.totals;
    table.tFoot.replaceChildren(el("tr", {}, el("td", { text: "Total" }), ...cells([
      [currency ? money(amountIn(totals.revenue, currency), currency) : "—", "num"],
      [count(totals.payments), "num"],
      [count(totals.paying_visitors), "num"],
      [count(totals.visitors), "num"],
      [percent(totals.conversion_rate), "num"],
      [perVisitor(totals.revenue_per_visitor), "num"],
    ])));
    table.dataset.group = group;
    table.dataset.currency = currency || "";
  };

  const renderConfidence = () => {
    const report = state.reports.confidence;
    const currency = state.currency;
    const byKey = Object.fromEntries(report.rows.map((row) => [row.key, row]));
    const parts = CONFIDENCE.map((level) => {
      const row = byKey[level] || { revenue: {}, payments: 0 };
      return { level, value: Math.max(0, amountIn(row.revenue, currency)), payments: row.payments || 0 };
    });
    const total = parts.reduce((sum, part) => sum + part.value, 0);
    const container = $("confidence-bar");
    const width = chartWidth(container);
    const height = 22;
    const chart = svgEl("svg", {
      width, height, viewBox: "0 0 " + width + " " + height, role: "img",
      "aria-label": "Net revenue by attribution confidence",
    });
    chart.append(svgEl("rect", { class: "bar-track", x: 0, y: 0, width, height }));
    let x = 0;
    for (const part of parts) {
      if (!total || !part.value) continue;
      const w = width * part.value / total;
      chart.append(titled(svgEl("rect", {
        class: "conf-" + part.level, x: x.toFixed(2), y: 0, width: w.toFixed(2), height, "data-confidence": part.level,
      }), capitalize(part.level) + ": " + share(part.value / total) + " · " + money(part.value, currency)));
      x += w;
    }
    container.replaceChildren(chart);
    $("confidence-legend").replaceChildren(...parts.map((part) => el("li", { "data-confidence": part.level },
      el("span", { class: "swatch conf-" + part.level, "aria-hidden": "true" }),
      el("span", { text: capitalize(part.level) }),
      el("span", { class: "legend-detail", text: (part.payments === 1 ? "1 payment" : count(part.payments) + " payments") }),
      el("span", { class: "legend-share", text: total ? share(part.value / total) : "—" }),
    )));
  };

  const renderTop = (id, report, empty) => {
    const currency = state.currency;
    const rows = sortedRows(report)
      .filter((row) => !row.unattributed && row.key !== null && amountIn(row.revenue, currency) > 0)
      .slice(0, TOP);
    const body = rows.map((row) => el("tr", { "data-key": String(row.key) },
      el("td", { class: "key", text: String(row.key) }),
      el("td", { class: "num", text: money(amountIn(row.revenue, currency), currency) }),
      el("td", { class: "num", text: count(row.payments) }),
    ));
    if (!body.length) body.push(el("tr", { class: "empty-row" }, el("td", { colspan: 3, text: empty })));
    $(id).tBodies[0].replaceChildren(...body);
  };

  const why = (payment) => {
    const evidence = payment.evidence || {};
    const confidence = payment.attribution_confidence || "pending";
    if (confidence === "pending" || payment.attribution_status === "pending") {
      return "not attributed yet: matching is queued and usually takes a second or two.";
    }
    const model = evidence.model ? ", model " + evidence.model : "";
    const method = evidence.method || payment.attribution_method;
    if (!evidence.matched_session_id) {
      if (payment.attributed_source) {
        return "source " + payment.attributed_source + " from the payment's own data" +
          (method ? " (" + method + ")" : "") + model + ".";
      }
      return "no visit matched this payment" + (method ? " (" + method + ")" : "") + model + ".";
    }
    const origin = (payment.attributed_source || "direct") + " / " + (payment.attributed_medium || "none");
    return "session " + shortId(evidence.matched_session_id, 4) + " (" + origin + ")" + model +
      (method ? ", matched by " + method : "") + ".";
  };

  const renderPayments = () => {
    const table = $("payments");
    for (const body of [...table.tBodies]) body.remove();
    if (!state.payments.length) {
      table.append(el("tbody", {}, el("tr", { class: "empty-row" },
        el("td", { colspan: 7, text: "No payments yet. Send one with POST /api/payments/manual." }))));
      return;
    }
    for (const payment of state.payments) {
      const evidence = payment.evidence || {};
      const confidence = CONFIDENCE.includes(payment.attribution_confidence) ? payment.attribution_confidence : "pending";
      const origin = payment.attributed_source
        ? payment.attributed_source + " / " + (payment.attributed_medium || "none") : "—";
      const session = el("td", { "data-label": "Session", class: "mono", text: shortId(evidence.matched_session_id, 8) });
      if (evidence.matched_session_id) session.title = String(evidence.matched_session_id);
      const status = String(payment.status || "");
      table.append(el("tbody", { class: "payment", "data-payment-id": payment.id },
        el("tr", { class: "main" },
          el("td", { "data-label": "Time", text: paidAt(payment.paid_at) }),
          el("td", { "data-label": "Amount", class: "num amount", text: money(Number(payment.amount), payment.currency) }),
          el("td", { "data-label": "Status", class: "status status-" + status, text: status.replace("_", " ") }),
          el("td", { "data-label": "Source / medium", text: origin }),
          el("td", { "data-label": "Confidence" }, el("span", { class: "badge conf-" + confidence, text: confidence })),
          el("td", { "data-label": "Method", class: "mono", text: evidence.method || payment.attribution_method || "—" }),
          session,
        ),
        el("tr", { class: "why" }, el("td", { colspan: 7, class: "why-text" },
          el("span", { class: "why-label", text: "Why?" }), why(payment))),
      ));
    }
  };

  // ---- Wiring --------------------------------------------------------------------------------
  const onRangeInput = () => {
    const from = $("from").value, to = $("to").value;
    if (!from || !to) return;
    if (from > to) {
      showStatus("The start date must be on or before the end date.", true);
      return;
    }
    state.from = from;
    state.to = to;
    syncRangeInputs();
    loadAll();
  };

  const start = () => {
    $("signin-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const key = $("key-input").value.trim();
      if (!key) {
        showSignIn("Paste a secret key to sign in.");
        return;
      }
      signIn(key);
    });
    $("sign-out").addEventListener("click", () => signOut(""));
    $("website").addEventListener("change", (event) => {
      selectWebsite(event.target.value);
      loadAll();
    });
    $("from").addEventListener("change", onRangeInput);
    $("to").addEventListener("change", onRangeInput);
    for (const button of document.querySelectorAll("[data-range]")) {
      button.addEventListener("click", () => {
        setRange(Number(button.dataset.range));
        loadAll();
      });
    }
    for (const button of document.querySelectorAll("[data-group-by]")) {
      button.addEventListener("click", () => {
        if (state.group === button.dataset.groupBy && $("app").dataset.state === "ready") return;
        state.group = button.dataset.groupBy;
        syncGroupButtons();
        if (state.loadingAll || !state.reports.source) loadAll();
        else loadGroup();
      });
    }
    $("currency").addEventListener("change", (event) => {
      state.currency = event.target.value;
      render();
    });
    $("download-csv").addEventListener("click", downloadCsv);
    let pending = 0;
    window.addEventListener("resize", () => {
      cancelAnimationFrame(pending);
      pending = requestAnimationFrame(() => {
        if (state.reports.day && state.reports.source) render();
      });
    });
    syncGroupButtons();

    const saved = sessionStorage.getItem(KEY);
    if (saved) signIn(saved);
    else showSignIn("");
  };

  start();
})();
