// The buyer page, for demos and rehearsals: one drop, its live count, one big Buy button.
// Every tap gets its own Idempotency-Key; a tap that got no answer (the network failed) is
// sent again with the same key, so it can never make a second order.

import { api, applyCounters, Problem, say, sayProblem, STATUS_WORDS } from "./api.js";
import { count, switcher, t, translatePage, when } from "./i18n.js";
import { Fair } from "./fair.js";
import { formatMoney } from "./money.js";

const TOKEN = "flashsale.buyerToken"; // sessionStorage: one buyer per tab
const RETRIES = 3; // resends of a tap that got no answer, 0.4 s, 0.8 s, 1.6 s apart

const $ = (id) => document.getElementById(id);
const dropId = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop() || "");
const dropPath = `/v1/drops/${encodeURIComponent(dropId)}`;

let drop = null;
let busy = false;
// The last tap that never got an answer: the next tap resends it under the same key.
let unanswered = null;
let countdown = null;
// A queue drop's: the pass of the buyer's admitted ticket (null: not admitted, or used).
let pass = null;
let fair = null; // the drop's queue, draw or waitlist, if it has one (fair.js)

// ---------------------------------------------------------------------------------------
// Who is buying

function initToken() {
  const url = new URL(location.href);
  const given = url.searchParams.get("token");
  if (given) {
    sessionStorage.setItem(TOKEN, given.trim());
    // Out of the address bar and history: a token is a password for this buyer.
    url.searchParams.delete("token");
    history.replaceState(null, "", url.pathname + url.search + url.hash);
  }
  const token = sessionStorage.getItem(TOKEN) || "";
  $("token").value = token;
  $("token-box").open = !token;
  who(token);
  $("token").addEventListener("input", () => {
    const t = $("token").value.trim();
    sessionStorage.setItem(TOKEN, t);
    unanswered = null;
    who(t);
    if (fair) fair.refresh();
  });
}

// The buyer's id from the token (not checked here: the server checks it).
function who(token) {
  let sub = null;
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const bytes = Uint8Array.from(atob(part), (c) => c.charCodeAt(0));
    sub = JSON.parse(new TextDecoder().decode(bytes)).sub;
  } catch {
    sub = null;
  }
  $("who").textContent = typeof sub === "string" ? t("buy.as", { buyer: sub }) : token ? "" : t("buy.no_token");
}

// ---------------------------------------------------------------------------------------
// The drop

const BUYER_WORDS = Object.fromEntries(
  [
    "unauthorized", "forbidden", "not_found", "not_live", "sold_out", "limit_reached",
    "rate_limited", "unavailable", "undecided", "invalid_request", "idempotency_conflict",
    "expired", "not_payable", "not_admitted", "draw_only", "not_sold_out", "entries_closed",
  ].map((code) => [code, t(`buyer.${code}`)]),
);

function showDrop(d) {
  drop = d;
  $("title").textContent = d.title;
  document.title = t("buy.page_title_drop", { title: d.title });
  if (d.variants) {
    // A drop of pack sizes or colours: the buyer picks one; price, deposit and count are its.
    const pick = $("variant");
    pick.replaceChildren(...d.variants.map((v) => new Option(v.title, v.code)));
    pick.value = (d.variants.find((v) => v.remaining > 0) || d.variants[0]).code;
    pick.addEventListener("change", () => {
      unanswered = null;
      counters(drop);
    });
    $("variant-box").hidden = false;
  }
  if (d.opens_at && d.status === "pending") {
    $("opens").hidden = false;
    $("opens").textContent = t("buy.opens_at", { time: when(d.opens_at) });
  }
  counters(d);
  fair = new Fair(d, dropPath, {
    token: () => $("token").value.trim(),
    words: BUYER_WORDS,
    wanted: () => {
      const quantity = Number($("qty").value.trim() || "1");
      return picked() ? { quantity, variant: picked().code } : { quantity };
    },
    ready: (p) => {
      pass = p;
      buttonState();
    },
    order: engineOrder,
  });
  fair.start();
  buttonState();
}

// An order the engine made for this buyer (a draw's win, a unit from the waitlist).
async function engineOrder(id) {
  const { body } = await api("GET", `/v1/orders/${encodeURIComponent(id)}`, {
    token: $("token").value.trim(),
    words: BUYER_WORDS,
  });
  bought(body.order, $("result"));
}

// The variant picked (null on a drop without), as the drop last showed it.
function picked() {
  if (!drop || !drop.variants) return null;
  return drop.variants.find((v) => v.code === $("variant").value) || null;
}

function counters(c) {
  applyCounters(drop, c);
  const v = picked();
  for (const option of $("variant").options) {
    const it = drop.variants && drop.variants.find((x) => x.code === option.value);
    if (!it) continue;
    const price = formatMoney(it.price, drop.currency);
    option.textContent = it.remaining > 0
      ? t("buy.variant_option", { title: it.title, price })
      : t("buy.variant_gone", { title: it.title });
  }
  const unit = v || drop;
  $("price").textContent = formatMoney(unit.price, drop.currency);
  const deposit = $("deposit");
  deposit.hidden = unit.deposit == null;
  if (unit.deposit != null) {
    deposit.textContent = t("buy.deposit", {
      deposit: formatMoney(unit.deposit, drop.currency),
      balance: formatMoney(unit.price - unit.deposit, drop.currency),
    });
  }
  const left = v ? v.remaining : c.remaining;
  $("remaining").textContent = count(left);
  $("remaining").style.setProperty("--chars", String(Math.max(3, count(left).length)));
  const status = $("status");
  status.textContent = STATUS_WORDS[c.status] || c.status;
  status.dataset.status = c.status;
  if (c.status !== "pending") $("opens").hidden = true;
  if (fair) fair.counters();
  buttonState();
}

function buttonState() {
  const button = $("buy");
  const v = picked();
  const gone = drop !== null && (drop.status === "sold_out" || (v !== null && v.remaining === 0));
  const live = drop !== null && drop.status === "live" && !gone;
  // A draw sells to its winners only; a queue drop to the buyer whose turn it is.
  button.hidden = fair !== null && !fair.tapsBuy;
  const turn = !fair || fair.way !== "queue" || pass !== null;
  button.disabled = busy || !live || !turn;
  if (live && !turn && !busy) {
    button.textContent = t("fair.wait_turn");
    return;
  }
  button.textContent = busy
    ? t("buy.buying")
    : drop === null || live
      ? t("buy.buy")
      : gone
        ? t("status.sold_out")
        : drop.status === "closed"
          ? t("buy.closed")
          : t("status.pending");
}

function watch() {
  const source = new EventSource(`${dropPath}/live`);
  source.addEventListener("stock", (event) => counters(JSON.parse(event.data)));
}

// ---------------------------------------------------------------------------------------
// Buying

function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  // Pages on plain http:// from another machine are not a "secure context" and have no
  // randomUUID; getRandomValues is there everywhere.
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function buy() {
  if (busy) return;
  const msg = $("result");
  const token = $("token").value.trim();
  if (!token) {
    $("token-box").open = true;
    $("token").focus();
    return say(msg, t("buy.token_first"), "bad");
  }
  const text = $("qty").value.trim() || "1";
  if (!/^\d+$/.test(text) || Number(text) < 1) {
    return say(msg, t("buy.bad_quantity"), "bad");
  }
  const quantity = Number(text);
  const variant = picked() ? picked().code : undefined;
  const same = unanswered && unanswered.quantity === quantity && unanswered.token === token &&
    unanswered.variant === variant;
  const tap = same ? unanswered : { key: newKey(), quantity, token, variant };
  busy = true;
  buttonState();
  $("pay").hidden = true;
  stopCountdown();
  say(msg, t("buy.sending"));
  try {
    const order = await send(tap);
    unanswered = null;
    bought(order, msg);
  } catch (problem) {
    if (undecided(problem)) {
      unanswered = tap; // no answer: the next tap is the same order, not a new one
      say(msg, t("buy.no_answer"), "bad");
    } else {
      unanswered = null;
      refused(problem, msg, quantity);
    }
  } finally {
    busy = false;
    buttonState();
  }
}

// No answer, or 504 `undecided`: nobody knows yet whether the order was made, so the tap is
// sent again under its Idempotency-Key, which finds the order if it was.
const undecided = (problem) =>
  problem instanceof Problem && (problem.status === 0 || problem.status === 504);

async function send(tap) {
  for (let attempt = 0; ; attempt++) {
    try {
      const { body } = await api("POST", `${dropPath}/purchase`, {
        token: tap.token,
        body: tap.variant ? { quantity: tap.quantity, variant: tap.variant } : { quantity: tap.quantity },
        headers: pass ? { "Idempotency-Key": tap.key, "Flashsale-Pass": pass } : { "Idempotency-Key": tap.key },
        words: BUYER_WORDS,
      });
      return body.order;
    } catch (problem) {
      if (!undecided(problem) || attempt >= RETRIES) throw problem;
      await sleep(400 * 2 ** attempt);
    }
  }
}

function bought(order, msg) {
  const v = drop && drop.variants ? drop.variants.find((x) => x.code === order.variant) : null;
  const title = drop ? (v ? `${drop.title} · ${v.title}` : drop.title) : "";
  const what = t("buy.what", {
    n: order.quantity, title, amount: formatMoney(order.amount, order.currency),
  });
  let ref = t("buy.order_ref", { id: order.id });
  if (order.balance != null) {
    ref = `${t("buy.balance_due", { balance: formatMoney(order.balance, order.currency) })} · ${ref}`;
  }
  if (order.status === "reserved") {
    say(msg, t("buy.reserved", { what }), "warn", ref);
    const line = document.createElement("p");
    line.id = "time-left";
    msg.append(line);
    startCountdown(line, order.expires_at);
    const pay = $("pay");
    pay.hidden = false;
    pay.onclick = () => payFor(order, msg);
  } else if (order.status === "paid") {
    say(msg, t("buy.paid", { what }), "ok", ref);
  } else if (order.status === "expired") {
    say(msg, BUYER_WORDS.expired, "bad", ref);
  } else {
    say(msg, t("buy.confirmed", { what }), "ok", ref);
  }
}

function refused(problem, msg, quantity) {
  if (!(problem instanceof Problem)) return sayProblem(msg, problem);
  const left = picked() ? picked().remaining : drop ? drop.remaining : 0;
  if (problem.code === "sold_out" && drop && left > 0 && quantity > left) {
    problem.message = t("buy.not_enough", { n: quantity, left });
  } else if (problem.code === "limit_reached" && drop) {
    const n = drop.per_buyer_limit;
    problem.message = t("buy.limit", { n });
  }
  sayProblem(msg, problem);
}

async function payFor(order, msg) {
  const pay = $("pay");
  pay.disabled = true;
  try {
    const { body } = await api("POST", `/v1/orders/${encodeURIComponent(order.id)}/pay`, {
      token: $("token").value.trim(),
      words: BUYER_WORDS,
    });
    stopCountdown();
    pay.hidden = true;
    bought(body.order, msg);
  } catch (problem) {
    if (problem instanceof Problem && problem.code === "expired") {
      stopCountdown();
      pay.hidden = true;
    }
    sayProblem(msg, problem);
  } finally {
    pay.disabled = false;
  }
}

function startCountdown(line, expiresAt) {
  const end = Date.parse(expiresAt);
  const tick = () => {
    const left = Math.max(0, Math.round((end - Date.now()) / 1000));
    const m = Math.floor(left / 60);
    line.textContent = left > 0
      ? t("buy.pay_within", { time: `${count(m)}:${String(left % 60).padStart(2, "0")}` })
      : t("error.expired");
    if (left === 0) stopCountdown();
  };
  tick();
  countdown = setInterval(tick, 1000);
}

function stopCountdown() {
  if (countdown !== null) clearInterval(countdown);
  countdown = null;
}

// ---------------------------------------------------------------------------------------
// Start

async function start() {
  translatePage();
  switcher($("lang"));
  document.title = t("buy.page_title");
  initToken();
  $("buy").addEventListener("click", buy);
  try {
    showDrop((await api("GET", dropPath, { words: BUYER_WORDS })).body);
    watch();
  } catch (problem) {
    $("title").textContent = t("buy.unavailable_title");
    sayProblem($("result"), problem);
  }
  document.documentElement.dataset.ready = "true"; // for tests: the drop is on screen
}

start();
