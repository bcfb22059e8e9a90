// embedding_grad.wgsl — the gradient of an embedding table without float atomics: for every distinct token id u of
// the batch, dE[u, :] (+)= Σ over the positions t holding u of dx[t, :]. Full fine-tuning's token embeddings, and
// GPT-2's learned positions with positions as the ids.
//
// WebGPU has no float atomics, and a scatter-add by token would race where a token repeats. The host groups the
// positions by id instead (embedding-grad.ts planEmbeddingGrad: a stable sort, so each sum runs in position order and
// the result is deterministic), and one invocation sums one (id, column) pair; no two invocations write one element.
//
// Layout (row-major):
//   dx      (T, C) f32        the gradient flowing into the embedding output
//   order   (T) u32           positions sorted by id, ascending positions within an id
//   starts  (U + 1) u32       the positions of distinct id u are order[starts[u] .. starts[u + 1])
//   ids     (U) u32           the distinct ids, ascending
//   dE      (shardRows, C) f32  rows firstRow … firstRow + shardRows − 1 of the table's gradient
// Params: C; count and first: this dispatch handles distinct ids first … first + count − 1 (all inside the shard:
// the host splits them by shard and into dispatches of at most 65535); firstRow. ACCUMULATE adds into dE.
// Dispatch: (⌈C/64⌉, count, 1) workgroups of 64: x over columns, y over the distinct ids.

struct Params {
  C: u32,
  count: u32,
  first: u32,
  firstRow: u32,
}

override ACCUMULATE: bool = true;

@group(0) @binding(0) var<storage, read> dx: array<f32>;
@group(0) @binding(1) var<storage, read> order: array<u32>;
@group(0) @binding(2) var<storage, read> starts: array<u32>;
@group(0) @binding(3) var<storage, read> ids: array<u32>;
@group(0) @binding(4) var<storage, read_write> dE: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let c = wid.x * 64u + lid.x;
  if (c >= p.C || wid.y >= p.count) { return; }
  let u = p.first + wid.y;
  var s = 0.0;
  for (var k = starts[u]; k < starts[u + 1u]; k++) {
    s = s + dx[order[k] * p.C + c];
  }
  let at = (ids[u] - p.firstRow) * p.C + c;
  if (ACCUMULATE) { s = s + dE[at]; }
  dE[at] = s;
}
