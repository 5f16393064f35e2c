// The job page's live part: one websocket (ws/jobs/<id>/) gives the history on connect and then
// each new point and status change. Points are kept one per (kind, step) — the server may send a
// point both in the backlog and live — and never dropped. On a dropped connection it reconnects
// with backoff and asks only for what it may have missed (?after=N).
//
// Messages, by `type` (the schema is jobs/events.py; change the two together):
//   backlog  after, job {status, status_display, sub_status, current_step, total_steps},
//            events [{id, status, sub_status, message, at}], metrics [{kind, step, epoch, values}]
//   metric   kind ("train" | "eval"), step, epoch, values {metric name: number or null}
//   status   status, sub_status, message
(function () {
  "use strict";
  var root = document.getElementById("job-live");
  if (!root || !window.JobCharts) return;
  var C = window.JobCharts;
  var points = { train: new Map(), eval: new Map() };
  var axis = "step";
  var socket = null, attempt = 0, loaded = false, drawQueued = false, retryTimer = null;
  var liveSeen = new Set(); // status lines printed live since the last backlog
  var lastEventId = 0;
  var MAX_LOG_LINES = 400;
  var TONES = { queued: "muted", validating: "live", training: "live", evaluating: "live",
    stopping: "warn", paused: "warn", completed: "ok", failed: "bad", stopped: "muted" };

  function $(id) { return document.getElementById(id); }
  function sorted(kind) {
    return Array.from((points[kind] || new Map()).values()).sort(function (a, b) { return a.step - b.step; });
  }
  function add(point) {
    if (!points[point.kind]) points[point.kind] = new Map();
    points[point.kind].set(point.step, point);
  }
  function maxStep() {
    var high = -1;
    Object.keys(points).forEach(function (kind) {
      points[kind].forEach(function (_, step) { if (step > high) high = step; });
    });
    return high;
  }
  function fmt(value, format) {
    if (!C.isNumber(value)) return "—";
    if (format === "percent") return Math.round(value * 100) + "%";
    return Number(value.toPrecision(3)).toString();
  }

  // --- the log panel -------------------------------------------------------------------------
  function log(text, tone, at) {
    var list = $("live-log");
    if (!list) return;
    var item = document.createElement("li");
    if (tone) item.className = tone;
    var time = document.createElement("time"), when = at ? new Date(at) : new Date();
    time.dateTime = when.toISOString();
    time.textContent = when.toLocaleTimeString();
    item.appendChild(time);
    item.appendChild(document.createTextNode(" " + text));
    list.appendChild(item);
    while (list.children.length > MAX_LOG_LINES) list.removeChild(list.firstChild);
    list.scrollTop = list.scrollHeight;
  }
  function statusLine(event) {
    var status = event.status.charAt(0).toUpperCase() + event.status.slice(1);
    var sub = event.sub_status && event.sub_status.toLowerCase() !== event.status ? event.sub_status : "";
    return [status, sub, event.message].filter(Boolean).join(" · ");
  }
  function metricLine(point) {
    var v = point.values || {};
    if (point.kind === "eval") {
      return "validation at step " + point.step + ": accuracy " + fmt(v.accuracy, "percent") +
        ", reward " + fmt(v.mean_reward);
    }
    var text = "step " + point.step + ": reward " + fmt(v.reward_mean);
    if (C.isNumber(v.reward_std)) text += " ± " + fmt(v.reward_std);
    if (C.isNumber(v.loss)) text += ", loss " + fmt(v.loss);
    if (C.isNumber(v.tokens_per_second)) text += ", " + fmt(v.tokens_per_second) + " tokens/s";
    if (v.reward_errors) text += ", " + v.reward_errors + " reward errors";
    return text;
  }

  // --- status and progress (server-rendered; kept current between htmx refreshes) --------------
  function showStatus(state) {
    var badge = $("job-status");
    if (badge && state.status) {
      badge.className = "badge " + (TONES[state.status] || "muted");
      badge.textContent = state.status_display || state.status.charAt(0).toUpperCase() + state.status.slice(1);
    }
    var sub = $("job-sub-status");
    if (sub && state.sub_status !== undefined) {
      sub.textContent = state.sub_status.toLowerCase() === state.status ? "" : state.sub_status;
    }
    if (state.total_steps) showProgress(state.current_step, state.total_steps);
  }
  function showProgress(step, total) {
    var bar = $("job-progress"), text = $("job-progress-text");
    if (!bar || !total) return;
    bar.max = total;
    bar.setAttribute("data-total", total);
    bar.value = Math.min(step, total);
    if (text) text.textContent = "Step " + step + " of " + total + eta(step, total);
  }
  // From the last few steps' own durations: what the remaining steps should take.
  function eta(step, total) {
    var recent = sorted("train").slice(-5).map(function (p) { return p.values.step_seconds; })
      .filter(C.isNumber);
    if (!recent.length || step >= total) return "";
    recent.sort(function (a, b) { return a - b; });
    var each = recent[Math.floor(recent.length / 2)]; // the median: an eval step is an outlier
    var minutes = Math.round((each * (total - step)) / 60);
    return " · ETA " + (minutes < 1 ? "< 1 min" : minutes < 60 ? minutes + " min" :
      Math.floor(minutes / 60) + " h " + (minutes % 60) + " min");
  }

  // --- charts --------------------------------------------------------------------------------
  function queueDraw() {
    if (drawQueued) return;
    drawQueued = true;
    window.requestAnimationFrame(function () { drawQueued = false; drawAll(); });
  }
  function drawAll() {
    var train = sorted("train"), evals = sorted("eval"), x = C.axisTitle(axis);
    var L = function (extra) { return C.layout(Object.assign({ xaxis: x }, extra || {})); };
    window.JobCharts.drawJob(train, evals, axis, L);
    updateStats(train, evals);
    root.setAttribute("data-points", train.length + evals.length); // what the charts hold
  }
  function updateStats(train, evals) {
    var last = { train: train[train.length - 1], eval: evals[evals.length - 1] };
    document.querySelectorAll("[data-stat]").forEach(function (element) {
      var parts = element.getAttribute("data-stat").split(":"), point = last[parts[0]];
      if (point) element.textContent = fmt(point.values[parts[1]], element.getAttribute("data-format"));
    });
    var hint = $("zero-std-hint"), chart = $("chart-zero-std");
    var threshold = chart ? parseFloat(chart.getAttribute("data-threshold")) : 0.5;
    var latest = last.train && last.train.values.frac_reward_zero_std;
    if (hint && last.train) hint.hidden = !(C.isNumber(latest) && latest > threshold);
  }

  // --- the websocket -------------------------------------------------------------------------
  function onBacklog(message) {
    var before = maxStep();
    message.metrics.forEach(add);
    showStatus(message.job);
    var fresh = message.events.filter(function (event) { return event.id > lastEventId; });
    fresh.forEach(function (event) {
      if (!liveSeen.has(statusLine(event))) log(statusLine(event), "status", event.at);
    });
    liveSeen.clear();
    if (message.events.length) lastEventId = message.events[message.events.length - 1].id;
    // Missed while away (or before the socket opened): the server-rendered summary is stale.
    var summary = $("job-summary");
    if (summary && (summary.getAttribute("data-status") !== message.job.status ||
        parseInt(summary.getAttribute("data-events"), 10) !== message.events.length)) {
      changed(message.job);
    }
    if (!loaded) {
      var list = $("live-log");
      if (list && list.firstElementChild && list.firstElementChild.classList.contains("muted")) {
        list.removeChild(list.firstElementChild);
      }
      log("loaded " + message.metrics.length + " points" + (before < 0 && maxStep() >= 0 ? " up to step " + maxStep() : ""), "muted");
    } else {
      log("reconnected: " + message.metrics.length + " points after step " + message.after, "muted");
    }
    loaded = true;
    queueDraw();
  }
  function onMessage(event) {
    var message;
    try { message = JSON.parse(event.data); } catch (error) { return; }
    if (message.type === "backlog") return onBacklog(message);
    if (message.type === "metric") {
      var known = points[message.kind] && points[message.kind].has(message.step);
      add(message);
      if (!known) log(metricLine(message));
      var bar = $("job-progress");
      if (message.kind === "train" && bar) showProgress(message.step, parseInt(bar.getAttribute("data-total"), 10));
      // A validation result changes the server-rendered summary (accuracy, rollouts): refresh it.
      if (message.kind === "eval" && !known) changed(message);
      queueDraw();
    } else if (message.type === "status") {
      showStatus(message);
      liveSeen.add(statusLine(message));
      log(statusLine(message), "status");
      changed(message);
    }
  }
  function changed(detail) {
    document.body.dispatchEvent(new CustomEvent("job-status", { detail: detail }));
  }
  function setState(text, tone) {
    var state = $("live-state");
    if (state) { state.textContent = text; state.className = "live-state " + (tone || ""); }
  }
  function connect() {
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    var path = root.getAttribute("data-ws-path");
    // The last step may be half-received (train without its eval), so ask again from the one before.
    var high = maxStep();
    var query = loaded && high > 0 ? "?after=" + (high - 1) : "";
    socket = new WebSocket(scheme + window.location.host + path + query);
    socket.onopen = function () { attempt = 0; setState("live", "on"); };
    socket.onmessage = onMessage;
    socket.onclose = function (event) {
      if (event.code === 4401 || event.code === 4404) {
        setState("not available", "off");
        log(event.code === 4401 ? "signed out: reload the page to sign in" : "this job is not available", "bad");
        return;
      }
      var delay = Math.min(30000, 1000 * Math.pow(2, attempt)) + Math.random() * 500;
      attempt += 1;
      setState("reconnecting…", "off");
      if (loaded) log("connection lost; reconnecting in " + Math.round(delay / 1000) + " s", "muted");
      retryTimer = window.setTimeout(connect, delay);
    };
  }

  root.querySelectorAll("input[name=x-axis]").forEach(function (input) {
    input.addEventListener("change", function () { axis = input.value; queueDraw(); });
  });
  document.addEventListener("visibilitychange", function () {
    // A tab coming back reconnects at once instead of waiting out a long backoff.
    if (!document.hidden && retryTimer && (!socket || socket.readyState === WebSocket.CLOSED)) {
      window.clearTimeout(retryTimer);
      retryTimer = null;
      connect();
    }
  });
  drawAll();
  connect();
})();
