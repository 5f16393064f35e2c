// Plotly helpers shared by the job page and the compare page: the console's dark look, series
// taken from metric points ({kind, step, epoch, values}), and one draw call per chart.
(function () {
  "use strict";

  var COLORS = ["#ff9900", "#4fa3ff", "#3fb950", "#bc8cff", "#d29922", "#39c5cf", "#f85149", "#e6edf3"];
  var CONFIG = { responsive: true, displaylogo: false, displayModeBar: false };

  function layout(extra) {
    var base = {
      paper_bgcolor: "rgba(0,0,0,0)",
      plot_bgcolor: "rgba(0,0,0,0)",
      font: { color: "#e6edf3", size: 11 },
      margin: { l: 44, r: 14, t: 26, b: 34 },
      height: 230,
      showlegend: true,
      legend: { orientation: "h", x: 0, y: 1.0, yanchor: "bottom", font: { size: 11 },
        bgcolor: "rgba(0,0,0,0)" },
      hovermode: "x unified",
      xaxis: { gridcolor: "#2a343f", zerolinecolor: "#2a343f", automargin: true },
      yaxis: { gridcolor: "#2a343f", zerolinecolor: "#2a343f", automargin: true },
    };
    Object.keys(extra || {}).forEach(function (key) {
      if (base[key] && typeof base[key] === "object" && !Array.isArray(base[key])) {
        base[key] = Object.assign({}, base[key], extra[key]);
      } else {
        base[key] = extra[key];
      }
    });
    return base;
  }

  function isNumber(value) {
    return typeof value === "number" && isFinite(value);
  }

  // x and y arrays of `key` over `points`, skipping points where the value is missing.
  function series(points, key, axis) {
    var x = [], y = [];
    points.forEach(function (point) {
      var value = point.values ? point.values[key] : undefined;
      if (!isNumber(value)) return;
      x.push(axis === "epoch" ? point.epoch : point.step);
      y.push(value);
    });
    return { x: x, y: y };
  }

  function has(points, key) {
    return points.some(function (point) { return point.values && isNumber(point.values[key]); });
  }

  function line(points, key, axis, name, color, extra) {
    var data = series(points, key, axis);
    return Object.assign(
      { type: "scatter", mode: data.x.length > 1 ? "lines" : "markers", name: name, x: data.x, y: data.y,
        line: { color: color, width: 2 }, marker: { color: color, size: 5 } },
      extra || {}
    );
  }

  // TensorBoard's smoothing: an exponential moving average, debiased so the first points are not
  // pulled towards zero. weight 0 returns the values as they are.
  function ema(values, weight) {
    var last = 0, debias = 0;
    return values.map(function (value) {
      last = last * weight + (1 - weight) * value;
      debias = debias * weight + (1 - weight);
      return last / debias;
    });
  }

  // `key` smoothed with `weight`, over its raw line drawn faint (the raw values are never lost);
  // one plain line when weight is 0.
  function smoothed(points, key, axis, name, color, weight, extra) {
    var raw = line(points, key, axis, name, color, extra);
    if (!weight || raw.x.length < 2) return [raw];
    raw = Object.assign({}, raw, { name: name + " (raw)", opacity: 0.3, showlegend: false,
      line: Object.assign({}, raw.line, { width: 1 }), hoverinfo: "skip" });
    var smooth = line(points, key, axis, name, color, extra);
    smooth.y = ema(smooth.y, weight);
    return [raw, smooth];
  }

  // A horizontal dashed reference (e.g. the base model's value) across the x range of `points`.
  function reference(points, value, axis, name, color, extra) {
    if (!isNumber(value) || !points.length) return null;
    var xs = points.map(function (p) { return axis === "epoch" ? p.epoch : p.step; });
    var low = Math.min.apply(null, xs), high = Math.max.apply(null, xs);
    return Object.assign(
      { type: "scatter", mode: "lines", name: name, x: [low, high === low ? low + 1 : high], y: [value, value],
        line: { color: color, width: 1.5, dash: "dash" }, hoverinfo: "skip" },
      extra || {}
    );
  }

  function empty(message) {
    return layout({
      showlegend: false,
      xaxis: { visible: false }, yaxis: { visible: false },
      annotations: [{ text: message, showarrow: false, font: { color: "#8b98a5", size: 12 },
        xref: "paper", yref: "paper", x: 0.5, y: 0.5 }],
    });
  }

  function draw(element, traces, chartLayout, emptyMessage) {
    if (!element || typeof Plotly === "undefined") return;
    traces = traces.filter(function (trace) { return trace && trace.x && trace.x.length; });
    Plotly.react(element, traces, traces.length ? chartLayout : empty(emptyMessage || "No points yet"), CONFIG);
  }

  function axisTitle(axis) {
    return { title: { text: axis === "epoch" ? "epoch" : "step", font: { size: 11 } } };
  }

  window.JobCharts = {
    COLORS: COLORS, layout: layout, series: series, has: has, line: line,
    reference: reference, draw: draw, axisTitle: axisTitle, isNumber: isNumber,
    ema: ema, smoothed: smoothed,
  };
})();
