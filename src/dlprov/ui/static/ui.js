// dlprov ui: curves (uPlot), lineage graphs (cytoscape + dagre), small page behaviours.
// Every value from the store reaches the page as text (textContent, canvas labels): never as
// HTML. The page's data is the JSON in <script id="page-data">.
"use strict";

(function () {
  const base = document.body.dataset.base || "";
  const pageData = JSON.parse(document.getElementById("page-data").textContent || "null");
  const POLL_MS = 1000;
  const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
                  "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"];

  function api(path) {
    return fetch(base + path, {credentials: "same-origin", headers: {accept: "application/json"}})
      .then(r => r.ok ? r.json() : r.json().then(e => Promise.reject(new Error(e.detail))));
  }

  function smooth(ys, alpha) {  // exponential moving average, as TensorBoard's slider
    if (!alpha) return ys;
    let last = null;
    return ys.map(y => {
      if (y == null) return y;
      last = last == null ? y : last * alpha + y * (1 - alpha);
      return last;
    });
  }

  // -- one chart per metric, one line per series --------------------------------------
  function chart(host, title, xs, lines, opts) {
    const box = document.createElement("div");
    box.className = "chart";
    box.dataset.metric = title;
    host.appendChild(box);
    const data = [xs, ...lines.map(l => smooth(l.y, opts.smooth))];
    const series = [{label: opts.xLabel || "x"},
                    ...lines.map((l, i) => ({label: l.label, stroke: COLORS[i % COLORS.length],
                                             width: 1.5, spanGaps: true}))];
    const plot = new uPlot({title: title, width: 400,
                            height: 220, series: series,
                            scales: {x: {time: false}, y: opts.log ? {distr: 3} : {}}},
                           data, box);
    plot.raw = lines;
    return plot;
  }

  // -- the run page: curves that grow while the run trains -------------------------------
  function runCurves() {
    const host = document.getElementById("curves");
    if (!host) return;
    const run = host.dataset.run;
    const setSel = document.getElementById("curve-set");
    const logBox = document.getElementById("curve-log");
    const smoothBox = document.getElementById("curve-smooth");
    let state = null;
    let timer = null;

    function draw() {
      host.textContent = "";
      const plots = {};
      let total = 0;
      for (const [name, s] of Object.entries(state.series)) {
        total += s.x.length;
        plots[name] = chart(host, name, s.x, [{label: name, y: s.y}],
                            {log: logBox.checked, smooth: +smoothBox.value,
                             xLabel: state.order});
      }
      host.dataset.points = String(total);
      document.getElementById("curve-points").textContent =
        total + " points" + (state.status === "running" ? " · live" : "");
      window.dlprovCurves = plots;
    }

    function merge(found) {
      for (const [name, s] of Object.entries(found.series)) {
        const had = state.series[name];
        if (had) { had.x.push(...s.x); had.y.push(...s.y); } else state.series[name] = s;
      }
      state.last_id = found.last_id;
      state.status = found.status;
    }

    function poll() {
      const q = `?set=${encodeURIComponent(setSel.value)}&after=${state.last_id}`;
      api(`/api/runs/${encodeURIComponent(run)}/series${q}`).then(found => {
        const grew = Object.values(found.series).some(s => s.x.length);
        merge(found);
        if (grew) draw();
        document.getElementById("run-status").textContent = found.status;
        if (found.status === "running") timer = setTimeout(poll, POLL_MS);
      }).catch(() => { timer = setTimeout(poll, POLL_MS * 5); });
    }

    function load() {
      clearTimeout(timer);
      api(`/api/runs/${encodeURIComponent(run)}/series?set=${encodeURIComponent(setSel.value)}`)
        .then(found => {
          state = found;
          draw();
          if (found.status === "running") timer = setTimeout(poll, POLL_MS);
        }).catch(e => { host.textContent = e.message; });
    }
    if (!setSel.value) { host.textContent = "no set with metrics"; return; }
    setSel.addEventListener("change", load);
    logBox.addEventListener("change", () => state && draw());
    smoothBox.addEventListener("input", () => state && draw());
    load();
  }

  // -- the compare page: every run's curves overlaid, and the differences toggle --------
  function compareCurves() {
    const host = document.getElementById("overlay");
    const toggle = document.getElementById("show-all");
    if (toggle) {
      toggle.addEventListener("change", () => {
        document.getElementById("compare").classList.toggle("only-differences", !toggle.checked);
      });
    }
    if (!host) return;
    const runs = host.dataset.runs.split(",").filter(Boolean);
    const labels = pageData.labels;
    const differing = (pageData.sections.hyperparameters || []).filter(r => r.differs);
    const logBox = document.getElementById("curve-log");
    const smoothBox = document.getElementById("curve-smooth");
    let found = null;

    function draw() {
      host.textContent = "";
      const metrics = [...new Set(found.flatMap(f => Object.keys(f.series)))];
      const plots = {};
      for (const metric of metrics) {
        const xs = [...new Set(found.flatMap(f => (f.series[metric] || {x: []}).x))]
          .sort((a, b) => a - b);
        const at = new Map(xs.map((x, i) => [x, i]));
        const lines = found.map((f, i) => {
          const y = new Array(xs.length).fill(null);
          const s = f.series[metric];
          if (s) s.x.forEach((x, j) => { y[at.get(x)] = s.y[j]; });
          // the legend names each run by its differing hyperparameters
          const why = differing.map(r => `${r.name.split(".").pop()}=${r.values[i]}`).join(" ");
          return {label: labels[i] + (why ? ` (${why})` : ""), y: y};
        });
        plots[metric] = chart(host, metric, xs, lines, {log: logBox.checked,
                                                        smooth: +smoothBox.value});
      }
      host.dataset.series = String(Object.values(plots).reduce((n, p) => n + p.raw.length, 0));
      window.dlprovCurves = plots;
    }
    Promise.all(runs.map(r => api(`/api/runs/${encodeURIComponent(r)}/series?set=otrain`)
      .catch(() => ({series: {}})))).then(all => { found = all; draw(); });
    logBox.addEventListener("change", () => found && draw());
    smoothBox.addEventListener("input", () => found && draw());
  }

  // -- lineage graphs ----------------------------------------------------------------------
  function details(panel, node) {
    panel.textContent = "";
    const h = document.createElement("h3");
    h.textContent = `${node.kind} ${node.label}` + (node.count ? ` (${node.count} elements)` : "");
    panel.appendChild(h);
    const link = document.createElement("a");
    link.href = "#" + encodeURIComponent(node.id);
    link.textContent = "link to this node";
    panel.appendChild(link);
    const rows = node.rows && node.rows.length ? node.rows
      : [Object.fromEntries(node.values || [])];
    const names = [...new Set(rows.flatMap(r => Object.keys(r)))];
    const table = document.createElement("table");
    table.className = "grid";
    const head = table.createTHead().insertRow();
    names.forEach(n => { const th = document.createElement("th"); th.textContent = n; head.appendChild(th); });
    const body = table.createTBody();
    rows.forEach(r => {
      const tr = body.insertRow();
      names.forEach(n => { tr.insertCell().textContent = r[n] == null ? "" : String(r[n]); });
    });
    panel.appendChild(table);
  }

  function graphs() {
    const host = document.getElementById("lineage");
    if (!host || !pageData || !pageData.lineage || typeof cytoscape === "undefined") return;
    if (typeof cytoscapeDagre !== "undefined") cytoscape.use(cytoscapeDagre);
    const g = pageData.lineage;
    const panel = document.getElementById("lineage-details");
    const byId = Object.fromEntries(g.nodes.map(n => [n.id, n]));
    const elements = [
      ...g.nodes.map(n => ({data: {id: n.id, kind: n.kind, status: n.status || "",
        label: [n.label, ...(n.values || []).slice(0, 4).map(([k, v]) => `${k.split(".").pop()}: ${v}`)].join("\n")}})),
      ...g.edges.map((e, i) => ({data: {id: `e${i}`, source: e.source, target: e.target}})),
    ];
    const cy = cytoscape({
      container: host, elements: elements, wheelSensitivity: 0.3,
      style: [
        {selector: "node", style: {"label": "data(label)", "text-wrap": "wrap",
          "text-valign": "center", "font-size": 10, "width": 130, "height": 66,
          "shape": "round-rectangle", "background-color": "#e8eef7", "border-width": 1,
          "border-color": "#5b7fb5", "text-max-width": 124}},
        {selector: "node[kind = 'data']", style: {"shape": "ellipse", "background-color": "#fdf3e1",
          "border-color": "#c08a2b"}},
        {selector: "node[status = 'failed']", style: {"border-color": "#c0392b", "border-width": 3}},
        {selector: "node:selected", style: {"border-width": 3, "border-color": "#222"}},
        {selector: "edge", style: {"curve-style": "bezier", "target-arrow-shape": "triangle",
          "width": 1.5, "line-color": "#999", "target-arrow-color": "#999"}},
      ],
      layout: {name: typeof cytoscapeDagre !== "undefined" ? "dagre" : "breadthfirst",
               rankDir: "LR", nodeSep: 16, rankSep: 36},
    });
    // a long chain fits only far away: keep labels readable, start at the raw data
    if (cy.zoom() < 0.7) {
      cy.zoom(0.7);
      const first = cy.nodes().min(n => n.position("x")).ele;
      cy.pan({x: 20 - first.position("x") * 0.7 + 60, y: host.clientHeight / 2 - first.position("y") * 0.7});
    }
    cy.on("tap", "node", ev => {
      const node = byId[ev.target.id()];
      details(panel, node);
      history.replaceState(null, "", "#" + encodeURIComponent(node.id));
    });
    // the node labels from left to right: the data-flow order, for readers and tests
    const ordered = cy.nodes().sort((a, b) => a.position("x") - b.position("x"));
    host.dataset.order = JSON.stringify(ordered.map(n => byId[n.id()].label));
    window.dlprovGraph = cy;
    const wanted = decodeURIComponent(location.hash.slice(1));
    if (byId[wanted]) { cy.$id(wanted).select(); details(panel, byId[wanted]); }
  }

  // -- the task timeline: bars as long as the tasks took --------------------------------
  function timeline() {
    const bars = document.querySelectorAll(".bar[data-duration]");
    const longest = Math.max(0, ...[...bars].map(b => +b.dataset.duration));
    bars.forEach(b => { b.style.width = longest ? `${(100 * b.dataset.duration / longest).toFixed(1)}px` : "0"; });
  }

  document.addEventListener("DOMContentLoaded", () => {
    timeline();
    runCurves();
    compareCurves();
    graphs();
  });
})();
