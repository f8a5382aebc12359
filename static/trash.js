// Trash page: "Select all on this page" ticks every image's box, and the restore button counts the ticked ones.
// Without this script each box is ticked by hand; the form works the same.
(function () {
  const all = document.getElementById("select-all");
  const button = document.getElementById("restore-selected");
  if (!all || !button) return;
  const boxes = Array.from(document.querySelectorAll('input[name="images"]'));

  function update() {
    const ticked = boxes.filter((box) => box.checked).length;
    button.textContent = ticked ? `Restore ${ticked} selected` : "Restore selected";
    all.checked = ticked > 0 && ticked === boxes.length;
    all.indeterminate = ticked > 0 && ticked < boxes.length;
  }

  all.closest("label").hidden = false;
  all.addEventListener("change", () => {
    boxes.forEach((box) => { box.checked = all.checked; });
    update();
  });
  boxes.forEach((box) => box.addEventListener("change", update));
  update();
})();
