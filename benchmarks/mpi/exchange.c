/* The cost of exchanging one step's gradient between ranks on one node, three ways (docs/distributed.md, "Speed"):
 *   1. MPI_Allreduce in place (the all-reduce step);
 *   2. MPI_Reduce_scatter + MPI_Allgatherv (the sharded step's pattern: sum each rank's block, pass the blocks round);
 *   3. an MPI-3 shared window: each rank's gradient lives where its peers can read it; a rank sums its own block
 *      straight from the others' gradients, "updates" it and the others copy it out (no messages at all).
 * Build and run (as root in a container, see docs/distributed.md for the environment):
 *   mpicc -O3 -march=native benchmarks/mpi/exchange.c -o /tmp/exchange && mpirun --oversubscribe -np 2 /tmp/exchange [floats] [rounds]
 * The default size is the reference MNIST net's gradient (784-512-256-10: 535,818 floats). */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int n = argc > 1 ? atoi(argv[1]) : 535818, rounds = argc > 2 ? atoi(argv[2]) : 400;
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Comm node;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
    int *count = malloc(size * sizeof(int)), *offset = malloc(size * sizeof(int));
    for (int r = 0, o = 0; r < size; o += count[r], r++) { count[r] = n / size + (r < n % size); offset[r] = o; }
    float *g = malloc((size_t)n * 4), *p = malloc((size_t)n * 4), *block = malloc((size_t)count[0] * 4);
    for (int i = 0; i < n; i++) { g[i] = 1e-6f * i * (rank + 1); p[i] = 0; }

    MPI_Barrier(MPI_COMM_WORLD);
    double t = MPI_Wtime();
    for (int it = 0; it < rounds; it++) MPI_Allreduce(MPI_IN_PLACE, g, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    double allreduce = (MPI_Wtime() - t) / rounds;

    MPI_Barrier(MPI_COMM_WORLD);
    t = MPI_Wtime();
    for (int it = 0; it < rounds; it++)
    {
        MPI_Reduce_scatter(g, block, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        memcpy(p + offset[rank], block, (size_t)count[rank] * 4);
        MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_FLOAT, p, count, offset, MPI_FLOAT, MPI_COMM_WORLD);
    }
    double scatterGather = (MPI_Wtime() - t) / rounds;

    /* each rank's segment: its gradient (n floats), then a staging copy of its updated block (n floats) */
    float *mine;
    MPI_Win win;
    MPI_Win_allocate_shared((MPI_Aint)n * 4 * 2, 4, MPI_INFO_NULL, node, &mine, &win);
    MPI_Win_lock_all(MPI_MODE_NOCHECK, win);
    float **seg = malloc(size * sizeof(float *));
    for (int r = 0; r < size; r++) { MPI_Aint bytes; int unit; MPI_Win_shared_query(win, r, &bytes, &unit, &seg[r]); }
    for (int i = 0; i < 2 * n; i++) mine[i] = 1e-6f * i;
    double phase[5] = {0};
    MPI_Barrier(node);
    double t0 = MPI_Wtime();
    for (int it = 0; it < rounds; it++)
    {
        double a = MPI_Wtime();
        for (int i = 0; i < n; i++) mine[i] = mine[i] * 0.5f + 1.0f;           /* the backward pass writes the gradient */
        double b = MPI_Wtime();
        MPI_Win_sync(win); MPI_Barrier(node); MPI_Win_sync(win);
        double c = MPI_Wtime();
        float *own = mine + offset[rank];
        for (int q = 0; q < size; q++)                                          /* sum this rank's block from every peer */
            if (q != rank) { float *restrict from = seg[q] + offset[rank]; for (int i = 0; i < count[rank]; i++) own[i] += from[i]; }
        double d = MPI_Wtime();
        float *staged = mine + n + offset[rank];
        for (int i = 0; i < count[rank]; i++) { p[offset[rank] + i] = own[i] * 0.99f; staged[i] = p[offset[rank] + i]; }   /* "update" */
        MPI_Win_sync(win); MPI_Barrier(node); MPI_Win_sync(win);
        double e = MPI_Wtime();
        for (int q = 0; q < size; q++)                                          /* take the peers' updated blocks */
            if (q != rank) memcpy(p + offset[q], seg[q] + n + offset[q], (size_t)count[q] * 4);
        double f = MPI_Wtime();
        phase[0] += b - a; phase[1] += c - b; phase[2] += d - c; phase[3] += e - d; phase[4] += f - e;
    }
    double shared = (MPI_Wtime() - t0) / rounds;   /* the write included: alone (1 rank) it takes about 31 us here, see the phases */
    printf("rank %d: allreduce %.1f us | reduce_scatter+allgatherv %.1f us | shared window, the gradient's write included, %.1f us "
           "(phases: write gradient %.1f, barrier %.1f, sum from peers %.1f, update+barrier %.1f, copy peers' blocks %.1f)\n",
           rank, allreduce * 1e6, scatterGather * 1e6, shared * 1e6, phase[0] / rounds * 1e6, phase[1] / rounds * 1e6,
           phase[2] / rounds * 1e6, phase[3] / rounds * 1e6, phase[4] / rounds * 1e6);
    MPI_Win_unlock_all(win);
    MPI_Win_free(&win);
    MPI_Finalize();
    return 0;
}
