/* ldm3d.h - the C ABI of the ldm3d-edge native runtime (C++17 over OpenVINO's C++ API).
 *
 * Opens an artifact folder made by `ldm3d export` (the same folders the Python runtime reads), generates RGB +
 * depth from a prompt, and hands back float buffers or writes PNGs. Every function returns a status; on failure
 * ldm3d_last_error() (per thread) says what was wrong. No function aborts the host process on bad input.
 *
 *     ldm3d_pipeline* p = NULL;
 *     if (ldm3d_create("artifacts", "CPU", NULL, &p) != LDM3D_OK) { puts(ldm3d_last_error()); return 1; }
 *     ldm3d_params params; ldm3d_params_init(&params);
 *     params.prompt = "a red sphere on a grey floor"; params.steps = 30; params.seed = 1;
 *     if (ldm3d_generate(p, &params) == LDM3D_OK) ldm3d_save(p, "out/scene");   // scene_rgb.png, scene_depth.png
 *     ldm3d_free(p);
 */
#ifndef LDM3D_H
#define LDM3D_H

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#  define LDM3D_API __declspec(dllexport)
#else
#  define LDM3D_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ldm3d_status {
    LDM3D_OK = 0,
    LDM3D_ERR_INVALID_ARGUMENT = 1,  /* a NULL pointer, a value out of range, wrong buffer size */
    LDM3D_ERR_MODEL_FOLDER = 2,      /* the artifact folder is missing, incomplete or corrupt */
    LDM3D_ERR_DEVICE = 3,            /* the device cannot run the model */
    LDM3D_ERR_CANCELLED = 4,         /* the progress callback asked to stop */
    LDM3D_ERR_OUTPUT = 5,            /* NaN/inf output, or a file could not be written */
    LDM3D_ERR_INTERNAL = 6           /* anything else (an exception from below), with its message */
} ldm3d_status;

typedef struct ldm3d_pipeline ldm3d_pipeline;   /* opaque */

/* Called after each denoising step (1-based); return nonzero to cancel the run (ldm3d_generate then returns
 * LDM3D_ERR_CANCELLED and keeps no result). */
typedef int (*ldm3d_progress_fn)(int step, int steps, void* user);

typedef struct ldm3d_params {
    const char* prompt;            /* required, UTF-8 */
    const char* negative_prompt;   /* NULL: none ("") */
    int steps;                     /* 1..1000 (default 49) */
    float guidance_scale;          /* >= 0; <= 1 turns classifier-free guidance off (default 5.0) */
    int height, width;             /* 0: the export size; otherwise multiples of 8 (OpenVINO reshapes) */
    uint64_t seed;                 /* noise seed: the Python runtime's (NumPy's default_rng) noise, bit for bit */
    const float* latents;          /* optional initial noise, (1, 4, height/8, width/8) row-major */
    size_t latents_len;            /* its element count */
    const char* scheduler;         /* NULL: the folder's own; "ddim" or "euler" */
    ldm3d_progress_fn progress;    /* optional */
    void* user;                    /* passed to progress */
} ldm3d_params;

LDM3D_API void ldm3d_params_init(ldm3d_params* params);

/* device: "CPU", "GPU", "GPU.1", ... (OpenVINO device names); precision: NULL / "f32" / "bf16" / "f16". */
LDM3D_API ldm3d_status ldm3d_create(const char* artifact_dir, const char* device, const char* precision,
                                    ldm3d_pipeline** out);
LDM3D_API ldm3d_status ldm3d_generate(ldm3d_pipeline* pipeline, const ldm3d_params* params);

/* The last result: size, RGB as float (H*W*3, [0,1], row-major RGB), depth as float (H*W, [0,1], near = high,
 * relative inverse depth). The buffers belong to the pipeline and live until the next generate or free. */
LDM3D_API ldm3d_status ldm3d_result_size(const ldm3d_pipeline* pipeline, int* height, int* width);
LDM3D_API const float* ldm3d_result_rgb(const ldm3d_pipeline* pipeline);
LDM3D_API const float* ldm3d_result_depth(const ldm3d_pipeline* pipeline);
/* <prefix>_rgb.png (8-bit) and <prefix>_depth.png (16-bit, depth * 65535), each written whole or not at all. */
LDM3D_API ldm3d_status ldm3d_save(const ldm3d_pipeline* pipeline, const char* prefix);

/* The prompt's token ids as the text encoder gets them (max_length ids: <|startoftext|> ... <|endoftext|>, padded);
 * *count receives max_length; ids may be NULL to ask for the count only. */
LDM3D_API ldm3d_status ldm3d_tokenize(const ldm3d_pipeline* pipeline, const char* text, int64_t* ids, size_t capacity,
                                      size_t* count);

/* Seconds: load, and of the last run: text encoder, UNet steps (sum), VAE decode, total. */
LDM3D_API ldm3d_status ldm3d_timings(const ldm3d_pipeline* pipeline, double out[5]);

LDM3D_API const char* ldm3d_last_error(void);   /* this thread's last error message ("" if none) */
LDM3D_API const char* ldm3d_version(void);
LDM3D_API void ldm3d_free(ldm3d_pipeline* pipeline);   /* NULL is fine */

#ifdef __cplusplus
}
#endif
#endif /* LDM3D_H */
