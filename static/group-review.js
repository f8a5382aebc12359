// Group review without reloading: decisions go through the API, the next pending group takes the focus,
// and the keyboard drives it (j/k or arrows, 1-9, Enter, a, s, u, ?). Without JavaScript the forms still work.
(function () {
  "use strict";
  const cards = () => Array.from(document.querySelectorAll("article.group"));
  let current = 0;

  function csrf(card) {
    const input = (card || document).querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  function focus(index) {
    const all = cards();
    if (!all.length) return;
    current = Math.max(0, Math.min(index, all.length - 1));
    all.forEach((card, i) => card.classList.toggle("focused", i === current));
    all[current].focus({ preventScroll: true });
    all[current].scrollIntoView({ block: "nearest", behavior: "smooth" });
  }

  function nextPending(from) {
    const all = cards();
    for (let i = from + 1; i < all.length; i++) if (all[i].dataset.status === "pending") return i;
    for (let i = 0; i <= from && i < all.length; i++) if (all[i].dataset.status === "pending") return i;
    return from;
  }

  function say(card, text, error) {
    const status = card.querySelector(".group-status");
    status.textContent = text;
    status.classList.toggle("error", Boolean(error));
  }

  function size(bytes) {
    if (bytes < 1024) return bytes + " bytes";
    const units = ["KB", "MB", "GB", "TB"];
    let value = bytes / 1024, unit = 0;
    while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit++; }
    return value.toFixed(1) + " " + units[unit];
  }

  async function post(url, card, body) {
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf(card), Accept: "application/json" },
      body: body ? JSON.stringify(body) : null,
    });
    let data = null;
    try { data = await response.json(); } catch (_) { data = null; }
    return { ok: response.ok, status: response.status, data: data };
  }

  const saved = new Map(); // group id -> the card as it was before the decision, for undo

  async function resolve(card, action) {
    if (card.dataset.status !== "pending" || card.dataset.busy) return;
    const ids = (selector) => Array.from(card.querySelectorAll(selector)).map((input) => Number(input.value));
    const members = ids("input[name=member]");
    const keep = ids("input[name=keep]:checked");
    // Members shown apart (not verified against the kept copy) go to the trash only when ticked; members
    // not shown follow the suggestion: the digest makes the decision cover them all.
    const asideTrash = ids("input[name=trash]:checked");
    const body = { action: action, version: Number(card.dataset.version) };
    if (card.dataset.digest) body.members_digest = card.dataset.digest;
    if (action === "keep") {
      body.keep = keep;
      body.trash = members.filter((id) => !keep.includes(id)).concat(asideTrash);
    } else {
      body.members = members;
    }
    card.dataset.busy = "1";
    say(card, "Saving…");
    const result = await post(`/api/duplicate-groups/${card.dataset.group}/resolve/`, card, body);
    delete card.dataset.busy;
    if (!result.ok) {
      const error = (result.data && result.data.error) || {};
      say(card, (error.message || `Failed (${result.status}).`) + (result.status === 409 ? " Reload to see it." : ""), true);
      return;
    }
    const decision = result.data.decision;
    saved.set(card.dataset.group, { html: card.innerHTML, version: result.data.group.version });
    card.dataset.status = result.data.group.status;
    card.dataset.version = result.data.group.version;
    card.classList.add("decided");
    card.querySelectorAll(".group-actions, input[name=keep], input[name=trash]").forEach((node) => node.remove());
    for (const id of decision.trashed_ids) {
      const tile = card.querySelector(`.member[data-image="${id}"]`);
      if (tile) tile.classList.add("trashed");
    }
    const trashed = decision.trashed_ids.length;
    say(card, trashed ? `Kept ${decision.kept_ids.length}, moved ${trashed} to the trash (${size(decision.bytes_trashed)}).`
      : action === "stack" ? "Stacked." : "Kept all.");
    ensureUndo(card);
    focus(nextPending(cards().indexOf(card)));
  }

  function ensureUndo(card) {
    if (card.querySelector(".undo-form")) return;
    const form = document.createElement("form");
    form.className = "undo-form";
    form.method = "post";
    form.action = `/duplicates/groups/${card.dataset.group}/undo/`;
    form.innerHTML = '<button class="btn" type="submit" data-action="undo">Undo <kbd>u</kbd></button>';
    card.appendChild(form);
  }

  async function undo(card) {
    if (card.dataset.busy) return;
    card.dataset.busy = "1";
    say(card, "Undoing…");
    const result = await post(`/api/duplicate-groups/${card.dataset.group}/undo/`, card, null);
    delete card.dataset.busy;
    if (!result.ok) {
      say(card, ((result.data && result.data.error) || {}).message || `Failed (${result.status}).`, true);
      return;
    }
    const before = saved.get(card.dataset.group);
    if (before) {
      card.innerHTML = before.html;
      saved.delete(card.dataset.group);
    }
    card.dataset.status = result.data.group.status;
    card.dataset.version = result.data.group.version;
    const version = card.querySelector("input[name=version]");
    if (version) version.value = result.data.group.version;
    card.classList.toggle("decided", card.dataset.status !== "pending");
    if (card.dataset.status === "pending" && !card.querySelector(".group-actions")) {
      say(card, "Undone: reload the page to decide again.");
    } else {
      say(card, "Undone.");
    }
    focus(cards().indexOf(card));
  }

  document.addEventListener("submit", (event) => {
    const form = event.target;
    const card = form.closest("article.group");
    if (!card) return;
    event.preventDefault();
    if (form.classList.contains("undo-form")) { undo(card); return; }
    const button = event.submitter || form.querySelector("button[data-action=keep]");
    resolve(card, button ? button.value || button.dataset.action : "keep");
  });

  document.addEventListener("click", (event) => {
    if (event.target.closest("[data-help]")) document.getElementById("shortcuts").showModal();
    const card = event.target.closest("article.group");
    if (card) current = cards().indexOf(card);
  });

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const target = event.target;
    if (target && (target.tagName === "TEXTAREA" || target.tagName === "SELECT" ||
        (target.tagName === "INPUT" && target.type !== "checkbox"))) return;
    // Enter on a focused button or link is that control's own action (a member's picture opens the compare view).
    if (event.key === "Enter" && target && (target.tagName === "BUTTON" || target.tagName === "A")) return;
    const dialog = document.getElementById("shortcuts");
    if (dialog && dialog.open) return;
    const all = cards();
    const card = all[current];
    if (event.key === "?") { dialog.showModal(); event.preventDefault(); return; }
    if (!card) return;
    if (event.key === "j" || event.key === "ArrowDown") { focus(current + 1); event.preventDefault(); }
    else if (event.key === "k" || event.key === "ArrowUp") { focus(current - 1); event.preventDefault(); }
    else if (/^[1-9]$/.test(event.key)) {
      const box = card.querySelectorAll("input[name=keep], input[name=trash]")[Number(event.key) - 1];
      if (box) { box.checked = !box.checked; event.preventDefault(); }
    }
    else if (event.key === "Enter") { resolve(card, "keep"); event.preventDefault(); }
    else if (event.key === "a") { resolve(card, "keep_all"); event.preventDefault(); }
    else if (event.key === "s") { resolve(card, "stack"); event.preventDefault(); }
    else if (event.key === "u") { undo(card); event.preventDefault(); }
  });

  document.addEventListener("DOMContentLoaded", () => {
    const all = cards();
    if (all.length) focus(Math.max(0, nextPending(-1)));
  });
})();
