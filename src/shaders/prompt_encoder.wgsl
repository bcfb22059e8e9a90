// prompt_encoder.wgsl — P-tuning's prompt encoder (PEFT's PromptEncoder, MLP type): small dense layers over the n
// virtual tokens, forward and backward. The encoder is Linear(C, H) → ReLU → Linear(H, H) → ReLU → Linear(H, C) on
// the (n, C) embedding table (prefix tuning's reparameterisation, PEFT's PrefixEncoder with prefix_projection, is
// Linear(token_dim, H) → Tanh → Linear(H, L·2·token_dim) over its (n, token_dim) table: the same layers); its rows are few (n virtual tokens), so each entry point is one plain loop per output
// element, no tiling: every invocation owns the element it writes (no atomics, deterministic).
//
//   linear_fwd:  Y[i, o] = act(Σ_k X[i, k] · W[o, k] + b[o])          act = ReLU when RELU, tanh when TANH, else identity
//   grad_w:      dW[o, k] (+)= Σ_i dZ[i, o] · X[i, k]                 (nn.Linear's weight gradient)
//   grad_b:      db[o] (+)= Σ_i dZ[i, o]
//   grad_x:      dX[i, k] (+)= (Σ_o dZ[i, o] · W[o, k]) · (MASK ? [H[i, k] > 0] : TANH_GRAD ? 1 − H[i, k]² : 1)
//                with MASK (TANH_GRAD), H is the layer input's ReLU (tanh) output, so dX is the previous layer's
//                pre-activation gradient
//
// Layout (row-major, f32): X (rows, K), W (O, K) as nn.Linear stores it, b (O), Y/dZ (rows, O), dW (O, K), dX and
// H (rows, K). Bindings: a, b, c read; out read_write; params. linear_fwd: a = X, b = W, c = bias, out = Y;
// grad_w: a = dZ, b = X, out = dW; grad_b: a = dZ, out = db; grad_x: a = dZ, b = W, c = H (MASK, TANH_GRAD), out = dX.
// tanh is evaluated at x clamped to ±9 (where tanh is ±1 in f32): the builtin, built from exponentials, may give
// inf/inf past that.
// ACCUMULATE adds into out (the gradients of later micro-batches).
// Dispatch: one invocation per output element, 64 per workgroup, ⌈elements/64⌉ workgroups folded into (x, y) over
// 65535 (flat index wid.y·nwg.x + wid.x; the tail is guarded).

struct Params {
  rows: u32,
  K: u32,
  O: u32,
  pad: u32,
}

override RELU: bool = false;
override TANH: bool = false;
override MASK: bool = false;
override TANH_GRAD: bool = false;
override ACCUMULATE: bool = false;

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read> c: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

fn flat(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
  return (wid.y * nwg.x + wid.x) * 64u + lid.x;
}

@compute @workgroup_size(64, 1, 1)
fn linear_fwd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let e = flat(wid, nwg, lid);
  if (e >= p.rows * p.O) { return; }
  let i = e / p.O;
  let o = e % p.O;
  var s = c[o];
  for (var k = 0u; k < p.K; k++) { s = s + a[i * p.K + k] * b[o * p.K + k]; }
  if (RELU) { s = max(s, 0.0); }
  if (TANH) { s = tanh(clamp(s, -9.0, 9.0)); }
  out[e] = s;
}

@compute @workgroup_size(64, 1, 1)
fn grad_w(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let e = flat(wid, nwg, lid);
  if (e >= p.O * p.K) { return; }
  let o = e / p.K;
  let k = e % p.K;
  var s = 0.0;
  for (var i = 0u; i < p.rows; i++) { s = s + a[i * p.O + o] * b[i * p.K + k]; }
  if (ACCUMULATE) { s = s + out[e]; }
  out[e] = s;
}

@compute @workgroup_size(64, 1, 1)
fn grad_b(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let o = flat(wid, nwg, lid);
  if (o >= p.O) { return; }
  var s = 0.0;
  for (var i = 0u; i < p.rows; i++) { s = s + a[i * p.O + o]; }
  if (ACCUMULATE) { s = s + out[o]; }
  out[o] = s;
}

@compute @workgroup_size(64, 1, 1)
fn grad_x(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let e = flat(wid, nwg, lid);
  if (e >= p.rows * p.K) { return; }
  let i = e / p.K;
  let k = e % p.K;
  var s = 0.0;
  for (var o = 0u; o < p.O; o++) { s = s + a[i * p.O + o] * b[o * p.K + k]; }
  if (MASK && c[e] <= 0.0) { s = 0.0; }
  if (TANH_GRAD) { s = s * (1.0 - c[e] * c[e]); }
  if (ACCUMULATE) { s = s + out[e]; }
  out[e] = s;
}
