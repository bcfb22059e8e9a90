// rope.wgsl — rotary position embedding in Hugging Face's rotate-half convention, forward or inverse
//
// For token t, head h and pair i < half = D/2, with θ = f32(pos[t]) · invFreq[i] rounded to f32 (as transformers
// computes `inv_freq @ position_ids` in f32 before cos/sin):
//   Y[t, h, i]        = X[t, h, i]·cos θ − X[t, h, i + half]·sin θ        (q·cos + rotate_half(q)·sin,
//   Y[t, h, i + half] = X[t, h, i + half]·cos θ + X[t, h, i]·sin θ         rotate_half(x) = cat(−x2, x1))
// INVERSE rotates by −θ instead: that is the backward pass (a rotation's transpose is its inverse).
//
// Layout (row-major):
//   X, Y     (T, H, D) f32; Q is (T, Hq, D) and K is (T, Hkv, D): one dispatch per tensor
//   pos      (T) u32, the position of each token inside its own sequence (packed rows restart at 0)
//   invFreq  (D/2) f32, from ropeInvFreq() on the host (θ base, llama3/linear/dynamic scaling)
// IN_PLACE: Y is read and overwritten and X is not read (bind any buffer to it).
//
// sin/cos are not WGSL's built-ins: those have no accuracy guarantee outside [−π, π], and θ reaches the position
// itself (invFreq[0] = 1). sinCos() reduces exactly and evaluates polynomials, so every driver gives the same
// numbers to ~1e-7 for θ < 2^17·π/2 ≈ 205887 (positions up to 200k).
//
// Dispatch: 64 threads, one per (t, h, i), T·H·half in all; workgroups (min(n, 65535), ⌈n/65535⌉, 1) for
// n = ⌈T·H·half / 64⌉, the flat index folded into x and y.

struct Params {
  T: u32,
  H: u32,
  D: u32,
  _pad: u32,
}

override IN_PLACE: bool = false;
override INVERSE: bool = false;

@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read> pos: array<u32>;
@group(0) @binding(2) var<storage, read> invFreq: array<f32>;
@group(0) @binding(3) var<storage, read_write> Y: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

// π/2 = C1 + C2 + C3 + C4 (Cody–Waite): C1..C3 have 7 significant bits, so q·Ck is exact in f32 for q < 2^17
// and a − q·C1 is exact (Sterbenz); C4 carries the next 24 bits.
const C1 = 1.5625;
const C2 = 0.0081787109375;
const C3 = 0.00011730194091796875;
const C4 = 3.1391647326017846e-07;
const TWO_OVER_PI = 0.6366197723675814;

// (sin a, cos a) for a ≥ 0 up to ~2^17·π/2: a = q·π/2 + s with |s| ≤ π/4, Taylor polynomials in s (truncation
// error < 2e-9 at π/4), then the quadrant q mod 4 picks and signs the pair.
fn sinCos(a: f32) -> vec2<f32> {
  let q = round(a * TWO_OVER_PI);
  var s = a - q * C1;
  s = s - q * C2;
  s = s - q * C3;
  s = s - q * C4;
  let s2 = s * s;
  let sn = s * (1.0 + s2 * (-1.0 / 6.0 + s2 * (1.0 / 120.0 + s2 * (-1.0 / 5040.0 + s2 * (1.0 / 362880.0)))));
  let cs = 1.0 + s2 * (-0.5 + s2 * (1.0 / 24.0 + s2 * (-1.0 / 720.0 + s2 * (1.0 / 40320.0 + s2 * (-1.0 / 3628800.0)))));
  switch (u32(q) & 3u) {
    case 0u: { return vec2<f32>(sn, cs); }
    case 1u: { return vec2<f32>(cs, -sn); }
    case 2u: { return vec2<f32>(-sn, -cs); }
    default: { return vec2<f32>(-cs, sn); }
  }
}

fn load(i: u32) -> f32 {
  if (IN_PLACE) { return Y[i]; }
  return X[i];
}

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let half = p.D / 2u;
  let n = (wid.y * nwg.x + wid.x) * 64u + lid;
  if (n >= p.T * p.H * half) { return; }
  let row = n / half; // t·H + h
  let i = n % half;
  let t = row / p.H;
  let theta = f32(pos[t]) * invFreq[i];
  var sc = sinCos(theta);
  if (INVERSE) { sc.x = -sc.x; }
  let lo = row * p.D + i;
  let hi = lo + half;
  let x1 = load(lo);
  let x2 = load(hi);
  Y[lo] = x1 * sc.y - x2 * sc.x;
  Y[hi] = x2 * sc.y + x1 * sc.x;
}
