// The Sluice dashboard: plain JavaScript, no framework and no build step. Pages are drawn
// from the API's answers (through the dashboard server's /api/ forwarding) with DOM calls,
// never by parsing HTML, so names and values from the data cannot become markup. Charts are
// inline SVG.

const page = document.getElementById("page");

// ---- the API -----------------------------------------------------------------------------

// This run's token, from the URL the dashboard printed (`?token=`), kept for the tab.
const token = new URLSearchParams(location.search).get("token") ?? sessionStorage.getItem("sluice-token") ?? "";
sessionStorage.setItem("sluice-token", token);

/** Calls the API; resolves to its JSON, or throws an Error carrying the API's message. */
async function api(method, path, body, contentType) {
  const headers = { "x-sluice-dashboard": token, accept: "application/json" };
  if (contentType) headers["content-type"] = contentType;
  const response = await fetch("/api" + path, { method, headers, body });
  const text = await response.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { json = null; }
  if (!response.ok) {
    const message = json?.error?.message ?? json?.message ?? text ?? response.statusText;
    const error = new Error(`${response.status} ${json?.error?.code ?? ""}: ${message}`);
    error.status = response.status;
    throw error;
  }
  return json;
}

const get = (path) => api("GET", path);
const enc = encodeURIComponent;

/** The answer, or `fallback` when the API says 404 (nothing there yet). */
async function getOr(path, fallback) {
  try { return await get(path); } catch (error) { if (error.status === 404) return fallback; throw error; }
}

// ---- building the page -------------------------------------------------------------------

/** An element: `h("td", {class: "x"}, "text", child, …)`. Strings become text nodes. */
function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? "" : value);
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

const SVG = "http://www.w3.org/2000/svg";
function s(tag, attributes = {}, ...children) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
  append(element, children);
  return element;
}

function table(headers, rows) {
  return h("table", {}, h("thead", {}, h("tr", {}, headers.map((title) => h("th", {}, title)))),
    h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((cell) => h("td", {}, cell))))));
}

function show(...children) {
  page.replaceChildren(...children.flat(Infinity).filter(Boolean));
}

function failure(error) {
  return h("div", { class: "error", role: "alert" }, error.message ?? String(error));
}

const number = (value, digits = 4) =>
  value === null || value === undefined ? "–" : typeof value === "number" ? (Number.isInteger(value) ? String(value) : value.toPrecision(digits)) : String(value);
const when = (text) => (text ? text.replace("T", " ").replace(/\.\d+Z$|Z$/, " UTC") : "–");

// ---- charts ------------------------------------------------------------------------------

/** Vertical bars of `counts` over [min, max], with the range under them. */
function histogram(counts, min, max) {
  const width = 280, height = 90, top = Math.max(...counts, 1), bar = width / counts.length;
  return s("svg", { width, height: height + 14, role: "img", "aria-label": "histogram" },
    counts.map((count, i) => s("rect", { class: "bar", x: i * bar + 0.5, width: Math.max(bar - 1, 1),
      y: height - (count / top) * height, height: (count / top) * height },
      s("title", {}, `${number(min + (i * (max - min)) / counts.length)} – ${number(min + ((i + 1) * (max - min)) / counts.length)}: ${Math.round(count)}`))),
    s("text", { x: 0, y: height + 12 }, number(min)),
    s("text", { x: width, y: height + 12, "text-anchor": "end" }, number(max)));
}

/** Horizontal bars: `[label, value]` pairs, labelled. */
function bars(pairs, format = number) {
  const width = 280, row = 18, top = Math.max(...pairs.map(([, v]) => v), 1e-12), labelWidth = 110;
  return s("svg", { width, height: pairs.length * row, role: "img", "aria-label": "bar chart" },
    pairs.map(([label, value], i) => [
      s("text", { x: 0, y: i * row + 12 }, String(label).slice(0, 18)),
      s("rect", { class: "bar", x: labelWidth, y: i * row + 3, height: row - 6, width: Math.max(((width - labelWidth - 40) * value) / top, 1) }),
      s("text", { x: labelWidth + ((width - labelWidth - 40) * value) / top + 4, y: i * row + 12 }, format(value)),
    ]));
}

/** A line over time: `points` are `{x: Date, y: number, flagged: bool}`; flagged ones red. */
function timeline(points, label) {
  return timelines([{ name: null, points }], label);
}

/** Lines over time on one scale, one colour each, named in a legend when they have names. */
function timelines(lines, label) {
  const width = 640, height = 150, pad = 28;
  const all = lines.flatMap((line) => line.points);
  const xs = all.map((p) => p.x.getTime()), ys = all.map((p) => p.y);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)], [y0, y1] = [0, Math.max(...ys, 1e-9)];
  const X = (x) => pad + ((x - x0) / Math.max(x1 - x0, 1)) * (width - 2 * pad);
  const Y = (y) => height - pad - ((y - y0) / (y1 - y0)) * (height - 2 * pad);
  const first = new Date(x0), last = new Date(x1);
  return s("svg", { width, height, role: "img", "aria-label": label },
    lines.map((line, index) => [
      s("path", { class: `line line-${index % 6}`, d: line.points.map((p, i) => `${i ? "L" : "M"}${X(p.x.getTime()).toFixed(1)},${Y(p.y).toFixed(1)}`).join(" ") }),
      line.points.map((p) => s("circle", { class: `dot ${p.flagged ? "drift" : "ok"}`, cx: X(p.x.getTime()), cy: Y(p.y), r: 3 },
        s("title", {}, `${line.name ? line.name + " " : ""}${when(p.x.toISOString())}: ${number(p.y)}${p.flagged ? " (drift)" : ""}`))),
      line.name ? s("text", { class: `legend line-${index % 6}`, x: width - pad, y: pad - 8 + index * 11, "text-anchor": "end" }, line.name) : null,
    ]),
    s("text", { x: 2, y: pad - 8 }, `${label} (max ${number(y1)})`),
    s("text", { x: pad, y: height - 8 }, when(first.toISOString())),
    s("text", { x: width - pad, y: height - 8, "text-anchor": "end" }, when(last.toISOString())));
}

// ---- datasets ----------------------------------------------------------------------------

/** Content types the API takes, by file extension (as `sluice ingest` picks them). */
const CONTENT_TYPES = { csv: "text/csv", json: "application/json", ndjson: "application/x-ndjson", jsonl: "application/x-ndjson",
  xlsx: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", png: "image/png", jpg: "image/jpeg", jpeg: "image/jpeg" };
const MAX_BODY = 4 * 1024 * 1024;

function uploadForm(fixedDataset) {
  const status = h("div", { "data-test": "upload-status" });
  const dataset = h("input", { name: "dataset", placeholder: "dataset name", value: fixedDataset ?? "", required: true, pattern: "[a-z0-9][a-z0-9_-]*" });
  const file = h("input", { type: "file", name: "file", required: true, accept: Object.keys(CONTENT_TYPES).map((e) => "." + e).join(",") });
  const button = h("button", { class: "primary", type: "submit" }, "Upload");
  const form = h("form", { class: "grid", onsubmit: async (event) => {
    event.preventDefault();
    const chosen = file.files[0];
    const extension = chosen?.name.split(".").pop().toLowerCase();
    const contentType = CONTENT_TYPES[extension];
    if (!contentType) return status.replaceChildren(failure(new Error(`cannot tell the content type of ${chosen?.name}: use ${Object.keys(CONTENT_TYPES).join(", ")}`)));
    if (chosen.size > MAX_BODY) return status.replaceChildren(failure(new Error(`${chosen.name} is over 4 MiB: upload it with \`sluice ingest ${dataset.value} ${chosen.name}\` (presigned upload)`)));
    button.disabled = true;
    try {
      const entry = await api("POST", `/datasets/${enc(dataset.value)}/records`, chosen, contentType);
      status.replaceChildren(h("p", {}, `Received as ingest ${entry.ingest_id}; the ETL is processing it…`));
      const done = await followIngest(dataset.value, entry.ingest_id);
      const processing = done.processing ?? {};
      status.replaceChildren(h("p", { class: done.status === "FAILED" ? "bad" : "good" },
        done.status === "FAILED" ? `FAILED: ${processing.failure_reason}` :
          `${done.status}: ${processing.rows_in ?? "?"} rows in, ${processing.rows_out ?? "?"} out, ${processing.rows_rejected ?? 0} rejected`));
      if (done.status === "PROCESSED") setTimeout(render, 600);
    } catch (error) { status.replaceChildren(failure(error)); }
    button.disabled = false;
  } }, h("label", {}, "Dataset"), dataset, h("label", {}, "File (CSV, JSON, NDJSON, xlsx, PNG, JPEG; ≤ 4 MiB)"), file, h("span"), button);
  return h("section", {}, h("h2", {}, "Upload a file"), form, status);
}

async function followIngest(dataset, id) {
  for (let attempt = 0; attempt < 120; attempt++) {
    const entry = await get(`/datasets/${enc(dataset)}/ingests/${enc(id)}`);
    if (entry.status === "PROCESSED" || entry.status === "FAILED") return entry;
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
  return { status: "RECEIVED", processing: { failure_reason: "still processing after 2 minutes" } };
}

async function datasetsPage() {
  const { datasets } = await get("/datasets");
  const details = await Promise.all(datasets.map(({ dataset }) => getOr(`/datasets/${enc(dataset)}`, null)));
  const rows = details.map((d, i) => {
    const name = datasets[i].dataset;
    return [h("a", { href: `#/datasets/${enc(name)}` }, name), d ? d.objects.total : "–", d ? d.rows.out : "–",
      d ? h("span", { class: d.rows.rejected ? "warn" : "" }, d.rows.rejected) : "–", d?.schema ? d.schema.fields.length : "–",
      d ? Object.entries(d.objects.by_status).map(([k, v]) => `${v} ${k}`).join(", ") : "–"];
  });
  return [h("h1", {}, "Datasets"),
    h("section", {}, datasets.length ? table(["Dataset", "Objects", "Rows", "Rejected", "Columns", "Objects by status"], rows)
      : h("p", { class: "muted" }, "No datasets yet: upload a file below, or `sluice ingest DATASET FILE`.")),
    uploadForm()];
}

function columnProfile(column) {
  const facts = [`${column.count} values`, column.nulls ? `${column.nulls} nulls` : null].filter(Boolean).join(", ");
  let chart = h("p", { class: "muted" }, "no values");
  if (column.kind === "numeric") {
    chart = [histogram(column.histogram.counts, column.histogram.min, column.histogram.max),
      h("p", { class: "muted" }, `min ${number(column.min)} · mean ${number(column.mean)} · max ${number(column.max)} · std ${number(column.std)}`)];
  } else if (column.kind === "categorical") {
    const top = column.top.slice(0, 8);
    if (column.other) top.push(["(other)", column.other]);
    chart = [bars(top), h("p", { class: "muted" }, `${column.distinct} distinct`)];
  }
  return h("section", { "data-column": column.name }, h("b", {}, column.name), " ", h("span", { class: "muted" }, `${column.column_type} · ${facts}`), chart);
}

function rejectedRows(rejected) {
  if (!rejected.rows.length) return null;
  const shown = rejected.rows.length < rejected.total ? ` (the ${rejected.rows.length} newest of ${rejected.total})` : "";
  return [h("h2", {}, `Rejected rows${shown}`),
    h("section", { "data-test": "rejected" }, table(["Object", "Row", "Reason", "Values"], rejected.rows.map((r) =>
      [h("span", { class: "muted" }, r.ingest_id.slice(-12)), r.row, r.reason,
        h("span", { class: "muted" }, Object.entries(r.values ?? {}).map(([k, v]) => `${k}=${v}`).join(", "))])))];
}

async function datasetPage(name) {
  const [d, rejected] = await Promise.all([get(`/datasets/${enc(name)}`), get(`/datasets/${enc(name)}/rejected?limit=50`)]);
  return [h("h1", {}, `Dataset ${d.dataset}`),
    h("div", { class: "cards" },
      h("div", { class: "card" }, h("b", { "data-test": "rows-out" }, d.rows.out), "rows"),
      h("div", { class: "card" }, h("b", { class: d.rows.rejected ? "warn" : "" }, d.rows.rejected), "rejected rows"),
      h("div", { class: "card" }, h("b", {}, d.objects.total), "objects"),
      h("div", { class: "card" }, h("b", {}, d.schema ? `v${d.schema.version}` : "–"), "schema")),
    h("h2", {}, "Schema"),
    h("section", {}, d.schema ? table(["Column", "Type"], d.schema.fields.map((f) => [f.name, f.type])) : h("p", { class: "muted" }, "Not processed yet.")),
    rejectedRows(rejected),
    h("h2", {}, "Columns"),
    d.profile ? h("div", { class: "columns" }, d.profile.columns.map(columnProfile)) : h("p", { class: "muted" }, "No profile yet."),
    uploadForm(d.dataset)];
}

// ---- models ------------------------------------------------------------------------------

async function modelsPage() {
  const { models } = await get("/models");
  return [h("h1", {}, "Models"), h("section", {}, models.length
    ? table(["Model", "Versions", "Production"], models.map((m) => [h("a", { href: `#/models/${enc(m.model)}` }, m.model), m.versions, m.production_version ?? "–"]))
    : h("p", { class: "muted" }, "No models yet: `sluice train MODEL --dataset … --target … --wait`."))];
}

function statusBadge(version) {
  if (version.production) return h("span", { class: "badge", "data-test": "production" }, "production");
  return h("span", { class: `badge ${version.status === "Rejected" ? "bad" : "off"}` }, version.status);
}

function decisionButtons(model, version, feedback) {
  const decide = (decision) => async (event) => {
    event.target.disabled = true;
    try { await api("POST", `/models/${enc(model)}/versions/${version.version}/${decision}`); await render(); }
    catch (error) { feedback.replaceChildren(failure(error)); event.target.disabled = false; }
  };
  return h("span", {},
    version.status !== "Approved" ? h("button", { "data-action": `approve-${version.version}`, onclick: decide("approve") }, "Approve") : null, " ",
    version.status !== "Rejected" ? h("button", { "data-action": `reject-${version.version}`, onclick: decide("reject") }, "Reject") : null);
}

function compare(versions) {
  const output = h("div");
  if (versions.length < 2) return null;
  const options = () => versions.map((v) => h("option", { value: v.version }, `version ${v.version}`));
  const left = h("select", { "aria-label": "first version" }, options()), right = h("select", { "aria-label": "second version" }, options());
  left.value = versions[1].version; right.value = versions[0].version;
  const draw = () => {
    const [a, b] = [versions.find((v) => v.version == left.value), versions.find((v) => v.version == right.value)];
    const names = [...new Set([...Object.keys(a.metrics ?? {}), ...Object.keys(b.metrics ?? {})])].sort();
    output.replaceChildren(table(["Metric", `version ${a.version}`, `version ${b.version}`, "difference"],
      names.map((n) => [n, number(a.metrics?.[n]), number(b.metrics?.[n]),
        typeof a.metrics?.[n] === "number" && typeof b.metrics?.[n] === "number" ? number(b.metrics[n] - a.metrics[n]) : "–"])));
  };
  left.onchange = draw; right.onchange = draw; draw();
  return h("section", {}, h("h2", {}, "Compare versions"), left, " vs ", right, output);
}

/** Points of every series of `metric`/`stat`, combined per time with `combine(values, weights)`. */
function combined(series, metric, stat, combine, weights = new Map()) {
  const byTime = new Map();
  for (const one of series.filter((x) => x.metric === metric && x.stat === stat)) {
    for (const [time, value] of one.points) {
      const weight = weights.get(`${one.dimensions.Version}|${time}`) ?? 1;
      if (!byTime.has(time)) byTime.set(time, []);
      byTime.get(time).push([value, weight]);
    }
  }
  return [...byTime.entries()].sort((a, b) => a[0] - b[0]).map(([time, pairs]) => ({ x: new Date(time * 1000), y: combine(pairs), flagged: false }));
}

const sum = (pairs) => pairs.reduce((total, [value]) => total + value, 0);
const weightedMean = (pairs) => pairs.reduce((t, [v, w]) => t + v * w, 0) / Math.max(pairs.reduce((t, [, w]) => t + w, 0), 1e-12);

/** Requests, latency and error rate over the last day, from the model's CloudWatch metrics. */
async function serving(model) {
  const metrics = await get(`/models/${enc(model)}/metrics?hours=24`);
  const requestsByVersion = new Map();
  for (const one of metrics.series.filter((x) => x.metric === "Requests")) {
    for (const [time, value] of one.points) requestsByVersion.set(`${one.dimensions.Version}|${time}`, value);
  }
  const requests = combined(metrics.series, "Requests", "Sum", sum);
  const latency = combined(metrics.series, "InferenceLatency", "Average", weightedMean, requestsByVersion);
  const worst = combined(metrics.series, "InferenceLatency", "Maximum", (pairs) => Math.max(...pairs.map(([v]) => v)));
  const failed = combined(metrics.series, "ServerErrors", "Sum", sum);
  const answered = combined(metrics.series, "ServerErrors", "SampleCount", sum);
  const errors = answered.map((p, i) => ({ ...p, y: (failed[i]?.y ?? 0) / Math.max(p.y, 1) }));
  const total = requests.reduce((t, p) => t + p.y, 0);
  const parts = [h("h2", {}, "Serving (last 24 hours)")];
  if (!total && !errors.length) {
    parts.push(h("section", {}, h("p", { class: "muted" }, "No predictions in the last 24 hours.")));
    return parts;
  }
  const meanLatency = weightedMean(latency.map((p, i) => [p.y, requests[i]?.y ?? 1]));
  const errorRate = sum(failed.map((p) => [p.y])) / Math.max(sum(answered.map((p) => [p.y])), 1);
  const chart = (points, label) => (points.length > 1 ? timeline(points, label) : null);
  parts.push(h("section", {},
    h("div", { class: "cards" },
      h("div", { class: "card" }, h("b", { "data-test": "requests" }, total), "requests"),
      h("div", { class: "card" }, h("b", {}, `${number(meanLatency, 3)} ms`), "mean inference latency"),
      h("div", { class: "card" }, h("b", {}, worst.length ? `${number(Math.max(...worst.map((p) => p.y)), 3)} ms` : "–"), "slowest request"),
      h("div", { class: "card" }, h("b", { class: errorRate > 0 ? "bad" : "good" }, `${(errorRate * 100).toFixed(2)} %`), "server errors")),
    chart(requests, `requests per ${metrics.period_seconds / 60} min`), chart(latency, "mean inference latency (ms)"), chart(errors, "error rate")));
  return parts;
}

async function health(model) {
  const since = new Date(Date.now() - 30 * 86400e3).toISOString().replace(/\.\d+Z$/, "Z");
  const [history, latest] = await Promise.all([getOr(`/models/${enc(model)}/drift?since=${enc(since)}`, { reports: [] }), getOr(`/models/${enc(model)}/drift`, null)]);
  const reports = history.reports ?? [];
  const parts = [h("h2", {}, "Health")];
  if (!reports.length || !latest) {
    parts.push(h("section", {}, h("p", { class: "muted" }, "No monitoring report yet: the monitor runs on its schedule once predictions arrive.")));
    return parts;
  }
  const points = (key) => reports.filter((r) => typeof r[key] === "number").map((r) => ({ x: new Date(r.window_end), y: r[key], flagged: r.verdict === "drift" }));
  const quality = latest.report.quality;
  parts.push(h("section", {},
    h("p", {}, `Latest window ${when(latest.window.start)} – ${when(latest.window.end)}: `, h("b", { class: latest.report.verdict === "drift" ? "bad" : "good" }, latest.report.verdict),
      ` over ${latest.report.predictions} predictions`, quality ? ` · live ${quality.metric} ${number(quality.live)} vs ${number(quality.validation)} at validation (${quality.feedback} feedback)` : ""),
    points("drift_score").length ? timeline(points("drift_score"), "drift score per window") : null,
    featureLines(reports).length ? timelines(featureLines(reports), "distance to the baseline per feature") : null,
    reports.some((r) => typeof r.quality?.live === "number")
      ? timeline(reports.filter((r) => typeof r.quality?.live === "number").map((r) => ({ x: new Date(r.window_end), y: r.quality.live, flagged: false })), `live ${quality?.metric ?? "quality"}`) : null,
    table(["Feature", "Verdict", "Test", "Statistic", "p value", "Distance", "n", "Reason"], latest.report.features.map((f) =>
      [f.name, h("span", { class: f.verdict === "drift" ? "bad" : "" }, f.verdict), f.test, number(f.statistic), number(f.p_value), number(f.distance), f.n, f.reason ?? ""]))));
  return parts;
}

/** Each feature's distance to the training baseline per window, from the windows' summaries. */
function featureLines(reports) {
  const lines = new Map();
  for (const report of reports) {
    for (const feature of report.top_features ?? []) {
      if (typeof feature.distance !== "number") continue;
      if (!lines.has(feature.feature)) lines.set(feature.feature, []);
      lines.get(feature.feature).push({ x: new Date(report.window_end), y: feature.distance, flagged: feature.verdict === "drift" });
    }
  }
  return [...lines.entries()].map(([name, points]) => ({ name, points }));
}

function events(list) {
  if (!list.length) return h("p", { class: "muted" }, "No events yet.");
  return h("ol", { class: "timeline" }, [...list].reverse().map((e) =>
    h("li", {}, h("time", {}, when(e.time)), h("span", { class: "kind" }, e.kind), e.version ? `v${e.version} · ` : "", e.message)));
}

/** A section's content, or its error in its place: one failing call does not blank the page. */
const caught = (promise, title) => promise.catch((error) => [h("h2", {}, title), failure(error)]);

async function modelPage(name) {
  const [model, timeline, ...sections] = await Promise.all([get(`/models/${enc(name)}`), getOr(`/models/${enc(name)}/events?limit=100`, { events: [] }),
    caught(serving(name), "Serving"), caught(health(name), "Health")]);
  const feedback = h("div");
  const versions = [...model.versions].sort((a, b) => b.version - a.version);
  const rows = versions.map((v) => [String(v.version), statusBadge(v),
    v.primary_metric ? `${v.primary_metric} ${number(v.metrics?.[v.primary_metric])}` : "–",
    h("span", { class: "muted" }, Object.entries(v.metrics ?? {}).map(([k, x]) => `${k} ${number(x)}`).join(" · ")),
    h("span", { class: "muted" }, v.gate_reason ?? ""), when(v.trained_at), decisionButtons(model.model, v, feedback)]);
  return [h("h1", {}, `Model ${model.model}`),
    h("p", {}, "Production: ", h("b", { "data-test": "production-version" }, model.production_version ?? "none"), " · ",
      h("a", { href: `#/models/${enc(model.model)}/predict` }, "Try a prediction")),
    feedback,
    h("section", {}, versions.length ? table(["Version", "Status", "Primary metric", "Metrics", "Gate", "Trained", ""], rows) : h("p", { class: "muted" }, "No versions yet.")),
    compare(versions),
    sections,
    h("h2", {}, "Events"), h("section", {}, events(timeline.events ?? []))];
}

// ---- predictions -------------------------------------------------------------------------

function predictionResult(answer) {
  const [first] = answer.predictions;
  const probabilities = first.probabilities ? Object.entries(first.probabilities).sort((a, b) => b[1] - a[1]) : null;
  return h("section", {},
    h("p", {}, `Version ${answer.version} predicts `, h("b", { "data-test": "prediction" }, String(first.prediction)), ` (${number(answer.latency_ms, 3)} ms; id ${first.prediction_id})`),
    probabilities ? bars(probabilities, (p) => p.toFixed(3)) : null);
}

async function predictPage(name) {
  const inputs = await get(`/models/${enc(name)}/predict`);
  const output = h("div");
  const send = async (body, contentType) => {
    try { output.replaceChildren(predictionResult(await api("POST", `/models/${enc(name)}/predict`, body, contentType))); }
    catch (error) { output.replaceChildren(failure(error)); }
  };
  const image = inputs.inputs.find((i) => i.kind === "image");
  let form;
  if (image) {
    const file = h("input", { type: "file", accept: ".png,.jpg,.jpeg", required: true });
    form = h("form", { class: "grid", onsubmit: (event) => {
      event.preventDefault();
      const chosen = file.files[0];
      send(chosen, chosen.name.toLowerCase().endsWith(".png") ? "image/png" : "image/jpeg");
    } }, h("label", {}, "Image"), file, h("span"), h("button", { class: "primary", type: "submit" }, "Predict"));
  } else {
    // The fields by column, not through form.elements, where a column named `length` or
    // `item` would be the collection's own property.
    const fields = new Map(inputs.inputs.map((input) => [input.name, input.kind === "category"
      ? h("select", { id: input.name }, input.categories.map((c) => h("option", { value: c }, c)))
      : h("input", { id: input.name, value: number(input.mean, 4), title: "a number (timestamps: ISO text or a number)" })]));
    form = h("form", { class: "grid", onsubmit: (event) => {
      event.preventDefault();
      const row = {};
      for (const input of inputs.inputs) {
        const text = fields.get(input.name).value.trim();
        // Numbers go as numbers; anything else (an ISO timestamp, a category) as text.
        row[input.name] = input.kind === "number" && text !== "" && !Number.isNaN(Number(text)) ? Number(text) : text === "" ? null : text;
      }
      send(JSON.stringify({ rows: [row] }), "application/json");
    } }, [...fields].map(([name, field]) => [h("label", { for: name }, name), field]), h("span"), h("button", { class: "primary", type: "submit" }, "Predict"));
  }
  return [h("h1", {}, `Predict with ${inputs.model}`),
    h("p", { class: "muted" }, `Production version ${inputs.version} · ${inputs.task}, predicts ${inputs.target}`,
      inputs.class_labels?.length ? ` (${inputs.class_labels.join(", ")})` : ""),
    h("section", {}, form), output];
}

// ---- routing -----------------------------------------------------------------------------

const routes = [
  [/^#\/datasets$/, datasetsPage, "datasets"],
  [/^#\/datasets\/([^/]+)$/, datasetPage, "datasets"],
  [/^#\/models$/, modelsPage, "models"],
  [/^#\/models\/([^/]+)$/, modelPage, "models"],
  [/^#\/models\/([^/]+)\/predict$/, predictPage, "models"],
];

let rendering = 0;

async function render() {
  const generation = ++rendering;
  const hash = location.hash || "#/datasets";
  const route = routes.find(([pattern]) => pattern.test(hash));
  for (const link of document.querySelectorAll("[data-nav]")) link.classList.toggle("active", link.dataset.nav === route?.[2]);
  if (!route) return show(h("h1", {}, "Not found"), h("p", {}, h("a", { href: "#/datasets" }, "Datasets")));
  const [pattern, draw] = route;
  // A page that finishes after the user has moved on must not draw over the newer one.
  const current = () => generation === rendering;
  try {
    const content = await draw(...hash.match(pattern).slice(1).map(decodeURIComponent));
    if (current()) show(content);
  } catch (error) {
    if (current()) show(failure(error));
  }
  if (current()) document.body.dataset.ready = hash;
}

window.addEventListener("hashchange", () => { delete document.body.dataset.ready; render(); });
render();
