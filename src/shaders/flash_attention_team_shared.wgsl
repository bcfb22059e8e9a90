// flash_attention_team_shared.wgsl — appended to flash_attention.wgsl on adapters without subgroups: the 4 lanes of
// a row are consecutive local invocations, and their partial dot products meet in workgroup memory.

struct Inv {
  @builtin(local_invocation_index) lid: u32,
}

var<workgroup> red: array<f32, ROWS * 4u * BT * 2u>; // (row, lane, tile row, 2)

/** (row, lane) this invocation owns. */
fn slot(inv: Inv) -> vec2<u32> {
  return vec2<u32>(inv.lid / 4u, inv.lid % 4u);
}

/** a[j] = Σ over the row's 4 lanes of a[j], as (a0 + a1) + (a2 + a3). Workgroup-uniform control flow only. */
fn teamSum1(a: ptr<function, array<f32, BT>>, row: u32, lane: u32) {
  let mine = (row * 4u + lane) * BT;
  for (var j = 0u; j < BT; j++) { red[2u * (mine + j)] = (*a)[j]; }
  workgroupBarrier();
  let r0 = row * 4u * BT;
  for (var j = 0u; j < BT; j++) {
    (*a)[j] = (red[2u * (r0 + j)] + red[2u * (r0 + BT + j)]) + (red[2u * (r0 + 2u * BT + j)] + red[2u * (r0 + 3u * BT + j)]);
  }
  workgroupBarrier();
}

/** teamSum1 of two tiles at once. */
fn teamSum2(a: ptr<function, array<f32, BT>>, b: ptr<function, array<f32, BT>>, row: u32, lane: u32) {
  let mine = (row * 4u + lane) * BT;
  for (var j = 0u; j < BT; j++) {
    red[2u * (mine + j)] = (*a)[j];
    red[2u * (mine + j) + 1u] = (*b)[j];
  }
  workgroupBarrier();
  let r0 = row * 4u * BT;
  for (var j = 0u; j < BT; j++) {
    (*a)[j] = (red[2u * (r0 + j)] + red[2u * (r0 + BT + j)]) + (red[2u * (r0 + 2u * BT + j)] + red[2u * (r0 + 3u * BT + j)]);
    (*b)[j] = (red[2u * (r0 + j) + 1u] + red[2u * (r0 + BT + j) + 1u]) + (red[2u * (r0 + 2u * BT + j) + 1u] + red[2u * (r0 + 3u * BT + j) + 1u]);
  }
  workgroupBarrier();
}
