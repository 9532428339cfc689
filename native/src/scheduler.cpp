#include "scheduler.hpp"

#include <algorithm>
#include <cmath>

#include "errors.hpp"

namespace ldm3d {
namespace {

template <typename T>
T get(const nlohmann::json& c, const char* key, T fallback) {
    return c.contains(key) && !c[key].is_null() ? c[key].get<T>() : fallback;
}

// float32 linspace bit-identical to torch.linspace (see runtime/schedulers/base.py: linspace_f32)
std::vector<float> linspace_f32(float a, float b, int n) {
    float step = static_cast<float>((b - a) / static_cast<float>(std::max(n - 1, 1)));
    std::vector<float> out(n);
    for (int i = 0; i < n; ++i)
        out[i] = static_cast<float>(i < n / 2 ? double(a) + double(step) * i : double(b) - double(step) * (n - i - 1));
    return out;
}

std::vector<float> alphas_cumprod(const nlohmann::json& c, const char* who) {
    int n = get<int>(c, "num_train_timesteps", 1000);
    std::string schedule = get<std::string>(c, "beta_schedule", "linear");
    float b0 = get<float>(c, "beta_start", 0.0001f), b1 = get<float>(c, "beta_end", 0.02f);
    std::vector<float> betas;
    if (c.contains("trained_betas") && c["trained_betas"].is_array()) {
        betas = c["trained_betas"].get<std::vector<float>>();
    } else if (schedule == "linear") {
        betas = linspace_f32(b0, b1, n);
    } else if (schedule == "scaled_linear") {
        betas = linspace_f32(std::sqrt(b0), std::sqrt(b1), n);
        for (float& b : betas) b = b * b;
    } else {
        throw Error(Status::InvalidArgument, std::string(who) + ": beta_schedule " + schedule +
                    " is not supported (linear, scaled_linear)");
    }
    std::vector<float> acp(betas.size());
    double prod = 1.0;
    for (size_t i = 0; i < betas.size(); ++i) {
        prod *= double(1.0f - betas[i]);
        acp[i] = static_cast<float>(prod);
    }
    return acp;
}

std::vector<float> spaced(const std::string& spacing, int n_train, int steps, int offset, const char* who) {
    std::vector<float> ts(steps);
    if (spacing == "leading") {
        int ratio = n_train / steps;
        for (int i = 0; i < steps; ++i) ts[i] = float((steps - 1 - i) * ratio + offset);
    } else if (spacing == "linspace") {
        for (int i = 0; i < steps; ++i)
            ts[i] = float(std::round(double(n_train - 1) * (steps - 1 - i) / std::max(steps - 1, 1)));
    } else if (spacing == "trailing") {
        double ratio = double(n_train) / steps;
        for (int i = 0; i < steps; ++i) ts[i] = float(std::round(n_train - i * ratio) - 1);
    } else {
        throw Error(Status::InvalidArgument, std::string(who) + ": timestep_spacing " + spacing + " is not supported");
    }
    for (float t : ts)
        if (t < 0 || t >= n_train)
            throw Error(Status::InvalidArgument, std::string(who) + ": " + std::to_string(steps) + " steps with " +
                        spacing + " spacing and steps_offset " + std::to_string(offset) + " reach timestep " +
                        std::to_string(int(t)) + ", past the " + std::to_string(n_train) +
                        " training timesteps: use fewer steps");
    return ts;
}

void check_common(const nlohmann::json& c, const char* who) {
    for (const char* k : {"rescale_betas_zero_snr", "thresholding"})
        if (get<bool>(c, k, false)) throw Error(Status::InvalidArgument, std::string(who) + ": " + k + " is not supported");
    std::string pt = get<std::string>(c, "prediction_type", "epsilon");
    if (pt != "epsilon" && pt != "v_prediction")
        throw Error(Status::InvalidArgument, std::string(who) + ": prediction_type " + pt + " is not supported");
}

class DDIM : public Scheduler {
public:
    explicit DDIM(const nlohmann::json& c) : c_(c) {
        check_common(c, "ddim");
        acp_ = alphas_cumprod(c, "ddim");
        final_ = get<bool>(c, "set_alpha_to_one", true) ? 1.0f : acp_[0];
        v_ = get<std::string>(c, "prediction_type", "epsilon") == "v_prediction";
        clip_ = get<bool>(c, "clip_sample", true);
        range_ = get<float>(c, "clip_sample_range", 1.0f);
        n_train_ = get<int>(c, "num_train_timesteps", 1000);
    }
    std::string name() const override { return "ddim"; }
    void set_timesteps(int steps) override {
        steps_ = steps;
        timesteps_ = spaced(get<std::string>(c_, "timestep_spacing", "leading"), n_train_, steps,
                            get<int>(c_, "steps_offset", 0), "ddim");
    }
    void step(const std::vector<float>& eps_or_v, float timestep, std::vector<float>& x) override {
        int t = static_cast<int>(timestep);
        int prev_t = t - n_train_ / steps_;
        float a_t = acp_[t], a_prev = prev_t >= 0 ? acp_[prev_t] : final_, b_t = 1.0f - a_t;
        float sa = std::pow(a_t, 0.5f), sb = std::pow(b_t, 0.5f), sap = std::pow(a_prev, 0.5f);
        float sbp = std::pow(1.0f - a_prev, 0.5f);
        for (size_t i = 0; i < x.size(); ++i) {
            float m = eps_or_v[i], x0, eps;
            if (v_) { x0 = sa * x[i] - sb * m; eps = sa * m + sb * x[i]; }
            else { x0 = (x[i] - sb * m) / sa; eps = m; }
            if (clip_) x0 = std::clamp(x0, -range_, range_);   // eps stays the model's, as in diffusers
            x[i] = sap * x0 + sbp * eps;
        }
    }

private:
    nlohmann::json c_;
    std::vector<float> acp_;
    float final_ = 1, range_ = 1;
    bool v_ = false, clip_ = false;
    int n_train_ = 1000, steps_ = 1;
};

class Euler : public Scheduler {
public:
    explicit Euler(const nlohmann::json& c) : c_(c) {
        check_common(c, "euler");
        if (get<bool>(c, "use_karras_sigmas", false))
            throw Error(Status::InvalidArgument, "euler: use_karras_sigmas is not supported by the native runtime");
        auto acp = alphas_cumprod(c, "euler");
        for (float a : acp) train_sigmas_.push_back(std::pow((1.0f - a) / a, 0.5f));
        v_ = get<std::string>(c, "prediction_type", "epsilon") == "v_prediction";
        n_train_ = get<int>(c, "num_train_timesteps", 1000);
    }
    std::string name() const override { return "euler"; }
    float init_noise_sigma() const override {
        float s = *std::max_element(sigmas_.begin(), sigmas_.end());
        std::string sp = get<std::string>(c_, "timestep_spacing", "linspace");
        return (sp == "linspace" || sp == "trailing") ? s : std::pow(s * s + 1.0f, 0.5f);
    }
    void set_timesteps(int steps) override {
        std::string sp = get<std::string>(c_, "timestep_spacing", "linspace");
        std::vector<float> ts(steps);
        if (sp == "linspace") {
            for (int i = 0; i < steps; ++i)   // np.linspace(0, n-1, steps, dtype=float32)[::-1]
                ts[steps - 1 - i] = float(double(n_train_ - 1) * i / std::max(steps - 1, 1));
        } else {
            ts = spaced(sp, n_train_, steps, get<int>(c_, "steps_offset", 0), "euler");
        }
        sigmas_.clear();
        for (float t : ts) {   // np.interp(t, arange(n), train_sigmas)
            double lo = std::floor(double(t));
            size_t i = static_cast<size_t>(std::clamp(lo, 0.0, double(train_sigmas_.size() - 1)));
            size_t j = std::min(i + 1, train_sigmas_.size() - 1);
            double w = double(t) - lo;
            sigmas_.push_back(static_cast<float>((1 - w) * train_sigmas_[i] + w * train_sigmas_[j]));
        }
        sigmas_.push_back(0.0f);
        timesteps_ = ts;
        index_ = 0;
    }
    void scale_model_input(std::vector<float>& x, float) const override {
        float s = sigmas_[index_], d = std::pow(s * s + 1.0f, 0.5f);
        for (float& v : x) v = v / d;
    }
    void step(const std::vector<float>& m, float, std::vector<float>& x) override {
        float s = sigmas_[index_], dt = sigmas_[index_ + 1] - s;
        for (size_t i = 0; i < x.size(); ++i) {
            float x0 = v_ ? m[i] * (-s / std::pow(s * s + 1.0f, 0.5f)) + x[i] / (s * s + 1.0f) : x[i] - s * m[i];
            x[i] = x[i] + (x[i] - x0) / s * dt;
        }
        ++index_;
    }

private:
    nlohmann::json c_;
    std::vector<float> train_sigmas_, sigmas_;
    bool v_ = false;
    int n_train_ = 1000;
    size_t index_ = 0;
};

}  // namespace

std::unique_ptr<Scheduler> create_scheduler(const nlohmann::json& config, const std::string& name) {
    std::string key = name;
    if (key.empty()) {
        std::string cls = get<std::string>(config, "_class_name", "DDIMScheduler");
        key = cls == "DDIMScheduler" ? "ddim" : cls == "EulerDiscreteScheduler" ? "euler" : cls;
    }
    std::transform(key.begin(), key.end(), key.begin(), ::tolower);
    if (key == "ddim") return std::make_unique<DDIM>(config);
    if (key == "euler") return std::make_unique<Euler>(config);
    throw Error(Status::InvalidArgument, "scheduler " + key + " is not in the native runtime; choose ddim or euler");
}

}  // namespace ldm3d
