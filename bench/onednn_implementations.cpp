// Lists every implementation oneDNN 2.x offers for a bfloat16 convolution's backward-weights pass and times each
// (best of 20 on 64-sample calls, inputs filled with bfloat16 values, in µs per sample) — to see whether another
// implementation than the one oneDNN picks first would be faster for a shape (docs/performance.md "Session 14").
//
//     g++ -O2 bench/onednn_implementations.cpp -o /tmp/onednn_implementations -ldnnl
//     OMP_NUM_THREADS=2 OMP_WAIT_POLICY=passive /tmp/onednn_implementations
//
// The reference implementation (`ref:any`) is listed last and is ~300× slower; it is skipped.
#include "onednn_probe_fill.h"
#include <oneapi/dnnl/dnnl.hpp>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>

using namespace dnnl;
using tag = memory::format_tag;
using dt = memory::data_type;

static void shape(const char *name, int n, int c, int h, int o, int k, int s, int p) {
    engine eng(engine::kind::cpu, 0);
    stream st(eng);
    const int oh = (h + 2 * p - k) / s + 1;
    memory::desc x({n, c, h, h}, dt::bf16, tag::any), y({n, o, oh, oh}, dt::bf16, tag::any);
    memory::desc w({o, c, k, k}, dt::bf16, tag::any), dw({o, c, k, k}, dt::f32, tag::any), b({o}, dt::f32, tag::x);
    // As the shim makes them: the forward pass is the hint, the weight gradient is float32.
    // The descriptors must outlive the primitive descriptor: its iterator (`next_impl`) reads them.
    convolution_forward::desc fd(prop_kind::forward_training, algorithm::convolution_direct, x, w, b, y, {s, s}, {p, p}, {p, p});
    convolution_forward::primitive_desc fpd(fd, eng);
    convolution_backward_weights::desc bd(algorithm::convolution_direct, x, dw, b, y, {s, s}, {p, p}, {p, p});
    convolution_backward_weights::primitive_desc pd(bd, eng, fpd);
    do {
        if (std::strncmp(pd.impl_info_str(), "ref", 3) == 0) continue;
        memory xm(pd.src_desc(), eng), dym(pd.diff_dst_desc(), eng), dwm(pd.diff_weights_desc(), eng), dbm(b, eng);
        fill_probe_values(xm);
        fill_probe_values(dym);
        convolution_backward_weights prim(pd);
        double best = 1e9;
        for (int r = 0; r < 20; r++) {
            auto t0 = std::chrono::steady_clock::now();
            prim.execute(st, {{DNNL_ARG_SRC, xm}, {DNNL_ARG_DIFF_DST, dym}, {DNNL_ARG_DIFF_WEIGHTS, dwm}, {DNNL_ARG_DIFF_BIAS, dbm}});
            st.wait();
            best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
        }
        std::printf("%-26s %-28s %7.1f µs/sample\n", name, pd.impl_info_str(), best * 1e6 / n);
    } while (pd.next_impl());
}

int main() {
    const int n = 64;  // KernelSettings.oneDNNChunk
    shape("D.2 4x4 s2 32->32 @32", n, 32, 32, 32, 4, 2, 1);
    shape("D.8 3x3 64->128 @8", n, 64, 8, 128, 3, 1, 1);
    shape("D.10 4x4 s2 128->128 @8", n, 128, 8, 128, 4, 2, 1);
    shape("G.4 mirror 128->256 @8", n, 128, 8, 256, 4, 2, 1);
    shape("G.10 mirror 32->64 @32", n, 32, 32, 64, 4, 2, 1);
}
