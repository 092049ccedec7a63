// Console pages: the range form (charts are static/orweb/charts.js).
(() => {
  // The range form: typing a date picks "Custom", picking a preset clears the dates, and empty fields stay
  // out of the url, so links to a view are short and say only what they filter.
  function wireForms() {
    for (const form of document.querySelectorAll("form.console-form")) {
      const custom = form.querySelector("input[name=preset][value=custom]");
      const dates = form.querySelectorAll("input[type=date]");
      for (const input of dates) {
        input.addEventListener("change", () => {
          if (custom) custom.checked = true;
        });
      }
      for (const radio of form.querySelectorAll("input[name=preset]:not([value=custom])")) {
        radio.addEventListener("change", () => dates.forEach((input) => (input.value = "")));
      }
      form.addEventListener("submit", () => {
        for (const field of form.querySelectorAll("input, select")) {
          if (!field.value && field.name) field.disabled = true;
        }
      });
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", wireForms);
  else wireForms();
})();
