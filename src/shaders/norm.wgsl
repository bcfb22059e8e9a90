// norm.wgsl — LayerNorm (GPT-2) and RMSNorm (Llama, Qwen) over the last dimension of (rows, C), forward and
// backward, all in f32.
//   LayerNorm  y = (x − mean)·rstd·w (+ b),  rstd = 1/√(var + eps), var biased (÷C), computed in two passes
//   RMSNorm    y = x·rstd·w,                 rstd = 1/√(mean(x²) + eps)                     (RMS = true)
//
// Layout (row-major):
//   x, y, dy, dx      (rows, C) f32
//   weight, bias      (C) f32; bias read only when HAS_BIAS
//   stats             (rows, 2) f32: (mean, rstd) of each row, written by forward for backward; mean = 0 for RMSNorm
//   dweight, dbias    (C) f32; dbias written only when HAS_BIAS
//
// Entry points; bindings in order, then the params uniform at binding 5 (each entry point declares its own
// variables, as a binding number may be reused by different entry points):
//   forward           x, weight, bias              → y, stats
//   backward_dx       x, weight, dy, stats         → dx (+= when ACCUMULATE: the residual stream's gradient adds up)
//                     dx = rstd·(g − mean(g) − x̂·mean(g·x̂)),  g = w·dy,  x̂ = (x − mean)·rstd  (no mean(g) for RMS)
//   backward_dweight  x, dy, stats                 → dweight = Σ_rows dy·x̂,  dbias = Σ_rows dy  (+= when ACCUMULATE)
//
// Dispatch:
//   forward, backward_dx  one workgroup of 64 per row, ⌈rows⌉ workgroups folded into (x, y) when over 65535
//                         (row = wid.y·nwg.x + wid.x; surplus workgroups leave together)
//   backward_dweight      workgroups of 32 columns × 8 row lanes, (⌈C/32⌉, 1, 1): each lane sums every 8th row
//                         of its column, then lane sums are added in lane order. No atomics, and deterministic.
// Every sum has a fixed order (per-thread strided, then a fixed tree), so results do not vary between runs.

struct Params {
  rows: u32,
  C: u32,
  eps: f32,
  _pad: u32,
}

override RMS: bool = false;
override HAS_BIAS: bool = false;
override ACCUMULATE: bool = false;

@group(0) @binding(5) var<uniform> p: Params;

const WG = 64u;
var<workgroup> red: array<f32, 64>;

// Σ v over the workgroup in a fixed tree order, returned to every thread. Call from uniform control flow only.
fn workgroupSum(v: f32, t: u32) -> f32 {
  red[t] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (t < s) { red[t] = red[t] + red[t + s]; }
    workgroupBarrier();
  }
  let total = red[0];
  workgroupBarrier(); // everyone has read red[0] before the next call overwrites it
  return total;
}

fn rowOf(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
  return wid.y * nwg.x + wid.x;
}

// ---- forward
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read_write> statsOut: array<f32>;

@compute @workgroup_size(64, 1, 1)
fn forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_id) lid: vec3<u32>) {
  let row = rowOf(wid, nwg);
  if (row >= p.rows) { return; } // the whole workgroup: barriers stay in uniform control flow
  let C = p.C;
  let base = row * C;
  let t = lid.x;
  var mean = 0.0;
  if (!RMS) {
    var s = 0.0;
    for (var c = t; c < C; c += WG) { s += x[base + c]; }
    mean = workgroupSum(s, t) / f32(C);
  }
  var s2 = 0.0;
  for (var c = t; c < C; c += WG) {
    let d = x[base + c] - mean;
    s2 = fma(d, d, s2);
  }
  let rstd = 1.0 / sqrt(workgroupSum(s2, t) / f32(C) + p.eps);
  for (var c = t; c < C; c += WG) {
    var v = (x[base + c] - mean) * rstd * weight[c];
    if (HAS_BIAS) { v += bias[c]; }
    y[base + c] = v;
  }
  if (t == 0u) {
    statsOut[2u * row] = mean;
    statsOut[2u * row + 1u] = rstd;
  }
}

// ---- backward_dx
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read> stats: array<f32>;
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(64, 1, 1)
fn backward_dx(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_id) lid: vec3<u32>) {
  let row = rowOf(wid, nwg);
  if (row >= p.rows) { return; }
  let C = p.C;
  let base = row * C;
  let t = lid.x;
  let mean = stats[2u * row];
  let rstd = stats[2u * row + 1u];
  var sumG = 0.0;
  var sumGX = 0.0;
  for (var c = t; c < C; c += WG) {
    let g = weight[c] * dy[base + c];
    sumG += g;
    sumGX = fma(g, (x[base + c] - mean) * rstd, sumGX);
  }
  var meanG = 0.0;
  if (!RMS) { meanG = workgroupSum(sumG, t) / f32(C); }
  let meanGX = workgroupSum(sumGX, t) / f32(C);
  for (var c = t; c < C; c += WG) {
    let i = base + c;
    let xhat = (x[i] - mean) * rstd;
    var v = rstd * (weight[c] * dy[i] - meanG - xhat * meanGX);
    if (ACCUMULATE) { v += dx[i]; }
    dx[i] = v;
  }
}

// ---- backward_dweight
const COLS = 32u;
const LANES = 8u;
var<workgroup> laneW: array<f32, 256>; // (LANES, COLS)
var<workgroup> laneB: array<f32, 256>; // (LANES, COLS)

@group(0) @binding(1) var<storage, read> dyCols: array<f32>;
@group(0) @binding(2) var<storage, read> statsCols: array<f32>;
@group(0) @binding(3) var<storage, read_write> dweight: array<f32>;
@group(0) @binding(4) var<storage, read_write> dbias: array<f32>;

@compute @workgroup_size(32, 8, 1)
fn backward_dweight(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let C = p.C;
  let col = wid.x * COLS + lid.x;
  var sw = 0.0;
  var sb = 0.0;
  if (col < C) {
    for (var r = lid.y; r < p.rows; r += LANES) {
      let i = r * C + col;
      let g = dyCols[i];
      sw = fma(g, (x[i] - statsCols[2u * r]) * statsCols[2u * r + 1u], sw);
      sb += g;
    }
  }
  laneW[lid.y * COLS + lid.x] = sw;
  laneB[lid.y * COLS + lid.x] = sb;
  workgroupBarrier();
  if (lid.y == 0u && col < C) {
    var w = 0.0;
    var b = 0.0;
    for (var l = 0u; l < LANES; l++) {
      w += laneW[l * COLS + lid.x];
      b += laneB[l * COLS + lid.x];
    }
    if (ACCUMULATE) {
      w += dweight[col];
      if (HAS_BIAS) { b += dbias[col]; }
    }
    dweight[col] = w;
    if (HAS_BIAS) { dbias[col] = b; }
  }
}
