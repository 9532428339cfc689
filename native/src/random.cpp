#include "random.hpp"

#include <array>
#include <cmath>

namespace ldm3d {
namespace {

using u128 = unsigned __int128;

// SeedSequence's hash constants (32-bit multiply-xorshift mixing of the entropy words into a pool of 4)
constexpr uint32_t INIT_A = 0x43b0d7e5, MULT_A = 0x931e8875, INIT_B = 0x8b51f9dd, MULT_B = 0x58f38ded;
constexpr uint32_t MIX_MULT_L = 0xca01f9dd, MIX_MULT_R = 0x4973f715;
constexpr int XSHIFT = 16;
constexpr size_t POOL_SIZE = 4;

uint32_t hashmix(uint32_t value, uint32_t& hash_const) {
    value ^= hash_const;
    hash_const *= MULT_A;
    value *= hash_const;
    return value ^ (value >> XSHIFT);
}

uint32_t mix(uint32_t x, uint32_t y) {
    uint32_t r = MIX_MULT_L * x - MIX_MULT_R * y;
    return r ^ (r >> XSHIFT);
}

std::array<uint32_t, POOL_SIZE> seed_pool(uint64_t entropy) {
    // the integer as little-endian 32-bit words (0 is one word)
    std::vector<uint32_t> words{uint32_t(entropy)};
    if (entropy >> 32) words.push_back(uint32_t(entropy >> 32));
    std::array<uint32_t, POOL_SIZE> pool{};
    uint32_t hc = INIT_A;
    for (size_t i = 0; i < POOL_SIZE; ++i) pool[i] = hashmix(i < words.size() ? words[i] : 0u, hc);
    for (size_t src = 0; src < POOL_SIZE; ++src)
        for (size_t dst = 0; dst < POOL_SIZE; ++dst)
            if (src != dst) pool[dst] = mix(pool[dst], hashmix(pool[src], hc));
    return pool;   // a seed below 2**64 has at most 2 words: no words beyond the pool to mix in
}

// PCG64: the 128-bit LCG multiplier, and the XSL-RR output of a state
const u128 PCG_MULT = (u128(2549297995355413924ULL) << 64) | 4865540595714422341ULL;

uint64_t xsl_rr(u128 s) {
    uint64_t v = uint64_t(s >> 64) ^ uint64_t(s);
    unsigned rot = unsigned(s >> 122);
    return (v >> rot) | (v << ((64 - rot) & 63));
}

// The 256-layer ziggurat of exp(-x^2/2): layer edges x_i from the last (R) inwards, each layer of area V.
// ki: the fraction of a layer inside the one above it (x 2^23, rounded), wi: x_i / 2^23, fi: exp(-x_i^2/2).
constexpr double ZIG_R = 3.6541528853610088, ZIG_V = 0.00492867323399;
struct Ziggurat {
    std::array<uint32_t, 256> ki{};
    std::array<float, 256> wi{}, fi{};
    Ziggurat() {
        auto f = [](double x) { return std::exp(-0.5 * x * x); };
        const double scale = 8388608.0;   // 2^23
        double q = ZIG_V / f(ZIG_R);
        ki[0] = uint32_t(std::llround(ZIG_R / q * scale));
        ki[1] = 0;
        wi[0] = float(q / scale);
        wi[255] = float(ZIG_R / scale);
        fi[0] = 1.0f;
        fi[255] = float(f(ZIG_R));
        double x = ZIG_R;
        for (int i = 254; i >= 1; --i) {
            double xn = std::sqrt(-2.0 * std::log(ZIG_V / x + f(x)));
            ki[i + 1] = uint32_t(std::llround(xn / x * scale));
            x = xn;
            fi[i] = float(f(x));
            wi[i] = float(x / scale);
        }
    }
};
const Ziggurat& ziggurat() {
    static const Ziggurat z;
    return z;
}
constexpr float ZIG_R_F = 3.6541528853610088f, ZIG_INV_R_F = 0.27366123732975828f;

}  // namespace

std::vector<uint32_t> seed_sequence_state(uint64_t entropy, size_t n_words) {
    auto pool = seed_pool(entropy);
    std::vector<uint32_t> out(n_words);
    uint32_t hc = INIT_B;
    for (size_t i = 0; i < n_words; ++i) {
        uint32_t v = pool[i % POOL_SIZE] ^ hc;
        hc *= MULT_B;
        v *= hc;
        out[i] = v ^ (v >> XSHIFT);
    }
    return out;
}

NumpyRandom::NumpyRandom(uint64_t seed) {
    // generate_state(4, np.uint64): pairs of 32-bit words, little-endian; state = s0:s1, sequence = s2:s3
    auto w = seed_sequence_state(seed, 8);
    uint64_t s[4];
    for (int i = 0; i < 4; ++i) s[i] = uint64_t(w[2 * i]) | (uint64_t(w[2 * i + 1]) << 32);
    u128 init_state = (u128(s[0]) << 64) | s[1], init_seq = (u128(s[2]) << 64) | s[3];
    inc_ = (init_seq << 1) | 1u;
    state_ = 0;
    state_ = state_ * PCG_MULT + inc_;
    state_ += init_state;
    state_ = state_ * PCG_MULT + inc_;
}

uint64_t NumpyRandom::next_u64() {
    state_ = state_ * PCG_MULT + inc_;
    return xsl_rr(state_);
}

uint32_t NumpyRandom::next_u32() {
    if (has_u32_) {
        has_u32_ = false;
        return u32_;
    }
    uint64_t v = next_u64();
    has_u32_ = true;
    u32_ = uint32_t(v >> 32);
    return uint32_t(v);
}

float NumpyRandom::standard_normal() {
    const Ziggurat& z = ziggurat();
    auto uniform = [this] { return float(next_u32() >> 8) * (1.0f / 16777216.0f); };
    for (;;) {
        uint32_t r = next_u32();
        int idx = int(r & 0xff);
        bool negative = (r >> 8) & 1u;
        uint32_t rabs = (r >> 9) & 0x7fffffu;
        float x = float(rabs) * z.wi[idx];
        if (negative) x = -x;
        if (rabs < z.ki[idx]) return x;   // the rectangle's inside: about 99 % of draws
        if (idx == 0) {                   // the tail beyond R, by Marsaglia's exponential method
            for (;;) {
                float xx = -ZIG_INV_R_F * std::log1p(-uniform());
                float yy = -std::log1p(-uniform());
                if (yy + yy > xx * xx) return ((rabs >> 8) & 1u) ? -(ZIG_R_F + xx) : ZIG_R_F + xx;
            }
        }
        // the wedge between two layers: accept under the density (compared in double, as NumPy does)
        if ((z.fi[idx - 1] - z.fi[idx]) * uniform() + z.fi[idx] < std::exp(-0.5 * double(x) * double(x))) return x;
    }
}

std::vector<float> NumpyRandom::standard_normal(size_t n) {
    std::vector<float> out(n);
    for (float& v : out) v = standard_normal();
    return out;
}

}  // namespace ldm3d
