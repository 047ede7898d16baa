// The console's webhooks: a host points flashsale at the shop's own system (an address),
// picks which order events it gets, copies the secret once, and sees what did not arrive.
// Talks only to the public API, through the console's host call.

import { say } from "./api.js";
import { count, t } from "./i18n.js";

const $ = (id) => document.getElementById(id);
const DAY_MS = 24 * 3600 * 1000;

export function setupWebhooks(hostCall) {
  const msg = $("webhook-msg");

  async function load() {
    const body = await hostCall("GET", "/v1/webhooks", undefined, msg);
    if (body === null) return;
    const items = await Promise.all(body.webhooks.map((w) => item(w)));
    $("webhooks").replaceChildren(...items);
    $("webhooks-none").hidden = body.webhooks.length > 0;
  }

  async function item(w) {
    const li = document.createElement("li");
    li.className = "webhook";
    li.dataset.id = w.id;
    const url = document.createElement("code");
    url.dir = "ltr";
    url.textContent = w.url;
    const what = document.createElement("p");
    what.className = "hint";
    const where = w.room ? t("webhooks.in_room", { room: w.room }) : t("webhooks.every_room");
    const kinds = w.events.map((e) => t(`webhooks.${e.replace("order.", "")}`)).join(" · ");
    what.textContent = `${where} · ${kinds}`;
    const failed = document.createElement("p");
    failed.className = "hint failed";
    const page = await hostCall("GET", `/v1/webhooks/${w.id}/deliveries?status=failed&limit=1000`, undefined, msg);
    const n = page === null ? 0 : page.deliveries.length;
    failed.textContent = n ? t("webhooks.failed", { n: count(n) }) : t("webhooks.none_failed");
    const resend = document.createElement("button");
    resend.type = "button";
    resend.className = "resend";
    resend.textContent = t("webhooks.replay");
    resend.addEventListener("click", async () => {
      const since = new Date(Date.now() - DAY_MS).toISOString();
      const done = await hostCall("POST", `/v1/webhooks/${w.id}/replay`, { since }, msg);
      if (done !== null) say(msg, t("webhooks.replayed", { n: count(done.replayed) }), "ok");
    });
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "remove quiet";
    remove.textContent = t("webhooks.remove");
    remove.addEventListener("click", async () => {
      if ((await hostCall("DELETE", `/v1/webhooks/${w.id}`, undefined, msg)) === null) return;
      say(msg, t("webhooks.removed"), "ok");
      load();
    });
    const row = document.createElement("div");
    row.className = "row";
    row.append(resend, remove);
    li.append(url, what, failed, row);
    return li;
  }

  $("webhook-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    say(msg, "");
    const events = [...document.querySelectorAll("input[name=webhook-event]:checked")].map((i) => i.value);
    if (!events.length) return say(msg, t("webhooks.pick_event"), "error");
    const room = $("webhook-room").value.trim() || null;
    const body = { url: $("webhook-url").value.trim(), events, room };
    const made = await hostCall("POST", "/v1/webhooks", body, msg);
    if (made === null) return;
    $("webhook-secret-value").textContent = made.webhook.secret;
    $("webhook-secret").hidden = false;
    $("webhook-url").value = "";
    load();
  });

  return load;
}
