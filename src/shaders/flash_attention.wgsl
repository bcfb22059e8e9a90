// flash_attention.wgsl — FlashAttention-2-style causal self-attention with grouped-query heads over packed
// sequences: forward (online softmax over K/V tiles in workgroup memory, saving each row's log-sum-exp) and
// backward (probabilities recomputed from it). Same contract as attention.wgsl; no T×T matrix is ever stored.
//
// Mask: query token i sees key token j iff j ≤ i and seg[j] == seg[i] (block-diagonal causal; any segment ids, even
// interleaved). Query head h reads K/V head g = h / G, G = Hq / Hkv. With s_ij = scale·Q_i·K_j,
// L_i = log Σ_j exp(s_ij), P_ij = exp(s_ij − L_i): O_i = Σ_j P_ij V_j; Δ_i = dO_i·O_i, dP_ij = dO_i·V_j,
// dS_ij = P_ij (dP_ij − Δ_i); dQ_i = scale·Σ_j dS_ij K_j; dK_j = scale·Σ_{h∈g} Σ_i dS_ij Q_i; dV_j = Σ_{h∈g} Σ_i P_ij dO_i.
//
// Prefix rows (prefix tuning, P = params.P ≥ 0): P more key/value rows, shared by every segment and seen by every
// query (no mask, no RoPE: used as given), ahead of its own keys. The sums over j above then run over the P prefix
// rows too: O and L include them, Δ_i = dO_i·O_i still holds, dQ gets their keys' share, and
// dPrefixK_p = scale·Σ_{h∈g} Σ_i dS_ip Q_i, dPrefixV_p = Σ_{h∈g} Σ_i P_ip dO_i over every query of every segment.
// P = 0 runs no prefix tile and dispatches no backward_dprefix: the results are bit-identical to a kernel without.
//
// Layout (row-major f32):
//   Q, O, dQ, dO  (T, Hq, D)        K, V, dK, dV  (T, Hkv, D)        seg (T) u32        L (T, Hq)
//   prefixKV, dPrefixKV  (P, 2, Hkv, D): row p is key p ([p, 0, g, d]) then value p ([p, 1, g, d]) — one binding for
//                 both, as WebGPU's default limit is 8 storage buffers per stage and backward_dq already needs 7
//   stats         backward scratch: (T, Hq, 2) (L_i, Δ_i), then, when G > 1, partial dK and dV per query head,
//                 (T, Hq, D) each (scaled), summed over each group by backward_reduce; after that, when P > 0, the
//                 same region holds backward_dprefix's partial dPrefixKV per chunk, (C, P, 2, Hkv, D) (scaled),
//                 C = params.chunks, summed by backward_dprefix_reduce
//
// Rendered per head dim and per variant (flash-attention.ts): line 1 gets `const HD = <D>u; const BT = <tile>u; const PREFIX = <bool>;`
// (and `enable subgroups;`), and one of flash_attention_team_subgroup.wgsl / flash_attention_team_shared.wgsl is
// appended. Those define `Inv` (the per-invocation builtins; workgroup ids stay separate parameters so the
// uniformity analysis sees them uniform), `slot` (which row and lane an invocation owns) and
// `teamSum1/2` (the sum of a tile of partial dot products over the 4 lanes of a row: subgroup shuffles, or
// workgroup memory and two barriers). Both sum (a0 + a1) + (a2 + a3), so every lane of a row holds the same scores.
//
// Work split: a workgroup of WG = 128 invocations owns ROWS = 32 rows (query rows for forward and backward_dq, key
// rows for backward_dkv) of one query head (backward_dprefix: prefix rows of one kv head); each row is owned by a
// team of 4 lanes, lane c holding head dims c, c+4, c+8, … (DS = ⌈D/4⌉ of them, zero-padded to DP = 4·DS) of every
// per-row vector in registers. The other operand streams through workgroup memory in tiles of BT rows (BT ≤ 32,
// sized so the workgroup stays within 16 KiB). Per tile: partial dot products for all BT rows, one team sum, then
// the masked online-softmax update (forward) or the masked gradient sums (backward_dq; keyTile, shared by
// backward_dkv and backward_dprefix).
//
// Key range: a query block scans key tiles from `lo`, the first token whose segment is one of the block's (found by
// a cooperative scan of seg, 512 tokens per step, before any tile is read), to its last query; a key block scans
// query tiles from its first key to `hi`, one past the last token of any of its segments. Packed sequences thus
// cost what they would alone; the per-element mask still applies inside the range.
//
// Entry points (dispatch (⌈T/ROWS⌉, heads, 1) unless said):
//   forward          rows = queries, y = Hq          bindings Q K V seg prefixKV O L, params
//   backward_prep    one invocation per row (T·Hq), folded (min(n, 65535), ⌈n/65535⌉, 1), n = ⌈T·Hq/WG⌉
//                                                    bindings O dO L stats, params
//   backward_dq      rows = queries, y = Hq          bindings Q K V seg prefixKV dO stats dQ, params
//   backward_dkv     rows = keys, y = Hq (each query head its own workgroups; dK, dV written directly when G = 1,
//                    else partials into stats)       bindings Q K V seg dO stats dK dV, params
//   backward_reduce  G > 1 only: one invocation per dK element (T·Hkv·D), folded as backward_prep
//                                                    bindings stats dK dV, params
//   backward_dprefix P > 0 only: rows = prefix rows, (⌈P/ROWS⌉, Hkv, C). The G·T query rows of kv head g (every
//                    query of every segment, for each of the group's G query heads), numbered f = hh·T + i, are cut
//                    into C chunks of S = params.span consecutive rows (C = params.chunks = ⌈G·T/S⌉; the host picks
//                    them from the shape: flashPrefixChunks); workgroup z sums chunk z, head by head (a loop over
//                    heads around the loop over query tiles: a single flat loop made the cold lavapipe compile
//                    ~15–30× slower), and writes its partial dPrefixKV into stats (also when C = 1: a second
//                    store path, straight to dPrefixKV, made the cold compile ~1.4× slower)
//                                                    bindings Q prefixKV dO stats, params
//   backward_dprefix_reduce  P > 0 only: one invocation per dPrefixKV element (P·2·Hkv·D), folded as backward_prep;
//                    sums the C partials in chunk order (fixed: the result does not depend on scheduling; C = 1
//                    copies)                         bindings stats dPrefixKV, params
// Forward and backward_dq run ⌈P/BT⌉ prefix tiles (every row visible up to P) before the key tiles from `lo`; when
// bound with P = 0, prefixKV is any small buffer and is never read.

struct Params {
  T: u32,
  Hq: u32,
  Hkv: u32,
  D: u32,
  scale: f32,
  P: u32, // prefix rows
  chunks: u32, // backward_dprefix: chunks of query rows per kv head (C)
  span: u32, // backward_dprefix: query rows per chunk (S)
}

const WG = 128u;
const ROWS = 32u;
const DS = (HD + 3u) / 4u;
const DP = DS * 4u;
const NONE = 0xffffffffu;
const NEG_MAX = -3.4028234663852886e38; // −FLT_MAX
const SCAN_PER = 4u; // tokens per invocation per scan step

// ---- shared by forward, backward_dq, backward_dkv
@group(0) @binding(0) var<storage, read> Q: array<f32>;
@group(0) @binding(1) var<storage, read> K: array<f32>;
@group(0) @binding(2) var<storage, read> V: array<f32>;
@group(0) @binding(3) var<storage, read> seg: array<u32>;
// ---- shared by forward, backward_dq
@group(0) @binding(4) var<storage, read> prefixKV: array<f32>; // (P, 2, Hkv, D)

// ---- forward
@group(0) @binding(5) var<storage, read_write> fwdO: array<f32>;
@group(0) @binding(6) var<storage, read_write> fwdL: array<f32>;
@group(0) @binding(7) var<uniform> fwdP: Params;

// ---- backward_prep
@group(0) @binding(0) var<storage, read> prepO: array<f32>;
@group(0) @binding(1) var<storage, read> prepDO: array<f32>;
@group(0) @binding(2) var<storage, read> prepL: array<f32>;
@group(0) @binding(3) var<storage, read_write> prepStats: array<f32>;
@group(0) @binding(4) var<uniform> prepP: Params;

// ---- backward_dq
@group(0) @binding(5) var<storage, read> dqDO: array<f32>;
@group(0) @binding(6) var<storage, read> dqStats: array<f32>;
@group(0) @binding(7) var<storage, read_write> dqDQ: array<f32>;
@group(0) @binding(8) var<uniform> dqP: Params;

// ---- backward_dkv
@group(0) @binding(4) var<storage, read> dkvDO: array<f32>;
@group(0) @binding(5) var<storage, read_write> dkvStats: array<f32>;
@group(0) @binding(6) var<storage, read_write> dkvDK: array<f32>;
@group(0) @binding(7) var<storage, read_write> dkvDV: array<f32>;
@group(0) @binding(8) var<uniform> dkvP: Params;

// ---- backward_reduce
@group(0) @binding(0) var<storage, read> redStats: array<f32>;
@group(0) @binding(1) var<storage, read_write> redDK: array<f32>;
@group(0) @binding(2) var<storage, read_write> redDV: array<f32>;
@group(0) @binding(3) var<uniform> redP: Params;

// ---- backward_dprefix (Q at binding 0, as above)
@group(0) @binding(1) var<storage, read> dpPrefix: array<f32>;
@group(0) @binding(2) var<storage, read> dpDO: array<f32>;
@group(0) @binding(3) var<storage, read_write> dpStats: array<f32>; // (L, Δ) in, partials out
@group(0) @binding(4) var<uniform> dpP: Params;

// ---- backward_dprefix_reduce
@group(0) @binding(0) var<storage, read> dprStats: array<f32>;
@group(0) @binding(1) var<storage, read_write> dprOut: array<f32>;
@group(0) @binding(2) var<uniform> dprP: Params;

// ---- workgroup memory
var<workgroup> tA: array<f32, BT * DP>;   // K tile (forward, dq) or Q tile (dkv, dprefix), (BT, DP)
var<workgroup> tB: array<f32, BT * DP>;   // V tile or dO tile
var<workgroup> tSeg: array<u32, BT>;      // seg of the tile's tokens (dprefix: all 0, one segment)
var<workgroup> tL: array<f32, BT>;        // dkv, dprefix: L of the tile's queries
var<workgroup> tDelta: array<f32, BT>;    // dkv, dprefix: Δ of the tile's queries
var<workgroup> rowSeg: array<u32, ROWS>;  // seg of the block's own rows
var<workgroup> scanAt: atomic<u32>;
var<workgroup> scanOut: u32;

// ---------------------------------------------------------------------------------------------------------------
// Range scans (rowSeg must be written and a barrier passed before either)

fn inRowSegs(s: u32) -> bool {
  var hit = false;
  for (var r = 0u; r < ROWS; r++) { hit = hit || rowSeg[r] == s; }
  return hit;
}

/** The smallest j < limit with seg[j] among the block's segments (limit when none). */
fn scanLow(limit: u32, lid: u32) -> u32 {
  var start = 0u;
  loop {
    if (lid == 0u) { atomicStore(&scanAt, NONE); }
    workgroupBarrier();
    var found = NONE;
    for (var k = 0u; k < SCAN_PER; k++) {
      let j = start + k * WG + lid;
      if (j < limit && found == NONE) {
        if (inRowSegs(seg[j])) { found = j; }
      }
    }
    if (found != NONE) { atomicMin(&scanAt, found); }
    workgroupBarrier();
    if (lid == 0u) { scanOut = atomicLoad(&scanAt); }
    let b = workgroupUniformLoad(&scanOut);
    if (b != NONE) { return b; }
    start += SCAN_PER * WG;
    if (start >= limit) { return limit; }
  }
}

/** One past the largest i in [first, T) with seg[i] among the block's segments (first when none). */
fn scanHigh(first: u32, T: u32, lid: u32) -> u32 {
  var end = T;
  loop {
    if (lid == 0u) { atomicStore(&scanAt, 0u); }
    workgroupBarrier();
    var found = 0u;
    for (var k = 0u; k < SCAN_PER; k++) {
      let back = k * WG + lid;
      if (back < end - first && found == 0u) {
        let i = end - 1u - back;
        if (inRowSegs(seg[i])) { found = i + 1u; }
      }
    }
    if (found != 0u) { atomicMax(&scanAt, found); }
    workgroupBarrier();
    if (lid == 0u) { scanOut = atomicLoad(&scanAt); }
    let b = workgroupUniformLoad(&scanOut);
    if (b != 0u) { return b; }
    if (end - first <= SCAN_PER * WG) { return first; }
    end -= SCAN_PER * WG;
  }
}

/** Loads a (BT, DP) tile of rows t0.. of head `head` from a (T, H, HD) tensor into tA / tB, zero past T and HD. */
fn loadKV(t0: u32, T: u32, H: u32, head: u32, lid: u32) {
  for (var e0 = 0u; e0 < BT * DP; e0 += WG) { // uniform bounds: a non-uniform loop exit would end uniformity
    let e = min(e0 + lid, BT * DP - 1u);
    let t = t0 + e / DP;
    let d = e % DP;
    var a = 0.0;
    var b = 0.0;
    if (t < T && d < HD) {
      let idx = (t * H + head) * HD + d;
      a = K[idx];
      b = V[idx];
    }
    tA[e] = a;
    tB[e] = b;
  }
  if (lid < BT) { tSeg[lid] = seg[min(t0 + lid, T - 1u)]; }
}

/** Loads prefix rows p0.. (of P) of kv head `head` into tA (keys) and tB (values), zero past P and HD. */
fn loadPrefix(p0: u32, P: u32, H: u32, head: u32, lid: u32) {
  for (var e0 = 0u; e0 < BT * DP; e0 += WG) {
    let e = min(e0 + lid, BT * DP - 1u);
    let r = p0 + e / DP;
    let d = e % DP;
    var a = 0.0;
    var b = 0.0;
    if (r < P && d < HD) {
      let idx = (2u * r * H + head) * HD + d;
      a = prefixKV[idx];
      b = prefixKV[idx + H * HD];
    }
    tA[e] = a;
    tB[e] = b;
  }
}

/** One tile of key columns j0.. of kv head g into tA / tB: prefix rows for the first `pt` tiles, then tokens. */
fn loadKeys(inPrefix: bool, j0: u32, p: Params, g: u32, lid: u32) {
  if (inPrefix) {
    loadPrefix(j0, p.P, p.Hkv, g, lid);
  } else {
    loadKV(j0, p.T, p.Hkv, g, lid);
  }
}

/** Whether query token i sees column jj of the tile at j0 (prefix rows: all of them, up to P). */
fn seesColumn(inPrefix: bool, j0: u32, jj: u32, i: u32, si: u32, P: u32) -> bool {
  // Branch-free (`&`, select): called in the unrolled column loops, where a branch per column made the prefix
  // variant's compile on lavapipe several times slower. tSeg is stale in a prefix tile; select drops it.
  let j = j0 + jj;
  return select((j <= i) & (tSeg[jj] == si), j < P, inPrefix);
}

/** One tile of BT query rows q0.. against a key row j of segment sj, for backward_dkv and backward_dprefix: with
 *  tA = Q, tB = dO, tL, tDelta and tSeg of the tile loaded, and kr, vr this lane's dims of the key and value row,
 *  adds Σ_ii P·dO to dv and Σ_ii dS·Q to dk (unscaled) over the tile rows with j ≤ q0 + ii < limit and
 *  tSeg[ii] == sj. Workgroup-uniform control flow only (teamSum2). */
fn keyTile(kr: ptr<function, array<f32, DS>>, vr: ptr<function, array<f32, DS>>, dk: ptr<function, array<f32, DS>>,
           dv: ptr<function, array<f32, DS>>, q0: u32, limit: u32, j: u32, sj: u32, scale: f32, row: u32, lane: u32) {
  var sc: array<f32, BT>;
  var dp: array<f32, BT>;
  for (var ii = 0u; ii < BT; ii++) {
    var a = 0.0;
    var b = 0.0;
    for (var k = 0u; k < DS; k++) {
      a = fma((*kr)[k], tA[ii * DP + lane + 4u * k], a);
      b = fma((*vr)[k], tB[ii * DP + lane + 4u * k], b);
    }
    sc[ii] = a;
    dp[ii] = b;
  }
  teamSum2(&sc, &dp, row, lane);
  for (var ii = 0u; ii < BT; ii++) {
    let qi = q0 + ii;
    let vis = j <= qi && qi < limit && tSeg[ii] == sj;
    let pr = select(0.0, exp(sc[ii] * scale - tL[ii]), vis);
    let ds = pr * (dp[ii] - tDelta[ii]);
    for (var k = 0u; k < DS; k++) {
      (*dv)[k] = fma(pr, tB[ii * DP + lane + 4u * k], (*dv)[k]);
      (*dk)[k] = fma(ds, tA[ii * DP + lane + 4u * k], (*dk)[k]);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------

@compute @workgroup_size(128, 1, 1)
fn forward(@builtin(workgroup_id) wid: vec3<u32>, inv: Inv) {
  let p = fwdP;
  let own = slot(inv);
  let row = own.x;
  let lane = own.y;
  let lid = inv.lid;
  let h = wid.y;
  let g = h / (p.Hq / p.Hkv);
  let i0 = wid.x * ROWS;
  let i1 = min(i0 + ROWS, p.T);
  let i = min(i0 + row, p.T - 1u); // rows past T compute row T−1 again and write nothing
  let live = i0 + row < p.T;
  let si = seg[i];
  if (lane == 0u) { rowSeg[row] = si; }
  workgroupBarrier();
  let lo = scanLow(i1, lid);

  var q: array<f32, DS>;
  var acc: array<f32, DS>;
  for (var k = 0u; k < DS; k++) {
    let d = lane + 4u * k;
    q[k] = select(0.0, Q[(i * p.Hq + h) * HD + min(d, HD - 1u)], d < HD);
    acc[k] = 0.0;
  }
  var m = NEG_MAX;
  var l = 0.0;
  // Prefix tiles, ahead of the key tiles; none unless this variant is compiled with PREFIX (a constant: without it
  // the prefix branches fold away and the P = 0 pipelines compile as fast as before the prefix existed).
  let pt = select(0u, (p.P + BT - 1u) / BT, PREFIX);
  let tiles = pt + (i1 - lo + BT - 1u) / BT;
  for (var t = 0u; t < tiles; t++) {
    let inPrefix = PREFIX && t < pt;
    let j0 = select(lo + (t - pt) * BT, t * BT, inPrefix);
    workgroupBarrier(); // the previous tile is consumed
    loadKeys(inPrefix, j0, p, g, lid);
    workgroupBarrier();
    var sc: array<f32, BT>;
    for (var jj = 0u; jj < BT; jj++) {
      var a = 0.0;
      for (var k = 0u; k < DS; k++) { a = fma(q[k], tA[jj * DP + lane + 4u * k], a); }
      sc[jj] = a;
    }
    teamSum1(&sc, row, lane);
    var mt = m;
    var vis = 0u;
    for (var jj = 0u; jj < BT; jj++) {
      if (seesColumn(inPrefix, j0, jj, i, si, p.P)) {
        vis |= 1u << jj;
        mt = max(mt, sc[jj] * p.scale);
      }
    }
    let c = exp(m - mt);
    l *= c;
    for (var k = 0u; k < DS; k++) { acc[k] *= c; }
    for (var jj = 0u; jj < BT; jj++) {
      let e = select(0.0, exp(sc[jj] * p.scale - mt), (vis & (1u << jj)) != 0u);
      l += e;
      for (var k = 0u; k < DS; k++) { acc[k] = fma(e, tB[jj * DP + lane + 4u * k], acc[k]); }
    }
    m = mt;
  }
  if (live) {
    let inv_l = 1.0 / l; // j = i is always visible, so l ≥ 1 (prefix rows only add to it)
    for (var k = 0u; k < DS; k++) {
      let d = lane + 4u * k;
      if (d < HD) { fwdO[(i * p.Hq + h) * HD + d] = acc[k] * inv_l; }
    }
    if (lane == 0u) { fwdL[i * p.Hq + h] = m + log(l); }
  }
}

// ---------------------------------------------------------------------------------------------------------------

@compute @workgroup_size(128, 1, 1)
fn backward_prep(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, inv: Inv) {
  let p = prepP;
  let r = (wid.y * nwg.x + wid.x) * WG + inv.lid;
  if (r >= p.T * p.Hq) { return; }
  var delta = 0.0;
  for (var d = 0u; d < HD; d++) { delta = fma(prepDO[r * HD + d], prepO[r * HD + d], delta); }
  prepStats[2u * r] = prepL[r];
  prepStats[2u * r + 1u] = delta;
}

// ---------------------------------------------------------------------------------------------------------------

@compute @workgroup_size(128, 1, 1)
fn backward_dq(@builtin(workgroup_id) wid: vec3<u32>, inv: Inv) {
  let p = dqP;
  let own = slot(inv);
  let row = own.x;
  let lane = own.y;
  let lid = inv.lid;
  let h = wid.y;
  let g = h / (p.Hq / p.Hkv);
  let i0 = wid.x * ROWS;
  let i1 = min(i0 + ROWS, p.T);
  let i = min(i0 + row, p.T - 1u);
  let live = i0 + row < p.T;
  let si = seg[i];
  if (lane == 0u) { rowSeg[row] = si; }
  workgroupBarrier();
  let lo = scanLow(i1, lid);

  let r = i * p.Hq + h;
  let Li = dqStats[2u * r];
  let delta = dqStats[2u * r + 1u];
  var q: array<f32, DS>;
  var dO: array<f32, DS>;
  var dq: array<f32, DS>;
  for (var k = 0u; k < DS; k++) {
    let d = lane + 4u * k;
    let idx = r * HD + min(d, HD - 1u);
    q[k] = select(0.0, Q[idx], d < HD);
    dO[k] = select(0.0, dqDO[idx], d < HD);
    dq[k] = 0.0;
  }
  let pt = select(0u, (p.P + BT - 1u) / BT, PREFIX);
  let tiles = pt + (i1 - lo + BT - 1u) / BT;
  for (var t = 0u; t < tiles; t++) {
    let inPrefix = PREFIX && t < pt;
    let j0 = select(lo + (t - pt) * BT, t * BT, inPrefix);
    workgroupBarrier();
    loadKeys(inPrefix, j0, p, g, lid);
    workgroupBarrier();
    var sc: array<f32, BT>;
    var dp: array<f32, BT>;
    for (var jj = 0u; jj < BT; jj++) {
      var a = 0.0;
      var b = 0.0;
      for (var k = 0u; k < DS; k++) {
        a = fma(q[k], tA[jj * DP + lane + 4u * k], a);
        b = fma(dO[k], tB[jj * DP + lane + 4u * k], b);
      }
      sc[jj] = a;
      dp[jj] = b;
    }
    teamSum2(&sc, &dp, row, lane);
    for (var jj = 0u; jj < BT; jj++) {
      let vis = seesColumn(inPrefix, j0, jj, i, si, p.P);
      let pr = select(0.0, exp(sc[jj] * p.scale - Li), vis);
      let ds = pr * (dp[jj] - delta);
      for (var k = 0u; k < DS; k++) { dq[k] = fma(ds, tA[jj * DP + lane + 4u * k], dq[k]); }
    }
  }
  if (live) {
    for (var k = 0u; k < DS; k++) {
      let d = lane + 4u * k;
      if (d < HD) { dqDQ[r * HD + d] = dq[k] * p.scale; }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------

@compute @workgroup_size(128, 1, 1)
fn backward_dkv(@builtin(workgroup_id) wid: vec3<u32>, inv: Inv) {
  let p = dkvP;
  let own = slot(inv);
  let row = own.x;
  let lane = own.y;
  let lid = inv.lid;
  let h = wid.y;
  let G = p.Hq / p.Hkv;
  let g = h / G;
  let j0 = wid.x * ROWS;
  let j = min(j0 + row, p.T - 1u);
  let live = j0 + row < p.T;
  let sj = seg[j];
  if (lane == 0u) { rowSeg[row] = sj; }
  workgroupBarrier();
  let hi = scanHigh(j0, p.T, lid);

  let c = j * p.Hkv + g;
  var kr: array<f32, DS>;
  var vr: array<f32, DS>;
  var dk: array<f32, DS>;
  var dv: array<f32, DS>;
  for (var k = 0u; k < DS; k++) {
    let d = lane + 4u * k;
    let idx = c * HD + min(d, HD - 1u);
    kr[k] = select(0.0, K[idx], d < HD);
    vr[k] = select(0.0, V[idx], d < HD);
    dk[k] = 0.0;
    dv[k] = 0.0;
  }
  let tiles = (hi - j0 + BT - 1u) / BT;
  for (var t = 0u; t < tiles; t++) {
    let q0 = j0 + t * BT;
    workgroupBarrier();
    for (var e0 = 0u; e0 < BT * DP; e0 += WG) {
      let e = min(e0 + lid, BT * DP - 1u);
      let qi = q0 + e / DP;
      let d = e % DP;
      var a = 0.0;
      var b = 0.0;
      if (qi < p.T && d < HD) {
        let idx = (qi * p.Hq + h) * HD + d;
        a = Q[idx];
        b = dkvDO[idx];
      }
      tA[e] = a;
      tB[e] = b;
    }
    if (lid < BT) {
      let qi = min(q0 + lid, p.T - 1u);
      tSeg[lid] = seg[qi];
      tL[lid] = dkvStats[2u * (qi * p.Hq + h)];
      tDelta[lid] = dkvStats[2u * (qi * p.Hq + h) + 1u];
    }
    workgroupBarrier();
    keyTile(&kr, &vr, &dk, &dv, q0, p.T, j, sj, p.scale, row, lane);
  }
  if (live) {
    let partial = 2u * p.T * p.Hq; // start of the partial dK in stats
    let part = p.T * p.Hq * HD;
    for (var k = 0u; k < DS; k++) {
      let d = lane + 4u * k;
      if (d < HD) {
        if (G == 1u) {
          dkvDK[c * HD + d] = dk[k] * p.scale;
          dkvDV[c * HD + d] = dv[k];
        } else {
          let o = (j * p.Hq + h) * HD + d;
          dkvStats[partial + o] = dk[k] * p.scale;
          dkvStats[partial + part + o] = dv[k];
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------

@compute @workgroup_size(128, 1, 1)
fn backward_reduce(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, inv: Inv) {
  let p = redP;
  let e = (wid.y * nwg.x + wid.x) * WG + inv.lid; // (j·Hkv + g)·D + d
  if (e >= p.T * p.Hkv * HD) { return; }
  let G = p.Hq / p.Hkv;
  let d = e % HD;
  let c = e / HD;
  let j = c / p.Hkv;
  let g = c % p.Hkv;
  let partial = 2u * p.T * p.Hq;
  let part = p.T * p.Hq * HD;
  var sk = 0.0;
  var sv = 0.0;
  for (var hh = 0u; hh < G; hh++) {
    let o = (j * p.Hq + g * G + hh) * HD + d;
    sk += redStats[partial + o];
    sv += redStats[partial + part + o];
  }
  redDK[e] = sk;
  redDV[e] = sv;
}

// ---------------------------------------------------------------------------------------------------------------

@compute @workgroup_size(128, 1, 1)
fn backward_dprefix(@builtin(workgroup_id) wid: vec3<u32>, inv: Inv) {
  let p = dpP;
  let own = slot(inv);
  let row = own.x;
  let lane = own.y;
  let lid = inv.lid;
  let g = wid.y; // kv head: the workgroup's chunk runs over its G query heads
  let G = p.Hq / p.Hkv;
  let r0 = wid.x * ROWS;
  let r = min(r0 + row, p.P - 1u); // rows past P compute row P−1 again and write nothing
  let live = r0 + row < p.P;
  // Query rows f0..f1 of the group's G·T, f = hh·T + i (query head g·G + hh, token i): a chunk covers part of one
  // head's tokens or runs on into the next heads'.
  let f0 = wid.z * p.span;
  let f1 = min(f0 + p.span, p.T * G);

  let kIdx = (2u * r * p.Hkv + g) * HD;
  let vIdx = kIdx + p.Hkv * HD;
  var kr: array<f32, DS>;
  var vr: array<f32, DS>;
  var dk: array<f32, DS>;
  var dv: array<f32, DS>;
  for (var k = 0u; k < DS; k++) {
    let d = lane + 4u * k;
    let dd = min(d, HD - 1u);
    kr[k] = select(0.0, dpPrefix[kIdx + dd], d < HD);
    vr[k] = select(0.0, dpPrefix[vIdx + dd], d < HD);
    dk[k] = 0.0;
    dv[k] = 0.0;
  }
  if (lid < BT) { tSeg[lid] = 0u; } // every query sees every prefix row: one segment, key row 0 (keyTile's mask)
  for (var hh = f0 / p.T; hh * p.T < f1; hh++) {
    let h = g * G + hh;
    let i0 = max(f0, hh * p.T) - hh * p.T; // this head's tokens in the chunk
    let i1 = min(f1 - hh * p.T, p.T);
    let tiles = (i1 - i0 + BT - 1u) / BT;
    for (var t = 0u; t < tiles; t++) {
      let q0 = i0 + t * BT;
      workgroupBarrier();
      for (var e0 = 0u; e0 < BT * DP; e0 += WG) {
        let e = min(e0 + lid, BT * DP - 1u);
        let qi = q0 + e / DP;
        let d = e % DP;
        var a = 0.0;
        var b = 0.0;
        if (qi < i1 && d < HD) {
          let idx = (qi * p.Hq + h) * HD + d;
          a = Q[idx];
          b = dpDO[idx];
        }
        tA[e] = a;
        tB[e] = b;
      }
      if (lid < BT) {
        let qi = min(q0 + lid, i1 - 1u);
        tL[lid] = dpStats[2u * (qi * p.Hq + h)];
        tDelta[lid] = dpStats[2u * (qi * p.Hq + h) + 1u];
      }
      workgroupBarrier();
      keyTile(&kr, &vr, &dk, &dv, q0, i1, 0u, 0u, p.scale, row, lane);
    }
  }
  if (live) {
    let part = wid.z * p.P * 2u * p.Hkv * HD + 2u * p.T * p.Hq; // this chunk's partials in stats
    for (var k = 0u; k < DS; k++) {
      let d = lane + 4u * k;
      if (d < HD) {
        dpStats[part + kIdx + d] = dk[k] * p.scale;
        dpStats[part + vIdx + d] = dv[k];
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------

@compute @workgroup_size(128, 1, 1)
fn backward_dprefix_reduce(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, inv: Inv) {
  let p = dprP;
  let n = p.P * 2u * p.Hkv * HD; // elements of dPrefixKV, and of each chunk's partials
  let e = (wid.y * nwg.x + wid.x) * WG + inv.lid;
  if (e >= n) { return; }
  let base = 2u * p.T * p.Hq;
  var s = dprStats[base + e]; // C = 1: an exact copy
  for (var c = 1u; c < p.chunks; c++) { s += dprStats[base + c * n + e]; } // chunk order: deterministic
  dprOut[e] = s;
}
