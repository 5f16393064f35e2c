// The job page's charts, drawn from the sorted train and eval points (see job-live.js).
(function () {
  "use strict";
  var C = window.JobCharts;
  if (!C) return;
  var ORANGE = C.COLORS[0], BLUE = C.COLORS[1], GREEN = C.COLORS[2], MUTED = "#8b98a5";

  function el(id) { return document.getElementById(id); }

  // A filled band between `low` and `high` of the points (two traces: Plotly fills to the previous).
  function band(train, low, high, axis, name, fill) {
    var lower = { x: [], y: [] }, upper = { x: [], y: [] };
    train.forEach(function (point) {
      var a = low(point.values), b = high(point.values);
      if (!C.isNumber(a) || !C.isNumber(b)) return;
      var x = axis === "epoch" ? point.epoch : point.step;
      lower.x.push(x); lower.y.push(a);
      upper.x.push(x); upper.y.push(b);
    });
    return [
      { type: "scatter", mode: "lines", x: lower.x, y: lower.y, line: { width: 0 },
        hoverinfo: "skip", showlegend: false, name: name + " low" },
      { type: "scatter", mode: "lines", x: upper.x, y: upper.y, line: { width: 0 },
        fill: "tonexty", fillcolor: fill, hoverinfo: "skip", name: name },
    ];
  }
  function key(name) { return function (values) { return values[name]; }; }

  // The distribution of the answers' rewards per step: p10–p90 and p25–p75 bands and the median
  // (steps logged before percentiles were recorded get a ± 1 std band), the mean (smoothed, over
  // its raw line), then one line per `component/<name>`.
  function rewardTraces(train, axis, weight) {
    var traces;
    if (C.has(train, "reward_p25")) {
      traces = band(train, key("reward_p10"), key("reward_p90"), axis, "p10–p90", "rgba(255,153,0,0.10)")
        .concat(band(train, key("reward_p25"), key("reward_p75"), axis, "p25–p75", "rgba(255,153,0,0.22)"))
        .concat([C.line(train, "reward_median", axis, "median", ORANGE,
          { line: { color: ORANGE, width: 1, dash: "dot" } })]);
    } else {
      traces = band(train, function (v) { return v.reward_mean - v.reward_std; },
        function (v) { return v.reward_mean + v.reward_std; }, axis, "± std", "rgba(255,153,0,0.16)");
    }
    traces = traces.concat(C.smoothed(train, "reward_mean", axis, "reward mean", ORANGE, weight));
    var names = {};
    train.forEach(function (point) {
      Object.keys(point.values).forEach(function (name) {
        if (name.indexOf("component/") === 0) names[name] = true;
      });
    });
    Object.keys(names).sort().forEach(function (name, index) {
      traces.push(C.line(train, name, axis, name.slice("component/".length),
        C.COLORS[(index + 1) % C.COLORS.length], { line: { width: 1.5, dash: "dot",
          color: C.COLORS[(index + 1) % C.COLORS.length] } }));
    });
    return traces;
  }

  // Validation runs where the reward failed on rows: a note on the chart, so 0% says why.
  function errorNotes(evals, axis) {
    return evals.filter(function (point) { return point.values.reward_errors > 0; }).map(function (point, index) {
      var who = point.step === 0 ? "base" : "step " + point.step;
      return { x: axis === "epoch" ? point.epoch : point.step, y: 0, yref: "y", xref: "x",
        text: "⚠ " + point.values.reward_errors + "/" + point.values.rows + " errors",
        hovertext: who + ": " + point.values.reward_errors + " of " + point.values.rows +
          " validation rows were reward errors (counted as failures)",
        showarrow: true, arrowcolor: "#f85149", ax: 0, ay: index % 2 ? -52 : -30,
        font: { color: "#f85149", size: 11 } };
    });
  }

  // Validation reward and accuracy, each with its step-0 value (the base model) dashed. A reward
  // on a 0–1 scale shares the accuracy's axis, so equal values look equal; another scale (a judge
  // scoring 1–10) gets its own axis on the left and accuracy moves to the right.
  function rewardScaled(evals) {
    return evals.some(function (point) {
      var value = point.values.mean_reward;
      return C.isNumber(value) && (value < -0.01 || value > 1.01);
    });
  }
  function validationTraces(evals, axis, split) {
    var base = evals.filter(function (point) { return point.step === 0; })[0];
    var baseValues = base ? base.values : {};
    var y = split ? { yaxis: "y2" } : {};
    return [
      C.line(evals, "mean_reward", axis, "reward", ORANGE, { mode: "lines+markers" }),
      C.line(evals, "accuracy", axis, "accuracy", GREEN, Object.assign({ mode: "lines+markers" }, y)),
      C.reference(evals, baseValues.mean_reward, axis, "base reward", ORANGE),
      C.reference(evals, baseValues.accuracy, axis, "base accuracy", GREEN, y),
    ];
  }
  function validationLayout(split) {
    if (!split) return { yaxis: { range: [0, 1.02], title: { text: "reward · accuracy", font: { size: 11 } } } };
    return {
      yaxis: { title: { text: "reward", font: { size: 11 } } },
      yaxis2: { overlaying: "y", side: "right", range: [0, 1.02], tickformat: ".0%", dtick: 0.25,
        gridcolor: "rgba(0,0,0,0)", title: { text: "accuracy", font: { size: 11 } } },
      margin: { l: 48, r: 48, t: 26, b: 34 },
    };
  }

  // `weight`: the smoothing (0 to 0.95) for the noisy per-step series; validation is not smoothed.
  function drawJob(train, evals, axis, L, weight) {
    weight = weight || 0;
    C.draw(el("chart-reward"), rewardTraces(train, axis, weight), L());
    var split = rewardScaled(evals);
    C.draw(el("chart-validation"), validationTraces(evals, axis, split),
      L(Object.assign(validationLayout(split), { annotations: errorNotes(evals, axis) })),
      "Validation runs at step 0 and every evalInterval steps");
    C.draw(el("chart-loss"), C.smoothed(train, "loss", axis, "loss", BLUE, weight), L({ showlegend: false }));
    ["kl", "entropy"].forEach(function (name) {
      var box = el("box-" + name);
      if (box) box.hidden = !C.has(train, name);
      if (box && !box.hidden) {
        C.draw(el("chart-" + name), C.smoothed(train, name, axis, name, BLUE, weight), L({ showlegend: false }));
      }
    });
    C.draw(el("chart-length"), C.smoothed(train, "completion_length_mean", axis, "mean", BLUE, weight).concat([
      C.line(train, "completion_length_max", axis, "max", MUTED, { line: { color: MUTED, width: 1, dash: "dot" } }),
    ]), L());
    var zero = el("chart-zero-std");
    var threshold = zero ? parseFloat(zero.getAttribute("data-threshold")) : 0.5;
    var fraction = C.line(train, "frac_reward_zero_std", axis, "identical rewards", ORANGE);
    C.draw(zero, [fraction, C.reference(train, threshold, axis, "hint above " + threshold, "#d29922")],
      L({ yaxis: { range: [0, 1.02], tickformat: ".0%" } }));
    C.draw(el("chart-throughput"), C.smoothed(train, "tokens_per_second", axis, "tokens/s", GREEN, weight),
      L({ showlegend: false }));
  }

  C.drawJob = drawJob;
})();
