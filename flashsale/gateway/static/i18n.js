// The pages' words in the sellers' languages: English, Simplified Chinese and Urdu (right to
// left). The language is the one chosen with the switcher (kept in this browser), else the
// first of the browser's languages that the pages speak, else English. Every string on
// screen comes from messages.<lang>.json (tests check that each language has every key);
// numbers, prices and times are formatted for the language by Intl.

export const LANGUAGES = { en: "English", "zh-Hans": "简体中文", ur: "اردو" };
const RTL = new Set(["ur"]);
const CHOSEN = "flashsale.lang"; // localStorage: the switcher's choice

// "zh-CN", "zh-Hant-TW", "ur-PK", "en-GB" -> the language the pages have for it.
export function pick(wanted = navigator.languages || [navigator.language], stored = localStorage.getItem(CHOSEN)) {
  if (stored && stored in LANGUAGES) return stored;
  for (const tag of wanted) {
    const base = String(tag).toLowerCase().split("-")[0];
    if (base === "zh") return "zh-Hans"; // Simplified is the closest the pages have
    if (base === "ur") return "ur";
    if (base === "en") return "en";
  }
  return "en";
}

const lang = pick();
const messages = await (await fetch(`/static/messages.${lang}.json`, { cache: "no-cache" })).json();

export function language() {
  return lang;
}

// The locale for Intl: numbers with Latin digits in every language the pages have.
export function locale() {
  return lang;
}

// The text of `key`, with `{name}` filled from `vars` (numbers formatted for the locale).
export function t(key, vars = {}) {
  const text = messages[key];
  if (text === undefined) {
    console.error(`flashsale: no "${key}" in messages.${lang}.json`);
    return key;
  }
  return text.replace(/\{(\w+)\}/g, (whole, name) => {
    const value = vars[name];
    if (value === undefined) return whole;
    return typeof value === "number" ? count(value) : String(value);
  });
}

const counts = new Intl.NumberFormat(lang);
export function count(n) {
  return typeof n === "number" ? counts.format(n) : "–";
}

const oneDecimal = new Intl.NumberFormat(lang, { minimumFractionDigits: 1, maximumFractionDigits: 1 });
export function decimal(n) {
  return oneDecimal.format(n);
}

export function when(date) {
  return new Date(date).toLocaleString(lang, { dateStyle: "medium", timeStyle: "short" });
}

// Fills the page's fixed text: `data-i18n` (text; a `{code}` in it becomes a <code> holding
// `data-i18n-code`), `data-i18n-placeholder`, `data-i18n-label` (aria-label) and
// `data-i18n-alt`; then the document's language and direction.
export function translatePage(root = document) {
  for (const el of root.querySelectorAll("[data-i18n]")) {
    const text = t(el.dataset.i18n);
    const code = el.dataset.i18nCode;
    if (code === undefined) {
      el.textContent = text;
      continue;
    }
    const codes = code.split("|");
    const parts = text.split(/\{code(\d?)\}/);
    el.replaceChildren(
      ...parts.map((part, i) => {
        if (i % 2 === 0) return document.createTextNode(part);
        const c = document.createElement("code");
        c.textContent = codes[Number(part || 1) - 1] ?? "";
        return c;
      }),
    );
  }
  for (const [attr, target] of [["i18nPlaceholder", "placeholder"], ["i18nLabel", "aria-label"], ["i18nAlt", "alt"]]) {
    const selector = `[data-${attr.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}]`;
    for (const el of root.querySelectorAll(selector)) el.setAttribute(target, t(el.dataset[attr]));
  }
  document.documentElement.lang = lang;
  document.documentElement.dir = RTL.has(lang) ? "rtl" : "ltr";
}

// The language switcher: a <select> of every language, each named in itself; a choice is
// kept and the page reloaded in it (what is on screen lives in the address and the tab).
export function switcher(select) {
  select.replaceChildren(
    ...Object.entries(LANGUAGES).map(([code, name]) => {
      const option = document.createElement("option");
      option.value = code;
      option.lang = code;
      option.textContent = name;
      option.selected = code === lang;
      return option;
    }),
  );
  select.addEventListener("change", () => {
    localStorage.setItem(CHOSEN, select.value);
    location.reload();
  });
}
