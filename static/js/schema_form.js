/* Forms generated from a schema (template briefs, the playground).
 *
 * - An image upload shows a preview of the chosen file.
 * - Sub-fields marked data-shown-when="<choice>" (a custom image size) show only while
 *   their select has that choice.
 * - The live price quote (htmx) never uploads files: the price does not depend on them.
 * - Submitting disables the button, so a double click sends one run.
 */
(function () {
  "use strict";

  function showPreview(input) {
    let img = input.parentElement.querySelector("img.preview-img[data-for='" + input.id + "']");
    const file = input.files && input.files[0];
    if (!file) { if (img) img.remove(); return; }
    if (!img) {
      img = document.createElement("img");
      img.className = "preview-img";
      img.dataset.for = input.id;
      input.insertAdjacentElement("afterend", img);
    }
    img.alt = "Preview of " + file.name;
    img.src = URL.createObjectURL(file);
  }

  function syncShownWhen(form) {
    for (const el of form.querySelectorAll("[data-shown-when]")) {
      const select = form.querySelector("select[name='" + el.dataset.shownFor + "']");
      if (!select) continue;
      const shown = select.value === el.dataset.shownWhen;
      const box = el.closest(".field, div") || el;
      box.hidden = !shown;
    }
  }

  document.addEventListener("change", (event) => {
    const target = event.target;
    if (target.matches && target.matches("input[type=file][data-preview]")) showPreview(target);
    if (target.form) syncShownWhen(target.form);
  });

  document.addEventListener("submit", (event) => {
    const button = event.target.querySelector("button[type=submit]");
    if (button) {
      // After this tick, so the button's own value (if any) is still sent.
      setTimeout(() => { button.disabled = true; button.textContent = "Starting…"; }, 0);
    }
  });

  document.addEventListener("htmx:configRequest", (event) => {
    const form = event.detail.elt;
    if (!(form instanceof HTMLFormElement)) return;
    for (const input of form.querySelectorAll("input[type=file]")) {
      event.detail.formData.delete(input.name);
    }
  });

  document.addEventListener("DOMContentLoaded", () => {
    for (const form of document.querySelectorAll("form")) syncShownWhen(form);
  });
})();
