// The list view: every item with its status and who worked on it, filtered by status, task,
// label and annotator, in the queue's order; a row opens the item.
import { h, num } from "./dom.js";

export async function renderList(root, ctx) {
  const { session, filters, getJSON } = ctx;
  const select = (name, values, label) => {
    const el = h("select", { id: `filter-${name}`, "aria-label": label },
      h("option", { value: "" }, `any ${label}`),
      values.map((v) => h("option", { value: v }, String(v).replace("_", " "))));
    el.value = filters[name] || "";
    el.addEventListener("change", () => {
      filters[name] = el.value;
      renderList(root, ctx);
    });
    return el;
  };
  const bar = h("div", { class: "filters" },
    select("status", session.statuses, "status"),
    session.tasks.length > 1 ? select("task", session.tasks, "task") : null,
    session.labels.length ? select("label", session.labels, "label") : null,
    select("annotator", session.annotators, "annotator"));
  const params = new URLSearchParams({ order: ctx.order(), limit: "500" });
  for (const [k, v] of Object.entries(filters)) if (v) params.set(k, v);
  const table = h("table", { class: "list", id: "item-list" });
  const count = h("p", { class: "hint" }, "Loading…");
  root.replaceChildren(h("h2", {}, "All items"), bar, count, table);
  const data = await getJSON(`/api/items?${params}`);
  count.textContent = `${data.total} item(s)${data.total > data.rows.length ? `, first ${data.rows.length} shown` : ""}`;
  const ranking = session.mode === "ranking";
  table.append(h("thead", {}, h("tr", {},
    h("th", {}, "#"), h("th", {}, "status"), h("th", {}, "task"), h("th", {}, "label"),
    h("th", {}, "annotators"), ranking ? h("th", {}, "tau") : null,
    session.has_judge ? h("th", {}, "judge") : null, h("th", {}, "text"))));
  const tbody = h("tbody");
  for (const row of data.rows) {
    const tr = h("tr", { tabindex: "0", dataset: { id: row.id }, class: `status-${row.status}` },
      h("td", {}, String(row.seq + 1)),
      h("td", {}, row.status.replace("_", " ")),
      h("td", {}, row.task),
      h("td", {}, row.label ?? ""),
      h("td", {}, row.annotators.join(", ")),
      ranking ? h("td", {}, num(row.kendall_tau)) : null,
      session.has_judge ? h("td", {}, `${num(row.score)} / ${num(row.uncertainty)}`) : null,
      h("td", { class: "preview" }, row.preview));
    tr.addEventListener("click", () => ctx.open(row.id));
    tr.addEventListener("keydown", (event) => {
      if (event.key === "Enter") ctx.open(row.id);
    });
    tbody.append(tr);
  }
  table.append(tbody);
}
