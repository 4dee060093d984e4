// Ango answer geometry <-> Annotorious shapes, for the review canvas
// (canvas.js): a bounding-box {x, y, width, height} is an Annotorious RECTANGLE
// {x, y, w, h}, a polygon [[x, y], …] a POLYGON; both in image pixels.
window.CanvasShapes = (() => {
  "use strict";
  const EPSILON = 1e-6;

  const bounds = (points) => {
    const xs = points.map((p) => p[0]);
    const ys = points.map((p) => p[1]);
    return { minX: Math.min(...xs), minY: Math.min(...ys), maxX: Math.max(...xs), maxY: Math.max(...ys) };
  };

  function toAnnotation(item) {
    const g = item.geometry;
    const selector =
      item.kind === "bounding-box"
        ? { type: "RECTANGLE", geometry: { x: g.x, y: g.y, w: g.w, h: g.h, bounds: { minX: g.x, minY: g.y, maxX: g.x + g.w, maxY: g.y + g.h } } }
        : { type: "POLYGON", geometry: { points: g.points, bounds: bounds(g.points) } };
    return {
      id: item.id,
      bodies: [{ id: `${item.id}-label`, annotation: item.id, purpose: "tagging", value: item.schemaId }],
      target: { annotation: item.id, selector },
    };
  }

  function geometryOf(annotation) {
    const selector = annotation.target.selector;
    if (selector.type === "RECTANGLE") {
      const g = selector.geometry;
      return { x: g.x, y: g.y, w: g.w, h: g.h };
    }
    if (selector.type === "POLYGON") return { points: selector.geometry.points.map((p) => [p[0], p[1]]) };
    return null;
  }

  const round = (v) => Math.round(v * 10) / 10;
  const clamp = (v, low, high) => Math.min(Math.max(v, low), high);
  const same = (a, b) => Math.abs(a - b) < EPSILON;


  function geometryChanged(item, g) {
    if (!item.original) return true;
    if (item.kind === "bounding-box") {
      const b = item.original["bounding-box"];
      return !(same(b.x, g.x) && same(b.y, g.y) && same(b.width, g.w) && same(b.height, g.h));
    }
    const before = item.original.polygon;
    return before.length !== g.points.length || before.some((p, i) => !same(p[0], g.points[i][0]) || !same(p[1], g.points[i][1]));
  }

  // The Ango geometry of a shape, rounded to 0.1 px and kept inside the W x H image.
  function geometryJson(item, g, W, H) {
    if (item.kind === "bounding-box") {
      const x = round(clamp(g.x, 0, W));
      const y = round(clamp(g.y, 0, H));
      return { x, y, width: round(clamp(g.w, 0, W - x)), height: round(clamp(g.h, 0, H - y)) };
    }
    return g.points.map((p) => [round(clamp(p[0], 0, W)), round(clamp(p[1], 0, H))]);
  }

  return { toAnnotation, geometryOf, geometryChanged, geometryJson };
})();
