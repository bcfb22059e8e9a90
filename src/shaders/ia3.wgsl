// ia3.wgsl — IA³'s learned vector l on the columns of a row-major matrix (rows × n), and the gradient of l.
//   scale_columns  a (rows, n), l (n)      → out (rows, n) = a ⊙ l, l broadcast over rows   (+= out when ACCUMULATE)
//   column_dot     a (rows, n), b (rows, n) → out (n) = Σ_rows a ⊙ b                        (+= out when ACCUMULATE)
// IA³ scales a layer's output (attention projections: y = (Wx + b) ⊙ l) or its input (feed-forward: y = W(x ⊙ l) + b);
// both directions of both cases are these two entry points (see src/model/runtime/linear.ts).
// f32. scale_columns: one invocation per element, ⌈rows·n/64⌉ workgroups folded into (x, y, 1), flat index
// wid.y·nwg.x·64 + wid.x·64 + lid.x. column_dot: one invocation per column, ⌈n/64⌉ workgroups, each summing its column
// over the rows in order (deterministic; neighbouring invocations read neighbouring addresses).

struct Params {
  rows: u32,
  n: u32,
  _pad0: u32,
  _pad1: u32,
}

override ACCUMULATE: bool = false;

@group(0) @binding(0) var<storage, read> in0: array<f32>;
@group(0) @binding(1) var<storage, read> in1: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(64, 1, 1)
fn scale_columns(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = (wid.y * nwg.x + wid.x) * 64u + lid.x;
  if (i >= p.rows * p.n) { return; }
  var v = in0[i] * in1[i % p.n];
  if (ACCUMULATE) { v = v + out[i]; }
  out[i] = v;
}

@compute @workgroup_size(64, 1, 1)
fn column_dot(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let j = wid.x * 64u + lid.x;
  if (j >= p.n) { return; }
  var s = 0.0;
  for (var r = 0u; r < p.rows; r++) {
    s = s + in0[r * p.n + j] * in1[r * p.n + j];
  }
  if (ACCUMULATE) { s = s + out[j]; }
  out[j] = s;
}
