// The review canvas of the task and asset pages (templates/projects/canvas.html),
// on Annotorious 3 (static/vendor/annotorious). It draws the answer's objects in
// their label's colour, lets a labeler move/resize boxes, edit polygon points,
// change labels, draw new boxes and polygons, delete and accept objects, and
// fills the task's Submit form with the answer in Ango's format: the server
// checks and stores it like any other answer (lifecycle.task_submit). Objects the
// canvas did not change are sent back exactly as stored, so their source (read
// from the task's history, web/canvas.py) stays theirs. Its parts, loaded before
// it: canvas-shapes.js (geometry), canvas-objects.js (answer objects <-> the
// items listed and edited), canvas-fields.js (classification controls) and
// canvas-run.js (a run started from the editor).
(() => {
  "use strict";
  const root = document.getElementById("canvas");
  const stateNode = document.getElementById("canvas-state");
  if (!root || !stateNode || !window.Annotorious || !window.CanvasShapes || !window.CanvasObjects || !window.CanvasFields || !window.CanvasRun) return;

  const $ = (id) => document.getElementById(id);
  const image = $("canvas-image");
  const list = $("canvas-objects");
  const labelPicker = $("canvas-label");
  const selectedBox = $("canvas-selected");
  const selectedLabel = $("canvas-selected-label");
  const status = $("canvas-run-status");
  const GEOMETRY = { rectangle: "bounding-box", polygon: "polygon" };
  const { toAnnotation, geometryOf, geometryChanged } = window.CanvasShapes;
  const { fromObject, drawnByYou, drawn, toObject, sourceText, stateText, formatConfidence } = window.CanvasObjects;
  const { build: buildFields, merge: mergeAnswers } = window.CanvasFields;

  let state = JSON.parse(stateNode.textContent);
  let tools = new Map();
  let items = []; // {id, original, schemaId, kind, geometry, source, confidence, accepted, isNew}
  let byId = new Map();
  // Objects taken off the canvas, kept for Annotorious's undo (Ctrl+Z) to bring back.
  let removed = new Map();
  let selectedId = null;
  let counter = 0;
  let anno = null;
  let editable = false;
  let editableShown = false; // setEditable has applied `editable` at least once
  // Changes not submitted yet: a run's answer arriving replaces them (said so).
  let dirty = false;

  // --- the answer sent on Submit ----------------------------------------------------
  function currentGeometry(item) {
    const annotation = anno && drawn(item) ? anno.getAnnotationById(item.id) : null;
    return annotation ? geometryOf(annotation) : item.geometry;
  }

  const classificationsJson = () => mergeAnswers(state.answer.classifications, $("canvas-classifications"));

  function answerJson() {
    return {
      ...state.answer,
      tools: items.map((item) => toObject(item, currentGeometry(item), state.width, state.height)),
      classifications: classificationsJson(),
      relations: state.answer.relations || [],
    };
  }

  // --- the side panel ---------------------------------------------------------------
  const title = (schemaId) => (tools.get(schemaId) || {}).title || schemaId;
  const colour = (schemaId) => (tools.get(schemaId) || {}).color || "#ff0055";
  // Another labeling job's objects are grey, on the image and in the list.
  const itemColour = (item) => (item && item.locked ? "#adb5bd" : colour(item ? item.schemaId : ""));

  function renderList(withSelected = true) {
    list.replaceChildren(
      ...items.map((item, index) => {
        const li = document.createElement("li");
        li.dataset.id = item.id;
        li.className = `canvas-object state-${stateText(item).replace(/ /g, "-")}${item.id === selectedId ? " selected" : ""}`;
        const swatch = document.createElement("span");
        swatch.className = "swatch";
        swatch.style.background = itemColour(item);
        const name = document.createElement("button");
        name.type = "button";
        name.className = "canvas-object-name";
        name.textContent = `${index + 1}. ${title(item.schemaId)}`;
        name.addEventListener("click", () => select(item.id));
        const meta = document.createElement("small");
        meta.className = "muted";
        const confidence = item.confidence === null || item.confidence === undefined ? "" : ` · ${formatConfidence(item.confidence)}`;
        meta.textContent = ` ${sourceText(item)}${confidence} · ${stateText(item)}${drawn(item) ? "" : ` · ${item.kind}, not drawn`}`;
        li.append(swatch, name, meta);
        return li;
      }),
    );
    $("canvas-count").textContent = `(${items.length}; ${items.filter((i) => !i.accepted).length} to review)`;
    $("canvas-source-json").textContent = JSON.stringify(answerJson(), null, 2);
    // The selected object's panel is rebuilt unless its own controls changed
    // (rebuilding would take the focus from the field being filled in).
    if (withSelected) renderSelected();
  }

  function renderSelected() {
    const item = byId.get(selectedId);
    selectedBox.hidden = !item;
    if (!item) return;
    const sameKind = (t) => t.tool === (tools.get(item.schemaId) || {}).tool && t.inJob !== false;
    const choices = [...tools.values()].filter((t) => sameKind(t) || t.schemaId === item.schemaId);
    selectedLabel.replaceChildren(
      ...choices.map((t) => {
        const option = document.createElement("option");
        option.value = t.schemaId;
        option.textContent = t.title;
        option.selected = t.schemaId === item.schemaId;
        return option;
      }),
    );
    selectedLabel.disabled = !editable || !drawn(item) || item.locked;
    $("canvas-selected-source").textContent = sourceText(item);
    const link = item.source && item.source.kind === "plugin" && item.source.run && !item.isNew ? item.source.run : null;
    if (link) {
      const a = document.createElement("a");
      a.href = `/runs/${link}/`;
      a.textContent = ` (run page)`;
      $("canvas-selected-source").append(a);
    }
    const nested = (tools.get(item.schemaId) || {}).classifications || [];
    const box = $("canvas-object-classifications");
    box.hidden = !nested.length;
    buildFields(box, nested, item.classifications, `objcls-${item.id}`, editable && !item.locked);
    $("canvas-selected-confidence").textContent =
      item.confidence === null || item.confidence === undefined ? "— (the plugin gave none)" : formatConfidence(item.confidence);
  }

  // --- actions ----------------------------------------------------------------------
  function select(id) {
    selectedId = id;
    const item = byId.get(id);
    if (anno) {
      if (item && drawn(item)) anno.setSelected(id);
      else anno.cancelSelected();
    }
    renderList();
  }

  function step(delta) {
    if (!items.length) return;
    const at = items.findIndex((i) => i.id === selectedId);
    const next = at < 0 ? (delta > 0 ? 0 : items.length - 1) : (at + delta + items.length) % items.length;
    select(items[next].id);
  }

  function removeSelected() {
    const item = byId.get(selectedId);
    if (!item || !editable || item.locked) return;
    const at = items.indexOf(item);
    items.splice(at, 1);
    byId.delete(item.id);
    removed.set(item.id, { item, at });
    dirty = true;
    if (drawn(item) && anno) anno.removeAnnotation(item.id);
    selectedId = null;
    if (items.length) select(items[Math.min(at, items.length - 1)].id);
    else renderList();
  }

  function accept(item) {
    item.accepted = true;
    if (anno && drawn(item)) anno.updateAnnotation(toAnnotation({ ...item, geometry: currentGeometry(item) }));
  }

  function acceptAll() {
    if (!editable) return;
    items.forEach(accept);
    renderList();
  }

  function relabel(schemaId) {
    const item = byId.get(selectedId);
    if (!item || !editable || item.locked || !tools.has(schemaId)) return;
    item.schemaId = schemaId;
    item.changed = true;
    dirty = true;
    if (item.classifications) {
      const allowed = new Set(tools.get(schemaId).classificationIds || []);
      const kept = item.classifications.filter((c) => allowed.has(c.schemaId));
      if (kept.length !== item.classifications.length) item.nestedChanged = true;
      item.classifications = kept;
    }
    accept(item);
    renderList();
  }

  function setTool(name) {
    for (const button of root.querySelectorAll("[data-tool]")) {
      button.setAttribute("aria-pressed", String(button.dataset.tool === name));
    }
    if (!anno) return;
    if (!name) {
      anno.setDrawingEnabled(false);
      return;
    }
    // Annotorious draws only with nothing selected.
    anno.cancelSelected();
    selectedId = null;
    renderList();
    anno.setDrawingTool(name);
    // Boxes are dragged; polygons are clicked point by point (in Annotorious's
    // drag mode a polygon's first click would be dropped as a too-short drag).
    anno.setDrawingMode(name === "polygon" ? "click" : "drag");
    anno.setDrawingEnabled(true);
    // The label picker follows the tool: only labels that draw this geometry.
    const fits = [...labelPicker.options].filter((o) => o.dataset.tool === GEOMETRY[name]);
    if (fits.length && !fits.includes(labelPicker.selectedOptions[0])) labelPicker.value = fits[0].value;
  }

  // An undo gave back a shape taken off the canvas: its object comes back as
  // it was (label, source), not as a new drawing.
  function restore(id) {
    const gone = removed.get(id);
    if (byId.has(id) || !gone) return false;
    items.splice(Math.min(gone.at, items.length), 0, gone.item);
    byId.set(id, gone.item);
    removed.delete(id);
    return true;
  }

  function onCreate(annotation) {
    // Annotorious sends this a moment after the shape reached its store (a
    // timer): an undo or redo may have taken it away since (keys pressed
    // faster than that, or a busy page). The store observer in start() has
    // already followed the store; listing the shape now would bring back an
    // object the image no longer shows, and submit it.
    if (!anno.getAnnotationById(annotation.id)) return;
    if (restore(annotation.id)) {
      renderList();
      return;
    }
    if (byId.has(annotation.id)) return;
    const kind = annotation.target.selector.type === "RECTANGLE" ? "bounding-box" : "polygon";
    let option = labelPicker.selectedOptions[0];
    if (!option || option.dataset.tool !== kind) option = [...labelPicker.options].find((o) => o.dataset.tool === kind);
    if (!option) {
      anno.removeAnnotation(annotation.id);
      say(`The ontology has no ${kind} label to give this shape.`);
      return;
    }
    const item = drawnByYou(annotation.id, option.value, kind, geometryOf(annotation));
    items.push(item);
    byId.set(item.id, item);
    dirty = true;
    anno.updateAnnotation(toAnnotation(item));
    selectedId = item.id;
    renderList();
  }

  function onUpdate(annotation) {
    const item = byId.get(annotation.id);
    if (!item) return;
    const g = geometryOf(annotation);
    if (g && drawn(item) && geometryChanged(item, g)) {
      item.changed = !item.isNew;
      item.accepted = true;
      dirty = true;
    }
    renderList(false);
  }

  function say(text, link) {
    status.replaceChildren(document.createTextNode(text));
    if (link) {
      const a = document.createElement("a");
      a.href = link.href;
      a.textContent = link.text;
      status.append(" ", a);
    }
  }

  // --- loading a state (the page's, or after a run or a submit) -------------------
  function load(next) {
    state = next;
    state.answer = state.answer || {};
    tools = new Map(state.tools.map((t) => [t.schemaId, t]));
    items = state.objects.map((entry) => fromObject(entry, `obj-${++counter}`));
    byId = new Map(items.map((i) => [i.id, i]));
    removed = new Map();
    dirty = false;
    selectedId = null;
    const top = $("canvas-classifications");
    if (top) buildFields(top, state.classifications, state.answer.classifications, "cls", editable);
    if (anno) {
      anno.cancelSelected();
      anno.setAnnotations(items.filter(drawn).map(toAnnotation), true);
    }
    renderList();
  }

  function setEditable() {
    const now = Boolean(document.getElementById("task-submit-form"));
    // The task panel's poll swaps it every few seconds: when editing neither
    // began nor ended, rebuilding the selected object's panel would wipe what
    // is being typed in it.
    if (editableShown && now === editable) return;
    editableShown = true;
    editable = now;
    root.classList.toggle("read-only", !editable);
    for (const node of root.querySelectorAll("[data-edit-only]")) node.hidden = !editable;
    for (const input of root.querySelectorAll("[data-classification] input, [data-classification] select")) input.disabled = !editable;
    if (anno) {
      // Other labeling jobs' objects can be selected (to read), not edited.
      anno.setUserSelectAction(editable ? (a) => ((byId.get(a.id) || {}).locked ? "SELECT" : "EDIT") : "SELECT");
      if (!editable) setTool("");
    }
    renderSelected();
  }

  function style(annotation, flags) {
    const item = byId.get(annotation.id);
    const color = itemColour(item);
    const selected = flags && flags.selected;
    const accepted = !item || item.accepted;
    return {
      fill: color,
      fillOpacity: selected ? 0.3 : accepted ? 0.12 : 0.02,
      stroke: color,
      strokeOpacity: 1,
      strokeWidth: selected ? 3 : accepted ? 2.5 : 1.5,
    };
  }

  function start() {
    anno = window.Annotorious.createImageAnnotator(image, {
      drawingEnabled: false,
      drawingMode: "drag",
      autoSave: true,
      userSelectAction: "SELECT",
      style,
    });
    anno.on("createAnnotation", onCreate);
    anno.on("updateAnnotation", onUpdate);
    // Annotorious's own undo/redo (Ctrl+Z, Ctrl+Y) adds and removes shapes in
    // its store without lifecycle events: the object list follows the store.
    anno.state.store.observe(({ changes }) => {
      let changed = false;
      for (const annotation of changes.deleted || []) {
        const item = byId.get(annotation.id);
        if (!item) continue;
        const at = items.indexOf(item);
        items.splice(at, 1);
        byId.delete(item.id);
        removed.set(item.id, { item, at });
        if (selectedId === item.id) selectedId = null;
        changed = true;
      }
      for (const annotation of changes.created || []) changed = restore(annotation.id) || changed;
      if (changed) renderList();
    });
    anno.on("selectionChanged", () => {
      // This comes on a timer: keys pressed since (n, p, Delete) may have
      // moved the selection on, so it is read as it is now, not as it was
      // (n, n, n, Delete deleted the first object). A selection made from the
      // list (select()) is shown already: rebuilding the panel then would
      // wipe what is being typed in it.
      const [now] = anno.getSelected();
      if (now && now.id !== selectedId) {
        selectedId = now.id;
        renderList();
      }
    });
    load(state);
    setEditable();
    root.dataset.ready = "true";
  }

  // --- run from the editor (canvas-run.js) ---------------------------------------------
  const runPlugin = window.CanvasRun.runner({
    runUrl: () => state.runUrl,
    stateUrl: () => state.stateUrl,
    say,
    closeMenu: () => {
      $("canvas-plugins").open = false;
    },
    // The run wrote this task's answer: the canvas shows it, ready to review.
    written(next, run, name, link) {
      const lost = dirty ? " Your changes not submitted yet were replaced by its answer." : "";
      load(next);
      const fresh = items.filter((i) => i.source.run === run.id).length;
      say(`${name} wrote ${fresh} object(s): accept (a), fix or delete them, then Submit.${lost}`, link);
    },
  });

  // --- wiring -------------------------------------------------------------------------
  root.addEventListener("click", (event) => {
    const toolButton = event.target.closest("[data-tool]");
    if (toolButton && editable) setTool(toolButton.dataset.tool);
    const runButton = event.target.closest(".canvas-run");
    if (runButton) runPlugin(runButton.textContent.trim(), runButton.dataset.plugin, runButton.dataset.preset);
  });
  root.addEventListener("submit", (event) => {
    const form = event.target.closest(".canvas-run-form");
    if (!form) return;
    event.preventDefault();
    const mapping = Object.fromEntries([...form.querySelectorAll("select")].map((s) => [s.name, s.value]));
    runPlugin(form.querySelector("button").textContent.replace(/^Run /, ""), form.dataset.plugin, "", mapping);
  });
  $("canvas-accept-all").addEventListener("click", acceptAll);
  $("canvas-delete").addEventListener("click", removeSelected);
  $("canvas-accept").addEventListener("click", () => {
    const item = byId.get(selectedId);
    if (item && editable) {
      accept(item);
      step(1);
    }
  });
  selectedLabel.addEventListener("change", () => relabel(selectedLabel.value));
  root.addEventListener("change", (event) => {
    if (event.target.closest("#canvas-classifications")) {
      dirty = true;
      renderList(false);
    }
    if (event.target.closest("#canvas-object-classifications")) {
      const item = byId.get(selectedId);
      if (!item || !editable || item.locked) return;
      item.classifications = mergeAnswers(item.classifications, $("canvas-object-classifications"));
      item.nestedChanged = true;
      item.changed = !item.isNew;
      dirty = true;
      accept(item);
      renderList(false);
    }
  });

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target.closest && event.target.closest("input, select, textarea, [contenteditable], dialog[open]")) return;
    if (event.key === "n") step(1);
    else if (event.key === "p") step(-1);
    else if (event.key === "a") acceptAll();
    else if (event.key === "Escape") setTool("");
    else if (event.key === "Delete" || event.key === "Backspace") {
      // A selected polygon vertex is Annotorious's to delete, not the object.
      if (root.querySelector(".a9s-handle-selected")) return;
      event.preventDefault();
      removeSelected();
    } else return;
  });

  // The task panel's forms (Submit, Accept/Reject) answered: the stage may
  // allow editing or not any more; a successful submit is read back so sources
  // name who submitted. Heard on the form itself: when the poll had already
  // brought the next stage's panel (out of band), htmx drops the answer's swap
  // and no event of it reaches the document (the form is out of it by then).
  async function panelAnswered(event) {
    if (!event.detail.successful) return;
    if (!document.getElementById("task-action-error")) {
      const response = await fetch(state.stateUrl, { credentials: "same-origin" });
      if (response.ok) load(await response.json());
    }
    setEditable();
  }

  // Submit sends the canvas: filled in before htmx reads the form (capture phase).
  document.addEventListener(
    "submit",
    (event) => {
      const form = event.target;
      if (form.id === "task-submit-form") $("task-answer").value = JSON.stringify(answerJson());
      // Added once per form (the same listener is not added twice).
      if (form.id === "task-submit-form" || form.id === "task-review-form") form.addEventListener("htmx:afterRequest", panelAnswered);
    },
    true,
  );

  // A plugin moved the task (polled, out of band): editing may be over or begin.
  document.addEventListener("htmx:oobAfterSwap", (event) => {
    if (event.detail.target && event.detail.target.id === "task-panel") setEditable();
  });

  if (image.complete && image.naturalWidth) start();
  else image.addEventListener("load", start, { once: true });
})();
