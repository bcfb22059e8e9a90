// flash_attention_team_subgroup.wgsl — appended to flash_attention.wgsl (rendered with `enable subgroups;`) on
// adapters with subgroups: the 4 lanes of a row are subgroup lanes 4k..4k+3 and sum with two shuffles, no barrier.
// No subgroup size is assumed beyond a multiple of 4 (WebGPU's minimum is 4; 4, 8, 32 and 64 occur), nor any
// mapping of local invocations to subgroups: rows are handed out per 4 lanes by a workgroup counter.

struct Inv {
  @builtin(local_invocation_index) lid: u32,
  @builtin(subgroup_invocation_id) sgLane: u32,
}

var<workgroup> teams: atomic<u32>;

/** (row, lane) this invocation owns: lane = subgroup lane mod 4, row taken from the counter by the team's first
 *  lane and shuffled to the other three. Workgroup-uniform control flow only. */
fn slot(inv: Inv) -> vec2<u32> {
  var t = 0u;
  if (inv.sgLane % 4u == 0u) { t = atomicAdd(&teams, 1u); }
  t = subgroupShuffle(t, inv.sgLane & ~3u);
  return vec2<u32>(t, inv.sgLane % 4u);
}

fn teamSum1(a: ptr<function, array<f32, BT>>, row: u32, lane: u32) {
  for (var j = 0u; j < BT; j++) {
    let x = (*a)[j] + subgroupShuffleXor((*a)[j], 1u);
    (*a)[j] = x + subgroupShuffleXor(x, 2u);
  }
}

fn teamSum2(a: ptr<function, array<f32, BT>>, b: ptr<function, array<f32, BT>>, row: u32, lane: u32) {
  for (var j = 0u; j < BT; j++) {
    let x = (*a)[j] + subgroupShuffleXor((*a)[j], 1u);
    (*a)[j] = x + subgroupShuffleXor(x, 2u);
    let y = (*b)[j] + subgroupShuffleXor((*b)[j], 1u);
    (*b)[j] = y + subgroupShuffleXor(y, 2u);
  }
}
