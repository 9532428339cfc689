// The C ABI (include/ldm3d.h): every call catches everything, turns it into a status and keeps the message for
// ldm3d_last_error() on this thread. Nothing propagates into the host.
#include "ldm3d.h"

#include <cmath>
#include <memory>
#include <new>
#include <string>

#include "constants.hpp"
#include "errors.hpp"
#include "pipeline.hpp"

struct ldm3d_pipeline {
    std::unique_ptr<ldm3d::Pipeline> impl;
    ldm3d::Result result;
    bool has_result = false;
};

namespace {

thread_local std::string last_error;

ldm3d_status fail(ldm3d_status s, const std::string& message) {
    last_error = message;
    return s;
}

template <typename F>
ldm3d_status guarded(F&& f) {
    try {
        last_error.clear();
        return f();
    } catch (const ldm3d::Error& e) {
        return fail(static_cast<ldm3d_status>(e.status), e.what());
    } catch (const std::bad_alloc&) {
        return fail(LDM3D_ERR_INTERNAL, "out of memory");
    } catch (const std::exception& e) {
        return fail(LDM3D_ERR_INTERNAL, e.what());
    } catch (...) {
        return fail(LDM3D_ERR_INTERNAL, "unknown error");
    }
}

}  // namespace

extern "C" {

void ldm3d_params_init(ldm3d_params* p) {
    if (!p) return;
    *p = ldm3d_params{};
    p->steps = ldm3d::names::DEFAULT_STEPS;
    p->guidance_scale = ldm3d::names::DEFAULT_GUIDANCE;
}

ldm3d_status ldm3d_create(const char* artifact_dir, const char* device, const char* precision,
                          ldm3d_pipeline** out) {
    return guarded([&] {
        if (!out) return fail(LDM3D_ERR_INVALID_ARGUMENT, "out must not be NULL");
        *out = nullptr;
        if (!artifact_dir) return fail(LDM3D_ERR_INVALID_ARGUMENT, "artifact_dir must not be NULL");
        auto p = std::make_unique<ldm3d_pipeline>();
        p->impl = std::make_unique<ldm3d::Pipeline>(artifact_dir, device ? device : "CPU", precision ? precision : "");
        *out = p.release();
        return LDM3D_OK;
    });
}

ldm3d_status ldm3d_generate(ldm3d_pipeline* pipeline, const ldm3d_params* params) {
    return guarded([&] {
        if (!pipeline || !pipeline->impl) return fail(LDM3D_ERR_INVALID_ARGUMENT, "pipeline must not be NULL");
        if (!params) return fail(LDM3D_ERR_INVALID_ARGUMENT, "params must not be NULL");
        if (!params->prompt) return fail(LDM3D_ERR_INVALID_ARGUMENT, "params.prompt must not be NULL");
        if (params->latents_len && !params->latents)
            return fail(LDM3D_ERR_INVALID_ARGUMENT, "params.latents is NULL but latents_len is not 0");
        pipeline->has_result = false;
        ldm3d::Params p;
        p.prompt = params->prompt;
        p.negative_prompt = params->negative_prompt ? params->negative_prompt : "";
        p.scheduler = params->scheduler ? params->scheduler : "";
        p.steps = params->steps;
        p.guidance_scale = params->guidance_scale;
        p.height = params->height;
        p.width = params->width;
        p.seed = params->seed;
        if (params->latents) p.latents.assign(params->latents, params->latents + params->latents_len);
        if (params->progress) {
            auto fn = params->progress;
            void* user = params->user;
            p.progress = [fn, user](int step, int steps) { return fn(step, steps, user) == 0; };
        }
        pipeline->result = pipeline->impl->generate(p);
        pipeline->has_result = true;
        return LDM3D_OK;
    });
}

ldm3d_status ldm3d_result_size(const ldm3d_pipeline* pipeline, int* height, int* width) {
    return guarded([&] {
        if (!pipeline || !height || !width) return fail(LDM3D_ERR_INVALID_ARGUMENT, "NULL argument");
        if (!pipeline->has_result) return fail(LDM3D_ERR_INVALID_ARGUMENT, "no result yet: call ldm3d_generate");
        *height = pipeline->result.height;
        *width = pipeline->result.width;
        return LDM3D_OK;
    });
}

const float* ldm3d_result_rgb(const ldm3d_pipeline* pipeline) {
    if (!pipeline || !pipeline->has_result) { fail(LDM3D_ERR_INVALID_ARGUMENT, "no result"); return nullptr; }
    return pipeline->result.rgb.data();
}

const float* ldm3d_result_depth(const ldm3d_pipeline* pipeline) {
    if (!pipeline || !pipeline->has_result) { fail(LDM3D_ERR_INVALID_ARGUMENT, "no result"); return nullptr; }
    return pipeline->result.depth.data();
}

ldm3d_status ldm3d_save(const ldm3d_pipeline* pipeline, const char* prefix) {
    return guarded([&] {
        if (!pipeline || !prefix) return fail(LDM3D_ERR_INVALID_ARGUMENT, "NULL argument");
        if (!pipeline->has_result) return fail(LDM3D_ERR_INVALID_ARGUMENT, "no result yet: call ldm3d_generate");
        const auto& r = pipeline->result;
        ldm3d::write_png_rgb(std::string(prefix) + "_rgb.png", r.rgb, r.height, r.width);
        ldm3d::write_png_depth16(std::string(prefix) + "_depth.png", r.depth, r.height, r.width);
        return LDM3D_OK;
    });
}

ldm3d_status ldm3d_tokenize(const ldm3d_pipeline* pipeline, const char* text, int64_t* ids, size_t capacity,
                            size_t* count) {
    return guarded([&] {
        if (!pipeline || !pipeline->impl || !text || !count) return fail(LDM3D_ERR_INVALID_ARGUMENT, "NULL argument");
        auto v = pipeline->impl->tokenize(text);
        *count = v.size();
        if (!ids) return LDM3D_OK;
        if (capacity < v.size())
            return fail(LDM3D_ERR_INVALID_ARGUMENT, "ids holds " + std::to_string(capacity) + " entries, " +
                        std::to_string(v.size()) + " are needed");
        std::copy(v.begin(), v.end(), ids);
        return LDM3D_OK;
    });
}

ldm3d_status ldm3d_timings(const ldm3d_pipeline* pipeline, double out[5]) {
    return guarded([&] {
        if (!pipeline || !out) return fail(LDM3D_ERR_INVALID_ARGUMENT, "NULL argument");
        const auto& r = pipeline->result;
        double v[5] = {pipeline->impl->load_seconds(), r.text_encoder_s, r.unet_s, r.vae_decode_s, r.total_s};
        std::copy(v, v + 5, out);
        return LDM3D_OK;
    });
}

const char* ldm3d_last_error(void) { return last_error.c_str(); }

const char* ldm3d_version(void) { return LDM3D_VERSION; }   // set by CMake from ldm3d_edge.__version__

void ldm3d_free(ldm3d_pipeline* pipeline) { delete pipeline; }

}  // extern "C"
