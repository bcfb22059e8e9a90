// lora.wgsl — the LoRA linear layer y = x·Wᵀ + b + s·B(A(dropout(x))), s = α/r, forward and backward, with the
// rank-r term riding on the frozen base matmul's pass over the same output tile (an epilogue of r more k-steps)
// instead of a separate full pass over x or dy.
//
// Every entry point shares the bindings below; what each one reads is given per entry. Shapes per use:
//   forward   h = drop(x)·Aᵀ                                  down      X=x (T,in)  Rk=A [r,in]  → C=h (T,r)
//             y = x·Wᵀ + b + s·h·Bᵀ (+ y)                      naive/tiled  X=x (T,in), W, bias, L=h (T,r),
//                                                               Rk=B [out,r] (TRANS_R)        → C=y (T,out)
//   backward  g = dy·B (T,r)                                   a plain matmul (kernels/lora.ts)
//             dx = dy·W + s·(g·A)∘mask (+ dx)                   naive/tiled  X=dy (T,out), W, L=g (T,r),
//                                                               Rk=A [r,in], HAS_DROPOUT      → C=dx (T,in)
//             dA = s·gᵀ·drop(x) (+ dA)                          gradA     L=g (T,r), X=x (T,in) → C=dA [r,in]
//             dB = s·dyᵀ·h (+ dB)                               a plain matmul
//   unfused   dx += s·mask∘Lf for a full (T,in) Lf = g·A        maskedAdd L=Lf          → C=dx
//   tests     the raw dropout hash of indices 0..M-1           hashProbe                → C (2·M)
//
// The fused entries compute C[m,n] = Σ_k X[m,k]·opW(k,n) + bias[n] + s·mask(m·N+n)·Σ_j L[m,j]·opR(j,n) (+ C[m,n])
// with opW(k,n) = W[n·K+k] when TRANS_W else W[k·N+n] (forward: nn.Linear's [out,in] is TRANS_W, GPT-2's Conv1D
// [in,out] is not; backward the other way round), opR(j,n) = Rk[n·R+j] when TRANS_R else Rk[j·N+n].
// W is {{ELEM_B}} (f32, or f16 with shader-f16); everything else is f32, accumulated in f32 with fma over
// k = 0…K-1 then j = 0…R-1, so naive and tiled give the same bits.
//
// Dropout: element i of x (row-major over (T,in)) is kept when dropHash(seed, i) ≥ dropThreshold and then scaled by
// keepScale = 1/(1-p); the mask is a pure function of (seed, i), so the backward regenerates it. With HAS_DROPOUT
// off no hash is computed and nothing is scaled (p = 0 is exact).
//
// Dispatch (x, y, z):
//   naive      8×8 threads, one output each            (⌈N/8⌉,  ⌈M/8⌉,  1)
//   tiled      16×16 threads, 16×16 shared tiles        (⌈N/16⌉, ⌈M/16⌉, 1)
//   down       8×8 threads (M=T, N=r, K=in)             (⌈N/8⌉,  ⌈M/8⌉,  1)
//   gradA      8×8 threads (M=r, N=in, K=T)             (⌈N/8⌉,  ⌈M/8⌉,  1)
//   maskedAdd  8×8 threads (M=T, N=in)                  (⌈N/8⌉,  ⌈M/8⌉,  1)
//   hashProbe  64 threads                               (⌈M/64⌉, 1, 1)
//   splitRows, splitCols, splitReduce: the rank-r products split over k, see the section at the end

struct Params {
  M: u32,
  N: u32,
  K: u32,
  R: u32,
  seed: u32,
  dropThreshold: u32,
  scale: f32,
  keepScale: f32,
}

override TRANS_W: bool = false;
override TRANS_R: bool = false;
override HAS_BIAS: bool = false;
override HAS_DROPOUT: bool = false;
override ACCUMULATE: bool = false;

@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read> W: array<{{ELEM_B}}>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read> L: array<f32>;
@group(0) @binding(4) var<storage, read> Rk: array<f32>;
@group(0) @binding(5) var<storage, read_write> C: array<f32>;
@group(0) @binding(6) var<uniform> p: Params;

// --- dropout ---------------------------------------------------------------------------------------------------

// PCG's rxs-m-xs output permutation: cheap and well mixed. ref/lora.ref.ts has the same arithmetic.
fn pcgHash(v: u32) -> u32 {
  let state = v * 747796405u + 2891336453u;
  let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
  return (word >> 22u) ^ word;
}

fn dropHash(seed: u32, index: u32) -> u32 {
  return pcgHash(pcgHash(index) ^ seed);
}

// The mask value of x's element `index`: 0 (dropped) or keepScale; exactly 1 without dropout.
fn keep(index: u32) -> f32 {
  if (!HAS_DROPOUT) { return 1.0; }
  return select(0.0, p.keepScale, dropHash(p.seed, index) >= p.dropThreshold);
}

// --- fused base matmul + rank-r epilogue -----------------------------------------------------------------------

fn loadX(m: u32, k: u32) -> f32 {
  if (m >= p.M || k >= p.K) { return 0.0; }
  return X[m * p.K + k];
}

fn loadW(k: u32, n: u32) -> f32 {
  if (k >= p.K || n >= p.N) { return 0.0; }
  if (TRANS_W) { return f32(W[n * p.K + k]); }
  return f32(W[k * p.N + n]);
}

fn loadL(m: u32, j: u32) -> f32 {
  if (m >= p.M || j >= p.R) { return 0.0; }
  return L[m * p.R + j];
}

fn loadR(j: u32, n: u32) -> f32 {
  if (j >= p.R || n >= p.N) { return 0.0; }
  if (TRANS_R) { return Rk[n * p.R + j]; }
  return Rk[j * p.N + n];
}

// base = Σ_k X·opW, lora = Σ_j L·opR for output (m, n).
fn storeFused(m: u32, n: u32, base: f32, lora: f32) {
  if (m >= p.M || n >= p.N) { return; }
  let i = m * p.N + n;
  var v = base;
  if (HAS_BIAS) { v = v + bias[n]; }
  v = v + p.scale * lora * keep(i);
  if (ACCUMULATE) { v = v + C[i]; }
  C[i] = v;
}

@compute @workgroup_size(8, 8, 1)
fn naive(@builtin(global_invocation_id) gid: vec3<u32>) {
  let n = gid.x;
  let m = gid.y;
  if (m >= p.M || n >= p.N) { return; }
  var base = 0.0;
  for (var k = 0u; k < p.K; k++) {
    base = fma(loadX(m, k), loadW(k, n), base);
  }
  var lora = 0.0;
  for (var j = 0u; j < p.R; j++) {
    lora = fma(loadL(m, j), loadR(j, n), lora);
  }
  storeFused(m, n, base, lora);
}

const T = 16u;
var<workgroup> tileA: array<f32, 256>; // (T m, T k), then (T m, T j)
var<workgroup> tileB: array<f32, 256>; // (T k, T n), then (T j, T n)

@compute @workgroup_size(16, 16, 1)
fn tiled(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let m = wid.y * T + lid.y;
  let n = wid.x * T + lid.x;
  var base = 0.0;
  for (var k0 = 0u; k0 < p.K; k0 += T) {
    tileA[lid.y * T + lid.x] = loadX(m, k0 + lid.x);
    tileB[lid.y * T + lid.x] = loadW(k0 + lid.y, n);
    workgroupBarrier();
    for (var kk = 0u; kk < T; kk++) {
      base = fma(tileA[lid.y * T + kk], tileB[kk * T + lid.x], base);
    }
    workgroupBarrier();
  }
  // The rank-r epilogue: r more k-steps over the same output tile, reading h (or g) and B (or A).
  var lora = 0.0;
  for (var j0 = 0u; j0 < p.R; j0 += T) {
    tileA[lid.y * T + lid.x] = loadL(m, j0 + lid.x);
    tileB[lid.y * T + lid.x] = loadR(j0 + lid.y, n);
    workgroupBarrier();
    for (var jj = 0u; jj < T; jj++) {
      lora = fma(tileA[lid.y * T + jj], tileB[jj * T + lid.x], lora);
    }
    workgroupBarrier();
  }
  storeFused(m, n, base, lora);
}

// --- the masked small pieces -----------------------------------------------------------------------------------

// h[t, j] = Σ_i drop(x)[t, i] · A[j, i]: M = T, N = r, K = in; X = x, Rk = A.
@compute @workgroup_size(8, 8, 1)
fn down(@builtin(global_invocation_id) gid: vec3<u32>) {
  let n = gid.x;
  let m = gid.y;
  if (m >= p.M || n >= p.N) { return; }
  var acc = 0.0;
  for (var k = 0u; k < p.K; k++) {
    let i = m * p.K + k;
    acc = fma(X[i] * keep(i), Rk[n * p.K + k], acc);
  }
  C[m * p.N + n] = acc;
}

// dA[j, i] = s · Σ_t g[t, j] · drop(x)[t, i] (+ dA): M = r, N = in, K = T; L = g, X = x.
@compute @workgroup_size(8, 8, 1)
fn gradA(@builtin(global_invocation_id) gid: vec3<u32>) {
  let n = gid.x;
  let m = gid.y;
  if (m >= p.M || n >= p.N) { return; }
  var acc = 0.0;
  for (var k = 0u; k < p.K; k++) {
    let i = k * p.N + n;
    acc = fma(L[k * p.M + m], X[i] * keep(i), acc);
  }
  var v = p.scale * acc;
  let o = m * p.N + n;
  if (ACCUMULATE) { v = v + C[o]; }
  C[o] = v;
}

// C[m, n] += s · mask · L[m, n] over (M, N) = (T, in): the unfused path's dropout-masked add of g·A into dx.
@compute @workgroup_size(8, 8, 1)
fn maskedAdd(@builtin(global_invocation_id) gid: vec3<u32>) {
  let n = gid.x;
  let m = gid.y;
  if (m >= p.M || n >= p.N) { return; }
  let i = m * p.N + n;
  C[i] = C[i] + p.scale * L[i] * keep(i);
}

// C[2i], C[2i+1] = low and high 16 bits of dropHash(seed, i), i < M: exact in f32, so tests compare bit for bit.
@compute @workgroup_size(64, 1, 1)
fn hashProbe(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x;
  if (i >= p.M) { return; }
  let h = dropHash(p.seed, i);
  C[2u * i] = f32(h & 0xffffu);
  C[2u * i + 1u] = f32(h >> 16u);
}

// --- the rank-r products, split over k ---------------------------------------------------------------------------
//
// The four products with r on one side — h = drop(x)·Aᵀ and g = dy·B (M = T rows, K = in/out), dA = s·gᵀ·drop(x)
// and dB = s·dyᵀ·h (K = T) — have a small output (·, r) and a long k: as one thread per output with a serial k loop
// (down, gradA, the naive matmul) a GPU runs them at a fraction of its width. Here each workgroup owns a 64 × 16
// block of Q and one slice of k (R = the slice length), tiles of 16 k in workgroup memory, and writes its partial
// sums to P; `splitReduce` adds the slices in order (deterministic), scales and stores:
//   splitRows  Q[t, j] = Σ_k drop(X)[t, k] · opR(k, j)      X (M=T, K) row-major; Rk = A [r, K] (TRANS_R) or B [K, r]
//   splitCols  Q[c, j] = Σ_t drop(X)[t, c] · L[t, j]         X (K=T, M) row-major; L (K=T, N=r)
// with drop(X)[t, k] = X·keep(t·rowLength + k) (HAS_DROPOUT; the mask of x, as everywhere in this file).
//   splitReduce C = s·Σ_slices P (+ C): C[m, n] (M, N), or C[n, m] when TRANS_R (dA = Qᵀ, stored [r, in])
// Bindings: X, L, Rk as above; C = P (splitRows, splitCols: (slices, M, N) f32) or the output (splitReduce, with
// L = P). Params: M, N, K, R = slice length; seed, dropThreshold, keepScale as above; scale (splitReduce only).
// Dispatch: splitRows/splitCols 256 threads (⌈N/16⌉, ⌈M/64⌉, ⌈K/R⌉); splitReduce 256 threads (⌈M·N/256⌉, 1, 1).

const SPLIT_TM = 64u;
const SPLIT_TN = 16u;
const SPLIT_TK = 16u;
var<workgroup> splitX: array<f32, 1088>; // (SPLIT_TM rows, SPLIT_TK k), row stride 17 (a pad column against bank conflicts)
var<workgroup> splitY: array<f32, 256>; // (SPLIT_TK k, SPLIT_TN j)

// Thread layout: lid.x = j within the tile (0..15), lid.y = row group (0..15) owning rows lid.y + 16·i, i < 4.
fn splitAccumulate(acc: ptr<function, array<f32, 4>>, jj: u32, rg: u32) {
  for (var kk = 0u; kk < SPLIT_TK; kk++) {
    let y = splitY[kk * SPLIT_TN + jj];
    for (var i = 0u; i < 4u; i++) {
      (*acc)[i] = fma(splitX[(rg + 16u * i) * 17u + kk], y, (*acc)[i]);
    }
  }
}

fn splitStore(acc: array<f32, 4>, wid: vec3<u32>, jj: u32, rg: u32) {
  let j = wid.x * SPLIT_TN + jj;
  if (j >= p.N) { return; }
  for (var i = 0u; i < 4u; i++) {
    let m = wid.y * SPLIT_TM + rg + 16u * i;
    if (m < p.M) { C[(wid.z * p.M + m) * p.N + j] = acc[i]; }
  }
}

@compute @workgroup_size(16, 16, 1)
fn splitRows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let tid = lid.y * 16u + lid.x;
  let k0 = wid.z * p.R;
  let k1 = min(p.K, k0 + p.R);
  var acc = array<f32, 4>(0.0, 0.0, 0.0, 0.0);
  for (var kt = k0; kt < k1; kt += SPLIT_TK) {
    // X tile: 64 rows × 16 k, 4 per thread, consecutive threads along k (coalesced rows of x).
    for (var i = 0u; i < 4u; i++) {
      let e = tid + 256u * i;
      let r = e / SPLIT_TK;
      let kk = e % SPLIT_TK;
      let m = wid.y * SPLIT_TM + r;
      let k = kt + kk;
      var v = 0.0;
      if (m < p.M && k < k1) {
        let idx = m * p.K + k;
        v = X[idx] * keep(idx);
      }
      splitX[r * 17u + kk] = v;
    }
    // opR tile: 16 k × 16 j, one per thread.
    {
      let kk = tid / SPLIT_TN;
      let jj = tid % SPLIT_TN;
      let k = kt + kk;
      let j = wid.x * SPLIT_TN + jj;
      var v = 0.0;
      if (k < k1 && j < p.N) {
        if (TRANS_R) { v = Rk[j * p.K + k]; } else { v = Rk[k * p.N + j]; }
      }
      splitY[kk * SPLIT_TN + jj] = v;
    }
    workgroupBarrier();
    splitAccumulate(&acc, lid.x, lid.y);
    workgroupBarrier();
  }
  splitStore(acc, wid, lid.x, lid.y);
}

@compute @workgroup_size(16, 16, 1)
fn splitCols(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let tid = lid.y * 16u + lid.x;
  let t0 = wid.z * p.R;
  let t1 = min(p.K, t0 + p.R);
  var acc = array<f32, 4>(0.0, 0.0, 0.0, 0.0);
  for (var tt = t0; tt < t1; tt += SPLIT_TK) {
    // X tile: 16 t × 64 columns c, 4 per thread, consecutive threads along c (coalesced); stored as (c, t).
    for (var i = 0u; i < 4u; i++) {
      let e = tid + 256u * i;
      let kk = e / SPLIT_TM;
      let r = e % SPLIT_TM;
      let t = tt + kk;
      let c = wid.y * SPLIT_TM + r;
      var v = 0.0;
      if (t < t1 && c < p.M) {
        let idx = t * p.M + c;
        v = X[idx] * keep(idx);
      }
      splitX[r * 17u + kk] = v;
    }
    // L tile: 16 t × 16 j.
    {
      let kk = tid / SPLIT_TN;
      let jj = tid % SPLIT_TN;
      let t = tt + kk;
      let j = wid.x * SPLIT_TN + jj;
      var v = 0.0;
      if (t < t1 && j < p.N) { v = L[t * p.N + j]; }
      splitY[kk * SPLIT_TN + jj] = v;
    }
    workgroupBarrier();
    splitAccumulate(&acc, lid.x, lid.y);
    workgroupBarrier();
  }
  splitStore(acc, wid, lid.x, lid.y);
}

@compute @workgroup_size(256, 1, 1)
fn splitReduce(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x;
  if (i >= p.M * p.N) { return; }
  let slices = (p.K + p.R - 1u) / p.R;
  var acc = 0.0;
  for (var s = 0u; s < slices; s++) { acc = acc + L[s * p.M * p.N + i]; }
  let m = i / p.N;
  let n = i % p.N;
  var o = i;
  if (TRANS_R) { o = n * p.M + m; }
  var v = p.scale * acc;
  if (ACCUMULATE) { v = v + C[o]; }
  C[o] = v;
}
