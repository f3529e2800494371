// See include/mpi_shim.h. Open MPI's handles are the addresses of global objects in libmpi (MPI_COMM_WORLD is
// &ompi_mpi_comm_world, MPI_FLOAT &ompi_mpi_float, …) and MPI_IN_PLACE is (void *)1: its ABI since 1.x, so
// dlsym finds them without the headers.
#define _GNU_SOURCE
#include "mpi_shim.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <dlfcn.h>
#endif

static char error_text[512] = "MPI not initialised";
static int world_rank = 0, world_size = 1, ready = 0;

static int env_int(const char *const *names, int fallback) {
    for (; *names; names++) {
        const char *v = getenv(*names);
        if (v && *v) return atoi(v);
    }
    return fallback;
}

int mpi_shim_launched_size(void) {
    static const char *const names[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "PMI_SIZE", "MPI_LOCALNRANKS", NULL};
    return env_int(names, 1);
}

int mpi_shim_launched_rank(void) {
    static const char *const names[] = {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", NULL};
    return env_int(names, 0);
}

int mpi_shim_launched_local_size(void) {
    static const char *const names[] = {"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", NULL};
    return env_int(names, mpi_shim_launched_size());
}

#if defined(__linux__)
typedef void *handle;
static int (*p_init_thread)(int *, char ***, int, int *);
static int (*p_initialized)(int *);
static int (*p_comm_rank)(handle, int *);
static int (*p_comm_size)(handle, int *);
static int (*p_allreduce)(const void *, void *, int, handle, handle, handle);
static int (*p_bcast)(void *, int, handle, int, handle);
static int (*p_barrier)(handle);
static int (*p_abort)(handle, int);
static int (*p_finalize)(void);
static int (*p_comm_set_errhandler)(handle, handle);
static int (*p_error_string)(int, char *, int *);
static handle comm_world, type_float, type_double, type_byte, op_sum, op_max, errors_return;

static int fail(const char *what, const char *detail) {
    snprintf(error_text, sizeof error_text, "%s%s%s", what, detail ? ": " : "", detail ? detail : "");
    return -1;
}

int mpi_shim_init(void) {
    if (ready) return 0;
    // RTLD_GLOBAL: Open MPI's own plugins (dlopen'ed by libmpi) resolve symbols against it.
    // CIFAR_GAN_MPI_LIBRARY names another library file (a test points it at a missing one).
    const char *names[] = {getenv("CIFAR_GAN_MPI_LIBRARY") ? getenv("CIFAR_GAN_MPI_LIBRARY") : "libmpi.so.40",
                           getenv("CIFAR_GAN_MPI_LIBRARY") ? NULL : "libmpi.so", NULL};
    void *lib = NULL;
    for (int i = 0; names[i] && !lib; i++) lib = dlopen(names[i], RTLD_NOW | RTLD_GLOBAL);
    if (!lib) return fail("cannot load Open MPI (libmpi.so.40)", dlerror());
#define SYM(var, name) if (!(*(void **)&var = dlsym(lib, name))) return fail("libmpi lacks " name, NULL);
    SYM(p_init_thread, "MPI_Init_thread") SYM(p_initialized, "MPI_Initialized") SYM(p_comm_rank, "MPI_Comm_rank")
    SYM(p_comm_size, "MPI_Comm_size") SYM(p_allreduce, "MPI_Allreduce") SYM(p_bcast, "MPI_Bcast")
    SYM(p_barrier, "MPI_Barrier") SYM(p_abort, "MPI_Abort") SYM(p_finalize, "MPI_Finalize")
    SYM(p_comm_set_errhandler, "MPI_Comm_set_errhandler") SYM(p_error_string, "MPI_Error_string")
    SYM(comm_world, "ompi_mpi_comm_world") SYM(type_float, "ompi_mpi_float") SYM(type_double, "ompi_mpi_double")
    SYM(type_byte, "ompi_mpi_byte") SYM(op_sum, "ompi_mpi_op_sum") SYM(op_max, "ompi_mpi_op_max")
    SYM(errors_return, "ompi_mpi_errors_return")
#undef SYM
    int provided = 0, already = 0;
    p_initialized(&already);
    // MPI_THREAD_FUNNELED (1): only the main thread calls MPI; the compute workers never do.
    if (!already && p_init_thread(NULL, NULL, 1, &provided) != 0) return fail("MPI_Init_thread failed", NULL);
    p_comm_set_errhandler(comm_world, errors_return);
    p_comm_rank(comm_world, &world_rank);
    p_comm_size(comm_world, &world_size);
    ready = 1;
    return 0;
}

static int checked(int status) {
    if (status != 0) {
        char text[256] = ""; int n = 0;
        p_error_string(status, text, &n);
        snprintf(error_text, sizeof error_text, "MPI error %d: %s", status, text);
    }
    return status;
}

// Counts above INT_MAX go in pieces (MPI's count is an int).
#define IN_PIECES(type, count, body) \
    for (long done = 0; done < (count);) { long n = (count) - done; if (n > (1L << 30)) n = 1L << 30; \
        int s = (body); if (s != 0) return checked(s); done += n; } return 0

int mpi_shim_allreduce_float(float *b, long count, int op) {
    if (!ready) return -1;
    IN_PIECES(float, count, p_allreduce((void *)1, b + done, (int)n, type_float, op ? op_max : op_sum, comm_world));
}

int mpi_shim_allreduce_double(double *b, long count, int op) {
    if (!ready) return -1;
    IN_PIECES(double, count, p_allreduce((void *)1, b + done, (int)n, type_double, op ? op_max : op_sum, comm_world));
}

int mpi_shim_broadcast(void *buffer, long bytes, int root) {
    if (!ready) return -1;
    IN_PIECES(char, bytes, p_bcast((char *)buffer + done, (int)n, type_byte, root, comm_world));
}

int mpi_shim_barrier(void) { return ready ? checked(p_barrier(comm_world)) : -1; }
void mpi_shim_abort(int code) { if (ready) p_abort(comm_world, code); exit(code); }
void mpi_shim_finalize(void) { if (ready) { p_finalize(); ready = 0; } }
#else
int mpi_shim_init(void) { snprintf(error_text, sizeof error_text, "MPI is supported on Linux only"); return -1; }
int mpi_shim_allreduce_float(float *b, long c, int op) { (void)b; (void)c; (void)op; return -1; }
int mpi_shim_allreduce_double(double *b, long c, int op) { (void)b; (void)c; (void)op; return -1; }
int mpi_shim_broadcast(void *b, long n, int r) { (void)b; (void)n; (void)r; return -1; }
int mpi_shim_barrier(void) { return -1; }
void mpi_shim_abort(int code) { exit(code); }
void mpi_shim_finalize(void) {}
#endif

const char *mpi_shim_error(void) { return error_text; }
int mpi_shim_rank(void) { return world_rank; }
int mpi_shim_size(void) { return world_size; }
