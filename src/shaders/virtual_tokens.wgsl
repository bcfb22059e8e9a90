// virtual_tokens.wgsl — prompt tuning's virtual tokens: trained input embeddings ahead of every row (PEFT's
// PromptEmbedding), and their gradient.
//
// A virtual token is an id past the vocabulary: id = base + j (base = the embedding table's rows) stands for row j of
// P. The embedding gather (embedding.wgsl) writes such a position as zeros (+ its learned position vector, GPT-2); this
// kernel then adds P's row, so the position holds P[j] (+ wpe[position]) as PEFT's inputs_embeds do.
//
//   forward:   x[t, :] += P[ids[t] − base, :]               for every t with base ≤ ids[t] < base + n
//   backward:  dP[j, :] (+)= Σ over t with ids[t] = base + j of dx[t, :]   (the sum over rows and segments)
//
// Layout (row-major):
//   ids   (rows) u32      token ids of the packed batch
//   src   forward: P (n, C) f32;   backward: dx (rows, C) f32, the gradient of the embedding output
//   dst   forward: x (rows, C) f32; backward: dP (n, C) f32
// The backward has no float atomics: one invocation owns one (j, c) element and sums its positions in order (each
// scans the ids: rows × n·C reads of u32, small next to the step's matmuls), so the result is deterministic.
// ACCUMULATE adds into dP (micro-batches of one optimizer step).
//
// Dispatch: forward one thread per element of x, 256 per workgroup, ⌈rows·C/256⌉ workgroups folded into (x, y) over
// 65535 (flat index wid.y·nwg.x + wid.x; the tail is guarded); backward (⌈C/64⌉, n, 1) workgroups of 64.

struct Params {
  rows: u32,
  C: u32,
  base: u32,
  n: u32,
}

override ACCUMULATE: bool = true;

@group(0) @binding(0) var<storage, read> ids: array<u32>;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(256, 1, 1)
fn forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = (wid.y * nwg.x + wid.x) * 256u + lid.x;
  if (i >= p.rows * p.C) { return; }
  let t = i / p.C;
  let c = i % p.C;
  let j = ids[t] - p.base; // wraps past n for real tokens
  if (j >= p.n) { return; }
  dst[i] = dst[i] + src[j * p.C + c];
}

@compute @workgroup_size(64, 1, 1)
fn backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let c = wid.x * 64u + lid.x;
  let j = wid.y;
  if (c >= p.C || j >= p.n) { return; }
  let id = p.base + j;
  var s = 0.0;
  for (var t = 0u; t < p.rows; t++) {
    if (ids[t] == id) { s = s + src[t * p.C + c]; }
  }
  let at = j * p.C + c;
  if (ACCUMULATE) { s = s + dst[at]; }
  dst[at] = s;
}
