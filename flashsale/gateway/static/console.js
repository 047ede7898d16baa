// The host console: sign in with a host key, make and run drops, watch them sell.
// Talks only to the public API (host calls carry `Authorization: Bearer <host key>`).

import { api, applyCounters, Problem, say, sayProblem, STATUS_WORDS } from "./api.js";
import { count, decimal, language, switcher, t, translatePage, when } from "./i18n.js";
import { setupWebhooks } from "./webhooks.js";
import { COMMON_CURRENCIES, examplePrice, formatMoney, isCurrency, minorDigits, toMinor } from "./money.js";

const KEY = "flashsale.hostKey"; // sessionStorage: gone when the tab closes
const LAST = "flashsale.lastDrop"; // localStorage: the form's last currency and room
const RATE_WINDOW_MS = 2000; // orders per second: the change of `sold` over this window

const $ = (id) => document.getElementById(id);

const HOST_WORDS = Object.fromEntries(
  ["unauthorized", "forbidden", "not_found", "invalid_request", "rate_limited", "unavailable"].map(
    (code) => [code, t(`host.${code}`)],
  ),
);
// Drops the load tool made (`flashsale loadtest` puts them in this room): out of the list
// unless the host asks for them, so a rehearsal does not bury the real drops.
const REHEARSAL_ROOM = "rehearsal";

let hostKey = sessionStorage.getItem(KEY);
let drop = null; // the drop on screen, as the API last showed it
let feed = null; // its EventSource
let samples = []; // [{t, sold}] for orders per second
let peak = 0;
// Open-to-sellout, as this screen saw it: `liveAt` when it saw the drop go live (or, if it
// was already live, when it first saw it: `joined`), `soldOutAt` when it saw it sold out.
let timing = { liveAt: null, soldOutAt: null, joined: false };

// ---------------------------------------------------------------------------------------
// Signing in

async function signIn(key) {
  // There is no "who am I" call: ask for the orders of a drop that cannot exist. A host key
  // gets 404 (key fine, no such drop), anything else 401 or 403, and nothing is changed.
  try {
    await api("GET", "/v1/drops/~sign-in-check/orders?limit=1", { token: key, words: HOST_WORDS });
  } catch (problem) {
    if (problem instanceof Problem && problem.code === "not_found") return true;
    throw problem;
  }
  return true;
}

function showSignedIn(on) {
  $("signin-panel").hidden = on;
  $("app").hidden = !on;
  $("signout").hidden = !on;
}

$("signin-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const key = $("host-key").value.trim();
  if (!key) return say($("signin-msg"), t("signin.empty"), "bad");
  $("signin").disabled = true;
  say($("signin-msg"), t("signin.checking"));
  try {
    await signIn(key);
    hostKey = key;
    sessionStorage.setItem(KEY, key);
    $("host-key").value = "";
    say($("signin-msg"), "");
    showSignedIn(true);
    await start();
  } catch (problem) {
    sayProblem($("signin-msg"), problem);
  } finally {
    $("signin").disabled = false;
  }
});

$("signout").addEventListener("click", () => {
  sessionStorage.removeItem(KEY);
  hostKey = null;
  stopFeed();
  showSignedIn(false);
});

// A host call that fails with 401 means the key is no longer good: back to sign-in.
async function hostCall(method, path, body, msg) {
  try {
    return (await api(method, path, { token: hostKey, body, words: HOST_WORDS })).body;
  } catch (problem) {
    if (problem instanceof Problem && problem.code === "unauthorized") {
      sessionStorage.removeItem(KEY);
      showSignedIn(false);
      sayProblem($("signin-msg"), problem);
    } else {
      sayProblem(msg, problem);
    }
    return null;
  }
}

// ---------------------------------------------------------------------------------------
// The drop on screen

function show(d) {
  // Keep the status this screen last saw of this drop: counters() times the sellout from it.
  const before = drop !== null && drop.id === d.id ? drop.status : null;
  drop = { ...d, status: before };
  $("drop-panel").hidden = false;
  $("drop-title").textContent = d.title;
  $("drop-room").textContent = d.room ? t("console.room", { room: d.room }) : "";
  $("drop-price").textContent = priceLine(d);
  showVariants(d);
  $("drop-id").textContent = d.id;
  const link = $("buyer-link");
  link.href = `/buy/${encodeURIComponent(d.id)}`;
  const buyerUrl = new URL(link.href, location.href).href;
  $("buyer-url").textContent = buyerUrl;
  $("qr").src = `/console/qr.svg?text=${encodeURIComponent(buyerUrl)}`;
  if (d.opens_at && d.status === "pending") {
    $("drop-opens").hidden = false;
    $("drop-opens").textContent = t("console.opens_at", { time: when(d.opens_at) });
  } else {
    $("drop-opens").hidden = true;
  }
  counters({ remaining: d.remaining, sold: d.sold, status: d.status, variants: null, queue: null });
  $("queue").hidden = d.admission !== "queue";
  showDraw(d);
  document.title = t("console.page_title_drop", { title: d.title });
  for (const b of document.querySelectorAll("#drops button")) {
    b.setAttribute("aria-current", String(b.dataset.id === d.id));
  }
}

// A draw: its moment, its commitment (its seed once drawn), its entries and winners.
async function showDraw(d) {
  $("draw").hidden = d.admission !== "draw";
  if (d.admission !== "draw") return;
  $("draw-at").textContent = t("console.draw_at", { time: when(d.draws_at) });
  $("draw-proof").textContent = d.draw_seed
    ? t("console.draw_seed", { seed: d.draw_seed })
    : t("console.draw_commitment", { hash: d.draw_commitment });
  const got = await hostCall("GET", `/v1/drops/${encodeURIComponent(d.id)}/entries`, undefined, $("drop-msg"));
  if (!got || !drop || drop.id !== d.id) return;
  $("draw-entries").textContent = t("console.draw_entries", { n: count(got.entries.length) });
  const won = got.entries.filter((e) => e.status === "won");
  $("draw-winners-label").hidden = won.length === 0;
  $("draw-winners").replaceChildren(...won.slice(0, 100).map((e) => {
    const li = document.createElement("li");
    li.textContent = e.variant ? `${e.buyer} · ${e.variant} × ${e.quantity}` : `${e.buyer} × ${e.quantity}`;
    return li;
  }));
}

function priceLine(d) {
  if (d.variants) {
    const low = Math.min(...d.variants.map((v) => v.price));
    return t("console.variants_price", {
      n: count(d.variants.length), price: formatMoney(low, d.currency),
    });
  }
  const price = formatMoney(d.price, d.currency);
  return d.deposit == null
    ? price
    : `${price} · ${t("console.deposit", { amount: formatMoney(d.deposit, d.currency) })}`;
}

// One big number per variant (what is left of it), with its name, price and sold count;
// the restock form names the variant to add to.
function showVariants(d) {
  const box = $("variants");
  box.hidden = !d.variants;
  $("restock-variant-box").hidden = !d.variants;
  if (!d.variants) {
    box.replaceChildren();
    $("restock-variant").replaceChildren();
    return;
  }
  const chosen = $("restock-variant").value;
  box.replaceChildren(...d.variants.map((v) => {
    const cell = document.createElement("div");
    cell.className = "number";
    cell.dataset.code = v.code;
    const n = document.createElement("span");
    n.className = "n";
    const name = document.createElement("span");
    name.className = "label name";
    name.textContent = v.title;
    const detail = document.createElement("span");
    detail.className = "label detail";
    cell.append(n, name, detail);
    return cell;
  }));
  $("restock-variant").replaceChildren(...d.variants.map((v) => new Option(v.title, v.code)));
  if (d.variants.some((v) => v.code === chosen)) $("restock-variant").value = chosen;
}

function variantCounters() {
  for (const v of drop.variants || []) {
    const cell = document.querySelector(`#variants [data-code="${CSS.escape(v.code)}"]`);
    if (!cell) continue;
    big(cell.querySelector(".n"), count(v.remaining));
    cell.dataset.soldOut = String(v.remaining === 0);
    let detail = `${formatMoney(v.price, drop.currency)} · ${t("console.variant_sold", { n: count(v.sold) })}`;
    if (v.deposit != null) {
      detail += ` · ${t("console.deposit", { amount: formatMoney(v.deposit, drop.currency) })}`;
    }
    cell.querySelector(".detail").textContent = detail;
  }
}

function counters(c) {
  const now = performance.now();
  const before = drop.status;
  applyCounters(drop, c);
  big($("remaining"), count(c.remaining));
  big($("sold"), count(c.sold));
  variantCounters();
  if (c.queue) {
    big($("queue-waiting"), count(c.queue.waiting));
    big($("queue-admitted"), count(c.queue.admitted));
  }
  $("drop-stock").textContent = t("console.offered", { n: c.remaining + c.sold });
  const status = $("drop-status");
  status.textContent = STATUS_WORDS[c.status] || c.status;
  status.dataset.status = c.status;
  const entry = document.querySelector(`#drops button[data-id="${CSS.escape(drop.id)}"] .s`);
  if (entry) entry.textContent = summary(drop);
  // Open is for a pending or closed drop; a sold-out one needs a restock.
  $("open").disabled = c.status === "live" || c.status === "sold_out";
  $("close").disabled = c.status === "closed";
  time(before, c.status, now);
  samples.push({ t: now, sold: c.sold });
  rate(now);
}

function time(before, status, now) {
  if (status === "live") {
    if (timing.liveAt === null || timing.soldOutAt !== null) {
      // A first look at a live drop started before this screen: timed from now, and said so.
      timing = { liveAt: now, soldOutAt: null, joined: before === null };
    }
  } else if (status === "sold_out") {
    if (timing.liveAt !== null && timing.soldOutAt === null) timing.soldOutAt = now;
  } else if (timing.soldOutAt === null) {
    timing = { liveAt: null, soldOutAt: null, joined: false }; // closed before selling out
  }
  const tm = timing;
  $("sellout-label").textContent = tm.joined ? t("console.sellout_joined") : t("console.sellout");
  big($("sellout"), tm.soldOutAt !== null ? duration(tm.soldOutAt - tm.liveAt) : "–");
}

function duration(ms) {
  const s = ms / 1000;
  if (s < 60) return t("console.seconds", { s: decimal(s) });
  const m = Math.floor(s / 60);
  return `${count(m)}:${String(Math.floor(s % 60)).padStart(2, "0")}`;
}

// A big number, sized to fit its box whatever its length (style.css reads --chars), so
// "37,997" never breaks over two lines on a phone.
function big(el, text) {
  el.textContent = text;
  el.style.setProperty("--chars", String(Math.max(3, [...text].length)));
}

// Orders per second from the change of `sold`: over the last RATE_WINDOW_MS, or since the
// first reading if that is shorter (at least 1 s, so one early sale is not a spike).
function rate(now = performance.now()) {
  while (samples.length > 1 && samples[1].t <= now - RATE_WINDOW_MS) samples.shift();
  if (!samples.length) return;
  const base = samples[0];
  const last = samples[samples.length - 1];
  const span = Math.max(now - Math.max(base.t, now - RATE_WINDOW_MS), 1000);
  const perSecond = Math.max(0, last.sold - base.sold) / (span / 1000);
  peak = Math.max(peak, perSecond);
  big($("rate"), perSecond < 10 ? decimal(perSecond) : count(Math.round(perSecond)));
  const top = peak < 10 ? decimal(peak) : count(Math.round(peak));
  $("peak").textContent = peak > 0 ? t("console.peak", { n: top }) : "";
}
setInterval(() => drop && rate(), 250);

function watch(d) {
  stopFeed();
  samples = [];
  peak = 0;
  timing = { liveAt: null, soldOutAt: null, joined: false };
  drop = null; // the first reading decides how the sellout is timed
  show(d);
  const source = new EventSource(`/v1/drops/${encodeURIComponent(d.id)}/live`);
  feed = source;
  $("live-state").textContent = t("live.connecting");
  source.addEventListener("stock", (event) => {
    if (feed !== source) return;
    const before = drop.status;
    const c = JSON.parse(event.data);
    counters(c);
    if (drop.admission === "draw") drawSoon(d.id);
    $("live-state").textContent = t("live.on");
    if (before !== null && before !== c.status) changed(c.status);
  });
  source.addEventListener("error", () => {
    if (feed !== source) return;
    $("live-state").textContent =
      source.readyState === EventSource.CLOSED
        ? t("live.stopped")
        : t("live.reconnecting");
  });
  history.replaceState(null, "", `#drop=${encodeURIComponent(d.id)}`);
}

// A draw's page follows its entries and its result: read again at most every 2 s while
// counts change (the draw itself changes them).
let drawRead = 0;
async function drawSoon(id) {
  if (Date.now() - drawRead < 2000) return;
  drawRead = Date.now();
  const d = await hostCall("GET", `/v1/drops/${encodeURIComponent(id)}`, undefined, $("drop-msg"));
  if (d && drop && drop.id === id) showDraw(d);
}

// A change the host did not make here (buyers, the schedule, another console): the last
// message would be stale, so it is replaced by what happened.
function changed(status) {
  const words = {
    live: [t("changed.live"), "ok"],
    sold_out: [timing.soldOutAt !== null
      ? t("changed.sold_out_in", { time: duration(timing.soldOutAt - timing.liveAt) })
      : t("changed.sold_out"), "ok"],
    closed: [t("changed.closed"), "info"],
  }[status];
  if (words) say($("drop-msg"), words[0], words[1]);
}

function stopFeed() {
  if (feed) feed.close();
  feed = null;
}

async function act(button, path, body, done) {
  const msg = $("drop-msg");
  button.disabled = true;
  say(msg, "");
  const d = await hostCall("POST", path, body, msg);
  button.disabled = false;
  if (d) {
    show(d);
    say(msg, done(d), "ok");
    loadList();
  }
}

$("open").addEventListener("click", () =>
  act($("open"), `/v1/drops/${encodeURIComponent(drop.id)}/open`, undefined, (d) =>
    d.status === "live" ? t("done.opened") : t("done.opened_empty")));

$("close").addEventListener("click", () =>
  act($("close"), `/v1/drops/${encodeURIComponent(drop.id)}/close`, undefined, () =>
    t("done.closed")));

$("restock-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = $("restock-qty").value.trim();
  if (!/^\d+$/.test(text) || Number(text) < 1) {
    return say($("drop-msg"), t("console.restock_bad"), "bad");
  }
  const quantity = Number(text);
  const body = drop.variants ? { quantity, variant: $("restock-variant").value } : { quantity };
  act($("restock"), `/v1/drops/${encodeURIComponent(drop.id)}/restock`, body, (d) => {
    const v = d.variants && d.variants.find((x) => x.code === body.variant);
    return v
      ? t("done.restocked_variant", { n: quantity, title: v.title, left: v.remaining })
      : t("done.restocked", { n: quantity, left: d.remaining });
  });
});

// The orders file needs the host key in a header, which a plain link cannot carry: fetch
// it, then save it through a Blob link. A UTF-8 mark first, so spreadsheet programs show
// non-Latin buyer ids right.
$("csv").addEventListener("click", async () => {
  const msg = $("drop-msg");
  const id = drop.id;
  $("csv").disabled = true;
  say(msg, t("csv.preparing"));
  try {
    const { response } = await api("GET", `/v1/drops/${encodeURIComponent(id)}/orders?format=csv`, {
      token: hostKey, words: HOST_WORDS, raw: true,
    });
    const blob = new Blob(["\ufeff", await response.blob()], { type: "text/csv;charset=utf-8" });
    const url = URL.createObjectURL(blob);
    const a = document.createElement("a");
    a.href = url;
    a.download = `orders-${id}.csv`;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
    say(msg, t("csv.downloading"), "ok");
  } catch (problem) {
    sayProblem(msg, problem);
  } finally {
    $("csv").disabled = false;
  }
});

// ---------------------------------------------------------------------------------------
// Making a drop

function wholeNumber(id, field, min) {
  const text = $(id).value.trim();
  if (!/^\d+$/.test(text) || Number(text) < min) {
    throw new Error(t("create.whole_number", { name: t(field), min }));
  }
  return Number(text);
}

// Variants in the create form: a row each (code, name, price, units, deposit). With one or
// more, the drop's own price and units give way to theirs.
function addVariantRow() {
  const row = document.createElement("div");
  row.className = "variant-row";
  const n = $("variant-list").children.length + 1;
  const fields = [
    ["code", t("create.variant_code"), { maxLength: 32, placeholder: `${n}KG`, dir: "ltr" }],
    ["title", t("create.variant_name"), { maxLength: 100 }],
    ["price", t("field.price"), { inputMode: "decimal", dir: "ltr" }],
    ["stock", t("field.stock"), { type: "number", min: "1", step: "1", inputMode: "numeric" }],
    ["deposit", t("create.variant_deposit"), { inputMode: "decimal", dir: "ltr" }],
  ];
  for (const [name, label, attrs] of fields) {
    const cell = document.createElement("label");
    cell.className = `v-${name}`;
    cell.append(label);
    const input = Object.assign(document.createElement("input"), attrs);
    input.name = name;
    input.autocomplete = "off";
    cell.append(input);
    row.append(cell);
  }
  const remove = Object.assign(document.createElement("button"), { type: "button" });
  remove.textContent = t("create.variant_remove");
  remove.addEventListener("click", () => {
    row.remove();
    variantMode();
  });
  row.append(remove);
  $("variant-list").append(row);
  variantMode();
  row.querySelector("input").focus();
}

function variantMode() {
  const on = $("variant-list").children.length > 0;
  $("variant-rows").hidden = !on;
  $("price-box").hidden = on;
  $("stock-box").hidden = on;
}

$("add-variant").addEventListener("click", addVariantRow);

function readVariants(currency) {
  return [...$("variant-list").children].map((row) => {
    const value = (name) => row.querySelector(`[name="${name}"]`).value.trim();
    const code = value("code");
    if (!/^[A-Za-z0-9_.-]{1,32}$/.test(code)) throw new Error(t("create.bad_variant_code"));
    const stock = value("stock");
    if (!/^\d+$/.test(stock) || Number(stock) < 1) {
      throw new Error(t("create.whole_number", { name: t("field.stock"), min: 1 }));
    }
    const v = { code, title: value("title") || code, price: toMinor(value("price"), currency),
      stock: Number(stock) };
    if (value("deposit")) v.deposit = toMinor(value("deposit"), currency);
    return v;
  });
}

function readForm() {
  const title = $("title").value.trim();
  const sku = $("sku").value.trim();
  const currency = $("currency").value.trim().toUpperCase();
  if (!title) throw new Error(t("create.no_title"));
  if (!sku) throw new Error(t("create.no_sku"));
  if (!isCurrency(currency)) throw new Error(t("create.bad_currency"));
  const variants = readVariants(currency);
  const spec = {
    title,
    sku,
    currency,
    per_buyer_limit: wholeNumber("limit", "field.per_buyer_limit", 1),
    payment_window_s: wholeNumber("window", "field.payment_window_s", 0) * 60,
  };
  if (variants.length) {
    spec.variants = variants;
  } else {
    spec.price = toMinor($("price").value, currency);
    spec.stock = wholeNumber("stock", "field.stock", 1);
  }
  const room = $("room").value.trim();
  if (room) spec.room = room;
  spec.admission = $("admission").value;
  if (spec.admission === "draw") {
    const at = new Date($("draws-at").value);
    if (Number.isNaN(at.getTime())) throw new Error(t("create.bad_time"));
    spec.draws_at = at.toISOString();
  }
  const opens = $("opens-at").value;
  if (opens) {
    const at = new Date(opens); // the phone's local time, sent as RFC 3339 in UTC
    if (Number.isNaN(at.getTime())) throw new Error(t("create.bad_time"));
    spec.opens_at = at.toISOString();
  }
  return spec;
}

$("create-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const msg = $("create-msg");
  let spec;
  try {
    spec = readForm();
  } catch (error) {
    return say(msg, error.message, "bad");
  }
  $("create").disabled = true;
  say(msg, t("create.creating"));
  const d = await hostCall("POST", "/v1/drops", spec, msg);
  $("create").disabled = false;
  if (!d) return;
  localStorage.setItem(LAST, JSON.stringify({ currency: spec.currency, room: spec.room || "" }));
  say(msg, t("create.created", { title: d.title }), "ok");
  for (const id of ["title", "sku", "price", "stock", "opens-at"]) $(id).value = "";
  $("variant-list").replaceChildren();
  variantMode();
  priceHint();
  watch(d);
  say($("drop-msg"), t("create.ready"), "ok");
  $("drop-panel").scrollIntoView({ behavior: "smooth", block: "start" });
  if (spec.room) $("room-filter").value = spec.room;
  loadList();
});

function priceHint() {
  const currency = $("currency").value.trim().toUpperCase();
  if (!isCurrency(currency)) {
    $("price-hint").textContent = t("create.currency_hint");
    return;
  }
  let name = currency;
  try {
    name = new Intl.DisplayNames([language()], { type: "currency" }).of(currency) || currency;
  } catch {
    /* an unknown code: show it as it is */
  }
  const digits = minorDigits(currency);
  const how = digits === 0 ? t("create.price_whole") : t("create.price_digits", { digits });
  $("price").placeholder = examplePrice(currency);
  let seen = "";
  try {
    if ($("price").value.trim()) {
      seen = ` ${t("create.price_seen", { price: formatMoney(toMinor($("price").value, currency), currency) })}`;
    }
  } catch (error) {
    seen = ` ${error.message}`;
  }
  $("price-hint").textContent = t("create.price_hint", { name, how, example: examplePrice(currency) }) + seen;
}

// ---------------------------------------------------------------------------------------
// The list of drops

function summary(d) {
  return [
    STATUS_WORDS[d.status] || d.status,
    t("list.left_of", { left: d.remaining, all: d.remaining + d.sold }),
    priceLine(d),
    d.room ? t("list.room", { room: d.room }) : "",
  ].filter(Boolean).join(" · ");
}

// The list is newest first, a page at a time; "Older drops" follows the API's cursor.
let listNext = null;

async function loadList(more = false) {
  const room = $("room-filter").value.trim();
  const rehearsals = $("show-rehearsals").checked || room === REHEARSAL_ROOM;
  let drops = [];
  // Pages of nothing but rehearsals are skipped (a few at most), so the list shows drops.
  for (let page = 0; page < 5 && (page === 0 || (!drops.length && listNext)); page++) {
    const query = new URLSearchParams();
    if (room) query.set("room", room);
    if ((more || page > 0) && listNext) query.set("after", listNext);
    const path = query.size ? `/v1/drops?${query}` : "/v1/drops";
    try {
      const body = (await api("GET", path, { words: HOST_WORDS })).body;
      drops = body.drops.filter((d) => rehearsals || d.room !== REHEARSAL_ROOM);
      listNext = body.next;
    } catch (problem) {
      return sayProblem($("list-msg"), problem);
    }
  }
  $("more-drops").hidden = !listNext;
  if (!more) {
    say($("list-msg"), drops.length ? "" : room ? t("list.none_in_room", { room }) : t("list.none"));
  }
  const items = drops.map((d) => {
    const li = document.createElement("li");
    const b = document.createElement("button");
    b.type = "button";
    b.dataset.id = d.id;
    b.setAttribute("aria-current", String(drop !== null && drop.id === d.id));
    const t = document.createElement("span");
    t.className = "t";
    t.textContent = d.title;
    const s = document.createElement("span");
    s.className = "s";
    s.textContent = summary(d);
    b.append(t, s);
    b.addEventListener("click", () => {
      say($("drop-msg"), "");
      watch(d);
      $("drop-panel").scrollIntoView({ behavior: "smooth", block: "start" });
    });
    li.append(b);
    return li;
  });
  if (more) $("drops").append(...items);
  else $("drops").replaceChildren(...items);
}

$("more-drops").addEventListener("click", () => loadList(true));

$("list-form").addEventListener("submit", (event) => {
  event.preventDefault();
  loadList();
});
$("show-rehearsals").addEventListener("change", () => loadList());
$("admission").addEventListener("change", () => {
  $("draws-at-box").hidden = $("admission").value !== "draw";
});

// ---------------------------------------------------------------------------------------
// Start

const loadWebhooks = setupWebhooks(hostCall);

async function start() {
  const last = JSON.parse(localStorage.getItem(LAST) || "{}");
  if (last.currency) $("currency").value = last.currency;
  if (last.room) {
    $("room").value = last.room;
    $("room-filter").value = last.room;
  }
  priceHint();
  await Promise.all([loadList(), loadWebhooks()]);
  const m = /^#drop=(.+)$/.exec(location.hash);
  if (m) {
    try {
      const id = encodeURIComponent(decodeURIComponent(m[1]));
      watch((await api("GET", `/v1/drops/${id}`, { words: HOST_WORDS })).body);
    } catch (problem) {
      sayProblem($("list-msg"), problem);
    }
  }
}

// The QR code of the buyer page: tapped, it fills the screen, to hold up to the camera.
$("qr-button").addEventListener("click", () => document.body.classList.toggle("qr-full"));

// `flashsale up` and `demo` print the console's address signed in: the host key rides in the
// fragment (#key=…&drop=…), which the browser never sends. It is kept for this tab, like a
// typed key, and taken out of the address bar and the history at once.
function keyFromAddress() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const key = fragment.get("key");
  if (!key) return;
  sessionStorage.setItem(KEY, key);
  hostKey = key;
  const dropId = fragment.get("drop");
  history.replaceState(null, "", location.pathname + location.search + (dropId ? `#drop=${encodeURIComponent(dropId)}` : ""));
}

translatePage();
switcher($("lang"));
document.title = t("console.page_title");
$("currencies").replaceChildren(
  ...COMMON_CURRENCIES.map((c) => Object.assign(document.createElement("option"), { value: c })),
);
for (const id of ["currency", "price"]) $(id).addEventListener("input", priceHint);

keyFromAddress();
if (hostKey) {
  showSignedIn(true);
  start();
} else {
  showSignedIn(false);
  $("host-key").focus();
}
document.documentElement.dataset.ready = "true"; // for tests: the module has run
