// Schedulers built from scheduler_config.json, mirroring the Python runtime's numpy ones (float32 arithmetic,
// diffusers' beta schedules, the float64 cumulative product): DDIM (eta 0) and Euler discrete.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace ldm3d {

class Scheduler {
public:
    virtual ~Scheduler() = default;
    virtual void set_timesteps(int steps) = 0;
    virtual float init_noise_sigma() const { return 1.0f; }
    // scale the model input in place (Euler divides by sqrt(sigma^2 + 1))
    virtual void scale_model_input(std::vector<float>& /*sample*/, float /*timestep*/) const {}
    // one step: sample <- previous sample
    virtual void step(const std::vector<float>& model_output, float timestep, std::vector<float>& sample) = 0;
    const std::vector<float>& timesteps() const { return timesteps_; }
    virtual std::string name() const = 0;

protected:
    std::vector<float> timesteps_;
};

// name: "" (the config's _class_name), "ddim" or "euler"
std::unique_ptr<Scheduler> create_scheduler(const nlohmann::json& config, const std::string& name);

}  // namespace ldm3d
