// The manifest studio: validation as you type (POST /v1/manifests/validate), completion from the published JSON Schema,
// the steps drawn as a graph, a test run of the draft with a connector's credential followed live, and saving.
// Everything the server or the manifest says is set as textContent or an SVG attribute, never parsed as HTML.
"use strict";

(() => {
  const studio = document.getElementById("studio");
  if (!studio || !window.Plugboard) return;
  const { api, show, followRun, statusBadge } = window.Plugboard;
  const editor = document.getElementById("studio-editor");
  const completions = document.getElementById("studio-completions");
  const issues = document.getElementById("studio-issues");
  const validity = document.getElementById("studio-validity");
  const cursor = document.getElementById("studio-cursor");
  const graph = document.getElementById("studio-graph");
  const apiBase = studio.dataset.api;
  const pathBase = studio.dataset.path;

  // ---- Validation -------------------------------------------------------------------------------------------------
  let latest = { valid: false, manifest: null };
  let timer = null;
  let generation = 0;

  function offsetOf(line, column) {
    const lines = editor.value.split("\n");
    let offset = 0;
    for (let i = 0; i < Math.min(line - 1, lines.length); i++) offset += lines[i].length + 1;
    return Math.min(offset + Math.max(column - 1, 0), editor.value.length);
  }

  function renderIssues(list) {
    issues.replaceChildren();
    for (const issue of list) {
      const item = document.createElement("li");
      const where = issue.line ? `Line ${issue.line}, column ${issue.column ?? 1}` : (issue.pointer || "Manifest");
      const text = `${where}: ${issue.message}${issue.pointer && issue.line ? ` (${issue.pointer})` : ""}`;
      if (issue.line) {
        const button = document.createElement("button");
        button.type = "button";
        button.className = "link";
        button.textContent = text;
        button.addEventListener("click", () => {
          const at = offsetOf(issue.line, issue.column ?? 1);
          editor.focus();
          editor.setSelectionRange(at, at);
          updateCursor();
        });
        item.appendChild(button);
      } else {
        item.textContent = text;
      }
      issues.appendChild(item);
    }
  }

  async function validateNow() {
    clearTimeout(timer);
    const mine = ++generation;
    let result;
    try {
      result = await api("POST", studio.dataset.validate, { manifest: editor.value });
    } catch (error) {
      result = { valid: false, issues: [{ pointer: "", message: error.message }], manifest: null, outline: null };
    }
    if (mine !== generation) return latest; // a newer edit is being checked
    latest = { valid: result.valid, manifest: result.manifest };
    renderIssues(result.issues ?? []);
    const count = (result.issues ?? []).length;
    const steps = result.outline?.steps?.length ?? 0;
    validity.textContent = result.valid
      ? `Valid: ${steps} step${steps === 1 ? "" : "s"}, ${result.outline?.streams?.length ?? 0} stream(s)`
      : `${count} problem${count === 1 ? "" : "s"}`;
    studio.dataset.valid = String(result.valid);
    if (result.outline) drawGraph(result.outline);
    return latest;
  }

  function validateSoon() {
    clearTimeout(timer);
    validity.textContent = "Checking…";
    timer = setTimeout(validateNow, 400);
  }

  function updateCursor() {
    const before = editor.value.slice(0, editor.selectionStart);
    const line = before.split("\n").length;
    cursor.textContent = `Line ${line}, column ${editor.selectionStart - before.lastIndexOf("\n")}`;
  }

  // ---- Graph --------------------------------------------------------------------------------------------------------
  const SVG = "http://www.w3.org/2000/svg";
  function svg(name, attributes, text) {
    const element = document.createElementNS(SVG, name);
    for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
    if (text !== undefined) element.textContent = text;
    return element;
  }
  const clip = (text, length) => (text.length > length ? text.slice(0, length - 1) + "…" : text);

  function drawGraph(outline) {
    const steps = outline.steps ?? [];
    const streams = outline.streams ?? [];
    if (steps.length === 0) {
      const empty = document.createElement("p");
      empty.className = "muted";
      empty.textContent = "No steps yet: add one under steps:.";
      graph.replaceChildren(empty);
      return;
    }
    const width = 250, height = 48, gap = 30, left = 8, streamX = left + width + 110;
    const total = steps.length * (height + gap);
    const lanes = streams.length > 0 ? streamX + 170 : left + width + 100;
    const summary = steps.map((s) => s.id).join(" then ")
      + (streams.length ? `; streams: ${streams.map((s) => `${s.name} from ${s.step ?? "?"}`).join(", ")}` : "");
    const root = svg("svg", { viewBox: `0 0 ${lanes} ${total}`, width: lanes, height: total, role: "img", "aria-label": `Steps: ${summary}` });
    const defs = svg("defs", {});
    const marker = svg("marker", { id: "studio-arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" });
    marker.appendChild(svg("path", { d: "M0,0 L10,5 L0,10 z", fill: "#4d5561" }));
    defs.appendChild(marker);
    root.appendChild(defs);
    const top = (i) => 4 + i * (height + gap);
    const index = new Map(steps.map((s, i) => [s.id, i]));
    steps.forEach((step, i) => {
      const y = top(i);
      const node = svg("g", { class: "graph-step", "data-step": step.id });
      node.appendChild(svg("rect", { x: left, y, width, height, rx: 6, fill: "#f4f6f8", stroke: "#0b5cad" }));
      node.appendChild(svg("text", { x: left + 10, y: y + 19, "font-weight": 700, "font-size": 13, fill: "#1b1f24" }, clip(step.id, 30)));
      const flags = [step.paginated ? "paginated" : "", step.for_each ? "for each" : "", step.when ? "when" : ""].filter(Boolean).join(", ");
      node.appendChild(svg("text", { x: left + 10, y: y + 37, "font-size": 12, fill: "#4d5561" },
        clip(`${step.method ?? "?"} ${step.target ?? ""}${flags ? ` (${flags})` : ""}`, 38)));
      root.appendChild(node);
      if (i > 0) {
        root.appendChild(svg("line", { x1: left + width / 2, y1: top(i - 1) + height, x2: left + width / 2, y2: y - 2, stroke: "#4d5561", "marker-end": "url(#studio-arrow)" }));
      }
      // Data the step reads from an earlier step (other than the one just before it): a curve on the right.
      for (const used of step.uses ?? []) {
        const from = index.get(used);
        if (from === undefined || from === i - 1) continue;
        const y1 = top(from) + height / 2, y2 = y + height / 2, bend = left + width + 25 + 12 * (i - from);
        root.appendChild(svg("path", { d: `M${left + width},${y1} C${bend},${y1} ${bend},${y2} ${left + width + 2},${y2}`, fill: "none",
          stroke: "#7d4e00", "stroke-dasharray": "4 3", "marker-end": "url(#studio-arrow)", class: "graph-use", "data-from": used, "data-to": step.id }));
      }
    });
    streams.forEach((stream, j) => {
      const from = index.get(stream.step);
      const y = from === undefined ? top(j) : top(from) + 6 + (j % 2) * 4;
      const node = svg("g", { class: "graph-stream", "data-stream": stream.name });
      node.appendChild(svg("rect", { x: streamX, y, width: 160, height: height - 12, rx: 18, fill: "#ffffff", stroke: "#116329" }));
      node.appendChild(svg("text", { x: streamX + 12, y: y + 22, "font-size": 12, fill: "#116329" }, clip(`stream ${stream.name}`, 22)));
      root.appendChild(node);
      if (from !== undefined) {
        root.appendChild(svg("line", { x1: left + width, y1: y + (height - 12) / 2, x2: streamX - 2, y2: y + (height - 12) / 2, stroke: "#116329", "marker-end": "url(#studio-arrow)" }));
      }
    });
    graph.replaceChildren(root);
  }

  // ---- Completion from the JSON Schema ------------------------------------------------------------------------------
  let schema = null;
  fetch(studio.dataset.schema, { credentials: "same-origin" }).then((r) => (r.ok ? r.json() : null)).then((s) => { schema = s; }).catch(() => {});

  function deref(node) {
    let current = node, guard = 0;
    while (current && current.$ref && guard++ < 20) current = current.$ref.split("/").slice(1).reduce((o, k) => (o ? o[k] : undefined), schema);
    return current ?? {};
  }
  function variants(node) {
    const resolved = deref(node);
    const all = [resolved];
    for (const key of ["anyOf", "oneOf", "allOf"]) for (const v of resolved[key] ?? []) all.push(...variants(v));
    return all;
  }
  function childOf(nodes, key) {
    const result = [];
    for (const node of nodes) {
      if (key === "[]") { if (node.items) result.push(...variants(node.items)); continue; }
      if (node.properties && node.properties[key]) result.push(...variants(node.properties[key]));
      else if (node.additionalProperties && typeof node.additionalProperties === "object") result.push(...variants(node.additionalProperties));
    }
    return result;
  }

  // One line of YAML: where its dash and key start, and the key.
  function parseLine(line) {
    const m = /^(\s*)(-\s+)?(?:([A-Za-z_][\w-]*)\s*:)?/.exec(line);
    const spaces = m[1].length;
    return { dash: m[2] ? spaces : null, keyIndent: spaces + (m[2] ? m[2].length : 0), key: m[3] ?? null, blank: /^\s*(#.*)?$/.test(line) };
  }

  // The keys (and "[]" for list items) from the document's root to the line being typed, read from indentation.
  // After a list item at column d the owning key may sit at column d too ("steps:\n- id: …"), hence d + 0.5;
  // other items of the same list (also at d) are skipped.
  function pathTo(previousLines, current) {
    const path = [];
    let indent = current.keyIndent;
    if (current.dash !== null) { path.unshift("[]"); indent = current.dash + 0.5; }
    for (let i = previousLines.length - 1; i >= 0 && indent > 0; i--) {
      const line = parseLine(previousLines[i]);
      if (line.blank) continue;
      if (line.key !== null && line.keyIndent < indent) {
        path.unshift(line.key);
        indent = line.keyIndent;
        if (line.dash !== null) { path.unshift("[]"); indent = line.dash + 0.5; }
      } else if (line.dash !== null && line.dash < Math.floor(indent)) {
        path.unshift("[]");
        indent = line.dash + 0.5;
      }
    }
    return path;
  }

  let options = [];
  let active = 0;
  let replaceFrom = 0;

  function suggestions() {
    if (!schema) return null;
    const position = editor.selectionStart;
    const text = editor.value;
    const lineStart = text.lastIndexOf("\n", position - 1) + 1;
    const before = text.slice(lineStart, position);
    const previousLines = text.slice(0, lineStart).split("\n");
    previousLines.pop();
    const root = variants(schema.$defs?.manifest ?? schema);
    const valueMatch = /^(\s*)(-\s+)?([A-Za-z_][\w-]*):\s+(\S*)$/.exec(before);
    if (valueMatch) {
      const nodes = pathTo(previousLines, parseLine(before)).reduce(childOf, root);
      const values = childOf(nodes, valueMatch[3]).flatMap((n) =>
        n.enum ?? (n.const !== undefined ? [n.const] : n.type === "boolean" ? [true, false] : []));
      const prefix = valueMatch[4];
      return { from: position - prefix.length, items: [...new Set(values.map(String))].filter((v) => v.startsWith(prefix)).map((v) => ({ label: v, insert: v, description: "" })) };
    }
    const keyMatch = /^(\s*)(-\s+)?([A-Za-z_][\w-]*)?$/.exec(before);
    if (!keyMatch) return null;
    const current = parseLine(before);
    const nodes = pathTo(previousLines, current).reduce(childOf, root);
    const prefix = keyMatch[3] ?? "";
    const seen = new Map();
    for (const node of nodes) {
      for (const [key, child] of Object.entries(node.properties ?? {})) {
        if (!key.startsWith(prefix) || seen.has(key)) continue;
        const resolved = variants(child);
        const description = resolved.map((r) => r.description).find(Boolean) ?? "";
        const isList = resolved.some((r) => r.type === "array" || r.items);
        const isMap = !isList && resolved.some((r) => r.type === "object" || r.properties || r.additionalProperties);
        const indent = " ".repeat(current.keyIndent + 2);
        seen.set(key, { label: key, description, insert: isList ? `${key}:\n${indent}- ` : isMap ? `${key}:\n${indent}` : `${key}: ` });
      }
    }
    return { from: position - prefix.length, items: [...seen.values()].slice(0, 50) };
  }

  function closeCompletions() {
    completions.hidden = true;
    completions.replaceChildren();
    editor.setAttribute("aria-expanded", "false");
    editor.removeAttribute("aria-activedescendant");
    options = [];
  }

  function highlight(index) {
    active = (index + options.length) % options.length;
    [...completions.children].forEach((li, i) => li.setAttribute("aria-selected", String(i === active)));
    const current = completions.children[active];
    editor.setAttribute("aria-activedescendant", current.id);
    current.scrollIntoView({ block: "nearest" });
  }

  function openCompletions(explicit) {
    const found = suggestions();
    if (!found || found.items.length === 0 || (!explicit && found.items.length === 1 && found.items[0].label === editor.value.slice(found.from, editor.selectionStart))) {
      closeCompletions();
      return;
    }
    options = found.items;
    replaceFrom = found.from;
    completions.replaceChildren(...options.map((option, i) => {
      const item = document.createElement("li");
      item.id = `studio-completion-${i}`;
      item.setAttribute("role", "option");
      const label = document.createElement("span");
      label.className = "completion-label";
      label.textContent = option.label;
      item.appendChild(label);
      if (option.description) {
        const description = document.createElement("span");
        description.className = "completion-description";
        description.textContent = option.description;
        item.appendChild(description);
      }
      item.addEventListener("mousedown", (event) => { event.preventDefault(); accept(i); });
      return item;
    }));
    completions.hidden = false;
    editor.setAttribute("aria-expanded", "true");
    highlight(0);
  }

  function accept(index) {
    const option = options[index];
    closeCompletions();
    if (!option) return;
    editor.setRangeText(option.insert, replaceFrom, editor.selectionStart, "end");
    editor.dispatchEvent(new Event("input", { bubbles: true }));
    updateCursor();
  }

  editor.addEventListener("keydown", (event) => {
    if (event.key === " " && event.ctrlKey) { event.preventDefault(); openCompletions(true); return; }
    if (completions.hidden) return;
    if (event.key === "ArrowDown") { event.preventDefault(); highlight(active + 1); }
    else if (event.key === "ArrowUp") { event.preventDefault(); highlight(active - 1); }
    else if (event.key === "Enter" || event.key === "Tab") { event.preventDefault(); accept(active); }
    else if (event.key === "Escape") { event.preventDefault(); closeCompletions(); }
  });
  editor.addEventListener("input", (event) => {
    validateSoon();
    if (event.isTrusted && event.inputType === "insertText" && /[\w-]/.test(event.data ?? "")) openCompletions(false);
    else if (event.isTrusted) closeCompletions();
  });
  editor.addEventListener("blur", () => setTimeout(closeCompletions, 150));
  for (const name of ["keyup", "click", "select"]) editor.addEventListener(name, updateCursor);

  // ---- Test run -----------------------------------------------------------------------------------------------------
  const testForm = document.getElementById("studio-test");
  testForm?.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = testForm.querySelector("button");
    button.disabled = true;
    try {
      const draft = await validateNow();
      if (!draft.valid) throw new Error("Fix the manifest's problems (listed under the editor) before a test run.");
      let inputs;
      try { inputs = JSON.parse(document.getElementById("studio-test-inputs").value || "{}"); } catch { throw new Error("Inputs is not valid JSON."); }
      const connector = document.getElementById("studio-test-connector").value;
      const run = await api("POST", `${apiBase}/connectors/${encodeURIComponent(connector)}/test-runs`, { manifest: draft.manifest, inputs });
      const parts = {
        steps: document.getElementById("studio-steps"), template: document.getElementById("step-template"),
        status: document.getElementById("studio-run-status"), output: document.getElementById("studio-run-output"),
        error: document.getElementById("studio-run-error"),
      };
      parts.steps.replaceChildren();
      parts.output.textContent = "—";
      parts.error.hidden = true;
      parts.status.replaceChildren(statusBadge(run.status));
      document.getElementById("studio-run-link").href = `${pathBase}/connectors/${encodeURIComponent(connector)}/runs/${encodeURIComponent(run.id)}`;
      document.getElementById("studio-result").hidden = false;
      studio.dataset.testRun = run.status;
      followRun(`${apiBase}/connectors/${encodeURIComponent(connector)}/executions/${encodeURIComponent(run.id)}/stream`, parts, (done) => {
        studio.dataset.testRun = done.status;
        button.disabled = false;
      });
    } catch (error) {
      show(error.message);
      button.disabled = false;
    }
  });

  // ---- Save ---------------------------------------------------------------------------------------------------------
  // The credential fields a template asks for: the credentials.* names its manifest uses.
  function credentialFields(manifest) {
    const names = new Set([...JSON.stringify(manifest).matchAll(/credentials\.([A-Za-z_]\w*)/g)].map((m) => m[1]));
    return [...names].map((name) => ({ name, label: name.replace(/_/g, " "), required: true }));
  }
  const authTypes = ["none", "api_key", "bearer", "basic", "oauth2_client_credentials", "oauth2_refresh_token", "oauth2_authorization_code", "session"];

  for (const form of document.querySelectorAll("form[data-studio-save]")) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const button = form.querySelector("button");
      button.disabled = true;
      try {
        const draft = await validateNow();
        if (!draft.valid) throw new Error("Fix the manifest's problems (listed under the editor) before saving.");
        const field = (name) => form.elements.namedItem(name)?.value.trim() || undefined;
        const kind = form.dataset.studioSave;
        if (kind === "connector") {
          await api("PATCH", `${apiBase}/connectors/${encodeURIComponent(studio.dataset.connector)}`, { manifest: draft.manifest });
          show("Saved: the connector runs this manifest from now on.", "ok");
        } else if (kind === "new-connector") {
          const created = await api("POST", `${apiBase}/connectors`, { name: field("name"), manifest: draft.manifest });
          window.location.assign(`${pathBase}/connectors/${encodeURIComponent(created.id)}`);
        } else {
          const auth = draft.manifest?.auth?.type ?? "none";
          await api("POST", `${apiBase}/templates`, {
            slug: field("slug"), name: field("name"), description: field("description"), category: field("category"),
            manifest: draft.manifest, credential_fields: credentialFields(draft.manifest), auth_type: authTypes.includes(auth) ? auth : "custom",
          });
          window.location.assign(`${pathBase}/templates`);
        }
      } catch (error) {
        show(error.message);
      } finally {
        button.disabled = false;
      }
    });
  }

  updateCursor();
  validateNow();
})();
