// Draws the dataset page's prompt-length histogram whenever htmx swaps in new statistics
// (a file, not an inline script: the Content-Security-Policy runs scripts from this origin only).
(function () {
  function draw() {
    var holder = document.getElementById("token-histogram");
    var source = document.getElementById("token-histogram-data");
    if (!holder || !source || !window.Plotly) return;
    var data = JSON.parse(source.textContent);
    var mids = data.starts.map(function (s) { return s + data.width / 2; });
    Plotly.newPlot(holder, [{type: "bar", x: mids, y: data.counts, width: data.width * 0.95, marker: {color: "#f59e0b"}}], {
      margin: {t: 10, r: 10, b: 40, l: 40}, height: 220, paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
      font: {color: "#9aa4b2"}, xaxis: {title: {text: "prompt tokens"}}, yaxis: {title: {text: "rows"}}
    }, {displayModeBar: false, responsive: true});
  }
  document.addEventListener("htmx:afterSettle", function (event) {
    if (event.target && event.target.id === "stats") draw();
  });
  document.addEventListener("DOMContentLoaded", draw);
})();
