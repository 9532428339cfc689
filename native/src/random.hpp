// NumPy-compatible noise: the same seed gives the same initial latents in C++ as in the Python runtime, whose
// Pipeline draws np.random.default_rng(seed).standard_normal(shape, dtype=np.float32). std::normal_distribution's
// output depends on the C++ standard library (libstdc++ and libc++ differ), so the seed alone could not be shared.
// Implemented here from NumPy's documented algorithms: SeedSequence (the seed's hash into the generator state),
// PCG64 (128-bit LCG, XSL-RR output) and the 256-layer float32 ziggurat. tests/test_native.py checks the stream
// against NumPy bit for bit.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace ldm3d {

// SeedSequence(entropy).generate_state(n_words, np.uint32), entropy < 2**64
std::vector<uint32_t> seed_sequence_state(uint64_t entropy, size_t n_words);

class NumpyRandom {
public:
    explicit NumpyRandom(uint64_t seed);   // np.random.default_rng(seed)
    uint64_t next_u64();                   // PCG64.random_raw()
    uint32_t next_u32();                   // the low half of a 64-bit draw, then its high half
    float standard_normal();               // Generator.standard_normal(dtype=np.float32), one value
    std::vector<float> standard_normal(size_t n);

private:
    unsigned __int128 state_ = 0, inc_ = 0;
    bool has_u32_ = false;
    uint32_t u32_ = 0;
};

}  // namespace ldm3d
