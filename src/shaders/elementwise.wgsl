// elementwise.wgsl — the glue between the big kernels: add, scale, copy, f32↔half casts, sum of squares.
//
// Every buffer is a flat array of n elements, f32 unless said otherwise. {{ELEM}} is the half type of the casts:
// f16 where the adapter has shader-f16; the other entry points are rendered with ELEM = f32, where the casts are
// plain copies that are never instantiated.
//
// Entry points; bindings in order, then the params uniform (its binding number is the count of storage bindings,
// so each entry point declares its own variables: a binding number may be reused by different entry points):
//   add            a (n), b (n)        → out (n) = a + b
//   add_inplace    b (n)               → acc (n) += b              (residual adds, gradient sums)
//   scale          x (n)               → out (n) = alpha·x
//   scale_inplace                        x (n) *= alpha            (gradient clipping)
//   copy           x (n)               → out (n) = x
//   to_half        x f32 (n)           → out {{ELEM}} (n)          saturates to ±65504 (f16's largest finite), so a
//                                                                  large weight becomes the largest half, not inf
//   to_f32         x {{ELEM}} (n)      → out f32 (n)
//   sumsq_partial  x (n)               → partials (⌈n/4096⌉): partials[g] = Σ x² over elements [4096g, 4096g+4096)
//   sumsq_final    partials (n)        → result[offset] = Σ partials (+ result[offset] when ACCUMULATE)
//                  (ACCUMULATE sums several tensors into one global sum of squares; offset gives each its own slot)
// Dispatch: 256 threads per workgroup. Elementwise entries and sumsq_partial take ⌈n/256⌉ resp. ⌈n/4096⌉
// workgroups, folded into (x, y) when over 65535 (the flat workgroup index is wid.y·nwg.x + wid.x; the tail of the
// last row is guarded). sumsq_final is one workgroup.
// Sums are in f32 and deterministic: a fixed per-thread order, then a fixed tree over the workgroup.

struct Params {
  n: u32,
  alpha: f32,
  offset: u32,
  _pad: u32,
}

override ACCUMULATE: bool = false;

const WG = 256u;
const PER_THREAD = 16u; // sumsq_partial elements per thread
const CHUNK = 4096u; // WG · PER_THREAD: elements per partial sum

// Params at binding = number of storage bindings of the entry point that reads it.
@group(0) @binding(1) var<uniform> pAt1: Params;
@group(0) @binding(2) var<uniform> pAt2: Params;
@group(0) @binding(3) var<uniform> pAt3: Params;

fn flatIndex(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
  return (wid.y * nwg.x + wid.x) * WG + lid.x;
}

// ---- add: a, b → out
@group(0) @binding(0) var<storage, read> addA: array<f32>;
@group(0) @binding(1) var<storage, read> addB: array<f32>;
@group(0) @binding(2) var<storage, read_write> addOut: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn add(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
       @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = flatIndex(wid, nwg, lid);
  if (i >= pAt3.n) { return; }
  addOut[i] = addA[i] + addB[i];
}

// ---- add_inplace: acc += b
@group(0) @binding(0) var<storage, read> accB: array<f32>;
@group(0) @binding(1) var<storage, read_write> acc: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn add_inplace(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = flatIndex(wid, nwg, lid);
  if (i >= pAt2.n) { return; }
  acc[i] = acc[i] + accB[i];
}

// ---- scale, copy: x → out (shared bindings)
@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn scale(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = flatIndex(wid, nwg, lid);
  if (i >= pAt2.n) { return; }
  dst[i] = pAt2.alpha * src[i];
}

@compute @workgroup_size(256, 1, 1)
fn copy(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = flatIndex(wid, nwg, lid);
  if (i >= pAt2.n) { return; }
  dst[i] = src[i];
}

// ---- scale_inplace: x *= alpha
@group(0) @binding(0) var<storage, read_write> scaled: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn scale_inplace(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = flatIndex(wid, nwg, lid);
  if (i >= pAt1.n) { return; }
  scaled[i] = pAt1.alpha * scaled[i];
}

// ---- casts. An f16 array's buffer is padded to 4 bytes; only the first n elements are written.
@group(0) @binding(1) var<storage, read_write> halfOut: array<{{ELEM}}>;
@group(0) @binding(0) var<storage, read> halfIn: array<{{ELEM}}>;

const HALF_MAX = 65504.0;

@compute @workgroup_size(256, 1, 1)
fn to_half(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = flatIndex(wid, nwg, lid);
  if (i >= pAt2.n) { return; }
  // WGSL leaves an out-of-range conversion's result indeterminate: clamp first.
  halfOut[i] = {{ELEM}}(clamp(src[i], -HALF_MAX, HALF_MAX));
}

@compute @workgroup_size(256, 1, 1)
fn to_f32(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = flatIndex(wid, nwg, lid);
  if (i >= pAt2.n) { return; }
  dst[i] = f32(halfIn[i]);
}

// ---- sum of squares
var<workgroup> red: array<f32, 256>;

// Σ v over the workgroup, in a fixed tree order. Call from uniform control flow only.
fn workgroupSum(v: f32, t: u32) -> f32 {
  red[t] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (t < s) { red[t] = red[t] + red[t + s]; }
    workgroupBarrier();
  }
  return red[0];
}

@group(0) @binding(1) var<storage, read_write> partialsOut: array<f32>; // (⌈n/4096⌉)

@compute @workgroup_size(256, 1, 1)
fn sumsq_partial(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_id) lid: vec3<u32>) {
  let g = wid.y * nwg.x + wid.x;
  let n = pAt2.n;
  // Whole workgroups past the end leave together, so the barriers below stay in uniform control flow.
  let count = n / CHUNK + select(0u, 1u, n % CHUNK != 0u); // ⌈n/CHUNK⌉ without overflowing u32
  if (g >= count) { return; }
  var s = 0.0;
  for (var k = 0u; k < PER_THREAD; k++) {
    let i = g * CHUNK + k * WG + lid.x; // strided: neighbouring threads read neighbouring words
    if (i < n) {
      let v = src[i];
      s = fma(v, v, s);
    }
  }
  let total = workgroupSum(s, lid.x);
  if (lid.x == 0u) { partialsOut[g] = total; }
}

@group(0) @binding(0) var<storage, read> partialsIn: array<f32>; // (n) partial sums
@group(0) @binding(1) var<storage, read_write> result: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn sumsq_final(@builtin(local_invocation_id) lid: vec3<u32>) {
  var s = 0.0;
  for (var i = lid.x; i < pAt2.n; i += WG) {
    s += partialsIn[i];
  }
  let total = workgroupSum(s, lid.x);
  if (lid.x == 0u) {
    var v = total;
    if (ACCUMULATE) { v += result[pAt2.offset]; }
    result[pAt2.offset] = v;
  }
}
