// The asset table's selection: ticked rows (their ids) or every asset matching
// the filter. "Run plugin on selection" opens the Run dialog with it as one
// small JSON filter (workspace/selection.py), never a list of every match.
(() => {
  const bar = document.getElementById("selection-bar");
  if (!bar) return;
  const total = Number(bar.dataset.total || 0);
  const filter = JSON.parse(bar.dataset.filter || "{}");
  const count = document.getElementById("selection-count");
  const allButton = document.getElementById("select-all-matching");
  const noneButton = document.getElementById("select-none");
  const runButton = document.getElementById("run-on-selection");
  const pageBox = document.getElementById("select-page");
  const rows = () => [...document.querySelectorAll(".row-check")];
  let allMatching = false;

  const ticked = () => rows().filter((box) => box.checked).map((box) => Number(box.value));
  const refresh = () => {
    const n = allMatching ? total : ticked().length;
    count.textContent = allMatching
      ? `All ${total} matching assets are selected.`
      : n ? `${n} asset(s) selected on this page.` : "No asset selected.";
    if (runButton) runButton.disabled = n === 0;
    noneButton.hidden = n === 0;
  };
  const selection = () => (allMatching ? { ...filter } : { ...filter, ids: ticked() });

  pageBox?.addEventListener("change", () => {
    allMatching = false;
    rows().forEach((box) => { box.checked = pageBox.checked; });
    refresh();
  });
  document.addEventListener("change", (event) => {
    if (!event.target.classList?.contains("row-check")) return;
    allMatching = false;
    refresh();
  });
  allButton?.addEventListener("click", () => {
    allMatching = true;
    rows().forEach((box) => { box.checked = true; });
    if (pageBox) pageBox.checked = true;
    refresh();
  });
  noneButton.addEventListener("click", () => {
    allMatching = false;
    rows().forEach((box) => { box.checked = false; });
    if (pageBox) pageBox.checked = false;
    refresh();
  });
  runButton?.addEventListener("click", () => {
    const option = document.getElementById("selection-plugin").selectedOptions[0];
    const url = `${option.dataset.url}?selection=${encodeURIComponent(JSON.stringify(selection()))}`;
    // hub.js opens the dialog once the form arrives in #dialog-body.
    htmx.ajax("GET", url, { target: "#dialog-body" });
  });
  refresh();
})();
