// The operator page: the reconciler's progress and the journal's counts, kept live.
"use strict";
(function () {
  const panel = document.getElementById("live-status");
  if (!panel) { return; }
  async function refresh() {
    try {
      const response = await fetch(panel.dataset.url, { credentials: "same-origin" });
      if (!response.ok) { return; }
      const status = await response.json();
      for (const cell of panel.querySelectorAll("[data-field]")) {
        const value = cell.dataset.field.split(".").reduce((o, k) => (o == null ? o : o[k]), status);
        if (value !== undefined && value !== null) { cell.textContent = String(value); }
      }
    } catch (error) { /* the next refresh tries again */ }
  }
  setInterval(refresh, 2000);
})();
