/* ldm3d-abi-check ARTIFACTS: every error path of the C ABI, then one good run; exits 0 when each call returned
 * the expected status with a message. Built with the library; run under AddressSanitizer and valgrind. */
#include <stdio.h>
#include <string.h>

#include "ldm3d.h"

static int failures = 0;

static void expect(const char* what, ldm3d_status got, ldm3d_status want) {
    const char* msg = ldm3d_last_error();
    int ok = got == want && (want == LDM3D_OK || (msg && strlen(msg) > 0));
    printf("%s %-34s status %d (want %d) %s\n", ok ? "ok  " : "FAIL", what, got, want, msg ? msg : "(null)");
    failures += !ok;
}

static int cancel_at_2(int step, int steps, void* user) { (void)steps; (void)user; return step >= 2; }

int main(int argc, char** argv) {
    if (argc < 2) { fprintf(stderr, "usage: %s ARTIFACTS\n", argv[0]); return 2; }
    ldm3d_pipeline* p = NULL;
    expect("create: missing folder", ldm3d_create("/nonexistent/model", "CPU", NULL, &p), LDM3D_ERR_MODEL_FOLDER);
    expect("create: NULL folder", ldm3d_create(NULL, "CPU", NULL, &p), LDM3D_ERR_INVALID_ARGUMENT);
    expect("create: NULL out", ldm3d_create(argv[1], "CPU", NULL, NULL), LDM3D_ERR_INVALID_ARGUMENT);
    expect("create: unknown device", ldm3d_create(argv[1], "NPU7", NULL, &p), LDM3D_ERR_DEVICE);
    expect("create: bad precision", ldm3d_create(argv[1], "CPU", "int3", &p), LDM3D_ERR_INVALID_ARGUMENT);
    expect("create", ldm3d_create(argv[1], "CPU", NULL, &p), LDM3D_OK);
    if (!p) return 1;
    ldm3d_params params;
    ldm3d_params_init(&params);
    expect("generate: NULL pipeline", ldm3d_generate(NULL, &params), LDM3D_ERR_INVALID_ARGUMENT);
    expect("generate: NULL params", ldm3d_generate(p, NULL), LDM3D_ERR_INVALID_ARGUMENT);
    expect("generate: NULL prompt", ldm3d_generate(p, &params), LDM3D_ERR_INVALID_ARGUMENT);
    params.prompt = "a red sphere on a grey floor";
    params.steps = 0;
    expect("generate: 0 steps", ldm3d_generate(p, &params), LDM3D_ERR_INVALID_ARGUMENT);
    params.steps = 4;
    params.height = 60;
    expect("generate: height 60", ldm3d_generate(p, &params), LDM3D_ERR_INVALID_ARGUMENT);
    params.height = 0;
    float few[3] = {0, 0, 0};
    params.latents = few;
    params.latents_len = 3;
    expect("generate: wrong latents size", ldm3d_generate(p, &params), LDM3D_ERR_INVALID_ARGUMENT);
    params.latents = NULL;
    params.latents_len = 5;
    expect("generate: NULL latents, length 5", ldm3d_generate(p, &params), LDM3D_ERR_INVALID_ARGUMENT);
    params.latents_len = 0;
    params.scheduler = "heun";
    expect("generate: unknown scheduler", ldm3d_generate(p, &params), LDM3D_ERR_INVALID_ARGUMENT);
    params.scheduler = NULL;
    params.progress = cancel_at_2;
    expect("generate: cancelled", ldm3d_generate(p, &params), LDM3D_ERR_CANCELLED);
    int h = 0, w = 0;
    expect("result after a cancelled run", ldm3d_result_size(p, &h, &w), LDM3D_ERR_INVALID_ARGUMENT);
    expect("save without a result", ldm3d_save(p, "/tmp/ldm3d-abi-check"), LDM3D_ERR_INVALID_ARGUMENT);
    params.progress = NULL;
    expect("generate", ldm3d_generate(p, &params), LDM3D_OK);
    expect("result size: NULL height", ldm3d_result_size(p, NULL, &w), LDM3D_ERR_INVALID_ARGUMENT);
    expect("result size", ldm3d_result_size(p, &h, &w), LDM3D_OK);
    expect("save into a missing folder", ldm3d_save(p, "/nonexistent/dir/x"), LDM3D_ERR_OUTPUT);
    ldm3d_free(p);
    ldm3d_free(NULL);
    printf("%s: %d failure(s)\n", failures ? "FAILED" : "all as expected", failures);
    return failures ? 1 : 0;
}
