// Embedlapse explorer: the run's checkpoints as a WebGL2 scatter with zoom and pan, a scrubber with
// play/pause, a loss curve, hover details, pinned trajectories, class toggles, leaderboards, and
// live updates over Server-Sent Events. Every number comes from the server's analysis; the page
// only draws. Tweening is on the GPU: the vertex shader blends each point's positions at two
// checkpoints by one uniform, so playing costs the CPU nothing per point and frame. What is drawn
// over the points (rings, trajectories, thumbnails) is a 2D canvas on top, for a few samples only.
//
// With two runs (`serve RUN_A RUN_B`, /api/runs lists two) the page shows them side by side, as
// compare's film does: one panel each, one view (zoom and pan move both), one scrubber over the
// union of their steps; each panel shows its run's latest checkpoint at or before the scrubber's
// step and says so when that is not the step itself. Hover, pins, class toggles are shared.

// The film's class colours: Paul Tol's muted scheme, a medium grey as the tenth; cycles past ten.
const PALETTE = [0x332288, 0x88ccee, 0x44aa99, 0x117733, 0x999933, 0xddcc77, 0xcc6677, 0x882255, 0xaa4499, 0x888888];
// The two runs of a comparison (loss curves, headings): Okabe and Ito's blue and vermilion, neither
// a class colour.
const RUN_COLOURS = ["#0072b2", "#d55e00"];  // the film's run colours (Palette.runs): left blue, right vermilion
// Milliseconds a tween between two checkpoints takes at 1x.
const TWEEN_MS = 700;
// Hover picks the nearest point within this many CSS pixels of the cursor.
const HOVER_RADIUS = 8;
// Zoomed in so far that fewer points than this are in view, the points are drawn as their images.
const THUMBNAIL_LIMIT = 150;
// Leaderboard entries ringed in the scatter (the shown tab's first places).
const RINGED = 8;
const ZOOM_RANGE = [0.5, 2000];
const INK = "#222222";
// The leaderboards, by key, as /api/run lists them (key, tab, value, hint, empty, needs_labels): the
// tabs are built from that list, so a board the server adds appears with no change here.
const BOARDS = {};
// What a panel of a comparison says about the checkpoint it shows (compare's film's states).
const BADGES = {
  current: () => "",
  older: (step) => `showing step ${step}`,
  finished: (step) => `finished at step ${step}`,
  "not started": (step) => `starts at step ${step}`,
  empty: () => "no checkpoint yet",
};

const state = {
  runs: [],             // one or two runs (see makeRun)
  compare: false,       // two runs side by side
  facts: null,          // the evaluation set's facts (labels, names, thumbnails): the first ready run's /run
  steps: [],            // analysed steps, ascending: the union of the runs' steps
  shown: -1,            // index into steps of the checkpoint at rest on screen
  tween: null,          // {from, to, start, resolve, token}: the move under way, or null
  playing: false,
  following: true,      // jump to each new checkpoint while the newest is shown
  view: { cx: 0, cy: 0, zoom: 1 },
  hidden: new Set(),    // hidden classes (drawn faint grey)
  pins: new Map(),      // index -> each run's sample document (null while it loads), in pinning order
  board: "outliers",
  highlight: null,      // sample ringed for a hovered leaderboard row or pin
  hovered: null,        // sample under the cursor
  hoverRun: 0,          // the panel the cursor is over
  images: new Map(),    // index -> HTMLImageElement, for the thumbnails drawn on the overlay
};

// One served run: its API prefix, its analysed steps and what was fetched of them, and its panel.
function makeRun(r, entry, compare) {
  return {
    r,
    name: entry.name || `run ${r}`,
    path: entry.run || "",
    api: compare ? `/api/runs/${r}` : "/api",
    colour: RUN_COLOURS[r % RUN_COLOURS.length],
    doc: null,            // /run
    steps: [],            // its analysed steps, ascending
    points: new Map(),    // step -> Float32Array (N * 2), fetched lazily
    samples: new Map(),   // index -> Promise of the sample document (cache, refreshed per new step)
    scores: null,         // scores of its shown step
    loss: null,           // /loss
    grid: null,           // hover index of its shown checkpoint
    shownStep: undefined, // the step its panel shows at rest
    pair: null,           // [a, b]: the points its panel draws (the same twice at rest)
    thumbnailsDrawn: 0,
    panel: null,          // {element, stage, canvas, overlay, reset, head, name, step, badge, scatter}
    board: null,          // {column, head, table, valueHead}
  };
}

const $ = (id) => document.getElementById(id);
const hex = (c) => "#" + c.toString(16).padStart(6, "0");
const classColour = (label) => hex(PALETTE[((label % PALETTE.length) + PALETTE.length) % PALETTE.length]);
const el = (tag, props = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "dataset") Object.assign(node.dataset, value);
    else if (key in node) node[key] = value;
    else node.setAttribute(key, value);
  }
  node.append(...children);
  return node;
};

async function json(path) {
  const response = await fetch(path, { cache: "no-store" });
  if (!response.ok) throw new Error(`${path}: ${response.status}`);
  return response.json();
}

// A checkpoint's display coordinates, x and y interleaved (float32, little-endian on the wire).
async function points(run, step) {
  if (run.points.has(step)) return run.points.get(step);
  const response = await fetch(`${run.api}/checkpoints/${step}/points`);
  if (!response.ok) throw new Error(`points of step ${step}: ${response.status}`);
  const buffer = await response.arrayBuffer();
  const n = sampleCount();
  if (buffer.byteLength !== n * 8) throw new Error(`points of step ${step}: ${buffer.byteLength} bytes, expected ${n * 8}`);
  let values;
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] === 1) {
    values = new Float32Array(buffer);
  } else {
    const view = new DataView(buffer);
    values = new Float32Array(n * 2);
    for (let i = 0; i < n * 2; i++) values[i] = view.getFloat32(i * 4, true);
  }
  run.points.set(step, values);
  return values;
}

// One sample over every analysed checkpoint of a run; fetched again once it lacks a newer step.
function sample(run, index, fresh = false) {
  const cached = run.samples.get(index);
  if (cached && !fresh) return cached;
  const promise = json(`${run.api}/samples/${index}`);
  run.samples.set(index, promise);
  promise.catch(() => run.samples.delete(index));
  return promise;
}

async function sampleAt(run, index, step) {
  let doc = await sample(run, index);
  if (!doc.steps.includes(step)) doc = await sample(run, index, true);
  return doc;
}

const sampleCount = () => state.facts?.sample_count ?? 0;
const hasLabels = () => Array.isArray(state.facts?.labels);
const hasImages = () => Boolean(state.facts?.thumbnail);
const labelOf = (index) => (hasLabels() ? state.facts.labels[index] : 0);
const imageURL = (index) => `${state.runs[0]?.api ?? "/api"}/samples/${index}/image.png`;
const isReady = (run) => Boolean(run.doc?.ready);

function className(label) {
  if (!hasLabels()) return "";
  const names = state.facts.class_names;
  return label >= 0 && label < names.length ? names[label] : `class ${label}`;
}

function format(value, digits = 3) {
  if (value === null || value === undefined || !Number.isFinite(value)) return "–";
  if (value === 0) return "0";
  if (Math.abs(value) >= 1000) return value.toFixed(0);
  if (Math.abs(value) < 0.001) return value.toExponential(1);
  return Number(value.toPrecision(digits)).toString();
}

// ---------------------------------------------------------------- which checkpoint a panel shows

// The run's latest step at or before `step`; its first step before it starts; undefined without one.
function stepOf(run, step) {
  if (!run.steps.length || step === undefined) return undefined;
  let best = run.steps[0];
  for (const s of run.steps) if (s <= step) best = s;
  return best;
}

// What the panel shows against the shared step: as compare's film says it.
function panelState(run, step = state.steps[state.shown]) {
  const shown = stepOf(run, step);
  if (shown === undefined) return "empty";
  if (shown > step) return "not started";
  if (shown === step) return "current";
  return run.doc?.done && shown === run.steps[run.steps.length - 1] ? "finished" : "older";
}

// ---------------------------------------------------------------- scatter (WebGL2)

const VERTEX = `#version 300 es
in vec2 a_from;
in vec2 a_to;
in float a_class;
in float a_faint;
uniform float u_t;
uniform float u_half;
uniform vec2 u_center;
uniform float u_zoom;
uniform float u_size;
uniform float u_pass;
uniform vec3 u_palette[10];
out vec4 v_colour;
void main() {
  // Hidden classes are drawn first (pass 0) as faint grey context, the others over them (pass 1).
  bool faint = a_faint > 0.5;
  if (faint != (u_pass < 0.5)) { gl_Position = vec4(2.0, 2.0, 2.0, 1.0); gl_PointSize = 1.0; return; }
  // Points beyond the film's bounds sit clamped on its border, as in the film.
  vec2 p = clamp(mix(a_from, a_to, u_t), -u_half, u_half);
  gl_Position = vec4((p - u_center) * u_zoom / u_half, 0.0, 1.0);
  gl_PointSize = u_size;
  v_colour = faint ? vec4(0.6, 0.6, 0.6, 0.3) : vec4(u_palette[int(mod(a_class, 10.0))], 0.8);
}`;

const FRAGMENT = `#version 300 es
precision mediump float;
in vec4 v_colour;
out vec4 colour;
void main() {
  vec2 d = gl_PointCoord - 0.5;
  if (dot(d, d) > 0.25) discard;
  colour = v_colour;
}`;

class Scatter {
  constructor(canvas) {
    const gl = canvas.getContext("webgl2", { alpha: false, antialias: false });
    if (!gl) throw new Error("WebGL2 is not available");
    this.gl = gl;
    this.canvas = canvas;
    const program = gl.createProgram();
    for (const [type, source] of [[gl.VERTEX_SHADER, VERTEX], [gl.FRAGMENT_SHADER, FRAGMENT]]) {
      const shader = gl.createShader(type);
      gl.shaderSource(shader, source);
      gl.compileShader(shader);
      if (!gl.getShaderParameter(shader, gl.COMPILE_STATUS)) throw new Error(gl.getShaderInfoLog(shader));
      gl.attachShader(program, shader);
    }
    gl.linkProgram(program);
    if (!gl.getProgramParameter(program, gl.LINK_STATUS)) throw new Error(gl.getProgramInfoLog(program));
    this.program = program;
    this.vao = gl.createVertexArray();
    this.buffers = {};
    gl.bindVertexArray(this.vao);
    for (const [name, size] of [["a_from", 2], ["a_to", 2], ["a_class", 1], ["a_faint", 1]]) {
      const buffer = gl.createBuffer();
      const location = gl.getAttribLocation(program, name);
      gl.bindBuffer(gl.ARRAY_BUFFER, buffer);
      gl.enableVertexAttribArray(location);
      gl.vertexAttribPointer(location, size, gl.FLOAT, false, 0, 0);
      this.buffers[name] = buffer;
    }
    gl.useProgram(program);
    const palette = new Float32Array(PALETTE.flatMap((c) => [(c >> 16) / 255, ((c >> 8) & 255) / 255, (c & 255) / 255]));
    gl.uniform3fv(gl.getUniformLocation(program, "u_palette"), palette);
    this.u = Object.fromEntries(["u_t", "u_half", "u_center", "u_zoom", "u_size", "u_pass"]
      .map((n) => [n, gl.getUniformLocation(program, n)]));
    this.count = 0;
    this.paired = false;
  }

  setClasses(labels, n) {
    const gl = this.gl;
    const classes = new Float32Array(n);
    if (labels) for (let i = 0; i < n; i++) classes[i] = labels[i];
    gl.bindBuffer(gl.ARRAY_BUFFER, this.buffers.a_class);
    gl.bufferData(gl.ARRAY_BUFFER, classes, gl.STATIC_DRAW);
    this.count = n;
  }

  setFaint(faint) {
    const gl = this.gl;
    gl.bindBuffer(gl.ARRAY_BUFFER, this.buffers.a_faint);
    gl.bufferData(gl.ARRAY_BUFFER, faint, gl.DYNAMIC_DRAW);
  }

  // The two checkpoints a tween travels between (the same one twice to show it at rest).
  setPair(from, to) {
    const gl = this.gl;
    gl.bindBuffer(gl.ARRAY_BUFFER, this.buffers.a_from);
    gl.bufferData(gl.ARRAY_BUFFER, from, gl.DYNAMIC_DRAW);
    gl.bindBuffer(gl.ARRAY_BUFFER, this.buffers.a_to);
    gl.bufferData(gl.ARRAY_BUFFER, to, gl.DYNAMIC_DRAW);
    this.paired = true;
  }

  // `faint`: whether any class is hidden (else the faint pass is skipped).
  draw(t, half, view, pointSize, faint) {
    const gl = this.gl;
    const width = Math.round(this.canvas.clientWidth * devicePixelRatio) || this.canvas.width;
    const height = Math.round(this.canvas.clientHeight * devicePixelRatio) || this.canvas.height;
    if (this.canvas.width !== width || this.canvas.height !== height) { this.canvas.width = width; this.canvas.height = height; }
    gl.viewport(0, 0, width, height);
    gl.clearColor(0.98, 0.98, 0.98, 1);
    gl.clear(gl.COLOR_BUFFER_BIT);
    if (this.count === 0 || !this.paired) return;
    gl.enable(gl.BLEND);
    gl.blendFunc(gl.SRC_ALPHA, gl.ONE_MINUS_SRC_ALPHA);
    gl.useProgram(this.program);
    gl.uniform1f(this.u.u_t, t);
    gl.uniform1f(this.u.u_half, half);
    gl.uniform2f(this.u.u_center, view.cx, view.cy);
    gl.uniform1f(this.u.u_zoom, view.zoom);
    gl.uniform1f(this.u.u_size, pointSize * devicePixelRatio);
    gl.bindVertexArray(this.vao);
    for (const pass of faint ? [0, 1] : [1]) {
      gl.uniform1f(this.u.u_pass, pass);
      gl.drawArrays(gl.POINTS, 0, this.count);
    }
  }
}

// ---------------------------------------------------------------- view transform

// A panel's scatter CSS size; the one view maps data [-h, h]² (zoom 1, centre 0) onto each panel.
function canvasSize(run = state.runs[0]) {
  const canvas = run.panel.canvas;
  return { width: canvas.clientWidth || canvas.width, height: canvas.clientHeight || canvas.height };
}

const half = () => state.facts?.view_half_extent ?? 1;
const clampData = (v) => Math.max(-half(), Math.min(half(), v));

// Data coordinates to CSS pixels from a panel's scatter's top left, for the view as it is now (a
// function, so that a loop over many points reads the layout once).
function projector(run = state.runs[0]) {
  const { width, height } = canvasSize(run);
  const { cx, cy, zoom } = state.view;
  const h = half();
  const sx = zoom / h * width / 2, sy = zoom / h * height / 2;
  return (x, y) => [(Math.max(-h, Math.min(h, x)) - cx) * sx + width / 2, height / 2 - (Math.max(-h, Math.min(h, y)) - cy) * sy];
}

const toPixel = (x, y, run) => projector(run)(x, y);

function toData(px, py, run = state.runs[0]) {
  const { width, height } = canvasSize(run);
  const { cx, cy, zoom } = state.view;
  const h = half();
  return [cx + (px / width * 2 - 1) * h / zoom, cy + (1 - py / height * 2) * h / zoom];
}

function pointSize() {
  const n = sampleCount();
  const base = n > 50000 ? 2 : n > 5000 ? 3 : n > 1500 ? 5 : 6;
  return base * Math.min(Math.max(Math.sqrt(state.view.zoom), 1), 4);
}

// ---------------------------------------------------------------- hover index

// A coarse grid over [-h, h]² of a panel's shown checkpoint's (clamped) positions: a hover looks at
// the few cells around the cursor, not at every point.
const GRID = 128;

function buildGrid(values) {
  const n = values.length / 2;
  const h = half();
  const cellOf = (v) => Math.min(GRID - 1, Math.max(0, Math.floor((clampData(v) + h) / (2 * h) * GRID)));
  const cells = new Int32Array(n);
  const start = new Int32Array(GRID * GRID + 1);
  for (let i = 0; i < n; i++) {
    const x = values[2 * i], y = values[2 * i + 1];
    const cell = Number.isFinite(x) && Number.isFinite(y) ? cellOf(y) * GRID + cellOf(x) : -1;
    cells[i] = cell;
    if (cell >= 0) start[cell + 1]++;
  }
  for (let c = 0; c < GRID * GRID; c++) start[c + 1] += start[c];
  const order = new Int32Array(start[GRID * GRID]);
  const fill = start.slice(0, GRID * GRID);
  for (let i = 0; i < n; i++) if (cells[i] >= 0) order[fill[cells[i]]++] = i;
  return { values, start, order, cellOf };
}

// Ringed in the panel of `run` (its leaderboard's first places, the pins), or in any panel.
const isRinged = (index, run) => state.pins.has(index) ||
  (run ? [run] : state.runs).some((r) => ringedEntries(r).some((e) => e.index === index));
const isHidden = (index) => state.hidden.has(labelOf(index));

// The nearest point of a panel within HOVER_RADIUS CSS pixels of (px, py), or null; hidden classes
// are skipped unless the sample is ringed.
function nearest(run, px, py) {
  const grid = run.grid;
  if (!grid || state.tween) return null;
  const { width } = canvasSize(run);
  const [x, y] = toData(px, py, run);
  const perPixel = 2 * half() / (width * state.view.zoom);
  const radius = HOVER_RADIUS * perPixel;
  const [x0, x1] = [grid.cellOf(x - radius), grid.cellOf(x + radius)];
  const [y0, y1] = [grid.cellOf(y - radius), grid.cellOf(y + radius)];
  let best = null, bestDistance = radius * radius;
  for (let cy = y0; cy <= y1; cy++) {
    for (let cx = x0; cx <= x1; cx++) {
      const cell = cy * GRID + cx;
      for (let k = grid.start[cell]; k < grid.start[cell + 1]; k++) {
        const i = grid.order[k];
        const dx = clampData(grid.values[2 * i]) - x, dy = clampData(grid.values[2 * i + 1]) - y;
        const d = dx * dx + dy * dy;
        if (d <= bestDistance && (!isHidden(i) || isRinged(i, run))) { best = i; bestDistance = d; }
      }
    }
  }
  return best;
}

// ---------------------------------------------------------------- drawing

let frameRequest = null;

const dirty = { scatter: true, loss: true };

// Draws on the next frame: the overlays always; the points (the costly part, 100,000 of them) and
// the loss chart only when told they changed.
function requestDraw({ scatter = false, loss = false } = {}) {
  dirty.scatter ||= scatter;
  dirty.loss ||= loss;
  if (frameRequest === null) frameRequest = requestAnimationFrame(frame);
}
const redrawAll = () => requestDraw({ scatter: true, loss: true });

// The tween's progress now (0 at rest).
function tweenProgress(now) {
  if (!state.tween) return 0;
  return Math.min((now - state.tween.start) * speed() / TWEEN_MS, 1);
}

function frame(now) {
  frameRequest = null;
  if (!state.facts || state.shown < 0) return;
  const t = tweenProgress(now);
  for (const run of state.runs) {
    if (dirty.scatter || state.tween) run.panel.scatter.draw(t, half(), state.view, pointSize(), state.hidden.size > 0);
    drawOverlay(run, t);
  }
  if (dirty.loss || state.tween) drawLoss(t);
  dirty.scatter = dirty.loss = false;
  if (state.tween) {
    if (t < 1) requestDraw();
    else finishTween();
  }
}

// Where sample i is drawn now in a panel: its position blended between the tween's checkpoints, clamped.
function positionNow(run, i, t) {
  if (!run.pair) return null;
  const [a, b] = run.pair;
  if (!state.tween) t = 0;
  const x = a[2 * i] + (b[2 * i] - a[2 * i]) * t, y = a[2 * i + 1] + (b[2 * i + 1] - a[2 * i + 1]) * t;
  return Number.isFinite(x) && Number.isFinite(y) ? [clampData(x), clampData(y)] : null;
}

function ringedEntries(run) {
  return (run.scores?.[state.board] ?? []).slice(0, RINGED);
}

function overlayContext(run) {
  const canvas = run.panel.overlay;
  const { width, height } = canvasSize(run);
  const w = Math.round(width * devicePixelRatio), h = Math.round(height * devicePixelRatio);
  if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(devicePixelRatio, 0, 0, devicePixelRatio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  return ctx;
}

function haloText(ctx, text, x, y, colour = INK) {
  ctx.lineWidth = 3;
  ctx.strokeStyle = "rgba(255,255,255,0.9)";
  ctx.strokeText(text, x, y);
  ctx.fillStyle = colour;
  ctx.fillText(text, x, y);
}

function ring(ctx, px, py, radius, colour, width, fill) {
  ctx.beginPath();
  ctx.arc(px, py, radius, 0, 2 * Math.PI);
  if (fill) { ctx.fillStyle = fill; ctx.fill(); }
  ctx.lineWidth = width + 2;
  ctx.strokeStyle = "rgba(255,255,255,0.85)";
  ctx.stroke();
  ctx.lineWidth = width;
  ctx.strokeStyle = colour;
  ctx.stroke();
}

function drawOverlay(run, t) {
  const ctx = overlayContext(run);
  run.thumbnailsDrawn = 0;
  if (!run.pair) return;
  const toPixel = projector(run);
  const { width, height } = canvasSize(run);
  const inView = ([px, py], margin = 0) => px >= -margin && py >= -margin && px <= width + margin && py <= height + margin;
  const dot = pointSize() / 2;
  ctx.font = "11px 'DejaVu Sans', sans-serif";
  ctx.textBaseline = "middle";

  // Zoomed in on a few points: draw them as their images.
  if (!state.tween && hasImages() && state.view.zoom > 1.5) {
    const values = run.pair[0];
    const visible = [];
    for (let i = 0; i < sampleCount() && visible.length <= THUMBNAIL_LIMIT; i++) {
      if (isHidden(i)) continue;
      const p = toPixel(values[2 * i], values[2 * i + 1]);
      if (Number.isFinite(p[0]) && inView(p)) visible.push([i, p]);
    }
    if (visible.length <= THUMBNAIL_LIMIT) {
      const size = Math.min(56, Math.max(28, 16 * Math.sqrt(state.view.zoom)));
      ctx.imageSmoothingEnabled = false;
      for (const [i, [px, py]] of visible) {
        const image = thumbnail(i);
        if (!image.complete || image.naturalWidth === 0) continue;
        ctx.drawImage(image, px - size / 2, py - size / 2, size, size);
        run.thumbnailsDrawn++;
        ctx.lineWidth = 2;
        ctx.strokeStyle = classColour(labelOf(i));
        ctx.strokeRect(px - size / 2, py - size / 2, size, size);
      }
    }
  }

  // Pinned trajectories: the way travelled so far solid, the way still to come dashed.
  const shownStep = run.shownStep;
  for (const [index, docs] of state.pins) {
    const doc = docs[run.r];
    if (!doc) continue;
    const path = [];
    for (let k = 0; k < doc.steps.length; k++) {
      if (doc.x[k] == null || doc.y[k] == null) continue;
      path.push({ step: doc.steps[k], p: toPixel(doc.x[k], doc.y[k]) });
    }
    const colour = classColour(labelOf(index));
    for (const [part, dashed] of [[path.filter((q) => q.step <= shownStep), false], [path.filter((q) => q.step >= shownStep), true]]) {
      if (part.length < 2) continue;
      ctx.setLineDash(dashed ? [4, 4] : []);
      for (const [lineWidth, strokeStyle] of [[4.5, "rgba(255,255,255,0.8)"], [dashed ? 1.2 : 2, dashed ? "rgba(34,34,34,0.55)" : INK]]) {
        ctx.beginPath();
        part.forEach((q, k) => (k ? ctx.lineTo(...q.p) : ctx.moveTo(...q.p)));
        ctx.lineWidth = lineWidth;
        ctx.strokeStyle = strokeStyle;
        ctx.lineJoin = "round";
        ctx.stroke();
      }
    }
    ctx.setLineDash([]);
    for (const q of path) {
      ctx.beginPath();
      ctx.arc(q.p[0], q.p[1], 2.2, 0, 2 * Math.PI);
      ctx.fillStyle = q.step <= shownStep ? colour : "#ffffff";
      ctx.fill();
      ctx.lineWidth = 1;
      ctx.strokeStyle = INK;
      ctx.stroke();
    }
  }

  // Ringed leaderboard entries, their rank beside them.
  ringedEntries(run).forEach((entry, rank) => {
    const position = positionNow(run, entry.index, t);
    if (!position) return;
    const p = toPixel(...position);
    if (!inView(p, 10)) return;
    ring(ctx, p[0], p[1], dot + 4, INK, 1.5, classColour(labelOf(entry.index)));
    haloText(ctx, String(rank + 1), p[0] + dot + 6, p[1] - dot - 4);
  });

  // Pins' markers where they are now.
  for (const index of state.pins.keys()) {
    const position = positionNow(run, index, t);
    if (!position) continue;
    const p = toPixel(...position);
    if (!inView(p, 20)) continue;
    ring(ctx, p[0], p[1], dot + 5, INK, 2.5, classColour(labelOf(index)));
    ctx.font = "bold 11px 'DejaVu Sans', sans-serif";
    haloText(ctx, `#${index}`, p[0] + dot + 9, p[1]);
    ctx.font = "11px 'DejaVu Sans', sans-serif";
  }

  // The hovered point (in either panel) or the sample of a hovered row or pin.
  for (const index of [state.highlight, state.hovered]) {
    if (index === null) continue;
    const position = positionNow(run, index, t);
    if (!position) continue;
    const p = toPixel(...position);
    ring(ctx, p[0], p[1], dot + 8, "#000000", 2.5, null);
  }
}

function thumbnail(index) {
  let image = state.images.get(index);
  if (!image) {
    image = new Image();
    image.addEventListener("load", () => requestDraw(), { once: true });
    image.src = imageURL(index);
    state.images.set(index, image);
  }
  return image;
}

// ---------------------------------------------------------------- loss curve

const lossOf = (run) => run.loss ?? { training: [], evaluation: [] };

// The loss chart's scales: steps across; loss up, on a log scale once it spans a decade or so.
function lossLayout() {
  const canvas = $("loss");
  const width = canvas.clientWidth || canvas.width, height = canvas.clientHeight || canvas.height;
  const steps = state.steps;
  // Loops, not spreads: a long run logs more points than a call takes arguments.
  let x0 = steps[0] ?? 0, x1 = steps[steps.length - 1] ?? 1, low = Infinity, high = 1e-9, count = 0;
  for (const run of state.runs) {
    const loss = lossOf(run);
    for (const series of [loss.training, loss.evaluation]) {
      for (const [step, value] of series) {
        x0 = Math.min(x0, step);
        x1 = Math.max(x1, step);
        if (!Number.isFinite(value)) continue;
        low = Math.min(low, value);
        high = Math.max(high, value);
        count++;
      }
    }
  }
  x1 = Math.max(x1, x0 + 1);
  const log = count > 1 && low > 0 && high / low > 8;
  const box = { left: 40, right: width - 10, top: 8, bottom: height - (state.compare ? 24 : 20) };
  let y, yTicks;
  if (log) {
    const ladder = [];
    for (let e = Math.floor(Math.log10(low)); e <= Math.ceil(Math.log10(high)); e++) for (const m of [1, 2, 5]) ladder.push(m * 10 ** e);
    const lo = Math.max(...ladder.filter((v) => v <= low)), hi = Math.min(...ladder.filter((v) => v >= high));
    y = (value) => box.bottom - (Math.log(Math.max(value, lo)) - Math.log(lo)) / (Math.log(hi) - Math.log(lo)) * (box.bottom - box.top);
    yTicks = [];
    for (const v of ladder.filter((v) => v >= lo * 0.999 && v <= hi * 1.001)) {
      if (!yTicks.length || y(yTicks[yTicks.length - 1]) - y(v) >= 18) yTicks.push(v);
    }
  } else {
    const top = niceCeiling(high);
    y = (value) => box.bottom - Math.max(0, value) / top * (box.bottom - box.top);
    yTicks = niceTicks(0, top, 3);
  }
  return {
    canvas, width, height, box, y, yTicks, log,
    x: (step) => box.left + (step - x0) / (x1 - x0) * (box.right - box.left),
    step: (px) => x0 + (px - box.left) / (box.right - box.left) * (x1 - x0),
    ticks: niceTicks(x0, x1, Math.max(2, Math.floor((box.right - box.left) / 80))),
  };
}

function niceStep(span, count) {
  const raw = span / Math.max(count, 1);
  const power = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw) ?? 10 * power;
}

function niceCeiling(value) {
  const step = niceStep(value, 4);
  return Math.ceil(value / step) * step;
}

function niceTicks(a, b, count) {
  const step = niceStep(b - a, count);
  const ticks = [];
  for (let v = Math.ceil(a / step) * step; v <= b + 1e-9; v += step) ticks.push(Math.round(v * 1e6) / 1e6);
  return ticks;
}

function drawLoss(t) {
  const L = lossLayout();
  const { canvas, box } = L;
  const w = Math.round(L.width * devicePixelRatio), h = Math.round(L.height * devicePixelRatio);
  if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(devicePixelRatio, 0, 0, devicePixelRatio, 0, 0);
  ctx.clearRect(0, 0, L.width, L.height);
  ctx.font = "10px 'DejaVu Sans', sans-serif";
  ctx.fillStyle = "#666666";
  ctx.strokeStyle = "#e2e2e2";
  ctx.lineWidth = 1;
  // Grid and axes.
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  const empty = state.runs.every((run) => !lossOf(run).training.length && !lossOf(run).evaluation.length);
  for (const v of empty ? [] : L.yTicks) {
    const y = Math.round(L.y(v)) + 0.5;
    ctx.beginPath(); ctx.moveTo(box.left, y); ctx.lineTo(box.right, y); ctx.stroke();
    ctx.fillText(format(v, 2), box.left - 5, y);
  }
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  for (const step of L.ticks) ctx.fillText(String(step), L.x(step), box.bottom + (state.compare ? 9 : 5));
  // Checkpoints: a tick each on the axis; with two runs, one row of ticks each in its colour.
  if (state.compare) {
    for (const run of state.runs) {
      ctx.strokeStyle = run.colour;
      for (const step of run.steps) {
        const x = Math.round(L.x(step)) + 0.5;
        ctx.beginPath(); ctx.moveTo(x, box.bottom + 1 + 3 * run.r); ctx.lineTo(x, box.bottom + 4 + 3 * run.r); ctx.stroke();
      }
    }
  } else {
    ctx.strokeStyle = "#aaaaaa";
    for (const step of state.steps) {
      const x = Math.round(L.x(step)) + 0.5;
      ctx.beginPath(); ctx.moveTo(x, box.bottom); ctx.lineTo(x, box.bottom + 3); ctx.stroke();
    }
  }
  if (L.log) {
    ctx.save();
    ctx.translate(9, (box.top + box.bottom) / 2);
    ctx.rotate(-Math.PI / 2);
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    ctx.fillStyle = "#999999";
    ctx.fillText("log scale", 0, 0);
    ctx.restore();
  }
  if (empty) {
    ctx.textBaseline = "middle";
    ctx.fillText("no loss logged", (box.left + box.right) / 2, (box.top + box.bottom) / 2);
  }
  for (const run of state.runs) {
    const loss = lossOf(run);
    // One run: training blue, evaluation rose. Two: each run in its colour, evaluation dashed.
    const colours = state.compare ? [run.colour, run.colour] : ["#4c6a8f", "#cc6677"];
    for (const [series, colour, dash] of [[loss.training, colours[0], []], [loss.evaluation, colours[1], [5, 3]]]) {
      if (!series.length) continue;
      ctx.beginPath();
      series.forEach(([step, value], k) => (k ? ctx.lineTo(L.x(step), L.y(value)) : ctx.moveTo(L.x(step), L.y(value))));
      ctx.setLineDash(dash);
      // Two runs' curves often coincide: the left run's wider, under the right run's.
      ctx.lineWidth = state.compare ? (run.r === 0 ? 4 : 1.4) : 1.6;
      ctx.strokeStyle = colour;
      ctx.globalAlpha = state.compare && run.r === 0 ? 0.55 : 1;
      ctx.stroke();
      ctx.globalAlpha = 1;
      ctx.setLineDash([]);
      if (series.length < 40) {
        ctx.fillStyle = colour;
        for (const [step, value] of series) { ctx.beginPath(); ctx.arc(L.x(step), L.y(value), 2, 0, 2 * Math.PI); ctx.fill(); }
      }
    }
  }
  // The shown step (between two checkpoints while tweening).
  if (state.shown >= 0) {
    let step = state.steps[state.shown];
    if (state.tween) step = state.steps[state.tween.from] + (state.steps[state.tween.to] - state.steps[state.tween.from]) * t;
    const x = Math.round(L.x(step)) + 0.5;
    ctx.strokeStyle = INK;
    ctx.lineWidth = 1.5;
    ctx.beginPath(); ctx.moveTo(x, box.top); ctx.lineTo(x, box.bottom); ctx.stroke();
    ctx.fillStyle = INK;
    ctx.beginPath(); ctx.moveTo(x - 4, box.top - 1); ctx.lineTo(x + 4, box.top - 1); ctx.lineTo(x, box.top + 5); ctx.fill();
  }
}

async function refreshLoss(run) {
  try { run.loss = await json(`${run.api}/loss`); } catch (error) { run.loss = null; report(error); }
  requestDraw({ loss: true });
}

// ---------------------------------------------------------------- showing checkpoints

function speed() { return Number($("speed").value) || 1; }

let showToken = 0;

function updateStepText() {
  const step = state.steps[state.shown];
  const newest = state.steps[state.steps.length - 1];
  $("step").textContent = step === undefined ? "no checkpoint yet" : `step ${step}`;
  $("newest").textContent = newest === undefined ? "" :
    `checkpoint ${state.shown + 1} of ${state.steps.length}, newest step ${newest}`;
  $("newest-step").textContent = newest === undefined ? "–" : String(newest);
  document.body.dataset.step = step === undefined ? "" : String(step);
  document.body.dataset.newestStep = newest === undefined ? "" : String(newest);
  requestDraw({ loss: true });
  const scrubber = $("scrubber");
  scrubber.max = String(Math.max(state.steps.length - 1, 0));
  scrubber.value = String(Math.max(state.shown, 0));
  if (state.compare) renderPanelHeads();
}

// Each panel's name, the step it shows, and its badge when that is not the shared step.
function renderPanelHeads() {
  // While a tween runs, what the panels are heading to.
  const step = state.steps[state.tween ? state.tween.to : state.shown];
  for (const run of state.runs) {
    const { panel } = run;
    const shown = state.tween ? stepOf(run, step) : run.shownStep;
    const status = run.doc && !run.doc.ready && run.doc.problem ? "problem" : panelState(run, step);
    panel.element.dataset.state = status;
    panel.step.textContent = shown === undefined ? "" : `step ${shown}`;
    const text = status === "problem" ? run.doc.problem : BADGES[status](shown);
    panel.badge.textContent = text;
    panel.badge.hidden = !text;
    panel.step.hidden = Boolean(text);
    panel.badge.dataset.state = status;
  }
}

// Settles on checkpoint `index` of the union: each panel's points, hover index, scores, the
// tooltip and pins' facts. `values`: per run, its points at its step there (or undefined).
function settle(index, values) {
  state.shown = index;
  state.tween = null;
  const step = state.steps[index];
  for (const run of state.runs) {
    const shown = stepOf(run, step);
    const v = values[run.r];
    if (shown === undefined || !v) continue;
    const changed = run.shownStep !== shown || !run.scores;
    run.shownStep = shown;
    run.pair = [v, v];
    run.panel.scatter.setPair(v, v);
    run.grid = buildGrid(v);
    if (changed || run.scores?.step !== shown) loadScores(run, shown);
  }
  updateStepText();
  renderBoards();
  refreshTooltip();
  renderPins();
  redrawAll();
}

// Each run's points at its step for union step `index` (undefined for a run without one).
function pointsAt(index) {
  const step = state.steps[index];
  return Promise.all(state.runs.map((run) => {
    const shown = stepOf(run, step);
    return shown === undefined || !isReady(run) ? undefined : points(run, shown);
  }));
}

// Shows checkpoint `index` at rest, at once.
async function show(index) {
  if (index < 0 || index >= state.steps.length) return;
  const token = ++showToken;
  const values = await pointsAt(index);
  if (token !== showToken) return;
  settle(index, values);
}

// Travels from the shown checkpoint to `index` (a neighbour), tweened on the GPU.
async function tweenTo(index) {
  if (state.shown < 0 || Math.abs(index - state.shown) !== 1 || index >= state.steps.length) return show(index);
  const token = ++showToken;
  const [from, to] = await Promise.all([pointsAt(state.shown), pointsAt(index)]);
  if (token !== showToken) return;
  for (const run of state.runs) {
    const a = from[run.r] ?? to[run.r], b = to[run.r] ?? a;
    if (!a) continue;
    run.pair = [a, b];
    run.panel.scatter.setPair(a, b);
  }
  setHover(null);
  return new Promise((resolve) => {
    state.tween = { from: state.shown, to: index, start: performance.now(), values: to, resolve, token };
    if (state.compare) renderPanelHeads();
    redrawAll();
  });
}

function finishTween() {
  const tween = state.tween;
  settle(tween.to, tween.values);
  tween.resolve();
  reconcile();
}

// Stops a tween under way where it is headed.
function cancelTween() {
  if (!state.tween) return;
  const tween = state.tween;
  settle(tween.to, tween.values);
  tween.resolve();
}

// A run's steps changed under a panel at rest (a checkpoint it lacked arrived): shows it again.
function reconcile() {
  if (state.tween || state.shown < 0) return;
  const step = state.steps[state.shown];
  if (state.runs.some((run) => isReady(run) && stepOf(run, step) !== run.shownStep)) show(state.shown).catch(report);
}

async function play() {
  if (state.steps.length < 2) return;
  state.playing = true;
  $("play").textContent = "Pause";
  if (state.shown >= state.steps.length - 1) await show(0);
  while (state.playing && state.shown < state.steps.length - 1) await tweenTo(state.shown + 1);
  pause();
}

function pause() {
  state.playing = false;
  $("play").textContent = "Play";
  state.following = state.shown === state.steps.length - 1;
}

function seek(index) {
  pause();
  cancelTween();
  state.following = index === state.steps.length - 1;
  show(index).catch(report);
}

function stepBy(delta) {
  const index = state.shown + delta;
  if (index < 0 || index >= state.steps.length) return;
  pause();
  cancelTween();
  state.following = index === state.steps.length - 1;
  tweenTo(index).catch(report);
}

// ---------------------------------------------------------------- leaderboards

async function loadScores(run, step) {
  let scores;
  try { scores = await json(`${run.api}/checkpoints/${step}/scores`); } catch (error) { report(error); return; }
  if (run.shownStep !== step) return;
  run.scores = scores;
  renderBoards();
  renderAgreement();
  renderPicture();
  requestDraw();
}

function renderAgreement() {
  // Absent or null without labels.
  const known = state.runs.filter((run) => run.scores?.mean_label_agreement != null);
  if (!state.compare) {
    const scores = state.runs[0].scores;
    $("agreement").textContent = scores?.mean_label_agreement == null ? "" :
      `Label agreement: on average ${(scores.mean_label_agreement * 100).toFixed(1)}% of a sample's ${scores.k} nearest neighbours share its label.`;
    return;
  }
  $("agreement").replaceChildren(...(known.length ? [
    "Label agreement, the share of a sample's nearest neighbours with its label, on average: ",
    ...known.flatMap((run, k) => [k ? ", " : "", el("span", { className: "run-key" }, runDot(run), ` ${run.name} `),
      el("strong", {}, `${(run.scores.mean_label_agreement * 100).toFixed(1)}%`)]),
    ".",
  ] : []));
}

// How each run's picture is made and how far it can be trusted at the step shown.
function renderPicture() {
  const described = state.runs.filter((run) => run.doc?.projection);
  $("picture").textContent = described.map((run) => {
    const words = [run.doc.projection, run.scores?.faithfulness].filter(Boolean).join(": ");
    return state.compare ? `${run.name}: ${words}` : words;
  }).join("; ");
}

// Builds the tabs from the run's list of boards, once.
function adoptBoards(boards) {
  if (!Array.isArray(boards) || Object.keys(BOARDS).length) return;
  for (const board of boards) BOARDS[board.key] = board;
  $("tabs").replaceChildren(...boards.map((board) => el("button", {
    type: "button", role: "tab", dataset: { board: board.key }, ariaSelected: String(board.key === state.board),
  }, board.tab)));
  if (!BOARDS[state.board]) state.board = boards[0]?.key ?? state.board;
}

function renderBoards() {
  const board = state.board;
  for (const tab of document.querySelectorAll("#tabs button")) tab.setAttribute("aria-selected", String(tab.dataset.board === board));
  $("board-hint").textContent = BOARDS[board]?.hint ?? "";
  const scores = state.runs[0].scores;
  $("board-step").textContent = state.compare ? (state.shown >= 0 ? `at step ${state.steps[state.shown]}` : "") :
    scores ? `at step ${scores.step}` : "";
  for (const run of state.runs) renderBoard(run);
}

function renderBoard(run) {
  const { table, valueHead, head } = run.board;
  const scores = run.scores;
  const board = state.board;
  valueHead.textContent = BOARDS[board]?.value ?? "";
  table.classList.toggle("no-thumbs", !hasImages());
  if (state.compare) {
    head.replaceChildren(runDot(run), el("span", { className: "board-name" }, run.name),
      el("span", { className: "hint" }, scores ? `step ${scores.step}` : ""));
  }
  const entries = scores?.[board] ?? [];
  const body = table.tBodies[0];
  if (!entries.length) {
    const why = !scores ? (run.steps.length ? "…" : "No checkpoint yet.") :
      BOARDS[board]?.needs_labels && !hasLabels() ? "The run has no labels." : BOARDS[board]?.empty ?? "No entries.";
    body.replaceChildren(el("tr", { className: "empty" }, el("td", { colSpan: 5 }, why)));
    return;
  }
  body.replaceChildren(...entries.map((entry, rank) => {
    const label = labelOf(entry.index);
    const row = el("tr", { dataset: { index: String(entry.index) },
      title: `Pin sample ${entry.index}` + (hasLabels() ? ` (${className(label)})` : "") },
    el("td", { className: "num" }, String(rank + 1)),
    el("td", { className: "thumb-col" }, hasImages() ? thumbCell(entry.index) : ""),
    el("td", {}, state.compare && hasLabels() && !hasImages() ? el("span", { className: "swatch-line" }, swatch(label), ` #${entry.index}`) : `#${entry.index}`),
    el("td", { className: "class-col" }, hasLabels() ? el("span", { className: "swatch-line" }, swatch(label), ` ${className(label)}`) : "–"),
    el("td", { className: "num" }, format(entry.value)));
    row.classList.toggle("pinned", state.pins.has(entry.index));
    if (state.compare) row.classList.toggle("hot", state.highlight === entry.index || state.hovered === entry.index);
    return row;
  }));
}

// A leaderboard row's image; side by side (no class column), framed in its class colour.
function thumbCell(index) {
  const image = el("img", { src: imageURL(index), alt: "", loading: "lazy" });
  if (state.compare && hasLabels()) image.style.borderColor = classColour(labelOf(index));
  return image;
}

function swatch(label) {
  const node = el("span", { className: "swatch" });
  node.style.background = classColour(label);
  return node;
}

function runDot(run) {
  const node = el("span", { className: "run-dot" });
  node.style.background = run.colour;
  return node;
}

// ---------------------------------------------------------------- legend

function renderLegend() {
  const names = hasLabels() ? state.facts.class_names : [];
  const counts = new Map();
  if (hasLabels()) for (const label of state.facts.labels) counts.set(label, (counts.get(label) ?? 0) + 1);
  const labels = hasLabels() ? [...new Set([...names.keys(), ...counts.keys()])].sort((a, b) => a - b) : [];
  if (!labels.length) {
    $("legend").replaceChildren(el("span", { className: "hint" },
      state.facts ? "The run has no labels: one colour for all samples." : "waiting for the first checkpoint"));
    return;
  }
  $("legend").replaceChildren(...labels.map((label) => {
    const button = el("button", { type: "button", dataset: { label: String(label) },
      title: `${className(label)}: ${counts.get(label) ?? 0} samples; click to hide or show` },
    swatch(label), className(label));
    button.setAttribute("aria-pressed", String(!state.hidden.has(label)));
    button.addEventListener("click", () => toggleClass(label));
    return button;
  }));
  $("show-all").hidden = state.hidden.size === 0;
}

function toggleClass(label) {
  if (state.hidden.has(label)) state.hidden.delete(label); else state.hidden.add(label);
  applyHidden();
}

function applyHidden() {
  const n = sampleCount();
  const faint = new Float32Array(n);
  if (state.hidden.size) for (let i = 0; i < n; i++) faint[i] = state.hidden.has(labelOf(i)) ? 1 : 0;
  for (const run of state.runs) run.panel.scatter.setFaint(faint);
  for (const button of $("legend").querySelectorAll("button")) {
    button.setAttribute("aria-pressed", String(!state.hidden.has(Number(button.dataset.label))));
  }
  $("show-all").hidden = state.hidden.size === 0;
  if (state.hovered !== null && isHidden(state.hovered) && !isRinged(state.hovered)) setHover(null);
  requestDraw({ scatter: true });
}

// ---------------------------------------------------------------- hover tooltip

let pointer = null;   // last pointer position over a scatter: [px, py, run], CSS pixels

function setHover(index, px, py, run = state.runs[0]) {
  if (index !== state.hovered) {
    state.hovered = index;
    if (index !== null) state.hoverRun = run.r;
    requestDraw();
    refreshTooltip();
    markBoardRows();
  }
  if (index !== null && px !== undefined) placeTooltip(run, px, py);
  if (index === null) $("tooltip").hidden = true;
}

// Side by side, the sample under the cursor or a row's sample is marked in both columns.
function markBoardRows() {
  if (!state.compare) return;
  for (const run of state.runs) {
    for (const row of run.board.table.tBodies[0].rows) {
      const index = Number(row.dataset.index);
      row.classList.toggle("hot", row.dataset.index !== undefined && (index === state.highlight || index === state.hovered));
    }
  }
}

// The tooltip beside the cursor, within the panels; with two panels, preferably away from the
// other panel and never over the hovered sample's ring there.
function placeTooltip(run, px, py) {
  const tip = $("tooltip");
  const box = $("panels");
  const stage = run.panel.stage.getBoundingClientRect(), outer = box.getBoundingClientRect();
  const ox = stage.left - outer.left + 1, oy = stage.top - outer.top + 1;   // the scatter's content box
  const x = px + ox, y = py + oy;
  const w = tip.offsetWidth || 250, h = tip.offsetHeight || 200;
  if (!state.compare) {
    let left = x + 16, top = y + 16;
    if (left + w > box.clientWidth) left = x - w - 16;
    if (top + h > box.clientHeight) top = y - h - 16;
    tip.style.left = `${Math.max(0, left)}px`;
    tip.style.top = `${Math.max(0, top)}px`;
    return;
  }
  const keepClear = [];
  for (const other of state.runs) {
    const position = state.hovered === null ? null : positionNow(other, state.hovered, 0);
    if (!position) continue;
    const [qx, qy] = toPixel(...position, other);
    const r = other.panel.stage.getBoundingClientRect();
    keepClear.push([qx + r.left - outer.left + 1, qy + r.top - outer.top + 1]);
  }
  const away = run.r === 0 ? -1 : 1;   // left panel: the tooltip to the left of the cursor first
  const lefts = [away < 0 ? x - w - 16 : x + 16, away < 0 ? x + 16 : x - w - 16];
  const tops = [y + 16, y - h - 16, Math.min(Math.max(8, y - h / 2), box.clientHeight - h)];
  const candidates = [];
  for (const top of tops) for (const left of lefts) candidates.push([left, top]);
  const fits = ([left, top]) => left >= 0 && top >= 0 && left + w <= box.clientWidth && top + h <= box.clientHeight;
  const covers = ([left, top]) => keepClear.some(([qx, qy]) => qx > left - 14 && qx < left + w + 14 && qy > top - 14 && qy < top + h + 14);
  const [left, top] = candidates.find((c) => fits(c) && !covers(c)) ?? candidates.find(fits) ?? candidates[0];
  tip.style.left = `${Math.max(0, Math.min(left, box.clientWidth - w))}px`;
  tip.style.top = `${Math.max(0, Math.min(top, box.clientHeight - h))}px`;
}

function fact(name, value) {
  return [el("dt", {}, name), el("dd", {}, value)];
}

let tooltipToken = 0;

function neighbourStrip(neighbours) {
  return el("div", { className: "tip-neighbours" }, ...neighbours.map((j) => {
    if (!hasImages()) return el("span", {}, `#${j} `);
    const image = el("img", { src: imageURL(j), alt: `sample ${j}`, title: `#${j} ${className(labelOf(j))}` });
    image.style.borderColor = classColour(labelOf(j));
    return image;
  }));
}

async function refreshTooltip() {
  const tip = $("tooltip");
  const index = state.hovered;
  const token = ++tooltipToken;
  if (index === null || state.shown < 0) { tip.hidden = true; return; }
  const label = labelOf(index);
  const runs = state.runs.filter((run) => run.shownStep !== undefined);
  const build = (docs) => {
    const at = (r, column) => {
      const doc = docs[r], k = doc ? doc.steps.indexOf(state.runs[r].shownStep) : -1;
      return doc && k >= 0 ? doc[column]?.[k] : undefined;
    };
    const value = (r, column) => (docs[r] ? format(at(r, column)) : "…");
    const columns = [["outlier score", "outlier_score"],
      ...(hasLabels() ? [["label agreement", "label_agreement"], ["kNN-AUM", "knn_aum"]] : [])];
    let facts;
    if (!state.compare) {
      facts = el("dl", { className: "tip-facts" }, ...columns.flatMap(([name, column]) => fact(name, value(0, column))));
    } else {
      facts = el("table", { className: "tip-table" },
        el("thead", {}, el("tr", {}, el("th", {}, ""), ...runs.map((run) =>
          el("th", { scope: "col", className: "num" }, el("span", { className: "run-key" }, runDot(run), ` ${run.name}`))))),
        el("tbody", {}, ...columns.map(([name, column]) => el("tr", {}, el("th", { scope: "row" }, name),
          ...runs.map((run) => el("td", { className: "num" }, value(run.r, column)))))));
    }
    const text = el("div", {},
      el("div", { className: "tip-title" }, `#${index}`),
      hasLabels() ? el("div", { className: "tip-class" }, swatch(label), className(label)) : "",
      facts);
    const top = el("div", { className: "tip-top" },
      hasImages() ? el("img", { className: "tip-image", src: imageURL(index), alt: `sample ${index}` }) : "", text);
    const parts = [top];
    for (const run of runs) {
      const doc = docs[run.r], k = doc ? doc.steps.indexOf(run.shownStep) : -1;
      const neighbours = doc && k >= 0 ? (doc.neighbours[k] ?? []).slice(0, 8) : [];
      if (!neighbours.length) continue;
      parts.push(el("p", { className: "tip-neighbours-title" }, ...(state.compare ?
        [runDot(run), ` ${run.name}: nearest neighbours at step ${run.shownStep}`] :
        [`nearest neighbours at step ${run.shownStep}`])));
      parts.push(neighbourStrip(neighbours));
    }
    tip.replaceChildren(...parts);
    tip.dataset.index = String(index);
    tip.hidden = false;
    if (pointer && pointer[2] === state.hoverRun) placeTooltip(state.runs[pointer[2]], pointer[0], pointer[1]);
  };
  build([]);
  try {
    const docs = await Promise.all(state.runs.map((run) =>
      (run.shownStep === undefined ? undefined : sampleAt(run, index, run.shownStep))));
    if (token === tooltipToken && state.hovered === index) build(docs);
  } catch (error) {
    report(error);
  }
}

// ---------------------------------------------------------------- pins

async function pin(index) {
  if (!Number.isSafeInteger(index) || index < 0 || index >= sampleCount()) return false;
  if (!state.pins.has(index)) {
    const docs = state.runs.map((run) => (run.steps.length ? null : undefined));
    state.pins.set(index, docs);
    renderPins();
    await Promise.all(state.runs.map(async (run) => {
      if (!run.steps.length) return;
      try {
        const doc = await sampleAt(run, index, run.steps[run.steps.length - 1]);
        if (state.pins.get(index) === docs) docs[run.r] = doc;
      } catch (error) {
        report(error);
      }
    }));
  }
  renderPins();
  requestDraw();
  return true;
}

function unpin(index) {
  state.pins.delete(index);
  if (state.highlight === index) state.highlight = null;
  renderPins();
  requestDraw();
}

// A new checkpoint of a run: each pin's document of that run again, with the new step.
async function refreshPins(run) {
  await Promise.all([...state.pins].map(async ([index, docs]) => {
    try {
      const doc = await sample(run, index, true);
      if (state.pins.get(index) === docs) docs[run.r] = doc;
    } catch (error) { report(error); }
  }));
  renderPins();
  requestDraw();
}

function pinFacts(run, doc) {
  const k = doc ? doc.steps.indexOf(run.shownStep) : -1;
  return doc && k >= 0 ? `outlier ${format(doc.outlier_score[k])}` +
    (hasLabels() ? `, agreement ${format(doc.label_agreement?.[k])}` : "") : doc === undefined ? "–" : "…";
}

function renderPins() {
  $("pins").replaceChildren(...[...state.pins].map(([index, docs]) => {
    const label = labelOf(index);
    const remove = el("button", { type: "button", title: `Remove pin ${index}`, "aria-label": `Remove pin ${index}` }, "×");
    remove.addEventListener("click", () => unpin(index));
    const name = state.compare ?
      el("span", { className: "pin-name" }, el("span", { className: "pin-title" }, `#${index}`, hasLabels() ? ` ${className(label)}` : ""),
        ...state.runs.map((run) => el("span", { className: "pin-facts pin-run" }, runDot(run), ` ${run.name}: ${pinFacts(run, docs[run.r])}`))) :
      el("span", { className: "pin-name" }, `#${index}`, hasLabels() ? ` ${className(label)}` : "", " ",
        el("span", { className: "pin-facts" }, pinFacts(state.runs[0], docs[0])));
    const item = el("li", { dataset: { index: String(index) } },
      hasImages() ? el("img", { src: imageURL(index), alt: "" }) : swatch(label), name, remove);
    item.addEventListener("mouseenter", () => { state.highlight = index; requestDraw(); });
    item.addEventListener("mouseleave", () => { state.highlight = null; requestDraw(); });
    return item;
  }));
  $("no-pins").hidden = state.pins.size > 0;
  $("download-pins").disabled = state.pins.size === 0;
  for (const run of state.runs) {
    for (const row of run.board.table.tBodies[0].rows) row.classList.toggle("pinned", state.pins.has(Number(row.dataset.index)));
  }
}

// Swift's Float.description, so the pins' CSV reads like `embedlapse export`'s table.
function floatText(value) {
  if (value === null || value === undefined || !Number.isFinite(value)) return "";
  if (Object.is(value, -0)) return "-0.0";
  const magnitude = Math.abs(value);
  if (magnitude !== 0 && (magnitude < 1e-4 || magnitude >= 2 ** 24)) {
    const [mantissa, exponent] = value.toExponential().split("e");
    const e = Number(exponent);
    return `${mantissa}e${e < 0 ? "-" : "+"}${String(Math.abs(e)).padStart(2, "0")}`;
  }
  return Number.isInteger(value) ? `${value}.0` : String(value);
}

function csvField(text) {
  return /[",\n\r]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

// The pinned samples as `embedlapse export` writes the table: one row per pinned sample per step;
// with two runs, a first column `run` (the run's name), the left run's rows first.
function pinsCSV() {
  const lines = [(state.compare ? "run," : "") +
    "step,index,label,class_name,x,y,outlier_score,label_agreement,label_margin,projection"];
  for (const run of state.runs) {
    const rows = [];
    for (const docs of state.pins.values()) {
      const doc = docs[run.r];
      if (!doc) continue;
      doc.steps.forEach((step, k) => rows.push([step, doc.index, doc, k]));
    }
    rows.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    for (const [step, index, doc, k] of rows) {
      const labelled = doc.label != null;
      lines.push([...(state.compare ? [csvField(run.name)] : []), step, index, labelled ? doc.label : "",
        labelled && doc.class_name != null ? csvField(doc.class_name) : "",
        floatText(doc.x[k]), floatText(doc.y[k]), floatText(doc.outlier_score?.[k]),
        labelled ? floatText(doc.label_agreement?.[k]) : "", labelled ? floatText(doc.label_margin?.[k]) : "",
        csvField(run.doc?.projection_field ?? "pca")].join(","));
    }
  }
  return lines.join("\n") + "\n";
}

function downloadPins() {
  const url = URL.createObjectURL(new Blob([pinsCSV()], { type: "text/csv" }));
  const link = el("a", { href: url, download: "embedlapse-pins.csv" });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

// ---------------------------------------------------------------- interaction

function setupScatterInput(run) {
  const canvas = run.panel.canvas;
  let drag = null;
  const local = (event) => {
    const rect = canvas.getBoundingClientRect();
    return [event.clientX - rect.left, event.clientY - rect.top];
  };
  canvas.addEventListener("wheel", (event) => {
    if (!state.facts) return;
    event.preventDefault();
    const [px, py] = local(event);
    const [x, y] = toData(px, py, run);
    const scale = Math.exp(-event.deltaY * (event.deltaMode === 1 ? 0.05 : 0.0015));
    const zoom = Math.min(Math.max(state.view.zoom * scale, ZOOM_RANGE[0]), ZOOM_RANGE[1]);
    const ratio = state.view.zoom / zoom;
    state.view = { zoom, cx: x - (x - state.view.cx) * ratio, cy: y - (y - state.view.cy) * ratio };
    viewChanged();
    hoverAt(run, px, py);
  }, { passive: false });
  canvas.addEventListener("pointerdown", (event) => {
    if (event.button !== 0) return;
    drag = { start: local(event), last: local(event), moved: false };
    canvas.setPointerCapture(event.pointerId);
  });
  canvas.addEventListener("pointermove", (event) => {
    const [px, py] = local(event);
    pointer = [px, py, run.r];
    if (drag) {
      const [lx, ly] = drag.last;
      if (Math.hypot(px - drag.start[0], py - drag.start[1]) > 3) drag.moved = true;
      if (drag.moved) {
        canvas.classList.add("dragging");
        const { width, height } = canvasSize(run);
        const h = half();
        state.view = { ...state.view,
          cx: state.view.cx - (px - lx) / width * 2 * h / state.view.zoom,
          cy: state.view.cy + (py - ly) / height * 2 * h / state.view.zoom };
        drag.last = [px, py];
        viewChanged();
        setHover(null);
        return;
      }
    }
    hoverAt(run, px, py);
  });
  const end = (event) => {
    if (!drag) return;
    const wasClick = !drag.moved;
    drag = null;
    canvas.classList.remove("dragging");
    if (event.type === "pointerup" && wasClick) {
      const [px, py] = local(event);
      const index = nearest(run, px, py);
      if (index === null) return;
      if (state.pins.has(index)) unpin(index); else pin(index).catch(report);
    }
  };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
  canvas.addEventListener("pointerleave", () => {
    if (pointer && pointer[2] === run.r) pointer = null;
    // A hover still to be looked up (a wheel's, a move's) is no longer where the cursor is.
    if (hoverFrame !== null) { cancelAnimationFrame(hoverFrame); hoverFrame = null; }
    if (!drag && state.hoverRun === run.r) setHover(null);
  });
  canvas.addEventListener("dblclick", (event) => { event.preventDefault(); resetView(); });
  run.panel.reset.addEventListener("click", resetView);
}

let hoverFrame = null;
function hoverAt(run, px, py) {
  if (hoverFrame !== null) cancelAnimationFrame(hoverFrame);
  hoverFrame = requestAnimationFrame(() => {
    hoverFrame = null;
    setHover(nearest(run, px, py), px, py, run);
  });
}

function resetView() {
  state.view = { cx: 0, cy: 0, zoom: 1 };
  viewChanged();
}

function viewChanged() {
  const v = state.view;
  for (const run of state.runs) run.panel.reset.hidden = v.zoom === 1 && v.cx === 0 && v.cy === 0;
  requestDraw({ scatter: true });
}

function setupBoardInput(run) {
  const body = run.board.table.tBodies[0];
  const rowOf = (event) => event.target.closest("tr[data-index]");
  body.addEventListener("mouseover", (event) => {
    const row = rowOf(event);
    const index = row ? Number(row.dataset.index) : null;
    if (index !== state.highlight) { state.highlight = index; markBoardRows(); requestDraw(); }
  });
  body.addEventListener("mouseleave", () => { state.highlight = null; markBoardRows(); requestDraw(); });
  body.addEventListener("click", (event) => {
    const row = rowOf(event);
    if (row) pin(Number(row.dataset.index)).catch(report);
  });
}

function setupControls() {
  $("play").addEventListener("click", () => (state.playing ? pause() : play().catch(report)));
  $("scrubber").addEventListener("input", (event) => seek(Number(event.target.value)));
  document.addEventListener("keydown", (event) => {
    const target = event.target;
    const range = target instanceof HTMLInputElement && target.type === "range";
    if ((target instanceof HTMLInputElement && !range) || target instanceof HTMLSelectElement || target instanceof HTMLTextAreaElement) return;
    if (event.altKey || event.ctrlKey || event.metaKey) return;
    if (event.key === " ") {
      // Space plays or pauses wherever the focus is (not a click on the focused button).
      event.preventDefault();
      state.playing ? pause() : play().catch(report);
    } else if (!range && event.key === "ArrowRight") { event.preventDefault(); stepBy(1); }
    else if (!range && event.key === "ArrowLeft") { event.preventDefault(); stepBy(-1); }
  });
  // A focused button would also take the space's keyup as a click.
  document.addEventListener("keyup", (event) => {
    if (event.key === " " && event.target instanceof HTMLButtonElement) event.preventDefault();
  });
  $("loss").addEventListener("click", (event) => {
    if (!state.steps.length) return;
    const rect = $("loss").getBoundingClientRect();
    const step = lossLayout().step(event.clientX - rect.left);
    let best = 0;
    state.steps.forEach((s, k) => { if (Math.abs(s - step) < Math.abs(state.steps[best] - step)) best = k; });
    seek(best);
  });
  $("show-all").addEventListener("click", () => { state.hidden.clear(); applyHidden(); });
  $("tabs").addEventListener("click", (event) => {
    const tab = event.target.closest("button[data-board]");
    if (!tab) return;
    state.board = tab.dataset.board;
    renderBoards();
    requestDraw();
  });
  for (const run of state.runs) setupBoardInput(run);
  $("pin-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("pin-input").value.trim().replace(/^#/, "");
    const index = /^\d{1,15}$/.test(text) ? Number(text) : NaN;
    if (!state.facts || !(index < sampleCount())) {
      $("pin-error").textContent = state.facts ? `an index from 0 to ${sampleCount() - 1}` : "no run yet";
      return;
    }
    $("pin-error").textContent = "";
    $("pin-input").value = "";
    pin(index).catch(report);
  });
  $("pin-input").addEventListener("input", () => { $("pin-error").textContent = ""; });
  $("download-pins").addEventListener("click", downloadPins);
  window.addEventListener("resize", redrawAll);
}

// ---------------------------------------------------------------- the page's panels

// Panel 0 and board column 0 are in index.html; a comparison's run 1 gets copies of them.
function buildPanels() {
  const first = document.querySelector(".panel");
  const column = document.querySelector(".board-column");
  for (const entry of state.runs.slice(1)) {
    const panel = first.cloneNode(true);
    const boardColumn = column.cloneNode(true);
    for (const node of [panel, boardColumn]) {
      node.dataset.run = String(entry.r);
      for (const child of node.querySelectorAll("[id]")) {
        if (child.id === "no-webgl") child.remove(); else child.id = `${child.id}-${entry.r}`;
      }
    }
    first.parentElement.insertBefore(panel, $("tooltip"));
    column.parentElement.append(boardColumn);
  }
  for (const run of state.runs) {
    const element = document.querySelector(`.panel[data-run="${run.r}"]`);
    const q = (selector) => element.querySelector(selector);
    run.panel = { element, stage: q(".stage"), canvas: q(".scatter"), overlay: q(".overlay"), reset: q(".reset-view"),
      head: q(".panel-head"), name: q(".panel-name"), step: q(".panel-step"), badge: q(".badge"), scatter: null };
    const boardColumn = document.querySelector(`.board-column[data-run="${run.r}"]`);
    run.board = { column: boardColumn, head: boardColumn.querySelector(".board-head"), table: boardColumn.querySelector("table"),
      valueHead: boardColumn.querySelector(".value-head") };
  }
  if (!state.compare) return;
  document.body.classList.add("compare");
  document.title = `Embedlapse explorer: ${state.runs.map((run) => run.name).join(" and ")}`;
  for (const run of state.runs) {
    const { panel, board } = run;
    panel.head.hidden = false;
    panel.head.style.borderTopColor = run.colour;
    panel.name.replaceChildren(runDot(run), ` ${run.name}`);
    panel.name.title = run.path;
    panel.canvas.setAttribute("aria-label", `Embeddings of the evaluation set in ${run.name} at the checkpoint it shows`);
    board.head.hidden = false;
  }
  $("run-name").replaceChildren(...state.runs.flatMap((run, k) => [k ? el("span", { className: "versus" }, "vs") : "",
    el("span", { className: "run-key", title: run.path }, runDot(run), ` ${run.name}`)]));
  $("view-hint").textContent = "One view for both panels: wheel zooms, drag pans, double-click resets. " +
    "Hover or click a point to see or pin the sample in both.";
  // The loss chart's key: one colour per run.
  $("loss-keys").replaceChildren(...state.runs.map((run) => {
    const line = el("span", { className: "key-line" });
    line.style.borderTopColor = run.colour;
    return el("span", { className: "key" }, line, run.name);
  }), el("span", { className: "key" }, "solid training, dashed evaluation"));
  $("loss").setAttribute("aria-label", "Both runs' training and evaluation loss; click to seek to the nearest checkpoint");
  // One table download per run.
  const exports = $("download-table").parentElement;
  for (const run of state.runs) {
    const link = run.r === 0 ? $("download-table") : el("a", { id: `download-table-${run.r}` });
    link.href = `${run.api}/export.csv`;
    link.download = `embedlapse-${run.name.replace(/[^A-Za-z0-9._-]+/g, "_")}-table.csv`;
    link.replaceChildren(`Download ${run.name}'s table (CSV)`);
    if (run.r > 0) exports.insertBefore(link, $("download-pins"));
  }
  $("download-pins").title = "Both runs' rows of the pinned samples, a column `run` naming the run";
}

// ---------------------------------------------------------------- the runs, live

// The facts every panel needs: from the first run that has them.
function adoptFacts(doc) {
  if (state.facts || !doc.ready) return;
  state.facts = doc;
  for (const run of state.runs) {
    run.panel.scatter.setClasses(doc.labels, doc.sample_count);
    run.panel.scatter.setFaint(new Float32Array(doc.sample_count));
  }
  renderLegend();
  renderBoards();
}

async function loadRun(run) {
  run.doc = await json(`${run.api}/run`);
  adoptBoards(run.doc.boards);
  if (!state.compare) $("run-name").textContent = run.doc.run;
  if (!run.doc.ready) { if (state.compare) renderPanelHeads(); return false; }
  adoptFacts(run.doc);
  for (const step of run.doc.steps) addStep(run, step);
  return true;
}

function addStep(run, step) {
  if (run.steps.includes(step)) return false;
  run.steps.push(step);
  run.steps.sort((a, b) => a - b);
  if (!state.steps.includes(step)) {
    state.steps.push(step);
    state.steps.sort((a, b) => a - b);
  }
  return true;
}

async function onCheckpoint(run, step) {
  if (!isReady(run)) {
    if (!(await loadRun(run))) return;
  }
  const wasNewest = state.shown === state.steps.length - 1;
  const before = state.steps.length;
  const added = addStep(run, step);
  if (!added && state.shown >= 0) return;
  // A step new to the union before the shown one (a run catching up): the indices move up by one.
  const grew = state.steps.length > before;
  const at = state.steps.indexOf(step);
  if (grew && state.shown >= 0) {
    if (at <= state.shown) state.shown++;
    if (state.tween) {
      if (at <= state.tween.from) state.tween.from++;
      if (at <= state.tween.to) state.tween.to++;
    }
  }
  refreshLoss(run);
  if (state.pins.size) refreshPins(run);
  if (state.shown < 0) { await show(state.steps.length - 1); return; }
  if (state.following && wasNewest && grew && at === state.steps.length - 1 && !state.playing && !state.tween) {
    await tweenTo(state.steps.length - 1);
  } else {
    updateStepText();
    reconcile();
  }
}

function connect() {
  let open = 0;
  for (const run of state.runs) {
    const events = new EventSource(`${run.api}/events`);
    let counted = false;
    events.addEventListener("open", () => {
      if (!counted) { counted = true; open++; }
      $("status").textContent = open === state.runs.length ? "live" : "connecting…";
    });
    events.addEventListener("error", () => {
      if (counted) { counted = false; open--; }
      $("status").textContent = "reconnecting…";
    });
    let queue = Promise.resolve();
    events.addEventListener("checkpoint", (event) => {
      const step = Number(event.data);
      if (Number.isSafeInteger(step)) queue = queue.then(() => onCheckpoint(run, step)).catch(report);
    });
  }
}

// A comparison's runs end without an event: a run whose panel shows its last step past it is asked
// again every few seconds whether it is done ("finished at step S"), or what stops it.
function watchDone() {
  if (!state.compare) return;
  setInterval(async () => {
    if (state.shown < 0) return;
    const step = state.steps[state.shown];
    const asking = state.runs.filter((run) => isReady(run) ? !run.doc.done && panelState(run, step) === "older" &&
      run.shownStep === run.steps[run.steps.length - 1] : !run.steps.length);
    let changed = false;
    for (const run of asking) {
      try {
        const doc = await json(`${run.api}/run`);
        if (isReady(run)) { changed ||= doc.done !== run.doc.done; run.doc.done = doc.done; }
        else if (run.doc && !doc.ready) { changed ||= doc.problem !== run.doc.problem; run.doc.problem = doc.problem; }
      } catch (error) { /* asked again at the next tick */ }
    }
    if (changed) renderPanelHeads();
  }, 3000);
}

function report(error) {
  $("status").textContent = String(error?.message || error);
  console.error(error);
}

const runOf = (r) => state.runs[r ?? 0];

// For tests and the curious: the view transform and a few read-outs. `r`: the panel (0, or 1 the
// right run of a comparison).
window.explorer = {
  get ready() { return state.shown >= 0 && !state.tween; },
  get webgl2() { return state.runs.length > 0 && state.runs.every((run) => run.panel?.scatter); },
  view(r) {
    const { width, height } = canvasSize(runOf(r));
    return { cx: state.view.cx, cy: state.view.cy, zoom: state.view.zoom, half: half(), width, height };
  },
  project: (x, y, r) => toPixel(x, y, runOf(r)),
  shownStep: () => state.steps[state.shown] ?? null,
  steps: () => [...state.steps],
  pins: () => [...state.pins.keys()],
  pinsLoaded: () => [...state.pins.values()].every((docs) => docs.every((doc) => doc !== null)),
  hovered: () => state.hovered,
  hidden: () => [...state.hidden],
  thumbnailsDrawn: (r) => runOf(r).thumbnailsDrawn,
  pinsCSV,
  // Two runs: their names; the panel's step at rest and what its badge says ("current", "older",
  // "finished", "not started", "empty"); whether every panel's leaderboard is its shown step's.
  runs: () => state.runs.map((run) => run.name),
  compare: () => state.compare,
  panelStep: (r) => runOf(r).shownStep ?? null,
  panelState: (r) => panelState(runOf(r)),
  runSteps: (r) => [...runOf(r).steps],
  scoresLoaded: () => state.runs.every((run) => run.shownStep === undefined || run.scores?.step === run.shownStep),
  // Sample `index` where panel r draws it now: CSS pixels from its scatter's content box's top left,
  // and from the window's (client); null where it has no position.
  position(index, r) {
    const run = runOf(r);
    const p = positionNow(run, index, 0);
    if (!p) return null;
    const [x, y] = toPixel(...p, run);
    const rect = run.panel.canvas.getBoundingClientRect();
    return { x, y, clientX: rect.left + 1 + x, clientY: rect.top + 1 + y };
  },
  setView(view) { state.view = { ...state.view, ...view }; viewChanged(); },
  pin: (index) => pin(index),
  seek: (index) => seek(index),
  // The union's index of a step (for seek), or -1.
  indexOf: (step) => state.steps.indexOf(step),
  // Back to the page as loaded: no pins, every class shown, the whole view, the newest step.
  async reset() {
    pause();
    cancelTween();
    state.pins.clear();
    state.hidden.clear();
    state.highlight = null;
    state.board = "outliers";
    renderPins();
    renderBoards();
    applyHidden();
    resetView();
    state.following = true;
    await show(state.steps.length - 1);
  },
};

async function main() {
  let entries = [{ name: "", run: "" }];
  try {
    const listed = await json("/api/runs");
    if (Array.isArray(listed.runs) && listed.runs.length) entries = listed.runs.slice(0, 2);
  } catch (error) {
    report(error);
  }
  state.compare = entries.length > 1;
  state.runs = entries.map((entry, r) => makeRun(r, entry, state.compare));
  buildPanels();
  try {
    for (const run of state.runs) run.panel.scatter = new Scatter(run.panel.canvas);
  } catch (error) {
    $("no-webgl").hidden = false;
    report(error);
    return;
  }
  for (const run of state.runs) setupScatterInput(run);
  setupControls();
  await Promise.all(state.runs.map(loadRun));
  for (const run of state.runs) refreshLoss(run);
  if (state.steps.length) await show(state.steps.length - 1);
  else {
    $("step").textContent = state.runs.map((run) => run.doc?.problem).find(Boolean) ?? "waiting for the first checkpoint";
    if (state.compare) renderPanelHeads();
  }
  connect();
  watchDone();
}

main().catch(report);
