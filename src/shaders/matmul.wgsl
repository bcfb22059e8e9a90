// matmul.wgsl — batched C[b] = alpha · op(A[b]) · op(B[b]) (+ bias) (+ C[b] when ACCUMULATE)
//
// Layout (row-major, element strides between batches in params; a stride of 0 broadcasts one matrix; each matrix
// starts at its element offset in params, 0 unless a caller binds a larger buffer):
//   A: (batch, M, K), or (batch, K, M) stored when TRANS_A     element {{ELEM_A}}
//   B: (batch, K, N), or (batch, N, K) stored when TRANS_B     element {{ELEM_B}}
//      (nn.Linear's weight [out, in] is B with TRANS_B; GPT-2's Conv1D weight [in, out] is B as is)
//   bias: (N) f32, read only when HAS_BIAS (bind any buffer otherwise)
//   C: (batch, M, N) f32; read then written when ACCUMULATE (residual adds, gradient accumulation)
//   A4, B4: A and B bound a second time as vec4 views, read only by blocked4 (bind A and B again for every variant)
//
// Every entry point accumulates in f32 with fma over k = 0, 1, …, K-1 in that order for each output, so all
// variants give the same bits and a run's numbers do not depend on which variant the adapter was given.
// Entry points and dispatch (x, y, z):
//   naive    8×8 threads, one output each              (⌈N/8⌉,  ⌈M/8⌉,  batch)   fastest on CPU drivers
//   tiled    16×16 threads, 16×16 shared-memory tiles   (⌈N/16⌉, ⌈M/16⌉, batch)
//   blocked  16×16 threads, 4×4 outputs each, 64×64 tile, k-steps of 16   (⌈N/64⌉, ⌈M/64⌉, batch)
//   blocked4 as blocked, but each thread's 4×4 block is contiguous and tiles move as vec4 (global loads, shared
//            memory, the inner product as vec4 fma); only where each operand's contiguous dimension (k, or m when
//            TRANS_A, n when not TRANS_B) and batch stride are multiples of 4 — matmulVariantApplies in matmul.ts;
//            the host falls back to blocked elsewhere                   (⌈N/64⌉, ⌈M/64⌉, batch)

struct Params {
  M: u32,
  N: u32,
  K: u32,
  batch: u32,
  strideA: u32,
  strideB: u32,
  strideC: u32,
  alpha: f32,
  // Where each matrix starts in its binding (elements): a chunk of rows of a larger buffer without a range binding
  // of its own, so its bind group does not change with the chunk (multiples of 4 for blocked4's vec4 views).
  offsetA: u32,
  offsetB: u32,
  offsetC: u32,
  _pad: u32,
}

override TRANS_A: bool = false;
override TRANS_B: bool = false;
override HAS_BIAS: bool = false;
override ACCUMULATE: bool = false;

@group(0) @binding(0) var<storage, read> A: array<{{ELEM_A}}>;
@group(0) @binding(1) var<storage, read> B: array<{{ELEM_B}}>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> C: array<f32>;
// The same two buffers again as vec4 views, for blocked4. Valid only where the host checked that every group of 4
// consecutive elements a thread loads starts at a multiple of 4 (so it is one vec4) and lies wholly inside or
// wholly outside the matrix (so one bounds test covers it).
@group(0) @binding(4) var<storage, read> A4: array<vec4<{{ELEM_A}}>>;
@group(0) @binding(5) var<storage, read> B4: array<vec4<{{ELEM_B}}>>;
@group(0) @binding(6) var<uniform> p: Params;

// op(A)[m, k], zero outside the matrix so partial tiles add nothing.
fn loadA(b: u32, m: u32, k: u32) -> f32 {
  if (m >= p.M || k >= p.K) { return 0.0; }
  if (TRANS_A) { return f32(A[p.offsetA + b * p.strideA + k * p.M + m]); }
  return f32(A[p.offsetA + b * p.strideA + m * p.K + k]);
}

// op(B)[k, n], zero outside the matrix.
fn loadB(b: u32, k: u32, n: u32) -> f32 {
  if (k >= p.K || n >= p.N) { return 0.0; }
  if (TRANS_B) { return f32(B[p.offsetB + b * p.strideB + n * p.K + k]); }
  return f32(B[p.offsetB + b * p.strideB + k * p.N + n]);
}

fn store(b: u32, m: u32, n: u32, acc: f32) {
  if (m >= p.M || n >= p.N) { return; }
  var v = p.alpha * acc;
  if (HAS_BIAS) { v = v + bias[n]; }
  let i = p.offsetC + b * p.strideC + m * p.N + n;
  if (ACCUMULATE) { v = v + C[i]; }
  C[i] = v;
}

@compute @workgroup_size(8, 8, 1)
fn naive(@builtin(global_invocation_id) gid: vec3<u32>) {
  let n = gid.x;
  let m = gid.y;
  let b = gid.z;
  if (m >= p.M || n >= p.N) { return; }
  var acc = 0.0;
  for (var k = 0u; k < p.K; k++) {
    acc = fma(loadA(b, m, k), loadB(b, k, n), acc);
  }
  store(b, m, n, acc);
}

const T = 16u;
var<workgroup> tileA: array<f32, 256>; // (T m, T k)
var<workgroup> tileB: array<f32, 256>; // (T k, T n)

@compute @workgroup_size(16, 16, 1)
fn tiled(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let b = wid.z;
  let m = wid.y * T + lid.y;
  let n = wid.x * T + lid.x;
  var acc = 0.0;
  for (var k0 = 0u; k0 < p.K; k0 += T) {
    tileA[lid.y * T + lid.x] = loadA(b, m, k0 + lid.x);
    tileB[lid.y * T + lid.x] = loadB(b, k0 + lid.y, n);
    workgroupBarrier();
    for (var kk = 0u; kk < T; kk++) {
      acc = fma(tileA[lid.y * T + kk], tileB[kk * T + lid.x], acc);
    }
    workgroupBarrier();
  }
  store(b, m, n, acc);
}

const BT = 64u; // output tile edge
const BK = 16u; // k-step
var<workgroup> blockA: array<f32, 1024>; // (BT m, BK k)
var<workgroup> blockB: array<f32, 1024>; // (BK k, BT n)

@compute @workgroup_size(16, 16, 1)
fn blocked(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
           @builtin(local_invocation_index) tid: u32) {
  let b = wid.z;
  let m0 = wid.y * BT;
  let n0 = wid.x * BT;
  // Thread (x, y) owns rows y, y+16, y+32, y+48 and the same columns from x: strided, so neighbouring threads read
  // neighbouring shared-memory words.
  var acc: array<array<f32, 4>, 4>;
  for (var k0 = 0u; k0 < p.K; k0 += BK) {
    for (var l = 0u; l < 4u; l++) {
      let e = tid + 256u * l;
      blockA[e] = loadA(b, m0 + e / BK, k0 + e % BK);
      blockB[e] = loadB(b, k0 + e / BT, n0 + e % BT);
    }
    workgroupBarrier();
    for (var kk = 0u; kk < BK; kk++) {
      var a: array<f32, 4>;
      var bv: array<f32, 4>;
      for (var i = 0u; i < 4u; i++) {
        a[i] = blockA[(lid.y + 16u * i) * BK + kk];
        bv[i] = blockB[kk * BT + lid.x + 16u * i];
      }
      for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) {
          acc[i][j] = fma(a[i], bv[j], acc[i][j]);
        }
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    for (var j = 0u; j < 4u; j++) {
      store(b, m0 + lid.y + 16u * i, n0 + lid.x + 16u * j, acc[i][j]);
    }
  }
}

const VT = 64u; // output tile edge
const VK = 16u; // k-step
const VQ = 16u; // vec4s across a tile row (VT / 4)
var<workgroup> vecA: array<vec4<f32>, 256>; // (VK k, VT m): k-major, so a thread reads its 4 rows' a-values at once
var<workgroup> vecB: array<vec4<f32>, 256>; // (VK k, VT n)

// Thread tid's share of the (VT m, VK k) tile of op(A) at k0: 4 consecutive elements along A's contiguous dimension
// (k, or m when TRANS_A), zero outside the matrix.
fn loadA4(b: u32, m0: u32, k0: u32, tid: u32) -> vec4<f32> {
  if (TRANS_A) { // A stored (K, M): tile row k = tid / 16, m = 4·(tid % 16) … +3
    let k = k0 + tid / VQ;
    let m = m0 + 4u * (tid % VQ);
    if (k >= p.K || m >= p.M) { return vec4(0.0); }
    return vec4<f32>(A4[(p.offsetA + b * p.strideA + k * p.M + m) / 4u]);
  }
  let m = m0 + tid / 4u; // A stored (M, K): m = tid / 4, k = 4·(tid % 4) … +3
  let k = k0 + 4u * (tid % 4u);
  if (m >= p.M || k >= p.K) { return vec4(0.0); }
  return vec4<f32>(A4[(p.offsetA + b * p.strideA + m * p.K + k) / 4u]);
}

// Puts what loadA4 returned for tid into vecA: as is when it runs along m, scattered over 4 k-rows when along k.
fn storeA4(tid: u32, v: vec4<f32>) {
  if (TRANS_A) { vecA[tid] = v; return; }
  let m = tid / 4u;
  let k = 4u * (tid % 4u);
  for (var j = 0u; j < 4u; j++) { vecA[(k + j) * VQ + m / 4u][m % 4u] = v[j]; }
}

// Thread tid's share of the (VK k, VT n) tile of op(B) at k0: 4 consecutive elements along n, or along k when
// TRANS_B, zero outside the matrix.
fn loadB4(b: u32, n0: u32, k0: u32, tid: u32) -> vec4<f32> {
  if (TRANS_B) { // B stored (N, K): n = tid / 4, k = 4·(tid % 4) … +3
    let n = n0 + tid / 4u;
    let k = k0 + 4u * (tid % 4u);
    if (n >= p.N || k >= p.K) { return vec4(0.0); }
    return vec4<f32>(B4[(p.offsetB + b * p.strideB + n * p.K + k) / 4u]);
  }
  let k = k0 + tid / VQ; // B stored (K, N): tile row k = tid / 16, n = 4·(tid % 16) … +3
  let n = n0 + 4u * (tid % VQ);
  if (k >= p.K || n >= p.N) { return vec4(0.0); }
  return vec4<f32>(B4[(p.offsetB + b * p.strideB + k * p.N + n) / 4u]);
}

fn storeB4(tid: u32, v: vec4<f32>) {
  if (!TRANS_B) { vecB[tid] = v; return; }
  let n = tid / 4u;
  let k = 4u * (tid % 4u);
  for (var j = 0u; j < 4u; j++) { vecB[(k + j) * VQ + n / 4u][n % 4u] = v[j]; }
}

@compute @workgroup_size(16, 16, 1)
fn blocked4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
            @builtin(local_invocation_index) tid: u32) {
  let b = wid.z;
  let m0 = wid.y * VT;
  let n0 = wid.x * VT;
  // Thread (x, y) owns rows m0 + 4y … +3 and columns n0 + 4x … +3: acc[i] holds row i's 4 columns. Each of the
  // 16 outputs still has one accumulator that sees k = 0, 1, …, K-1 in order, as in every other entry point.
  var acc: array<vec4<f32>, 4>;
  // The next k-step's share waits in registers, loaded while the current one is multiplied.
  var nextA = loadA4(b, m0, 0u, tid);
  var nextB = loadB4(b, n0, 0u, tid);
  for (var k0 = 0u; k0 < p.K; k0 += VK) {
    storeA4(tid, nextA);
    storeB4(tid, nextB);
    workgroupBarrier();
    nextA = loadA4(b, m0, k0 + VK, tid); // zeros past K
    nextB = loadB4(b, n0, k0 + VK, tid);
    for (var kk = 0u; kk < VK; kk++) {
      let a = vecA[kk * VQ + lid.y];
      let bv = vecB[kk * VQ + lid.x];
      acc[0] = fma(vec4(a.x), bv, acc[0]);
      acc[1] = fma(vec4(a.y), bv, acc[1]);
      acc[2] = fma(vec4(a.z), bv, acc[2]);
      acc[3] = fma(vec4(a.w), bv, acc[3]);
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    for (var j = 0u; j < 4u; j++) {
      store(b, m0 + 4u * lid.y + i, n0 + 4u * lid.x + j, acc[i][j]);
    }
  }
}
