// The buyer page's ways to scarce units other than the fastest tap: a queue drop's waiting
// room (a ticket, polled as the server's Retry-After says, then a pass to buy with), a
// draw (an entry, then the result), and a first-come drop's waitlist (an entry, then the
// order a unit that came back made). Each calls `ready` with what the Buy button needs.

import { api, Problem, say, sayProblem } from "./api.js";
import { count, t, when } from "./i18n.js";

const $ = (id) => document.getElementById(id);


// The way this drop sells, or null for a plain first-come drop with no waitlist.
export function wayOf(drop) {
  if (drop.admission === "queue") return "queue";
  if (drop.admission === "draw") return "draw";
  return drop.payment_window_s > 0 ? "waitlist" : null;
}

export class Fair {
  // hooks: token() the buyer's token; words the buyer's error words; ready(pass) when a
  // pass lets the buyer buy (null: not, or no longer); order(o) an order the engine made
  // for the buyer (a draw's win, a waitlist's unit).
  constructor(drop, dropPath, hooks) {
    this.drop = drop;
    this.path = dropPath;
    this.hooks = hooks;
    this.way = wayOf(drop);
    this.polling = false;
    this.box = $("fair");
    this.state = $("fair-state");
    this.button = $("fair-act");
  }

  start() {
    if (!this.way) return;
    this.box.hidden = false;
    this.button.addEventListener("click", () => this.act());
    this.refresh();
  }

  // Whether the open sale is for this buyer: a queue drop needs a pass, a draw drop never.
  get tapsBuy() {
    return this.way !== "draw";
  }

  // After a refresh of the drop's counters: a waitlist is offered once the sale is out;
  // a queue ticket is read at once when the drop goes live (its place is drawn then).
  counters() {
    if (this.way === "waitlist") this.label();
    if (this.drop.status !== this.seen && this.seen !== undefined && this.wake) this.wake();
    this.seen = this.drop.status;
  }

  label() {
    const words = {
      queue: t("fair.join_queue"),
      draw: t("fair.enter_draw"),
      waitlist: t("fair.join_waitlist"),
    };
    this.button.textContent = words[this.way];
    if (this.way === "waitlist") {
      const gone = this.drop.status === "sold_out" || this.drop.remaining === 0;
      this.button.hidden = this.joined || !gone;
    } else {
      this.button.hidden = this.joined;
    }
  }

  async call(method, suffix, body) {
    const token = this.hooks.token();
    if (!token) throw new Problem(t("buy.token_first"), { status: 401, code: "unauthorized" });
    return api(method, `${this.path}${suffix}`, { token, body, words: this.hooks.words });
  }

  // The buyer's ticket or entry, if any; then polling while it can change.
  async refresh() {
    this.joined = false;
    this.label();
    if (!this.hooks.token()) return;
    try {
      const { body } = await this.call("GET", this.readPath());
      this.joined = true;
      this.show(body);
      this.poll();
    } catch (problem) {
      if (!(problem instanceof Problem && problem.status === 404)) sayProblem(this.state, problem);
    }
    this.label();
  }

  readPath() {
    return { queue: "/queue", draw: "/entries/me", waitlist: "/waitlist/me" }[this.way];
  }

  async act() {
    const suffix = { queue: "/queue", draw: "/entries", waitlist: "/waitlist" }[this.way];
    const body = this.way === "queue" ? undefined : this.hooks.wanted();
    this.button.disabled = true;
    try {
      const { body: answer } = await this.call("POST", suffix, body);
      this.joined = true;
      this.show(answer);
      this.poll();
    } catch (problem) {
      sayProblem(this.state, problem);
    } finally {
      this.button.disabled = false;
      this.label();
    }
  }

  // Polls the ticket or entry until it can change no more, at the pace the server asks.
  async poll() {
    if (this.polling) return;
    this.polling = true;
    try {
      for (;;) {
        const wait = this.nextPoll;
        if (wait === null) return;
        await new Promise((resolve) => {
          this.wake = resolve;
          setTimeout(resolve, wait * 1000);
        });
        try {
          const { body } = await this.call("GET", this.readPath());
          this.show(body);
        } catch (problem) {
          if (!(problem instanceof Problem) || problem.status >= 500 || problem.status === 0) continue;
          sayProblem(this.state, problem);
          return;
        }
      }
    } finally {
      this.polling = false;
    }
  }

  show(body) {
    if (this.way === "queue") this.showTicket(body.ticket);
    else if (this.way === "draw") this.showEntry(body.entry);
    else this.showWaiting(body.entry);
  }

  showTicket(ticket) {
    this.nextPoll = ticket.retry_after_s;
    const n = ticket.position;
    switch (ticket.status) {
      case "waiting":
        say(this.state, n === null ? t("fair.queue_before_start") : t("fair.queue_position", { n: count(n) }));
        this.hooks.ready(null);
        break;
      case "sold_out":
        say(this.state, t("fair.queue_sold_out", { n: count(n) }), "warn");
        this.hooks.ready(null);
        break;
      case "admitted":
        say(this.state, t("fair.queue_admitted", { time: when(ticket.pass_expires_at) }), "ok");
        this.hooks.ready(ticket.pass);
        this.nextPoll = 5; // to see it used, or lapsed
        break;
      case "used":
        say(this.state, t("fair.queue_used"), "ok");
        this.hooks.ready(null);
        this.nextPoll = null;
        break;
      default:
        say(this.state, t("fair.queue_expired"), "bad");
        this.hooks.ready(null);
        this.nextPoll = null;
    }
  }

  async showEntry(entry) {
    const at = when(this.drop.draws_at);
    if (entry.status === "entered") {
      say(this.state, t("fair.draw_entered", { time: at }));
      this.nextPoll = Math.max(1, Math.min(30, (Date.parse(this.drop.draws_at) - Date.now()) / 1000));
    } else if (entry.status === "won") {
      say(this.state, t("fair.draw_won"), "ok");
      this.nextPoll = null;
      await this.hooks.order(entry.order_id);
    } else {
      say(this.state, t("fair.draw_lost"), "warn");
      this.nextPoll = 10; // a winner who does not pay hands the unit on
    }
  }

  async showWaiting(entry) {
    if (entry.status === "waiting") {
      say(this.state, t("fair.waitlist_position", { n: count(entry.position) }));
      this.nextPoll = 1;
    } else if (entry.status === "served") {
      say(this.state, t("fair.waitlist_served"), "ok");
      this.nextPoll = null;
      await this.hooks.order(entry.order_id);
    } else {
      this.joined = false;
      this.nextPoll = null;
    }
  }
}
