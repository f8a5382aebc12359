// Keeps the "background processing has stopped" banner current while a page stays open (an upload page
// left waiting on "embedding..." learns that no worker is running, and the banner goes once one is back).
(function () {
  "use strict";
  const banner = document.getElementById("worker-health");
  if (!banner || !window.fetch) return;
  const summary = banner.querySelector('[data-health="summary"]');
  const action = banner.querySelector('[data-health="action"]');
  const every = 15000;

  // The messages mark commands with backticks (as the page's first render does): each becomes code.
  function show(element, text) {
    const parts = text.split("`");
    if (parts.length % 2 === 0) { element.textContent = text; return; }
    element.replaceChildren(...parts.map((part, n) => {
      if (n % 2 === 0) return document.createTextNode(part);
      const code = document.createElement("code");
      code.textContent = part;
      return code;
    }));
  }

  async function refresh() {
    if (document.hidden) return schedule();
    try {
      const response = await fetch(banner.dataset.url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      if (response.status === 401 || response.status === 403) return; // signed out: stop asking
      if (response.ok) {
        const health = await response.json();
        show(summary, health.summary);
        show(action, health.action);
        banner.hidden = !health.problem;
      }
    } catch (error) {
      // the web server itself is unreachable for a moment; try again later
    }
    schedule();
  }

  function schedule() {
    window.setTimeout(refresh, every);
  }

  schedule();
})();
