// Dialogs: buttons marked data-opens-dialog load a form into #dialog-body with
// htmx; the dialog opens once the content arrives.
// Opened by its URL, a dialog is a page (web/dialog_page.html): there is no
// <dialog> to open, and Cancel goes back to where the page says.
document.addEventListener("htmx:afterSwap", (event) => {
  if (event.detail.target.id === "dialog-body") {
    const dialog = document.getElementById("dialog");
    if (dialog && !dialog.open) dialog.showModal();
  }
});
document.addEventListener("click", (event) => {
  if (event.target.closest("[data-closes-dialog]")) {
    const dialog = document.getElementById("dialog");
    if (dialog) {
      dialog.close();
    } else {
      const page = document.querySelector(".dialog-page");
      window.location.href = (page && page.dataset.back) || "/";
    }
  }
});
// The show-once secret: copy buttons put their target's text on the clipboard.
document.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-copies]");
  if (!button) return;
  const source = document.getElementById(button.dataset.copies);
  if (!source) return;
  const text = source.textContent.trim();
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = "Copied";
  } catch (error) {
    // No clipboard (plain http on another host): select it for Ctrl+C.
    const range = document.createRange();
    range.selectNodeContents(source);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    button.textContent = "Selected: press Ctrl+C";
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
// The register/edit plugin dialog shows only the fields the chosen type has:
// fields marked data-kinds="model batch_model" hide for other types (the form
// works without this script, every field shown).
function showKindFields(form) {
  const select = form.querySelector("select[name=type]");
  if (!select) return;
  for (const field of form.querySelectorAll("[data-kinds]")) {
    const shown = field.dataset.kinds.split(" ").includes(select.value);
    field.style.display = shown ? "" : "none";
  }
}
document.addEventListener("change", (event) => {
  if (event.target.matches("select[name=type]")) showKindFields(event.target.form);
});
document.addEventListener("htmx:afterSwap", (event) => {
  for (const form of event.detail.target.querySelectorAll("form")) showKindFields(form);
});
document.addEventListener("DOMContentLoaded", () => {
  for (const form of document.querySelectorAll("form")) showKindFields(form);
});
