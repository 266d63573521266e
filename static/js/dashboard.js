/* The exec dashboard: draws the trend and histogram charts from the figures the page passes
 * with json_script, sorts the segment table, and swaps the charts for images when printing.
 * Every figure is also in a table on the page, so nothing depends on this script. */
(function () {
  "use strict";

  var COLORS = {
    nps: "#4338ca",
    band: "rgba(79, 70, 229, 0.16)",
    bandEdge: "rgba(79, 70, 229, 0.35)",
    promoter: "#22c55e",
    passive: "#facc15",
    detractor: "#ef4444",
    grid: "#e4e7ec",
    text: "#374151",
  };

  function readData() {
    var node = document.getElementById("dashboard-chart-data");
    if (!node) return null;
    try {
      return JSON.parse(node.textContent);
    } catch (error) {
      return null;
    }
  }

  function signed(value) {
    if (value === null || value === undefined) return "insufficient data";
    return value > 0 ? "+" + value : String(value).replace("-", "\u2212");
  }

  function drawTrend(canvas, trend) {
    // Three datasets: the interval's upper edge fills down to its lower edge (the band),
    // and the NPS line on top. Periods below the minimum sample are gaps, not zeros.
    return new window.Chart(canvas, {
      type: "line",
      data: {
        labels: trend.labels,
        datasets: [
          {
            label: "95% interval",
            data: trend.high,
            borderColor: COLORS.bandEdge,
            borderWidth: 1,
            backgroundColor: COLORS.band,
            pointRadius: 0,
            fill: "+1",
            spanGaps: false,
          },
          {
            label: "95% interval, low",
            data: trend.low,
            borderColor: COLORS.bandEdge,
            borderWidth: 1,
            backgroundColor: COLORS.band,
            pointRadius: 0,
            fill: false,
            spanGaps: false,
          },
          {
            label: "NPS",
            data: trend.nps,
            borderColor: COLORS.nps,
            backgroundColor: COLORS.nps,
            borderWidth: 2,
            pointRadius: 3,
            fill: false,
            spanGaps: false,
          },
        ],
      },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: { duration: 250 },
        interaction: { mode: "index", intersect: false },
        scales: {
          y: {
            // NPS runs from −100 to 100; the axis fits the band, with some room.
            suggestedMin: 0,
            suggestedMax: 50,
            grace: "10%",
            grid: { color: COLORS.grid },
            ticks: { color: COLORS.text },
          },
          x: { grid: { display: false }, ticks: { color: COLORS.text } },
        },
        plugins: {
          legend: {
            labels: {
              color: COLORS.text,
              filter: function (item) {
                return item.datasetIndex !== 1;
              },
            },
          },
          tooltip: {
            callbacks: {
              label: function (context) {
                var value = context.parsed.y;
                if (context.datasetIndex === 2) {
                  var n = trend.n ? trend.n[context.dataIndex] : null;
                  return "NPS " + signed(value) + (n !== null && n !== undefined ? " (n = " + n + ")" : "");
                }
                return (context.datasetIndex === 0 ? "95% interval, high: " : "95% interval, low: ") + signed(value);
              },
            },
          },
        },
      },
    });
  }

  function drawHistogram(canvas, histogram) {
    var colors = histogram.labels.map(function (label) {
      var score = Number(label);
      if (score >= 9) return COLORS.promoter;
      if (score >= 7) return COLORS.passive;
      return COLORS.detractor;
    });
    return new window.Chart(canvas, {
      type: "bar",
      data: {
        labels: histogram.labels,
        datasets: [
          { label: "Answers", data: histogram.counts, backgroundColor: colors, borderWidth: 0 },
        ],
      },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: { duration: 250 },
        scales: {
          y: { beginAtZero: true, grid: { color: COLORS.grid }, ticks: { color: COLORS.text, precision: 0 } },
          x: { grid: { display: false }, ticks: { color: COLORS.text }, title: { display: true, text: "Score", color: COLORS.text } },
        },
        plugins: { legend: { display: false } },
      },
    });
  }

  function drawCharts() {
    var data = readData();
    if (!data || typeof window.Chart === "undefined") return;
    var trendCanvas = document.getElementById("trend-chart");
    if (trendCanvas && data.trend && data.trend.labels.length) drawTrend(trendCanvas, data.trend);
    var histogramCanvas = document.getElementById("histogram-chart");
    if (histogramCanvas && data.histogram) drawHistogram(histogramCanvas, data.histogram);
  }

  // --- Sortable tables: <table data-sortable> with <button> in the sortable headers. ---

  function cellValue(row, index) {
    var cell = row.cells[index];
    if (!cell) return "";
    var raw = cell.getAttribute("data-sort-value");
    if (raw === null) raw = cell.textContent.trim();
    if (raw === "") return null;
    var number = Number(raw);
    return isNaN(number) ? raw.toLowerCase() : number;
  }

  function sortTable(table, index, button) {
    var header = button.closest("th");
    var ascending = header.getAttribute("aria-sort") !== "ascending";
    table.querySelectorAll("th[aria-sort]").forEach(function (th) {
      th.removeAttribute("aria-sort");
    });
    header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = cellValue(a, index);
      var y = cellValue(b, index);
      if (x === y) return 0;
      if (x === null) return 1; // rows without a figure go last either way
      if (y === null) return -1;
      var order = x < y ? -1 : 1;
      return ascending ? order : -order;
    });
    rows.forEach(function (row) {
      body.appendChild(row);
    });
  }

  function makeSortable(table) {
    var headers = table.tHead ? table.tHead.rows[0].cells : [];
    Array.prototype.forEach.call(headers, function (th, index) {
      var button = th.querySelector("button[data-sort]");
      if (!button) return;
      button.addEventListener("click", function () {
        sortTable(table, index, button);
      });
    });
  }

  // --- Print: a canvas may print blank or stretched; print a still image of each chart. ---

  function chartsToImages() {
    document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
      var image = document.createElement("img");
      image.src = canvas.toDataURL("image/png");
      image.alt = canvas.getAttribute("aria-label") || "";
      image.className = "db-print-image";
      canvas.parentNode.insertBefore(image, canvas);
      canvas.classList.add("db-print-hidden");
    });
  }

  function imagesToCharts() {
    document.querySelectorAll("img.db-print-image").forEach(function (image) {
      image.remove();
    });
    document.querySelectorAll("canvas.db-print-hidden").forEach(function (canvas) {
      canvas.classList.remove("db-print-hidden");
    });
  }

  function init() {
    drawCharts();
    document.querySelectorAll("table[data-sortable]").forEach(makeSortable);
    document.querySelectorAll("[data-print]").forEach(function (link) {
      link.addEventListener("click", function (event) {
        event.preventDefault();
        window.print();
      });
    });
    window.addEventListener("beforeprint", chartsToImages);
    window.addEventListener("afterprint", imagesToCharts);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
