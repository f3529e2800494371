// See include/onednn_convolution.h. Every oneDNN entry point is looked up with dlsym, so the library is a
// run-time option: the package builds and runs (on its BLAS kernels) where oneDNN is not installed.
#define _GNU_SOURCE
#include "onednn_convolution.h"
#include <stdlib.h>
#include <string.h>

// The 2.x C API (operation descriptors); oneDNN 3 replaced it, so other versions build the stubs below.
#if defined(__linux__) && !defined(CIFAR_GAN_WITHOUT_ONEDNN) && __has_include(<oneapi/dnnl/dnnl_version.h>)
#include <oneapi/dnnl/dnnl_version.h>
#if DNNL_VERSION_MAJOR == 2
#define HAVE_ONEDNN_2 1
#endif
#endif

#if HAVE_ONEDNN_2
#include <dlfcn.h>
#include <pthread.h>
#include <sys/mman.h>
#include <stdio.h>
#include <oneapi/dnnl/dnnl.h>

#define ONEDNN_FUNCTIONS(X) \
    X(dnnl_engine_create) X(dnnl_stream_create) X(dnnl_stream_wait) X(dnnl_memory_desc_init_by_tag) \
    X(dnnl_memory_desc_equal) X(dnnl_memory_desc_get_size) X(dnnl_memory_create) X(dnnl_memory_destroy) X(dnnl_memory_set_data_handle) \
    X(dnnl_convolution_forward_desc_init) X(dnnl_convolution_backward_data_desc_init) \
    X(dnnl_convolution_backward_weights_desc_init) X(dnnl_primitive_desc_create) \
    X(dnnl_primitive_desc_query_md) X(dnnl_primitive_desc_destroy) \
    X(dnnl_reorder_primitive_desc_create) X(dnnl_primitive_create) X(dnnl_primitive_execute) \
    X(dnnl_primitive_destroy) X(dnnl_primitive_attr_create) X(dnnl_primitive_attr_destroy) \
    X(dnnl_primitive_attr_set_post_ops) X(dnnl_post_ops_create) X(dnnl_post_ops_destroy) X(dnnl_post_ops_append_eltwise) \
    X(dnnl_eltwise_forward_desc_init) X(dnnl_get_effective_cpu_isa)

#define DECLARE(f) static __typeof__(&f) call_##f;
ONEDNN_FUNCTIONS(DECLARE)
#define D(f) call_##f

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
// Set by the first onednn_available call; other entry points load with these defaults if they come first.
static int load_threads = 0, load_shared_team = 1;
static int loaded = 0;
static char reason[256] = "";
static dnnl_engine_t engine;
static dnnl_stream_t stream;

static void load(void) {
    // OpenMP reads its settings when the library loads: size its team like GANCore's workers unless the
    // user chose otherwise.
    if (load_threads > 0 && !getenv("OMP_NUM_THREADS")) {
        char n[16]; snprintf(n, sizeof n, "%d", load_threads); setenv("OMP_NUM_THREADS", n, 0);
    }
    // When GANCore's workers are other threads (Dispatch's), they use the cores between oneDNN calls, and OpenMP's
    // default of spinning after each parallel region would take them away (measured: 13% slower training). On one
    // shared team that spinning is what keeps the threads ready for the next region: libgomp's default stays.
    if (!load_shared_team) setenv("OMP_WAIT_POLICY", "passive", 0);
    void *lib = dlopen("libdnnl.so.2", RTLD_NOW | RTLD_LOCAL);
    if (!lib) { snprintf(reason, sizeof reason, "cannot load libdnnl.so.2: %s", dlerror()); return; }
#define LOOKUP(f) if (!(call_##f = (__typeof__(&f))dlsym(lib, #f))) { snprintf(reason, sizeof reason, "libdnnl.so.2 lacks %s", #f); return; }
    ONEDNN_FUNCTIONS(LOOKUP)
    if (D(dnnl_engine_create)(&engine, dnnl_cpu, 0) != dnnl_success ||
        D(dnnl_stream_create)(&stream, engine, dnnl_stream_default_flags) != dnnl_success) {
        snprintf(reason, sizeof reason, "oneDNN could not create a CPU engine"); return;
    }
    loaded = 1;
}

static int ensure_loaded(void) {
    pthread_once(&load_once, load);
    return loaded;
}

int onednn_available(int threads, int shared_team) {
    load_threads = threads;
    load_shared_team = shared_team;
    return ensure_loaded();
}

const char *onednn_unavailable_reason(void) { return reason; }

// libgomp's entry points, found in the copy libdnnl.so.2 brought in (RTLD_NOLOAD: only if it is already there).
static void (*gomp_parallel)(void (*)(void *), void *, unsigned, unsigned);
static int (*omp_thread_num)(void);
static int (*omp_team_size)(void);
static pthread_once_t gomp_once = PTHREAD_ONCE_INIT;

static void load_gomp(void) {
    void *lib = dlopen("libgomp.so.1", RTLD_NOW | RTLD_NOLOAD);
    if (!lib) return;
    omp_thread_num = (int (*)(void))dlsym(lib, "omp_get_thread_num");
    omp_team_size = (int (*)(void))dlsym(lib, "omp_get_num_threads");
    if (omp_thread_num && omp_team_size)
        gomp_parallel = (void (*)(void (*)(void *), void *, unsigned, unsigned))dlsym(lib, "GOMP_parallel");
}

struct parallel_job { onednn_parallel_body body; void *context; int workers; };

static void parallel_trampoline(void *data) {
    const struct parallel_job *job = data;
    for (int w = omp_thread_num(), n = omp_team_size(); w < job->workers; w += n) job->body(job->context, w);
}

int onednn_parallel_for(int workers, onednn_parallel_body body, void *context) {
    if (!loaded) return 0;
    pthread_once(&gomp_once, load_gomp);
    if (!gomp_parallel) return 0;
    struct parallel_job job = { body, context, workers };
    gomp_parallel(parallel_trampoline, &job, (unsigned)workers, 0);
    return 1;
}

int onednn_native_bf16(void) {
    if (!ensure_loaded()) return 0;
    // The ISA values nest (each includes the bits of those below it), so a mask test asks "at least".
    return (D(dnnl_get_effective_cpu_isa)() & dnnl_cpu_isa_avx512_core_bf16) == dnnl_cpu_isa_avx512_core_bf16;
}

// Buffers in oneDNN's layouts live only during one call, so all convolutions share one arena with a slot
// per role (input-sized, output-sized, weight-sized), grown on demand: memory stays at one layer's worth.
enum { SLOT_INPUT, SLOT_OUTPUT, SLOT_WEIGHT, SLOT_COUNT };
static void *arena[SLOT_COUNT];
static size_t arena_bytes[SLOT_COUNT];
static pthread_mutex_t arena_lock = PTHREAD_MUTEX_INITIALIZER;  // held for each call

static void *arena_slot(int slot, size_t bytes) {
    if (arena_bytes[slot] < bytes) {
        free(arena[slot]);
        // Large slots on transparent huge pages, like GANCore's own buffers (see FloatStorage).
        const size_t huge = (size_t)2 << 20;
        if (bytes >= 2 * huge) {
            const size_t rounded = (bytes + huge - 1) / huge * huge;
            arena[slot] = aligned_alloc(huge, rounded);
            if (arena[slot]) (void)madvise(arena[slot], rounded, MADV_HUGEPAGE);
        } else {
            arena[slot] = aligned_alloc(64, (bytes + 63) / 64 * 64);
        }
        arena_bytes[slot] = arena[slot] ? bytes : 0;
    }
    return arena[slot];
}

/// A caller's plain-layout buffer and the primitive's own layout for it, with the reorder between them.
typedef struct {
    dnnl_memory_t user;        // wraps the caller's pointer, set per call
    dnnl_memory_t inner;       // the primitive's layout (== user when they agree), backed by an arena slot
    dnnl_primitive_t reorder;  // user → inner for inputs, inner → user for outputs; NULL when they agree
    int is_output, slot;
    size_t inner_bytes;
} port;

static dnnl_status_t port_init(port *p, const dnnl_memory_desc_t *user_md, const dnnl_memory_desc_t *inner_md,
                               int is_output, int slot) {
    dnnl_status_t s;
    memset(p, 0, sizeof *p);
    p->is_output = is_output; p->slot = slot;
    if ((s = D(dnnl_memory_create)(&p->user, user_md, engine, DNNL_MEMORY_NONE)) != dnnl_success) return s;
    if (D(dnnl_memory_desc_equal)(user_md, inner_md)) { p->inner = p->user; return dnnl_success; }
    p->inner_bytes = D(dnnl_memory_desc_get_size)(inner_md);
    if ((s = D(dnnl_memory_create)(&p->inner, inner_md, engine, DNNL_MEMORY_NONE)) != dnnl_success) return s;
    dnnl_primitive_desc_t pd;
    s = is_output ? D(dnnl_reorder_primitive_desc_create)(&pd, inner_md, engine, user_md, engine, NULL)
                  : D(dnnl_reorder_primitive_desc_create)(&pd, user_md, engine, inner_md, engine, NULL);
    if (s != dnnl_success) return s;
    s = D(dnnl_primitive_create)(&p->reorder, pd);
    D(dnnl_primitive_desc_destroy)(pd);
    return s;
}

static void port_destroy(port *p) {
    if (p->reorder) D(dnnl_primitive_destroy)(p->reorder);
    if (p->inner && p->inner != p->user) D(dnnl_memory_destroy)(p->inner);
    if (p->user) D(dnnl_memory_destroy)(p->user);
}

/// Points the port at the caller's buffer; for an input, brings it into the primitive's layout.
static dnnl_status_t port_bind(port *p, const float *data) {
    dnnl_status_t s = D(dnnl_memory_set_data_handle)(p->user, (void *)data);
    if (s != dnnl_success || !p->reorder) return s;
    void *inner = arena_slot(p->slot, p->inner_bytes);
    if (!inner) return dnnl_out_of_memory;
    if ((s = D(dnnl_memory_set_data_handle)(p->inner, inner)) != dnnl_success || p->is_output) return s;
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, p->user}, {DNNL_ARG_TO, p->inner}};
    return D(dnnl_primitive_execute)(p->reorder, stream, 2, args);
}

/// For an output: copies the primitive's result into the caller's buffer.
static dnnl_status_t port_finish(port *p) {
    if (!p->reorder) return dnnl_success;
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, p->inner}, {DNNL_ARG_TO, p->user}};
    return D(dnnl_primitive_execute)(p->reorder, stream, 2, args);
}

struct onednn_convolution {
    int out_height, out_width, winograd;
    size_t weight_count, bias_count;
    dnnl_primitive_t forward, backward_data, backward_weights;
    // The LeakyReLU as its own pass over y, in place, where the forward is Winograd (which takes no post-op).
    dnnl_primitive_t activation;
    dnnl_memory_t bias;  // plain [out], bound per call
    port fwd_x, fwd_w, fwd_y;
    port bd_dy, bd_w, bd_dx;
    port bw_x, bw_dy, bw_dw;
    dnnl_memory_t bw_db;
    float *dw_scratch, *db_scratch;  // oneDNN overwrites; PyTorch's .grad accumulates
};

#define TRY(x) do { if ((x) != dnnl_success) goto fail; } while (0)

static dnnl_format_tag_t activation_tag(int block) {
    return block == 0 ? dnnl_nchw : block == 8 ? dnnl_nChw8c : block == 16 ? dnnl_nChw16c : dnnl_format_tag_undef;
}

int onednn_preferred_channel_block(void) {
    if (!ensure_loaded()) return 0;
    // Ask for the layout of a typical discriminator convolution's output (64 → 64 channels, 3×3, 16×16).
    dnnl_dims_t x_dims = {16, 64, 16, 16}, w_dims = {64, 64, 3, 3}, b_dims = {64}, strides = {1, 1}, pad = {1, 1};
    dnnl_memory_desc_t x_any, w_any, b_md, y_any;
    dnnl_convolution_desc_t fd;
    dnnl_primitive_desc_t pd;
    if (D(dnnl_memory_desc_init_by_tag)(&x_any, 4, x_dims, dnnl_f32, dnnl_format_tag_any) != dnnl_success ||
        D(dnnl_memory_desc_init_by_tag)(&y_any, 4, x_dims, dnnl_f32, dnnl_format_tag_any) != dnnl_success ||
        D(dnnl_memory_desc_init_by_tag)(&w_any, 4, w_dims, dnnl_f32, dnnl_format_tag_any) != dnnl_success ||
        D(dnnl_memory_desc_init_by_tag)(&b_md, 1, b_dims, dnnl_f32, dnnl_x) != dnnl_success ||
        D(dnnl_convolution_forward_desc_init)(&fd, dnnl_forward_training, dnnl_convolution_direct, &x_any, &w_any,
                                             &b_md, &y_any, strides, pad, pad) != dnnl_success ||
        D(dnnl_primitive_desc_create)(&pd, &fd, NULL, engine, NULL) != dnnl_success) return 0;
    const dnnl_memory_desc_t *chosen = D(dnnl_primitive_desc_query_md)(pd, dnnl_query_dst_md, 0);
    int block = 0;
    for (int b = 8; b <= 16; b += 8) {
        dnnl_memory_desc_t md;
        if (D(dnnl_memory_desc_init_by_tag)(&md, 4, x_dims, dnnl_f32, activation_tag(b)) == dnnl_success &&
            D(dnnl_memory_desc_equal)(&md, chosen)) block = b;
    }
    D(dnnl_primitive_desc_destroy)(pd);
    return block;
}

onednn_convolution *onednn_convolution_create(int batch, int in_channels, int height, int width,
                                              int out_channels, int kernel, int stride, int padding,
                                              int leaky_relu, float negative_slope,
                                              int input_block, int output_block) {
    return onednn_convolution_create_general(batch, in_channels, height, width, out_channels, kernel, kernel, stride,
                                             padding, padding, leaky_relu, negative_slope, input_block, output_block,
                                             ONEDNN_TRAINING);
}

onednn_convolution *onednn_convolution_create_general(int batch, int in_channels, int height, int width,
                                                      int out_channels, int kernel_height, int kernel_width, int stride,
                                                      int padding_height, int padding_width,
                                                      int leaky_relu, float negative_slope,
                                                      int input_block, int output_block, unsigned options) {
    if (!ensure_loaded()) return NULL;
    const int training = (options & ONEDNN_TRAINING) != 0, bf16 = (options & ONEDNN_BF16) != 0;
    const int x_bf16 = (options & ONEDNN_BF16_INPUT_HANDOFF) != 0, y_bf16 = (options & ONEDNN_BF16_OUTPUT_HANDOFF) != 0;
    dnnl_format_tag_t x_tag = activation_tag(input_block), y_tag = activation_tag(output_block);
    if (x_tag == dnnl_format_tag_undef || y_tag == dnnl_format_tag_undef) return NULL;
    if ((x_bf16 && (!bf16 || input_block == 0)) || (y_bf16 && (!bf16 || output_block == 0))) return NULL;
    int oh = (height + 2 * padding_height - kernel_height) / stride + 1;
    int ow = (width + 2 * padding_width - kernel_width) / stride + 1;
    if (oh <= 0 || ow <= 0) return NULL;
    onednn_convolution *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    // Declared before the first TRY: its failure path reads them.
    dnnl_primitive_desc_t fpd = NULL, bdpd = NULL, bwpd = NULL;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t post_ops = NULL;
    c->out_height = oh; c->out_width = ow;
    c->weight_count = (size_t)out_channels * in_channels * kernel_height * kernel_width;
    c->bias_count = (size_t)out_channels;
    dnnl_dims_t x_dims = {batch, in_channels, height, width}, y_dims = {batch, out_channels, oh, ow};
    dnnl_dims_t w_dims = {out_channels, in_channels, kernel_height, kernel_width}, b_dims = {out_channels};
    dnnl_dims_t strides = {stride, stride}, pad = {padding_height, padding_width};
    dnnl_memory_desc_t x_user, y_user, w_user, b_md, x_any, y_any, w_any, x_in, y_in, w_in;
    // A bfloat16 hand-over: the caller's buffer is bfloat16, and the pass that writes it (y forward, dx
    // backward-data) writes bfloat16, so no port converts anything.
    TRY(D(dnnl_memory_desc_init_by_tag)(&x_user, 4, x_dims, x_bf16 ? dnnl_bf16 : dnnl_f32, x_tag));
    TRY(D(dnnl_memory_desc_init_by_tag)(&y_user, 4, y_dims, y_bf16 ? dnnl_bf16 : dnnl_f32, y_tag));
    TRY(D(dnnl_memory_desc_init_by_tag)(&w_user, 4, w_dims, dnnl_f32, dnnl_oihw));
    TRY(D(dnnl_memory_desc_init_by_tag)(&b_md, 1, b_dims, dnnl_f32, dnnl_x));
    TRY(D(dnnl_memory_desc_init_by_tag)(&x_any, 4, x_dims, x_bf16 ? dnnl_bf16 : dnnl_f32, dnnl_format_tag_any));
    TRY(D(dnnl_memory_desc_init_by_tag)(&y_any, 4, y_dims, y_bf16 ? dnnl_bf16 : dnnl_f32, dnnl_format_tag_any));
    TRY(D(dnnl_memory_desc_init_by_tag)(&w_any, 4, w_dims, dnnl_f32, dnnl_format_tag_any));
    // What each pass multiplies: in bfloat16 its two inputs (x and w forward, dy and w backward-data, x and dy
    // backward-weights) are bfloat16 copies made by the ports' reorders, while what it writes (y, dx, dw, db) and
    // accumulates stays float32. The caller's buffers are float32 either way.
    const dnnl_data_type_t in_type = bf16 ? dnnl_bf16 : dnnl_f32;
    TRY(D(dnnl_memory_desc_init_by_tag)(&x_in, 4, x_dims, in_type, dnnl_format_tag_any));
    TRY(D(dnnl_memory_desc_init_by_tag)(&y_in, 4, y_dims, in_type, dnnl_format_tag_any));
    TRY(D(dnnl_memory_desc_init_by_tag)(&w_in, 4, w_dims, in_type, dnnl_format_tag_any));

    dnnl_convolution_desc_t fd, bdd, bwd;
    if (leaky_relu) {
        // oneDNN's eltwise_relu with alpha is LeakyReLU: x > 0 ? x : alpha·x.
        TRY(D(dnnl_primitive_attr_create)(&attr));
        TRY(D(dnnl_post_ops_create)(&post_ops));
        TRY(D(dnnl_post_ops_append_eltwise)(post_ops, 1.0f, dnnl_eltwise_relu, negative_slope, 0.0f));
        TRY(D(dnnl_primitive_attr_set_post_ops)(attr, post_ops));
    }
    // Winograd F(4×4, 3×3) where asked for and oneDNN has it (3×3, stride 1, float32, AVX-512): 4× fewer products;
    // else (or when any of the three passes lacks it) the direct algorithm. oneDNN 2.6's Winograd takes no post-op,
    // so a LeakyReLU then runs as a second pass over y (`activation`) — which keeps the activation fused from the
    // caller's side, with y handed over in the blocked layout (the standard CNN's 3×3 D layers: 44.4 → 33.8 µs per
    // sample forward for 32→64 at 16×16, docs/performance.md "Session 14").
    const int try_winograd = (options & ONEDNN_WINOGRAD) && kernel_height == 3 && kernel_width == 3 && stride == 1;
    struct { dnnl_alg_kind_t algorithm; int post_op; } attempts[3] = {
        {dnnl_convolution_winograd, 1}, {dnnl_convolution_winograd, 0}, {dnnl_convolution_direct, 1}};
    int separate_activation = 0;
    for (int a = try_winograd ? 0 : 2; a < 3 && !fpd; a++) {
        if (a == 1 && !attr) continue;  // the same attempt as the one before
        c->winograd = attempts[a].algorithm == dnnl_convolution_winograd;
        separate_activation = leaky_relu && !attempts[a].post_op;
        dnnl_alg_kind_t alg = attempts[a].algorithm;
        TRY(D(dnnl_convolution_forward_desc_init)(&fd, training ? dnnl_forward_training : dnnl_forward_inference,
                                                 alg, &x_in, &w_in, &b_md, &y_any, strides, pad, pad));
        if (training) {
            // Backward-data transforms tiles of dy, one per output channel: with a 3-channel result (the last layer
            // of G) that is all overhead — 84 µs per sample on Winograd against 45 directly for 32→3 at 32×32.
            const dnnl_alg_kind_t data_alg = out_channels < 16 ? dnnl_convolution_direct : alg;
            TRY(D(dnnl_convolution_backward_data_desc_init)(&bdd, data_alg, &x_any, &w_in, &y_in, strides, pad, pad));
            TRY(D(dnnl_convolution_backward_weights_desc_init)(&bwd, alg, &x_in, &w_any, &b_md, &y_in, strides, pad, pad));
        }
        if (D(dnnl_primitive_desc_create)(&fpd, &fd, attempts[a].post_op ? attr : NULL, engine, NULL) != dnnl_success) {
            fpd = NULL; continue;
        }
        if (training && (D(dnnl_primitive_desc_create)(&bdpd, &bdd, NULL, engine, fpd) != dnnl_success ||
                         D(dnnl_primitive_desc_create)(&bwpd, &bwd, NULL, engine, fpd) != dnnl_success)) {
            if (bdpd) D(dnnl_primitive_desc_destroy)(bdpd);
            D(dnnl_primitive_desc_destroy)(fpd);
            fpd = bdpd = NULL;
        }
    }
    if (!fpd) goto fail;


#define MD(pd, what) D(dnnl_primitive_desc_query_md)(pd, what, 0)
    TRY(port_init(&c->fwd_x, &x_user, MD(fpd, dnnl_query_src_md), 0, SLOT_INPUT));
    TRY(port_init(&c->fwd_w, &w_user, MD(fpd, dnnl_query_weights_md), 0, SLOT_WEIGHT));
    TRY(port_init(&c->fwd_y, &y_user, MD(fpd, dnnl_query_dst_md), 1, SLOT_OUTPUT));
    TRY(D(dnnl_memory_create)(&c->bias, &b_md, engine, DNNL_MEMORY_NONE));
    TRY(D(dnnl_primitive_create)(&c->forward, fpd));
    if (separate_activation) {
        // In place on the primitive's own y (before any reorder into the caller's layout); inference: oneDNN
        // keeps nothing for a backward pass, which GANCore's layers do themselves.
        dnnl_eltwise_desc_t ed;
        dnnl_primitive_desc_t epd;
        TRY(D(dnnl_eltwise_forward_desc_init)(&ed, dnnl_forward_inference, dnnl_eltwise_relu,
                                              MD(fpd, dnnl_query_dst_md), negative_slope, 0.0f));
        TRY(D(dnnl_primitive_desc_create)(&epd, &ed, NULL, engine, NULL));
        dnnl_status_t made = D(dnnl_primitive_create)(&c->activation, epd);
        D(dnnl_primitive_desc_destroy)(epd);
        TRY(made);
    }
    if (!training) {   // inference only: no backward primitives, no gradient scratch
        D(dnnl_primitive_desc_destroy)(fpd);
        if (post_ops) D(dnnl_post_ops_destroy)(post_ops);
        if (attr) D(dnnl_primitive_attr_destroy)(attr);
        return c;
    }
    TRY(port_init(&c->bd_dy, &y_user, MD(bdpd, dnnl_query_diff_dst_md), 0, SLOT_OUTPUT));
    TRY(port_init(&c->bd_w, &w_user, MD(bdpd, dnnl_query_weights_md), 0, SLOT_WEIGHT));
    TRY(port_init(&c->bd_dx, &x_user, MD(bdpd, dnnl_query_diff_src_md), 1, SLOT_INPUT));
    TRY(port_init(&c->bw_x, &x_user, MD(bwpd, dnnl_query_src_md), 0, SLOT_INPUT));
    TRY(port_init(&c->bw_dy, &y_user, MD(bwpd, dnnl_query_diff_dst_md), 0, SLOT_OUTPUT));
    TRY(port_init(&c->bw_dw, &w_user, MD(bwpd, dnnl_query_diff_weights_md), 1, SLOT_WEIGHT));
    c->dw_scratch = malloc(c->weight_count * sizeof(float));
    c->db_scratch = malloc(c->bias_count * sizeof(float));
    if (!c->dw_scratch || !c->db_scratch) goto fail;
    TRY(D(dnnl_memory_create)(&c->bw_db, &b_md, engine, c->db_scratch));
    TRY(D(dnnl_primitive_create)(&c->backward_data, bdpd));
    TRY(D(dnnl_primitive_create)(&c->backward_weights, bwpd));
    D(dnnl_primitive_desc_destroy)(fpd); D(dnnl_primitive_desc_destroy)(bdpd); D(dnnl_primitive_desc_destroy)(bwpd);
    if (post_ops) D(dnnl_post_ops_destroy)(post_ops);
    if (attr) D(dnnl_primitive_attr_destroy)(attr);
    return c;
fail:
    if (post_ops) D(dnnl_post_ops_destroy)(post_ops);
    if (attr) D(dnnl_primitive_attr_destroy)(attr);
    if (fpd) D(dnnl_primitive_desc_destroy)(fpd);
    if (bdpd) D(dnnl_primitive_desc_destroy)(bdpd);
    if (bwpd) D(dnnl_primitive_desc_destroy)(bwpd);
    onednn_convolution_destroy(c);
    return NULL;
}

void onednn_convolution_destroy(onednn_convolution *c) {
    if (!c) return;
    if (c->forward) D(dnnl_primitive_destroy)(c->forward);
    if (c->backward_data) D(dnnl_primitive_destroy)(c->backward_data);
    if (c->backward_weights) D(dnnl_primitive_destroy)(c->backward_weights);
    if (c->activation) D(dnnl_primitive_destroy)(c->activation);
    port *ports[] = {&c->fwd_x, &c->fwd_w, &c->fwd_y, &c->bd_dy, &c->bd_w, &c->bd_dx, &c->bw_x, &c->bw_dy, &c->bw_dw};
    for (size_t i = 0; i < sizeof ports / sizeof *ports; i++) port_destroy(ports[i]);
    if (c->bias) D(dnnl_memory_destroy)(c->bias);
    if (c->bw_db) D(dnnl_memory_destroy)(c->bw_db);
    free(c->dw_scratch); free(c->db_scratch); free(c);
}

int onednn_convolution_output_height(const onednn_convolution *c) { return c->out_height; }
int onednn_convolution_output_width(const onednn_convolution *c) { return c->out_width; }
int onednn_convolution_is_winograd(const onednn_convolution *c) { return c->winograd; }

#define CHECK(x) do { dnnl_status_t s_ = (x); if (s_ != dnnl_success) return (int)s_; } while (0)

static int forward_unlocked(onednn_convolution *c, const float *x, const float *weight, const float *bias, float *y) {
    static float zeros[4096];
    CHECK(port_bind(&c->fwd_x, x));
    CHECK(port_bind(&c->fwd_w, weight));
    CHECK(port_bind(&c->fwd_y, y));
    // A convolution without bias passes zeros (the primitive was made with one).
    if (!bias && c->bias_count > sizeof zeros / sizeof *zeros) return (int)dnnl_invalid_arguments;
    CHECK(D(dnnl_memory_set_data_handle)(c->bias, (void *)(bias ? bias : zeros)));
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, c->fwd_x.inner}, {DNNL_ARG_WEIGHTS, c->fwd_w.inner},
                               {DNNL_ARG_BIAS, c->bias}, {DNNL_ARG_DST, c->fwd_y.inner}};
    CHECK(D(dnnl_primitive_execute)(c->forward, stream, 4, args));
    if (c->activation) {
        dnnl_exec_arg_t in_place[2] = {{DNNL_ARG_SRC, c->fwd_y.inner}, {DNNL_ARG_DST, c->fwd_y.inner}};
        CHECK(D(dnnl_primitive_execute)(c->activation, stream, 2, in_place));
    }
    CHECK(port_finish(&c->fwd_y));
    return (int)D(dnnl_stream_wait)(stream);
}

static int backward_data_unlocked(onednn_convolution *c, const float *dy, const float *weight, float *dx) {
    CHECK(port_bind(&c->bd_dy, dy));
    CHECK(port_bind(&c->bd_w, weight));
    CHECK(port_bind(&c->bd_dx, dx));
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_DIFF_DST, c->bd_dy.inner}, {DNNL_ARG_WEIGHTS, c->bd_w.inner},
                               {DNNL_ARG_DIFF_SRC, c->bd_dx.inner}};
    CHECK(D(dnnl_primitive_execute)(c->backward_data, stream, 3, args));
    CHECK(port_finish(&c->bd_dx));
    return (int)D(dnnl_stream_wait)(stream);
}

static int backward_weights_unlocked(onednn_convolution *c, const float *x, const float *dy,
                                        float *weight_grad, float *bias_grad) {
    CHECK(port_bind(&c->bw_x, x));
    CHECK(port_bind(&c->bw_dy, dy));
    CHECK(port_bind(&c->bw_dw, c->dw_scratch));
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, c->bw_x.inner}, {DNNL_ARG_DIFF_DST, c->bw_dy.inner},
                               {DNNL_ARG_DIFF_WEIGHTS, c->bw_dw.inner}, {DNNL_ARG_DIFF_BIAS, c->bw_db}};
    CHECK(D(dnnl_primitive_execute)(c->backward_weights, stream, 4, args));
    CHECK(port_finish(&c->bw_dw));
    CHECK(D(dnnl_stream_wait)(stream));
    for (size_t i = 0; i < c->weight_count; i++) weight_grad[i] += c->dw_scratch[i];
    if (bias_grad) for (size_t i = 0; i < c->bias_count; i++) bias_grad[i] += c->db_scratch[i];
    return 0;
}

// Calls share the arena, so they take turns (GANCore calls from one thread at a time anyway).
int onednn_convolution_forward(onednn_convolution *c, const float *x, const float *weight, const float *bias, float *y) {
    pthread_mutex_lock(&arena_lock);
    int status = forward_unlocked(c, x, weight, bias, y);
    pthread_mutex_unlock(&arena_lock);
    return status;
}

int onednn_convolution_backward_data(onednn_convolution *c, const float *dy, const float *weight, float *dx) {
    pthread_mutex_lock(&arena_lock);
    int status = backward_data_unlocked(c, dy, weight, dx);
    pthread_mutex_unlock(&arena_lock);
    return status;
}

int onednn_convolution_backward_weights(onednn_convolution *c, const float *x, const float *dy,
                                        float *weight_grad, float *bias_grad) {
    pthread_mutex_lock(&arena_lock);
    int status = backward_weights_unlocked(c, x, dy, weight_grad, bias_grad);
    pthread_mutex_unlock(&arena_lock);
    return status;
}

#else  // no oneDNN headers at build time: every entry reports "unavailable"

int onednn_available(int threads, int shared_team) { (void)threads; (void)shared_team; return 0; }
int onednn_parallel_for(int workers, onednn_parallel_body body, void *context) { (void)workers; (void)body; (void)context; return 0; }
const char *onednn_unavailable_reason(void) { return "built without oneDNN 2.x headers (install libdnnl-dev 2.x and rebuild)"; }
onednn_convolution *onednn_convolution_create(int b, int i, int h, int w, int o, int k, int s, int p, int l, float a,
                                              int xb, int yb) {
    (void)b; (void)i; (void)h; (void)w; (void)o; (void)k; (void)s; (void)p; (void)l; (void)a; (void)xb; (void)yb;
    return NULL;
}
onednn_convolution *onednn_convolution_create_general(int b, int i, int h, int w, int o, int kh, int kw, int s, int ph,
                                                      int pw, int l, float a, int xb, int yb, unsigned options) {
    (void)b; (void)i; (void)h; (void)w; (void)o; (void)kh; (void)kw; (void)s; (void)ph; (void)pw; (void)l; (void)a;
    (void)xb; (void)yb; (void)options;
    return NULL;
}
int onednn_preferred_channel_block(void) { return 0; }
int onednn_native_bf16(void) { return 0; }
void onednn_convolution_destroy(onednn_convolution *c) { (void)c; }
int onednn_convolution_output_height(const onednn_convolution *c) { (void)c; return 0; }
int onednn_convolution_output_width(const onednn_convolution *c) { (void)c; return 0; }
int onednn_convolution_is_winograd(const onednn_convolution *c) { (void)c; return 0; }
int onednn_convolution_forward(onednn_convolution *c, const float *x, const float *w, const float *b, float *y) {
    (void)c; (void)x; (void)w; (void)b; (void)y; return -1;
}
int onednn_convolution_backward_data(onednn_convolution *c, const float *dy, const float *w, float *dx) {
    (void)c; (void)dy; (void)w; (void)dx; return -1;
}
int onednn_convolution_backward_weights(onednn_convolution *c, const float *x, const float *dy, float *dw, float *db) {
    (void)c; (void)x; (void)dy; (void)dw; (void)db; return -1;
}
#endif
