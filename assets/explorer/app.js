// Embedlapse explorer: the run's checkpoints as a WebGL2 scatter with zoom and pan, a scrubber with
// play/pause, a loss curve, hover details, pinned trajectories, class toggles, leaderboards, and
// live updates over Server-Sent Events. Every number comes from the server's analysis; the page
// only draws. Tweening is on the GPU: the vertex shader blends each point's positions at two
// checkpoints by one uniform, so playing costs the CPU nothing per point and frame. What is drawn
// over the points (rings, trajectories, thumbnails) is a 2D canvas on top, for a few samples only.

// The film's class colours: Paul Tol's muted scheme, a medium grey as the tenth; cycles past ten.
const PALETTE = [0x332288, 0x88ccee, 0x44aa99, 0x117733, 0x999933, 0xddcc77, 0xcc6677, 0x882255, 0xaa4499, 0x888888];
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
const BOARDS = {
  outliers: { value: "score", hint: "most atypical first: lowest kNN outlier score at the shown step" },
  label_issues: { value: "kNN-AUM", hint: "likely label issues: lowest running kNN-AUM up to the shown step" },
  movers: { value: "moved", hint: "moved the most since the previous checkpoint, relative to its neighbours" },
};

const state = {
  run: null,            // /api/run
  steps: [],            // analysed steps, ascending
  points: new Map(),    // step -> Float32Array (N * 2), fetched lazily
  shown: -1,            // index into steps of the checkpoint at rest on screen
  tween: null,          // {from, to, start, a, b}: the move under way, or null
  playing: false,
  following: true,      // jump to each new checkpoint while the newest is shown
  view: { cx: 0, cy: 0, zoom: 1 },
  hidden: new Set(),    // hidden classes (drawn faint grey)
  pins: new Map(),      // index -> sample document (or null while it loads), in pinning order
  samples: new Map(),   // index -> Promise of the sample document (cache, refreshed per new step)
  scores: null,         // scores of the shown step
  board: "outliers",
  highlight: null,      // sample ringed for a hovered leaderboard row or pin
  hovered: null,        // sample under the cursor
  loss: null,           // /api/loss
  grid: null,           // hover index of the shown checkpoint
  images: new Map(),    // index -> HTMLImageElement, for the thumbnails drawn on the overlay
};

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
async function points(step) {
  if (state.points.has(step)) return state.points.get(step);
  const response = await fetch(`/api/checkpoints/${step}/points`);
  if (!response.ok) throw new Error(`points of step ${step}: ${response.status}`);
  const buffer = await response.arrayBuffer();
  const n = state.run.sample_count;
  if (buffer.byteLength !== n * 8) throw new Error(`points of step ${step}: ${buffer.byteLength} bytes, expected ${n * 8}`);
  let values;
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] === 1) {
    values = new Float32Array(buffer);
  } else {
    const view = new DataView(buffer);
    values = new Float32Array(n * 2);
    for (let i = 0; i < n * 2; i++) values[i] = view.getFloat32(i * 4, true);
  }
  state.points.set(step, values);
  return values;
}

// One sample over every analysed checkpoint; fetched again once it lacks a newer step.
function sample(index, fresh = false) {
  const cached = state.samples.get(index);
  if (cached && !fresh) return cached;
  const promise = json(`/api/samples/${index}`);
  state.samples.set(index, promise);
  promise.catch(() => state.samples.delete(index));
  return promise;
}

async function sampleAt(index, step) {
  let doc = await sample(index);
  if (!doc.steps.includes(step)) doc = await sample(index, true);
  return doc;
}

const hasLabels = () => Array.isArray(state.run?.labels);
const hasImages = () => Boolean(state.run?.thumbnail);
const labelOf = (index) => (hasLabels() ? state.run.labels[index] : 0);
const imageURL = (index) => `/api/samples/${index}/image.png`;

function className(label) {
  const names = state.run.class_names;
  if (!hasLabels()) return "";
  return label >= 0 && label < names.length ? names[label] : `class ${label}`;
}

function format(value, digits = 3) {
  if (value === null || value === undefined || !Number.isFinite(value)) return "–";
  if (value === 0) return "0";
  if (Math.abs(value) >= 1000) return value.toFixed(0);
  if (Math.abs(value) < 0.001) return value.toExponential(1);
  return Number(value.toPrecision(digits)).toString();
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
    if (this.count === 0) return;
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

// The scatter's CSS size; the view maps data [-h, h]² (zoom 1, centre 0) onto it.
function canvasSize() {
  const canvas = $("scatter");
  return { width: canvas.clientWidth || canvas.width, height: canvas.clientHeight || canvas.height };
}

const half = () => state.run?.view_half_extent ?? 1;
const clampData = (v) => Math.max(-half(), Math.min(half(), v));

// Data coordinates to CSS pixels from the scatter's top left, for the view as it is now (a
// function, so that a loop over many points reads the layout once).
function projector() {
  const { width, height } = canvasSize();
  const { cx, cy, zoom } = state.view;
  const h = half();
  const sx = zoom / h * width / 2, sy = zoom / h * height / 2;
  return (x, y) => [(Math.max(-h, Math.min(h, x)) - cx) * sx + width / 2, height / 2 - (Math.max(-h, Math.min(h, y)) - cy) * sy];
}

const toPixel = (x, y) => projector()(x, y);

function toData(px, py) {
  const { width, height } = canvasSize();
  const { cx, cy, zoom } = state.view;
  const h = half();
  return [cx + (px / width * 2 - 1) * h / zoom, cy + (1 - py / height * 2) * h / zoom];
}

function pointSize() {
  const n = state.run?.sample_count ?? 0;
  const base = n > 50000 ? 2 : n > 5000 ? 3 : n > 1500 ? 5 : 6;
  return base * Math.min(Math.max(Math.sqrt(state.view.zoom), 1), 4);
}

// ---------------------------------------------------------------- hover index

// A coarse grid over [-h, h]² of the shown checkpoint's (clamped) positions: a hover looks at the
// few cells around the cursor, not at every point.
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

const isRinged = (index) => state.pins.has(index) || ringedEntries().some((e) => e.index === index);
const isHidden = (index) => state.hidden.has(labelOf(index));

// The nearest point within HOVER_RADIUS CSS pixels of (px, py), or null; hidden classes are skipped
// unless the sample is ringed.
function nearest(px, py) {
  const grid = state.grid;
  if (!grid || state.tween) return null;
  const { width } = canvasSize();
  const [x, y] = toData(px, py);
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
        if (d <= bestDistance && (!isHidden(i) || isRinged(i))) { best = i; bestDistance = d; }
      }
    }
  }
  return best;
}

// ---------------------------------------------------------------- drawing

let scatter = null;
let frameRequest = null;

const dirty = { scatter: true, loss: true };

// Draws on the next frame: the overlay always; the points (the costly part, 100,000 of them) and
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
  if (!state.run || state.shown < 0) return;
  const t = tweenProgress(now);
  if (dirty.scatter || state.tween) scatter.draw(t, half(), state.view, pointSize(), state.hidden.size > 0);
  drawOverlay(t);
  if (dirty.loss || state.tween) drawLoss(t);
  dirty.scatter = dirty.loss = false;
  if (state.tween) {
    if (t < 1) requestDraw();
    else finishTween();
  }
}

// Where sample i is drawn now: its position blended between the tween's checkpoints, clamped.
function positionNow(i, t) {
  const a = state.tween ? state.tween.a : state.points.get(state.steps[state.shown]);
  const b = state.tween ? state.tween.b : a;
  if (!a) return null;
  const x = a[2 * i] + (b[2 * i] - a[2 * i]) * t, y = a[2 * i + 1] + (b[2 * i + 1] - a[2 * i + 1]) * t;
  return Number.isFinite(x) && Number.isFinite(y) ? [clampData(x), clampData(y)] : null;
}

function ringedEntries() {
  return (state.scores?.[state.board] ?? []).slice(0, RINGED);
}

function overlayContext() {
  const canvas = $("overlay");
  const { width, height } = canvasSize();
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

function drawOverlay(t) {
  const ctx = overlayContext();
  const toPixel = projector();
  const { width, height } = canvasSize();
  const inView = ([px, py], margin = 0) => px >= -margin && py >= -margin && px <= width + margin && py <= height + margin;
  const dot = pointSize() / 2;
  ctx.font = "11px 'DejaVu Sans', sans-serif";
  ctx.textBaseline = "middle";

  // Zoomed in on a few points: draw them as their images.
  state.thumbnailsDrawn = 0;
  if (!state.tween && hasImages() && state.view.zoom > 1.5) {
    const values = state.points.get(state.steps[state.shown]);
    const visible = [];
    for (let i = 0; i < state.run.sample_count && visible.length <= THUMBNAIL_LIMIT; i++) {
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
        state.thumbnailsDrawn++;
        ctx.lineWidth = 2;
        ctx.strokeStyle = classColour(labelOf(i));
        ctx.strokeRect(px - size / 2, py - size / 2, size, size);
      }
    }
  }

  // Pinned trajectories: the way travelled so far solid, the way still to come dashed.
  const shownStep = state.steps[state.shown];
  for (const [index, doc] of state.pins) {
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
  ringedEntries().forEach((entry, rank) => {
    const position = positionNow(entry.index, t);
    if (!position) return;
    const p = toPixel(...position);
    if (!inView(p, 10)) return;
    ring(ctx, p[0], p[1], dot + 4, INK, 1.5, classColour(labelOf(entry.index)));
    haloText(ctx, String(rank + 1), p[0] + dot + 6, p[1] - dot - 4);
  });

  // Pins' markers where they are now.
  for (const index of state.pins.keys()) {
    const position = positionNow(index, t);
    if (!position) continue;
    const p = toPixel(...position);
    if (!inView(p, 20)) continue;
    ring(ctx, p[0], p[1], dot + 5, INK, 2.5, classColour(labelOf(index)));
    ctx.font = "bold 11px 'DejaVu Sans', sans-serif";
    haloText(ctx, `#${index}`, p[0] + dot + 9, p[1]);
    ctx.font = "11px 'DejaVu Sans', sans-serif";
  }

  // The hovered point or the sample of a hovered row or pin.
  for (const index of [state.highlight, state.hovered]) {
    if (index === null) continue;
    const position = positionNow(index, t);
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

// The loss chart's scales: steps across; loss up, on a log scale once it spans a decade or so.
function lossLayout() {
  const canvas = $("loss");
  const width = canvas.clientWidth || canvas.width, height = canvas.clientHeight || canvas.height;
  const loss = state.loss ?? { training: [], evaluation: [] };
  const steps = state.steps;
  // Loops, not spreads: a long run logs more points than a call takes arguments.
  let x0 = steps[0] ?? 0, x1 = steps[steps.length - 1] ?? 1, low = Infinity, high = 1e-9, count = 0;
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
  x1 = Math.max(x1, x0 + 1);
  const log = count > 1 && low > 0 && high / low > 8;
  const box = { left: 40, right: width - 10, top: 8, bottom: height - 20 };
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
    canvas, width, height, loss, box, y, yTicks, log,
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
  const empty = !L.loss.training.length && !L.loss.evaluation.length;
  for (const v of empty ? [] : L.yTicks) {
    const y = Math.round(L.y(v)) + 0.5;
    ctx.beginPath(); ctx.moveTo(box.left, y); ctx.lineTo(box.right, y); ctx.stroke();
    ctx.fillText(format(v, 2), box.left - 5, y);
  }
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  for (const step of L.ticks) ctx.fillText(String(step), L.x(step), box.bottom + 5);
  // Checkpoints: a tick each on the axis.
  ctx.strokeStyle = "#aaaaaa";
  for (const step of state.steps) {
    const x = Math.round(L.x(step)) + 0.5;
    ctx.beginPath(); ctx.moveTo(x, box.bottom); ctx.lineTo(x, box.bottom + 3); ctx.stroke();
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
  for (const [series, colour, dash] of [[L.loss.training, "#4c6a8f", []], [L.loss.evaluation, "#cc6677", [5, 3]]]) {
    if (!series.length) continue;
    ctx.beginPath();
    series.forEach(([step, value], k) => (k ? ctx.lineTo(L.x(step), L.y(value)) : ctx.moveTo(L.x(step), L.y(value))));
    ctx.setLineDash(dash);
    ctx.lineWidth = 1.6;
    ctx.strokeStyle = colour;
    ctx.stroke();
    ctx.setLineDash([]);
    if (series.length < 40) {
      ctx.fillStyle = colour;
      for (const [step, value] of series) { ctx.beginPath(); ctx.arc(L.x(step), L.y(value), 2, 0, 2 * Math.PI); ctx.fill(); }
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

async function refreshLoss() {
  try { state.loss = await json("/api/loss"); } catch (error) { state.loss = null; report(error); }
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
}

// Settles on checkpoint `index`: text, hover index, scores, the tooltip and pins' facts.
function settle(index, values) {
  state.shown = index;
  state.tween = null;
  scatter.setPair(values, values);
  state.grid = buildGrid(values);
  updateStepText();
  loadScores(state.steps[index]);
  refreshTooltip();
  renderPins();
  redrawAll();
}

// Shows checkpoint `index` at rest, at once.
async function show(index) {
  if (index < 0 || index >= state.steps.length) return;
  const token = ++showToken;
  const values = await points(state.steps[index]);
  if (token !== showToken) return;
  settle(index, values);
}

// Travels from the shown checkpoint to `index` (a neighbour), tweened on the GPU.
async function tweenTo(index) {
  if (state.shown < 0 || Math.abs(index - state.shown) !== 1 || index >= state.steps.length) return show(index);
  const token = ++showToken;
  const [a, b] = await Promise.all([points(state.steps[state.shown]), points(state.steps[index])]);
  if (token !== showToken) return;
  scatter.setPair(a, b);
  setHover(null);
  return new Promise((resolve) => {
    state.tween = { from: state.shown, to: index, start: performance.now(), a, b, resolve, token };
    redrawAll();
  });
}

function finishTween() {
  const tween = state.tween;
  settle(tween.to, tween.b);
  tween.resolve();
}

// Stops a tween under way where it is headed.
function cancelTween() {
  if (!state.tween) return;
  const tween = state.tween;
  settle(tween.to, tween.b);
  tween.resolve();
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

async function loadScores(step) {
  let scores;
  try { scores = await json(`/api/checkpoints/${step}/scores`); } catch (error) { report(error); return; }
  if (state.steps[state.shown] !== step) return;
  state.scores = scores;
  renderBoard();
  // Absent or null without labels.
  $("agreement").textContent = scores.mean_label_agreement == null ? "" :
    `Label agreement: on average ${(scores.mean_label_agreement * 100).toFixed(1)}% of a sample's ${scores.k} nearest neighbours share its label.`;
  requestDraw();
}

function renderBoard() {
  const scores = state.scores;
  const board = state.board;
  for (const tab of document.querySelectorAll("#tabs button")) tab.setAttribute("aria-selected", String(tab.dataset.board === board));
  $("value-head").textContent = BOARDS[board].value;
  $("board-hint").textContent = BOARDS[board].hint;
  $("board-step").textContent = scores ? `at step ${scores.step}` : "";
  $("board").classList.toggle("no-thumbs", !hasImages());
  const entries = scores?.[board] ?? [];
  const body = $("board").tBodies[0];
  if (!entries.length) {
    const why = board === "label_issues" && !hasLabels() ? "The run has no labels." :
      board === "movers" ? "Nothing moved yet: this is the first checkpoint." : "No entries.";
    body.replaceChildren(el("tr", { className: "empty" }, el("td", { colSpan: 5 }, why)));
    return;
  }
  body.replaceChildren(...entries.map((entry, rank) => {
    const label = labelOf(entry.index);
    const row = el("tr", { dataset: { index: String(entry.index) }, title: `Pin sample ${entry.index}` },
      el("td", { className: "num" }, String(rank + 1)),
      el("td", { className: "thumb-col" }, hasImages() ? el("img", { src: imageURL(entry.index), alt: "", loading: "lazy" }) : ""),
      el("td", {}, `#${entry.index}`),
      el("td", {}, hasLabels() ? el("span", { className: "swatch-line" }, swatch(label), ` ${className(label)}`) : "–"),
      el("td", { className: "num" }, format(entry.value)));
    row.classList.toggle("pinned", state.pins.has(entry.index));
    return row;
  }));
}

function swatch(label) {
  const node = el("span", { className: "swatch" });
  node.style.background = classColour(label);
  return node;
}

// ---------------------------------------------------------------- legend

function renderLegend() {
  const names = hasLabels() ? state.run.class_names : [];
  const counts = new Map();
  if (hasLabels()) for (const label of state.run.labels) counts.set(label, (counts.get(label) ?? 0) + 1);
  const labels = hasLabels() ? [...new Set([...names.keys(), ...counts.keys()])].sort((a, b) => a - b) : [];
  if (!labels.length) {
    $("legend").replaceChildren(el("span", { className: "hint" }, "The run has no labels: one colour for all samples."));
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
  const n = state.run.sample_count;
  const faint = new Float32Array(n);
  if (state.hidden.size) for (let i = 0; i < n; i++) faint[i] = state.hidden.has(labelOf(i)) ? 1 : 0;
  scatter.setFaint(faint);
  for (const button of $("legend").querySelectorAll("button")) {
    button.setAttribute("aria-pressed", String(!state.hidden.has(Number(button.dataset.label))));
  }
  $("show-all").hidden = state.hidden.size === 0;
  if (state.hovered !== null && isHidden(state.hovered) && !isRinged(state.hovered)) setHover(null);
  requestDraw({ scatter: true });
}

// ---------------------------------------------------------------- hover tooltip

let pointer = null;   // last pointer position over the scatter, CSS pixels

function setHover(index, px, py) {
  if (index !== state.hovered) {
    state.hovered = index;
    requestDraw();
    refreshTooltip();
  }
  if (index !== null && px !== undefined) placeTooltip(px, py);
  if (index === null) $("tooltip").hidden = true;
}

function placeTooltip(px, py) {
  const tip = $("tooltip");
  const stage = $("stage");
  const w = tip.offsetWidth || 250, h = tip.offsetHeight || 200;
  let left = px + 16, top = py + 16;
  if (left + w > stage.clientWidth) left = px - w - 16;
  if (top + h > stage.clientHeight) top = py - h - 16;
  tip.style.left = `${Math.max(0, left)}px`;
  tip.style.top = `${Math.max(0, top)}px`;
}

function fact(name, value) {
  return [el("dt", {}, name), el("dd", {}, value)];
}

let tooltipToken = 0;

async function refreshTooltip() {
  const tip = $("tooltip");
  const index = state.hovered;
  const token = ++tooltipToken;
  if (index === null || state.shown < 0) { tip.hidden = true; return; }
  const step = state.steps[state.shown];
  const label = labelOf(index);
  const build = (doc) => {
    const k = doc ? doc.steps.indexOf(step) : -1;
    const at = (column) => (doc && k >= 0 ? doc[column]?.[k] : undefined);
    const facts = el("dl", { className: "tip-facts" },
      ...fact("outlier score", doc ? format(at("outlier_score")) : "…"),
      ...(hasLabels() ? [
        ...fact("label agreement", doc ? format(at("label_agreement")) : "…"),
        ...fact("kNN-AUM", doc ? format(at("knn_aum")) : "…"),
      ] : []));
    const text = el("div", {},
      el("div", { className: "tip-title" }, `#${index}`),
      hasLabels() ? el("div", { className: "tip-class" }, swatch(label), className(label)) : "",
      facts);
    const top = el("div", { className: "tip-top" },
      hasImages() ? el("img", { className: "tip-image", src: imageURL(index), alt: `sample ${index}` }) : "", text);
    const parts = [top];
    const neighbours = doc && k >= 0 ? (doc.neighbours[k] ?? []).slice(0, 8) : [];
    if (neighbours.length) {
      parts.push(el("p", { className: "tip-neighbours-title" }, `nearest neighbours at step ${step}`));
      parts.push(el("div", { className: "tip-neighbours" }, ...neighbours.map((j) => {
        if (!hasImages()) return el("span", {}, `#${j} `);
        const image = el("img", { src: imageURL(j), alt: `sample ${j}`, title: `#${j} ${className(labelOf(j))}` });
        image.style.borderColor = classColour(labelOf(j));
        return image;
      })));
    }
    tip.replaceChildren(...parts);
    tip.dataset.index = String(index);
    tip.hidden = false;
    if (pointer) placeTooltip(...pointer);
  };
  build(null);
  try {
    const doc = await sampleAt(index, step);
    if (token === tooltipToken && state.hovered === index) build(doc);
  } catch (error) {
    report(error);
  }
}

// ---------------------------------------------------------------- pins

async function pin(index) {
  if (!Number.isSafeInteger(index) || index < 0 || index >= state.run.sample_count) return false;
  if (!state.pins.has(index)) {
    state.pins.set(index, null);
    renderPins();
    try {
      const step = state.steps[state.steps.length - 1];
      const doc = await sampleAt(index, step);
      if (state.pins.has(index)) state.pins.set(index, doc);
    } catch (error) {
      report(error);
    }
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

// A new checkpoint: each pin's document again, with the new step.
async function refreshPins() {
  await Promise.all([...state.pins.keys()].map(async (index) => {
    try {
      const doc = await sample(index, true);
      if (state.pins.has(index)) state.pins.set(index, doc);
    } catch (error) { report(error); }
  }));
  renderPins();
  requestDraw();
}

function renderPins() {
  const step = state.steps[state.shown];
  $("pins").replaceChildren(...[...state.pins].map(([index, doc]) => {
    const label = labelOf(index);
    const k = doc ? doc.steps.indexOf(step) : -1;
    const facts = doc && k >= 0 ? `outlier ${format(doc.outlier_score[k])}` +
      (hasLabels() ? `, agreement ${format(doc.label_agreement?.[k])}` : "") : "…";
    const remove = el("button", { type: "button", title: `Remove pin ${index}`, "aria-label": `Remove pin ${index}` }, "×");
    remove.addEventListener("click", () => unpin(index));
    const item = el("li", { dataset: { index: String(index) } },
      hasImages() ? el("img", { src: imageURL(index), alt: "" }) : swatch(label),
      el("span", { className: "pin-name" }, `#${index}`, hasLabels() ? ` ${className(label)}` : "", " ",
        el("span", { className: "pin-facts" }, facts)),
      remove);
    item.addEventListener("mouseenter", () => { state.highlight = index; requestDraw(); });
    item.addEventListener("mouseleave", () => { state.highlight = null; requestDraw(); });
    return item;
  }));
  $("no-pins").hidden = state.pins.size > 0;
  $("download-pins").disabled = state.pins.size === 0;
  for (const row of $("board").tBodies[0].rows) row.classList.toggle("pinned", state.pins.has(Number(row.dataset.index)));
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

// The pinned samples as `embedlapse export` writes the table: one row per pinned sample per step.
function pinsCSV() {
  const rows = [];
  for (const doc of state.pins.values()) {
    if (!doc) continue;
    doc.steps.forEach((step, k) => rows.push([step, doc.index, doc, k]));
  }
  rows.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const lines = ["step,index,label,class_name,x,y,outlier_score,label_agreement,label_margin"];
  for (const [step, index, doc, k] of rows) {
    const labelled = doc.label != null;
    lines.push([step, index, labelled ? doc.label : "", labelled && doc.class_name != null ? csvField(doc.class_name) : "",
      floatText(doc.x[k]), floatText(doc.y[k]), floatText(doc.outlier_score?.[k]),
      labelled ? floatText(doc.label_agreement?.[k]) : "", labelled ? floatText(doc.label_margin?.[k]) : ""].join(","));
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

function setupScatterInput() {
  const canvas = $("scatter");
  let drag = null;
  const local = (event) => {
    const rect = canvas.getBoundingClientRect();
    return [event.clientX - rect.left, event.clientY - rect.top];
  };
  canvas.addEventListener("wheel", (event) => {
    if (!state.run) return;
    event.preventDefault();
    const [px, py] = local(event);
    const [x, y] = toData(px, py);
    const scale = Math.exp(-event.deltaY * (event.deltaMode === 1 ? 0.05 : 0.0015));
    const zoom = Math.min(Math.max(state.view.zoom * scale, ZOOM_RANGE[0]), ZOOM_RANGE[1]);
    const ratio = state.view.zoom / zoom;
    state.view = { zoom, cx: x - (x - state.view.cx) * ratio, cy: y - (y - state.view.cy) * ratio };
    viewChanged();
    hoverAt(px, py);
  }, { passive: false });
  canvas.addEventListener("pointerdown", (event) => {
    if (event.button !== 0) return;
    drag = { start: local(event), last: local(event), moved: false };
    canvas.setPointerCapture(event.pointerId);
  });
  canvas.addEventListener("pointermove", (event) => {
    const [px, py] = local(event);
    pointer = [px, py];
    if (drag) {
      const [lx, ly] = drag.last;
      if (Math.hypot(px - drag.start[0], py - drag.start[1]) > 3) drag.moved = true;
      if (drag.moved) {
        canvas.classList.add("dragging");
        const { width, height } = canvasSize();
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
    hoverAt(px, py);
  });
  const end = (event) => {
    if (!drag) return;
    const wasClick = !drag.moved;
    drag = null;
    canvas.classList.remove("dragging");
    if (event.type === "pointerup" && wasClick) {
      const [px, py] = local(event);
      const index = nearest(px, py);
      if (index === null) return;
      if (state.pins.has(index)) unpin(index); else pin(index).catch(report);
    }
  };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
  canvas.addEventListener("pointerleave", () => { pointer = null; if (!drag) setHover(null); });
  canvas.addEventListener("dblclick", (event) => { event.preventDefault(); resetView(); });
  $("reset-view").addEventListener("click", resetView);
}

let hoverFrame = null;
function hoverAt(px, py) {
  if (hoverFrame !== null) cancelAnimationFrame(hoverFrame);
  hoverFrame = requestAnimationFrame(() => {
    hoverFrame = null;
    setHover(nearest(px, py), px, py);
  });
}

function resetView() {
  state.view = { cx: 0, cy: 0, zoom: 1 };
  viewChanged();
}

function viewChanged() {
  const v = state.view;
  $("reset-view").hidden = v.zoom === 1 && v.cx === 0 && v.cy === 0;
  requestDraw({ scatter: true });
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
  for (const tab of document.querySelectorAll("#tabs button")) {
    tab.addEventListener("click", () => { state.board = tab.dataset.board; renderBoard(); requestDraw(); });
  }
  const body = $("board").tBodies[0];
  const rowOf = (event) => event.target.closest("tr[data-index]");
  body.addEventListener("mouseover", (event) => {
    const row = rowOf(event);
    const index = row ? Number(row.dataset.index) : null;
    if (index !== state.highlight) { state.highlight = index; requestDraw(); }
  });
  body.addEventListener("mouseleave", () => { state.highlight = null; requestDraw(); });
  body.addEventListener("click", (event) => {
    const row = rowOf(event);
    if (row) pin(Number(row.dataset.index)).catch(report);
  });
  $("pin-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("pin-input").value.trim().replace(/^#/, "");
    const index = /^\d{1,15}$/.test(text) ? Number(text) : NaN;
    if (!state.run || !(index < state.run.sample_count)) {
      $("pin-error").textContent = state.run ? `an index from 0 to ${state.run.sample_count - 1}` : "no run yet";
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

// ---------------------------------------------------------------- the run, live

async function loadRun() {
  state.run = await json("/api/run");
  $("run-name").textContent = state.run.run;
  if (!state.run.ready) return false;
  scatter.setClasses(state.run.labels, state.run.sample_count);
  scatter.setFaint(new Float32Array(state.run.sample_count));
  renderLegend();
  renderBoard();
  for (const step of state.run.steps) addStep(step);
  return true;
}

function addStep(step) {
  if (state.steps.includes(step)) return false;
  state.steps.push(step);
  state.steps.sort((a, b) => a - b);
  return true;
}

async function onCheckpoint(step) {
  if (!state.run || !state.run.ready) {
    if (!(await loadRun())) return;
  }
  const wasNewest = state.shown === state.steps.length - 1;
  const added = addStep(step);
  if (!added && state.shown >= 0) return;
  refreshLoss();
  if (state.pins.size) refreshPins();
  if (state.shown < 0) { await show(state.steps.length - 1); return; }
  if (state.following && wasNewest && !state.playing && !state.tween) await tweenTo(state.steps.length - 1);
  else updateStepText();
}

function connect() {
  const events = new EventSource("/api/events");
  events.addEventListener("open", () => { $("status").textContent = "live"; });
  events.addEventListener("error", () => { $("status").textContent = "reconnecting…"; });
  let queue = Promise.resolve();
  events.addEventListener("checkpoint", (event) => {
    const step = Number(event.data);
    if (Number.isSafeInteger(step)) queue = queue.then(() => onCheckpoint(step)).catch(report);
  });
}

function report(error) {
  $("status").textContent = String(error?.message || error);
  console.error(error);
}

// For tests and the curious: the view transform and a few read-outs.
window.explorer = {
  get ready() { return state.shown >= 0 && !state.tween; },
  get webgl2() { return scatter !== null; },
  view() {
    const { width, height } = canvasSize();
    return { cx: state.view.cx, cy: state.view.cy, zoom: state.view.zoom, half: half(), width, height };
  },
  project: (x, y) => toPixel(x, y),
  shownStep: () => state.steps[state.shown] ?? null,
  steps: () => [...state.steps],
  pins: () => [...state.pins.keys()],
  pinsLoaded: () => [...state.pins.values()].every((doc) => doc !== null),
  hovered: () => state.hovered,
  hidden: () => [...state.hidden],
  thumbnailsDrawn: () => state.thumbnailsDrawn ?? 0,
  pinsCSV,
  setView(view) { state.view = { ...state.view, ...view }; viewChanged(); },
  pin: (index) => pin(index),
  seek: (index) => seek(index),
  // Back to the page as loaded: no pins, every class shown, the whole view, the newest step.
  async reset() {
    pause();
    cancelTween();
    state.pins.clear();
    state.hidden.clear();
    state.highlight = null;
    state.board = "outliers";
    renderPins();
    renderBoard();
    applyHidden();
    resetView();
    state.following = true;
    await show(state.steps.length - 1);
  },
};

async function main() {
  try {
    scatter = new Scatter($("scatter"));
  } catch (error) {
    $("no-webgl").hidden = false;
    report(error);
    return;
  }
  setupScatterInput();
  setupControls();
  await loadRun();
  refreshLoss();
  if (state.steps.length) await show(state.steps.length - 1);
  else $("step").textContent = state.run.problem ?? "waiting for the first checkpoint";
  connect();
}

main().catch(report);
