"""xoshiro128** reference values for src/data/batching.test.ts, independent of src/data/rng.ts.

A line-for-line port of the C reference, xoshiro128starstar.c by David Blackman and Sebastiano Vigna
(https://prng.di.unimi.it/xoshiro128starstar.c, public domain):

    static inline uint32_t rotl(const uint32_t x, int k) { return (x << k) | (x >> (32 - k)); }
    uint32_t next(void) {
        const uint32_t result = rotl(s[1] * 5, 7) * 9;
        const uint32_t t = s[1] << 9;
        s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
        s[2] ^= t;
        s[3] = rotl(s[3], 11);
        return result;
    }

Run: python3 scripts/golden_xoshiro.py   (prints the first 10 outputs and the state after them for the state 1,2,3,4)
The same numbers come out of that C file compiled with gcc and seeded s = {1, 2, 3, 4}.
"""

M = 0xFFFFFFFF


def rotl(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & M


def next_u32(s: list[int]) -> int:
    result = (rotl((s[1] * 5) & M, 7) * 9) & M
    t = (s[1] << 9) & M
    s[2] ^= s[0]
    s[3] ^= s[1]
    s[1] ^= s[2]
    s[0] ^= s[3]
    s[2] ^= t
    s[3] = rotl(s[3], 11)
    return result


if __name__ == "__main__":
    s = [1, 2, 3, 4]
    print([next_u32(s) for _ in range(10)])
    print(s)
