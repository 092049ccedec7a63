// Charts (Chart.js, served from static/vendor) for the models and console pages: every
// <canvas data-chart="ID"> draws the JSON of <script id="ID" type="application/json"> rendered by the server.
// data-kind="steps" draws a price history; anything else spend per day, stacked, where a click on a bar opens
// the explorer (data-base) for that day (and series).
(() => {
  const palette = ["#4f46e5", "#0ea5e9", "#10b981", "#f59e0b", "#ef4444", "#a855f7", "#14b8a6", "#94a3b8"];
  const usd = (value) => "$" + (value !== 0 && Math.abs(value) < 0.01 ? value.toPrecision(3) : value.toFixed(2));
  const ink = getComputedStyle(document.documentElement).getPropertyValue("--muted").trim() || "#667085";

  function spendChart(canvas, data) {
    const base = canvas.dataset.base || "";
    return new Chart(canvas, {
      type: "bar",
      data: {
        labels: data.labels,
        datasets: data.series.map((series, index) => ({
          label: series.label,
          data: series.data.map(Number),
          backgroundColor: palette[index % palette.length],
          filter: series.filter,
        })),
      },
      options: {
        animation: false,
        maintainAspectRatio: false,
        scales: {
          x: { stacked: true, ticks: { color: ink } },
          y: { stacked: true, ticks: { color: ink, callback: (value) => usd(Number(value)) } },
        },
        plugins: {
          legend: { labels: { color: ink } },
          tooltip: { callbacks: { label: (item) => `${item.dataset.label}: ${usd(item.parsed.y)}` } },
        },
        onClick: (_event, elements, chart) => {
          if (!elements.length || !data.dayQueries) return;
          const { index, datasetIndex } = elements[0];
          const params = new URLSearchParams(data.dayQueries[index].slice(1));
          const filter = chart.data.datasets[datasetIndex].filter;
          if (filter) params.set(filter[0], filter[1]);
          window.location.assign(`${base}?${params}`);
        },
      },
    });
  }

  function stepChart(canvas, data) {
    return new Chart(canvas, {
      type: "line",
      data: {
        labels: data.labels,
        datasets: data.series.map((series, index) => ({
          label: series.label,
          data: series.data.map((value) => (value === null ? null : Number(value))),
          borderColor: palette[index % palette.length],
          backgroundColor: palette[index % palette.length],
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
  }

  function draw() {
    if (typeof Chart === "undefined") return;
    for (const canvas of document.querySelectorAll("canvas[data-chart]")) {
      const source = document.getElementById(canvas.dataset.chart);
      if (!source) continue;
      const data = JSON.parse(source.textContent);
      const chart = canvas.dataset.kind === "steps" ? stepChart(canvas, data) : spendChart(canvas, data);
      canvas.dataset.drawn = String(chart.data.datasets.length);
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw);
  else draw();
})();
