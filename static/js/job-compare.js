// The compare page: each job's reward, validation accuracy and loss overlaid, one colour per job.
(function () {
  "use strict";
  var C = window.JobCharts, data = document.getElementById("compare-series");
  if (!C || !data) return;
  var jobs = JSON.parse(data.textContent), axis = "step";

  document.querySelectorAll("[data-swatch]").forEach(function (swatch) {
    swatch.style.background = C.COLORS[parseInt(swatch.getAttribute("data-swatch"), 10) % C.COLORS.length];
  });

  function of(job, kind) {
    return job.points.filter(function (point) { return point.kind === kind; });
  }
  function traces(kind, key) {
    return jobs.map(function (job, index) {
      var color = C.COLORS[index % C.COLORS.length];
      return C.line(of(job, kind), key, axis, job.name + " #" + job.id, color,
        kind === "eval" ? { mode: "lines+markers" } : {});
    });
  }
  function draw() {
    var L = function (extra) { return C.layout(Object.assign({ xaxis: C.axisTitle(axis) }, extra || {})); };
    C.draw(document.getElementById("compare-reward"), traces("train", "reward_mean"), L());
    C.draw(document.getElementById("compare-accuracy"), traces("eval", "accuracy"),
      L({ yaxis: { range: [0, 1.02], tickformat: ".0%" } }), "No validation yet");
    C.draw(document.getElementById("compare-loss"), traces("train", "loss"), L());
  }
  document.querySelectorAll("input[name=x-axis]").forEach(function (input) {
    input.addEventListener("change", function () { axis = input.value; draw(); });
  });
  draw();
})();
