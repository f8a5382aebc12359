// Upload page: each dropped or chosen file goes to the API on its own request (two at a time), in the order
// given, with its progress, its outcome, and then its embedding status until the worker has indexed it.
// Waiting and running uploads can be cancelled; uploads that failed for a passing reason (network, server
// error, rate limit, cancelled) can be retried. Refused files say why in words, and show no preview.
(function () {
  const form = document.getElementById("upload-form");
  const input = document.getElementById("id_files");
  const zone = document.getElementById("dropzone");
  const title = document.getElementById("dropzone-title");
  const list = document.getElementById("uploads");
  const status = document.getElementById("upload-status");
  const summary = document.getElementById("summary");
  const overall = document.getElementById("overall");
  const problemsOnly = document.getElementById("problems-only");
  const retryAll = document.getElementById("retry-all");
  const cancelAll = document.getElementById("cancel-all");
  const csrf = form.querySelector("input[name=csrfmiddlewaretoken]").value;
  const config = window.IMGSIM_UPLOAD;
  const errorMessages = JSON.parse(document.getElementById("upload-error-messages").textContent);
  const reasonLabels = JSON.parse(document.getElementById("reason-labels").textContent);
  const items = [];
  const queue = [];
  let running = 0;
  let dragDepth = 0;
  const titleHtml = title.innerHTML;

  // The input stays focusable (visually hidden, not display:none): Tab reaches the drop zone, Enter opens it.
  input.classList.add("visually-hidden");
  input.setAttribute("aria-describedby", "dropzone-hint");

  zone.addEventListener("dragenter", (event) => {
    event.preventDefault();
    dragDepth += 1;
    zone.classList.add("over");
    title.textContent = "Release to upload";
  });
  zone.addEventListener("dragover", (event) => { event.preventDefault(); event.dataTransfer.dropEffect = "copy"; });
  zone.addEventListener("dragleave", () => { dragDepth = Math.max(0, dragDepth - 1); if (!dragDepth) endDrag(); });
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    dragDepth = 0;
    endDrag();
    addFiles(event.dataTransfer.files);
  });
  input.addEventListener("change", () => { addFiles(input.files); input.value = ""; });
  problemsOnly.addEventListener("change", () => list.classList.toggle("problems-only", problemsOnly.checked));
  retryAll.addEventListener("click", () => items.filter((item) => item.retryable).forEach(retry));
  cancelAll.addEventListener("click", () => items.filter((item) => item.state === "waiting" || item.state === "uploading").forEach(cancel));

  function endDrag() {
    zone.classList.remove("over");
    title.innerHTML = titleHtml;
  }

  function node(tag, className, value) {
    const element = document.createElement(tag);
    if (className) element.className = className;
    if (value !== undefined) element.textContent = value;
    return element;
  }

  function addFiles(files) {
    for (const file of files) {
      const row = node("li", "waiting");
      const thumb = node("img");
      thumb.alt = "";
      thumb.onerror = () => { thumb.style.visibility = "hidden"; };
      if (file.size < 20 * 1048576 && file.type.startsWith("image/")) thumb.src = URL.createObjectURL(file);
      const body = node("div");
      const note = node("div", "muted note", "Waiting…");
      const bar = node("div", "progress");
      const fill = node("span");
      bar.append(fill);
      body.append(node("div", "file-name", file.name), note, bar);
      const side = node("div", "row-side");
      const badge = node("span", "badge", "waiting");
      const action = node("button", "btn small", "Cancel");
      action.type = "button";
      side.append(badge, action);
      row.append(thumb, body, side);
      list.append(row);  // drop order, top to bottom
      const item = {file, row, thumb, note, bar, fill, badge, action, state: "waiting", loaded: 0, xhr: null};
      action.addEventListener("click", () => (item.retryable ? retry(item) : cancel(item)));
      items.push(item);
      queue.push(item);
    }
    status.hidden = !items.length;
    pump();
  }

  function pump() {
    while (running < 2 && queue.length) {
      const item = queue.shift();
      running += 1;
      send(item).finally(() => { running -= 1; pump(); });
    }
    showSummary();
  }

  function setState(item, state, badgeClass, badgeText, message) {
    item.state = state;
    item.row.className = state;
    item.badge.className = "badge " + badgeClass;
    item.badge.textContent = badgeText;
    if (message !== undefined) item.note.textContent = message;
    showSummary();
  }

  function showSummary() {
    const count = (state) => items.filter((item) => item.state === state).length;
    const total = items.length;
    const finished = items.filter((item) => !["waiting", "uploading"].includes(item.state)).length;
    const partial = items.filter((item) => item.state === "uploading")
      .reduce((sum, item) => sum + (item.file.size ? item.loaded / item.file.size : 0), 0);
    overall.max = Math.max(1, total);
    overall.value = Math.min(total, finished + partial);
    const parts = [`${finished} of ${total} done`];
    const indexed = count("indexed");
    const stored = count("stored") + indexed;
    if (stored) parts.push(`${stored} stored${indexed ? ` (${indexed} indexed)` : ""}`);
    if (count("duplicate")) parts.push(`${count("duplicate")} already in the library`);
    if (count("in-trash")) parts.push(`${count("in-trash")} in the trash`);
    if (count("rejected")) parts.push(`${count("rejected")} rejected for quality`);
    if (count("refused")) parts.push(`${count("refused")} refused`);
    if (count("failed")) parts.push(`${count("failed")} failed`);
    if (count("cancelled")) parts.push(`${count("cancelled")} cancelled`);
    summary.textContent = parts.join(" · ");
    retryAll.hidden = !items.some((item) => item.retryable);
    cancelAll.hidden = !items.some((item) => item.state === "waiting" || item.state === "uploading");
  }

  function cancel(item) {
    if (item.state === "waiting") {
      queue.splice(queue.indexOf(item), 1);
    } else if (item.state === "uploading" && item.xhr) {
      item.cancelled = true;
      item.xhr.abort();
    } else {
      return;
    }
    problem(item, "cancelled", "cancelled", "cancelled", "Cancelled: the file was not uploaded.", true);
  }

  function retry(item) {
    if (item.placeholder) { item.placeholder.remove(); item.placeholder = null; }
    item.thumb.hidden = false;
    item.retryable = false;
    item.cancelled = false;
    item.loaded = 0;
    item.bar.hidden = false;
    item.fill.style.width = "0";
    item.action.textContent = "Cancel";
    item.action.hidden = false;
    setState(item, "waiting", "", "waiting", "Waiting…");
    queue.push(item);
    pump();
  }

  function problem(item, state, badgeClass, badgeText, message, retryable) {
    // Nothing was stored: a partial local preview (a truncated JPEG draws its first rows) would mislead.
    if (state !== "rejected") {
      item.thumb.removeAttribute("src");
      item.thumb.hidden = true;
      if (!item.placeholder) {
        item.placeholder = node("span", "no-preview", "✕");
        item.placeholder.setAttribute("aria-hidden", "true");
        item.thumb.before(item.placeholder);
      }
    }
    item.bar.hidden = true;
    item.retryable = Boolean(retryable);
    item.action.textContent = "Retry";
    item.action.hidden = !retryable;
    setState(item, state, badgeClass, badgeText, message);
    item.row.classList.add("problem");
  }

  function link(item, image) {
    const anchor = node("a", "", `#${image.id}`);
    anchor.href = image.page_url;
    item.note.append(anchor, ".");
    item.thumb.style.visibility = "";
    item.thumb.hidden = false;
    item.thumb.src = image.thumbnail_url;
  }

  function stored(item, image) {
    item.bar.hidden = true;
    item.action.hidden = true;
    showEmbedding(item, image);
    if (image.status === "queued") watch(item, image);
  }

  function showEmbedding(item, image) {
    if (image.status === "indexed") {
      setState(item, "indexed", "indexed", "indexed", "Indexed and searchable: ");
    } else if (image.status === "failed") {
      problem(item, "failed", "failed", "embedding failed", `Stored, but embedding failed: ${image.status_message} `);
    } else {
      setState(item, "stored", "queued", "embedding", "Stored, embedding… ");
    }
    link(item, image);
  }

  function refusedMessage(error, httpStatus) {
    if (error && errorMessages[error.code]) return errorMessages[error.code];
    if (error && error.message) return error.message;
    return `Upload failed (HTTP ${httpStatus}).`;
  }

  function send(item) {
    return new Promise((resolve) => {
      if (item.state !== "waiting") return resolve();
      if (item.file.size > config.maxBytes) {
        problem(item, "refused", "error", "refused", `Too large: the limit is ${config.maxBytes / 1048576} MB. Nothing was stored.`);
        return resolve();
      }
      setState(item, "uploading", "queued", "uploading", "Uploading…");
      const data = new FormData();
      data.append("file", item.file, item.file.name);
      const xhr = new XMLHttpRequest();
      item.xhr = xhr;
      xhr.open("POST", config.apiUrl);
      xhr.setRequestHeader("X-CSRFToken", csrf);
      xhr.setRequestHeader("Accept", "application/json");
      xhr.upload.onprogress = (event) => {
        if (!event.lengthComputable) return;
        item.loaded = (item.file.size * event.loaded) / event.total;
        item.fill.style.width = `${(100 * event.loaded) / event.total}%`;
        if (event.loaded >= event.total) item.note.textContent = "Checking…";
        showSummary();
      };
      xhr.onload = () => {
        let body = {};
        try { body = JSON.parse(xhr.responseText); } catch (error) { body = {}; }
        if (xhr.status === 429 || xhr.status >= 500) {
          problem(item, "failed", "error", "failed", `${refusedMessage(body.error, xhr.status)} You can retry.`, true);
        } else if (xhr.status >= 400 || !body.outcome) {
          problem(item, "refused", "error", "refused", refusedMessage(body.error, xhr.status));
        } else if (body.outcome === "exact_duplicate") {
          // Kept as the outcome: this upload stored nothing new; the existing image's own status is on its page.
          item.bar.hidden = true;
          item.action.hidden = true;
          setState(item, "duplicate", "exact_duplicate", "already in library", "Already in the library as ");
          link(item, body.image);
        } else if (body.outcome === "exact_duplicate_in_trash") {
          item.bar.hidden = true;
          item.action.hidden = true;
          inTrash(item, body);
        } else if (body.outcome === "rejected") {
          const label = reasonLabels[body.image.reason_code] || body.image.reason_code;
          problem(item, "rejected", "rejected", `rejected: ${label.toLowerCase()}`, `Stored but not searchable: ${body.image.status_message} `);
          link(item, body.image);
          showCopy(item, body.image);
        } else {
          stored(item, body.image);
        }
        resolve();
      };
      xhr.onabort = () => resolve();
      xhr.onerror = () => {
        problem(item, "failed", "error", "failed", "Network error: the file was not uploaded. You can retry.", true);
        resolve();
      };
      xhr.send(data);
    });
  }

  function inTrash(item, body) {
    // The same bytes are stored as an image in the trash: not in the library until restored (staff can).
    setState(item, "in-trash", "exact_duplicate", "in the trash", "In the trash as ");
    item.row.classList.add("problem");
    link(item, body.image);
    if (!body.restore_url) {
      item.note.append(" A staff member can restore it from the Trash.");
      return;
    }
    item.note.append(" Not in the library until it is restored.");
    const button = node("button", "btn small primary", "Restore");
    button.type = "button";
    item.action.after(button);
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        const response = await fetch(body.restore_url, {
          method: "POST",
          credentials: "same-origin",
          headers: {"X-CSRFToken": csrf, Accept: "application/json"},
        });
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        const image = await response.json();
        button.remove();
        setState(item, "duplicate", "exact_duplicate", "restored", "Restored from the trash: in the library as ");
        link(item, image);
      } catch (error) {
        button.disabled = false;
        item.note.textContent = `Restoring failed (${error.message}): try again, or use the Trash page. In the trash as `;
        link(item, body.image);
      }
    });
  }

  function showCopy(item, image) {
    // A blurry upload is compared with the library in the background: once known, name the photo it copies.
    if (!item.copy) {
      item.copy = node("div", "copy-of muted");
      item.note.after(item.copy);
    }
    item.copy.replaceChildren();
    if (image.copy_of) {
      const thumb = node("img");
      thumb.alt = "";
      thumb.src = image.copy_of.thumbnail_url;
      const anchor = node("a", "", `#${image.copy_of.id}`);
      anchor.href = image.copy_of.page_url;
      const text = node("span", "", "It looks like a blurred copy of ");
      text.append(anchor, ` (similarity ${image.copy_of.similarity.toFixed(3)}).`);
      item.copy.append(thumb, text);
      item.copy.classList.remove("muted");
    } else if (image.copy_check === "pending") {
      item.copy.textContent = "Checking whether it is a copy of a photo in the library…";
      watchCopy(item, image);
    } else {
      item.copy.remove();
      item.copy = null;
    }
  }

  function watchCopy(item, image) {
    setTimeout(async () => {
      try {
        const response = await fetch(`${config.apiUrl}${image.id}/`, {credentials: "same-origin"});
        const body = await response.json();
        if (body.copy_check === "pending") { watchCopy(item, body); return; }
        showCopy(item, body);
      } catch (error) { watchCopy(item, image); }
    }, 1500);
  }

  function watch(item, image) {
    // Follow the background embedding until the image is indexed (or failed).
    setTimeout(async () => {
      try {
        const response = await fetch(image.url || `${config.apiUrl}${image.id}/`, {credentials: "same-origin"});
        const body = await response.json();
        if (body.status === "queued") { watch(item, body); return; }
        showEmbedding(item, body);
      } catch (error) { watch(item, image); }
    }, 1500);
  }
})();
