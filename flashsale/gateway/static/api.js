// The HTTP API as the pages use it: JSON in and out, and every failure turned into a
// Problem that carries plain words for the screen (the API's own message stays as detail).

export class Problem extends Error {
  constructor(words, { status = 0, code = "network", detail = "", retryAfter = null } = {}) {
    super(words);
    this.status = status; // 0: no answer at all
    this.code = code;
    this.detail = detail;
    this.retryAfter = retryAfter; // seconds, from Retry-After
  }
}

// Words for the codes of the contract; each page passes its own for what differs.
export const WORDS = {
  network: "No answer from the server. Check the internet connection and try again.",
  unauthorized: "The key was not accepted.",
  forbidden: "This key is not allowed to do that.",
  not_found: "That drop was not found.",
  method_not_allowed: "The server does not take that request.",
  invalid_request: "Something in the request is not right.",
  payload_too_large: "That is too much text.",
  not_live: "This drop is not on sale right now.",
  sold_out: "Sold out.",
  limit_reached: "The per-buyer limit is reached.",
  expired: "The time to pay has run out.",
  not_payable: "This order needs no payment.",
  idempotency_conflict: "This tap was already used for another request. Tap again.",
  rate_limited: "Too many requests at once.",
  unavailable: "The server is very busy or cannot reach its database.",
};

// A field name in the API's validation messages (`... - at $.stock`), as the form calls it.
const FIELDS = {
  sku: "Product code",
  title: "Product name",
  price: "Price",
  currency: "Currency",
  stock: "Units for sale",
  per_buyer_limit: "Most one buyer may buy",
  payment_window_s: "Time to pay",
  opens_at: "Opens by itself at",
  room: "Room",
  quantity: "How many",
};

export function fieldOf(message) {
  const m = /`\$\.(\w+)`/.exec(message || "");
  return m ? FIELDS[m[1]] || m[1] : null;
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
  let said = words[code] || WORDS[code] || `The server said no (${response.status}).`;
  const field = code === "invalid_request" ? fieldOf(error.message) : null;
  if (field) said = `Check “${field}”. ${said}`;
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
    if (problem.retryAfter) text += ` Try again in ${problem.retryAfter} s.`;
    say(el, text, "bad", problem.detail);
  } else {
    say(el, String(problem && problem.message ? problem.message : problem), "bad");
  }
}

export const STATUS_WORDS = {
  pending: "Not open yet",
  live: "On sale now",
  sold_out: "Sold out",
  closed: "Closed",
};

const counts = new Intl.NumberFormat();
export function count(n) {
  return typeof n === "number" ? counts.format(n) : "–";
}
