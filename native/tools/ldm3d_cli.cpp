// ldm3d-cli: the native runtime from the command line, through the C++ wrapper.
//   ldm3d-cli ARTIFACTS "prompt" [--out PREFIX] [--steps N] [--guidance G] [--seed S] [--device CPU]
//             [--precision f32|bf16|f16] [--latents FILE.f32] [--height H --width W]
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>

#include "ldm3d.hpp"

int main(int argc, char** argv) {
    if (argc < 3) {
        std::cerr << "usage: ldm3d-cli ARTIFACTS PROMPT [--out PREFIX] [--steps N] [--guidance G] [--seed S] "
                     "[--device CPU] [--precision f32|bf16|f16] [--latents FILE.f32] [--height H --width W]\n";
        return 2;
    }
    std::string dir = argv[1], prompt = argv[2], out = "out/native", device = "CPU", precision, latents_file;
    int steps = 30, height = 0, width = 0;
    float guidance = 5.0f;
    unsigned long long seed = 0;
    for (int i = 3; i + 1 < argc; i += 2) {
        std::string k = argv[i], v = argv[i + 1];
        try {
            if (k == "--out") out = v;
            else if (k == "--steps") steps = std::stoi(v);
            else if (k == "--guidance") guidance = std::stof(v);
            else if (k == "--seed") seed = std::stoull(v);
            else if (k == "--device") device = v;
            else if (k == "--precision") precision = v;
            else if (k == "--latents") latents_file = v;
            else if (k == "--height") height = std::stoi(v);
            else if (k == "--width") width = std::stoi(v);
            else { std::cerr << "ldm3d-cli: error: unknown option " << k << "\n"; return 2; }
        } catch (const std::exception&) {
            std::cerr << "ldm3d-cli: error: " << k << " needs a number, got " << v << "\n";
            return 2;
        }
    }
    try {
        std::vector<float> latents;
        if (!latents_file.empty()) {   // raw little-endian float32, (1, 4, H/8, W/8)
            std::ifstream f(latents_file, std::ios::binary | std::ios::ate);
            if (!f) { std::cerr << "ldm3d-cli: error: cannot read " << latents_file << "\n"; return 2; }
            latents.resize(size_t(f.tellg()) / sizeof(float));
            f.seekg(0);
            f.read(reinterpret_cast<char*>(latents.data()), std::streamsize(latents.size() * sizeof(float)));
        }
        ldm3d_cpp::Pipeline pipe(dir, device, precision);
        auto img = pipe.generate(prompt, steps, guidance, seed, [](int s, int n) {
            std::fprintf(stderr, "\rdenoising %d/%d", s, n);
            return true;
        }, latents, "", height, width);
        std::fprintf(stderr, "\n");
        pipe.save(out);
        double t[5];
        ldm3d_cpp::check(ldm3d_timings(pipe.handle(), t));
        std::printf("%dx%d, %d steps: load %.2fs, text %.3fs, UNet %.3fs (%.4f s/step), VAE %.3fs, total %.2fs\n"
                    "wrote %s_rgb.png, %s_depth.png\n", img.width, img.height, steps, t[0], t[1], t[2],
                    t[2] / steps, t[3], t[4], out.c_str(), out.c_str());
        return 0;
    } catch (const ldm3d_cpp::Error& e) {
        std::cerr << "ldm3d-cli: error: " << e.what() << "\n";
        return 2;
    }
}
