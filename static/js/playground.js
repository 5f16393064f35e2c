// The playground page: one websocket (ws/playground/<id>/) per session. "Send" streams every
// model's answer into its column; each answer gets its stats, its reward score and thumbs.
(function () {
  "use strict";
  var settingsForm = document.getElementById("pg-settings");
  // getAttribute, not .dataset: the form's "dataset" field shadows the property.
  var wsPath = settingsForm && settingsForm.getAttribute("data-ws-path");
  if (!wsPath) return;
  var rowsUrl = settingsForm.getAttribute("action") + "rows/";
  var socket = null, attempt = 0, busy = false, closedForGood = false;
  var row = null; // the loaded validation row, sent with the next message
  var rowPrompt = null; // its prompt as validation sends it, until the message that starts its chat
  var current = {}; // model id → the <li> of the answer streaming now

  function $(id) { return document.getElementById(id); }
  function column(model) { return document.querySelector('.pg-column[data-model="' + model + '"]'); }
  function setState(text, tone) { var s = $("pg-state"); s.textContent = text; s.className = "live-state " + (tone || ""); }
  function showError(text) { $("pg-error").textContent = text || ""; }
  function setBusy(value) { busy = value; $("pg-send-button").disabled = value; }
  function fmt(value, digits) { return value === null || value === undefined ? "—" : Number(value).toFixed(digits); }

  function settings() {
    var data = {};
    ["system_prompt", "temperature", "top_p", "max_tokens", "seed", "reward_version", "dataset"].forEach(function (name) {
      var field = settingsForm.elements[name];
      if (field) data[name] = field.value;
    });
    return data;
  }

  // The response format ("JSON schema" option): null for text, false (error shown) for a schema
  // that is not JSON; the server checks what the schema asks for and answers an error event.
  function responseFormat() {
    var kind = $("pg-format") ? $("pg-format").value : "text";
    if (kind === "text") return null;
    if (kind === "json_object") return { type: "json_object" };
    var schema;
    try { schema = JSON.parse($("pg-schema").value); } catch (error) {
      showError("The JSON schema is not valid JSON: " + error.message);
      return false;
    }
    return { type: "json_schema", json_schema: { name: "playground", schema: schema, strict: true } };
  }
  if ($("pg-format")) $("pg-format").addEventListener("change", function () {
    $("pg-schema-field").hidden = this.value !== "json_schema";
  });

  function item(className, text) {
    var li = document.createElement("li");
    li.className = className;
    var box = className.indexOf("pg-answer") >= 0 ? document.createElement("div") : li;
    if (box !== li) { box.className = "pg-text"; li.appendChild(box); }
    box.textContent = text;
    return li;
  }

  // A loaded row's conversation: the chats are emptied and start with the row's turns before its
  // last user turn (the server does the same; see playground/consumers.py).
  function startFresh(model, prompt) {
    var col = column(model);
    if (!col) return;
    var list = col.querySelector(".pg-turns");
    list.textContent = "";
    prompt.slice(0, -1).forEach(function (turn) {
      if (turn.role === "system") {
        if (!turn.content) return;
        var li = item("pg-system", turn.content);
        var role = document.createElement("span");
        role.className = "role";
        role.textContent = "system";
        li.insertBefore(role, li.firstChild);
        list.appendChild(li);
      } else {
        list.appendChild(item(turn.role === "user" ? "pg-user" : "pg-answer pg-from-row", turn.content));
      }
    });
  }

  // At phone width the columns stay side by side and the n-th turn of every column gets the same
  // height, so each row of the page compares one turn (CSSOM styles: CSP allows them).
  var phone = window.matchMedia("(max-width: 600px)");
  function alignTurns() {
    var lists = Array.prototype.map.call(document.querySelectorAll(".pg-column .pg-turns"), function (l) { return l.children; });
    lists.forEach(function (items) { Array.prototype.forEach.call(items, function (li) { li.style.minHeight = ""; }); });
    if (!phone.matches) return;
    var longest = Math.max.apply(null, lists.map(function (items) { return items.length; }).concat([0]));
    for (var i = 0; i < longest; i++) {
      var height = 0;
      lists.forEach(function (items) { if (items[i]) height = Math.max(height, items[i].offsetHeight); });
      lists.forEach(function (items) { if (items[i]) items[i].style.minHeight = height + "px"; });
    }
  }
  if (phone.addEventListener) phone.addEventListener("change", alignTurns);
  window.addEventListener("resize", alignTurns);

  function addTurn(model, text) {
    var col = column(model);
    if (!col) return;
    var list = col.querySelector(".pg-turns");
    var user = document.createElement("li");
    user.className = "pg-user";
    user.textContent = text;
    list.appendChild(user);
    var answer = $("pg-answer-template").content.firstElementChild.cloneNode(true);
    list.appendChild(answer);
    current[model] = answer;
    answer.scrollIntoView({ block: "nearest" });
  }

  function onEvent(event) {
    handle(event);
    if (event.type !== "token" || phone.matches) alignTurns();
  }

  function handle(event) {
    var answer = current[event.model];
    switch (event.type) {
      case "ready": setState("connected", "ok"); break;
      case "start": setState("answering…", "live"); break;
      case "token":
        if (answer) answer.querySelector(".pg-text").textContent += event.text;
        break;
      case "done":
        if (!answer) break;
        answer.classList.remove("streaming");
        answer.dataset.log = event.log_id;
        answer.querySelector(".pg-text").textContent = event.text;
        answer.querySelector(".pg-stats").textContent =
          "TTFT " + fmt(event.ttft_ms, 0) + " ms · " + fmt(event.tokens_per_second, 1) + " tok/s · " +
          event.prompt_tokens + " prompt + " + event.completion_tokens + " completion tokens";
        answer.querySelector(".pg-feedback").hidden = false;
        if (settingsForm.elements.reward_version.value) answer.querySelector(".pg-score").textContent = "scoring…";
        break;
      case "score":
        if (!answer) break;
        var box = answer.querySelector(".pg-score");
        box.textContent = "";
        if (event.error) {
          var bad = document.createElement("span");
          bad.className = "bad";
          bad.textContent = "Reward error: " + event.error;
          box.appendChild(bad);
        } else {
          box.appendChild(document.createTextNode("Score "));
          var strong = document.createElement("strong");
          strong.textContent = fmt(event.score, 3);
          box.appendChild(strong);
          // Metric components are logged, not part of the score: labelled apart (as on the rollouts page).
          (event.components || []).forEach(function (c) {
            var metric = c.type === "Metric";
            box.appendChild(document.createTextNode(" · " + (metric ? "metric " : "") + c.name + (metric ? " = " : " ") + fmt(c.value, 2)));
          });
        }
        break;
      case "error":
        if (event.model !== undefined && answer) {
          answer.classList.remove("streaming");
          answer.classList.add("failed");
          answer.querySelector(".pg-text").textContent = event.message;
        } else {
          showError(event.message);
          if (busy && !Object.keys(current).length) setBusy(false);
        }
        break;
      case "finished":
        current = {};
        setBusy(false);
        setState("connected", "ok");
        break;
      case "feedback":
        document.querySelectorAll('.pg-answer[data-log="' + event.log_id + '"] .pg-feedback button').forEach(function (b) {
          b.setAttribute("aria-pressed", String(b.dataset.value === event.value));
        });
        break;
    }
  }

  function connect() {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + location.host + wsPath);
    socket.onopen = function () { attempt = 0; };
    socket.onmessage = function (message) { onEvent(JSON.parse(message.data)); };
    socket.onclose = function (event) {
      if (event.code === 4401 || event.code === 4404) {
        closedForGood = true;
        setState("closed: " + (event.code === 4401 ? "signed out" : "session not found"), "bad");
        return;
      }
      Object.keys(current).forEach(function (model) { current[model].classList.remove("streaming"); });
      current = {};
      setBusy(false);
      setState("reconnecting…", "warn");
      attempt += 1;
      setTimeout(connect, Math.min(10000, 500 * Math.pow(2, attempt)));
    };
  }

  function send() {
    var input = $("pg-input"), text = input.value;
    if (!text.trim() || busy || closedForGood) return;
    if (!socket || socket.readyState !== WebSocket.OPEN) { showError("Not connected yet: try again in a moment."); return; }
    showError("");
    var format = responseFormat();
    if (format === false) return;
    setBusy(true);
    current = {};
    var fresh = rowPrompt !== null;
    document.querySelectorAll(".pg-column").forEach(function (col) {
      if (fresh) startFresh(col.dataset.model, rowPrompt);
      addTurn(col.dataset.model, text);
    });
    var message = { type: "send", text: text, row: row, settings: settings() };
    if (fresh) message.fresh = true;
    if (format) message.response_format = format;
    rowPrompt = null; // follow-up messages continue the row's conversation
    socket.send(JSON.stringify(message));
    input.value = "";
  }

  $("pg-send").addEventListener("submit", function (event) { event.preventDefault(); send(); });
  $("pg-input").addEventListener("keydown", function (event) {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) { event.preventDefault(); send(); }
  });
  document.addEventListener("click", function (event) {
    var button = event.target.closest(".pg-feedback button");
    if (!button || !socket) return;
    var answer = button.closest(".pg-answer");
    var value = button.getAttribute("aria-pressed") === "true" ? "" : button.dataset.value;
    socket.send(JSON.stringify({ type: "feedback", log_id: Number(answer.dataset.log), value: value }));
  });

  function loadRow(index) {
    var dataset = settingsForm.elements.dataset.value;
    if (!dataset) { showError("Choose a dataset in Settings first."); return; }
    fetch(rowsUrl + "?dataset=" + encodeURIComponent(dataset) + "&index=" + index, { credentials: "same-origin" })
      .then(function (response) { return response.json(); })
      .then(function (found) {
        if (found.error) { showError(found.error); return; }
        showError("");
        row = found.row;
        rowPrompt = found.messages && found.messages.length ? found.messages : [{ role: "user", content: found.prompt }];
        $("pg-input").value = found.prompt;
        $("pg-row-index").value = found.index;
        $("pg-reference").hidden = false;
        $("pg-reference-source").textContent = found.dataset + ", row " + found.index;
        var ref = found.reference_answer;
        $("pg-reference-text").textContent = ref === null || ref === undefined ? "(no reference answer)" :
          (typeof ref === "string" ? ref : JSON.stringify(ref, null, 2));
      })
      .catch(function () { showError("Could not load the row."); });
  }
  $("pg-load-row").addEventListener("click", function () { loadRow($("pg-row-index").value || 0); });
  $("pg-random-row").addEventListener("click", function () {
    var option = settingsForm.elements.dataset.selectedOptions[0];
    var rows = option ? Number(option.dataset.rows || 0) : 0;
    loadRow(rows > 0 ? Math.floor(Math.random() * rows) : 0);
  });
  $("pg-clear-row").addEventListener("click", function () { row = null; rowPrompt = null; $("pg-reference").hidden = true; });
  $("pg-clear-form").addEventListener("submit", function (event) {
    if (busy) { event.preventDefault(); showError("Wait for the answers to this turn to finish."); }
  });
  alignTurns();

  setState("connecting…", "muted");
  connect();
})();
