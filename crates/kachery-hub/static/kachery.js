// Small, optional enhancements for the hub's pages. Every page works without this file:
// it only adds "copy" buttons next to values marked data-copy and a busy marker on
// buttons whose form is submitting (the channel test takes a few seconds).
(function () {
  "use strict";

  function addCopyButtons() {
    if (!navigator.clipboard) {
      return;
    }
    document.querySelectorAll("[data-copy]").forEach(function (element) {
      var button = document.createElement("button");
      button.type = "button";
      button.className = "secondary copy";
      button.textContent = "Copy";
      button.setAttribute("aria-label", "Copy " + (element.getAttribute("data-copy-label") || "value"));
      button.addEventListener("click", function () {
        navigator.clipboard.writeText(element.getAttribute("data-copy")).then(function () {
          button.textContent = "Copied";
        });
      });
      element.insertAdjacentElement("afterend", button);
    });
  }

  function markBusyForms() {
    document.querySelectorAll("form[data-busy]").forEach(function (form) {
      form.addEventListener("submit", function () {
        var button = form.querySelector("button[type=submit]");
        if (button) {
          button.classList.add("busy");
          button.setAttribute("aria-busy", "true");
          button.textContent = form.getAttribute("data-busy");
        }
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    addCopyButtons();
    markBusyForms();
  });
})();
