// dora.wgsl — DoRA's per-output-row pieces around the LoRA path (PEFT's DoraLinearLayer; Liu et al. 2024):
//   weight_norm     W (elem), A [r,in], B [out,r], m (out) → scales: n = ‖W + s·B·A‖ per output row (the norm PEFT
//                   computes and detaches), c = m / n and c − 1, three blocks of `stride` floats: [n | c | c − 1]
//   output          zl (T,out), z (T,out), bias (out), c (out) → y (T,out) = c ⊙ zl (− z when SUB_BASE) (+ bias when
//                   HAS_BIAS) (+ y when ACCUMULATE)
//   magnitude_grad  dy (T,out), zl (T,out), n (out) → dm (out) = Σ_t dy ⊙ zl / n (+ dm when ACCUMULATE)
// Bindings per entry (in0 … in3, out):
//   weight_norm     W, A, B, m → scales
//   output          bias, zl, z, c → y          (bias, z: any buffer when HAS_BIAS / SUB_BASE are off)
//   magnitude_grad  dy, zl, n, (unused) → dm
// (output and magnitude_grad are rendered with {{ELEM_B}} = f32: in0 is then an f32 vector or matrix.)
// W is {{ELEM_B}}: nn.Linear's [out, in], or GPT-2's Conv1D [in, out] when CONV1D. Everything else is f32 and every
// sum is f32 in index order (deterministic). zl = W·drop(x) + s·B·A·drop(x) and z = W·drop(x) (see
// src/model/runtime/linear.ts, recordDoraForward); src/gpu/ref/dora.ref.ts is the float64 reference.
// Dispatch (x, y, z):
//   weight_norm     one workgroup of 64 threads per output row, `out` workgroups folded into (x, y, 1), row
//                   wid.y·nwg.x + wid.x: thread t sums the squares of elements t, t + 64, … in order, then a fixed
//                   tree over the 64 partial sums in workgroup memory (deterministic)
//   magnitude_grad  64 threads, one column of y each                                  (⌈out/64⌉, 1, 1)
//   output          64 threads, one element each, ⌈T·out/64⌉ workgroups folded into (x, y, 1), flat index
//                   (wid.y·nwg.x + wid.x)·64 + lid.x

struct Params {
  rows: u32,    // weight_norm: out; output, magnitude_grad: T
  n: u32,       // weight_norm: in; output, magnitude_grad: out
  r: u32,       // weight_norm: the rank
  stride: u32,  // weight_norm: floats between the blocks of scales
  scale: f32,   // weight_norm: s
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

override CONV1D: bool = false;
override HAS_BIAS: bool = false;
override SUB_BASE: bool = false;
override ACCUMULATE: bool = false;

@group(0) @binding(0) var<storage, read> in0: array<{{ELEM_B}}>;
@group(0) @binding(1) var<storage, read> in1: array<f32>;
@group(0) @binding(2) var<storage, read> in2: array<f32>;
@group(0) @binding(3) var<storage, read> in3: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

// Row j of W + s·B·A, element i.
fn adapted(j: u32, i: u32) -> f32 {
  var w: f32;
  if (CONV1D) { w = f32(in0[i * p.rows + j]); } else { w = f32(in0[j * p.n + i]); }
  var ba = 0.0;
  for (var k = 0u; k < p.r; k++) {
    ba = fma(in2[j * p.r + k], in1[k * p.n + i], ba);
  }
  return fma(p.scale, ba, w);
}

var<workgroup> partial: array<f32, 64>;

@compute @workgroup_size(64, 1, 1)
fn weight_norm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_id) lid: vec3<u32>) {
  let j = wid.y * nwg.x + wid.x; // uniform: the early return keeps every barrier in uniform control flow
  if (j >= p.rows) { return; }
  var acc = 0.0;
  for (var i = lid.x; i < p.n; i += 64u) {
    let w = adapted(j, i);
    acc = fma(w, w, acc);
  }
  partial[lid.x] = acc;
  workgroupBarrier();
  for (var s = 32u; s > 0u; s >>= 1u) {
    if (lid.x < s) { partial[lid.x] = partial[lid.x] + partial[lid.x + s]; }
    workgroupBarrier();
  }
  if (lid.x != 0u) { return; }
  let norm = sqrt(partial[0]);
  let c = in3[j] / norm;
  out[j] = norm;
  out[p.stride + j] = c;
  out[2u * p.stride + j] = c - 1.0;
}

@compute @workgroup_size(64, 1, 1)
fn output(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = (wid.y * nwg.x + wid.x) * 64u + lid.x;
  if (i >= p.rows * p.n) { return; }
  let j = i % p.n;
  var v = in3[j] * in1[i];
  if (SUB_BASE) { v = v - in2[i]; }
  if (HAS_BIAS) { v = v + f32(in0[j]); }
  if (ACCUMULATE) { v = v + out[i]; }
  out[i] = v;
}

@compute @workgroup_size(64, 1, 1)
fn magnitude_grad(@builtin(global_invocation_id) gid: vec3<u32>) {
  let j = gid.x;
  if (j >= p.n) { return; }
  var s = 0.0;
  for (var t = 0u; t < p.rows; t++) {
    s = fma(in0f(t * p.n + j), in1[t * p.n + j], s);
  }
  var v = s / in2[j];
  if (ACCUMULATE) { v = v + out[j]; }
  out[j] = v;
}

fn in0f(i: u32) -> f32 {
  return f32(in0[i]);
}
