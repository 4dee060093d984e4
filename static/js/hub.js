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
