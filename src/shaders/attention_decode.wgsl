// attention_decode.wgsl — causal attention of n new query rows against a KV cache, for generation: the rows sit at
// positions p0..p0+n−1 and row i attends to cache positions 0..p0+i (one sequence, no segments). Prefill is the same
// call with p0 = 0 and n = the prompt's length; each later step has n = 1.
//
// The caller has already written the new rows' K and V into the cache at positions p0..p0+n−1 (attention_decode.ts:
// recordKvAppend), so the cache holds every position a row may see. Positions past p0+n−1 are never read.
// Heads: query head h reads K/V head g = h / G with G = Hq / Hkv, as attention.wgsl.
// With s_ij = scale·Q_i·K_j over j ≤ p0+i:  O_i = Σ_j softmax_j(s_ij)·V_j  (online softmax, f32).
//
// Layout (row-major, f32):
//   Q, O     (n, Hq, D)         the new rows
//   Kc, Vc   (maxLen, Hkv, D)   the cache, maxLen ≥ p0 + n
//
// Entry point decode: one invocation per (row i, head h), r = i·Hq + h < n·Hq, 64 per workgroup, the flat index
// folded into workgroups (min(w, 65535), ⌈w/65535⌉, 1), w = ⌈n·Hq/64⌉. Bindings Q Kc Vc O, params 6.
// Rows are held in private arrays: D ≤ MAX_D = 128.

struct Params {
  n: u32,
  p0: u32,
  Hq: u32,
  Hkv: u32,
  D: u32,
  scale: f32,
}

const MAX_D = 128u;
const WG = 64u;
const NEG_MAX = -3.4028234663852886e38; // −FLT_MAX: exp(NEG_MAX − s) is 0 for any finite score s

@group(0) @binding(0) var<storage, read> Q: array<f32>;
@group(0) @binding(1) var<storage, read> Kc: array<f32>;
@group(0) @binding(2) var<storage, read> Vc: array<f32>;
@group(0) @binding(3) var<storage, read_write> O: array<f32>;
@group(0) @binding(4) var<uniform> P: Params;

@compute @workgroup_size(64, 1, 1)
fn decode(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
  let p = P;
  let r = (wid.y * nwg.x + wid.x) * WG + lid; // i·Hq + h
  if (r >= p.n * p.Hq) { return; }
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
  let last = p.p0 + i; // this row's own position: the last key it sees
  for (var j = 0u; j <= last; j++) {
    let kv = (j * p.Hkv + g) * D;
    var s = 0.0;
    for (var d = 0u; d < D; d++) { s = fma(q[d], Kc[kv + d], s); }
    s = s * p.scale;
    if (s > m) { // rescale what is summed so far to the new max
      let c = exp(m - s);
      l = l * c;
      for (var d = 0u; d < D; d++) { acc[d] = acc[d] * c; }
      m = s;
    }
    let e = exp(s - m);
    l = l + e;
    for (var d = 0u; d < D; d++) { acc[d] = fma(e, Vc[kv + d], acc[d]); }
  }
  // j = last is always visible, so l ≥ 1.
  let inv = 1.0 / l;
  for (var d = 0u; d < D; d++) { O[r * D + d] = acc[d] * inv; }
}
