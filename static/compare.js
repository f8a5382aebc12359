// Compare view of the group review page: click a member's picture to see it at full resolution; zoom (wheel,
// +/- keys, pinch), pan (drag), step through the group (arrow keys), "c" pins the one shown on the left and
// shows a second beside it (arrows then step the right one); both panes share one zoom and pan. Esc closes.
// Side by side, when the two are a geometric match (GET the dialog's data-alignment-url: the homography that
// maps the right one's pixels into the left one's), the right pane is warped into the left one's frame, so a
// crop, a rescale, a turn or a mirror image shows the same detail at the same place at every zoom and pan;
// "a" (or the Aligned button) shows it unaligned, sharing zoom and pan by screen position.
(function () {
  "use strict";
  const MIN = 1, MAX = 16, STEP = 1.25;
  let dialog, panes, strip, title, pairButton, alignButton, alignNote;
  const alignments = new Map();  // "a:b" -> {state: "loading" | "loaded" | "failed", answer}
  let aligning = true;  // the reviewer's choice: warp the right pane when there is an alignment
  let members = [];   // [{id, full, thumb, caption}] of the card it was opened from
  let current = 0;    // the member shown alone, or on the right side by side
  let pinned = null;  // the member pinned on the left, side by side
  let group = "";
  const view = { scale: 1, x: 0, y: 0 };
  const pointers = new Map();
  let gesture = null;

  // What is known of the alignment of the two panes shown side by side, or null.
  function shownPair() {
    return pinned === null ? null : alignments.get(`${members[pinned].id}:${members[current].id}`) || null;
  }

  // The alignment in force for the two panes (the API's answer), or null: shown unaligned.
  function shownAlignment() {
    const entry = shownPair();
    return aligning && entry && entry.state === "loaded" && entry.answer.aligned ? entry.answer : null;
  }

  // CSS matrix3d (column-major) of a 3x3 homography acting on an element's own x, y.
  function matrix3d(m) {
    return `matrix3d(${m[0][0]}, ${m[1][0]}, 0, ${m[2][0]}, ${m[0][1]}, ${m[1][1]}, 0, ${m[2][1]}, ` +
      `0, 0, 1, 0, ${m[0][2]}, ${m[1][2]}, 0, ${m[2][2]})`;
  }

  function multiply(p, q) {
    return p.map((row) => [0, 1, 2].map((j) => row[0] * q[0][j] + row[1] * q[1][j] + row[2] * q[2][j]));
  }

  // The right picture, its element sized in its own pixels, drawn where its content is in the left picture as
  // that one would be drawn in this stage: fitted (object-fit: contain), then the shared zoom and pan about the
  // stage's centre.
  function alignedTransform(stage, alignment) {
    const width = stage.clientWidth, height = stage.clientHeight;
    const fit = Math.min(width / alignment.a.width, height / alignment.a.height);
    const left = (width - alignment.a.width * fit) / 2, top = (height - alignment.a.height * fit) / 2;
    const s = view.scale;
    const x = (width / 2) * (1 - s) + view.x + s * left, y = (height / 2) * (1 - s) + view.y + s * top;
    return matrix3d(multiply([[s * fit, 0, x], [0, s * fit, y], [0, 0, 1]], alignment.homography));
  }

  function apply() {
    const transform = `translate(${view.x}px, ${view.y}px) scale(${view.scale})`;
    const alignment = shownAlignment();
    panes[0].querySelector("img").style.transform = transform;
    const right = panes[1].querySelector("img");
    right.classList.toggle("aligned", alignment !== null);
    right.style.width = alignment ? `${alignment.b.width}px` : "";
    right.style.height = alignment ? `${alignment.b.height}px` : "";
    right.style.transform = alignment ? alignedTransform(panes[1].querySelector(".stage"), alignment) : transform;
    dialog.dataset.scale = view.scale.toFixed(3);
  }

  // What the bar says about the alignment of the two panes shown side by side.
  function describeAlignment() {
    const entry = shownPair();
    const answer = entry && entry.state === "loaded" ? entry.answer : null;
    alignButton.hidden = pinned === null;
    alignButton.disabled = !(answer && answer.aligned);
    alignButton.setAttribute("aria-pressed", String(aligning && !alignButton.disabled));
    let note = "", state = "";
    if (pinned === null) note = "";
    else if (!entry || entry.state === "loading") { note = "aligning…"; state = "loading"; }
    else if (answer && answer.aligned) {
      const features = `${answer.inliers} matched features${answer.mirrored ? " (a mirror image)" : ""}`;
      note = aligning ? `aligned by ${features}` : `shown unaligned, by screen position; ${features}`;
      state = aligning ? "aligned" : "unaligned";
    } else {
      const why = !answer ? "the alignment could not be loaded"
        : answer.reason === "unreadable" ? "a file could not be read" : "no geometric match";
      note = `not aligned: ${why}; zoom and pan by screen position`;
      state = "none";
    }
    alignNote.textContent = note;
    dialog.dataset.alignment = state;
  }

  async function loadAlignment(a, b) {
    const key = `${a}:${b}`;
    const known = alignments.get(key);
    if (known && known.state !== "failed") return;  // a failed one is asked again when it is shown again
    alignments.set(key, { state: "loading", answer: null });
    const url = `${dialog.dataset.alignmentUrl}?a=${encodeURIComponent(a)}&b=${encodeURIComponent(b)}`;
    try {
      const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      alignments.set(key, { state: "loaded", answer: await response.json() });
    } catch (_) {
      alignments.set(key, { state: "failed", answer: null });
    }
    if (dialog.open && pinned !== null && `${members[pinned].id}:${members[current].id}` === key) {
      describeAlignment();
      apply();
    }
  }

  function toggleAlignment() {
    const entry = shownPair();
    if (!entry || entry.state !== "loaded" || !entry.answer.aligned) return;
    aligning = !aligning;
    describeAlignment();
    apply();
  }

  function reset() { view.scale = 1; view.x = 0; view.y = 0; apply(); }

  // Zoom to `scale` keeping the point (px, py), relative to the pane's centre, where it is.
  function zoomTo(scale, px, py) {
    const next = Math.min(MAX, Math.max(MIN, scale));
    const ratio = next / view.scale;
    view.x = px - (px - view.x) * ratio;
    view.y = py - (py - view.y) * ratio;
    view.scale = next;
    if (next === MIN) { view.x = 0; view.y = 0; }
    apply();
  }

  function show(pane, member) {
    const img = pane.querySelector("img");
    if (img.getAttribute("src") !== member.full) img.src = member.full;
    img.alt = member.caption;
    pane.querySelector("figcaption").textContent = member.caption;
    pane.dataset.image = member.id;
  }

  function render() {
    const side = pinned !== null;
    panes[1].hidden = !side;
    dialog.classList.toggle("side-by-side", side);
    pairButton.setAttribute("aria-pressed", String(side));
    if (side) {
      show(panes[0], members[pinned]);
      show(panes[1], members[current]);
      loadAlignment(members[pinned].id, members[current].id);
    } else show(panes[0], members[current]);
    describeAlignment();
    title.textContent = `Group #${group} · ${current + 1} / ${members.length}`;
    strip.querySelectorAll("button").forEach((button, i) => {
      button.classList.toggle("current", i === current);
      button.classList.toggle("pinned", i === pinned);
    });
    apply();
  }

  function step(delta) {
    if (members.length < 2) return;
    let next = current;
    do { next = (next + delta + members.length) % members.length; } while (next === pinned && members.length > 2);
    current = next;
    render();
  }

  function togglePair() {
    if (pinned !== null) { current = pinned; pinned = null; }
    else if (members.length > 1) { pinned = current; current = (current + 1) % members.length; }
    render();
  }

  function open(card, id) {
    group = card.dataset.group;
    members = Array.from(card.querySelectorAll("[data-compare]")).map((button) => ({
      id: button.closest("[data-image]").dataset.image,
      full: button.dataset.full,
      thumb: button.querySelector("img").getAttribute("src"),
      caption: button.dataset.caption,
    }));
    current = Math.max(0, members.findIndex((member) => member.id === id));
    pinned = null;
    strip.replaceChildren(...members.map((member, i) => {
      const button = document.createElement("button");
      button.type = "button";
      button.title = member.caption;
      const img = document.createElement("img");
      img.src = member.thumb;
      img.alt = member.caption;
      button.appendChild(img);
      button.addEventListener("click", (event) => {
        if (event.shiftKey && i !== current) pinned = i;
        else if (i !== pinned) current = i;
        render();
      });
      return button;
    }));
    reset();
    render();
    dialog.showModal();
  }

  function centreOf(pane, clientX, clientY) {
    const box = pane.getBoundingClientRect();
    return [clientX - box.left - box.width / 2, clientY - box.top - box.height / 2];
  }

  function onWheel(event) {
    event.preventDefault();
    const [px, py] = centreOf(event.currentTarget, event.clientX, event.clientY);
    const delta = event.deltaMode === 1 ? event.deltaY * 40 : event.deltaY;  // lines or pixels
    zoomTo(view.scale * Math.exp(-Math.max(-300, Math.min(300, delta)) * 0.002), px, py);
  }

  function onPointerDown(event) {
    try { event.currentTarget.setPointerCapture(event.pointerId); } catch (_) { /* a pointer already gone */ }
    pointers.set(event.pointerId, [event.clientX, event.clientY]);
    gesture = null;
  }

  function onPointerMove(event) {
    const last = pointers.get(event.pointerId);
    if (!last) return;
    if (pointers.size === 1) {  // drag: pan
      view.x += event.clientX - last[0];
      view.y += event.clientY - last[1];
      pointers.set(event.pointerId, [event.clientX, event.clientY]);
      apply();
      return;
    }
    pointers.set(event.pointerId, [event.clientX, event.clientY]);
    const [a, b] = Array.from(pointers.values());
    const distance = Math.hypot(a[0] - b[0], a[1] - b[1]);
    const [px, py] = centreOf(event.currentTarget, (a[0] + b[0]) / 2, (a[1] + b[1]) / 2);
    if (gesture) zoomTo(gesture.scale * distance / gesture.distance, px, py);  // pinch
    else gesture = { distance: distance || 1, scale: view.scale };
  }

  function onPointerUp(event) {
    pointers.delete(event.pointerId);
    gesture = null;
  }

  // Capture phase: while the dialog is open its keys never reach the page's shortcuts (1-9, Enter...).
  function onKey(event) {
    if (!dialog.open) return;
    event.stopPropagation();
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const key = event.key;
    if (key === "ArrowRight" || key === "ArrowDown") step(1);
    else if (key === "ArrowLeft" || key === "ArrowUp") step(-1);
    else if (key === "+" || key === "=") zoomTo(view.scale * STEP, view.x, view.y);
    else if (key === "-" || key === "_") zoomTo(view.scale / STEP, view.x, view.y);
    else if (key === "0") reset();
    else if (key === "c") togglePair();
    else if (key === "a") toggleAlignment();
    else return;  // Escape: the dialog closes itself
    event.preventDefault();
  }

  document.addEventListener("DOMContentLoaded", () => {
    dialog = document.getElementById("compare");
    if (!dialog) return;
    panes = [document.getElementById("pane-a"), document.getElementById("pane-b")];
    strip = document.getElementById("compare-strip");
    title = document.getElementById("compare-title");
    pairButton = document.getElementById("compare-pair");
    alignButton = document.getElementById("compare-align");
    alignNote = document.getElementById("compare-alignment");
    panes.forEach((pane) => {
      const stage = pane.querySelector(".stage");
      stage.addEventListener("wheel", onWheel, { passive: false });
      stage.addEventListener("pointerdown", onPointerDown);
      stage.addEventListener("pointermove", onPointerMove);
      stage.addEventListener("pointerup", onPointerUp);
      stage.addEventListener("pointercancel", onPointerUp);
    });
    pairButton.addEventListener("click", togglePair);
    alignButton.addEventListener("click", toggleAlignment);
    window.addEventListener("resize", () => { if (dialog.open) apply(); });  // the fit depends on the stage
    document.getElementById("compare-close").addEventListener("click", () => dialog.close());
    dialog.querySelectorAll("[data-zoom]").forEach((button) => button.addEventListener("click", () => {
      const how = button.dataset.zoom;
      if (how === "fit") reset();
      else zoomTo(view.scale * (how === "in" ? STEP : 1 / STEP), view.x, view.y);
    }));
    document.addEventListener("keydown", onKey, true);
    document.addEventListener("click", (event) => {
      const button = event.target.closest("[data-compare]");
      if (!button) return;
      event.preventDefault();
      open(button.closest("article.group"), button.closest("[data-image]").dataset.image);
    });
  });
})();
