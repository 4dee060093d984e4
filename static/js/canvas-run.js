// Run from the editor (canvas.js): the canvas menu's POST to canvas_views.canvas_run
// (a preset, or a one-time mapping), then the run followed by polling the
// canvas's state until it ended; the run page has the details.
window.CanvasRun = (() => {
  "use strict";

  const csrf = () => {
    try {
      return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || "";
    } catch {
      return "";
    }
  };

  // hooks: runUrl(), stateUrl(), say(text, link), closeMenu(), written(state, run, name, link).
  function runner(hooks) {
    async function watch(run, name) {
      const link = { href: run.url, text: `run #${run.id}` };
      hooks.say(`${name}: ${run.statusLabel.toLowerCase()}; its objects appear here when it answers.`, link);
      for (;;) {
        await new Promise((resolve) => setTimeout(resolve, 1000));
        // The state URL may name the labeling job (?job=): the run is added to it.
        const url = new URL(hooks.stateUrl(), window.location.href);
        url.searchParams.set("run", run.id);
        const response = await fetch(url, { credentials: "same-origin" });
        if (!response.ok) {
          hooks.say(`Could not follow the run (${response.status}).`, link);
          return;
        }
        const next = await response.json();
        const now = next.run;
        if (!now.finished) {
          hooks.say(`${name}: ${now.statusLabel.toLowerCase()}…`, link);
          continue;
        }
        if (now.outcome === "written") hooks.written(next, run, name, link);
        else if (now.outcome === "skipped") hooks.say(`${name} did not write: ${now.reason}`, link);
        else hooks.say(`${name} ended ${now.statusLabel.toLowerCase()}${now.error ? `: ${now.error}` : " without writing"}.`, link);
        return;
      }
    }

    // A preset's button, or the one-time mapping form ({model class: schemaId}).
    return async function runPlugin(name, plugin, preset, mapping) {
      const body = new FormData();
      body.set("plugin", plugin);
      if (preset) body.set("preset", preset);
      if (mapping) body.set("mapping", JSON.stringify(mapping));
      hooks.closeMenu();
      hooks.say(`Starting ${name}…`);
      const response = await fetch(hooks.runUrl(), { method: "POST", body, headers: { "X-CSRFToken": csrf() }, credentials: "same-origin" });
      const reply = await response.json().catch(() => ({ error: `The hub answered ${response.status}.` }));
      if (!response.ok) {
        hooks.say(reply.error || `The hub answered ${response.status}.`);
        return;
      }
      watch(reply.run, name);
    };
  }

  return { runner };
})();
