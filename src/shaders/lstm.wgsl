// lstm.wgsl — the recurrent half of PyTorch's nn.LSTM (gate order i, f, g, o; both biases; zero initial state), one
// direction of one layer at a time, as P-tuning's LSTM prompt encoder runs it (PEFT's PromptEncoder, type "LSTM").
// The input projection A_in = X·W_ihᵀ + b_ih over all n steps at once, and the backward's dW_ih, db, dX, run on
// prompt_encoder.wgsl's dense entry points; this file holds what must go step by step. A step's recurrent product
// (4H × H by h_prev) is fused into its cell: a dispatch per step, one invocation per hidden unit j owning its four
// gates, so no step needs a second dispatch or an offset binding into the middle of a buffer.
//
//   cell_forward (step t, previous step prev, or NONE at the direction's first):
//     a_q = A_in[t, qH + j] + b_hh[qH + j] + Σ_k W_hh[qH + j, k] · h_prev[k]        q = i, f, g, o
//     i, f, o = σ(a);  g = tanh(a_g);  c = f·c_prev + i·g;  h = o·tanh(c)             (h_prev, c_prev = 0 at NONE)
//     gates[t] ← (i, f, g, o) in place of A_in[t];  cell[t, j] ← c;  Y[t, ycol + j] ← h
//   cell_backward (step t, its prev, and next = the step after it in processing order, NONE at the last):
//     dh = dY[t, ycol + j] + Σ_r dA[next, r] · W_hh[r, j];  dc = dh·o·(1 − tanh²c) + dcarry[j]   (NONE: no sums)
//     dA[t] ← (dc·g·i(1−i), dc·c_prev·f(1−f), dc·i·(1−g²), dh·tanh(c)·o(1−o));  dcarry[j] ← dc·f
//   grad_whh:  dW_hh[r, k] (+)= Σ_t dA[t, r] · Y[prev(t), ycol + k]   over the steps with a previous one
//              (prev(t) = t − 1 forward, t + 1 when REVERSE is set in the params)
//
// Layout (row-major, f32): W_hh (4H, H), b_hh (4H) as nn.LSTM stores them; A_in / gates / dA (n, 4H), rows by time
// step, gate blocks [i | f | g | o]; cell (n, H); Y / dY (n, ystride), this direction's h in columns ycol … ycol+H−1
// (a bidirectional layer's output is [h_fwd | h_rev], ystride 2H); dcarry (H), the cell-state gradient carried from
// step to step (written before it is read: the first backward step, next = NONE, ignores it).
// Entry points; bindings in order, then the params uniform (its binding number is the count of storage bindings, so
// each entry point declares its own variables: a binding number may be reused by different entry points):
//   cell_forward   W_hh, b_hh (read); gates, cell, Y (read_write)
//   cell_backward  W_hh, dY, gates, cell (read); dA, dcarry (read_write)
//   grad_whh       dA, Y (read); dW_hh (read_write)                       ACCUMULATE adds into dW_hh
// Races: a step reads row prev (next) and writes row t of the same buffer, never the same row; dcarry[j] is read and
// written by invocation j alone. Steps are ordered by being separate dispatches.
// σ and tanh take exp of a non-positive argument only, so any pre-activation stays finite.
// Dispatch: cell_*: ⌈H/64⌉ workgroups of 64; grad_whh: one invocation per element of dW_hh (4H·H), 64 per workgroup,
// folded into (x, y) over 65535 (flat index wid.y·nwg.x + wid.x; tails guarded).

struct Params {
  n: u32,
  H: u32,
  t: u32,
  prev: u32,
  next: u32,
  ycol: u32,
  ystride: u32,
  reverse: u32,
}

const NONE = 0xffffffffu;

override ACCUMULATE: bool = false;

fn flat(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
  return (wid.y * nwg.x + wid.x) * 64u + lid.x;
}

fn sigmoid(x: f32) -> f32 {
  if (x >= 0.0) { return 1.0 / (1.0 + exp(-x)); }
  let e = exp(x);
  return e / (1.0 + e);
}

// tanh(x) = (1 − e)/(1 + e) with e = exp(−2|x|) ≤ 1, sign restored: the builtin may give inf/inf for large |x|.
fn tanhStable(x: f32) -> f32 {
  let e = exp(-2.0 * abs(x));
  return sign(x) * (1.0 - e) / (1.0 + e);
}

// ---- cell_forward
@group(0) @binding(0) var<storage, read> whh: array<f32>;
@group(0) @binding(1) var<storage, read> bhh: array<f32>;
@group(0) @binding(2) var<storage, read_write> gates: array<f32>;
@group(0) @binding(3) var<storage, read_write> cell: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<uniform> pAt5: Params;

fn preactivation(r: u32) -> f32 {
  let p = pAt5;
  var s = gates[p.t * 4u * p.H + r] + bhh[r];
  if (p.prev != NONE) {
    let hp = p.prev * p.ystride + p.ycol;
    for (var k = 0u; k < p.H; k++) { s = s + whh[r * p.H + k] * y[hp + k]; }
  }
  return s;
}

@compute @workgroup_size(64, 1, 1)
fn cell_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let j = flat(wid, nwg, lid);
  let p = pAt5;
  if (j >= p.H) { return; }
  let H = p.H;
  let i = sigmoid(preactivation(j));
  let f = sigmoid(preactivation(H + j));
  let g = tanhStable(preactivation(2u * H + j));
  let o = sigmoid(preactivation(3u * H + j));
  var cPrev = 0.0;
  if (p.prev != NONE) { cPrev = cell[p.prev * H + j]; }
  let c = f * cPrev + i * g;
  let row = p.t * 4u * H;
  gates[row + j] = i;
  gates[row + H + j] = f;
  gates[row + 2u * H + j] = g;
  gates[row + 3u * H + j] = o;
  cell[p.t * H + j] = c;
  y[p.t * p.ystride + p.ycol + j] = o * tanhStable(c);
}

// ---- cell_backward (W_hh at binding 0 as above)
@group(0) @binding(1) var<storage, read> dyIn: array<f32>;
@group(0) @binding(2) var<storage, read> gatesIn: array<f32>;
@group(0) @binding(3) var<storage, read> cellIn: array<f32>;
@group(0) @binding(4) var<storage, read_write> dA: array<f32>;
@group(0) @binding(5) var<storage, read_write> dcarry: array<f32>;
@group(0) @binding(6) var<uniform> pAt6: Params;

@compute @workgroup_size(64, 1, 1)
fn cell_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let j = flat(wid, nwg, lid);
  let p = pAt6;
  if (j >= p.H) { return; }
  let H = p.H;
  var dh = dyIn[p.t * p.ystride + p.ycol + j];
  var dc = 0.0;
  if (p.next != NONE) {
    let nrow = p.next * 4u * H;
    for (var r = 0u; r < 4u * H; r++) { dh = dh + dA[nrow + r] * whh[r * H + j]; }
    dc = dcarry[j];
  }
  let row = p.t * 4u * H;
  let i = gatesIn[row + j];
  let f = gatesIn[row + H + j];
  let g = gatesIn[row + 2u * H + j];
  let o = gatesIn[row + 3u * H + j];
  let tc = tanhStable(cellIn[p.t * H + j]);
  var cPrev = 0.0;
  if (p.prev != NONE) { cPrev = cellIn[p.prev * H + j]; }
  dc = dc + dh * o * (1.0 - tc * tc);
  dA[row + j] = dc * g * i * (1.0 - i);
  dA[row + H + j] = dc * cPrev * f * (1.0 - f);
  dA[row + 2u * H + j] = dc * i * (1.0 - g * g);
  dA[row + 3u * H + j] = dh * tc * o * (1.0 - o);
  dcarry[j] = dc * f;
}

// ---- grad_whh
@group(0) @binding(0) var<storage, read> dAIn: array<f32>;
@group(0) @binding(1) var<storage, read> yIn: array<f32>;
@group(0) @binding(2) var<storage, read_write> dwhh: array<f32>;
@group(0) @binding(3) var<uniform> pAt3: Params;

@compute @workgroup_size(64, 1, 1)
fn grad_whh(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let e = flat(wid, nwg, lid);
  let p = pAt3;
  if (e >= 4u * p.H * p.H) { return; }
  let r = e / p.H;
  let k = e % p.H;
  var s = 0.0;
  for (var t = 0u; t < p.n; t++) {
    if (p.reverse != 0u) {
      if (t + 1u < p.n) { s = s + dAIn[t * 4u * p.H + r] * yIn[(t + 1u) * p.ystride + p.ycol + k]; }
    } else if (t > 0u) {
      s = s + dAIn[t * 4u * p.H + r] * yIn[(t - 1u) * p.ystride + p.ycol + k];
    }
  }
  if (ACCUMULATE) { s = s + dwhh[e]; }
  dwhh[e] = s;
}
