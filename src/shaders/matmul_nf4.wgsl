// matmul_nf4.wgsl — C = alpha · A · op(W) (+ bias) (+ C when ACCUMULATE), W an NF4-quantized frozen weight
//
// W is the logical [out, in] weight (nn.Linear's layout; GPT-2's Conv1D is transposed before quantizing), flattened
// row-major and quantized by src/gpu/ref/nf4.ref.ts (bitsandbytes' NF4, blocks of 64). Every weight load decodes
// its element from the codes and its block's absmax: the f32 weight is never materialised.
//   TRANS_B = true   forward   y  = x · Wᵀ   A = x (M, K=in),   op(W)[k, n] = W[n, k],  N = out
//   TRANS_B = false  backward  dx = dy · W   A = dy (M, K=out), op(W)[k, n] = W[k, n],  N = in
//
// Layout:
//   A: (M, K) f32
//   codes: ⌈out·in/2⌉ bytes packed little-endian in u32 words; element e's byte is e/2, the high nibble for even e
//   absmax: without DOUBLE_QUANT, (⌈out·in/64⌉) f32 stored as u32 bits;
//           with DOUBLE_QUANT, (⌈out·in/64⌉) u8 codes packed little-endian in u32 words
//   stats (DOUBLE_QUANT only; bind any buffer otherwise): f32 [0, 256) the signed dynamic map, [256, 256 + ⌈blocks/256⌉)
//          the second-level absmax; absmax(block b) = map[code8(b)] · stats[256 + b/256] + p.dqOffset
//   bias: (N) f32, read only when HAS_BIAS
//   C: (M, N) f32; read then written when ACCUMULATE
//
// Accumulates in f32 with fma over k = 0, 1, …, K-1 in that order for each output (as matmul.wgsl), so the variants
// give the same bits. Entry points and dispatch (x, y, z):
//   naive   8×8 threads, one output each                                       (⌈N/8⌉,  ⌈M/8⌉,  1)
//   tiled   16×16 threads, 16×16 shared-memory tiles, each W element decoded once per tile   (⌈N/16⌉, ⌈M/16⌉, 1)
//   blocked 16×16 threads, 4×4 outputs each, 64×64 output tile, k-steps of 16 (matmul.wgsl's blocked); the
//           (16 k, 64 n) weight tile is decoded into shared memory once per k-step, so each W element is decoded
//           once per 64 rows of A                                        (⌈N/64⌉, ⌈M/64⌉, 1)
//   dequantize  no product: C[e] = W[e] for every element of the flattened [out, in] weight (e < N·K; the host
//           binds the forward's N = out, K = in and any buffers for A and bias), one invocation per element, the
//           workgroups folded into 2-D: (min(g, 65535), ⌈g/65535⌉, 1), g = ⌈out·in/256⌉. The host then runs
//           matmul.wgsl on C (QLoRA's "dequant" route, as bitsandbytes trains): W decodes once per product instead
//           of once per 64 rows, and the product runs on the dense kernels' vec4 tiles. weight() is the same
//           function the products call, so the route gives the same bits as the fused entry points.

struct Params {
  M: u32,
  N: u32,
  K: u32,
  alpha: f32,
  dqOffset: f32, // double quantization: the mean subtracted from absmax before it was quantized
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

override TRANS_B: bool = true;
override HAS_BIAS: bool = false;
override ACCUMULATE: bool = false;
override DOUBLE_QUANT: bool = false;

@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read> codes: array<u32>;
@group(0) @binding(2) var<storage, read> absmax: array<u32>;
@group(0) @binding(3) var<storage, read> stats: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
@group(0) @binding(5) var<storage, read_write> C: array<f32>;
@group(0) @binding(6) var<uniform> p: Params;

// bitsandbytes' NF4 codebook (dDequantizeNF4).
var<private> NF4: array<f32, 16> = array<f32, 16>(
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
  -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
  0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
  0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0);

// Byte i of an array of little-endian packed bytes.
fn codeByte(i: u32) -> u32 {
  return (codes[i >> 2u] >> (8u * (i & 3u))) & 0xffu;
}

fn blockAbsmax(b: u32) -> f32 {
  if (DOUBLE_QUANT) {
    let q = (absmax[b >> 2u] >> (8u * (b & 3u))) & 0xffu;
    return stats[q] * stats[256u + b / 256u] + p.dqOffset;
  }
  return bitcast<f32>(absmax[b]);
}

// Element e of the flattened [out, in] weight.
fn weight(e: u32) -> f32 {
  let byte = codeByte(e >> 1u);
  let code = select(byte >> 4u, byte & 0xfu, (e & 1u) == 1u);
  return NF4[code] * blockAbsmax(e / 64u);
}

fn loadA(m: u32, k: u32) -> f32 {
  if (m >= p.M || k >= p.K) { return 0.0; }
  return A[m * p.K + k];
}

// op(W)[k, n], zero outside the matrix so partial tiles add nothing.
fn loadB(k: u32, n: u32) -> f32 {
  if (k >= p.K || n >= p.N) { return 0.0; }
  if (TRANS_B) { return weight(n * p.K + k); }
  return weight(k * p.N + n);
}

fn store(m: u32, n: u32, acc: f32) {
  if (m >= p.M || n >= p.N) { return; }
  var v = p.alpha * acc;
  if (HAS_BIAS) { v = v + bias[n]; }
  let i = m * p.N + n;
  if (ACCUMULATE) { v = v + C[i]; }
  C[i] = v;
}

@compute @workgroup_size(8, 8, 1)
fn naive(@builtin(global_invocation_id) gid: vec3<u32>) {
  let n = gid.x;
  let m = gid.y;
  if (m >= p.M || n >= p.N) { return; }
  var acc = 0.0;
  for (var k = 0u; k < p.K; k++) {
    acc = fma(loadA(m, k), loadB(k, n), acc);
  }
  store(m, n, acc);
}

const T = 16u;
var<workgroup> tileA: array<f32, 256>; // (T m, T k)
var<workgroup> tileB: array<f32, 256>; // (T k, T n)

@compute @workgroup_size(16, 16, 1)
fn tiled(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let m = wid.y * T + lid.y;
  let n = wid.x * T + lid.x;
  var acc = 0.0;
  for (var k0 = 0u; k0 < p.K; k0 += T) {
    tileA[lid.y * T + lid.x] = loadA(m, k0 + lid.x);
    // Forward reads W along k (its rows): let consecutive threads take consecutive k of one row.
    if (TRANS_B) {
      tileB[lid.x * T + lid.y] = loadB(k0 + lid.x, wid.x * T + lid.y);
    } else {
      tileB[lid.y * T + lid.x] = loadB(k0 + lid.y, n);
    }
    workgroupBarrier();
    for (var kk = 0u; kk < T; kk++) {
      acc = fma(tileA[lid.y * T + kk], tileB[kk * T + lid.x], acc);
    }
    workgroupBarrier();
  }
  store(m, n, acc);
}

const BT = 64u; // output tile edge
const BK = 16u; // k-step
var<workgroup> blockA: array<f32, 1024>; // (BT m, BK k)
var<workgroup> blockB: array<f32, 1024>; // (BK k, BT n), decoded

// Thread tid's 4 elements of the (BK k, BT n) tile of op(W) at (k0, n0), decoded into blockB. The 4 are consecutive
// in W's storage (along k when TRANS_B, along n otherwise), so a thread's decodes read neighbouring code bytes.
fn decodeTileB(k0: u32, n0: u32, tid: u32) {
  if (TRANS_B) { // W stored (N, K): n = tid / 4, k = 4·(tid % 4) … +3
    let n = tid / 4u;
    let k = 4u * (tid % 4u);
    for (var j = 0u; j < 4u; j++) { blockB[(k + j) * BT + n] = loadB(k0 + k + j, n0 + n); }
    return;
  }
  let k = tid / 16u; // W stored (K, N): k = tid / 16, n = 4·(tid % 16) … +3
  let n = 4u * (tid % 16u);
  for (var j = 0u; j < 4u; j++) { blockB[k * BT + n + j] = loadB(k0 + k, n0 + n + j); }
}

@compute @workgroup_size(16, 16, 1)
fn blocked(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
           @builtin(local_invocation_index) tid: u32) {
  let m0 = wid.y * BT;
  let n0 = wid.x * BT;
  // Thread (x, y) owns rows y, y+16, y+32, y+48 and the same columns from x (strided, as matmul.wgsl's blocked);
  // each of its 16 outputs has one accumulator that sees k = 0, 1, …, K-1 in order.
  var acc: array<array<f32, 4>, 4>;
  for (var k0 = 0u; k0 < p.K; k0 += BK) {
    for (var l = 0u; l < 4u; l++) {
      let e = tid + 256u * l;
      blockA[e] = loadA(m0 + e / BK, k0 + e % BK);
    }
    decodeTileB(k0, n0, tid);
    workgroupBarrier();
    for (var kk = 0u; kk < BK; kk++) {
      var a: array<f32, 4>;
      var w: array<f32, 4>;
      for (var i = 0u; i < 4u; i++) {
        a[i] = blockA[(lid.y + 16u * i) * BK + kk];
        w[i] = blockB[kk * BT + lid.x + 16u * i];
      }
      for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) {
          acc[i][j] = fma(a[i], w[j], acc[i][j]);
        }
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    for (var j = 0u; j < 4u; j++) {
      store(m0 + lid.y + 16u * i, n0 + lid.x + 16u * j, acc[i][j]);
    }
  }
}

@compute @workgroup_size(256, 1, 1)
fn dequantize(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let e = gid.y * groups.x * 256u + gid.x;
  if (e >= p.N * p.K) { return; }
  C[e] = weight(e);
}
