/* The brand kit form: palette slots say whether they are used, and a chosen logo is
   previewed before upload. Progressive: the form works the same without this script. */
(function () {
  "use strict";
  const form = document.getElementById("brand-kit-form");
  if (!form) return;

  // A slot is used when its box is ticked; picking a colour ticks it, since a picker
  // cannot be empty and choosing one is the clearest sign the colour is wanted.
  for (const slot of form.querySelectorAll("[data-palette-slot]")) {
    const picker = slot.querySelector('input[type="color"]');
    const use = slot.querySelector('input[type="checkbox"]');
    const state = slot.querySelector("[data-slot-state]");
    if (!picker || !use || !state) continue;
    const show = () => {
      state.textContent = use.checked ? picker.value : "Not used";
    };
    picker.addEventListener("input", () => { use.checked = true; show(); });
    use.addEventListener("change", show);
    show();
  }

  const file = form.querySelector('input[type="file"][name="logo"]');
  const preview = document.getElementById("logo-chosen-preview");
  const remove = form.querySelector('input[name="remove_logo"]');
  let shown = null;
  if (file && preview) {
    file.addEventListener("change", () => {
      if (shown) URL.revokeObjectURL(shown);
      shown = null;
      const chosen = file.files && file.files[0];
      if (!chosen || !chosen.type.startsWith("image/")) {
        preview.hidden = true;
        preview.removeAttribute("src");
        preview.alt = "";
        return;
      }
      shown = URL.createObjectURL(chosen);
      preview.src = shown;
      preview.alt = "Preview of the chosen logo, " + chosen.name;
      preview.hidden = false;
      if (remove) remove.checked = false;  // a new logo replaces the old one anyway
    });
  }
})();
