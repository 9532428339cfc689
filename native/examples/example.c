/* The C ABI in 40 lines: generate one RGBD image and write its PNGs.
 *   cc example.c -I include -L build -lldm3d -o example && ./example ARTIFACTS "a red sphere on a grey floor" */
#include <stdio.h>

#include "ldm3d.h"

static int on_step(int step, int steps, void* user) {
    (void)user;
    fprintf(stderr, "\rstep %d of %d", step, steps);
    return 0;                                   /* nonzero would cancel */
}

int main(int argc, char** argv) {
    if (argc < 3) { fprintf(stderr, "usage: %s ARTIFACTS PROMPT\n", argv[0]); return 2; }
    ldm3d_pipeline* pipe = NULL;
    if (ldm3d_create(argv[1], "CPU", NULL, &pipe) != LDM3D_OK) {
        fprintf(stderr, "cannot load %s: %s\n", argv[1], ldm3d_last_error());
        return 1;
    }
    ldm3d_params params;
    ldm3d_params_init(&params);
    params.prompt = argv[2];
    params.steps = 30;
    params.seed = 42;
    params.progress = on_step;
    int status = ldm3d_generate(pipe, &params);
    if (status == LDM3D_OK) status = ldm3d_save(pipe, "example");
    if (status != LDM3D_OK) {
        fprintf(stderr, "\nerror %d: %s\n", status, ldm3d_last_error());
    } else {
        int h = 0, w = 0;
        ldm3d_result_size(pipe, &h, &w);
        const float* depth = ldm3d_result_depth(pipe);
        printf("\n%dx%d, depth at the centre %.4f; wrote example_rgb.png, example_depth.png\n", w, h,
               depth[(h / 2) * w + w / 2]);
    }
    ldm3d_free(pipe);
    return status == LDM3D_OK ? 0 : 1;
}
