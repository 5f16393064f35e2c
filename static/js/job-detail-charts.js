// The job page's charts, drawn from the sorted train and eval points (see job-live.js).
(function () {
  "use strict";
  var C = window.JobCharts;
  if (!C) return;
  var ORANGE = C.COLORS[0], BLUE = C.COLORS[1], GREEN = C.COLORS[2], MUTED = "#8b98a5";

  function el(id) { return document.getElementById(id); }

  // reward mean with a ± std band, then one line per `component/<name>`.
  function rewardTraces(train, axis) {
    var band = { lower: { x: [], y: [] }, upper: { x: [], y: [] } };
    train.forEach(function (point) {
      var mean = point.values.reward_mean, std = point.values.reward_std;
      if (!C.isNumber(mean) || !C.isNumber(std)) return;
      var x = axis === "epoch" ? point.epoch : point.step;
      band.lower.x.push(x); band.lower.y.push(mean - std);
      band.upper.x.push(x); band.upper.y.push(mean + std);
    });
    var traces = [
      { type: "scatter", mode: "lines", x: band.lower.x, y: band.lower.y, line: { width: 0 },
        hoverinfo: "skip", showlegend: false, name: "− std" },
      { type: "scatter", mode: "lines", x: band.upper.x, y: band.upper.y, line: { width: 0 },
        fill: "tonexty", fillcolor: "rgba(255,153,0,0.16)", hoverinfo: "skip", name: "± std" },
      C.line(train, "reward_mean", axis, "reward mean", ORANGE),
    ];
    var names = {};
    train.forEach(function (point) {
      Object.keys(point.values).forEach(function (key) {
        if (key.indexOf("component/") === 0) names[key] = true;
      });
    });
    Object.keys(names).sort().forEach(function (key, index) {
      traces.push(C.line(train, key, axis, key.slice("component/".length),
        C.COLORS[(index + 1) % C.COLORS.length], { line: { width: 1.5, dash: "dot",
          color: C.COLORS[(index + 1) % C.COLORS.length] } }));
    });
    return traces;
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

  function drawJob(train, evals, axis, L) {
    C.draw(el("chart-reward"), rewardTraces(train, axis), L());
    var split = rewardScaled(evals);
    C.draw(el("chart-validation"), validationTraces(evals, axis, split), L(validationLayout(split)),
      "Validation runs at step 0 and every evalInterval steps");
    C.draw(el("chart-loss"), [C.line(train, "loss", axis, "loss", BLUE)], L({ showlegend: false }));
    ["kl", "entropy"].forEach(function (key) {
      var box = el("box-" + key);
      if (box) box.hidden = !C.has(train, key);
      if (box && !box.hidden) {
        C.draw(el("chart-" + key), [C.line(train, key, axis, key, BLUE)], L({ showlegend: false }));
      }
    });
    C.draw(el("chart-length"), [
      C.line(train, "completion_length_mean", axis, "mean", BLUE),
      C.line(train, "completion_length_max", axis, "max", MUTED, { line: { color: MUTED, width: 1, dash: "dot" } }),
    ], L());
    var zero = el("chart-zero-std");
    var threshold = zero ? parseFloat(zero.getAttribute("data-threshold")) : 0.5;
    var fraction = C.line(train, "frac_reward_zero_std", axis, "identical rewards", ORANGE);
    C.draw(zero, [fraction, C.reference(train, threshold, axis, "hint above " + threshold, "#d29922")],
      L({ yaxis: { range: [0, 1.02], tickformat: ".0%" } }));
    C.draw(el("chart-throughput"), [C.line(train, "tokens_per_second", axis, "tokens/s", GREEN)],
      L({ showlegend: false }));
  }

  C.drawJob = drawJob;
})();
