// columns.wgsl — move a block of columns between a wide matrix and a narrow one (GPT-2's fused c_attn output holds
// q, k and v side by side; attention wants each dense).
//   gather   narrow (rows, w) = wide[:, offset : offset + w]                wide (rows, W)
//   scatter  wide[:, offset : offset + w] = narrow (rows, w)  (+= when ACCUMULATE)
// f32. One invocation per narrow element; dispatch (⌈rows·w/64⌉ folded into x, y, 1) with the flat index
// wid.y·nwg.x·64 + wid.x·64 + lid.x, surplus invocations return.

struct Params {
  rows: u32,
  wide: u32,
  narrow: u32,
  offset: u32,
}

override ACCUMULATE: bool = false;

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

fn flat(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
  return (wid.y * nwg.x + wid.x) * 64u + lid.x;
}

@compute @workgroup_size(64, 1, 1)
fn gather(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = flat(wid, nwg, lid);
  if (i >= p.rows * p.narrow) { return; }
  let r = i / p.narrow;
  let c = i % p.narrow;
  dst[i] = src[r * p.wide + p.offset + c];
}

@compute @workgroup_size(64, 1, 1)
fn scatter(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = flat(wid, nwg, lid);
  if (i >= p.rows * p.narrow) { return; }
  let r = i / p.narrow;
  let c = i % p.narrow;
  let j = r * p.wide + p.offset + c;
  var v = src[i];
  if (ACCUMULATE) { v = v + dst[j]; }
  dst[j] = v;
}
