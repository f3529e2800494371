// MPI for cifar-gan, loaded at run time: the package builds without MPI headers or libraries, and the same binary
// joins an `mpirun` job where Open MPI (libmpi.so.40) is installed. Only what the toolkit uses is wrapped; the
// shim exists because MPI's handles (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM, …) are macros that Swift cannot import.
#ifndef MPI_SHIM_H
#define MPI_SHIM_H

#ifdef __cplusplus
extern "C" {
#endif

/// The rank and size an MPI launcher gave this process in its environment (Open MPI's OMPI_COMM_WORLD_*, PMIx's or
/// PMI's variables), without loading MPI: size 1 and rank 0 when started without one. Also the ranks on this machine.
int mpi_shim_launched_size(void);
int mpi_shim_launched_rank(void);
int mpi_shim_launched_local_size(void);

/// Loads Open MPI and calls MPI_Init_thread (errors returned, not fatal). 0 on success; else see mpi_shim_error.
int mpi_shim_init(void);
const char *mpi_shim_error(void);
int mpi_shim_rank(void);
int mpi_shim_size(void);

/// In place across all ranks: the sum (op 0) or the maximum (op 1). 0 on success, else MPI's error code.
int mpi_shim_allreduce_float(float *buffer, long count, int op);
int mpi_shim_allreduce_double(double *buffer, long count, int op);
/// `bytes` bytes from `root` to every rank.
int mpi_shim_broadcast(void *buffer, long bytes, int root);
int mpi_shim_barrier(void);
/// Ends the whole job (every rank) with this exit code: the way out when one rank cannot go on.
void mpi_shim_abort(int code);
void mpi_shim_finalize(void);

#ifdef __cplusplus
}
#endif
#endif
