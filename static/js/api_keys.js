/* The API keys page: a Copy button for the key shown once. Progressive: without this
   script the key is still in a read-only field to select and copy by hand. */
(function () {
  "use strict";
  for (const button of document.querySelectorAll("[data-copy]")) {
    const field = document.getElementById(button.getAttribute("data-copy"));
    const state = document.querySelector("[data-copy-state]");
    if (!field) continue;
    button.hidden = false;
    button.addEventListener("click", async () => {
      let copied = false;
      try {
        await navigator.clipboard.writeText(field.value);
        copied = true;
      } catch (error) {
        field.select();  // no clipboard access (plain http, a refusal): select it instead
      }
      if (state) state.textContent = copied ? "Copied." : "Selected: press Ctrl+C or ⌘C to copy.";
    });
  }
})();
