// adalora.wgsl — AdaLoRA's own steps around LoRA's kernels (PEFT 0.21 tuners/adalora): the layer is LoRA with the
// effective down-projection A_eff = diag(E)·A, so lora.wgsl runs it unchanged on A_eff and these entry points do the rest.
//
// Buffers (every module has the same rank r; M modules):
//   P (flat f32, read_write): the trainable params of planAdamwLayout — per module A [r, in], B [out, r] and E (r),
//      then its state segments ipt and unc (the importance EMAs, each mirroring the span A..E element for element, the
//      padding between segments included) and mask (r: 1 kept, 0 masked). G (flat f32): the gradients, same layout.
//   table (M·12 u32): per module [aOff, eOff, bOff, in, out, effOff, iptOff, uncOff, maskOff, span, 0, 0], offsets in
//      elements; span = eOff + r − aOff.
//   aeff (f32): every module's A_eff [r, in] at effOff.
//   scratch (f32): scores (M·r) at 0, N (2M, r, r) at p.nOff, f (2M) and R at p.fOff.
//   aux (f32): the trainer's loss total [Σ loss, count] (orth_loss), else AdamW's status (adamw.wgsl: [1] the clip
//      coefficient, [2] 1 when the step was skipped).
// Matrix mat = 2m is module m's A (vectors v_i = row i of A, length in), mat = 2m + 1 its B (v_i = column i of B,
// length out): the regulariser's Gram matrices are both Σ_k v_i[k]·v_j[k] (AAᵀ and BᵀB).
//
// Entry points (workgroups of 64; every sum is a fixed-order tree, deterministic):
//   effective_a  one workgroup per triplet row t = m·r + i      (M·r, 1, 1)
//                E_i ← E_i·mask_i when p.mask (the budget's mask, PEFT's masked_fill_); aeff row i = E_i·A row i
//   grad_a       (M·r, 1, 1): G's A rows hold ∂L/∂A_eff (the LoRA backward wrote them); dE_i = Σ_k dA_eff[i,k]·A[i,k]
//                into G's E, then dA = E_i·dA_eff in place (the chain rule through A_eff = diag(E)·A)
//   gram         (r·r, 2M, 1): N_mat[i,j] = Σ_k v_i[k]·v_j[k] − δ_ij
//   orth_loss    (1, 1, 1): f_mat = ‖N_mat‖_F, R = Σ f / 2M, aux[0] += p.weight·R·aux[1] (the loss the trainer reports
//                is Σ loss / count: PEFT's outputs.loss + orth_reg_weight·R)
//   orth_grad    (⌈max(r·in, out·r)/64⌉, 2M, 1): G[v] += p.weight/(M·f)·(N·v) — ∂(w·R)/∂A = (w/2M)·2·N·A/f, and
//                ∂/∂B = (w/2M)·2·B·N/f (N symmetric); nothing where f = 0
//   importance   (⌈max span/64⌉, M, 1): PEFT's RankAllocator.update_ipt on the updated P and the step's clipped
//                gradient G·clip: ipt = |p·g|, ipt_ema ← β1·ipt_ema + (1−β1)·ipt, unc ← β2·unc + (1−β2)·|ipt − ipt_ema|;
//                nothing when AdamW skipped the step
//   scores       (M·r, 1, 1): per triplet, ipt_ema·unc of E_i + its mean over A's row i + its mean over B's column i
//                (PEFT's mask_to_budget), into scratch[t]

struct Params {
  numModules: u32,
  r: u32,
  mask: u32,
  nOff: u32,
  fOff: u32,
  weight: f32,
  beta1: f32,
  oneMinusBeta1: f32,
  beta2: f32,
  oneMinusBeta2: f32,
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<storage, read_write> P: array<f32>;
@group(0) @binding(1) var<storage, read_write> G: array<f32>;
@group(0) @binding(2) var<storage, read> table: array<u32>;
@group(0) @binding(3) var<storage, read_write> aeff: array<f32>;
@group(0) @binding(4) var<storage, read_write> scratch: array<f32>;
@group(0) @binding(5) var<storage, read_write> aux: array<f32>;
@group(0) @binding(6) var<uniform> p: Params;

const WG = 64u;
var<workgroup> red: array<f32, 64>;

fn field(m: u32, k: u32) -> u32 {
  return table[m * 12u + k];
}

// Tree sum of red[0..64) into red[0]; every thread of the workgroup calls it.
fn reduce(lid: u32) -> f32 {
  for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
    workgroupBarrier();
    if (lid < stride) { red[lid] = red[lid] + red[lid + stride]; }
  }
  workgroupBarrier();
  let s = red[0];
  workgroupBarrier();
  return s;
}

@compute @workgroup_size(64, 1, 1)
fn effective_a(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let m = wid.x / p.r;
  let i = wid.x % p.r;
  let n = field(m, 3u);
  let eIdx = field(m, 1u) + i;
  var e = P[eIdx];
  if (p.mask != 0u) { e = e * P[field(m, 8u) + i]; }
  workgroupBarrier(); // every thread has read E_i before it is rewritten
  if (p.mask != 0u && lid.x == 0u) { P[eIdx] = e; }
  let a = field(m, 0u) + i * n;
  let o = field(m, 5u) + i * n;
  for (var k = lid.x; k < n; k += WG) { aeff[o + k] = e * P[a + k]; }
}

@compute @workgroup_size(64, 1, 1)
fn grad_a(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let m = wid.x / p.r;
  let i = wid.x % p.r;
  let n = field(m, 3u);
  let a = field(m, 0u) + i * n;
  var s = 0.0;
  for (var k = lid.x; k < n; k += WG) { s = fma(G[a + k], P[a + k], s); }
  red[lid.x] = s;
  let dE = reduce(lid.x); // every read of the row's G is before this barrier
  let eIdx = field(m, 1u) + i;
  if (lid.x == 0u) { G[eIdx] = dE; }
  let e = P[eIdx];
  for (var k = lid.x; k < n; k += WG) { G[a + k] = G[a + k] * e; }
}

// Element k of vector i of matrix mat (module m = mat / 2): A's row i, or B's column i.
fn vecIndex(mat: u32, i: u32, k: u32) -> u32 {
  let m = mat / 2u;
  if (mat % 2u == 0u) { return field(m, 0u) + i * field(m, 3u) + k; }
  return field(m, 2u) + k * p.r + i;
}

fn vecLength(mat: u32) -> u32 {
  return select(field(mat / 2u, 4u), field(mat / 2u, 3u), mat % 2u == 0u);
}

@compute @workgroup_size(64, 1, 1)
fn gram(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let mat = wid.y;
  let i = wid.x / p.r;
  let j = wid.x % p.r;
  let n = vecLength(mat);
  var s = 0.0;
  for (var k = lid.x; k < n; k += WG) { s = fma(P[vecIndex(mat, i, k)], P[vecIndex(mat, j, k)], s); }
  red[lid.x] = s;
  let g = reduce(lid.x);
  if (lid.x == 0u) { scratch[p.nOff + (mat * p.r + i) * p.r + j] = g - select(0.0, 1.0, i == j); }
}

@compute @workgroup_size(64, 1, 1)
fn orth_loss(@builtin(local_invocation_id) lid: vec3<u32>) {
  let mats = 2u * p.numModules;
  let rr = p.r * p.r;
  var total = 0.0;
  for (var mat = lid.x; mat < mats; mat += WG) {
    var sq = 0.0;
    for (var k = 0u; k < rr; k++) {
      let v = scratch[p.nOff + mat * rr + k];
      sq = fma(v, v, sq);
    }
    let f = sqrt(sq);
    scratch[p.fOff + mat] = f;
    total = total + f;
  }
  red[lid.x] = total;
  let sum = reduce(lid.x);
  if (lid.x == 0u) {
    let R = sum / f32(mats);
    scratch[p.fOff + mats] = R;
    aux[0] = aux[0] + p.weight * R * aux[1];
  }
}

@compute @workgroup_size(64, 1, 1)
fn orth_grad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let mat = wid.y;
  let m = mat / 2u;
  let e = wid.x * WG + lid.x;
  let r = p.r;
  let f = scratch[p.fOff + mat];
  let isA = mat % 2u == 0u;
  let n = vecLength(mat);
  if (e >= r * n || f == 0.0) { return; }
  let coef = p.weight / (f32(p.numModules) * f);
  let nBase = p.nOff + mat * r * r;
  var s = 0.0;
  var idx: u32;
  if (isA) {
    // A [r, in]: element (i, k); (N·A)[i, k] = Σ_j N[i, j]·A[j, k]
    let i = e / n;
    let k = e % n;
    idx = field(m, 0u) + e;
    for (var j = 0u; j < r; j++) { s = fma(scratch[nBase + i * r + j], P[field(m, 0u) + j * n + k], s); }
  } else {
    // B [out, r]: element (o, k); (B·N)[o, k] = Σ_j B[o, j]·N[j, k]
    let o = e / r;
    let k = e % r;
    idx = field(m, 2u) + e;
    for (var j = 0u; j < r; j++) { s = fma(P[field(m, 2u) + o * r + j], scratch[nBase + j * r + k], s); }
  }
  G[idx] = fma(coef, s, G[idx]);
}

@compute @workgroup_size(64, 1, 1)
fn importance(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let m = wid.y;
  let k = wid.x * WG + lid.x;
  if (k >= field(m, 9u) || aux[2] != 0.0) { return; }
  let idx = field(m, 0u) + k;
  let ipt = abs(P[idx] * (G[idx] * aux[1]));
  let iIdx = field(m, 6u) + k;
  let uIdx = field(m, 7u) + k;
  let e1 = p.beta1 * P[iIdx] + p.oneMinusBeta1 * ipt;
  P[iIdx] = e1;
  P[uIdx] = p.beta2 * P[uIdx] + p.oneMinusBeta2 * abs(ipt - e1);
}

fn elementScore(m: u32, pos: u32) -> f32 {
  // pos: the element's place in the module's span (A..E)
  return P[field(m, 6u) + pos] * P[field(m, 7u) + pos];
}

@compute @workgroup_size(64, 1, 1)
fn scores(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let m = wid.x / p.r;
  let i = wid.x % p.r;
  let aOff = field(m, 0u);
  let n = field(m, 3u);
  let out = field(m, 4u);
  var s = 0.0;
  for (var k = lid.x; k < n; k += WG) { s = s + elementScore(m, i * n + k); }
  red[lid.x] = s;
  let sA = reduce(lid.x) / f32(n);
  var t = 0.0;
  let bPos = field(m, 2u) - aOff;
  for (var o = lid.x; o < out; o += WG) { t = t + elementScore(m, bPos + o * p.r + i); }
  red[lid.x] = t;
  let sB = reduce(lid.x) / f32(out);
  if (lid.x == 0u) { scratch[wid.x] = elementScore(m, field(m, 1u) - aOff + i) + (sA + sB); }
}
