// File and tensor names of an artifact folder, generation limits and defaults: the C++ mirror of
// runtime/constants.py and runtime/config.py (tests/test_native.py checks that every value here equals the Python one).
#pragma once

namespace ldm3d::names {
constexpr const char* MANIFEST_FILE = "manifest.json";
constexpr int MANIFEST_FORMAT_VERSION = 1;
constexpr const char* TEXT_ENCODER = "text_encoder";
constexpr const char* UNET = "unet";
constexpr const char* VAE_DECODER = "vae_decoder";
constexpr const char* TOKENIZER_DIR = "tokenizer";
constexpr const char* SCHEDULER_DIR = "scheduler";
constexpr const char* SCHEDULER_CONFIG_FILE = "scheduler_config.json";
constexpr const char* OV_XML_FILE = "openvino_model.xml";
constexpr const char* TEXT_INPUT_IDS = "input_ids";
constexpr const char* TEXT_HIDDEN_STATES = "last_hidden_state";
constexpr const char* UNET_SAMPLE = "sample";
constexpr const char* UNET_TIMESTEP = "timestep";
constexpr const char* UNET_ENCODER_HIDDEN_STATES = "encoder_hidden_states";
constexpr const char* UNET_OUT = "out_sample";
constexpr const char* VAE_LATENT = "latent_sample";
constexpr const char* VAE_IMAGE = "sample";
constexpr const char* RGB_SUFFIX = "_rgb.png";
constexpr const char* DEPTH_SUFFIX = "_depth.png";
constexpr const char* DEPTH_ENCODING_1CH = "1ch-float";
constexpr const char* DEPTH_ENCODING_PACKED16 = "rgblike-16bit";
constexpr const char* PIPELINE_TEXT2RGBD = "text2rgbd";
// generation limits and defaults (runtime/config.py)
constexpr int MAX_STEPS = 1000;
constexpr int MAX_SIDE = 4096;
constexpr int DEFAULT_STEPS = 49;
constexpr float DEFAULT_GUIDANCE = 5.0f;
}  // namespace ldm3d::names
