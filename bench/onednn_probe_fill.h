// Shared by the oneDNN probes in bench/: fills a oneDNN memory with values between 0.5 and 1, in bfloat16 or float32
// as its descriptor says. Untouched pages would all be one zero page, and zeros would time a different kernel path.
#pragma once
#include <oneapi/dnnl/dnnl.hpp>
#include <cstddef>
#include <cstdint>

inline void fill_probe_values(dnnl::memory &m) {
    const size_t bytes = m.get_desc().get_size();
    if (m.get_desc().data_type() == dnnl::memory::data_type::bf16) {
        auto *v = static_cast<uint16_t *>(m.get_data_handle());
        for (size_t i = 0; i < bytes / 2; i++) v[i] = 0x3f00 + (i * 2654435761u >> 20) % 128;
    } else {
        auto *v = static_cast<float *>(m.get_data_handle());
        for (size_t i = 0; i < bytes / 4; i++) v[i] = 0.5f + (i * 2654435761u >> 20) % 128 / 256.0f;
    }
}
