// helixserve workspace pages: enhancements only (plain JavaScript, no libraries). Every page and
// form works without this file: the subset form's live size, the experiment wizard's refresh and
// block editor (live shapes from POST /api/v1/blocks/shapes), and the run page's live curves,
// log and status (server-sent events from /api/v1/projects/{p}/runs/{id}/events).
"use strict";

const FINAL = ["finished", "failed", "stopped", "interrupted"];

function later(fn, ms) {
  let timer = null;
  return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  Object.entries(attrs).forEach(([k, v]) => { if (v !== null && v !== undefined) node.setAttribute(k, v); });
  children.forEach((c) => node.append(c));
  return node;
}

// --- subsets: show the fields of the chosen kind, and how many rows the form selects ----------

function subsetForm(form) {
  const kind = form.querySelector("select[name=kind]");
  const sizeBox = document.getElementById("subset-size");
  const showKind = () => {
    form.querySelectorAll("fieldset.kind").forEach((set) => {
      const on = set.dataset.kind === kind.value;
      set.hidden = !on;
      set.querySelectorAll("input, select").forEach((input) => { input.disabled = !on; });
    });
  };
  const measure = later(async () => {
    try {
      const response = await fetch(form.dataset.preview, { method: "POST", body: new FormData(form) });
      const body = await response.json();
      sizeBox.className = response.ok ? "feedback" : "feedback error";
      sizeBox.textContent = response.ok
        ? `Selects ${body.rows.toLocaleString("en")} of ${body.of.toLocaleString("en")} rows.`
        : body.error;
    } catch (err) { sizeBox.textContent = ""; }
  }, 300);
  kind.addEventListener("change", () => { showKind(); measure(); });
  form.addEventListener("input", measure);
  form.addEventListener("change", measure);
  showKind();
}

// --- the experiment wizard: refresh on dataset / recipe change, and the block editor ----------

function wizard(form) {
  const refresh = document.getElementById("refresh");
  form.querySelectorAll("[data-refresh]").forEach((select) => {
    select.addEventListener("change", () => refresh.click());
  });
  const editor = document.getElementById("block-editor");
  if (editor) new BlockEditor(form, editor).start();
}

function paramValues(form) {
  // the hyper-parameters as typed values (the shapes depend on the input size they set)
  const params = {};
  form.querySelectorAll("[name^='params.']").forEach((input) => {
    const name = input.name.slice("params.".length);
    const text = input.value.trim();
    if (text === "") return;
    if (input.type === "number") params[name] = Number(text);
    else if (text === "true" || text === "false") params[name] = text === "true";
    else params[name] = /^-?\d+$/.test(text) && input.tagName === "SELECT" ? Number(text) : text;
  });
  return params;
}

class BlockEditor {
  constructor(form, root) {
    this.form = form;
    this.root = root;
    this.area = form.querySelector("textarea[name=blocks]");
    this.types = JSON.parse(document.getElementById("block-types").textContent);
    this.check = later(() => this.shapes(), 200);
  }

  start() {
    try { this.blocks = JSON.parse(this.area.value); } catch (err) { return; }  // the textarea stays
    document.getElementById("stack-static").hidden = true;
    this.root.hidden = false;
    this.render();
    this.form.addEventListener("change", (event) => { if (event.target.name && event.target.name.startsWith("params.")) this.check(); });
  }

  render(edited = false) {
    this.root.textContent = "";
    this.inputLine = el("p", { class: "block-input" }, "input");
    this.list = el("ol", { class: "blocks", id: "block-list" });
    this.blocks.forEach((block, i) => this.list.append(this.blockItem(block, i)));
    this.message = el("p", { class: "error", id: "blocks-live-error", role: "alert" });
    this.root.append(this.inputLine, this.list, this.message, this.footer());
    this.changed(edited);
  }

  footer() {
    const kinds = el("select", { "aria-label": "type of the block to add", id: "add-type" });
    Object.keys(this.types).forEach((t) => kinds.append(el("option", { value: t }, t)));
    const add = el("button", { type: "button", class: "button secondary", id: "add-block" }, "Add block");
    add.addEventListener("click", () => { this.blocks.push(this.fresh(kinds.value)); this.render(true); });
    const preset = el("button", { type: "button", class: "button secondary" }, "Reset to the recipe's preset");
    preset.addEventListener("click", () => this.form.querySelector("button[name=preset]").click());
    return el("div", { class: "editor-foot" }, kinds, add, preset);
  }

  fresh(type) {
    const block = { type };
    this.types[type].fields.forEach((f) => { if (!f.required) block[f.name] = f.default; });
    return block;
  }

  blockItem(block, i) {
    const item = el("li", { class: "block", "data-block": String(i + 1) });
    const kind = el("select", { "aria-label": `type of block ${i + 1}` });
    Object.keys(this.types).forEach((t) => kind.append(el("option", t === block.type ? { value: t, selected: "" } : { value: t }, t)));
    kind.addEventListener("change", () => { this.blocks[i] = this.fresh(kind.value); this.render(true); });
    const tools = el("span", { class: "tools" });
    [["↑", "move up", -1], ["↓", "move down", 1]].forEach(([label, words, step]) => {
      const button = el("button", { type: "button", "aria-label": `${words}: block ${i + 1}` }, label);
      button.addEventListener("click", () => this.move(i, step));
      tools.append(button);
    });
    const remove = el("button", { type: "button", "aria-label": `remove block ${i + 1}` }, "✕");
    remove.addEventListener("click", () => { this.blocks.splice(i, 1); this.render(true); });
    tools.append(remove);
    const head = el("div", { class: "block-head" }, el("span", { class: "no" }, `${i + 1}`), kind, tools);
    const fields = el("div", { class: "block-fields" });
    (this.types[block.type] || { fields: [] }).fields.forEach((f) => fields.append(this.fieldInput(block, f, i)));
    item.append(head, fields, el("p", { class: "out" }, ""));
    item.title = (this.types[block.type] || {}).help || "";
    return item;
  }

  fieldInput(block, field, i) {
    const id = `b${i + 1}-${field.name}`;
    const value = block[field.name];
    let input;
    if (field.choices) {
      input = el("select", { id });
      field.choices.forEach((c) => input.append(el("option", c === value ? { value: String(c), selected: "" } : { value: String(c) }, String(c))));
    } else if (field.type.startsWith("bool")) {
      input = el("input", { id, type: "checkbox" });
      input.checked = Boolean(value);
    } else {
      const numeric = field.type.startsWith("int") || field.type.startsWith("float");
      input = el("input", { id, type: numeric ? "number" : "text", step: field.type.startsWith("int") ? "1" : "any" });
      input.value = value === null || value === undefined ? "" : String(value);
      if (field.range) { input.min = field.range[0]; input.max = field.range[1]; }
    }
    input.addEventListener("change", () => { this.blocks[i][field.name] = this.read(input, field); this.changed(true); });
    input.addEventListener("input", () => { this.blocks[i][field.name] = this.read(input, field); this.changed(true); });
    return el("label", { for: id, title: field.help || "" }, field.name, input);
  }

  read(input, field) {
    if (input.type === "checkbox") return input.checked;
    const text = input.value.trim();
    if (text === "") return field.type.endsWith("None") ? null : undefined;
    if (field.choices) return typeof field.choices[0] === "number" ? Number(text) : text;
    if (field.type.startsWith("int") || field.type.startsWith("float")) return Number(text);
    return text;
  }

  move(i, step) {
    const j = i + step;
    if (j < 0 || j >= this.blocks.length) return;
    [this.blocks[i], this.blocks[j]] = [this.blocks[j], this.blocks[i]];
    this.render(true);
  }

  changed(edited) {
    const clean = this.blocks.map((b) => Object.fromEntries(Object.entries(b).filter(([, v]) => v !== undefined)));
    this.area.value = "[\n" + clean.map((b) => "  " + JSON.stringify(b)).join(",\n") + "\n]";
    if (edited) { const use = document.getElementById("use-blocks"); if (use) use.checked = true; }
    this.check();
  }

  async shapes() {
    const body = {
      recipe: this.root.dataset.recipe,
      params: paramValues(this.form),
      blocks: JSON.parse(this.area.value),
      classes: Math.max(2, Number(this.root.dataset.classes) || 2),
    };
    let response;
    try {
      response = await fetch("/api/v1/blocks/shapes", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
      });
    } catch (err) { return; }
    const answer = await response.json();
    const items = [...this.list.children];
    items.forEach((item) => item.classList.remove("bad"));
    if (response.ok) {
      this.message.textContent = "";
      this.inputLine.textContent = `input ${answer.input} · ${answer.total_parameters.toLocaleString("en")} parameters in all`;
      answer.blocks.forEach((b, i) => {
        const counted = b.parameters ? ` · ${b.parameters.toLocaleString("en")} parameters` : "";
        items[i].querySelector(".out").textContent = `→ ${b.shape}${counted}`;
      });
      return;
    }
    const message = answer.detail || answer.title || "the stack cannot be checked";
    this.message.textContent = message;
    items.forEach((item) => { item.querySelector(".out").textContent = ""; });
    const named = /^block (\d+)/.exec(message);
    if (named && items[Number(named[1]) - 1]) items[Number(named[1]) - 1].classList.add("bad");
  }
}

// --- the run page: live curves, epochs, log and status ------------------------------------------

const W = 420, H = 260, PAD = 42, LEGEND_ROW = 16;

function scale(v, lo, hi, a, b) { return a + ((v - lo) / ((hi - lo) || 1)) * (b - a); }

function lossChart(points, best) {
  // the same drawing as helixserve.serving.charts.loss, with each point marked (data-epoch)
  const series = [["train_loss", ""], ["val_loss", "5,4"]];
  const values = points.flatMap((p) => series.map(([k]) => p[k])).filter((v) => v !== null && v !== undefined);
  if (!values.length) return "";
  const last = Math.max(2, ...points.map((p) => p.epoch));
  let lo = Math.min(...values); const hi = Math.max(...values);
  if (lo >= 0 && lo < hi / 3) lo = 0;
  const x = (e) => scale(e, 1, last, PAD, W - PAD).toFixed(1);
  const y = (v) => scale(v, lo, hi, H - PAD, PAD).toFixed(1);
  const parts = [`<rect x="${PAD}" y="${PAD}" width="${W - 2 * PAD}" height="${H - 2 * PAD}" class="plot"/>`];
  for (let i = 0; i < 5; i++) {
    const fx = 1 + ((last - 1) * i) / 4, fy = lo + ((hi - lo) * i) / 4;
    const tx = PAD + ((W - 2 * PAD) * i) / 4, ty = H - PAD - ((H - 2 * PAD) * i) / 4;
    parts.push(`<text x="${tx.toFixed(1)}" y="${H - PAD + 14}" class="tick" text-anchor="middle">${Number(fx.toPrecision(3))}</text>`);
    parts.push(`<text x="${PAD - 4}" y="${(ty + 3).toFixed(1)}" class="tick" text-anchor="end">${Number(fy.toPrecision(3))}</text>`);
  }
  series.forEach(([key, dash], s) => {
    const shown = points.filter((p) => p[key] !== null && p[key] !== undefined);
    if (!shown.length) return;
    const line = shown.map((p) => `${x(p.epoch)},${y(p[key])}`).join(" ");
    const extra = dash ? ` stroke-dasharray="${dash}"` : "";
    parts.push(`<polyline points="${line}" fill="none" stroke="#1f6fb2" stroke-width="2"${extra}/>`);
    shown.forEach((p) => parts.push(`<circle cx="${x(p.epoch)}" cy="${y(p[key])}" r="2.5" fill="${s ? "#fff" : "#1f6fb2"}" stroke="#1f6fb2" data-epoch="${p.epoch}" data-series="${key}"><title>epoch ${p.epoch}: ${key.replace("_", " ")} ${p[key].toFixed(4)}</title></circle>`));
  });
  const legend = [["train", ""], ["validation", "5,4"]];
  if (best) {
    parts.push(`<line x1="${x(best)}" x2="${x(best)}" y1="${PAD}" y2="${H - PAD}" class="marker" data-best="${best}"/>`);
    legend.push([`best epoch ${best}`, "2,3"]);
  }
  // the legend in rows under the chart, where it covers no curve (as charts._legend)
  let lx = PAD, row = 0;
  legend.forEach(([label, dash], i) => {
    const width = 30 + 6 * label.length + 14;
    if (lx > PAD && lx + width > W - 4) { row += 1; lx = PAD; }
    const ly = H + 6 + LEGEND_ROW * row;
    parts.push(`<line x1="${lx}" x2="${lx + 20}" y1="${ly}" y2="${ly}" stroke="${i === 2 ? "#777" : "#1f6fb2"}" stroke-width="2"${dash ? ` stroke-dasharray="${dash}"` : ""}/><text x="${lx + 24}" y="${ly + 4}" class="tick">${label}</text>`);
    lx += width;
  });
  parts.push(`<text x="${W / 2}" y="${H - 6}" text-anchor="middle" class="axis">epoch</text>`);
  parts.push(`<text x="4" y="${PAD - 8}" text-anchor="start" class="axis">loss</text>`);
  parts.push(`<text x="${W / 2}" y="18" text-anchor="middle" class="title">Training curves</text>`);
  return `<svg viewBox="0 0 ${W} ${H + LEGEND_ROW * (row + 1)}" class="chart" role="img" aria-label="Training curves" id="live-svg">${parts.join("")}</svg>`;
}

function lossText(v) { return v === null || v === undefined ? "—" : v.toFixed(4); }

function etaText(state) {
  if (state.status !== "running" || !state.epochs_planned || !state.points.length) return "—";
  const times = state.points.map((p) => Date.parse(p.at));
  if (state.started_at) times.unshift(Date.parse(state.started_at));
  const steps = times.slice(1).map((t, i) => (t - times[i]) / 1000).slice(-10);
  if (!steps.length) return "—";
  const left = Math.max(state.epochs_planned - state.points[state.points.length - 1].epoch, 0);
  const seconds = Math.round((steps.reduce((a, b) => a + b, 0) / steps.length) * left);
  if (seconds < 60) return `about ${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  return minutes < 60 ? `about ${minutes} min ${seconds % 60} s` : `about ${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

class LiveRun {
  constructor(figure) {
    this.figure = figure;
    this.state = JSON.parse(document.getElementById("run-data").textContent);
    this.first = this.state.status;
    this.state.points = [];
    this.caption = figure.querySelector("figcaption");
    this.table = document.querySelector("#epochs tbody");
    this.log = document.getElementById("log");
    this.lastSeq = Number(this.log.dataset.lastSeq) || 0;
  }

  start() {
    this.source = new EventSource(this.figure.dataset.events);
    this.source.addEventListener("epoch", (e) => this.epoch(JSON.parse(e.data)));
    this.source.addEventListener("log", (e) => this.line(JSON.parse(e.data)));
    this.source.addEventListener("status", (e) => this.status(JSON.parse(e.data)));
  }

  best() {
    if (this.state.best_epoch) return this.state.best_epoch;
    const scored = this.state.points.filter((p) => p.val_loss !== null && p.val_loss !== undefined);
    return scored.length ? scored.reduce((a, b) => (b.val_loss < a.val_loss ? b : a)).epoch : null;
  }

  epoch(point) {
    const points = this.state.points.filter((p) => p.epoch !== point.epoch);
    points.push(point);
    points.sort((a, b) => a.epoch - b.epoch);
    this.state.points = points;
    this.draw();
  }

  draw() {
    if (!this.state.points.length) return;
    const best = this.best();
    const svg = lossChart(this.state.points, best);
    this.figure.textContent = "";
    this.figure.insertAdjacentHTML("afterbegin", svg);
    this.figure.append(this.caption);
    this.table.textContent = "";
    this.state.points.forEach((p) => {
      const row = el("tr", { "data-epoch": String(p.epoch), class: p.epoch === best ? "best" : null },
        el("td", { class: "num" }, String(p.epoch)), el("td", { class: "num" }, lossText(p.train_loss)),
        el("td", { class: "num" }, lossText(p.val_loss)));
      this.table.append(row);
    });
    document.getElementById("epoch-count").textContent = String(this.state.points.length);
    document.getElementById("best-epoch").textContent = best ? String(best) : "—";
    document.getElementById("eta").textContent = etaText(this.state);
  }

  line(entry) {
    if (entry.seq <= this.lastSeq) return;  // already on the page
    this.lastSeq = entry.seq;
    this.log.append(entry.line + "\n");
    this.log.scrollTop = this.log.scrollHeight;
  }

  status(data) {
    Object.assign(this.state, { status: data.status, best_epoch: data.best_epoch,
      epochs_planned: data.epochs_planned, started_at: data.started_at });
    const badge = document.querySelector("#run-status .status");
    badge.textContent = data.status;
    badge.className = `status status-${data.status}`;
    if (data.status !== "queued") document.querySelectorAll("#queued-notice, #no-worker").forEach((n) => n.remove());
    this.draw();
    if (FINAL.includes(data.status)) {
      this.source.close();
      if (data.status !== this.first) setTimeout(() => window.location.reload(), 300);
    }
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const subsets = document.getElementById("subset-form");
  if (subsets) subsetForm(subsets);
  const wizardForm = document.getElementById("wizard");
  if (wizardForm) wizard(wizardForm);
  const live = document.getElementById("live-chart");
  if (live && live.dataset.events) new LiveRun(live).start();
});
