// ldm3d.hpp - a C++ RAII wrapper over the C ABI (ldm3d.h): exceptions instead of status codes, vectors instead
// of raw buffers, the pipeline freed by its destructor.
#pragma once

#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "ldm3d.h"

namespace ldm3d_cpp {

struct Error : std::runtime_error {
    Error(ldm3d_status s, const std::string& m) : std::runtime_error(m), status(s) {}
    ldm3d_status status;
};

inline void check(ldm3d_status s) {
    if (s != LDM3D_OK) throw Error(s, ldm3d_last_error());
}

struct Image {
    int height = 0, width = 0;
    std::vector<float> rgb, depth;   // H*W*3 and H*W, in [0, 1]
};

class Pipeline {
public:
    explicit Pipeline(const std::string& artifact_dir, const std::string& device = "CPU",
                      const std::string& precision = "") {
        check(ldm3d_create(artifact_dir.c_str(), device.c_str(), precision.empty() ? nullptr : precision.c_str(), &p_));
    }
    ~Pipeline() { ldm3d_free(p_); }
    Pipeline(const Pipeline&) = delete;
    Pipeline& operator=(const Pipeline&) = delete;
    Pipeline(Pipeline&& o) noexcept : p_(o.p_) { o.p_ = nullptr; }

    // progress(step, steps) returning false cancels (throws Error with LDM3D_ERR_CANCELLED)
    Image generate(const std::string& prompt, int steps = 49, float guidance = 5.0f, uint64_t seed = 0,
                   const std::function<bool(int, int)>& progress = {}, const std::vector<float>& latents = {},
                   const std::string& negative_prompt = "", int height = 0, int width = 0) {
        ldm3d_params params;
        ldm3d_params_init(&params);
        params.prompt = prompt.c_str();
        params.negative_prompt = negative_prompt.c_str();
        params.steps = steps;
        params.guidance_scale = guidance;
        params.seed = seed;
        params.height = height;
        params.width = width;
        params.latents = latents.empty() ? nullptr : latents.data();
        params.latents_len = latents.size();
        if (progress) {
            params.user = const_cast<std::function<bool(int, int)>*>(&progress);
            params.progress = [](int s, int n, void* u) {
                return (*static_cast<std::function<bool(int, int)>*>(u))(s, n) ? 0 : 1;
            };
        }
        check(ldm3d_generate(p_, &params));
        Image img;
        check(ldm3d_result_size(p_, &img.height, &img.width));
        size_t hw = size_t(img.height) * img.width;
        img.rgb.assign(ldm3d_result_rgb(p_), ldm3d_result_rgb(p_) + hw * 3);
        img.depth.assign(ldm3d_result_depth(p_), ldm3d_result_depth(p_) + hw);
        return img;
    }
    void save(const std::string& prefix) const { check(ldm3d_save(p_, prefix.c_str())); }
    ldm3d_pipeline* handle() const { return p_; }

private:
    ldm3d_pipeline* p_ = nullptr;
};

}  // namespace ldm3d_cpp
