// The GEMMs a bfloat16 Winograd F(2×2, 2×2) path would run for the standard CNN's transposed layers: per call (64
// samples), 4 phases × 9 products, each [tiles][in] · [in][out], as one batched oneDNN matmul in bfloat16 (float32
// results) and in float32 — to size the "bfloat16 Winograd of our own" lever of docs/performance.md ("What is
// left", session 15) before building it. Best of 20, ms per call.
//
//     g++ -O2 bench/winograd_gemm_bf16.cpp -o /tmp/winograd_gemm_bf16 -ldnnl
//     OMP_NUM_THREADS=2 /tmp/winograd_gemm_bf16
#include "onednn_probe_fill.h"
#include <oneapi/dnnl/dnnl.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>

using namespace dnnl;
using dt = memory::data_type;

static double run(long batch, long M, long K, long N, dt type) {
    engine eng(engine::kind::cpu, 0);
    stream st(eng);
    memory::desc a({batch, M, K}, type, memory::format_tag::abc), b({batch, K, N}, type, memory::format_tag::abc);
    memory::desc c({batch, M, N}, dt::f32, memory::format_tag::abc);
    matmul::primitive_desc pd(matmul::desc(a, b, c), eng);
    memory am(a, eng), bm(b, eng), cm(c, eng);
    fill_probe_values(am);
    fill_probe_values(bm);
    matmul prim(pd);
    double best = 1e9;
    for (int r = 0; r < 20; r++) {
        auto t0 = std::chrono::steady_clock::now();
        prim.execute(st, {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}});
        st.wait();
        best = std::min(best, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::printf("  %-5s %-28s", type == dt::bf16 ? "bf16" : "f32", pd.impl_info_str());
    return best;
}

int main() {
    // G.4 256→128 from 4×4 (4 tiles per image and phase), G.7 128→64 from 8×8 (16), G.10 64→32 from 16×16 (64).
    struct { const char *name; long in, out, tilesPerImage; } layers[] = {{"G.4", 256, 128, 4}, {"G.7", 128, 64, 16}, {"G.10", 64, 32, 64}};
    for (auto &l : layers) {
        const long tiles = 64 * l.tilesPerImage;
        std::printf("%s: 36 × [%ld × %ld] · [%ld × %ld]\n", l.name, tiles, l.in, l.in, l.out);
        for (dt type : {dt::f32, dt::bf16}) {
            double ms = run(36, tiles, l.in, l.out, type);
            std::printf(" %7.2f ms per call, %5.0f GFLOP/s\n", ms, 2.0 * 36 * tiles * l.in * l.out / ms / 1e6);
        }
    }
}
