// Plugboard dashboard: the few things a server-rendered page cannot do alone. Every change is a call to the JSON API
// with the session's CSRF token; live views read the API's server-sent event streams. Untrusted text is only ever
// set as textContent, never parsed as HTML.
"use strict";

(() => {
  const csrf = document.querySelector('meta[name="csrf-token"]')?.content ?? "";
  const flash = document.getElementById("flash");

  function show(message, kind) {
    if (!flash) return;
    flash.textContent = message;
    flash.className = "flash " + (kind || "error");
    flash.hidden = false;
  }

  // A status badge, as the server renders it.
  function statusBadge(status) {
    const badge = document.createElement("span");
    badge.className = `status status-${status}`;
    badge.textContent = status;
    return badge;
  }

  // Sets each [data-field] inside element to that field of data, as text.
  function fill(element, data) {
    for (const field of element.querySelectorAll("[data-field]")) {
      const value = data[field.dataset.field];
      field.textContent = value === null || value === undefined ? "" : String(value);
    }
  }

  async function api(method, url, body) {
    const response = await fetch(url, {
      method,
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json", "X-CSRF-Token": csrf },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    let json = null;
    try { json = text ? JSON.parse(text) : null; } catch { json = null; }
    if (!response.ok) {
      const detail = json && (json.detail || json.title) ? (json.detail || json.title) : `The server answered ${response.status}.`;
      const errors = json && Array.isArray(json.errors) ? " " + json.errors.map(e => e.detail || e.message || "").join(" ") : "";
      throw new Error(detail + errors);
    }
    return json;
  }

  // A form's named fields as a JSON body: "a.b" nests, data-json fields are parsed as JSON, empty optional fields are left out.
  function body(form) {
    const result = {};
    for (const field of form.elements) {
      if (!field.name || field.disabled || field.type === "submit") continue;
      let value = field.type === "checkbox" ? field.checked : field.value;
      if (value === "" && !field.required) continue;
      if (field.hasAttribute("data-json")) {
        try { value = JSON.parse(value); } catch { throw new Error(`${field.labels?.[0]?.textContent ?? field.name} is not valid JSON.`); }
      }
      const path = field.name.split(".");
      let target = result;
      for (const part of path.slice(0, -1)) target = target[part] ??= {};
      target[path[path.length - 1]] = value;
    }
    return result;
  }

  document.addEventListener("submit", async (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-api-form")) return;
    event.preventDefault();
    if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) return;
    const buttons = form.querySelectorAll("button");
    buttons.forEach(b => b.disabled = true);
    try {
      const payload = body(form);
      // Where the OAuth callback sends the browser back: an absolute URL on this site.
      if (form.dataset.redirectTo) payload.redirect_to = new URL(form.dataset.redirectTo, window.location.origin).href;
      let result = await api(form.dataset.method || "POST", form.dataset.url, payload);
      if (form.dataset.oauthStart && result && result.id) {
        // Installed: now connect the account for the new connector, coming back to its page.
        const back = new URL(form.dataset.go.replace("{id}", encodeURIComponent(result.id)), window.location.origin).href;
        const client = payload.credentials ?? {};
        result = await api("POST", form.dataset.oauthStart, { connector_id: result.id, client_id: client.client_id, client_secret: client.client_secret, redirect_to: back });
      }
      if (result && result.authorization_url) {
        window.location.assign(result.authorization_url); // the provider's consent page, which returns to the callback
      } else if (form.dataset.show && result) {
        const output = document.querySelector(`output[name="${form.dataset.show}"]`);
        if (output) output.textContent = `${result[form.dataset.show]} — copy it now: it is shown only once.`;
        buttons.forEach(b => b.disabled = false);
      } else if (form.dataset.go && result && result.id) {
        window.location.assign(form.dataset.go.replace("{id}", encodeURIComponent(result.id)));
      } else {
        window.location.reload();
      }
    } catch (error) {
      show(error.message);
      buttons.forEach(b => b.disabled = false);
    }
  });

  // A run's steps as they are logged, then its final state: on the execution page and in the studio's test run.
  // parts: steps (list), template (one step's markup), and optional status, finished, duration, output, error elements.
  function followRun(streamUrl, parts, onEnd) {
    const source = new EventSource(streamUrl);
    let shown = parts.steps.children.length;
    const setText = (element, text) => { if (element) element.textContent = text; };
    source.addEventListener("step", (message) => {
      if (Number(message.lastEventId) <= shown) return; // already rendered by the server
      shown = Number(message.lastEventId);
      const step = JSON.parse(message.data);
      const item = parts.template.content.firstElementChild.cloneNode(true);
      item.dataset.status = step.status ?? "";
      fill(item, step);
      parts.steps.appendChild(item);
    });
    source.addEventListener("end", (message) => {
      source.close();
      const run = JSON.parse(message.data);
      parts.status?.replaceChildren(statusBadge(run.status));
      setText(parts.finished, run.finished_at ? new Date(run.finished_at).toISOString().replace("T", " ").slice(0, 19) + " UTC" : "—");
      setText(parts.duration, run.duration_ms !== null && run.duration_ms !== undefined ? `${run.duration_ms} ms` : "—");
      setText(parts.output, run.output === null || run.output === undefined ? "—" : JSON.stringify(run.output, null, 2));
      if (parts.error && run.error) { parts.error.textContent = run.error; parts.error.hidden = false; }
      if (onEnd) onEnd(run);
    });
    source.onerror = () => { if (source.readyState === EventSource.CLOSED) show("The live log stopped: reload the page to see the latest state."); };
    return source;
  }

  // The execution page.
  const execution = document.getElementById("execution");
  if (execution && execution.dataset.stream) {
    const byId = (id) => document.getElementById(id);
    followRun(execution.dataset.stream, {
      steps: byId("steps"), template: byId("step-template"), status: byId("execution-status"), finished: byId("execution-finished"),
      duration: byId("execution-duration"), output: byId("execution-output"), error: byId("execution-error"),
    }, (run) => {
      byId("cancel-run")?.closest("form")?.remove();
      execution.dataset.finished = run.status;
    });
  }

  // A connector's syncs: a queued or running one's row follows its progress stream.
  for (const row of document.querySelectorAll("tr[data-sync-stream]")) {
    const source = new EventSource(row.dataset.syncStream);
    const update = (message) => {
      const sync = JSON.parse(message.data);
      fill(row, sync);
      row.querySelector('[data-field="status"]').replaceChildren(statusBadge(sync.status));
    };
    source.addEventListener("progress", update);
    source.addEventListener("end", (message) => { update(message); source.close(); });
  }

  // Uploads: a batch per drop, files sent in parallel with their own progress, the batch's progress from its stream.
  const dropzone = document.getElementById("dropzone");
  if (dropzone) {
    const input = document.getElementById("upload-files");
    const list = document.getElementById("upload-files-list");
    const fileTemplate = document.getElementById("upload-file-template");
    const progress = document.getElementById("batch-progress");
    const bar = document.getElementById("batch-bar");
    const summary = document.getElementById("batch-summary");

    function send(batchUrl, file, item) {
      return new Promise((resolve) => {
        const request = new XMLHttpRequest();
        const data = new FormData();
        data.append("file", file, file.name);
        request.open("POST", batchUrl + "/files");
        request.setRequestHeader("X-CSRF-Token", csrf);
        request.upload.onprogress = (e) => { if (e.lengthComputable) item.querySelector("progress").value = e.loaded / e.total; };
        request.onload = () => {
          let outcome = `failed (${request.status})`;
          try {
            const json = JSON.parse(request.responseText);
            const result = json.files?.[0];
            outcome = result ? result.outcome + (result.reason ? `: ${result.reason}` : "") : (json.detail || outcome);
          } catch { /* not JSON: keep the status */ }
          item.querySelector("progress").value = 1;
          item.querySelector('[data-field="outcome"]').textContent = outcome;
          item.dataset.outcome = outcome.split(":")[0];
          resolve();
        };
        request.onerror = () => { item.querySelector('[data-field="outcome"]').textContent = "failed: the connection broke"; resolve(); };
        request.send(data);
      });
    }

    async function upload(files) {
      if (files.length === 0) return;
      try {
        const batch = await api("POST", dropzone.dataset.batches, { expected_files: files.length });
        const batchUrl = `${dropzone.dataset.batches}/${batch.id}`;
        progress.hidden = false;
        summary.textContent = `0 of ${files.length} processed`;
        const stream = new EventSource(batchUrl + "/stream");
        const update = (message) => {
          const state = JSON.parse(message.data);
          const done = (state.processed_files ?? 0) + (state.failed_files ?? 0);
          bar.max = Math.max(state.total_files ?? files.length, 1);
          bar.value = done;
          summary.textContent = `${done} of ${state.total_files ?? files.length} processed, ${state.failed_files ?? 0} failed — ${state.status}`;
          progress.dataset.status = state.status;
          if (["completed", "completed_with_errors", "failed", "cancelled"].includes(state.status)) stream.close();
        };
        stream.addEventListener("progress", update);
        stream.addEventListener("end", update);
        const items = files.map((file) => {
          const item = fileTemplate.content.firstElementChild.cloneNode(true);
          item.querySelector('[data-field="name"]').textContent = file.name;
          list.appendChild(item);
          return item;
        });
        let next = 0;
        const worker = async () => { while (next < files.length) { const i = next++; await send(batchUrl, files[i], items[i]); } };
        await Promise.all([worker(), worker(), worker()]);
      } catch (error) {
        show(error.message);
      }
    }

    input.addEventListener("change", () => { upload([...input.files]); input.value = ""; });
    dropzone.addEventListener("dragover", (e) => { e.preventDefault(); dropzone.classList.add("over"); });
    dropzone.addEventListener("dragleave", () => dropzone.classList.remove("over"));
    dropzone.addEventListener("drop", (e) => { e.preventDefault(); dropzone.classList.remove("over"); upload([...e.dataTransfer.files]); });
  }
  window.Plugboard = { api, show, followRun, statusBadge };
})();
