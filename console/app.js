// persona admin console: one module, no framework, no build step. Every action goes through
// the server's API with the signed-in administrator's access token, which lives in this
// module's memory only (never in the browser's storage, never a cookie). When it expires,
// or the server refuses it, the console goes back to the sign-in form.

const API = "/api/v1";
const session = { token: null, user: null };
const $ = (id) => document.getElementById(id);

// ---------- DOM helpers (text is always set as text, never parsed as HTML) ----------

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

const SVG = "http://www.w3.org/2000/svg";
function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, String(value));
  append(el, children);
  return el;
}

function table(headers, rows, empty = "Nothing yet.") {
  if (rows.length === 0) return h("p", { class: "muted" }, empty);
  return h("div", { class: "table" },
    h("table", {},
      h("thead", {}, h("tr", {}, headers.map(([label, cls]) => h("th", { scope: "col", class: cls }, label)))),
      h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((cell, i) =>
        h("td", { class: headers[i][1] }, cell)))))));
}

const number = (n) => Number(n ?? 0).toLocaleString("en-US");
const day = (ts) => (ts ? String(ts).slice(0, 10) : "—");
const when = (ts) => (ts ? String(ts).replace("T", " ").replace(/(\.\d+)?Z$/, " UTC") : "—");

function duration(seconds) {
  const d = Math.floor(seconds / 86400), hr = Math.floor((seconds % 86400) / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  if (d > 0) return `${d} d ${hr} h`;
  if (hr > 0) return `${hr} h ${m} min`;
  return `${m} min ${seconds % 60} s`;
}

function say(text) { $("status").textContent = text; }

// ---------- API ----------

class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message || `The server answered ${status}.`);
    this.status = status;
    this.code = body?.error?.code;
  }
}

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (session.token) headers.Authorization = `Bearer ${session.token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(API + path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "omit", cache: "no-store",
  });
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const error = new ApiError(response.status, data);
    if (response.status === 401 && session.token) signedOut("Your session has ended; sign in again.");
    throw error;
  }
  return data;
}

// ---------- sign-in ----------

let expiryTimer = null;

function signedOut(message) {
  session.token = null;
  session.user = null;
  clearTimeout(expiryTimer);
  $("nav").hidden = true;
  $("signout").hidden = true;
  $("who").textContent = "";
  $("view").hidden = true;
  $("view").replaceChildren();
  $("signin").hidden = false;
  $("signin-error").textContent = message || "";
  say("");
  $("password").value = "";
  $("email").focus();
}

async function signIn(event) {
  event.preventDefault();
  const email = $("email").value.trim();
  const password = $("password").value;
  const error = $("signin-error");
  if (!email || !password) { error.textContent = "Enter your email and password."; return; }
  $("signin-button").disabled = true;
  error.textContent = "";
  try {
    const answer = await api("POST", "/auth/login", { email, password, deviceName: "admin console" });
    if (answer.user.role !== "admin") {
      session.token = answer.accessToken;
      await api("POST", "/auth/logout").catch(() => {});
      session.token = null;
      error.textContent = "This account is not an administrator of this server.";
      return;
    }
    session.token = answer.accessToken;
    session.user = answer.user;
    // Back to the form a little before the token expires (the server refuses it after),
    // ending the session on the server too. (setTimeout takes at most 2^31 - 1 ms.)
    expiryTimer = setTimeout(async () => {
      await api("POST", "/auth/logout").catch(() => {});
      signedOut("Your session expired; sign in again.");
    }, Math.min(2 ** 31 - 1, Math.max(5, answer.expiresIn - 5) * 1000));
    $("password").value = "";
    $("signin").hidden = true;
    $("nav").hidden = false;
    $("signout").hidden = false;
    $("who").textContent = answer.user.email;
    if (!location.hash || location.hash === "#/") location.hash = "#/overview";
    else route();
  } catch (e) {
    error.textContent = e.status === 401
      ? "Wrong email or password."
      : e.message;
  } finally {
    $("signin-button").disabled = false;
  }
}

async function signOut() {
  try { await api("POST", "/auth/logout"); } catch { /* the session is dropped anyway */ }
  signedOut("Signed out.");
}

// ---------- pages ----------

function page(title, ...content) {
  // An answer that arrives after sign-out (or expiry) is not drawn under the sign-in form.
  if (!session.token) return;
  const view = $("view");
  const heading = h("h1", { tabindex: "-1" }, title);
  view.replaceChildren(heading, ...content.flat());
  view.hidden = false;
  heading.focus();
}

async function overview() {
  const o = await api("GET", "/admin/overview");
  const state = (ok, text) => h("span", { class: ok ? "good" : "bad" }, text);
  const ai = o.ai.upstream === "ok"
    ? state(true, `ok${o.ai.latencyMs != null ? ` · ${o.ai.latencyMs} ms` : ""}`)
    : o.ai.upstream === "unconfigured" ? h("span", { class: "warn" }, "not configured")
      : state(false, o.ai.upstream);
  const card = (label, value, id) => h("div", { class: "card" },
    h("dl", {}, h("dt", {}, label), h("dd", { id }, value)));
  page("Overview",
    h("div", { class: "cards", id: "overview" },
      card("Version", o.version, "ov-version"),
      card("Uptime", duration(o.uptimeSeconds), "ov-uptime"),
      card("Database", state(o.database === "ok", o.database), "ov-database"),
      card("AI upstream", ai, "ov-ai"),
      card("Users", [number(o.users.total), " ",
        h("small", {}, `${number(o.users.admins)} admin · ${number(o.users.disabled)} disabled`)], "ov-users"),
      card("Requests, last minute", number(o.requestsLastMinute), "ov-rpm"),
      card("AI today", [number(o.aiToday.totalTokens), " ",
        h("small", {}, `tokens · ${number(o.aiToday.requests)} calls`)], "ov-ai-today"),
      card("Crisis events today", number(o.crisisEventsToday), "ov-crisis")),
    h("p", { class: "toolbar" },
      h("button", { type: "button", class: "quiet", onclick: () => route() }, "Refresh")));
}

async function users() {
  const query = new URLSearchParams(location.hash.split("?")[1] || "").get("q") || "";
  const list = h("div", { id: "user-list" });
  const more = h("button", { type: "button", class: "quiet", hidden: true }, "More");
  const result = h("p", { class: "token", id: "reset-token", hidden: true, "aria-live": "polite" });
  let cursor = null;

  async function load(reset) {
    const params = new URLSearchParams({ limit: "50" });
    if (query) params.set("q", query);
    if (!reset && cursor) params.set("cursor", cursor);
    const data = await api("GET", `/admin/users?${params}`);
    cursor = data.nextCursor;
    more.hidden = !cursor;
    const rows = data.items.map((u) => [
      u.email, u.displayName || "—", u.role,
      h("span", { class: u.disabled ? "bad" : "good" }, u.disabled ? "disabled" : "active"),
      day(u.createdAt), number(u.deviceCount),
      h("span", {},
        u.id === session.user.id ? h("span", { class: "muted" }, "you") :
          h("button", {
            type: "button", class: u.disabled ? "" : "danger",
            "data-action": u.disabled ? "enable" : "disable", "data-email": u.email,
            onclick: () => act(u, u.disabled ? "enable" : "disable"),
          }, u.disabled ? "Enable" : "Disable"),
        u.role !== "admin" && h("button", {
          type: "button", class: "quiet", "data-action": "promote", "data-email": u.email,
          onclick: () => act(u, "promote"),
        }, "Make admin"),
        h("button", {
          type: "button", class: "quiet", "data-action": "reset", "data-email": u.email,
          onclick: () => resetToken(u),
        }, "Reset token")),
    ]);
    const t = table([["Email"], ["Name"], ["Role"], ["State"], ["Created"], ["Devices", "num"], ["Actions", "actions"]],
      rows, query ? "No account matches." : "No accounts.");
    if (reset) list.replaceChildren(t); else list.append(t);
  }

  async function act(user, action) {
    const verb = { disable: "Disable", enable: "Enable", promote: "Make administrator" }[action];
    if (action !== "enable" && !confirm(`${verb}: ${user.email}?`)) return;
    try {
      await api("POST", `/admin/users/${encodeURIComponent(user.id)}/${action}`);
      say(`${verb}: done for ${user.email}.`);
      cursor = null;
      await load(true);
    } catch (e) { if (e.status !== 401) say(e.message); }
  }

  async function resetToken(user) {
    try {
      const r = await api("POST", `/admin/users/${encodeURIComponent(user.id)}/reset-token`);
      result.replaceChildren(
        `Single-use reset token for ${user.email}, valid until ${when(r.expiresAt)}: `,
        h("strong", {}, r.token), r.link ? [" — ", h("a", { href: r.link, rel: "noreferrer" }, "reset link")] : "");
      result.hidden = false;
      say("Hand the token to its owner; it is shown only here, once.");
    } catch (e) { if (e.status !== 401) say(e.message); }
  }

  const search = h("form", { class: "inline", role: "search", onsubmit: (e) => {
    e.preventDefault();
    const q = e.target.elements.q.value.trim();
    location.hash = q ? `#/users?q=${encodeURIComponent(q)}` : "#/users";
  } },
  h("label", {}, "Search email or name", h("input", { name: "q", type: "search", value: query })),
  h("button", { type: "submit" }, "Search"));
  more.addEventListener("click", () => load(false));
  page("Users", search, result, list, more);
  await load(true);
}

function dayRange(sinceTs) {
  const days = [];
  const d = new Date(String(sinceTs).slice(0, 10) + "T00:00:00Z");
  const today = new Date().toISOString().slice(0, 10);
  for (let i = 0; i < 400; i++) {
    const key = d.toISOString().slice(0, 10);
    days.push(key);
    if (key >= today) break;
    d.setUTCDate(d.getUTCDate() + 1);
  }
  return days;
}

// A stacked bar chart: one bar per day, one colour per series; accessible as a table too.
function barChart(title, days, series, valueOf) {
  const width = 720, height = 220, left = 52, bottom = 24, top = 10;
  const totals = days.map((d) => series.reduce((sum, name) => sum + (valueOf(d, name) || 0), 0));
  const max = Math.max(1, ...totals);
  const step = (width - left - 8) / Math.max(1, days.length);
  const bar = Math.max(2, step * 0.7);
  const y = (v) => top + (height - top - bottom) * (1 - v / max);
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": title });
  svg.append(s("title", {}, title));
  for (const frac of [0, 0.5, 1]) {
    const v = Math.round(max * frac);
    svg.append(s("line", { x1: left, x2: width - 4, y1: y(v), y2: y(v), class: "axis" }));
    svg.append(s("text", { x: left - 6, y: y(v) + 4, "text-anchor": "end" }, number(v)));
  }
  days.forEach((d, i) => {
    let base = 0;
    series.forEach((name, k) => {
      const v = valueOf(d, name) || 0;
      if (v <= 0) return;
      const rect = s("rect", {
        x: left + i * step + (step - bar) / 2, y: y(base + v), width: bar,
        height: Math.max(1, y(base) - y(base + v)), class: `s${(k % 6) + 1}`,
      });
      rect.append(s("title", {}, `${d} · ${name}: ${number(v)}`));
      svg.append(rect);
      base += v;
    });
    if (days.length <= 14 || i % Math.ceil(days.length / 10) === 0) {
      svg.append(s("text", { x: left + i * step + step / 2, y: height - 6, "text-anchor": "middle" }, d.slice(5)));
    }
  });
  return h("figure", { class: "chart" }, svg,
    h("figcaption", { class: "legend" }, series.map((name, k) => h("span", { class: `s${(k % 6) + 1}` }, name))));
}

function daysPicker(current, base) {
  return h("p", { class: "toolbar" }, "Last",
    [7, 30, 90].map((n) => h("a", { href: `${base}?days=${n}`, "aria-current": n === current ? "true" : false },
      ` ${n} days `)));
}

const daysParam = () => {
  const n = Number(new URLSearchParams(location.hash.split("?")[1] || "").get("days"));
  return [7, 30, 90].includes(n) ? n : 30;
};

async function usage() {
  const days = daysParam();
  const r = await api("GET", `/admin/usage?days=${days}`);
  const range = dayRange(r.since);
  const models = [...new Set(r.byDay.map((row) => row.model))].sort();
  const tokens = new Map(r.byDay.map((row) => [`${row.key}|${row.model}`, row.totalTokens]));
  page("AI usage", daysPicker(days, "#/usage"),
    h("h2", {}, "Tokens per day, by model"),
    barChart("AI tokens per day by model", range, models, (d, m) => tokens.get(`${d}|${m}`)),
    h("h2", {}, "By day and model"),
    table([["Day"], ["Model"], ["Calls", "num"], ["Prompt", "num"], ["Completion", "num"], ["Total tokens", "num"]],
      r.byDay.map((row) => [row.key, row.model, number(row.requests), number(row.promptTokens),
        number(row.completionTokens), number(row.totalTokens)]), "No AI calls in this period."),
    h("h2", {}, "By user and model"),
    table([["User"], ["Model"], ["Calls", "num"], ["Total tokens", "num"]],
      r.byUser.map((row) => [row.key, row.model, number(row.requests), number(row.totalTokens)]),
      "No AI calls in this period."));
}

async function scripts() {
  const catalog = await api("GET", "/admin/scripts");
  const sections = catalog.items.map((script) => h("section", { "aria-label": script.name },
    h("h2", {}, script.name, " ", h("span", { class: "muted" }, script.active ? `active ${script.active}` : "no active version")),
    table([["Version"], ["Description"], ["Created"], ["State"], ["", "actions"]],
      script.versions.map((v) => [v.version, v.description || "—", day(v.createdAt),
        v.active ? h("span", { class: "badge good" }, "active") : "",
        v.active ? "" : h("button", {
          type: "button", "data-script": script.name, "data-version": v.version,
          onclick: async () => {
            try {
              await api("PUT", `/ai/scripts/${encodeURIComponent(script.name)}/active`, { version: v.version });
              await route();
              say(`${script.name} ${v.version} is now active.`);
            } catch (e) { if (e.status !== 401) say(e.message); }
          },
        }, "Activate")]))));
  const error = h("p", { class: "error", role: "alert" });
  const form = h("form", { id: "new-script", onsubmit: async (e) => {
    e.preventDefault();
    const f = e.target.elements;
    let content;
    try { content = JSON.parse(f.content.value); } catch { error.textContent = "Content must be JSON."; return; }
    const body = { name: f.name.value.trim(), description: f.description.value, content, activate: f.activate.checked };
    if (f.version.value.trim()) body.version = f.version.value.trim();
    try {
      const created = await api("POST", "/ai/scripts", body);
      await route();
      say(`Created ${created.name} ${created.version}.`);
    } catch (err) {
      if (err.status !== 401) error.textContent = err.message;
    }
  } },
  h("label", { for: "ns-name" }, "Name"),
  h("input", { id: "ns-name", name: "name", required: true, list: "script-names" }),
  h("datalist", { id: "script-names" }, catalog.items.map((sc) => h("option", { value: sc.name }))),
  h("label", { for: "ns-version" }, "Version (empty: the next one)"),
  h("input", { id: "ns-version", name: "version", placeholder: "e.g. 1.2.0" }),
  h("label", { for: "ns-description" }, "Description"),
  h("input", { id: "ns-description", name: "description" }),
  h("label", { for: "ns-content" }, "Content (JSON: system, template, model, temperature, maxTokens, responseFormat)"),
  h("textarea", { id: "ns-content", name: "content", spellcheck: "false" }, '{\n  "system": "",\n  "template": ""\n}'),
  h("label", {}, h("input", { type: "checkbox", name: "activate" }), " Make it the active version"),
  h("button", { type: "submit" }, "Create version"), error);
  page("Scripts", sections.length ? sections : h("p", { class: "muted" }, "No scripts."),
    h("h2", {}, "New version"), form);
}

async function crisis() {
  const days = daysParam();
  const r = await api("GET", `/admin/crisis?days=${days}`);
  const range = dayRange(r.since);
  const levels = ["high", "medium", "low", "none"].filter((l) => r.byDay.some((row) => row.level === l));
  const count = new Map();
  for (const row of r.byDay) count.set(`${row.day}|${row.level}`, (count.get(`${row.day}|${row.level}`) || 0) + row.events);
  page("Crisis",
    h("p", { class: "hint" }, "Counts only: the server never stores what people wrote."),
    daysPicker(days, "#/crisis"),
    h("h2", {}, "Events per day, by level"),
    barChart("Crisis events per day by level", range, levels, (d, l) => count.get(`${d}|${l}`)),
    h("h2", {}, "By day, level and source"),
    table([["Day"], ["Level"], ["Source"], ["Events", "num"]],
      r.byDay.map((row) => [row.day, row.level, row.source, number(row.events)]), "No crisis events in this period."),
    h("h2", {}, "Failed deliveries"),
    table([["Event"], ["Level"], ["Channel"], ["State"], ["Attempts", "num"], ["Last attempt"], ["Next attempt"], ["Error"]],
      r.failedDeliveries.map((d) => [d.eventId.slice(0, 8), d.level, d.channel,
        h("span", { class: d.status === "failed" ? "bad" : "warn" }, d.status === "failed" ? "gave up" : "retrying"),
        number(d.attempts), when(d.lastAttemptAt), when(d.nextAttemptAt), d.lastError || "—"]),
      "No failed deliveries."));
}

async function conversations() {
  const list = h("div", {});
  const more = h("button", { type: "button", class: "quiet", hidden: true }, "More");
  let cursor = null;
  async function load(reset) {
    const params = new URLSearchParams({ scope: "public", limit: "25" });
    if (!reset && cursor) params.set("cursor", cursor);
    const data = await api("GET", `/conversations?${params}`);
    cursor = data.nextCursor;
    more.hidden = !cursor;
    const t = table([["Title"], ["Category"], ["Owner"], ["Messages", "num"], ["Updated"], ["Featured", "actions"]],
      data.items.map((c) => [c.title, c.category, c.owner?.displayName || "—", number(c.messageCount), day(c.updatedAt),
        h("button", {
          type: "button", class: c.isFeatured ? "" : "quiet", "aria-pressed": String(c.isFeatured),
          onclick: async (e) => {
            try {
              const updated = await api("PATCH", `/conversations/${encodeURIComponent(c.id)}/featured`, { featured: !c.isFeatured });
              c.isFeatured = updated.isFeatured;
              e.target.setAttribute("aria-pressed", String(c.isFeatured));
              e.target.className = c.isFeatured ? "" : "quiet";
              e.target.textContent = c.isFeatured ? "Featured" : "Feature";
              say(`${c.title}: ${c.isFeatured ? "featured" : "no longer featured"}.`);
            } catch (err) { if (err.status !== 401) say(err.message); }
          },
        }, c.isFeatured ? "Featured" : "Feature")]), "No public conversations.");
    if (reset) list.replaceChildren(t); else list.append(t);
  }
  more.addEventListener("click", () => load(false));
  page("Conversations", h("p", { class: "hint" }, "Public conversations, newest first. Featured ones are shown first in the app."), list, more);
  await load(true);
}

const PAGES = { overview, users, usage, scripts, crisis, conversations };

async function route() {
  if (!session.token) return;
  const name = (location.hash.replace(/^#\//, "").split("?")[0]) || "overview";
  const show = Object.hasOwn(PAGES, name) ? PAGES[name] : overview;
  for (const a of document.querySelectorAll("nav a")) {
    a.setAttribute("aria-current", a.getAttribute("href") === `#/${name}` ? "page" : "false");
  }
  say("Loading…");
  try {
    await show();
    say("");
  } catch (e) {
    if (e.status !== 401) say(`Could not load this page: ${e.message}`);
  }
}

$("signin-form").addEventListener("submit", signIn);
$("signout").addEventListener("click", signOut);
window.addEventListener("hashchange", route);
$("email").focus();
