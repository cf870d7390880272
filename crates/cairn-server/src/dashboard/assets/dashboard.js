// Cairn dashboard: live updates and charts. No dependencies but uPlot.
(function () {
  "use strict";

  var REFRESH_MS = 5000;
  var pendingErrors = [];

  // Errors go into <div id="errors"> (tests read it from the DOM).
  function reportError(text) {
    var box = document.getElementById("errors");
    if (!box) {
      pendingErrors.push(text);
      return;
    }
    var line = document.createElement("div");
    line.textContent = text;
    box.appendChild(line);
  }
  window.onerror = function (message, source, line, column) {
    reportError(message + " (" + (source || "?") + ":" + line + ":" + column + ")");
  };
  window.addEventListener("unhandledrejection", function (e) {
    reportError("unhandled rejection: " + (e.reason && e.reason.stack ? e.reason.stack : e.reason));
  });

  // ------------------------------------------------------------ times --

  function pad(n) {
    return n < 10 ? "0" + n : "" + n;
  }
  function localTime(d) {
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " +
      pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
  }
  function localizeTimes(root) {
    var times = root.querySelectorAll("time[datetime]");
    for (var i = 0; i < times.length; i++) {
      var d = new Date(times[i].getAttribute("datetime"));
      if (!isNaN(d.getTime())) {
        times[i].title = times[i].getAttribute("datetime");
        times[i].textContent = localTime(d);
      }
    }
  }

  // ----------------------------------------------------- live regions --

  function setLive(ok) {
    var el = document.getElementById("live");
    if (!el) return;
    el.className = ok ? "live" : "live stale";
    el.textContent = ok ? "live" : "reconnecting";
  }

  function refreshRegions() {
    var regions = document.querySelectorAll("[data-live][id]");
    if (!regions.length) return Promise.resolve();
    return fetch(location.href, { headers: { Accept: "text/html" }, cache: "no-store" })
      .then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.text();
      })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var current = document.querySelectorAll("[data-live][id]");
        for (var i = 0; i < current.length; i++) {
          var old = current[i];
          if (!old.isConnected) continue;
          var fresh = doc.getElementById(old.id);
          if (!fresh || fresh.outerHTML === old.dataset.source) continue;
          var follow = old.hasAttribute("data-follow") &&
            old.scrollTop + old.clientHeight >= old.scrollHeight - 4;
          var node = document.importNode(fresh, true);
          node.dataset.source = fresh.outerHTML;
          localizeTimes(node);
          old.replaceWith(node);
          if (follow) node.scrollTop = node.scrollHeight;
        }
        setLive(true);
      })
      .catch(function () {
        setLive(false);
      });
  }

  function rememberSources() {
    var regions = document.querySelectorAll("[data-live][id]");
    for (var i = 0; i < regions.length; i++) {
      regions[i].dataset.source = regions[i].outerHTML;
    }
  }

  // ----------------------------------------------------------- charts --

  var PALETTE = ["#2f6fde", "#e8710a", "#1a7f37", "#a142f4", "#c62828", "#12a4af", "#9a6700"];
  var charts = {};

  function chartWidth(el) {
    return Math.max(240, el.clientWidth || (el.parentNode && el.parentNode.clientWidth) || 400);
  }

  // Draws (or updates) the chart in element `id`; `series` are uPlot
  // series options after the x axis; `data` is [xs, ys...].
  function draw(id, series, data, opts) {
    var el = document.getElementById(id);
    if (!el) return;
    var points = data[0].length;
    if (!points) {
      el.setAttribute("data-points", "0");
      return;
    }
    var key = JSON.stringify(series.map(function (s) { return s.label; })) + ((opts && opts.key) || "");
    var chart = charts[id];
    if (chart && chart.key === key) {
      chart.plot.setData(data);
    } else {
      if (chart) chart.plot.destroy();
      el.innerHTML = "";
      var options = {
        width: chartWidth(el),
        height: 220,
        series: [{}].concat(series),
        scales: (opts && opts.scales) || {},
        axes: (opts && opts.axes) || [{}, { size: 56 }],
        legend: { live: true },
        cursor: { points: { size: 6 } },
      };
      charts[id] = { key: key, plot: new uPlot(options, data, el) };
    }
    charts[id].plot.setScale("x", opts && opts.xRange ? opts.xRange(data[0]) : xRange(data[0], opts && opts.span));
    el.setAttribute("data-points", String(points));
  }

  // The x range: the data's, or at least `span` seconds ending at the
  // last point (a lone point is not stretched over a day).
  function xRange(xs, span) {
    var lo = xs[0];
    var hi = xs[xs.length - 1];
    span = span || 600;
    if (hi - lo < span) lo = hi - span;
    return { min: lo, max: hi + (hi - lo) * 0.02 };
  }

  function line(label, color, extra) {
    var s = { label: label, stroke: color, width: 2, points: { size: 5 }, spanGaps: false };
    if (extra) for (var k in extra) s[k] = extra[k];
    return s;
  }

  function fmt(digits, unit) {
    return function (u, v) {
      return v == null ? "—" : v.toFixed(digits) + (unit || "");
    };
  }

  function getJSON(url) {
    return fetch(url, { cache: "no-store" }).then(function (r) {
      if (!r.ok) throw new Error("GET " + url + ": HTTP " + r.status);
      return r.json();
    });
  }

  // `api` is the model's API route, `/api/v1/[projects/P/]models/NAME`.
  function drawTraffic(api) {
    return getJSON(api + "/metrics").then(function (body) {
      var pts = body.series || [];
      var xs = pts.map(function (p) { return Date.parse(p.time) / 1000; });
      var col = function (k) { return pts.map(function (p) { return p[k]; }); };
      draw("chart-throughput", [line("requests/s", PALETTE[0], { fill: "rgba(47,111,222,0.08)", value: fmt(2) })],
        [xs, col("throughput")]);
      // Intervals without requests have no latency.
      var lat = function (k) {
        return pts.map(function (p) { return p.requests > 0 ? p[k] : null; });
      };
      draw("chart-latency", [
        line("p50", PALETTE[2], { value: fmt(2, " ms") }),
        line("p95", PALETTE[1], { value: fmt(2, " ms") }),
        line("p99", PALETTE[4], { value: fmt(2, " ms") }),
      ], [xs, lat("p50Ms"), lat("p95Ms"), lat("p99Ms")]);
      draw("chart-errors", [
        line("errors", PALETTE[4], { fill: "rgba(198,40,40,0.08)", value: fmt(0) }),
        line("requests", "#9aa4af", { width: 1, value: fmt(0) }),
      ], [xs, col("errors"), col("requests")]);
      // CPU (cores) and memory (MiB) of the model's processes; GPU
      // utilization (%) when its replicas hold GPUs.
      var mib = pts.map(function (p) { return p.memoryBytes == null ? null : p.memoryBytes / 1048576; });
      var series = [
        line("CPU", PALETTE[0], { scale: "cores", value: fmt(2, " cores") }),
        line("memory", PALETTE[2], { scale: "MiB", value: fmt(0, " MiB") }),
      ];
      var data = [xs, col("cpuCores"), mib];
      var axes = [
        {},
        { scale: "cores", size: 56, label: "cores" },
        { scale: "MiB", side: 1, size: 64, label: "MiB", grid: { show: false } },
      ];
      if (pts.some(function (p) { return p.gpuUtilization != null; })) {
        series.push(line("GPU", PALETTE[4], { scale: "%", value: fmt(0, "%") }));
        series.push(line("GPU memory", PALETTE[1], { scale: "MiB", dash: [4, 4], value: fmt(0, " MiB") }));
        data.push(col("gpuUtilization"), pts.map(function (p) {
          return p.gpuMemoryBytes == null ? null : p.gpuMemoryBytes / 1048576;
        }));
        axes.push({ scale: "%", side: 1, size: 48, label: "GPU %", grid: { show: false } });
      }
      draw("chart-resources", series, data, {
        scales: { cores: { range: function (u, lo, hi) { return [0, Math.max(hi || 0, 0.1) * 1.1]; } },
                  "%": { range: [0, 100] } },
        axes: axes,
      });
    });
  }

  var RANGES = { "1h": 3600, "6h": 21600, "24h": 86400, "7d": 604800 };

  function drawQuality(api) {
    var select = document.getElementById("quality-range");
    var choice = (select ? select.value : "6h:5m").split(":");
    var from = new Date(Date.now() - RANGES[choice[0]] * 1000).toISOString();
    var url = api + "/metrics/aggregate?window=" +
      encodeURIComponent(choice[1]) + "&from=" + encodeURIComponent(from);
    return getJSON(url).then(function (body) {
      var regression = body.task === "regression";
      var metric = regression ? "mae" : "accuracy";
      var windows = (body.windows || []).filter(function (w) { return w.version != null; });
      var times = {};
      var versions = {};
      windows.forEach(function (w) {
        times[Date.parse(w.start) / 1000] = true;
        versions[w.version] = true;
      });
      var xs = Object.keys(times).map(Number).sort(function (a, b) { return a - b; });
      var vs = Object.keys(versions).sort(function (a, b) { return Number(a) - Number(b); });
      var index = {};
      xs.forEach(function (x, i) { index[x] = i; });
      var series = [];
      var data = [xs];
      vs.forEach(function (v, n) {
        var m = xs.map(function () { return null; });
        var c = xs.map(function () { return null; });
        windows.forEach(function (w) {
          if (w.version !== v) return;
          var i = index[Date.parse(w.start) / 1000];
          if (typeof w[metric] === "number") m[i] = w[metric];
          if (typeof w.coverage === "number") c[i] = w.coverage * 100;
        });
        var color = PALETTE[n % PALETTE.length];
        series.push(line((regression ? "MAE" : "accuracy") + " v" + v, color,
          { scale: "y", value: fmt(3) }));
        series.push(line("coverage v" + v, color,
          { scale: "%", dash: [4, 4], width: 1.5, value: fmt(1, "%") }));
        data.push(m, c);
      });
      draw("chart-accuracy", series, data, {
        span: RANGES[choice[0]],
        scales: regression ? { "%": { range: [0, 100] } } : { y: { range: [0, 1] }, "%": { range: [0, 100] } },
        axes: [
          {},
          { scale: "y", size: 56, label: regression ? "MAE" : "accuracy" },
          { scale: "%", side: 1, size: 56, label: "coverage %", grid: { show: false },
            values: function (u, vals) { return vals.map(function (v) { return v + "%"; }); } },
        ],
      });
    });
  }

  function drawDrift(api) {
    var el = document.getElementById("chart-drift");
    if (!el) return Promise.resolve();
    var to = Date.now() + 1000;
    var url = api + "/drift?from=" + encodeURIComponent(new Date(to - 7 * 86400000).toISOString()) +
      "&to=" + encodeURIComponent(new Date(to).toISOString());
    return getJSON(url).then(function (body) {
      var verdicts = (body.verdicts || []).filter(function (v) { return typeof v.score === "number"; });
      var xs = verdicts.map(function (v) { return v.timeMs / 1000; });
      var names = [];
      verdicts.forEach(function (v) {
        v.features.forEach(function (f) { if (names.indexOf(f.feature) < 0) names.push(f.feature); });
      });
      var series = [line("overall", "#222", { width: 2.5, value: fmt(3) })];
      var data = [xs, verdicts.map(function (v) { return v.score; })];
      names.forEach(function (name, n) {
        series.push(line(name, PALETTE[n % PALETTE.length], { width: 1.5, value: fmt(3) }));
        data.push(verdicts.map(function (v) {
          var f = v.features.filter(function (f) { return f.feature === name; })[0];
          return f ? f.score : null;
        }));
      });
      if (typeof body.threshold === "number") {
        series.push(line("threshold", "#c33", { dash: [6, 4], width: 1, value: fmt(3) }));
        data.push(xs.map(function () { return body.threshold; }));
      }
      draw("chart-drift", series, data, { span: 7 * 86400 });
    });
  }

  // ------------------------------------------------------ experiments --

  // The runs checked in the runs table: [{id, name}].
  function selectedRuns() {
    var boxes = document.querySelectorAll("input.run-select:checked");
    var out = [];
    for (var i = 0; i < boxes.length; i++) {
      out.push({ id: boxes[i].value, name: boxes[i].getAttribute("data-name") || boxes[i].value });
    }
    return out;
  }

  // The steps' range, padded (a lone step is not drawn at the edge).
  function stepRange(xs) {
    var lo = xs[0];
    var hi = xs[xs.length - 1];
    var pad = Math.max(1, (hi - lo) * 0.03);
    return { min: lo - pad, max: hi + pad };
  }

  function clearChart(id, text) {
    var el = document.getElementById(id);
    if (!el) return;
    if (charts[id]) {
      charts[id].plot.destroy();
      delete charts[id];
    }
    el.innerHTML = "";
    var p = document.createElement("p");
    p.className = "placeholder";
    p.textContent = text;
    el.appendChild(p);
    el.setAttribute("data-points", "0");
    el.setAttribute("data-series", "0");
  }

  // The chosen metric's history in each selected run, by step.
  function drawHistory() {
    var select = document.getElementById("metric-select");
    var metric = select ? select.value : "";
    var runs = selectedRuns();
    if (!metric || !runs.length) {
      clearChart("chart-history", "Select runs and a metric.");
      return Promise.resolve();
    }
    return Promise.all(runs.map(function (r) {
      return getJSON("/api/v1/experiments/runs/" + encodeURIComponent(r.id) +
        "/metrics/" + encodeURIComponent(metric));
    })).then(function (histories) {
      var steps = {};
      histories.forEach(function (h) {
        h.points.forEach(function (p) { steps[p.step] = true; });
      });
      var xs = Object.keys(steps).map(Number).sort(function (a, b) { return a - b; });
      if (!xs.length) {
        clearChart("chart-history", "The selected runs have no " + metric + ".");
        return;
      }
      var index = {};
      xs.forEach(function (x, i) { index[x] = i; });
      var series = [];
      var data = [xs];
      histories.forEach(function (h, n) {
        var ys = xs.map(function () { return null; });
        // Oldest first: a step logged twice shows its latest value.
        h.points.forEach(function (p) { ys[index[p.step]] = p.value; });
        series.push(line(runs[n].name, PALETTE[n % PALETTE.length], { spanGaps: true, value: fmt(4) }));
        data.push(ys);
      });
      draw("chart-history", series, data, {
        key: metric,
        xRange: stepRange,
        scales: { x: { time: false } },
        // Steps are whole numbers.
        axes: [{ label: "step", incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 1e4, 1e5, 1e6] },
               { size: 64, label: metric }],
      });
      var el = document.getElementById("chart-history");
      if (el) el.setAttribute("data-series", String(series.length));
    });
  }

  // Keeps the selection and the metric in the URL (so that reloads and
  // the live refresh keep them), in the filter form and the sort links,
  // and marks the selected runs' lines in the sweeps' views.
  function syncSelection() {
    var ids = selectedRuns().map(function (r) { return r.id; }).join(",");
    var select = document.getElementById("metric-select");
    var metric = select ? select.value : "";
    var withSelection = function (href) {
      var u = new URL(href, location.href);
      u.searchParams.set("runs", ids);
      if (metric) u.searchParams.set("metric", metric);
      return u.pathname + u.search + u.hash;
    };
    history.replaceState(null, "", withSelection(location.href));
    var hidden = document.getElementById("selected-runs");
    if (hidden) hidden.value = ids;
    var chosenMetric = document.getElementById("selected-metric");
    if (chosenMetric) chosenMetric.value = metric;
    var links = document.querySelectorAll("a.sort");
    for (var i = 0; i < links.length; i++) {
      links[i].setAttribute("href", withSelection(links[i].getAttribute("href")));
    }
    var chosen = {};
    ids.split(",").forEach(function (id) { chosen[id] = true; });
    var lines = document.querySelectorAll("svg.pcoords polyline[data-run]");
    for (var j = 0; j < lines.length; j++) {
      lines[j].classList.toggle("selected", chosen[lines[j].getAttribute("data-run")] === true);
    }
  }

  // A sweep line clicked: its run's checkbox toggled.
  function toggleRunOf(lineEl) {
    var id = lineEl.getAttribute("data-run");
    var boxes = document.querySelectorAll("input.run-select");
    for (var i = 0; i < boxes.length; i++) {
      if (boxes[i].value === id) {
        boxes[i].checked = !boxes[i].checked;
        boxes[i].dispatchEvent(new Event("change", { bubbles: true }));
        return;
      }
    }
  }

  function drawCharts() {
    if (typeof uPlot === "undefined") return Promise.resolve();
    var page = document.getElementById("model-page");
    var jobs = [];
    if (page) {
      var api = page.getAttribute("data-api");
      jobs.push(drawTraffic(api), drawQuality(api), drawDrift(api));
    }
    if (document.getElementById("experiment-page")) jobs.push(drawHistory());
    if (!jobs.length) return Promise.resolve();
    return Promise.all(jobs).then(
      function () { setLive(true); },
      function (e) {
        // A model that went away or a server that restarted: not a bug.
        setLive(false);
        if (!(e instanceof TypeError) && !/HTTP/.test(String(e && e.message))) throw e;
      }
    );
  }

  function resizeCharts() {
    for (var id in charts) {
      var el = document.getElementById(id);
      if (el) charts[id].plot.setSize({ width: chartWidth(el), height: 220 });
    }
  }

  // ------------------------------------------------------------- start --

  function tick() {
    if (document.hidden) return;
    refreshRegions();
    drawCharts();
  }

  // ------------------------------------------------------------ who --

  // Who is signed in, and a sign-out button (its POST repeats the
  // session's CSRF token, as every state-changing request must).
  function showWho() {
    var who = document.getElementById("who");
    if (!who) return;
    fetch("/api/v1/whoami", { cache: "no-store" }).then(function (r) {
      return r.ok ? r.json() : null;
    }).then(function (me) {
      if (!me) return;
      var name = document.createElement("span");
      name.textContent = me.subject.replace(/^(user|token):/, "");
      who.appendChild(name);
      if (!me.csrfToken) return;
      var out = document.createElement("button");
      out.type = "button";
      out.textContent = "Sign out";
      out.addEventListener("click", function () {
        fetch("/logout", {
          method: "POST",
          headers: {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-CSRF-Token": me.csrfToken
          },
          body: "csrf=" + encodeURIComponent(me.csrfToken)
        }).then(function () { location.href = "/login"; });
      });
      who.appendChild(out);
    }).catch(function () {});
  }

  document.addEventListener("DOMContentLoaded", function () {
    pendingErrors.splice(0).forEach(reportError);
    showWho();
    rememberSources();
    localizeTimes(document);
    drawCharts();
    var select = document.getElementById("quality-range");
    if (select) {
      select.addEventListener("change", function () {
        drawQuality(document.getElementById("model-page").getAttribute("data-api"));
      });
    }
    // The experiment page: delegated, as the live refresh replaces the table.
    document.addEventListener("change", function (e) {
      var t = e.target;
      if (t && t.matches && (t.matches("input.run-select") || t.id === "metric-select")) {
        syncSelection();
        drawHistory().catch(function (err) { reportError(String(err && err.message || err)); });
      }
    });
    document.addEventListener("click", function (e) {
      var t = e.target;
      if (t && t.matches && t.matches("svg.pcoords polyline[data-run]")) toggleRunOf(t);
    });
    window.addEventListener("resize", resizeCharts);
    setInterval(tick, REFRESH_MS);
  });
})();
