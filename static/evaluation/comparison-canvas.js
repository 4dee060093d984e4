// The comparison canvas (templates/evaluation/comparison_asset.html), read-only,
// on Annotorious 3 (static/vendor/annotorious) with the review canvas's shape
// conversion (static/js/canvas-shapes.js): the reviewed answer and each compared
// run's boxes and polygons, one colour per layer, each layer shown or hidden by
// its legend checkbox; a selected object shows how the comparison matched it
// (TP with its IoU and partner, FP, FN). The state is computed by the server
// (evaluation/asset_view.py), as JSON in the page.
(() => {
  "use strict";
  const root = document.getElementById("comparison-canvas");
  const stateNode = document.getElementById("comparison-state");
  if (!root || !stateNode || !window.Annotorious || !window.CanvasShapes) return;

  const $ = (id) => document.getElementById(id);
  const state = JSON.parse(stateNode.textContent);
  const layers = new Map(state.layers.map((layer) => [layer.key, layer]));
  const items = new Map(); // annotation id -> {layer, object}
  for (const layer of state.layers) {
    for (const object of layer.objects) items.set(object.id, { layer, object });
  }
  const hidden = new Set();

  function style(annotation, flags) {
    const item = items.get(annotation.id);
    const colour = item ? item.layer.colour : "#868e96";
    const selected = flags && flags.selected;
    return { fill: colour, fillOpacity: selected ? 0.3 : 0.06, stroke: colour, strokeOpacity: 1, strokeWidth: selected ? 3.5 : 2 };
  }

  const anno = window.Annotorious.createImageAnnotator($("comparison-image"), {
    drawingEnabled: false,
    userSelectAction: "SELECT",
    style,
  });

  // Hidden layers are taken off the image, not just made transparent: what is
  // left is what can be clicked.
  function draw() {
    const shown = [...items.values()].filter(({ layer }) => !hidden.has(layer.key));
    anno.cancelSelected();
    anno.setAnnotations(shown.map(({ object }) => window.CanvasShapes.toAnnotation(object)), true);
    show(null);
  }

  const formatIou = (iou) => (Math.round(iou * 1000) / 1000).toFixed(3);

  function matchLine(item, match) {
    const li = document.createElement("li");
    const badge = document.createElement("span");
    badge.className = `match-${match.status}`;
    badge.textContent = match.status;
    const other = layers.get(match.layer);
    let text;
    if (match.status === "TP") text = ` with ${other.label}'s object, IoU ${formatIou(match.iou)}`;
    else if (match.status === "FP") text = ` no reviewed ${item.object.title} at IoU ≥ ${state.threshold}`;
    else text = ` missed by ${other.label}`;
    li.append(badge, document.createTextNode(text));
    if (match.with && !hidden.has(match.layer)) {
      const go = document.createElement("button");
      go.type = "button";
      go.textContent = "show";
      go.title = "Select the matched object";
      go.addEventListener("click", () => select(match.with));
      li.append(" ", go);
    }
    return li;
  }

  function show(id) {
    const item = id ? items.get(id) : null;
    $("comparison-selected").hidden = !item;
    if (!item) return;
    $("comparison-selected-layer").textContent = item.layer.label;
    $("comparison-selected-label").textContent = `${item.object.title} (${item.object.kind})`;
    $("comparison-selected-object").textContent = item.object.objectId || "—";
    $("comparison-selected-matches").replaceChildren(...item.object.matches.map((m) => matchLine(item, m)));
  }

  function select(id) {
    anno.setSelected(id);
    show(id);
  }

  anno.on("selectionChanged", (selected) => show(selected.length ? selected[0].id : null));
  root.addEventListener("change", (event) => {
    const key = event.target.dataset && event.target.dataset.layerToggle;
    if (!key) return;
    if (event.target.checked) hidden.delete(key);
    else hidden.add(key);
    draw();
  });
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target.closest && event.target.closest("input, select, textarea")) return;
    const link = event.key === "n" ? $("comparison-next") : event.key === "p" ? $("comparison-previous") : null;
    if (link) window.location.assign(link.href);
    else if (event.key === "Escape") {
      anno.cancelSelected();
      show(null);
    }
  });

  draw();
  root.dataset.ready = "true";
})();
