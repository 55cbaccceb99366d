// The review page: a queue of items (records to approve/edit/reject, or prompts to rank), a
// list view, progress and agreement, guidelines and the keys beside every screen.
import { h, $, typing, num } from "./dom.js";
import { ApiError, Saver, getJSON as rawGet } from "./api.js";
import { renderRecord } from "./review.js";
import { renderRanking } from "./ranking.js";
import { renderList } from "./list.js";

const app = { session: null, saver: null, screen: null, view: "queue", filters: {}, item: null };
const main = () => $("#main");

const SAVE_TEXT = {
  saved: "All changes saved",
  saving: "Saving…",
  retrying: "Saving… (no connection, retrying)",
  conflict: "Not saved: conflict",
  error: "Not saved",
  auth: "Not saved: token refused",
};

function setSaveState(state, text) {
  const el = $("#save-state");
  el.dataset.state = state;
  el.textContent = text || SAVE_TEXT[state] || state;
}

function onSave(state, outcome) {
  if (state === "saved" || state === "saving" || state === "retrying") {
    setSaveState(state);
    if (state === "saved") refreshProgress();
  } else if (state === "conflict") {
    setSaveState("conflict");
    conflict(outcome);
  } else if (state === "error") {
    setSaveState("error", `Not saved: ${outcome.body.error || outcome.status}`);
  } else if (state === "auth") {
    setSaveState("auth");
    banner("Your token was refused: open the link with your token again. Unsaved changes are kept in this browser.");
  }
}

function banner(text, ...extra) {
  const el = $("#banner");
  if (!text) {
    el.hidden = true;
    el.replaceChildren();
    return;
  }
  el.replaceChildren(h("span", {}, text), ...extra,
    h("button", { type: "button", class: "small", onclick: () => banner(null) }, "Dismiss"));
  el.hidden = false;
}

function conflict(outcome) {
  const mine = outcome.entry.body;
  const text = mine.edits && Object.keys(mine.edits).length
    ? Object.entries(mine.edits).map(([k, v]) => `${k}: ${v}`).join("\n\n")
    : mine.ranks ? JSON.stringify(mine.ranks) : "";
  banner(`Not saved: ${outcome.body.error}. The saved version is shown now.`,
    text ? h("details", {}, h("summary", {}, "your unsaved change"), h("pre", { id: "unsaved" }, text)) : "");
  openItem(outcome.entry.item, { keepBanner: true });
}

async function getJSON(url) {
  try {
    return await rawGet(url, (offline) => {
      if (offline) setSaveState("retrying", "No connection, retrying…");
      else if (!app.saver || !app.saver.busy()) setSaveState("saved");
    });
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      setSaveState("auth");
      banner("Your token was refused: open the link with your token again.");
    }
    throw error;
  }
}

async function refreshProgress() {
  const p = await getJSON("/api/progress");
  const text = `${p.complete} of ${p.items} done · ${p.mine} by you · ${p.in_progress} open` + (p.overlap > 1 ? ` · ${p.overlap} people per item` : "");
  $("#progress").textContent = text;
  if (p.agreement) {
    const a = p.agreement;
    $("#agreement").hidden = false;
    const judge = a.with_judge ? ` With the judge: tau ${num(a.with_judge.mean_kendall_tau)}, alpha ${num(a.with_judge.krippendorff_alpha)}.` : "";
    $("#agreement-text").textContent = a.prompts_with_several === 0
      ? "No prompt has been ranked by two people yet."
      : `Kendall tau ${num(a.mean_kendall_tau)} (mean over ${a.prompts_with_several} prompt(s) ranked by several people), Krippendorff alpha ${num(a.krippendorff_alpha)}.${judge}`;
  }
}

function showKeys(keys) {
  const dl = $("#keys");
  dl.replaceChildren();
  for (const [key, what] of keys) dl.append(h("dt", {}, h("kbd", {}, key)), h("dd", {}, what));
}

const LIST_KEYS = [["q", "back to the queue"], ["Enter", "open the chosen row"]];

function context(item) {
  return {
    item,
    saver: app.saver,
    session: app.session,
    saving: () => setSaveState("saving"),
    finish: async (body) => {
      setSaveState("saving");
      const outcome = await app.saver.save(item.id, body);
      if (outcome && outcome.status === 200) {
        banner(null);
        await nextItem();
      } else if (outcome && outcome.status === 422) {
        banner(`Not saved: ${outcome.body.error}`);
      }
    },
  };
}

function show(item) {
  if (app.screen && app.screen.leave) app.screen.leave();
  app.item = item;
  app.view = "queue";
  app.saver.known(item.id, item.version);
  const render = item.kind === "prompt" ? renderRanking : renderRecord;
  app.screen = render(main(), context(item));
  showKeys(app.screen.keys);
  document.body.dataset.view = item.kind === "prompt" ? "ranking" : "review";
  main().dataset.item = item.id;
}

async function nextItem() {
  if (app.screen && app.screen.leave) app.screen.leave();
  const params = new URLSearchParams({ order: order() });
  const data = await getJSON(`/api/next?${params}`);
  refreshProgress();
  if (!data.item) {
    app.screen = null;
    app.item = null;
    document.body.dataset.view = "done";
    main().replaceChildren(h("section", { class: "done", id: "all-done" },
      h("h2", {}, "Nothing left for you to review"),
      h("p", {}, `${data.progress.complete} of ${data.progress.items} items are done. Items others hold come back here if they let them go.`),
      h("button", { type: "button", onclick: () => nextItem() }, "Look again")));
    showKeys([["l", "list of all items"]]);
    return;
  }
  show(data.item);
}

async function openItem(id, { keepBanner = false } = {}) {
  if (!keepBanner) banner(null);
  try {
    const data = await getJSON(`/api/items/${encodeURIComponent(id)}`);
    show(data.item);
  } catch (error) {
    banner(`Cannot open that item: ${error.message}`);
  }
}

async function showList() {
  if (app.screen && app.screen.leave) app.screen.leave();
  app.screen = null;
  app.view = "list";
  document.body.dataset.view = "list";
  showKeys(LIST_KEYS);
  await renderList(main(), {
    session: app.session,
    filters: app.filters,
    getJSON,
    order,
    open: (id) => openItem(id),
  });
}

function order() {
  return $("#order").value || app.session.order;
}

function onKey(event) {
  if (app.screen && app.view === "queue" && app.screen.onKey(event)) return;
  if (typing(event) || event.ctrlKey || event.metaKey || event.altKey) return;
  if (event.key === "l") showList();
  else if (event.key === "q") nextItem();
}

async function start() {
  app.session = await getJSON("/api/session");
  app.saver = new Saver(app.session.user, onSave);
  $("#who").textContent = `${app.session.user} · ${app.session.mode}`;
  const select = $("#order");
  for (const o of app.session.orders) {
    if (o !== "file" && !app.session.has_judge) continue;
    select.append(h("option", { value: o }, o === "file" ? "file order" : o.replace("-", " ")));
  }
  select.value = app.session.order;
  select.addEventListener("change", () => (app.view === "list" ? showList() : nextItem()));
  if (app.session.guidelines) {
    $("#guidelines").textContent = app.session.guidelines;
    $("#guidelines-box").hidden = false;
  }
  $("#nav-queue").addEventListener("click", () => nextItem());
  $("#nav-list").addEventListener("click", () => showList());
  document.addEventListener("keydown", onKey);
  if (app.saver.busy()) {
    setSaveState("saving");
    await app.saver.flush(); // changes made before a reload or a lost connection go first
  }
  await nextItem();
  document.body.dataset.ready = "1";
}

start().catch((error) => {
  main().replaceChildren(h("p", { class: "warn" }, `Could not start: ${error.message}`));
});
