// The job page's live part: one websocket (ws/jobs/<id>/) gives the history on connect and then
// each new point and status change. Points are kept one per (kind, step) — the server may send a
// point both in the backlog and live — and never dropped. On a dropped connection it reconnects
// with backoff and asks only for what it may have missed (?after=N).
//
// Messages, by `type` (the schema is jobs/events.py; change the two together):
//   backlog  after, job {status, status_display, sub_status, current_step, total_steps},
//            events [{id, status, sub_status, message, at}], metrics [{kind, step, epoch, values}],
//            times [when each of metrics was logged, ISO 8601] (the log is rebuilt from both)
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
  var HEALTH_EVERY_MS = 4000; // the health warnings refresh at most this often while points arrive
  var healthTimer = null, lastHealth = 0;
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
      var line = "validation at step " + point.step + ": accuracy " + fmt(v.accuracy, "percent") +
        ", reward " + fmt(v.mean_reward);
      if (v.reward_errors) line += " — " + v.reward_errors + " of " + v.rows + " rows were reward errors";
      return line;
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
    if (state.status && state.status !== "queued") dropQueuedBanner();
  }
  // The wizard's "queued for a gpu worker" flash is true only until a worker takes the job.
  function dropQueuedBanner() {
    document.querySelectorAll(".messages .flash").forEach(function (flash) {
      if (/queued for a gpu worker/i.test(flash.textContent)) flash.remove();
    });
    var box = document.querySelector(".messages");
    if (box && !box.children.length) box.remove();
  }
  function showProgress(step, total) {
    var bar = $("job-progress"), text = $("job-progress-text");
    if (!bar || !total) return;
    bar.max = total;
    bar.setAttribute("data-total", total);
    bar.value = Math.min(step, total);
    if (text) text.textContent = "Step " + step + " of " + total + eta(step, total);
  }
  // The median of the last few steps' durations × the steps left, plus the validations left × the
  // last validation's duration (jobs/summary.py eta_seconds does the same on the server).
  function eta(step, total) {
    var recent = sorted("train").slice(-5).map(function (p) { return p.values.step_seconds; })
      .filter(C.isNumber);
    if (!recent.length || step >= total) return "";
    recent.sort(function (a, b) { return a - b; });
    var each = recent.length % 2 ? recent[(recent.length - 1) / 2] :
      (recent[recent.length / 2 - 1] + recent[recent.length / 2]) / 2;
    var bar = $("job-progress"), interval = bar ? parseInt(bar.getAttribute("data-eval-interval"), 10) || 0 : 0;
    var evals = sorted("eval").map(function (p) { return p.values.seconds; }).filter(C.isNumber);
    var left = 0;
    for (var s = step + 1; s <= total; s++) if (s === total || (interval && s % interval === 0)) left++;
    return " · ETA " + human(each * (total - step) + (evals.length ? evals[evals.length - 1] * left : 0));
  }
  function human(seconds) {
    var minutes = Math.round(seconds / 60);
    if (minutes < 1) return "< 1 min";
    if (minutes < 60) return minutes + " min";
    return Math.floor(minutes / 60) + " h " + (minutes % 60) + " min";
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
    window.JobCharts.drawJob(train, evals, axis, L, smoothing());
    updateStats(train, evals);
    root.setAttribute("data-points", train.length + evals.length); // what the charts hold
  }
  function updateStats(train, evals) {
    var last = { train: train[train.length - 1], eval: evals[evals.length - 1] };
    document.querySelectorAll("[data-stat]").forEach(function (element) {
      var parts = element.getAttribute("data-stat").split(":"), point = last[parts[0]];
      if (point) element.textContent = fmt(point.values[parts[1]], element.getAttribute("data-format"));
    });
  }
  function smoothing() {
    var input = $("smoothing");
    var value = input ? parseFloat(input.value) : 0;
    return value > 0 && value < 1 ? value : 0;
  }
  // New points may add or clear a warning: ask for the health block again, at most every few s.
  function healthChanged() {
    if (healthTimer) return;
    var wait = Math.max(0, lastHealth + HEALTH_EVERY_MS - Date.now());
    healthTimer = window.setTimeout(function () {
      healthTimer = null;
      lastHealth = Date.now();
      document.body.dispatchEvent(new CustomEvent("job-health"));
    }, wait);
  }

  // --- the websocket -------------------------------------------------------------------------
  // On the first backlog the log is rebuilt from the history, the same lines as live, in the order
  // they happened; a reconnect's backlog prints only what was missed.
  function onBacklog(message) {
    var before = maxStep(), lines = [];
    message.metrics.forEach(function (point, index) {
      var known = points[point.kind] && points[point.kind].has(point.step);
      add(point);
      if (!known) lines.push({ at: (message.times || [])[index], text: metricLine(point), tone: "" });
    });
    showStatus(message.job);
    var fresh = message.events.filter(function (event) { return event.id > lastEventId; });
    fresh.forEach(function (event) {
      if (!liveSeen.has(statusLine(event))) lines.push({ at: event.at, text: statusLine(event), tone: "status" });
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
    }
    lines.map(function (line, index) { return { line: line, index: index, when: line.at ? Date.parse(line.at) : 0 }; })
      .sort(function (a, b) { return a.when - b.when || a.index - b.index; })
      .forEach(function (item) { log(item.line.text, item.line.tone, item.line.at); });
    if (!loaded) {
      log("history: " + message.metrics.length + " points" + (before < 0 && maxStep() >= 0 ? " up to step " + maxStep() : "") + "; live from here", "muted");
    } else {
      log("reconnected: " + message.metrics.length + " points after step " + message.after, "muted");
      healthChanged();
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
      healthChanged();
      queueDraw();
    } else if (message.type === "status") {
      showStatus(message);
      liveSeen.add(statusLine(message));
      log(statusLine(message), "status");
      changed(message);
    }
  }
  // Asks the summary to refresh itself (htmx, hx-trigger="job-status from:body"). A refresh can be
  // lost: an event that fires while htmx swaps the summary is heard by the outgoing element, whose
  // answer has nowhere to go. So until the summary shows the status the socket last said, ask again.
  var wantStatus = null, freshTimer = null, freshTries = 0, FRESH_CHECK_MS = 2000, FRESH_TRIES = 5;
  function changed(detail) {
    if (detail && detail.status) { wantStatus = detail.status; freshTries = 0; }
    document.body.dispatchEvent(new CustomEvent("job-status", { detail: detail }));
    checkFresh();
  }
  function checkFresh() {
    if (freshTimer || !wantStatus) return;
    freshTimer = window.setTimeout(function () {
      freshTimer = null;
      var summary = $("job-summary");
      if (summary && summary.getAttribute("data-status") !== wantStatus && freshTries < FRESH_TRIES) {
        freshTries += 1;
        document.body.dispatchEvent(new CustomEvent("job-status", { detail: { status: wantStatus } }));
        checkFresh();
      }
    }, FRESH_CHECK_MS);
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

  var smoothingInput = $("smoothing");
  if (smoothingInput) {
    smoothingInput.addEventListener("input", function () {
      var shown = $("smoothing-value");
      if (shown) shown.textContent = smoothingInput.value;
      queueDraw();
    });
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
