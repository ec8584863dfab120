// Postbox portal: the one script (served from /portal/assets/, no inline
// script anywhere, so the CSP can say script-src 'self'). Everything here
// is progressive: the pages work without it, except the live tail.
"use strict";

// Times: the server writes UTC ISO 8601 in <time datetime>; show them in
// the viewer's time zone, keeping the exact value as a tooltip.
function localTimes(root) {
  root.querySelectorAll("time[datetime]").forEach(function (el) {
    var d = new Date(el.getAttribute("datetime"));
    if (isNaN(d)) return;
    el.textContent = d.toLocaleString();
    el.title = el.getAttribute("datetime");
  });
}

function onReady() {
  localTimes(document);

  // Forms that ask first (delete, pause, retry all).
  document.querySelectorAll("form[data-confirm]").forEach(function (f) {
    f.addEventListener("submit", function (e) {
      if (!window.confirm(f.getAttribute("data-confirm"))) e.preventDefault();
    });
  });

  // The secret: select on focus, copy on click.
  document.querySelectorAll("[data-select-on-focus]").forEach(function (el) {
    el.addEventListener("focus", function () { el.select(); });
  });
  document.querySelectorAll("button[data-copy]").forEach(function (b) {
    b.addEventListener("click", function () {
      var el = document.getElementById(b.getAttribute("data-copy"));
      if (!el) return;
      el.select();
      var done = function () { b.textContent = "Copied"; };
      if (navigator.clipboard) {
        navigator.clipboard.writeText(el.value).then(done, function () { document.execCommand("copy"); done(); });
      } else {
        document.execCommand("copy");
        done();
      }
    });
  });

  var tbody = document.getElementById("tail-rows");
  if (tbody) tail(tbody);
}

// The live tail: server-sent events, one "delivery" event per new row or
// changed outcome; rows are built with textContent (never innerHTML), so
// nothing a payload or receiver sent can become markup.
function tail(tbody) {
  var state = document.getElementById("tail-state");
  var empty = document.getElementById("tail-empty");
  var MAX_ROWS = 200;
  var es = new EventSource(tbody.getAttribute("data-stream"));
  es.onopen = function () { state.textContent = "Live: new deliveries appear here."; };
  es.onerror = function () { state.textContent = "Reconnecting…"; };
  es.addEventListener("delivery", function (msg) {
    var d;
    try { d = JSON.parse(msg.data); } catch (e) { return; }
    var id = "d-" + d.id;
    var row = document.getElementById(id);
    var fresh = !row;
    if (fresh) {
      row = document.createElement("tr");
      row.id = id;
    }
    row.textContent = "";
    var href = "/portal/endpoints/" + encodeURIComponent(d.webhookId) + "/deliveries/" + encodeURIComponent(d.id);
    var created = document.createElement("td");
    created.setAttribute("data-label", "Created");
    var a = document.createElement("a");
    a.href = href;
    var t = document.createElement("time");
    t.setAttribute("datetime", d.createdAt);
    t.textContent = d.createdAt;
    a.appendChild(t);
    created.appendChild(a);
    row.appendChild(created);
    var ev = document.createElement("td");
    ev.setAttribute("data-label", "Event");
    var code = document.createElement("code");
    code.textContent = d.eventType;
    ev.appendChild(code);
    row.appendChild(ev);
    var st = document.createElement("td");
    st.setAttribute("data-label", "Status");
    var badge = document.createElement("span");
    badge.className = "badge s-" + String(d.status).replace(/[^a-z]/g, "");
    badge.textContent = d.status;
    st.appendChild(badge);
    row.appendChild(st);
    var at = document.createElement("td");
    at.setAttribute("data-label", "Attempts");
    at.textContent = String(d.attempts);
    row.appendChild(at);
    var ans = document.createElement("td");
    ans.setAttribute("data-label", "Answer");
    ans.textContent = d.responseCode != null ? String(d.responseCode) : (d.errorMessage || "");
    row.appendChild(ans);
    localTimes(row);
    if (fresh) {
      tbody.insertBefore(row, tbody.firstChild);
      while (tbody.rows.length > MAX_ROWS) tbody.deleteRow(tbody.rows.length - 1);
    }
    if (empty) empty.hidden = true;
  });
}

if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", onReady);
} else {
  onReady();
}
