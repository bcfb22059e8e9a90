// attention.wgsl — causal self-attention with grouped-query heads over packed sequences: forward (online softmax,
// saving each row's log-sum-exp) and backward (probabilities recomputed from it). No T×T matrix is ever stored.
//
// Mask: query token i sees key token j iff j ≤ i and seg[j] == seg[i] — block-diagonal causal, so the rows of a
// batch, sequences packed into one row, and padding (given a segment of its own) never see each other.
// Heads: query head h reads K/V head g = h / G with G = Hq / Hkv (grouped-query attention; G = 1 is plain MHA).
// With s_ij = scale·Q_i·K_j, L_i = log Σ_j exp(s_ij), P_ij = exp(s_ij − L_i) over the visible j:
//   O_i  = Σ_j P_ij V_j
//   Δ_i  = Σ_d dO_i·O_i,   dP_ij = dO_i·V_j,   dS_ij = P_ij (dP_ij − Δ_i)
//   dQ_i = scale · Σ_j dS_ij K_j,   dK_j = scale · Σ_{h∈g} Σ_i dS_ij Q_i,   dV_j = Σ_{h∈g} Σ_i P_ij dO_i
//
// Layout (row-major, f32 unless said):
//   Q, O, dQ, dO   (T, Hq, D)
//   K, V, dK, dV   (T, Hkv, D)
//   seg            (T) u32
//   L              (T, Hq)       written by forward, read by backward
//   stats          (T, Hq, 2)    backward scratch: (L_i, Δ_i) per row, so dkv fits in 8 storage bindings
//
// Entry points (three dispatches make the backward, in this order), each one invocation per row, 64 per workgroup,
// the flat row index folded into workgroups (min(n, 65535), ⌈n/65535⌉, 1), n = ⌈rows/64⌉:
//   forward        rows (i, h), T·Hq    bindings Q K V seg O L, params 6
//   backward_prep  rows (i, h), T·Hq    bindings O dO L stats, params 4
//   backward_dq    rows (i, h), T·Hq    bindings Q K V seg dO stats dQ, params 7
//   backward_dkv   rows (j, g), T·Hkv   bindings Q K V seg dO stats dK dV, params 8
// dK and dV sum over the G query heads of their group inside one invocation: WGSL has no float atomics.
// Each entry point declares its own bindings (the prefix names it); they share slots 0-3 where they agree. Reusing a
// slot across entry points is valid WGSL: pairs must be distinct only within one entry point's resource interface.
// Rows are held in private arrays: D ≤ MAX_D = 128.

struct Params {
  T: u32,
  Hq: u32,
  Hkv: u32,
  D: u32,
  scale: f32,
}

const MAX_D = 128u;
const WG = 64u;
const NEG_MAX = -3.4028234663852886e38; // −FLT_MAX: exp(NEG_MAX − s) is 0 for any finite score s

// ---- shared by forward, backward_dq, backward_dkv
@group(0) @binding(0) var<storage, read> Q: array<f32>;
@group(0) @binding(1) var<storage, read> K: array<f32>;
@group(0) @binding(2) var<storage, read> V: array<f32>;
@group(0) @binding(3) var<storage, read> seg: array<u32>;

// ---- forward
@group(0) @binding(4) var<storage, read_write> fwdO: array<f32>;
@group(0) @binding(5) var<storage, read_write> fwdL: array<f32>;
@group(0) @binding(6) var<uniform> fwdP: Params;

// ---- backward_prep
@group(0) @binding(0) var<storage, read> prepO: array<f32>;
@group(0) @binding(1) var<storage, read> prepDO: array<f32>;
@group(0) @binding(2) var<storage, read> prepL: array<f32>;
@group(0) @binding(3) var<storage, read_write> prepStats: array<f32>;
@group(0) @binding(4) var<uniform> prepP: Params;

// ---- backward_dq, backward_dkv
@group(0) @binding(4) var<storage, read> bwdDO: array<f32>;
@group(0) @binding(5) var<storage, read> bwdStats: array<f32>;
@group(0) @binding(6) var<storage, read_write> dqDQ: array<f32>;
@group(0) @binding(7) var<uniform> dqP: Params;
@group(0) @binding(6) var<storage, read_write> dkvDK: array<f32>;
@group(0) @binding(7) var<storage, read_write> dkvDV: array<f32>;
@group(0) @binding(8) var<uniform> dkvP: Params;

fn flatIndex(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
  return (wid.y * nwg.x + wid.x) * WG + lid;
}

// ---------------------------------------------------------------------------------------------------------------

@compute @workgroup_size(64, 1, 1)
fn forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
  let p = fwdP;
  let r = flatIndex(wid, nwg, lid); // i·Hq + h
  if (r >= p.T * p.Hq) { return; }
  let i = r / p.Hq;
  let g = (r % p.Hq) / (p.Hq / p.Hkv);
  let D = p.D;
  var q: array<f32, MAX_D>;
  var acc: array<f32, MAX_D>; // Σ_j exp(s_ij − m)·V_j
  for (var d = 0u; d < D; d++) {
    q[d] = Q[r * D + d];
    acc[d] = 0.0;
  }
  var m = NEG_MAX; // running max score
  var l = 0.0;     // Σ_j exp(s_ij − m)
  let si = seg[i];
  for (var j = 0u; j <= i; j++) {
    if (seg[j] != si) { continue; }
    let kv = (j * p.Hkv + g) * D;
    var s = 0.0;
    for (var d = 0u; d < D; d++) { s = fma(q[d], K[kv + d], s); }
    s = s * p.scale;
    if (s > m) { // rescale what is summed so far to the new max
      let c = exp(m - s);
      l = l * c;
      for (var d = 0u; d < D; d++) { acc[d] = acc[d] * c; }
      m = s;
    }
    let e = exp(s - m);
    l = l + e;
    for (var d = 0u; d < D; d++) { acc[d] = fma(e, V[kv + d], acc[d]); }
  }
  // j = i is always visible, so l ≥ 1.
  let inv = 1.0 / l;
  for (var d = 0u; d < D; d++) { fwdO[r * D + d] = acc[d] * inv; }
  fwdL[r] = m + log(l);
}

// ---------------------------------------------------------------------------------------------------------------

@compute @workgroup_size(64, 1, 1)
fn backward_prep(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
  let p = prepP;
  let r = flatIndex(wid, nwg, lid);
  if (r >= p.T * p.Hq) { return; }
  var delta = 0.0;
  for (var d = 0u; d < p.D; d++) { delta = fma(prepDO[r * p.D + d], prepO[r * p.D + d], delta); }
  prepStats[2u * r] = prepL[r];
  prepStats[2u * r + 1u] = delta;
}

// ---------------------------------------------------------------------------------------------------------------

@compute @workgroup_size(64, 1, 1)
fn backward_dq(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
  let p = dqP;
  let r = flatIndex(wid, nwg, lid); // i·Hq + h
  if (r >= p.T * p.Hq) { return; }
  let i = r / p.Hq;
  let g = (r % p.Hq) / (p.Hq / p.Hkv);
  let D = p.D;
  let Li = bwdStats[2u * r];
  let delta = bwdStats[2u * r + 1u];
  var q: array<f32, MAX_D>;
  var dO: array<f32, MAX_D>;
  var dq: array<f32, MAX_D>;
  for (var d = 0u; d < D; d++) {
    q[d] = Q[r * D + d];
    dO[d] = bwdDO[r * D + d];
    dq[d] = 0.0;
  }
  let si = seg[i];
  for (var j = 0u; j <= i; j++) {
    if (seg[j] != si) { continue; }
    let kv = (j * p.Hkv + g) * D;
    var s = 0.0;
    var dp = 0.0;
    for (var d = 0u; d < D; d++) {
      s = fma(q[d], K[kv + d], s);
      dp = fma(dO[d], V[kv + d], dp);
    }
    let ds = exp(s * p.scale - Li) * (dp - delta);
    for (var d = 0u; d < D; d++) { dq[d] = fma(ds, K[kv + d], dq[d]); }
  }
  for (var d = 0u; d < D; d++) { dqDQ[r * D + d] = dq[d] * p.scale; }
}

// ---------------------------------------------------------------------------------------------------------------

@compute @workgroup_size(64, 1, 1)
fn backward_dkv(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
  let p = dkvP;
  let c = flatIndex(wid, nwg, lid); // j·Hkv + g
  if (c >= p.T * p.Hkv) { return; }
  let j = c / p.Hkv;
  let g = c % p.Hkv;
  let G = p.Hq / p.Hkv;
  let D = p.D;
  var k: array<f32, MAX_D>;
  var v: array<f32, MAX_D>;
  var dk: array<f32, MAX_D>;
  var dv: array<f32, MAX_D>;
  for (var d = 0u; d < D; d++) {
    k[d] = K[c * D + d];
    v[d] = V[c * D + d];
    dk[d] = 0.0;
    dv[d] = 0.0;
  }
  let sj = seg[j];
  for (var i = j; i < p.T; i++) {
    if (seg[i] != sj) { continue; }
    for (var h = g * G; h < (g + 1u) * G; h++) {
      let r = i * p.Hq + h;
      var s = 0.0;
      var dp = 0.0;
      for (var d = 0u; d < D; d++) {
        s = fma(Q[r * D + d], k[d], s);
        dp = fma(bwdDO[r * D + d], v[d], dp);
      }
      let P = exp(s * p.scale - bwdStats[2u * r]);
      let ds = P * (dp - bwdStats[2u * r + 1u]);
      for (var d = 0u; d < D; d++) {
        dv[d] = fma(P, bwdDO[r * D + d], dv[d]);
        dk[d] = fma(ds, Q[r * D + d], dk[d]);
      }
    }
  }
  for (var d = 0u; d < D; d++) {
    dkvDK[c * D + d] = dk[d] * p.scale;
    dkvDV[c * D + d] = dv[d];
  }
}
