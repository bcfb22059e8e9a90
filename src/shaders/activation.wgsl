// activation.wgsl — the MLP nonlinearities, forward and backward, elementwise on f32.
//   GELU (GPT-2's gelu_new, tanh approximation)  y = ½·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
//   SwiGLU (Llama, Qwen)                          out = silu(gate) ⊙ up,  silu(g) = g·σ(g)
//   ReLU, SiLU (bottleneck adapters' non_linearity: relu, silu = swish)  y = max(x, 0),  y = x·σ(x)
//
// Entry points; bindings in order, then the params uniform (its binding number is the count of storage bindings,
// so each entry point declares its own variables: a binding number may be reused by different entry points):
//   gelu_forward     x (n)                       → y (n)
//   gelu_backward    x (n), dy (n)               → dx (n) = dy · gelu'(x)
//   swiglu_forward   gate (n), up (n)            → out (n)
//   swiglu_backward  gate (n), up (n), dout (n)  → dgate (n) = dout·up·silu'(gate),  dup (n) = dout·silu(gate)
//   relu_forward     x (n)                       → y (n)
//   relu_backward    x (n), dy (n)               → dx (n) = dy · [x > 0]   (0 at x = 0, as torch's threshold_backward)
//   silu_forward     x (n)                       → y (n)
//   silu_backward    x (n), dy (n)               → dx (n) = dy · σ(x)·(1 + x·(1 − σ(x)))
// gate and up are separate buffers of the same shape (T, I), as the two projections produce them.
// Dispatch: 256 threads per workgroup, ⌈n/256⌉ workgroups folded into (x, y) when over 65535 (flat workgroup index
// wid.y·nwg.x + wid.x; the tail is guarded by i < n).
//
// GELU is evaluated as x·σ(2u), u = √(2/π)·(x + 0.044715·x³), which is the same function (½(1 + tanh u) = σ(2u))
// without the cancellation of 1 + tanh u for negative x, and with no tanh (built from exp, it can give inf/inf).
// σ is evaluated with exp of a non-positive argument only, so large inputs of either sign stay finite.

struct Params {
  n: u32,
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

const WG = 256u;
const GELU_K = 0.7978845608028654; // √(2/π)
const GELU_C = 0.044715;

@group(0) @binding(2) var<uniform> pAt2: Params;
@group(0) @binding(3) var<uniform> pAt3: Params;
@group(0) @binding(5) var<uniform> pAt5: Params;

fn flatIndex(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
  return (wid.y * nwg.x + wid.x) * WG + lid.x;
}

fn sigmoid(g: f32) -> f32 {
  if (g >= 0.0) { return 1.0 / (1.0 + exp(-g)); }
  let e = exp(g);
  return e / (1.0 + e);
}

// ½(1 + tanh u) = σ(2u)
fn geluGate(x: f32) -> f32 {
  return sigmoid(2.0 * GELU_K * (x + GELU_C * x * x * x));
}

// ---- GELU
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn gelu_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = flatIndex(wid, nwg, lid);
  if (i >= pAt2.n) { return; }
  let v = x[i];
  y[i] = v * geluGate(v);
}

@compute @workgroup_size(256, 1, 1)
fn gelu_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = flatIndex(wid, nwg, lid);
  if (i >= pAt3.n) { return; }
  let v = x[i];
  let s = geluGate(v);
  // d/dx ½x(1 + t) = ½(1 + t) + ½x·(1 − t²)·u',  t = tanh u;  with ½(1 + t) = s and 1 − t² = 4s(1 − s):
  let du = GELU_K * (1.0 + 3.0 * GELU_C * v * v);
  let grad = s + 2.0 * v * s * (1.0 - s) * du;
  dx[i] = dy[i] * grad;
}

// ---- SwiGLU
@group(0) @binding(0) var<storage, read> gate: array<f32>;
@group(0) @binding(1) var<storage, read> up: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> dout: array<f32>;
@group(0) @binding(3) var<storage, read_write> dgate: array<f32>;
@group(0) @binding(4) var<storage, read_write> dup: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn swiglu_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = flatIndex(wid, nwg, lid);
  if (i >= pAt3.n) { return; }
  let g = gate[i];
  out[i] = g * sigmoid(g) * up[i];
}

@compute @workgroup_size(256, 1, 1)
fn swiglu_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = flatIndex(wid, nwg, lid);
  if (i >= pAt5.n) { return; }
  let g = gate[i];
  let s = sigmoid(g);
  let d = dout[i];
  // silu'(g) = σ(g)·(1 + g·(1 − σ(g)))
  dgate[i] = d * up[i] * s * (1.0 + g * (1.0 - s));
  dup[i] = d * g * s;
}

// ---- ReLU and SiLU (the x, y, dy, dx bindings of GELU's entry points)
@compute @workgroup_size(256, 1, 1)
fn relu_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = flatIndex(wid, nwg, lid);
  if (i >= pAt2.n) { return; }
  y[i] = max(x[i], 0.0);
}

@compute @workgroup_size(256, 1, 1)
fn relu_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = flatIndex(wid, nwg, lid);
  if (i >= pAt3.n) { return; }
  dx[i] = select(0.0, dy[i], x[i] > 0.0);
}

@compute @workgroup_size(256, 1, 1)
fn silu_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = flatIndex(wid, nwg, lid);
  if (i >= pAt2.n) { return; }
  let v = x[i];
  y[i] = v * sigmoid(v);
}

@compute @workgroup_size(256, 1, 1)
fn silu_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = flatIndex(wid, nwg, lid);
  if (i >= pAt3.n) { return; }
  let v = x[i];
  let s = sigmoid(v);
  dx[i] = dy[i] * s * (1.0 + v * (1.0 - s));
}
