// Forecast overlay for the trend charts: the predicted path, its 90% band and the limits,
// from GET /api/forecast (the statistical forecaster learned from each path's own samples).
const REFRESH_MS = 2000;

export function startForecastOverlay(api, charts, trendPaths) {
  async function refresh() {
    let body;
    try {
      body = await api("/api/forecast");
    } catch {
      return; // not signed in yet, or the twin is not running: try again later
    }
    for (const row of body.paths || []) {
      const chart = charts[row.path];
      if (!chart || !trendPaths.includes(row.path) || !row.mean || !row.mean.length) continue;
      const at = (i) => (row.now + row.times_s[i]) * 1000;
      chart.setSeries("forecast", row.mean.map((v, i) => [at(i), v]), "#9b59b6");
      chart.setBand(row.low.map((v, i) => [at(i), v]), row.high.map((v, i) => [at(i), v]));
      chart.setLimits(row.limit_low, row.limit_high);
      chart.canvas.title = `forecast: ${row.forecaster}, p(breach) ${row.probability.toFixed(2)}`;
    }
  }
  refresh();
  return setInterval(refresh, REFRESH_MS);
}
