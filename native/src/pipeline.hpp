// Text -> RGB + depth over an artifact folder, with OpenVINO: the same numbered steps as runtime/pipeline.py.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <openvino/openvino.hpp>

#include "scheduler.hpp"
#include "tokenizer.hpp"

namespace ldm3d {

struct Manifest {
    std::string root;
    int height = 0, width = 0, vae_scale_factor = 8, latent_channels = 4, vae_channels = 4;
    float vae_scaling_factor = 0.18215f;
    std::string depth_encoding, precision, pipeline;
    static Manifest read(const std::string& root);
};

struct Params {
    std::string prompt, negative_prompt, scheduler;
    int steps = 49, height = 0, width = 0;
    float guidance_scale = 5.0f;
    uint64_t seed = 0;
    std::vector<float> latents;                        // empty: drawn from seed
    std::function<bool(int step, int steps)> progress;   // false cancels
};

struct Result {
    int height = 0, width = 0;
    std::vector<float> rgb, depth;                     // H*W*3 and H*W, in [0, 1]
    double text_encoder_s = 0, unet_s = 0, vae_decode_s = 0, total_s = 0;
};

class Pipeline {
public:
    Pipeline(const std::string& artifact_dir, const std::string& device, const std::string& precision);
    Result generate(const Params& params);
    const Manifest& manifest() const { return manifest_; }
    std::vector<int64_t> tokenize(const std::string& text) const { return tokenizer_.encode(text); }
    double load_seconds() const { return load_s_; }

private:
    ov::CompiledModel& compiled(const std::string& part, int height, int width);
    std::vector<float> encode_text(const std::string& prompt);

    Manifest manifest_;
    std::string real_root_;                               // the artifact folder with links resolved
    ov::Core core_;
    std::string device_;
    ov::AnyMap config_;
    ClipTokenizer tokenizer_;
    nlohmann::json scheduler_config_;
    std::map<std::string, ov::CompiledModel> compiled_;   // key: part@HxW
    double load_s_ = 0;
};

void write_png_rgb(const std::string& path, const std::vector<float>& rgb, int height, int width);
void write_png_depth16(const std::string& path, const std::vector<float>& depth, int height, int width);

}  // namespace ldm3d
