"use strict";
// The setup page: reads /setup/api/state and calls the state-changing routes with the
// session's CSRF token in a header. No inline script; the page works with keyboard alone.
(function () {
  var csrf = "";
  var counts = { users: 0, groups: 0 };
  var searched = "";
  var api = "/setup/api/";

  function $(id) { return document.getElementById(id); }

  function say(id, text) {
    var el = $(id);
    el.textContent = "";
    // A fresh text node so screen readers announce a repeated message again.
    window.setTimeout(function () { el.textContent = text; }, 50);
  }

  function problem(text) {
    var el = $("problem");
    el.textContent = text;
    el.hidden = !text;
  }

  function call(method, path, body) {
    var options = { method: method, credentials: "same-origin", headers: {} };
    if (method !== "GET") {
      options.headers["X-Setup-CSRF"] = csrf;
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body || {});
    }
    return fetch(api + path, options).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (doc) {
        if (response.status === 401) {
          problem("Your setup session has ended. Ask your provider for a new setup link.");
          throw new Error("session");
        }
        if (!response.ok) {
          problem(doc.detail || "The request failed; try again.");
          throw new Error(doc.error || "failed");
        }
        problem("");
        return doc;
      });
    });
  }

  function when(stamp) {
    if (!stamp) { return "—"; }
    var date = new Date(stamp);
    return isNaN(date.getTime()) ? stamp : date.toLocaleString();
  }

  function render(state) {
    csrf = state.csrf;
    $("loading").hidden = true;
    $("tenant-name").textContent = state.tenant.name + " (" + state.tenant.id + ")";
    $("enabled").textContent = state.tenant.enabled ? "On" : "Off";
    var toggle = $("toggle");
    toggle.hidden = !state.allowToggle;
    toggle.textContent = state.tenant.enabled ? "Turn provisioning off" : "Turn provisioning on";
    toggle.dataset.enabled = state.tenant.enabled ? "true" : "false";
    $("users").textContent = String(state.counts.users);
    $("groups").textContent = String(state.counts.groups);
    $("tenant-url").value = state.tenantUrl || "";
    $("url-missing").hidden = !!state.tenantUrl;
    var rows = $("versions");
    rows.textContent = "";
    var valid = 0;
    state.tokens.forEach(function (token) {
      var tr = document.createElement("tr");
      [token.version.slice(0, 12), when(token.created),
       token.lastUsed ? when(token.lastUsed) : "Not used yet",
       token.valid ? "Accepted" : (token.enabled ? "Not yet valid or expired" : "Retired")
      ].forEach(function (text) {
        var td = document.createElement("td");
        td.textContent = text;
        tr.appendChild(td);
      });
      rows.appendChild(tr);
      if (token.valid) { valid += 1; }
    });
    $("versions-empty").hidden = state.tokens.length > 0;
    $("retire").disabled = valid < 2;
    $("token-summary").textContent = valid === 0
      ? "No token is accepted yet: generate one, then paste it into Entra."
      : valid + (valid === 1 ? " token is" : " tokens are") + " accepted now" +
        (valid > 1 ? ": retire the previous one once Entra's Test Connection succeeds." : ".");
    counts = state.counts;
    ["status-card", "credentials", "health", "activity"].forEach(function (id) {
      $(id).hidden = false;
    });
  }

  function load() {
    return call("GET", "state").then(render).then(function () {
      return loadActivity(searched);
    });
  }

  function loadActivity(name) {
    searched = name;
    var query = name ? "?name=" + encodeURIComponent(name) : "";
    return call("GET", "activity" + query).then(renderActivity);
  }

  function provisioned() {
    var total = counts.users + counts.groups;
    return total === 0
      ? "Nothing provisioned yet. After Test Connection succeeds and you start provisioning, " +
        "the users and groups Entra sends are counted here."
      : "Entra has provisioned " + counts.users + (counts.users === 1 ? " user" : " users") +
        " and " + counts.groups + (counts.groups === 1 ? " group" : " groups") + " so far.";
  }

  function cell(row, text) {
    var td = document.createElement("td");
    td.textContent = text;
    row.appendChild(td);
  }

  function renderHealth(health) {
    $("health-facts").hidden = !health.seen;
    if (!health.seen) {
      $("health-summary").textContent = "Waiting for Entra's first call: paste the Tenant " +
        "URL and Secret Token into Entra and select Test Connection.";
      $("failure-reason").hidden = true;
      return;
    }
    $("first-call").textContent = when(health.firstRequest);
    $("last-success").textContent = when(health.lastSuccess);
    $("last-failure").textContent = health.lastAuthFailure ? when(health.lastAuthFailure)
      : "None";
    var refusedLast = health.lastAuthFailure &&
      (!health.lastSuccess || health.lastAuthFailure > health.lastSuccess);
    $("health-summary").textContent = refusedLast
      ? "Entra's last call was refused: check the Secret Token in Entra."
      : (health.lastSuccess ? "Connected: Entra's calls succeed." : "Entra has called, " +
        "but no call has succeeded yet.");
    $("failure-reason").hidden = !health.lastAuthFailureReason;
    $("failure-reason").textContent = health.lastAuthFailureReason
      ? "Last refusal: " + health.lastAuthFailureReason : "";
  }

  function renderChart(hours) {
    var chart = $("chart");
    chart.textContent = "";
    var byHour = {};
    var most = 1;
    var total = { requests: 0, ok: 0, bad: 0, err: 0 };
    hours.forEach(function (h) {
      byHour[h.hour] = h;
      most = Math.max(most, h.requests);
      total.requests += h.requests;
      total.ok += h["2xx"];
      total.bad += h["4xx"];
      total.err += h["5xx"];
    });
    var now = new Date();
    now.setUTCMinutes(0, 0, 0);
    for (var i = 71; i >= 0; i -= 1) {
      var at = new Date(now.getTime() - i * 3600 * 1000).toISOString().slice(0, 13) + ":00Z";
      var h = byHour[at] || { "2xx": 0, "4xx": 0, "5xx": 0 };
      var bar = document.createElement("div");
      bar.className = "bar";
      [["ok", h["2xx"]], ["bad", h["4xx"]], ["err", h["5xx"]]].forEach(function (part) {
        if (part[1] > 0) {
          var span = document.createElement("span");
          span.className = part[0];
          span.style.height = (100 * part[1] / most) + "%";
          bar.appendChild(span);
        }
      });
      chart.appendChild(bar);
    }
    $("chart-summary").textContent = total.requests + " requests in the last 3 days: " +
      total.ok + " succeeded, " + total.bad + " refused or invalid, " + total.err +
      " server errors.";
    return total.requests;
  }

  function renderActivity(doc) {
    if (!doc.enabled) {
      $("health-summary").textContent = "";
      $("activity-empty").textContent = provisioned();
      $("activity-body").hidden = true;
      return;
    }
    renderHealth(doc.health);
    var requests = renderChart(doc.hours);
    $("activity-empty").textContent = requests === 0
      ? "No requests from Entra in the last 3 days. " + provisioned() : provisioned();
    $("activity-body").hidden = requests === 0 && !doc.name;
    var rows = $("failures");
    rows.textContent = "";
    doc.failures.forEach(function (f) {
      var tr = document.createElement("tr");
      cell(tr, when(f.time));
      cell(tr, f.operation || "");
      cell(tr, String(f.status));
      cell(tr, f.userName || f.displayName || f.externalId || "—");
      cell(tr, (f.scimType ? f.scimType + ": " : "") + (f.detail || f.outcome || ""));
      rows.appendChild(tr);
    });
    $("failures-empty").textContent = doc.failures.length ? "" : (doc.name
      ? "No failures naming “" + doc.name + "”." : "No failures. ");
  }

  function copy(id) {
    var input = $(id);
    var text = input.value;
    if (!text) { return; }
    var done = function () { say("copy-status", "Copied to the clipboard."); };
    var fallback = function () {
      input.focus();
      input.select();
      var ok = false;
      try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
      say("copy-status", ok ? "Copied to the clipboard."
        : "Selected: press Ctrl+C (or ⌘C) to copy.");
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, fallback);
    } else {
      fallback();
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll("button.copy"), function (button) {
      button.addEventListener("click", function () { copy(button.dataset.copy); });
    });
    $("generate").addEventListener("click", function () {
      var button = $("generate");
      button.disabled = true;
      call("POST", "tokens").then(function (doc) {
        $("token").value = doc.token;
        $("new-token").hidden = false;
        $("overlap").textContent = doc.previousValid
          ? "Your previous token keeps working until you retire it."
          : "This is the only accepted token.";
        say("token-status", "A new Secret Token was generated. Copy it now: it is shown once.");
        $("token").focus();
        $("token").select();
        return load();
      }).catch(function () {}).then(function () { button.disabled = false; });
    });
    $("retire").addEventListener("click", function () {
      call("POST", "tokens/retire").then(function (doc) {
        say("token-status", doc.disabled
          ? "The previous token was retired; only the newest one is accepted."
          : "There was no previous token to retire.");
        return load();
      }).catch(function () {});
    });
    $("toggle").addEventListener("click", function () {
      var on = $("toggle").dataset.enabled !== "true";
      call("POST", "provisioning", { enabled: on }).then(function (doc) {
        say("toggle-status", doc.enabled ? "Provisioning is on." : "Provisioning is off.");
        return load();
      }).catch(function () {});
    });
    $("refresh").addEventListener("click", function () { load().catch(function () {}); });
    $("search").addEventListener("submit", function (event) {
      event.preventDefault();
      loadActivity($("search-name").value.trim()).catch(function () {});
    });
    $("signout").addEventListener("click", function () {
      call("POST", "signout").then(function () {
        problem("You signed out. Ask your provider for a new setup link to come back.");
        ["status-card", "credentials", "health", "activity"].forEach(function (id) {
          $(id).hidden = true;
        });
      }).catch(function () {});
    });
    load().catch(function () { $("loading").hidden = true; });
  });
}());
