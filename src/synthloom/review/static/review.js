// The record screen: approve, reject with a reason, edit in place (the original kept and one
// key away), skip. Every change is saved as a draft when made.
import { h, typing, num } from "./dom.js";
import { DraftTimer } from "./api.js";

export const RECORD_KEYS = [
  ["a", "approve (with your edits)"],
  ["r", "reject: type a reason, Enter"],
  ["e", "edit the main text (Esc: done)"],
  ["s", "skip for now"],
  ["o", "show / hide the original"],
  ["Ctrl+Enter", "approve while editing"],
  ["l / q", "list / queue"],
];

function editText(value) {
  return typeof value === "string" ? value : value && value.text;
}

export function renderRecord(root, ctx) {
  const { item, saver } = ctx;
  const saved = item.decision || {};
  const edits = {};
  for (const [name, value] of Object.entries(saved.edits || {})) edits[name] = editText(value);
  let reason = saved.reason || "";
  const pending = saver.pending(item.id);
  if (pending) {
    // a change not yet confirmed by the server (sent before a reload) wins over the saved one
    for (const key of Object.keys(edits)) delete edits[key];
    Object.assign(edits, pending.body.edits || {});
    reason = pending.body.reason || "";
  }
  const fields = item.fields || [];
  const original = Object.fromEntries(fields.map((f) => [f.name, f.text]));
  let editing = null;
  const timer = new DraftTimer(saver, () => saver.save(item.id, body("draft")), 350);

  function body(action) {
    const changed = {};
    for (const [name, text] of Object.entries(edits)) if (text !== original[name]) changed[name] = text;
    return { action, edits: changed, reason };
  }

  function draft(now = false) {
    ctx.saving();
    timer.start();
    if (now) timer.flush();
  }

  const status = item.record.status;
  const head = h(
    "div",
    { class: "meta" },
    h("span", { class: "pill" }, `#${item.seq + 1}`),
    h("span", { class: "pill" }, `task ${item.task}`),
    item.label !== null ? h("span", { class: "pill" }, `label ${item.label}`) : null,
    h("span", { class: `pill status-${status}` }, `record ${status}`),
    h("span", { class: "pill", id: "item-status" }, item.status.replace("_", " ")),
    item.record.model ? h("span", { class: "pill" }, `model ${item.record.model}`) : null,
    item.judge ? h("span", { class: "pill" }, `judge ${num(item.judge.score)} · unsure ${num(item.judge.uncertainty)}`) : null,
    h("code", { class: "rid" }, item.id),
  );
  const notes = item.record.notes && Object.keys(item.record.notes).length
    ? h("div", { class: "notes" }, "notes: ", JSON.stringify(item.record.notes))
    : null;

  const sections = {};
  const card = h("article", { class: "record", id: "record" }, head, notes);
  for (const field of fields) {
    const section = h("section", { class: "field", dataset: { field: field.name } });
    sections[field.name] = section;
    card.append(section);
  }

  function renderField(field) {
    const section = sections[field.name];
    const text = field.name in edits ? edits[field.name] : field.text;
    const edited = field.name in edits && edits[field.name] !== field.text;
    const aliases = field.same_as ? ` (also ${field.same_as.join(", ")})` : "";
    const tools = h("span", { class: "tools" });
    if (field.editable) {
      tools.append(
        h("button", { type: "button", class: "small", onclick: () => startEdit(field.name) }, "Edit"),
      );
    }
    if (edited) {
      tools.append(
        h("button", { type: "button", class: "small", onclick: () => toggleOriginal(field.name) },
          section.dataset.original === "1" ? "Hide original" : "Show original"),
      );
    }
    const header = h("header", {},
      h("h3", {}, field.name + aliases),
      edited ? h("span", { class: "edited" }, "edited") : null,
      tools);
    let content;
    if (editing === field.name) {
      content = h("textarea", { class: "editor", rows: Math.min(20, Math.max(4, text.split("\n").length + 1)), "aria-label": `edit ${field.name}` });
      content.value = text;
      content.addEventListener("input", () => {
        edits[field.name] = content.value;
        draft();
      });
    } else {
      content = h("div", { class: field.name === item.main ? "text main" : "text", onclick: () => {} }, text);
    }
    section.replaceChildren(header, content);
    if (edited && section.dataset.original === "1") {
      section.append(h("div", { class: "original" }, h("h4", {}, "original"), h("div", { class: "text" }, field.text)));
    }
    if (editing === field.name) content.focus();
  }

  function renderAll() {
    for (const field of fields) renderField(field);
  }

  function startEdit(name) {
    const field = fields.find((f) => f.name === name);
    if (!field || !field.editable) return;
    const before = editing;
    editing = name;
    if (before && before !== name) renderField(fields.find((f) => f.name === before));
    renderField(field);
  }

  function stopEdit() {
    if (!editing) return;
    const field = fields.find((f) => f.name === editing);
    editing = null;
    timer.flush();
    renderField(field);
  }

  function toggleOriginal(name) {
    const section = sections[name];
    section.dataset.original = section.dataset.original === "1" ? "0" : "1";
    renderField(fields.find((f) => f.name === name));
  }

  const reasonInput = h("input", { type: "text", id: "reason", placeholder: "why reject? (Enter to reject, Esc to cancel)", maxlength: 2000, "aria-label": "reason" });
  reasonInput.value = reason;
  reasonInput.addEventListener("input", () => {
    reason = reasonInput.value;
    draft();
  });
  const reasonBox = h("div", { class: "reason", hidden: !reason }, reasonInput,
    h("button", { type: "button", onclick: () => reject() }, "Reject with this reason"));

  const actions = h("div", { class: "actions" },
    h("button", { type: "button", class: "approve", id: "btn-approve", onclick: () => approve() }, "Approve ", h("kbd", {}, "a")),
    h("button", { type: "button", class: "reject", id: "btn-reject", onclick: () => reject() }, "Reject ", h("kbd", {}, "r")),
    h("button", { type: "button", id: "btn-edit", onclick: () => startEdit(item.main) }, "Edit ", h("kbd", {}, "e")),
    h("button", { type: "button", id: "btn-skip", onclick: () => skip() }, "Skip ", h("kbd", {}, "s")),
  );
  const others = item.others_done ? h("p", { class: "hint" }, `${item.others_done} other annotator(s) decided this item.`) : null;
  const held = item.held_by ? h("p", { class: "warn" }, `${item.held_by} holds this item now: your changes will be refused.`) : null;
  const decided = saved.state === "done"
    ? h("p", { class: "hint" }, `You ${saved.action === "approve" ? "approved" : "rejected"} this record; a change reopens it until you decide again.`)
    : null;
  root.replaceChildren(held || "", decided || "", card, reasonBox, actions, others || "");
  renderAll();

  function approve() {
    timer.stop(); // a decision replaces any draft still waiting
    ctx.finish(body("approve"));
  }

  function reject() {
    if (reasonBox.hidden || !reason.trim()) {
      reasonBox.hidden = false;
      reasonInput.focus();
      return;
    }
    timer.stop(); // a decision replaces any draft still waiting
    ctx.finish(body("reject"));
  }

  function skip() {
    timer.stop(); // a decision replaces any draft still waiting
    ctx.finish(body("skip"));
  }

  return {
    keys: RECORD_KEYS,
    onKey(event) {
      if (event.target === reasonInput) {
        if (event.key === "Enter") {
          event.preventDefault();
          reject();
        } else if (event.key === "Escape") {
          reasonInput.blur();
          if (!reason.trim()) reasonBox.hidden = true;
        }
        return true;
      }
      if (event.target && event.target.classList && event.target.classList.contains("editor")) {
        if (event.key === "Escape") {
          event.preventDefault();
          stopEdit();
        } else if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
          event.preventDefault();
          approve();
        }
        return true;
      }
      if (typing(event) || event.ctrlKey || event.metaKey || event.altKey) return false;
      const k = event.key;
      if (k === "a") approve();
      else if (k === "r") {
        event.preventDefault();
        reject();
      } else if (k === "e") {
        event.preventDefault();
        startEdit(item.main);
      } else if (k === "s") skip();
      else if (k === "o") {
        const name = Object.keys(edits).find((n) => edits[n] !== original[n]) || item.main;
        if (name) toggleOriginal(name);
      } else return false;
      return true;
    },
    leave() {
      timer.flush();
    },
  };
}
