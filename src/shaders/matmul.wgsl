// matmul.wgsl — batched C[b] = alpha · op(A[b]) · op(B[b]) (+ bias) (+ C[b] when ACCUMULATE)
//
// Layout (row-major, element strides between batches in params; a stride of 0 broadcasts one matrix):
//   A: (batch, M, K), or (batch, K, M) stored when TRANS_A     element {{ELEM_A}}
//   B: (batch, K, N), or (batch, N, K) stored when TRANS_B     element {{ELEM_B}}
//      (nn.Linear's weight [out, in] is B with TRANS_B; GPT-2's Conv1D weight [in, out] is B as is)
//   bias: (N) f32, read only when HAS_BIAS (bind any buffer otherwise)
//   C: (batch, M, N) f32; read then written when ACCUMULATE (residual adds, gradient accumulation)
//
// Every entry point accumulates in f32 with fma over k = 0, 1, …, K-1 in that order for each output, so all
// variants give the same bits and a run's numbers do not depend on which variant the adapter was given.
// Entry points and dispatch (x, y, z):
//   naive    8×8 threads, one output each              (⌈N/8⌉,  ⌈M/8⌉,  batch)   fastest on CPU drivers
//   tiled    16×16 threads, 16×16 shared-memory tiles   (⌈N/16⌉, ⌈M/16⌉, batch)
//   blocked  16×16 threads, 4×4 outputs each, 64×64 tile, k-steps of 16   (⌈N/64⌉, ⌈M/64⌉, batch)

struct Params {
  M: u32,
  N: u32,
  K: u32,
  batch: u32,
  strideA: u32,
  strideB: u32,
  strideC: u32,
  alpha: f32,
}

override TRANS_A: bool = false;
override TRANS_B: bool = false;
override HAS_BIAS: bool = false;
override ACCUMULATE: bool = false;

@group(0) @binding(0) var<storage, read> A: array<{{ELEM_A}}>;
@group(0) @binding(1) var<storage, read> B: array<{{ELEM_B}}>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> C: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

// op(A)[m, k], zero outside the matrix so partial tiles add nothing.
fn loadA(b: u32, m: u32, k: u32) -> f32 {
  if (m >= p.M || k >= p.K) { return 0.0; }
  if (TRANS_A) { return f32(A[b * p.strideA + k * p.M + m]); }
  return f32(A[b * p.strideA + m * p.K + k]);
}

// op(B)[k, n], zero outside the matrix.
fn loadB(b: u32, k: u32, n: u32) -> f32 {
  if (k >= p.K || n >= p.N) { return 0.0; }
  if (TRANS_B) { return f32(B[b * p.strideB + n * p.K + k]); }
  return f32(B[b * p.strideB + k * p.N + n]);
}

fn store(b: u32, m: u32, n: u32, acc: f32) {
  if (m >= p.M || n >= p.N) { return; }
  var v = p.alpha * acc;
  if (HAS_BIAS) { v = v + bias[n]; }
  let i = b * p.strideC + m * p.N + n;
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
