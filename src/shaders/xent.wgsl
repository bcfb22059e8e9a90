// xent.wgsl — token-level cross-entropy fused with the LM head: loss_t = logsumexp(hs_t·Whᵀ) − hs_t·Wh[label_t]
// for every position whose (already shifted) label is in [0, V), and dhs_t = gradScale·(softmax − onehot)·Wh.
//
// The T positions are processed in chunks of `rows` rows starting at `row0`, so the largest temporary is one chunk's
// logits (rows, V), never all T×V of them (150k vocabulary × a long batch would not fit). Per chunk:
//   logitsTiled logits (rows, V) = hs[row0 …]·Whᵀ                                (tiled matmul)
//               one dispatch per shard of Wh: that shard's columns shardRow0 … shardRow0 + shardRows − 1
//   rowStats    per row: max and Σexp in one online pass, lse; loss_t, counted_t; with WRITE_GRAD the row is
//               overwritten in place by (softmax − onehot)·gradScale (zeros for ignored rows)
//   gradHidden  dhs[row0 …] (rows, C) = that row block · Wh                        (tiled matmul, K = V)
//               one dispatch per shard, K over the shard's vocabulary rows; with ACCUMULATE (every shard after
//               the first) each thread continues the running sum already in dhs, so the f32 fma chain runs over
//               v = 0 … V−1 in the same order however Wh is split (sharded = unsharded, bit for bit)
// and once at the end:
//   reduce      total = (Σ loss_t, Σ counted_t) over all T (+ total when ACCUMULATE)
// No float atomics: per-row results go to the row stats, then one workgroup reduces them in a fixed order.
//
// Layout:
//   hs:      (T, C) f32
//   Wh:      [shardRows, C] {{ELEM}} (f32, or f16 with shader-f16): rows shardRow0 … of the [V, C] LM head. A head
//            over the binding limit is split by rows (src/gpu/sharded.ts); one that fits is one shard (0, V).
//   labels:  (T) i32; −100 (or anything outside [0, V)) = no loss at that position
//   work:    f32 scratch: row stats (2, T) at 0 — work[t] = loss_t (0 if ignored), work[T + t] = 1 if counted
//            else 0 — then one chunk's logits (rows, V) from logitsOffset (recordLogits: offset 0, the output)
//   out:     gradHidden: dhs (T, C) f32, written for the chunk's rows; reduce: total (2) f32 = [loss sum, count]
//
// Every entry point shares these bindings; the host binds a real buffer to each (two writable slots only, so a
// forward-only run or recordLogits can fill the one it does not use with the recorder's spare buffer).
// Dispatch (x, y, z):
//   logitsTiled 16×16 threads   (⌈shardRows/16⌉, ⌈rows/16⌉, 1)   per shard
//   rowStats    256 threads     (rows, 1, 1)            one workgroup per row
//   gradHidden  16×16 threads   (⌈C/16⌉, ⌈rows/16⌉, 1)           per shard
//   reduce      256 threads     (1, 1, 1)

struct Params {
  T: u32,
  C: u32,
  V: u32,
  row0: u32,
  rows: u32,
  gradScale: f32,
  logitsOffset: u32,
  shardRow0: u32, // first vocabulary row of the bound Wh shard (logitsTiled, gradHidden)
  shardRows: u32, // its rows
  pad0: u32,
  pad1: u32,
}

override WRITE_GRAD: bool = false;
override ACCUMULATE: bool = false;

@group(0) @binding(0) var<storage, read> hs: array<f32>;
@group(0) @binding(1) var<storage, read> Wh: array<{{ELEM}}>;
@group(0) @binding(2) var<storage, read> labels: array<i32>;
@group(0) @binding(3) var<storage, read_write> work: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

// --- logits = hs·Whᵀ ---------------------------------------------------------------------------------------------

const TS = 16u;
var<workgroup> tileA: array<f32, 256>; // (TS m, TS k)
var<workgroup> tileB: array<f32, 256>; // (TS k, TS n)

fn loadHs(m: u32, k: u32) -> f32 {
  if (m >= p.rows || k >= p.C) { return 0.0; }
  return hs[(p.row0 + m) * p.C + k];
}

// Whᵀ[k, v] = Wh[v, k], v local to the shard
fn loadWhT(k: u32, v: u32) -> f32 {
  if (k >= p.C || v >= p.shardRows) { return 0.0; }
  return f32(Wh[v * p.C + k]);
}

@compute @workgroup_size(16, 16, 1)
fn logitsTiled(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let m = wid.y * TS + lid.y;
  let v = wid.x * TS + lid.x;
  var acc = 0.0;
  for (var k0 = 0u; k0 < p.C; k0 += TS) {
    tileA[lid.y * TS + lid.x] = loadHs(m, k0 + lid.x);
    tileB[lid.y * TS + lid.x] = loadWhT(k0 + lid.y, v);
    workgroupBarrier();
    for (var kk = 0u; kk < TS; kk++) {
      acc = fma(tileA[lid.y * TS + kk], tileB[kk * TS + lid.x], acc);
    }
    workgroupBarrier();
  }
  if (m < p.rows && v < p.shardRows) { work[p.logitsOffset + m * p.V + p.shardRow0 + v] = acc; }
}

// --- per-row log-sum-exp, loss and gradient coefficients ----------------------------------------------------------

const WG = 256u;
const LOWEST = -3.4028234663852886e38; // the running max before any element: exp(LOWEST − real max) = 0
var<workgroup> redMax: array<f32, 256>;
var<workgroup> redSum: array<f32, 256>;

@compute @workgroup_size(256, 1, 1)
fn rowStats(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let m = wid.x; // uniform across the workgroup, so the early return keeps barriers in uniform control flow
  if (m >= p.rows) { return; }
  let tid = lid.x;
  let base = p.logitsOffset + m * p.V;
  // Online log-sum-exp over this thread's strided share of the row: one pass, never overflows.
  var mx = LOWEST;
  var sm = 0.0;
  for (var v = tid; v < p.V; v += WG) {
    let l = work[base + v];
    if (l > mx) {
      sm = sm * exp(mx - l) + 1.0;
      mx = l;
    } else {
      sm = sm + exp(l - mx);
    }
  }
  redMax[tid] = mx;
  redSum[tid] = sm;
  workgroupBarrier();
  for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
    if (tid < stride) {
      let m1 = redMax[tid];
      let m2 = redMax[tid + stride];
      let mm = max(m1, m2);
      redSum[tid] = redSum[tid] * exp(m1 - mm) + redSum[tid + stride] * exp(m2 - mm);
      redMax[tid] = mm;
    }
    workgroupBarrier();
  }
  let lse = redMax[0] + log(redSum[0]);
  let t = p.row0 + m;
  let label = labels[t];
  let counted = label >= 0 && u32(label) < p.V;
  if (tid == 0u) {
    var loss = 0.0;
    if (counted) { loss = lse - work[base + u32(label)]; }
    work[t] = loss;
    work[p.T + t] = select(0.0, 1.0, counted);
  }
  if (WRITE_GRAD) {
    // Thread 0 has read the label's logit above before anyone overwrites the row.
    workgroupBarrier();
    for (var v = tid; v < p.V; v += WG) {
      var g = 0.0;
      if (counted) {
        g = exp(work[base + v] - lse);
        if (i32(v) == label) { g = g - 1.0; }
        g = g * p.gradScale;
      }
      work[base + v] = g;
    }
  }
}

// --- dhs = G·Wh over the chunk's rows -----------------------------------------------------------------------------

// v local to the shard
fn loadG(m: u32, v: u32) -> f32 {
  if (m >= p.rows || v >= p.shardRows) { return 0.0; }
  return work[p.logitsOffset + m * p.V + p.shardRow0 + v];
}

fn loadWh(v: u32, c: u32) -> f32 {
  if (v >= p.shardRows || c >= p.C) { return 0.0; }
  return f32(Wh[v * p.C + c]);
}

@compute @workgroup_size(16, 16, 1)
fn gradHidden(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let m = wid.y * TS + lid.y;
  let c = wid.x * TS + lid.x;
  let inside = m < p.rows && c < p.C;
  var acc = 0.0;
  if (ACCUMULATE && inside) { acc = out[(p.row0 + m) * p.C + c]; } // the previous shards' running sum
  for (var v0 = 0u; v0 < p.shardRows; v0 += TS) {
    tileA[lid.y * TS + lid.x] = loadG(m, v0 + lid.x);
    tileB[lid.y * TS + lid.x] = loadWh(v0 + lid.y, c);
    workgroupBarrier();
    for (var vv = 0u; vv < TS; vv++) {
      acc = fma(tileA[lid.y * TS + vv], tileB[vv * TS + lid.x], acc);
    }
    workgroupBarrier();
  }
  if (inside) { out[(p.row0 + m) * p.C + c] = acc; }
}

// --- loss sum and count over all T rows ---------------------------------------------------------------------------

@compute @workgroup_size(256, 1, 1)
fn reduce(@builtin(local_invocation_id) lid: vec3<u32>) {
  let tid = lid.x;
  var s = 0.0;
  var n = 0.0;
  for (var t = tid; t < p.T; t += WG) {
    s = s + work[t];
    n = n + work[p.T + t];
  }
  redMax[tid] = s; // reusing the row-stats scratch: (sum, count) pairs
  redSum[tid] = n;
  workgroupBarrier();
  for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
    if (tid < stride) {
      redMax[tid] = redMax[tid] + redMax[tid + stride];
      redSum[tid] = redSum[tid] + redSum[tid + stride];
    }
    workgroupBarrier();
  }
  if (tid == 0u) {
    var sum = redMax[0];
    var count = redSum[0];
    if (ACCUMULATE) {
      sum = sum + out[0];
      count = count + out[1];
    }
    out[0] = sum;
    out[1] = count;
  }
}
