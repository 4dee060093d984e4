// Dialogs: buttons marked data-opens-dialog load a form into #dialog-body with
// htmx; the dialog opens once the content arrives.
document.addEventListener("htmx:afterSwap", (event) => {
  if (event.detail.target.id === "dialog-body") {
    const dialog = document.getElementById("dialog");
    if (!dialog.open) dialog.showModal();
  }
});
document.addEventListener("click", (event) => {
  if (event.target.closest("[data-closes-dialog]")) {
    document.getElementById("dialog").close();
  }
});
// Keep the log pinned to the bottom while new lines arrive, unless the reader
// scrolled up to read.
document.addEventListener("htmx:oobAfterSwap", (event) => {
  const log = document.getElementById("run-log");
  if (log && event.detail.target === log) {
    const nearBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 80;
    if (nearBottom) log.scrollTop = log.scrollHeight;
  }
});
// A page that just subscribed is caught up by the server, which may repeat a
// line that also came through the group: keep the first of each data-id.
document.addEventListener("htmx:oobAfterSwap", (event) => {
  const log = document.getElementById("run-log");
  if (!log || event.detail.target !== log) return;
  const seen = (log._seenIds ||= new Set());
  for (const line of Array.from(log.children).slice(log._checked || 0)) {
    if (seen.has(line.dataset.id)) line.remove();
    else seen.add(line.dataset.id);
  }
  log._checked = log.children.length;
});
