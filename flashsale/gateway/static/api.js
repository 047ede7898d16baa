// The HTTP API as the pages use it: JSON in and out, and every failure turned into a
// Problem that carries plain words for the screen (the API's own message stays as detail).

import { count, language, t } from "./i18n.js";

export class Problem extends Error {
  constructor(words, { status = 0, code = "network", detail = "", retryAfter = null } = {}) {
    super(words);
    this.status = status; // 0: no answer at all
    this.code = code;
    this.detail = detail;
    this.retryAfter = retryAfter; // seconds, from Retry-After
  }
}

// Words for the codes of the contract (messages: "error.<code>"); each page passes its own
// for what differs.
const CODES = [
  "network", "unauthorized", "forbidden", "not_found", "method_not_allowed", "invalid_request",
  "payload_too_large", "not_live", "sold_out", "limit_reached", "expired", "not_payable",
  "idempotency_conflict", "rate_limited", "unavailable",
];
export const WORDS = Object.fromEntries(CODES.map((code) => [code, t(`error.${code}`)]));

// A field name in the API's validation messages (`... - at $.stock`), as the form calls it.
const FIELDS = [
  "sku", "title", "price", "currency", "stock", "per_buyer_limit", "payment_window_s",
  "opens_at", "room", "quantity",
];

export function fieldOf(message) {
  const m = /`\$\.(\w+)`/.exec(message || "");
  if (!m) return null;
  return FIELDS.includes(m[1]) ? t(`field.${m[1]}`) : m[1];
}

// Calls the API. Returns {status, body, response}; throws a Problem for an error answer or
// no answer. `raw` leaves the body unread (for files).
export async function api(method, path, { token, body, headers = {}, words = {}, raw } = {}) {
  const sent = { ...headers };
  if (token) sent.Authorization = `Bearer ${token}`;
  if (body !== undefined) sent["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers: sent,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
  } catch {
    throw new Problem(words.network || WORDS.network);
  }
  if (response.ok && raw) return { status: response.status, body: null, response };
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (response.ok) return { status: response.status, body: data, response };
  const error = (data && data.error) || {};
  const code = error.code || "error";
  const retry = Number.parseInt(response.headers.get("Retry-After") || "", 10);
  let said = words[code] || WORDS[code] || t("error.other", { status: String(response.status) });
  const field = code === "invalid_request" ? fieldOf(error.message) : null;
  if (field) said = t("error.check_field", { field, said });
  throw new Problem(said, {
    status: response.status,
    code,
    detail: error.message || "",
    retryAfter: Number.isFinite(retry) ? retry : null,
  });
}

// Writes a message into `el`: kind is "ok", "bad" or "info"; a Problem adds its detail.
export function say(el, text, kind = "info", detail = "") {
  el.replaceChildren();
  el.hidden = !text;
  el.dataset.kind = kind;
  if (!text) return;
  const main = document.createElement("p");
  main.textContent = text;
  el.append(main);
  if (detail) {
    const small = document.createElement("p");
    small.className = "detail";
    small.textContent = detail;
    el.append(small);
  }
}

export function sayProblem(el, problem) {
  if (problem instanceof Problem) {
    let text = problem.message;
    if (problem.retryAfter) text += ` ${t("error.retry_in", { n: problem.retryAfter })}`;
    // The API's own message is English: a detail for English pages only.
    say(el, text, "bad", language() === "en" ? problem.detail : "");
  } else {
    say(el, String(problem && problem.message ? problem.message : problem), "bad");
  }
}

export const STATUS_WORDS = Object.fromEntries(
  ["pending", "live", "sold_out", "closed"].map((status) => [status, t(`status.${status}`)]),
);

export { count };

// A /live `stock` event's counters onto the drop as the page holds it: the drop's own, and
// those of the variants the event names (an event may name only those that changed).
export function applyCounters(drop, c) {
  drop.remaining = c.remaining;
  drop.sold = c.sold;
  drop.status = c.status;
  for (const v of drop.variants || []) {
    const now = c.variants && c.variants[v.code];
    if (now) Object.assign(v, now);
  }
}
