// Money as the API keeps it: an integer count of the currency's minor unit (1290 = 12.90
// yuan; 1290 = 1,290 yen). Hosts type prices in the major unit, the way they say them on
// camera; these helpers turn one into the other exactly (strings and BigInt, no floats).

import { locale as pageLocale, t } from "./i18n.js";

// ISO 4217 minor-unit digits of the currencies that do not have 2. Every other code is 2.
const MINOR_DIGITS = {
  BHD: 3, BIF: 0, CLF: 4, CLP: 0, DJF: 0, GNF: 0, IQD: 3, ISK: 0, JOD: 3, JPY: 0,
  KMF: 0, KRW: 0, KWD: 3, LYD: 3, OMR: 3, PYG: 0, RWF: 0, TND: 3, UGX: 0, UYI: 0,
  UYW: 4, VND: 0, VUV: 0, XAF: 0, XOF: 0, XPF: 0,
};

// Offered first in the currency field; any three-letter code may be typed.
export const COMMON_CURRENCIES = [
  "CNY", "USD", "EUR", "JPY", "KRW", "GBP", "INR", "IDR", "THB", "VND", "PHP", "MYR",
  "SGD", "HKD", "TWD", "BRL", "MXN", "NGN", "KES", "AUD", "CAD", "CHF", "KWD",
];

const MAX_EXACT = BigInt(Number.MAX_SAFE_INTEGER); // the API refuses prices above 2^53 - 1

export function minorDigits(currency) {
  return MINOR_DIGITS[String(currency).toUpperCase()] ?? 2;
}

export function isCurrency(code) {
  return /^[A-Z]{3}$/.test(code);
}

// An example price in the major unit, for hints: "12.90", "1290", "12.900".
export function examplePrice(currency) {
  const digits = minorDigits(currency);
  return digits === 0 ? "1290" : "12." + "90".padEnd(digits, "0").slice(0, digits);
}

// "12.90" (or "12,90", "12.9", " 12 ") in `currency` -> 1290. Throws an Error whose message
// is meant for the host, in plain words.
export function toMinor(text, currency) {
  const digits = minorDigits(currency);
  let s = String(text).trim().replace(/[\s_']/g, "");
  // A decimal comma ("12,90") is how half the world writes prices.
  if (!s.includes(".") && (s.match(/,/g) || []).length === 1) s = s.replace(",", ".");
  const m = /^(\d*)(?:\.(\d*))?$/.exec(s);
  if (!m || (m[1] === "" && !m[2])) {
    throw new Error(t("price.not_a_number", { example: examplePrice(currency) }));
  }
  const whole = m[1] || "0";
  const frac = m[2] || "";
  if (frac.length > digits) {
    throw new Error(
      digits === 0
        ? t("price.no_cents", { currency, example: examplePrice(currency) })
        : t("price.too_many_digits", { currency, digits }),
    );
  }
  const minor = BigInt(whole) * 10n ** BigInt(digits) + BigInt(frac.padEnd(digits, "0") || "0");
  if (minor > MAX_EXACT) throw new Error(t("price.too_large"));
  return Number(minor);
}

// 1290, "CNY" -> "CN¥12.90" (in the page's language); falls back to "12.90 CNY".
export function formatMoney(amount, currency, locale = pageLocale()) {
  const digits = minorDigits(currency);
  const text = majorText(amount, digits);
  try {
    return new Intl.NumberFormat(locale, {
      style: "currency",
      currency,
      minimumFractionDigits: digits,
      maximumFractionDigits: digits,
    }).format(text);
  } catch {
    return `${text} ${currency}`;
  }
}

// The exact decimal string of a minor-unit amount: 1290, 2 -> "12.90".
function majorText(amount, digits) {
  const raw = BigInt(amount).toString().padStart(digits + 1, "0");
  return digits === 0 ? raw : `${raw.slice(0, -digits)}.${raw.slice(-digits)}`;
}
