// embedding.wgsl — token embedding gather: out[t, :] = wte[ids[t], :] (+ wpe[positions[t], :] when HAS_POS)
//
// Layout (row-major):
//   ids        (rows) u32 token ids
//   positions  (rows) u32 position of each token (restarts per packed sequence); read only when HAS_POS
//   wte        (shardRows, C) {{ELEM}}: rows firstRow … firstRow + shardRows − 1 of the (vocab, C) table (f16 only
//              where the adapter has shader-f16). A table over the binding limit is split by rows (src/gpu/sharded.ts)
//              and this kernel runs once per shard; a table that fits is one shard, firstRow 0, shardRows = vocab.
//   wpe        (maxPos, C) {{ELEM}}  GPT-2's learned positions; read only when HAS_POS
//   out        (rows, C) f32
// Out-of-range indices never read out of bounds: an id ≥ vocab contributes a zero token vector and a position
// ≥ maxPos a zero position vector (so a bad id gives a row of zeros, or the position vector alone, which a test can
// see, rather than a silently clamped real token). The host validates ids before upload; this is the backstop.
// Each token is written by exactly one shard's dispatch: the shard holding its id, or for an id ≥ vocab the shard
// with ownsOutOfRange set (the host sets it on the first). Other shards leave the token's row untouched.
// No backward: the embeddings are frozen.
//
// Bindings: ids, positions, wte, wpe, out, then the params uniform.
// Dispatch (once per shard): one thread per output element, 256 per workgroup, ⌈rows·C/256⌉ workgroups folded into (x, y) when over
// 65535 (flat workgroup index wid.y·nwg.x + wid.x; the tail is guarded).

struct Params {
  rows: u32,
  C: u32,
  vocab: u32,
  maxPos: u32,
  firstRow: u32,
  shardRows: u32,
  ownsOutOfRange: u32,
  pad: u32,
}

override HAS_POS: bool = false;

@group(0) @binding(0) var<storage, read> ids: array<u32>;
@group(0) @binding(1) var<storage, read> positions: array<u32>;
@group(0) @binding(2) var<storage, read> wte: array<{{ELEM}}>;
@group(0) @binding(3) var<storage, read> wpe: array<{{ELEM}}>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

const WG = 256u;

@compute @workgroup_size(256, 1, 1)
fn forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = (wid.y * nwg.x + wid.x) * WG + lid.x;
  if (i >= p.rows * p.C) { return; }
  let t = i / p.C;
  let c = i % p.C;
  let id = ids[t];
  let local = id - p.firstRow; // wraps past shardRows for ids below the shard
  let inShard = local < p.shardRows;
  if (!inShard && !(p.ownsOutOfRange != 0u && id >= p.vocab)) { return; }
  var v = 0.0;
  if (inShard) { v = f32(wte[local * p.C + c]); }
  if (HAS_POS) {
    let pos = positions[t];
    if (pos < p.maxPos) { v += f32(wpe[pos * p.C + c]); }
  }
  out[i] = v;
}
