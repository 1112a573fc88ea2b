// chatload's Chat tab: live charts above the tab's table, in the manner of Locust's Charts tab.
// Data: ./chat/series (per-second rows merged across every process). No other network access.
(function () {
  "use strict";
  var rows = {};          // t (epoch seconds) -> row
  var lastT = 0;
  var CHARTS = [
    {id: "chat-latency", title: "Delivery and ack latency (ms)", traces: function (r) {
      return [
        line(r, "delivery p50", function (x) { return x.delivery && x.delivery.p50_us / 1000; }),
        line(r, "delivery p99", function (x) { return x.delivery && x.delivery.p99_us / 1000; }),
        line(r, "ack p50", function (x) { return x.ack && x.ack.p50_us / 1000; }),
        line(r, "ack p99", function (x) { return x.ack && x.ack.p99_us / 1000; })];
    }},
    {id: "chat-deliveries", title: "Deliveries per second", traces: function (r) {
      return [line(r, "deliveries/s", function (x) { return x.deliveries || 0; })];
    }},
    {id: "chat-connections", title: "Connections open and held", traces: function (r) {
      // "users" counts sessions: with listener pools one Locust user holds many of them.
      return [line(r, "connections open", function (x) { return x.connections_open || 0; }),
              line(r, "connections held", function (x) { return x.users || 0; })];
    }},
    {id: "chat-errors", title: "Errors and rejections per second, by category", traces: function (r) {
      var categories = {};
      r.forEach(function (x) { Object.keys(x.rejected || {}).forEach(function (c) { categories[c] = 1; }); });
      return [line(r, "errors (all kinds)", function (x) { return x.errors || 0; })].concat(
        Object.keys(categories).sort().map(function (c) {
          return line(r, "rejected: " + c, function (x) { return (x.rejected || {})[c] || 0; });
        }));
    }}
  ];

  function line(r, name, value) {
    return {type: "scatter", mode: "lines", name: name, hovertemplate: "%{y:.3~f}<extra>" + name + "</extra>",
            x: r.map(function (x) { return new Date(x.t * 1000); }), y: r.map(value)};
  }

  function chatTabActive() {
    var tab = document.querySelector('[role="tab"][aria-selected="true"]');
    return !!tab && tab.textContent.trim() === "Chat";
  }

  function anchor() {  // the Chat table: its header row has a cell "Measure"
    var cells = document.querySelectorAll("th");
    for (var i = 0; i < cells.length; i++) {
      if (cells[i].textContent.trim() === "Measure") {
        var table = cells[i].closest("table");
        return table && (table.parentElement || table);
      }
    }
    return null;
  }

  function container() {
    var box = document.getElementById("chatload-charts");
    var table = anchor();
    if (!table) { return box; }
    if (!box) {
      box = document.createElement("div");
      box.id = "chatload-charts";
      box.style.cssText = "display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:12px;" +
                          "margin:8px 0 16px";
      CHARTS.forEach(function (chart) {
        var div = document.createElement("div");
        div.id = chart.id;
        div.setAttribute("data-chart", chart.id);
        div.style.cssText = "min-height:280px;border:1px solid rgba(128,128,128,.3);border-radius:8px";
        box.appendChild(div);
      });
    }
    if (box.nextSibling !== table) { table.parentElement.insertBefore(box, table); }
    return box;
  }

  function draw() {
    var box = container();
    if (!box) { return; }
    box.style.display = chatTabActive() ? "grid" : "none";
    if (!chatTabActive() || typeof Plotly === "undefined") { return; }
    var series = Object.keys(rows).map(Number).sort(function (a, b) { return a - b; })
                       .map(function (t) { return rows[t]; });
    var color = getComputedStyle(document.body).color || "#333";
    CHARTS.forEach(function (chart) {
      var div = document.getElementById(chart.id);
      var traces = chart.traces(series);
      Plotly.react(div, traces, {
        title: {text: chart.title, x: 0.02, font: {size: 14}}, height: 280,
        margin: {l: 50, r: 16, t: 40, b: 36}, paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
        font: {color: color}, xaxis: {type: "date", gridcolor: "rgba(128,128,128,.2)"},
        yaxis: {rangemode: "tozero", gridcolor: "rgba(128,128,128,.2)"},
        legend: {orientation: "h", y: -0.2}, showlegend: traces.length > 1
      }, {displayModeBar: false, responsive: true});
      div.setAttribute("data-points", String(series.length));
    });
  }

  function poll() {
    fetch("./chat/series?since=" + Math.max(0, lastT - 3))
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (body) {
        if (body) {
          body.rows.forEach(function (row) { rows[row.t] = row; lastT = Math.max(lastT, row.t); });
        }
        draw();
      })
      .catch(function () { /* the UI is stopping or restarting: try again next second */ })
      .then(function () { setTimeout(poll, 1000); });
  }

  poll();
})();
