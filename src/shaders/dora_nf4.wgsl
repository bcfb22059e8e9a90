// dora_nf4.wgsl — DoRA's weight norm over an NF4 base: scales = [n | c | c − 1] (blocks of `stride` floats) with
// n = ‖W + s·B·A‖ per output row and c = m / n, W the NF4-decoded [out, in] weight (dora.wgsl's weight_norm over a
// dense W; the decode is matmul_nf4.wgsl's, see its header for the codes / absmax / stats layout).
//   codes, absmax, stats: the NF4 weight (stats: any buffer without DOUBLE_QUANT); A [r,in], B [out,r], m (out) f32
// Dispatch as dora.wgsl's weight_norm: one workgroup of 64 threads per output row (folded into (x, y, 1)), strided
// partial sums of squares, then a fixed tree in workgroup memory (deterministic).

struct Params {
  rows: u32,     // out
  n: u32,        // in
  r: u32,
  stride: u32,
  scale: f32,
  dqOffset: f32, // double quantization: the mean subtracted from absmax before it was quantized
  _pad0: u32,
  _pad1: u32,
}

override DOUBLE_QUANT: bool = false;

@group(0) @binding(0) var<storage, read> codes: array<u32>;
@group(0) @binding(1) var<storage, read> absmax: array<u32>;
@group(0) @binding(2) var<storage, read> stats: array<f32>;
@group(0) @binding(3) var<storage, read> A: array<f32>;
@group(0) @binding(4) var<storage, read> B: array<f32>;
@group(0) @binding(5) var<storage, read> m: array<f32>;
@group(0) @binding(6) var<storage, read_write> scales: array<f32>;
@group(0) @binding(7) var<uniform> p: Params;

// bitsandbytes' NF4 codebook (dDequantizeNF4), as matmul_nf4.wgsl.
var<private> NF4: array<f32, 16> = array<f32, 16>(
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
  -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
  0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
  0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0);

fn codeByte(i: u32) -> u32 {
  return (codes[i >> 2u] >> (8u * (i & 3u))) & 0xffu;
}

fn blockAbsmax(b: u32) -> f32 {
  if (DOUBLE_QUANT) {
    let q = (absmax[b >> 2u] >> (8u * (b & 3u))) & 0xffu;
    return stats[q] * stats[256u + b / 256u] + p.dqOffset;
  }
  return bitcast<f32>(absmax[b]);
}

// Element e of the flattened [out, in] weight.
fn weight(e: u32) -> f32 {
  let byte = codeByte(e >> 1u);
  let code = select(byte >> 4u, byte & 0xfu, (e & 1u) == 1u);
  return NF4[code] * blockAbsmax(e / 64u);
}

var<workgroup> partial: array<f32, 64>;

@compute @workgroup_size(64, 1, 1)
fn weight_norm_nf4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_id) lid: vec3<u32>) {
  let j = wid.y * nwg.x + wid.x; // uniform: the early return keeps every barrier in uniform control flow
  if (j >= p.rows) { return; }
  var acc = 0.0;
  for (var i = lid.x; i < p.n; i += 64u) {
    var ba = 0.0;
    for (var k = 0u; k < p.r; k++) {
      ba = fma(B[j * p.r + k], A[k * p.n + i], ba);
    }
    let w = fma(p.scale, ba, weight(j * p.n + i));
    acc = fma(w, w, acc);
  }
  partial[lid.x] = acc;
  workgroupBarrier();
  for (var s = 32u; s > 0u; s >>= 1u) {
    if (lid.x < s) { partial[lid.x] = partial[lid.x] + partial[lid.x + s]; }
    workgroupBarrier();
  }
  if (lid.x != 0u) { return; }
  let norm = sqrt(partial[0]);
  let c = m[j] / norm;
  scales[j] = norm;
  scales[p.stride + j] = c;
  scales[2u * p.stride + j] = c - 1.0;
}
