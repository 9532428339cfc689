#include "pipeline.hpp"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#ifdef __linux__
#include <sys/mman.h>
#endif

#include "constants.hpp"
#include "errors.hpp"
#include "random.hpp"

namespace ldm3d {
namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

nlohmann::json read_json(const std::string& path) {
    std::ifstream f(path);
    if (!f) throw Error(Status::ModelFolder, path + " is missing");
    try {
        return nlohmann::json::parse(f);
    } catch (const std::exception& e) {
        throw Error(Status::ModelFolder, "corrupt JSON in " + path + ": " + e.what());
    }
}

std::vector<float> to_vector(const ov::Tensor& t) {
    const float* p = t.data<const float>();
    return std::vector<float>(p, p + t.get_size());
}

// Take this process's pages of read-only file mappings under `root` out of memory (as the Python runtime does,
// runtime/backends/openvino_backend.py drop_mapped_pages): OpenVINO keeps the IR's .bin mapped for the compiled
// model's life although the CPU plugin holds its own copy of the weights, so each weight was resident twice.
// The mappings are read-only and shared: a page touched again is read back from the page cache or the file.
void drop_mapped_pages(const std::string& root) {
#ifdef __linux__
    std::ifstream maps("/proc/self/maps");
    std::string line;
    const std::string prefix = root + "/";
    while (std::getline(maps, line)) {
        std::istringstream is(line);
        std::string range, perms, offset, dev, inode, path;
        is >> range >> perms >> offset >> dev >> inode;
        std::getline(is >> std::ws, path);
        if (perms.find('w') != std::string::npos || path.compare(0, prefix.size(), prefix) != 0) continue;
        auto dash = range.find('-');
        auto start = std::stoull(range.substr(0, dash), nullptr, 16);
        auto end = std::stoull(range.substr(dash + 1), nullptr, 16);
        madvise(reinterpret_cast<void*>(start), end - start, MADV_DONTNEED);
    }
#else
    (void)root;
#endif
}

}  // namespace

Manifest Manifest::read(const std::string& root) {
    std::ifstream probe(root + "/" + names::MANIFEST_FILE);
    if (!probe) throw Error(Status::ModelFolder, root + "/" + names::MANIFEST_FILE + " is missing: " + root +
                            " is not an ldm3d-edge artifact folder (make one with 'ldm3d export')");
    auto j = read_json(root + "/" + names::MANIFEST_FILE);
    Manifest m;
    m.root = root;
    try {
        if (j.at("format_version").get<int>() != names::MANIFEST_FORMAT_VERSION)
            throw Error(Status::ModelFolder, "manifest format_version is not 1");
        m.height = j.at("height").get<int>();
        m.width = j.at("width").get<int>();
        m.vae_scale_factor = j.at("vae_scale_factor").get<int>();
        m.latent_channels = j.at("latent_channels").get<int>();
        m.vae_channels = j.at("vae_channels").get<int>();
        m.vae_scaling_factor = j.at("vae_scaling_factor").get<float>();
        m.depth_encoding = j.at("depth_encoding").get<std::string>();
        m.precision = j.at("precision").get<std::string>();
        m.pipeline = j.value("pipeline", std::string(names::PIPELINE_TEXT2RGBD));
        for (const char* part : {names::TEXT_ENCODER, names::UNET, names::VAE_DECODER}) {
            const auto& formats = j.at("components").at(part).at("formats");
            if (std::find(formats.begin(), formats.end(), "openvino") == formats.end())
                throw Error(Status::ModelFolder, std::string(part) + " has no OpenVINO IR in " + root +
                            " (export with --format openvino or both)");
        }
    } catch (const nlohmann::json::exception& e) {
        throw Error(Status::ModelFolder, "corrupt manifest in " + root + ": " + e.what());
    }
    if (m.pipeline != names::PIPELINE_TEXT2RGBD)
        throw Error(Status::ModelFolder, root + " is a '" + m.pipeline + "' folder; the native runtime runs "
                    "text-to-RGBD models only");
    return m;
}

Pipeline::Pipeline(const std::string& artifact_dir, const std::string& device, const std::string& precision)
    : device_(device.empty() ? "CPU" : device) {
    auto t0 = Clock::now();
    manifest_ = Manifest::read(artifact_dir);
    real_root_ = std::filesystem::weakly_canonical(artifact_dir).string();   // as /proc/self/maps names files
    tokenizer_ = ClipTokenizer::from_folder(artifact_dir + "/" + names::TOKENIZER_DIR);
    scheduler_config_ = read_json(artifact_dir + "/" + names::SCHEDULER_DIR + "/" + names::SCHEDULER_CONFIG_FILE);
    create_scheduler(scheduler_config_, "");   // fail now on an unusable config
    std::string p = precision.empty() && manifest_.precision != "fp16" ? "f32" : precision;
    if (p == "f32") config_[ov::hint::inference_precision.name()] = ov::element::f32;
    else if (p == "bf16") config_[ov::hint::inference_precision.name()] = ov::element::bf16;
    else if (p == "f16") config_[ov::hint::inference_precision.name()] = ov::element::f16;
    else if (!p.empty()) throw Error(Status::InvalidArgument, "precision must be f32, bf16 or f16, got " + p);
    auto devices = core_.get_available_devices();
    std::string base = device_.substr(0, device_.find('.'));
    bool found = false;
    for (const auto& d : devices) found = found || d == device_ || d.substr(0, d.find('.')) == base;
    if (!found) {
        std::string all;
        for (const auto& d : devices) all += (all.empty() ? "" : ", ") + d;
        throw Error(Status::Device, "OpenVINO device " + device_ + " is not available here (available: " + all + ")");
    }
    for (const char* part : {names::TEXT_ENCODER, names::UNET, names::VAE_DECODER})
        compiled(part, manifest_.height, manifest_.width);
    load_s_ = since(t0);
}

ov::CompiledModel& Pipeline::compiled(const std::string& part, int height, int width) {
    bool spatial = part != names::TEXT_ENCODER;
    std::string key = spatial ? part + "@" + std::to_string(height) + "x" + std::to_string(width) : part;
    auto it = compiled_.find(key);
    if (it != compiled_.end()) return it->second;
    try {
        auto model = core_.read_model(manifest_.root + "/" + part + "/" + names::OV_XML_FILE);
        if (spatial && (height != manifest_.height || width != manifest_.width)) {
            const char* input = part == names::UNET ? names::UNET_SAMPLE : names::VAE_LATENT;
            ov::PartialShape shape = model->input(input).get_partial_shape();
            shape[2] = height / manifest_.vae_scale_factor;
            shape[3] = width / manifest_.vae_scale_factor;
            model->reshape({{input, shape}});
        }
        auto& compiled = compiled_.emplace(key, core_.compile_model(model, device_, config_)).first->second;
        model.reset();
        drop_mapped_pages(real_root_);
        return compiled;
    } catch (const ov::Exception& e) {
        throw Error(Status::Device, "OpenVINO could not load " + part + " on " + device_ + ": " + e.what());
    }
}

std::vector<float> Pipeline::encode_text(const std::string& prompt) {
    auto ids = tokenizer_.encode(prompt);
    auto req = compiled(names::TEXT_ENCODER, 0, 0).create_infer_request();
    req.set_tensor(names::TEXT_INPUT_IDS, ov::Tensor(ov::element::i64, {1, ids.size()}, ids.data()));
    req.infer();
    return to_vector(req.get_tensor(names::TEXT_HIDDEN_STATES));
}

Result Pipeline::generate(const Params& p) {
    auto t_start = Clock::now();
    const Manifest& m = manifest_;
    // 1. validate
    int h = p.height ? p.height : m.height, w = p.width ? p.width : m.width, f = m.vae_scale_factor;
    if (p.steps < 1 || p.steps > names::MAX_STEPS)
        throw Error(Status::InvalidArgument, "steps must be from 1 to " + std::to_string(names::MAX_STEPS) +
                    ", got " + std::to_string(p.steps));
    if (!std::isfinite(p.guidance_scale) || p.guidance_scale < 0)
        throw Error(Status::InvalidArgument, "guidance scale must be a finite number >= 0");
    for (auto [name, v] : {std::pair{"height", h}, std::pair{"width", w}})
        if (v < f || v > names::MAX_SIDE || v % f)
            throw Error(Status::InvalidArgument, std::string(name) + " must be a multiple of " + std::to_string(f) +
                        " from " + std::to_string(f) + " to " + std::to_string(names::MAX_SIDE) + ", got " +
                        std::to_string(v));
    size_t n_lat = size_t(m.latent_channels) * (h / f) * (w / f);
    if (!p.latents.empty() && p.latents.size() != n_lat)
        throw Error(Status::InvalidArgument, "latents must hold 1 x " + std::to_string(m.latent_channels) + " x " +
                    std::to_string(h / f) + " x " + std::to_string(w / f) + " = " + std::to_string(n_lat) +
                    " floats, got " + std::to_string(p.latents.size()));
    for (float v : p.latents)
        if (!std::isfinite(v)) throw Error(Status::InvalidArgument, "latents contain NaN or inf");
    auto sched = create_scheduler(scheduler_config_, p.scheduler);
    Result r;
    r.height = h;
    r.width = w;
    // 2. the prompt and the negative prompt, batch [negative, positive]
    auto t0 = Clock::now();
    bool cfg = p.guidance_scale > 1.0f;
    std::vector<float> cond = encode_text(p.prompt);
    std::vector<float> uncond = cfg ? encode_text(p.negative_prompt) : cond;
    std::vector<float> hidden(uncond);
    hidden.insert(hidden.end(), cond.begin(), cond.end());
    r.text_encoder_s = since(t0);
    // 3. timesteps, 4. initial latents
    sched->set_timesteps(p.steps);
    std::vector<float> latents = p.latents;
    if (latents.empty()) {
        // NumPy's default_rng(seed).standard_normal(float32), as the Python runtime draws: the same seed, the
        // same image in both runtimes and with any C++ standard library
        latents = NumpyRandom(p.seed).standard_normal(n_lat);
    }
    for (float& v : latents) v *= sched->init_noise_sigma();
    // 5. denoise with classifier-free guidance (the UNet is exported at batch 2)
    auto unet = compiled(names::UNET, h, w).create_infer_request();
    ov::Shape hid_shape = compiled(names::TEXT_ENCODER, 0, 0).output(names::TEXT_HIDDEN_STATES).get_shape();
    hid_shape[0] = 2;
    unet.set_tensor(names::UNET_ENCODER_HIDDEN_STATES, ov::Tensor(ov::element::f32, hid_shape, hidden.data()));
    const auto& ts = sched->timesteps();
    std::vector<float> model_in(2 * n_lat), guided(n_lat);
    for (size_t i = 0; i < ts.size(); ++i) {
        std::copy(latents.begin(), latents.end(), model_in.begin());
        std::copy(latents.begin(), latents.end(), model_in.begin() + n_lat);
        sched->scale_model_input(model_in, ts[i]);
        float tt[2] = {ts[i], ts[i]};
        unet.set_tensor(names::UNET_SAMPLE, ov::Tensor(ov::element::f32, {2, size_t(m.latent_channels), size_t(h / f),
                                                                          size_t(w / f)}, model_in.data()));
        unet.set_tensor(names::UNET_TIMESTEP, ov::Tensor(ov::element::f32, {2}, tt));
        auto t1 = Clock::now();
        unet.infer();
        r.unet_s += since(t1);
        const float* out = unet.get_tensor(names::UNET_OUT).data<const float>();
        for (size_t k = 0; k < n_lat; ++k)
            guided[k] = cfg ? out[k] + p.guidance_scale * (out[n_lat + k] - out[k]) : out[n_lat + k];
        sched->step(guided, ts[i], latents);
        if (p.progress && !p.progress(int(i) + 1, int(ts.size())))
            throw Error(Status::Cancelled, "generation cancelled by the progress callback at step " +
                        std::to_string(i + 1));
    }
    // 6. decode, 7. split RGB and depth
    t0 = Clock::now();
    for (float& v : latents) v /= m.vae_scaling_factor;
    auto vae = compiled(names::VAE_DECODER, h, w).create_infer_request();
    vae.set_tensor(names::VAE_LATENT, ov::Tensor(ov::element::f32, {1, size_t(m.latent_channels), size_t(h / f),
                                                                     size_t(w / f)}, latents.data()));
    vae.infer();
    const float* img = vae.get_tensor(names::VAE_IMAGE).data<const float>();
    r.vae_decode_s = since(t0);
    size_t hw = size_t(h) * w;
    for (size_t k = 0; k < hw * m.vae_channels; ++k)
        if (!std::isfinite(img[k])) throw Error(Status::Output, "the decoder produced NaN/inf values");
    auto unit = [](float v) { return std::clamp(v / 2.0f + 0.5f, 0.0f, 1.0f); };
    r.rgb.resize(hw * 3);
    r.depth.resize(hw);
    for (size_t k = 0; k < hw; ++k)
        for (int c = 0; c < 3; ++c) r.rgb[k * 3 + c] = unit(img[c * hw + k]);
    if (m.depth_encoding == names::DEPTH_ENCODING_1CH) {
        for (size_t k = 0; k < hw; ++k) r.depth[k] = unit(img[3 * hw + k]);
    } else if (m.depth_encoding == names::DEPTH_ENCODING_PACKED16) {
        for (size_t k = 0; k < hw; ++k) {
            auto hi = static_cast<uint32_t>(std::nearbyint(unit(img[4 * hw + k]) * 255));
            auto lo = static_cast<uint32_t>(std::nearbyint(unit(img[5 * hw + k]) * 255));
            r.depth[k] = float((hi << 8) + lo) / 65535.0f;
        }
    } else {
        throw Error(Status::ModelFolder, "unknown depth encoding " + m.depth_encoding);
    }
    // the decoder runs once per image: free its buffers until the next one (as the Python runtime does)
    vae = ov::InferRequest();
    compiled(names::VAE_DECODER, h, w).release_memory();
    r.total_s = since(t_start);
    return r;
}

}  // namespace ldm3d
