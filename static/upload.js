// Upload page: each dropped or chosen file goes to the API on its own request (two at a time), with a
// progress bar, its outcome, and then its embedding status until the worker has indexed it.
(function () {
  const form = document.getElementById("upload-form");
  const input = document.getElementById("id_files");
  const zone = document.getElementById("dropzone");
  const list = document.getElementById("uploads");
  const summary = document.getElementById("summary");
  const csrf = form.querySelector("input[name=csrfmiddlewaretoken]").value;
  const config = window.IMGSIM_UPLOAD;
  const queue = [];
  const counts = {accepted: 0, rejected: 0, exact_duplicate: 0, error: 0};
  let running = 0;
  let total = 0;

  input.style.display = "none";
  ["dragenter", "dragover"].forEach((type) => zone.addEventListener(type, (event) => {
    event.preventDefault(); zone.classList.add("over");
  }));
  ["dragleave", "drop"].forEach((type) => zone.addEventListener(type, (event) => {
    event.preventDefault(); zone.classList.remove("over");
  }));
  zone.addEventListener("drop", (event) => addFiles(event.dataTransfer.files));
  input.addEventListener("change", () => { addFiles(input.files); input.value = ""; });

  function text(tag, className, value) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (value !== undefined) node.textContent = value;
    return node;
  }

  function addFiles(files) {
    for (const file of files) {
      const row = text("li");
      const thumb = text("img");
      thumb.alt = "";
      thumb.onerror = () => { thumb.style.visibility = "hidden"; };
      if (file.size < 20 * 1048576 && file.type.startsWith("image/")) thumb.src = URL.createObjectURL(file);
      const body = text("div");
      body.append(text("div", "", file.name));
      const note = text("div", "muted", "Waiting…");
      const bar = text("div", "progress");
      const fill = text("span");
      bar.append(fill);
      body.append(note, bar);
      const badge = text("span", "badge", "queued");
      row.append(thumb, body, badge);
      list.prepend(row);
      queue.push({file, row, note, fill, badge});
      total += 1;
    }
    pump();
  }

  function pump() {
    while (running < 2 && queue.length) {
      running += 1;
      send(queue.shift()).finally(() => { running -= 1; showSummary(); pump(); });
    }
    showSummary();
  }

  function showSummary() {
    const done = counts.accepted + counts.rejected + counts.exact_duplicate + counts.error;
    summary.textContent = total ? `${done} of ${total} uploaded · ${counts.accepted} accepted · ` +
      `${counts.exact_duplicate} already in the library · ${counts.rejected} rejected for quality · ` +
      `${counts.error} refused` : "";
  }

  function finish(item, outcome, message, image) {
    counts[outcome] = (counts[outcome] || 0) + 1;
    item.badge.className = "badge " + outcome;
    item.badge.textContent = outcome.replace("_", " ");
    item.note.textContent = message;
    item.fill.parentElement.remove();
    if (image) {
      const link = text("a", "", ` #${image.id}`);
      link.href = image.page_url;
      item.note.append(link);
      item.row.querySelector("img").src = image.thumbnail_url;
      if (image.status === "queued") watch(item, image);
    }
  }

  function send(item) {
    return new Promise((resolve) => {
      if (item.file.size > config.maxBytes) {
        finish(item, "error", `Too large: the limit is ${config.maxBytes / 1048576} MB.`);
        return resolve();
      }
      const data = new FormData();
      data.append("file", item.file, item.file.name);
      const xhr = new XMLHttpRequest();
      xhr.open("POST", config.apiUrl);
      xhr.setRequestHeader("X-CSRFToken", csrf);
      xhr.setRequestHeader("Accept", "application/json");
      xhr.upload.onprogress = (event) => {
        if (event.lengthComputable) item.fill.style.width = `${(100 * event.loaded) / event.total}%`;
        item.note.textContent = "Uploading…";
      };
      xhr.onload = () => {
        let body = {};
        try { body = JSON.parse(xhr.responseText); } catch (error) { body = {}; }
        if (xhr.status >= 400 || !body.outcome) {
          const message = (body.error && body.error.message) || `Upload failed (HTTP ${xhr.status}).`;
          finish(item, "error", message);
        } else if (body.outcome === "exact_duplicate") {
          finish(item, "exact_duplicate", "Already in the library as", body.image);
        } else if (body.outcome === "rejected") {
          finish(item, "rejected", `${body.image.status_message} `, body.image);
        } else {
          finish(item, "accepted", "Stored, embedding…", body.image);
        }
        resolve();
      };
      xhr.onerror = () => { finish(item, "error", "Network error: the file was not uploaded."); resolve(); };
      xhr.send(data);
    });
  }

  function watch(item, image) {
    // Follow the background embedding until the image is indexed (or failed).
    setTimeout(async () => {
      try {
        const response = await fetch(image.url || `${config.apiUrl}${image.id}/`, {credentials: "same-origin"});
        const body = await response.json();
        if (body.status === "queued") { watch(item, body); return; }
        item.badge.className = "badge " + body.status;
        item.badge.textContent = body.status;
        item.note.firstChild.textContent = body.status === "indexed" ? "Indexed and searchable:" :
          `${body.status_message || body.status} `;
      } catch (error) { watch(item, image); }
    }, 2000);
  }
})();
