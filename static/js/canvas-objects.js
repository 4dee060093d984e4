// The review canvas's objects (canvas.js): an answer object of the task's state
// (web/canvas.py) as the item the canvas edits and lists, that item back as an
// Ango answer object on Submit, and how the list names its source and state.
// Geometry itself is canvas-shapes.js's.
window.CanvasObjects = (() => {
  "use strict";
  const { geometryChanged, geometryJson } = window.CanvasShapes;

  // entry: {object, source, confidence, drawn, locked} from the canvas state.
  function fromObject(entry, id) {
    const obj = entry.object;
    const box = obj["bounding-box"];
    const polygon = obj.polygon;
    let kind = null;
    let geometry = null;
    if (box && typeof box === "object") {
      kind = "bounding-box";
      if (entry.drawn) geometry = { x: box.x, y: box.y, w: box.width, h: box.height };
    } else if (Array.isArray(polygon)) {
      kind = "polygon";
      if (entry.drawn) geometry = { points: polygon.map((p) => [p[0], p[1]]) };
    } else {
      // Points, polylines, rotated boxes…: listed and kept as they are.
      kind = Object.keys(obj).find((k) => !["schemaId", "objectId", "classifications", "title"].includes(k)) || "object";
    }
    return {
      id,
      original: obj,
      schemaId: obj.schemaId,
      kind,
      geometry,
      source: entry.source,
      confidence: entry.confidence,
      // A plugin's objects wait for a person's look; people's are accepted.
      accepted: entry.source.kind !== "plugin" || Boolean(entry.locked),
      // Another labeling job's object (web/canvas.py canvas_for_job): shown, never edited.
      locked: Boolean(entry.locked),
      isNew: false,
      classifications: Array.isArray(obj.classifications) ? obj.classifications : null,
      nestedChanged: false,
    };
  }

  // A shape the labeler just drew (its id is Annotorious's).
  function drawnByYou(id, schemaId, kind, geometry) {
    return {
      id,
      original: null,
      schemaId,
      kind,
      geometry,
      source: { kind: "person", label: "you", run: null },
      confidence: null,
      accepted: true,
      isNew: true,
    };
  }

  const drawn = (item) => item.geometry !== null;

  // The object sent on Submit; g is the item's geometry now (moved or not).
  // An object the canvas did not change goes back exactly as stored.
  function toObject(item, g, width, height) {
    if (!drawn(item)) return item.original;
    const moved = geometryChanged(item, g);
    if (!moved && !item.nestedChanged && item.original && item.original.schemaId === item.schemaId) return item.original;
    const obj = { ...(item.original || {}), schemaId: item.schemaId };
    if (moved) obj[item.kind] = geometryJson(item, g, width, height);
    if (item.classifications) obj.classifications = item.classifications;
    else delete obj.classifications;
    return obj;
  }

  function sourceText(item) {
    if (item.isNew) return "you (not submitted yet)";
    return item.source.kind === "plugin" ? `plugin ${item.source.label}` : item.source.label;
  }

  function stateText(item) {
    if (item.locked) return "other job";
    if (item.isNew) return "new";
    if (item.changed) return "edited";
    return item.accepted ? "accepted" : "to review";
  }

  const formatConfidence = (c) => (c <= 1 ? `${Math.round(c * 1000) / 10} %` : String(c));

  return { fromObject, drawnByYou, drawn, toObject, sourceText, stateText, formatConfidence };
})();
