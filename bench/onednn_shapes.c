// Times single convolution shapes on the oneDNN shim (Sources/COneDNN) — forward, backward-data and
// backward-weights, best of 30, in µs per sample — to try a kernel choice before building it into a layer.
//
//     gcc -O2 -I Sources/COneDNN/include bench/onednn_shapes.c Sources/COneDNN/onednn_convolution.c
//         -o /tmp/onednn_shapes -ldl -lpthread && /tmp/onednn_shapes   (one line)
//
// The shapes below are session 14's question (docs/performance.md "Session 14"): can a 4×4 stride-2 convolution
// run as space-to-depth followed by a 3×3 stride-1 Winograd convolution on 4× the channels (D.2/D.6/D.10 of the
// standard CNN), or a transposed one as a 3×3 Winograd convolution to 4× the channels followed by a pixel
// shuffle (G.4/G.7/G.10)? Both measured slower than what runs now. With the argument `bf16` it times instead
// bfloat16 passes of four shapes at 16, 32, 64 and 128 samples per call (is another chunk size better for
// bfloat16's backward-weights? No). Every shape hands over in the 16-channel blocked layout, as D's layers do,
// with a fused LeakyReLU; the times include the shim's conversions (float32 in, bfloat16 inside).
#include "onednn_convolution.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

enum { DIRECT, WINOGRAD, BF16 };

static void run(const char *name, int n, int c, int h, int o, int k, int s, int p, int algorithm) {
    unsigned options = ONEDNN_TRAINING | (algorithm == WINOGRAD ? ONEDNN_WINOGRAD : algorithm == BF16 ? ONEDNN_BF16 : 0);
    onednn_convolution *cv = onednn_convolution_create_general(n, c, h, h, o, k, k, s, p, p, 1, 0.1f, 16, 16, options);
    if (!cv) { printf("%-30s refused\n", name); return; }
    int oh = onednn_convolution_output_height(cv);
    size_t xs = (size_t)n * c * h * h, ys = (size_t)n * o * oh * oh, ws = (size_t)o * c * k * k;
    float *x = malloc(xs * 4), *y = malloc(ys * 4), *w = malloc(ws * 4), *dx = malloc(xs * 4);
    float *b = calloc(o, 4), *dw = calloc(ws, 4), *db = calloc(o, 4);
    for (size_t i = 0; i < xs; i++) x[i] = (rand() % 100) / 100.f;
    for (size_t i = 0; i < ws; i++) w[i] = (rand() % 100) / 1000.f;
    for (size_t i = 0; i < ys; i++) y[i] = 0.01f;
    double best[3] = {1e9, 1e9, 1e9};
    for (int r = 0; r < 30; r++) {
        double t0 = now(); onednn_convolution_forward(cv, x, w, b, y);
        double t1 = now(); onednn_convolution_backward_data(cv, y, w, dx);
        double t2 = now(); onednn_convolution_backward_weights(cv, x, y, dw, db);
        double t3 = now();
        if (t1 - t0 < best[0]) best[0] = t1 - t0;
        if (t2 - t1 < best[1]) best[1] = t2 - t1;
        if (t3 - t2 < best[2]) best[2] = t3 - t2;
    }
    printf("%-30s %-8s forward %6.1f  backward-data %6.1f  backward-weights %6.1f µs/sample\n", name,
           algorithm == BF16 ? "bf16" : onednn_convolution_is_winograd(cv) ? "Winograd" : "direct", best[0] * 1e6 / n, best[1] * 1e6 / n,
           best[2] * 1e6 / n);
    onednn_convolution_destroy(cv);
    free(x); free(y); free(w); free(dx); free(b); free(dw); free(db);
}

int main(int argc, char **argv) {
    if (!onednn_available(2)) { fprintf(stderr, "oneDNN unavailable: %s\n", onednn_unavailable_reason()); return 1; }
    if (argc > 1 && strcmp(argv[1], "bf16") == 0) {
        const int chunks[] = {16, 32, 64, 128};
        for (int i = 0; i < 4; i++) {
            const int n = chunks[i];
            printf("%d samples per call\n", n);
            run("D.2 4x4 s2 32->32 @32 bf16", n, 32, 32, 32, 4, 2, 1, BF16);
            run("D.4 3x3 32->64 @16 bf16", n, 32, 16, 64, 3, 1, 1, BF16);
            run("D.10 4x4 s2 128->128 @8 bf16", n, 128, 8, 128, 4, 2, 1, BF16);
            run("G.4 mirror 128->256 @8 bf16", n, 128, 8, 256, 4, 2, 1, BF16);
        }
        return 0;
    }
    const int n = 64;  // KernelSettings.oneDNNChunk
    run("D.2 4x4 s2 32->32 @32", n, 32, 32, 32, 4, 2, 1, DIRECT);
    run("D.2 as s2d 3x3 128->32 @16", n, 128, 16, 32, 3, 1, 1, WINOGRAD);
    run("D.6 4x4 s2 64->64 @16", n, 64, 16, 64, 4, 2, 1, DIRECT);
    run("D.6 as s2d 3x3 256->64 @8", n, 256, 8, 64, 3, 1, 1, WINOGRAD);
    run("D.10 4x4 s2 128->128 @8", n, 128, 8, 128, 4, 2, 1, DIRECT);
    run("D.10 as s2d 3x3 512->128 @4", n, 512, 4, 128, 3, 1, 1, WINOGRAD);
    run("D.4 3x3 32->64 @16", n, 32, 16, 64, 3, 1, 1, DIRECT);
    run("D.4 3x3 32->64 @16", n, 32, 16, 64, 3, 1, 1, WINOGRAD);
    run("G.4 as 3x3 256->512 @4", n, 256, 4, 512, 3, 1, 1, WINOGRAD);
    run("G.7 as 3x3 128->256 @8", n, 128, 8, 256, 3, 1, 1, WINOGRAD);
    run("G.10 as 3x3 64->128 @16", n, 64, 16, 128, 3, 1, 1, WINOGRAD);
    return 0;
}
