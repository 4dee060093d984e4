// The classification form controls of the review canvas (canvas.js), built
// from the ontology's definitions (web/canvas.py classification_fields), and
// the answers read back from them in Ango's format.
window.CanvasFields = (() => {
  "use strict";

  // Classification answers from form controls built by buildFields: answers the
  // controls did not change are kept as they were (with anything nested in
  // them); kinds without a control are kept; an unanswered one is left out.
  function mergeAnswers(given, container) {
    const before = (given || []).filter((c) => c && typeof c === "object");
    const fields = container ? [...container.querySelectorAll(":scope > [data-classification]")] : [];
    const inForm = new Set(fields.map((f) => f.dataset.classification));
    const result = before.filter((c) => !inForm.has(c.schemaId));
    for (const field of fields) {
      const schemaId = field.dataset.classification;
      const value = fieldValue(field);
      if (value === null) continue;
      const old = before.find((c) => c.schemaId === schemaId);
      if (old && JSON.stringify(old.answer) === JSON.stringify(value)) result.push(old);
      else result.push({ ...(old || {}), schemaId, answer: value });
    }
    return result;
  }

  // Form controls for classification definitions (web/canvas.py
  // classification_fields), filled with the answers in `given`.
  function buildFields(container, fields, given, prefix, editable) {
    const answers = new Map((given || []).filter((c) => c && typeof c === "object").map((c) => [c.schemaId, c.answer]));
    const legend = container.querySelector(":scope > legend");
    container.replaceChildren(...(legend ? [legend] : []));
    fields.forEach((f, index) => {
      const value = answers.get(f.schemaId);
      const chosen = Array.isArray(value) ? value : typeof value === "string" ? [value] : [];
      const field = document.createElement("div");
      field.className = "field";
      field.dataset.classification = f.schemaId;
      field.dataset.kind = f.kind;
      const id = `${prefix}-${index}`;
      const title = document.createElement(f.kind === "radio" || f.kind === "checkbox" ? "span" : "label");
      title.className = "field-title";
      title.textContent = f.title;
      field.append(title);
      if (f.kind === "radio" || f.kind === "checkbox") {
        field.setAttribute("role", "group");
        field.setAttribute("aria-label", f.title);
        for (const option of f.options) {
          const label = document.createElement("label");
          const input = document.createElement("input");
          input.type = f.kind;
          input.name = id;
          input.value = option;
          input.checked = chosen.includes(option);
          label.append(input, ` ${option}`);
          field.append(label);
        }
      } else if (f.kind === "text") {
        const input = document.createElement("input");
        input.type = "text";
        input.id = id;
        input.value = typeof value === "string" ? value : "";
        title.htmlFor = id;
        field.append(input);
      } else {
        const select = document.createElement("select");
        select.id = id;
        select.multiple = f.kind === "multi-dropdown";
        title.htmlFor = id;
        if (!select.multiple) select.append(new Option("—", ""));
        for (const option of f.options) select.append(new Option(option, option, false, chosen.includes(option)));
        field.append(select);
      }
      for (const input of field.querySelectorAll("input, select")) input.disabled = !editable;
      container.append(field);
    });
  }

  function fieldValue(field) {
    const kind = field.dataset.kind;
    if (kind === "radio") {
      const checked = field.querySelector("input:checked");
      return checked ? checked.value : null;
    }
    if (kind === "checkbox") {
      const values = [...field.querySelectorAll("input:checked")].map((i) => i.value);
      return values.length ? values : null;
    }
    if (kind === "multi-dropdown") {
      const values = [...field.querySelector("select").selectedOptions].map((o) => o.value);
      return values.length ? values : null;
    }
    const input = field.querySelector("input, select");
    return input.value ? input.value : null;
  }

  return { build: buildFields, merge: mergeAnswers };
})();
