// Embedlapse explorer: the run's checkpoints as a WebGL2 scatter, a scrubber with play/pause,
// live updates over Server-Sent Events. Every number comes from the server's analysis; the page
// only draws. Tweening is on the GPU: the vertex shader blends each point's positions at two
// checkpoints by one uniform, so playing costs the CPU nothing per frame.

// The film's class colours: Paul Tol's muted scheme, a medium grey as the tenth; cycles past ten.
const PALETTE = [0x332288, 0x88ccee, 0x44aa99, 0x117733, 0x999933, 0xddcc77, 0xcc6677, 0x882255, 0xaa4499, 0x888888];
// Milliseconds a tween between two checkpoints takes at 1x.
const TWEEN_MS = 700;

const state = {
  run: null,            // /api/run
  steps: [],            // analysed steps, ascending
  points: new Map(),    // step -> Float32Array (N * 2), fetched lazily
  shown: -1,            // index into steps of the checkpoint on screen
  playing: false,
  following: true,      // jump to each new checkpoint while the newest is shown
};

const $ = (id) => document.getElementById(id);
const hex = (c) => "#" + c.toString(16).padStart(6, "0");

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

// ---------------------------------------------------------------- scatter (WebGL2)

const VERTEX = `#version 300 es
in vec2 a_from;
in vec2 a_to;
in float a_class;
uniform float u_t;
uniform float u_half;
uniform float u_size;
uniform vec3 u_palette[10];
out vec3 v_colour;
void main() {
  // Points beyond the view sit clamped on its border, as in the film.
  vec2 p = clamp(mix(a_from, a_to, u_t), -u_half, u_half) / u_half;
  gl_Position = vec4(p, 0.0, 1.0);
  gl_PointSize = u_size;
  v_colour = u_palette[int(mod(a_class, 10.0))];
}`;

const FRAGMENT = `#version 300 es
precision mediump float;
in vec3 v_colour;
out vec4 colour;
void main() {
  vec2 d = gl_PointCoord - 0.5;
  if (dot(d, d) > 0.25) discard;
  colour = vec4(v_colour, 0.8);
}`;

class Scatter {
  constructor(canvas) {
    const gl = canvas.getContext("webgl2", { antialias: true, premultipliedAlpha: false });
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
    for (const [name, size] of [["a_from", 2], ["a_to", 2], ["a_class", 1]]) {
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
    this.u = Object.fromEntries(["u_t", "u_half", "u_size"].map((n) => [n, gl.getUniformLocation(program, n)]));
    this.count = 0;
    this.t = 0;
  }

  setClasses(labels, n) {
    const gl = this.gl;
    const classes = new Float32Array(n);
    if (labels) for (let i = 0; i < n; i++) classes[i] = labels[i];
    gl.bindBuffer(gl.ARRAY_BUFFER, this.buffers.a_class);
    gl.bufferData(gl.ARRAY_BUFFER, classes, gl.STATIC_DRAW);
    this.count = n;
  }

  // The two checkpoints a tween travels between (the same one twice to show it at rest).
  setPair(from, to) {
    const gl = this.gl;
    gl.bindBuffer(gl.ARRAY_BUFFER, this.buffers.a_from);
    gl.bufferData(gl.ARRAY_BUFFER, from, gl.DYNAMIC_DRAW);
    gl.bindBuffer(gl.ARRAY_BUFFER, this.buffers.a_to);
    gl.bufferData(gl.ARRAY_BUFFER, to, gl.DYNAMIC_DRAW);
  }

  draw(t, half) {
    const gl = this.gl;
    const size = Math.round(this.canvas.clientWidth * devicePixelRatio) || this.canvas.width;
    if (this.canvas.width !== size) { this.canvas.width = size; this.canvas.height = size; }
    gl.viewport(0, 0, size, size);
    gl.clearColor(0.98, 0.98, 0.98, 1);
    gl.clear(gl.COLOR_BUFFER_BIT);
    gl.enable(gl.BLEND);
    gl.blendFunc(gl.SRC_ALPHA, gl.ONE_MINUS_SRC_ALPHA);
    gl.uniform1f(this.u.u_t, t);
    gl.uniform1f(this.u.u_half, half);
    const n = this.count;
    const base = n > 50000 ? 2 : n > 5000 ? 3 : 5;
    gl.uniform1f(this.u.u_size, base * devicePixelRatio);
    gl.bindVertexArray(this.vao);
    gl.drawArrays(gl.POINTS, 0, n);
  }
}

// ---------------------------------------------------------------- page

let scatter = null;
let animation = null;   // the running tween's requestAnimationFrame id

function speed() { return Number($("speed").value) || 1; }

function className(label) {
  const names = state.run.class_names;
  return label < names.length ? names[label] : `class ${label}`;
}

function updateStepText() {
  const step = state.steps[state.shown];
  const newest = state.steps[state.steps.length - 1];
  $("step").textContent = step === undefined ? "no checkpoint yet" : `step ${step}`;
  $("newest").textContent = newest === undefined ? "" :
    `(checkpoint ${state.shown + 1} of ${state.steps.length}; newest step ${newest})`;
  document.body.dataset.step = step === undefined ? "" : String(step);
  document.body.dataset.newestStep = newest === undefined ? "" : String(newest);
  const scrubber = $("scrubber");
  scrubber.max = String(Math.max(state.steps.length - 1, 0));
  scrubber.value = String(Math.max(state.shown, 0));
}

async function showScores(step) {
  let scores;
  try { scores = await json(`/api/checkpoints/${step}/scores`); } catch { return; }
  if (state.steps[state.shown] !== step) return;
  const list = $("outliers");
  list.replaceChildren(...scores.outliers.slice(0, 8).map((entry) => {
    const item = document.createElement("li");
    const label = state.run.labels ? ` ${className(state.run.labels[entry.index])}` : "";
    item.textContent = `#${entry.index}${label}: ${entry.value === null ? "–" : entry.value.toPrecision(3)}`;
    return item;
  }));
  $("agreement").textContent = scores.mean_label_agreement === null ? "no labels" :
    `mean ${(scores.mean_label_agreement * 100).toFixed(1)}% of ${scores.k} nearest neighbours share the label`;
}

// Shows checkpoint `index` at rest.
async function show(index) {
  if (index < 0 || index >= state.steps.length) return;
  stopAnimation();
  const values = await points(state.steps[index]);
  state.shown = index;
  scatter.setPair(values, values);
  scatter.draw(0, state.run.view_half_extent);
  updateStepText();
  showScores(state.steps[index]);
}

// Travels from the shown checkpoint to `index` (the next one), tweened on the GPU.
async function tweenTo(index) {
  if (state.shown < 0 || index !== state.shown + 1) return show(index);
  stopAnimation();
  const [from, to] = await Promise.all([points(state.steps[state.shown]), points(state.steps[index])]);
  scatter.setPair(from, to);
  const start = performance.now();
  return new Promise((resolve) => {
    const frame = (now) => {
      const t = Math.min((now - start) * speed() / TWEEN_MS, 1);
      scatter.draw(t, state.run.view_half_extent);
      if (t < 1) { animation = requestAnimationFrame(frame); return; }
      animation = null;
      state.shown = index;
      scatter.setPair(to, to);
      updateStepText();
      showScores(state.steps[index]);
      resolve();
    };
    animation = requestAnimationFrame(frame);
  });
}

function stopAnimation() {
  if (animation !== null) cancelAnimationFrame(animation);
  animation = null;
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
}

function renderLegend() {
  const names = state.run.class_names.length ? state.run.class_names : ["samples"];
  $("legend").replaceChildren(...names.map((name, k) => {
    const item = document.createElement("li");
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = hex(PALETTE[k % PALETTE.length]);
    item.append(swatch, document.createTextNode(name));
    return item;
  }));
}

async function loadRun() {
  state.run = await json("/api/run");
  $("run-name").textContent = state.run.run;
  if (!state.run.ready) return false;
  scatter.setClasses(state.run.labels, state.run.sample_count);
  renderLegend();
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
  if (!addStep(step) && state.shown >= 0) return;
  if (state.shown < 0) { await show(state.steps.length - 1); return; }
  if (state.following && wasNewest && !state.playing) await tweenTo(state.steps.length - 1);
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
  $("status").textContent = String(error.message || error);
  console.warn(error);
}

async function main() {
  try {
    scatter = new Scatter($("scatter"));
  } catch (error) {
    $("no-webgl").hidden = false;
    report(error);
    return;
  }
  $("play").addEventListener("click", () => (state.playing ? pause() : play()));
  $("scrubber").addEventListener("input", (event) => {
    pause();
    const index = Number(event.target.value);
    state.following = index === state.steps.length - 1;
    show(index).catch(report);
  });
  document.addEventListener("keydown", (event) => {
    if (event.target instanceof HTMLInputElement || event.target instanceof HTMLSelectElement) return;
    if (event.key === " ") { event.preventDefault(); state.playing ? pause() : play(); }
    else if (event.key === "ArrowRight" && state.shown < state.steps.length - 1) { pause(); show(state.shown + 1).catch(report); }
    else if (event.key === "ArrowLeft" && state.shown > 0) { pause(); state.following = false; show(state.shown - 1).catch(report); }
  });
  window.addEventListener("resize", () => { if (state.shown >= 0 && animation === null) scatter.draw(0, state.run.view_half_extent); });
  await loadRun();
  if (state.steps.length) await show(state.steps.length - 1);
  else $("step").textContent = state.run.problem ?? "waiting for the first checkpoint";
  connect();
}

main().catch(report);
