// adamw.wgsl — one AdamW step over every trainable tensor at once, with a global gradient-norm clip folded in
//
// Layout: all trainable tensors of a model share four flat f32 buffers of the same length `total`, each tensor a
// segment of them (built by planAdamwLayout in src/gpu/kernels/adamw.ts; segment offsets are multiples of 64
// elements = 256 bytes, so the trainer can bind each tensor as a sub-range of the flat buffers in its forward and
// backward kernels; the gaps between segments are padding that is never updated and whose gradient stays 0):
//   P: (total) params, read and written            M: (total) first moment       V: (total) second moment
//   G: (total) gradients, read only (the gaps must be 0: the norm sums the whole buffer)
//   segments: (numSegments, 4) u32 sorted by offset: [offset, length, bitcast<u32>(lrScale), decay (0/1)]
//             lrScale multiplies the learning rate (LoRA+ gives B a larger one); decay = 0 exempts the tensor
//             from weight decay (biases, norms)
//   partials: (numPartials) f32, Σg² of each workgroup's share of G
//   norm: (8) f32, the step's status (the trainer reads all of it back in one copy):
//         [0] ‖G‖₂ and [1] the clip coefficient min(1, maxNorm / (‖G‖₂ + 1e-6)), written by `finalize`
//             (torch.nn.utils.clip_grad_norm_; maxNorm ≤ 0 disables clipping: coefficient 1)
//         [2] 1 when this step was skipped, else 0, written by `finalize`
//         [3] sticky: 1 once any step was not finite; every later step is skipped too until the host clears it
//             (so a step recorded before the host saw the bad one cannot move the parameters on)
//         [4] [5] the loss sum and token count, copied in by the trainer before `finalize` (0 when unused)
//   The finite guard: a step whose ‖G‖₂ or loss sum is NaN/±Inf changes nothing (P, M, V untouched) — the host
//   reads the status one step late and restores its last checkpoint; nothing after the bad step was applied.
//
// Per element of a segment, with g = G · coefficient and lr' = lr · lrScale (torch.optim.AdamW's order):
//   p ← p · (1 − lr'·weightDecay)            decoupled decay, only when the segment decays
//   m ← m + (1 − β1)(g − m)                  (torch's lerp)
//   v ← β2·v + (1 − β2)·g²
//   p ← p − (lr'/bc1) · m / (√v / bc2Sqrt + eps)        bc1 = 1 − β1ᵗ, bc2Sqrt = √(1 − β2ᵗ), computed on the host
//
// Entry points and dispatch, all in one compute pass, no atomics, no read-back:
//   sumsq     256 threads; workgroup w sums g² over i ≡ w·256 + lid (mod numPartials·256)   (numPartials, 1, 1)
//   finalize  256 threads; sums the partials, writes norm                                 (1, 1, 1)
//   update    256 threads, one element each; i = gid.y · rowStride + gid.x                 (gx, gy, 1), gx·gy·256 ≥ total

struct Params {
  total: u32,
  numSegments: u32,
  numPartials: u32,
  rowStride: u32, // threads per dispatch row of `update` (gx · 256)
  lr: f32,
  beta1: f32,
  beta2: f32,
  eps: f32,
  weightDecay: f32,
  bc1: f32,
  bc2Sqrt: f32,
  maxNorm: f32,
  // 1 − β computed on the host in float64, as torch does: in f32, 1 − f32(0.999) is off by 1.3e-5 relative
  oneMinusBeta1: f32,
  oneMinusBeta2: f32,
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<storage, read_write> P: array<f32>;
@group(0) @binding(1) var<storage, read> G: array<f32>;
@group(0) @binding(2) var<storage, read_write> M: array<f32>;
@group(0) @binding(3) var<storage, read_write> V: array<f32>;
@group(0) @binding(4) var<storage, read> segments: array<u32>;
@group(0) @binding(5) var<storage, read_write> partials: array<f32>;
@group(0) @binding(6) var<storage, read_write> norm: array<f32>;
@group(0) @binding(7) var<uniform> p: Params;

const WG = 256u;
var<workgroup> scratch: array<f32, 256>;

// Tree sum of scratch[0..256) into scratch[0]; every thread of the workgroup calls it (uniform control flow).
fn reduceScratch(lid: u32) {
  for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
    workgroupBarrier();
    if (lid < stride) { scratch[lid] = scratch[lid] + scratch[lid + stride]; }
  }
  workgroupBarrier();
}

@compute @workgroup_size(256, 1, 1)
fn sumsq(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  var acc = 0.0;
  for (var i = wid.x * WG + lid.x; i < p.total; i += p.numPartials * WG) {
    let g = G[i];
    acc = fma(g, g, acc);
  }
  scratch[lid.x] = acc;
  reduceScratch(lid.x);
  if (lid.x == 0u) { partials[wid.x] = scratch[0]; }
}

// NaN or ±Inf, by the exponent bits: compilers may fold `x != x` away under fast-math assumptions.
fn notFinite(x: f32) -> bool {
  return (bitcast<u32>(x) & 0x7f800000u) == 0x7f800000u;
}

@compute @workgroup_size(256, 1, 1)
fn finalize(@builtin(local_invocation_id) lid: vec3<u32>) {
  var acc = 0.0;
  for (var j = lid.x; j < p.numPartials; j += WG) { acc += partials[j]; }
  scratch[lid.x] = acc;
  reduceScratch(lid.x);
  if (lid.x == 0u) {
    let total = sqrt(scratch[0]);
    norm[0] = total;
    norm[1] = select(1.0, min(1.0, p.maxNorm / (total + 1e-6)), p.maxNorm > 0.0);
    let bad = notFinite(total) || notFinite(norm[4]) || norm[3] != 0.0;
    norm[2] = select(0.0, 1.0, bad);
    norm[3] = select(0.0, 1.0, bad);
  }
}

// The last segment whose offset is ≤ i (segments are sorted by offset; the first starts at 0).
fn findSegment(i: u32) -> u32 {
  var lo = 0u;
  var hi = p.numSegments; // answer in [lo, hi)
  while (hi - lo > 1u) {
    let mid = (lo + hi) / 2u;
    if (segments[mid * 4u] <= i) { lo = mid; } else { hi = mid; }
  }
  return lo;
}

@compute @workgroup_size(256, 1, 1)
fn update(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.y * p.rowStride + gid.x;
  if (i >= p.total || p.numSegments == 0u || norm[2] != 0.0) { return; }
  let s = findSegment(i);
  let offset = segments[s * 4u];
  if (i < offset || i >= offset + segments[s * 4u + 1u]) { return; } // padding between segments
  let lr = p.lr * bitcast<f32>(segments[s * 4u + 2u]);
  let decay = segments[s * 4u + 3u] != 0u;

  let g = G[i] * norm[1];
  var w = P[i];
  if (decay) { w = w * (1.0 - lr * p.weightDecay); }
  let m = M[i] + p.oneMinusBeta1 * (g - M[i]);
  let v = p.beta2 * V[i] + p.oneMinusBeta2 * g * g;
  let denom = sqrt(v) / p.bc2Sqrt + p.eps;
  P[i] = w - (lr / p.bc1) * (m / denom);
  M[i] = m;
  V[i] = v;
}
