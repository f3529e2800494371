// Times oneDNN's bfloat16 matmul (brgemm on AVX512-BF16) on the shapes a convolution's backward-weights pass would
// have as one GEMM, dW[oc][ic·k·k] = dy[oc][n·oh·ow] · im2col(x)[n·oh·ow][ic·k·k], for the standard CNN's layers at
// 128 samples per call — to see whether an im2col + matmul would beat oneDNN's own bfloat16 backward-weights
// (docs/performance.md, "Measured and not kept", session 15). Best of 20, µs per sample, A plain and transposed.
//
//     g++ -O2 bench/onednn_matmul_bf16.cpp -o /tmp/onednn_matmul_bf16 -ldnnl
//     OMP_NUM_THREADS=2 OMP_WAIT_POLICY=passive /tmp/onednn_matmul_bf16
#include "onednn_probe_fill.h"
#include <oneapi/dnnl/dnnl.hpp>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>

using namespace dnnl;
using dt = memory::data_type;

static void run(const char *name, long M, long K, long N, bool transA, int samples) {
    engine eng(engine::kind::cpu, 0);
    stream st(eng);
    memory::desc a = transA ? memory::desc({M, K}, dt::bf16, memory::dims{1, M}) : memory::desc({M, K}, dt::bf16, memory::dims{K, 1});
    memory::desc b({K, N}, dt::bf16, memory::dims{N, 1}), c({M, N}, dt::f32, memory::dims{N, 1});
    primitive_attr attr;   // dW accumulates over the calls of a batch: a sum post-op
    post_ops po;
    po.append_sum(1.0f);
    attr.set_post_ops(po);
    matmul::primitive_desc pd(matmul::desc(a, b, c), attr, eng);
    memory am(a, eng), bm(b, eng), cm(c, eng);
    fill_probe_values(am);
    fill_probe_values(bm);
    std::memset(cm.get_data_handle(), 0, c.get_size());
    matmul prim(pd);
    double best = 1e9;
    for (int r = 0; r < 20; r++) {
        auto t0 = std::chrono::steady_clock::now();
        prim.execute(st, {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}});
        st.wait();
        double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
        if (us < best) best = us;
    }
    std::printf("%-6s M%4ld K%6ld N%5ld %s %-24s %7.1f µs/sample %5.0f GFLOP/s\n", name, M, K, N, transA ? "Aᵀ" : "A ",
                pd.impl_info_str(), best / samples, 2.0 * M * K * N / best / 1e3);
}

int main() {
    const int S = 128;   // samples per call
    struct { const char *name; long oc, spatial, ick; } shapes[] = {   // M = oc, K = S·oh·ow, N = ic·k·k
        {"D.2", 32, 256, 512}, {"D.4", 64, 256, 288}, {"D.6", 64, 64, 1024}, {"D.8", 128, 64, 576},
        {"D.10", 128, 16, 2048}, {"D.12", 256, 16, 1152}, {"G.4m", 256, 16, 2048}, {"G.7m", 128, 64, 1024}, {"G.10m", 64, 256, 512}};
    for (auto &s : shapes)
        for (bool t : {false, true}) run(s.name, s.oc, S * s.spatial, s.ick, t, S);
}
