// Talking to the server. GETs retry until the server answers; saves go through one queue
// (kept in localStorage until the server confirms them), so a change survives a dropped
// connection, a server restart and a page reload. A save names the version it was based on:
// a stale one is refused (409) and reported, never merged.

const CSRF = document.querySelector('meta[name="csrf-token"]').content;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

export async function getJSON(url, onRetry) {
  let delay = 300;
  for (;;) {
    let response = null;
    try {
      response = await fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" });
    } catch (e) {
      response = null;
    }
    if (response === null || response.status >= 500) {
      if (onRetry) onRetry(true);
      await sleep(delay);
      delay = Math.min(delay * 2, 3000);
      continue;
    }
    if (onRetry) onRetry(false);
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new ApiError(response.status, body.error || response.statusText, body);
    return body;
  }
}

export class Saver {
  constructor(user, listener) {
    this.key = `synthloom-review:${location.host}:${user}`;
    this.listener = listener;
    this.queue = []; // [{id, item, body}]
    this.versions = {}; // item id -> version the next save is based on
    this.waiting = new Map(); // entry id -> resolve
    this.running = false;
    this.sending = null;
    this.counter = 0;
    this.held = 0; // drafts waiting to be sent (DraftTimer): not saved yet either
    try {
      const saved = JSON.parse(localStorage.getItem(this.key) || "null");
      if (saved) {
        this.queue = saved.queue || [];
        this.versions = saved.versions || {};
      }
    } catch (e) {
      this.queue = [];
    }
    window.addEventListener("beforeunload", (event) => {
      if (this.queue.length) event.preventDefault();
    });
    window.addEventListener("online", () => this.kick());
  }

  persist() {
    try {
      if (this.queue.length) {
        localStorage.setItem(this.key, JSON.stringify({ queue: this.queue, versions: this.versions }));
      } else {
        localStorage.removeItem(this.key);
      }
    } catch (e) {
      /* storage full or disabled: the queue still lives in memory */
    }
  }

  // the version the page loaded; kept if an unsent save for the item is still waiting
  known(item, version) {
    if (!this.pending(item)) this.versions[item] = version;
  }

  pending(item) {
    for (let i = this.queue.length - 1; i >= 0; i--) {
      if (this.queue[i].item === item) return this.queue[i];
    }
    return null;
  }

  busy() {
    return this.queue.length > 0 || this.held > 0;
  }

  // queue a save; the promise settles when the server has answered it
  save(item, body) {
    const last = this.queue[this.queue.length - 1];
    const entry = { id: `${Date.now()}-${this.counter++}`, item, body };
    let replaced = null;
    if (last && last !== this.sending && last.item === item && last.body.action === "draft") {
      replaced = this.queue.pop();
    }
    this.queue.push(entry);
    this.persist();
    let resolveDone = null;
    const done = new Promise((resolve) => {
      resolveDone = resolve;
    });
    this.waiting.set(entry.id, resolveDone);
    if (replaced && this.waiting.has(replaced.id)) {
      // a draft replaced before it was sent is answered by the save that replaced it
      const earlier = this.waiting.get(replaced.id);
      this.waiting.delete(replaced.id);
      done.then(earlier);
    }
    this.emit("saving");
    this.kick();
    return done;
  }

  emit(state, detail = {}) {
    if (this.listener) this.listener(state, detail);
  }

  settle(entry, outcome) {
    const resolve = this.waiting.get(entry.id);
    this.waiting.delete(entry.id);
    if (resolve) resolve(outcome);
  }

  async kick() {
    if (this.running) return;
    this.running = true;
    let delay = 300;
    while (this.queue.length) {
      const entry = this.queue[0];
      this.sending = entry;
      let response = null;
      let body = {};
      try {
        response = await fetch(`/api/decisions/${encodeURIComponent(entry.item)}`, {
          method: "PUT",
          headers: { "Content-Type": "application/json", "X-CSRF-Token": CSRF },
          body: JSON.stringify({ ...entry.body, version: this.versions[entry.item] ?? 0 }),
        });
        body = await response.json().catch(() => ({}));
      } catch (e) {
        response = null;
      }
      if (response === null || response.status >= 500 || response.status === 429) {
        this.emit("retrying");
        await sleep(delay);
        delay = Math.min(delay * 2, 3000);
        continue;
      }
      delay = 300;
      if (response.status === 401) {
        this.emit("auth");
        break; // kept: it is sent again once the page has a valid token
      }
      this.queue.shift();
      this.sending = null;
      const outcome = { status: response.status, body, entry };
      if (response.ok) {
        this.versions[entry.item] = body.version;
      } else if (response.status === 409) {
        // later saves of this item were based on the refused one: refused with it
        const dropped = this.queue.filter((e) => e.item === entry.item);
        this.queue = this.queue.filter((e) => e.item !== entry.item);
        this.versions[entry.item] = body.version ?? 0;
        for (const e of dropped) this.settle(e, outcome);
        this.emit("conflict", outcome);
      } else {
        this.emit("error", outcome);
      }
      this.persist();
      this.settle(entry, outcome);
    }
    this.sending = null;
    this.running = false;
    this.persist();
    if (!this.busy()) this.emit("saved");
  }

  // wait until everything queued has been answered
  async flush() {
    const last = this.queue[this.queue.length - 1];
    if (!last) return null;
    this.kick();
    return new Promise((resolve) => {
      const earlier = this.waiting.get(last.id);
      this.waiting.set(last.id, (outcome) => {
        if (earlier) earlier(outcome);
        resolve(outcome);
      });
    });
  }
}

// A draft sent after a pause in typing or clicking (`start` again restarts the pause). While
// one waits, the saver is busy: "All changes saved" is not shown for a change not yet sent.
export class DraftTimer {
  constructor(saver, send, ms) {
    this.saver = saver;
    this.send = send;
    this.ms = ms;
    this.timer = null;
  }

  start() {
    if (this.timer !== null) clearTimeout(this.timer);
    else this.saver.held++;
    this.timer = setTimeout(() => this.flush(), this.ms);
  }

  // send the waiting draft now (nothing if none waits)
  flush() {
    if (this.timer === null) return;
    this.stop();
    this.send();
  }

  // no draft waits any more (a decision replaces it)
  stop() {
    if (this.timer === null) return;
    clearTimeout(this.timer);
    this.timer = null;
    this.saver.held--;
  }
}
