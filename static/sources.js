// The library sources page: while a scan runs, follow its progress through the API (every two seconds) and
// reload the page once it has finished, so the counts, states and problems shown are the final ones.
(() => {
  const list = document.getElementById("sources");
  if (!list || !list.hasAttribute("data-scanning")) return;
  const eta = (seconds) => (seconds == null ? "" : `about ${Math.round(seconds)} s left`);
  const follow = async () => {
    let sources;
    try {
      const response = await fetch(list.dataset.api, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      if (!response.ok) return;
      sources = await response.json();
    } catch (error) {
      return;
    }
    let active = false;
    for (const source of sources) {
      const panel = document.querySelector(`[data-source="${source.id}"]`);
      const scan = source.latest_scan;
      if (!panel || !scan) continue;
      const shown = panel.querySelector("[data-scan]");
      if (!shown || Number(shown.dataset.scan) !== scan.id) { window.location.reload(); return; }
      if (scan.status === "queued" || scan.status === "running") active = true;
      else if (shown.hasAttribute("data-active")) { window.location.reload(); return; }
      shown.querySelector('[data-field="counts"]').textContent = `${scan.files_seen} of ${scan.files_total ?? "?"} files seen`;
      shown.querySelector('[data-field="eta"]').textContent = eta(scan.eta_seconds);
      shown.querySelector('[data-field="status"]').textContent = scan.status === "running" ? "Running" : "Queued";
      const bar = shown.querySelector('[role="progressbar"]');
      bar.setAttribute("aria-valuenow", String(scan.percent ?? 0));
      bar.firstElementChild.style.width = `${scan.percent ?? 0}%`;
      const values = [scan.accepted, scan.known_content, scan.rejected, scan.unchanged, scan.changed, scan.moved, scan.missing, scan.returned, scan.skipped];
      shown.querySelectorAll('[data-field="summary"] dd').forEach((cell, index) => { cell.textContent = String(values[index]); });
    }
    if (active) window.setTimeout(follow, 2000);
  };
  window.setTimeout(follow, 2000);
})();
