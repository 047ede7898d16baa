// The buyer page, for demos and rehearsals: one drop, its live count, one big Buy button.
// Every tap gets its own Idempotency-Key; a tap that got no answer (the network failed) is
// sent again with the same key, so it can never make a second order.

import { api, count, Problem, say, sayProblem, STATUS_WORDS } from "./api.js";
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
  $("who").textContent = typeof sub === "string" ? `Buying as ${sub}` : token ? "" : "No buyer token yet.";
}

// ---------------------------------------------------------------------------------------
// The drop

const BUYER_WORDS = {
  unauthorized: "Your buyer token is not valid or has expired. Ask the host for a new link.",
  forbidden: "That is not a buyer token.",
  not_found: "This drop does not exist. Check the link.",
  not_live: "Not on sale right now. Wait for the host to open it.",
  sold_out: "Sold out. Every unit is gone.",
  limit_reached: "You have reached the limit for this drop.",
  rate_limited: "Too many taps. Wait a moment.",
  unavailable: "The shop is very busy. Nothing was bought.",
  undecided: "The shop could not confirm your order in time. Tap Buy again: you will not buy twice.",
  invalid_request: "Something is wrong with this request.",
  idempotency_conflict: "That tap was already used for another amount. Tap Buy again.",
  expired: "Too late: the time to pay ran out, and the units went back on sale.",
  not_payable: "This order needs no payment: it is already confirmed.",
};

function showDrop(d) {
  drop = d;
  $("title").textContent = d.title;
  document.title = `${d.title} · Buy`;
  $("price").textContent = formatMoney(d.price, d.currency);
  if (d.opens_at && d.status === "pending") {
    $("opens").hidden = false;
    $("opens").textContent = `Goes on sale at ${new Date(d.opens_at).toLocaleString()}`;
  }
  counters(d);
}

function counters(c) {
  drop.remaining = c.remaining;
  drop.sold = c.sold;
  drop.status = c.status;
  $("remaining").textContent = count(c.remaining);
  const status = $("status");
  status.textContent = STATUS_WORDS[c.status] || c.status;
  status.dataset.status = c.status;
  if (c.status !== "pending") $("opens").hidden = true;
  buttonState();
}

function buttonState() {
  const button = $("buy");
  const live = drop !== null && drop.status === "live";
  button.disabled = busy || !live;
  button.textContent = busy
    ? "Buying…"
    : drop === null || live
      ? "Buy"
      : drop.status === "sold_out"
        ? "Sold out"
        : drop.status === "closed"
          ? "Sale closed"
          : "Not open yet";
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
    return say(msg, "Paste your buyer token first (below).", "bad");
  }
  const text = $("qty").value.trim() || "1";
  if (!/^\d+$/.test(text) || Number(text) < 1) {
    return say(msg, "“How many” must be a whole number, 1 or more.", "bad");
  }
  const quantity = Number(text);
  const same = unanswered && unanswered.quantity === quantity && unanswered.token === token;
  const tap = same ? unanswered : { key: newKey(), quantity, token };
  busy = true;
  buttonState();
  $("pay").hidden = true;
  stopCountdown();
  say(msg, "Sending your order…");
  try {
    const order = await send(tap);
    unanswered = null;
    bought(order, msg);
  } catch (problem) {
    if (undecided(problem)) {
      unanswered = tap; // no answer: the next tap is the same order, not a new one
      say(msg, "No answer from the shop. Check your connection and tap Buy again: you will not buy twice.", "bad");
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
        body: { quantity: tap.quantity },
        headers: { "Idempotency-Key": tap.key },
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
  const what = `${count(order.quantity)} × ${drop ? drop.title : "item"}, ${formatMoney(order.amount, order.currency)}`;
  if (order.status === "reserved") {
    say(msg, `Reserved for you: ${what}.`, "warn", `Order ${order.id}`);
    const line = document.createElement("p");
    line.id = "time-left";
    msg.append(line);
    startCountdown(line, order.expires_at);
    const pay = $("pay");
    pay.hidden = false;
    pay.onclick = () => payFor(order, msg);
  } else if (order.status === "paid") {
    say(msg, `Paid. Your order is complete: ${what}.`, "ok", `Order ${order.id}`);
  } else if (order.status === "expired") {
    say(msg, BUYER_WORDS.expired, "bad", `Order ${order.id}`);
  } else {
    say(msg, `Order confirmed! ${what}.`, "ok", `Order ${order.id}`);
  }
}

function refused(problem, msg, quantity) {
  if (!(problem instanceof Problem)) return sayProblem(msg, problem);
  if (problem.code === "sold_out" && drop && drop.remaining > 0 && quantity > drop.remaining) {
    problem.message = `Not enough left for ${count(quantity)}: only ${count(drop.remaining)} left. Try fewer.`;
  } else if (problem.code === "limit_reached" && drop) {
    const n = drop.per_buyer_limit;
    problem.message = `You have reached the limit: at most ${count(n)} per buyer for this drop.`;
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
      ? `Pay within ${m}:${String(left % 60).padStart(2, "0")}, or the units go back on sale.`
      : "The time to pay has run out.";
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
  initToken();
  $("buy").addEventListener("click", buy);
  try {
    showDrop((await api("GET", dropPath, { words: BUYER_WORDS })).body);
    watch();
  } catch (problem) {
    $("title").textContent = "Drop not available";
    sayProblem($("result"), problem);
  }
  document.documentElement.dataset.ready = "true"; // for tests: the drop is on screen
}

start();
