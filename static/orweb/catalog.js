// The models page: "/" jumps to the search box from anywhere on the page that isn't a text field.
document.addEventListener("keydown", (event) => {
  if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey) return;
  const target = event.target;
  if (target.closest("input, textarea, select, [contenteditable='true']")) return;
  const search = document.getElementById("catalog-q");
  if (!search) return;
  event.preventDefault();
  search.focus();
  search.select();
});

// A model's page: its price history as steps (Chart.js from static/vendor), from the JSON the server wrote
// into <script id="price-history" type="application/json">.
document.addEventListener("DOMContentLoaded", () => {
  const canvas = document.querySelector("canvas[data-chart='price-history']");
  const source = document.getElementById("price-history");
  if (!canvas || !source || typeof Chart === "undefined") return;
  const data = JSON.parse(source.textContent);
  const ink = getComputedStyle(document.documentElement).getPropertyValue("--muted").trim() || "#667085";
  const colors = ["#4f46e5", "#0ea5e9"];
  const usd = (value) => "$" + (value !== 0 && Math.abs(value) < 0.01 ? value.toPrecision(3) : value.toFixed(2));
  const chart = new Chart(canvas, {
    type: "line",
    data: {
      labels: data.labels,
      datasets: data.series.map((series, index) => ({
        label: series.label,
        data: series.data.map((value) => (value === null ? null : Number(value))),
        borderColor: colors[index % colors.length],
        backgroundColor: colors[index % colors.length],
        stepped: "before",
        spanGaps: true,
      })),
    },
    options: {
      animation: false,
      maintainAspectRatio: false,
      scales: { x: { ticks: { color: ink } }, y: { beginAtZero: true, ticks: { color: ink, callback: (v) => usd(Number(v)) } } },
      plugins: { legend: { labels: { color: ink } } },
    },
  });
  canvas.dataset.drawn = String(chart.data.datasets.length);
});
