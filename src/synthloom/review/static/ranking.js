// The ranking screen: a prompt and its responses (in this annotator's own random order),
// ranked best first by dragging them onto a rank or with the number keys; equal ranks tie.
import { h, typing } from "./dom.js";
import { DraftTimer } from "./api.js";

export const RANK_KEYS = [
  ["↑ ↓ / j k", "choose a response"],
  ["1 … 9", "give it that rank (same rank = tie)"],
  ["0", "take its rank away"],
  ["drag", "drop a response on a rank"],
  ["Enter", "submit and go to the next prompt"],
  ["c", "write a comment (Esc: done)"],
  ["x", "clear all ranks"],
  ["s", "skip for now"],
  ["l / q", "list / queue"],
];

export function renderRanking(root, ctx) {
  const { item, saver } = ctx;
  const saved = item.decision || {};
  let ranks = { ...(saved.ranks || {}) };
  let comment = saved.comment || "";
  const pending = saver.pending(item.id);
  if (pending) {
    ranks = { ...(pending.body.ranks || {}) };
    comment = pending.body.comment || "";
  }
  const responses = item.responses;
  const K = responses.length;
  let selected = 0;
  const timer = new DraftTimer(saver, () => saver.save(item.id, body("draft")), 250);

  function body(action) {
    return { action, ranks: { ...ranks }, comment };
  }

  function draft(now = false) {
    ctx.saving();
    timer.start();
    if (now) timer.flush();
  }

  const cards = {};
  for (const [index, r] of responses.entries()) {
    const card = h("div", { class: "card", draggable: "true", tabindex: "-1", dataset: { rid: r.id, number: String(r.number) }, id: `response-${r.number}` },
      h("div", { class: "card-head" }, h("span", { class: "num" }, `Response ${r.number}`), h("span", { class: "badge" }, "")),
      h("div", { class: "text" }, r.text));
    card.addEventListener("click", () => {
      selected = index;
      layout();
    });
    card.addEventListener("dragstart", (event) => {
      event.dataTransfer.setData("text/plain", r.id);
      event.dataTransfer.effectAllowed = "move";
      card.classList.add("dragging");
    });
    card.addEventListener("dragend", () => card.classList.remove("dragging"));
    cards[r.id] = card;
  }

  function row(rank) {
    const label = rank === 0 ? "not ranked yet" : `rank ${rank}`;
    const drop = h("div", { class: "drop" });
    const el = h("div", { class: rank === 0 ? "rank-row unranked" : "rank-row", dataset: { rank: String(rank) }, id: `rank-${rank}` },
      h("div", { class: "rank-label" }, rank === 0 ? "Unranked" : String(rank), h("small", {}, label)), drop);
    el.addEventListener("dragover", (event) => {
      event.preventDefault();
      el.classList.add("over");
    });
    el.addEventListener("dragleave", () => el.classList.remove("over"));
    el.addEventListener("drop", (event) => {
      event.preventDefault();
      el.classList.remove("over");
      const rid = event.dataTransfer.getData("text/plain");
      if (rid in cards) {
        selected = responses.findIndex((r) => r.id === rid);
        setRank(rid, rank);
      }
    });
    return el;
  }

  const rows = [row(0)];
  for (let rank = 1; rank <= K; rank++) rows.push(row(rank));
  const board = h("div", { class: "board", id: "board" }, rows);
  const summary = h("p", { class: "order-summary", id: "order-summary" });
  const commentBox = h("textarea", { id: "comment", rows: 2, placeholder: "comment (optional)", maxlength: 4000, "aria-label": "comment" });
  commentBox.value = comment;
  commentBox.addEventListener("input", () => {
    comment = commentBox.value;
    draft();
  });
  const message = h("p", { class: "warn", id: "rank-message", hidden: true });

  function layout() {
    for (const el of rows) el.querySelector(".drop").replaceChildren();
    for (const [index, r] of responses.entries()) {
      const rank = ranks[r.id] || 0;
      const card = cards[r.id];
      card.classList.toggle("selected", index === selected);
      card.querySelector(".badge").textContent = rank ? `rank ${rank}` : "";
      rows[rank].querySelector(".drop").append(card);
    }
    const tiers = {};
    for (const r of responses) if (ranks[r.id]) (tiers[ranks[r.id]] ||= []).push(`Response ${r.number}`);
    const text = Object.keys(tiers).map(Number).sort((a, b) => a - b).map((k) => tiers[k].join(" = ")).join(" > ");
    const missing = responses.filter((r) => !ranks[r.id]).length;
    summary.textContent = text
      ? `Your ranking: ${text}${missing ? ` (${missing} still unranked)` : ""}`
      : "Rank the responses, best first: drag them onto a rank, or choose one and press its rank number.";
    const submit = root.querySelector("#btn-submit");
    if (submit) submit.disabled = missing > 0;
  }

  function setRank(rid, rank) {
    if (rank === 0) delete ranks[rid];
    else ranks[rid] = rank;
    message.hidden = true;
    layout();
    draft();
  }

  const prompt = h("section", { class: "prompt" },
    h("div", { class: "meta" },
      h("span", { class: "pill" }, `#${item.seq + 1}`),
      h("span", { class: "pill" }, `${K} responses`),
      h("span", { class: "pill", id: "item-status" }, item.status.replace("_", " ")),
      h("code", { class: "rid" }, item.id)),
    h("h3", {}, "Prompt"),
    h("div", { class: "text prompt-text" }, item.prompt));
  const held = item.held_by ? h("p", { class: "warn" }, `${item.held_by} holds this prompt now: your ranking will be refused.`) : null;
  const decided = saved.state === "done" ? h("p", { class: "hint" }, "You ranked this prompt; a change reopens it until you submit again.") : null;
  const actions = h("div", { class: "actions" },
    h("button", { type: "button", class: "approve", id: "btn-submit", onclick: () => submit() }, "Submit ranking ", h("kbd", {}, "Enter")),
    h("button", { type: "button", id: "btn-clear", onclick: () => clearAll() }, "Clear ", h("kbd", {}, "x")),
    h("button", { type: "button", id: "btn-skip", onclick: () => skip() }, "Skip ", h("kbd", {}, "s")));
  root.replaceChildren(held || "", decided || "", prompt, summary, board, commentBox, message, actions);
  layout();

  function submit() {
    const missing = responses.filter((r) => !ranks[r.id]);
    if (missing.length) {
      message.textContent = `Rank every response first (${missing.map((r) => `Response ${r.number}`).join(", ")} not ranked).`;
      message.hidden = false;
      return;
    }
    timer.stop(); // a decision replaces any draft still waiting
    ctx.finish(body("rank"));
  }

  function clearAll() {
    ranks = {};
    layout();
    draft();
  }

  function skip() {
    timer.stop(); // a decision replaces any draft still waiting
    ctx.finish(body("skip"));
  }

  return {
    keys: RANK_KEYS,
    onKey(event) {
      if (event.target === commentBox) {
        if (event.key === "Escape") commentBox.blur();
        return true;
      }
      if (typing(event) || event.ctrlKey || event.metaKey || event.altKey) return false;
      const k = event.key;
      if (k === "ArrowDown" || k === "j") {
        selected = Math.min(K - 1, selected + 1);
        layout();
        cards[responses[selected].id].scrollIntoView({ block: "nearest" });
      } else if (k === "ArrowUp" || k === "k") {
        selected = Math.max(0, selected - 1);
        layout();
        cards[responses[selected].id].scrollIntoView({ block: "nearest" });
      } else if (/^[0-9]$/.test(k) && Number(k) <= K) {
        setRank(responses[selected].id, Number(k));
        // move on to the next response without a rank, so 1 2 2 3 ranks four in a row
        const next = responses.findIndex((r, i) => i > selected && !ranks[r.id]);
        if (Number(k) !== 0 && next >= 0) {
          selected = next;
          layout();
        }
      } else if (k === "Enter") submit();
      else if (k === "c") {
        event.preventDefault();
        commentBox.focus();
      } else if (k === "x") clearAll();
      else if (k === "s") skip();
      else return false;
      event.preventDefault();
      return true;
    },
    leave() {
      timer.flush();
    },
  };
}
