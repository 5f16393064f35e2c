// Turns each <textarea data-editor="python|json"> into an Ace editor (vendored from django-ace).
// The textarea stays in the form and is kept in sync, so saving works with or without scripts.
(function () {
  function attach(textarea) {
    if (!window.ace || textarea.dataset.attached) return;
    textarea.dataset.attached = "yes";
    var holder = document.createElement("div");
    holder.className = "code-editor";
    holder.setAttribute("aria-label", textarea.getAttribute("aria-label") || "Code editor");
    textarea.parentNode.insertBefore(holder, textarea);
    textarea.style.display = "none";
    var editor = ace.edit(holder, {
      mode: "ace/mode/" + textarea.dataset.editor,
      theme: "ace/theme/tomorrow_night",
      value: textarea.value,
      tabSize: 4,
      useSoftTabs: true,
      showPrintMargin: false,
      fontSize: "13px",
      minLines: textarea.dataset.editor === "json" ? 8 : 20,
      maxLines: 60,
      // Ace's syntax-check workers start from blob: URLs, which the CSP refuses (worker-src
      // 'self'); the server checks code and JSON on save anyway.
      useWorker: false,
    });
    editor.session.on("change", function () { textarea.value = editor.getValue(); });
  }
  function start() {
    if (!window.ace) return;
    var script = document.querySelector("script[src*='django_ace/ace/ace.js']");
    ace.config.set("basePath", script.src.replace(/\/ace\.js.*$/, ""));
    // Styles from the vendored ace.css and theme file (_editor_assets.html), not inline <style>.
    ace.config.set("useStrictCSP", true);
    document.querySelectorAll("textarea[data-editor]").forEach(attach);
  }
  document.addEventListener("DOMContentLoaded", start);
})();
