// helixserve UI enhancements (plain JavaScript, no libraries). Every form also works without it.
"use strict";

function debounce(fn, ms) {
  let timer = null;
  return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
}

function sequenceOf(text) {
  const lines = text.trim().split(/\r?\n/).map((l) => l.trim());
  if (lines.length && lines[0].startsWith(">")) return lines.slice(1).filter((l) => !l.startsWith(">")).join("");
  return lines.join("");
}

function showFeedback(box, seq, problem) {
  box.textContent = "";
  if (!problem) {
    box.className = "feedback";
    box.textContent = seq ? `Looks valid: ${seq.replace(/\s/g, "").length} nt.` : "";
    return;
  }
  box.className = "feedback error";
  box.append(problem.message);
  if (problem.position) {  // show the sequence around the bad character, marked
    const clean = seq.replace(/\s/g, "");
    const at = problem.position - 1;
    const echo = document.createElement("div");
    echo.className = "seq-echo";
    const start = Math.max(0, at - 20);
    echo.append(clean.slice(start, at));
    const mark = document.createElement("mark");
    mark.textContent = clean.charAt(at);
    echo.append(mark, clean.slice(at + 1, at + 21));
    box.append(echo);
  }
}

function liveValidation(form) {
  // every sequence box of a DNA form: checked against the model as it is typed
  const url = `/api/v1/models/${encodeURIComponent(form.dataset.model)}/predict?version=${encodeURIComponent(form.dataset.version)}`;
  form.querySelectorAll("textarea[name=sequence], textarea[data-check=sequence]").forEach((area) => {
    const box = document.getElementById(area.getAttribute("aria-describedby") || "sequence-feedback");
    if (!box) return;
    const check = debounce(async () => {
      const seq = sequenceOf(area.value);
      if (!seq) { showFeedback(box, "", null); area.removeAttribute("aria-invalid"); return; }
      try {
        const response = await fetch(url, { method: "POST", headers: { "Content-Type": "application/json" },
                                            body: JSON.stringify({ inputs: [seq] }) });
        const body = await response.json();
        const problem = response.status === 422 && body.errors ? body.errors[0] : null;
        if (problem) area.setAttribute("aria-invalid", "true"); else area.removeAttribute("aria-invalid");
        showFeedback(box, seq, problem);
      } catch (err) { /* the server check on submit still runs */ }
    }, 300);
    area.addEventListener("input", check);
  });
}

function goalField(form) {
  // the target score only matters for a target goal
  const goal = form.querySelector("select[name=goal]");
  const target = form.querySelector("input[name=target_value]");
  if (!goal || !target) return;
  const sync = () => { target.disabled = goal.value !== "target"; };
  goal.addEventListener("change", sync);
  sync();
}

function busyOnSubmit(form, statusId, message) {
  const status = document.getElementById(statusId);
  form.addEventListener("submit", () => {
    const button = form.querySelector("button[type=submit]");
    if (status) status.textContent = message;
    if (button) setTimeout(() => { button.disabled = true; }, 0);  // after the form data is taken
  });
}

function dropZone(zone) {
  const input = zone.querySelector("input[type=file]");
  const preview = zone.querySelector("img");
  const show = () => {
    if (!preview || !input.files.length) return;
    preview.src = URL.createObjectURL(input.files[0]);
    preview.alt = `preview of ${input.files[0].name}`;
    preview.hidden = false;
  };
  input.addEventListener("change", show);
  ["dragenter", "dragover"].forEach((t) => zone.addEventListener(t, (e) => { e.preventDefault(); zone.classList.add("over"); }));
  ["dragleave", "drop"].forEach((t) => zone.addEventListener(t, () => zone.classList.remove("over")));
  zone.addEventListener("drop", (e) => { e.preventDefault(); input.files = e.dataTransfer.files; show(); });
}

function uploadWithProgress(form) {
  const bar = document.getElementById("upload-progress");
  const status = document.getElementById("upload-status");
  form.addEventListener("submit", (event) => {
    if (!form.querySelector("input[type=file]").files.length) return;
    event.preventDefault();
    const request = new XMLHttpRequest();
    request.open("POST", form.action);
    bar.hidden = false;
    form.querySelector("button").disabled = true;
    request.upload.onprogress = (e) => { if (e.lengthComputable) bar.value = (100 * e.loaded) / e.total; };
    request.upload.onload = () => { bar.removeAttribute("value"); status.textContent = form.dataset.busy || "Uploaded; scoring every row…"; };
    request.onload = () => {
      if (request.responseURL && request.status < 400) { window.location.assign(request.responseURL); return; }
      document.open(); document.write(request.responseText); document.close();
    };
    request.onerror = () => { status.textContent = "The upload failed: check the connection and try again."; form.querySelector("button").disabled = false; };
    request.send(new FormData(form));
  });
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("form[data-kind=dna]").forEach(liveValidation);
  const design = document.getElementById("design-form");
  if (design) { goalField(design); busyOnSubmit(design, "design-status", "Designing: one batch of every single-base change per round…"); }
  const variants = document.getElementById("variants-form");
  if (variants) busyOnSubmit(variants, "variants-status", "Scoring the variants…");
  document.querySelectorAll(".drop").forEach(dropZone);
  const upload = document.getElementById("upload-form");
  if (upload) uploadWithProgress(upload);
});
