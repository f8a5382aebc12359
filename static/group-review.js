// Group review without reloading: decisions go through the API, the next pending group takes the focus,
// and the keyboard drives it (j/k or arrows, 1-9, Enter, a, s, u, n, ?). Without JavaScript the forms still work.
// Page level: the page keeps its number of pending cards by loading, as cards are decided, the first groups of
// the list not on it yet (server-rendered cards from /duplicates/cards/, so no group is ever skipped); `n` or
// the "Next groups" link loads the next batch; undo re-renders the card from the server, ready to decide
// again; while images await detection the backlog line is polled and new groups come in as they are found.
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
      const message = error.message || `Failed (${result.status}).`;
      const fresh = result.status === 409 ? await renderCard(card.dataset.group) : null;
      if (fresh) {
        card.replaceWith(fresh);
        say(fresh, message + " This is the group as it stands now.", true);
        focus(cards().indexOf(fresh));
      } else {
        say(card, message, true);
      }
      return;
    }
    const decision = result.data.decision;
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
    refreshApply();
    afterDecision(card);
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
    const fresh = await renderCard(card.dataset.group);
    if (fresh) {
      card.replaceWith(fresh);
      card = fresh;
    } else {
      card.dataset.status = result.data.group.status;
      card.dataset.version = result.data.group.version;
    }
    const undone = `Group #${card.dataset.group}: undone, ${card.dataset.status === "pending" ? "decide again" : card.dataset.status}.`;
    say(card, fresh ? "Undone." : "Undone: reload the page to decide again.");
    announce(undone);
    refreshApply();
    focus(cards().indexOf(card));
  }

  // ---- Page level: cards loaded in place, the next batch, the detection backlog ----

  const list = () => document.getElementById("groups");
  const perPage = () => Number((list() && list().dataset.perPage) || 10);
  const pendingCards = () => cards().filter((card) => card.dataset.status === "pending");
  const MAX_ON_PAGE = 500; // the server skips at most this many cards already on the page
  let loading = Promise.resolve([]); // one load at a time: two at once would bring the same groups
  let waiting = 0; // images awaiting detection, as last read

  function announce(text) {
    const status = document.getElementById("review-status");
    if (status) status.textContent = text;
  }

  function cardsUrl(params) {
    const url = new URL(list().dataset.cards, window.location.href);
    url.searchParams.set("here", window.location.pathname + window.location.search);
    for (const [name, value] of Object.entries(params)) url.searchParams.set(name, value);
    return url;
  }

  async function fetchHtml(url) {
    const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } });
    const template = document.createElement("template");
    if (response.ok) template.innerHTML = await response.text();
    return { response: response, cards: Array.from(template.content.querySelectorAll("article.group")) };
  }

  async function renderCard(id) {
    try {
      const result = await fetchHtml(cardsUrl({ card: id }));
      return result.cards[0] || null;
    } catch (_) {
      return null;
    }
  }

  async function fetchCards(limit) {
    const holder = list();
    if (!holder || !holder.dataset.cards || holder.dataset.list === "one group") return [];
    const onPage = cards().map((card) => card.dataset.group);
    if (onPage.length > MAX_ON_PAGE) {
      const next = document.querySelector("[data-next-groups]");
      if (next) window.location.assign(next.href);
      return [];
    }
    const params = { limit: limit };
    if (onPage.length) params.exclude = onPage.join(",");
    let result;
    try {
      result = await fetchHtml(cardsUrl(params));
    } catch (_) {
      announce("Could not load more groups: check the connection.");
      return [];
    }
    if (!result.response.ok) {
      announce(`Could not load more groups (${result.response.status}).`);
      return [];
    }
    const added = [];
    for (const card of result.cards) {
      if (document.getElementById(card.id)) continue;
      card.classList.add("arrived");
      holder.appendChild(card);
      added.push(card);
    }
    if (added.length) {
      const empty = document.getElementById("no-groups");
      if (empty) empty.remove();
    }
    showRemaining(Number(result.response.headers.get("X-Groups-Remaining") || 0),
      result.response.headers.get("X-Next-Url"));
    refreshApply();
    return added;
  }

  function loadCards(limit) {
    loading = loading.then(() => fetchCards(limit), () => fetchCards(limit));
    return loading;
  }

  function showRemaining(remaining, nextUrl) {
    const count = document.getElementById("groups-remaining");
    if (count) count.textContent = remaining ? `${remaining} more group${remaining === 1 ? "" : "s"} after these` : "";
    const next = document.querySelector("[data-next-groups]");
    if (next) {
      if (nextUrl) next.href = nextUrl;
      next.hidden = !remaining;
    }
  }

  // A pending list keeps perPage pending cards on the page: each decision brings in the next group.
  function topUp() {
    if (!list() || list().dataset.list !== "pending") return Promise.resolve([]);
    const missing = perPage() - pendingCards().length;
    return missing > 0 ? loadCards(missing) : Promise.resolve([]);
  }

  async function afterDecision(card) {
    const from = cards().indexOf(card);
    const all = cards();
    let ahead = -1;
    for (let i = from + 1; i < all.length; i++) if (all[i].dataset.status === "pending") { ahead = i; break; }
    if (ahead >= 0) focus(ahead);
    const added = await topUp();
    if (ahead >= 0) return;
    if (added.length) focus(cards().indexOf(added[0]));
    else if (pendingCards().length) focus(nextPending(cards().indexOf(card))); // one skipped further up
    else finished();
  }

  async function nextBatch() {
    announce("Loading the next groups…");
    const added = await loadCards(perPage());
    if (added.length) {
      focus(cards().indexOf(added[0]));
      announce(`Loaded ${added.length} more group${added.length === 1 ? "" : "s"}.`);
    } else {
      announce("No more groups to load.");
    }
  }

  // Nothing pending is left on a pending list: say so, and whether detection may still bring groups.
  function finished() {
    if (!list() || list().dataset.list !== "pending" || pendingCards().length) return;
    let empty = document.getElementById("no-groups");
    if (!empty) {
      empty = document.createElement("div");
      empty.className = "empty panel";
      empty.id = "no-groups";
      empty.appendChild(document.createElement("p"));
      list().appendChild(empty);
    }
    const text = waiting ? "Every group found so far is decided: detection is still checking photos, and new "
      + "groups appear here as they are found." : "Every group on this list is decided.";
    empty.querySelector("p").textContent = text;
    announce(text);
  }

  function refreshApply() {
    const form = document.getElementById("apply-page");
    if (!form) return;
    const groups = pendingCards().filter((card) => card.dataset.kind === "near_duplicate");
    const files = groups.reduce((sum, card) => sum + Number(card.dataset.suggestedTrash || 0), 0);
    const bytes = groups.reduce((sum, card) => sum + Number(card.dataset.suggestedBytes || 0), 0);
    form.dataset.files = files;
    form.dataset.bytes = bytes;
    form.hidden = !groups.length;
    const label = form.querySelector("[data-apply-label]");
    if (label) label.textContent = `Apply the suggestion to this page (${files} file${files === 1 ? "" : "s"}, ${size(bytes)} to the trash)`;
  }

  // The bulk form applies to the pending cards on the page now (loaded in place or not), each as a whole group.
  function submitApply(form, event) {
    const groups = pendingCards().filter((card) => card.dataset.kind === "near_duplicate");
    const files = Number(form.dataset.files), bytes = Number(form.dataset.bytes);
    const question = `Apply the suggestion to the ${groups.length} group${groups.length === 1 ? "" : "s"} on this page? `
      + `${files} file${files === 1 ? "" : "s"} (${size(bytes)}) go to the trash; you can restore them or undo each group.`;
    if (!groups.length || !window.confirm(question)) { event.preventDefault(); return; }
    form.querySelectorAll("input[name=group], input[name^='version-'], input[name^='digest-'], input[name^='member-']").forEach((input) => input.remove());
    const add = (name, value) => {
      const input = document.createElement("input");
      input.type = "hidden";
      input.name = name;
      input.value = value;
      form.appendChild(input);
    };
    for (const card of groups) {
      add("group", card.dataset.group);
      add(`version-${card.dataset.group}`, card.dataset.version);
      add(`digest-${card.dataset.group}`, card.dataset.digest);  // the decision covers every member, shown or not
    }
  }

  function watchDetection() {
    const line = document.getElementById("detection-progress");
    if (!line) return;
    waiting = Number(line.dataset.waiting || 0);
    if (!waiting) return;
    const every = Number(line.dataset.pollMs || 5000);
    const tick = async () => {
      if (document.hidden) { window.setTimeout(tick, every); return; }
      let state = null;
      try {
        const response = await fetch(line.dataset.url, { credentials: "same-origin", headers: { Accept: "application/json" } });
        if (response.ok) state = await response.json();
      } catch (_) {
        state = null;
      }
      if (!state) { window.setTimeout(tick, every * 3); return; }
      waiting = state.waiting;
      line.dataset.waiting = state.waiting;
      line.textContent = state.done ? state.summary : state.summary + " New groups appear here as they are found.";
      const added = await topUp();
      if (added.length && !pendingCards().some((card) => card.classList.contains("focused"))) focus(cards().indexOf(added[0]));
      if (state.done) {
        announce("Duplicate detection has checked every photo.");
        if (!pendingCards().length) finished();
        const empty = document.getElementById("no-groups");
        if (empty && empty.dataset.done && !pendingCards().length) empty.querySelector("p").textContent = empty.dataset.done;
        return;
      }
      window.setTimeout(tick, every);
    };
    window.setTimeout(tick, every);
  }

  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (form.id === "apply-page") { submitApply(form, event); return; }
    const card = form.closest("article.group");
    if (!card) return;
    event.preventDefault();
    if (form.classList.contains("undo-form")) { undo(card); return; }
    const button = event.submitter || form.querySelector("button[data-action=keep]");
    resolve(card, button ? button.value || button.dataset.action : "keep");
  });

  document.addEventListener("click", (event) => {
    if (event.target.closest("[data-help]")) document.getElementById("shortcuts").showModal();
    const next = event.target.closest("[data-next-groups]");
    if (next && !(event.ctrlKey || event.metaKey || event.shiftKey || event.button)) {
      event.preventDefault();
      nextBatch();
      return;
    }
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
    if (event.key === "n") { nextBatch(); event.preventDefault(); return; }
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
    refreshApply();
    watchDetection();
  });
})();
