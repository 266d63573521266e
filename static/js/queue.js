/* The follow-up queue's keyboard: j / k move a visible focus ring between rows, o or Enter
   opens the row, x toggles its checkbox. No framework; it works across htmx swaps because
   the rows are looked up on every key press. Keys typed into a field are left alone. */
(function () {
  "use strict";

  var ROWS = "#queue-list [data-followup-id]";
  var current = null; // the followup id with the ring, kept across htmx swaps

  function rows() {
    return Array.prototype.slice.call(document.querySelectorAll(ROWS));
  }

  function typing(target) {
    if (!target || !target.tagName) return false;
    var tag = target.tagName.toLowerCase();
    return tag === "input" || tag === "textarea" || tag === "select" || target.isContentEditable;
  }

  function mark(row) {
    rows().forEach(function (other) {
      other.classList.toggle("is-current", other === row);
      other.removeAttribute("aria-current");
    });
    if (!row) return;
    row.setAttribute("aria-current", "true");
    current = row.getAttribute("data-followup-id");
    row.focus({ preventScroll: true });
    row.scrollIntoView({ block: "nearest" });
  }

  function currentRow(list) {
    if (current === null) return null;
    for (var i = 0; i < list.length; i++) {
      if (list[i].getAttribute("data-followup-id") === current) return list[i];
    }
    return null;
  }

  function move(step) {
    var list = rows();
    if (!list.length) return;
    var row = currentRow(list);
    var index = row ? list.indexOf(row) + step : step > 0 ? 0 : list.length - 1;
    mark(list[Math.max(0, Math.min(list.length - 1, index))]);
  }

  document.addEventListener("keydown", function (event) {
    if (event.defaultPrevented || event.altKey || event.ctrlKey || event.metaKey) return;
    if (typing(event.target)) return;
    var key = event.key;
    if (key === "j" || key === "k") {
      event.preventDefault();
      move(key === "j" ? 1 : -1);
      return;
    }
    var row = currentRow(rows());
    if (!row) return;
    if (key === "o" || (key === "Enter" && event.target === row)) {
      event.preventDefault();
      window.location.assign(row.getAttribute("data-href"));
    } else if (key === "x") {
      event.preventDefault();
      var box = row.querySelector('input[type="checkbox"]');
      if (box) box.checked = !box.checked;
    }
  });

  // A click on a row moves the ring there, so the keyboard continues from it.
  document.addEventListener("click", function (event) {
    var row = event.target.closest && event.target.closest(ROWS);
    if (row) {
      current = row.getAttribute("data-followup-id");
      rows().forEach(function (other) {
        other.classList.toggle("is-current", other === row);
      });
    }
  });

  // After htmx swaps the list in place, keep the ring on the same follow-up when it is
  // still shown.
  document.addEventListener("htmx:afterSettle", function () {
    var row = currentRow(rows());
    if (row) row.classList.add("is-current");
  });
})();
