import COneDNN
import Dispatch
#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// Splits work across the machine's cores with one worker per core.
///
/// The workers are the threads of oneDNN's OpenMP team where oneDNN is loaded (`onednn_parallel_for`), so that
/// GANCore's loops and oneDNN's convolutions take turns on one set of threads, which wait for the next parallel
/// region by spinning briefly (libgomp's default) instead of sleeping; elsewhere, and with `CIFAR_GAN_OPENMP=0`,
/// Dispatch's pool (`concurrentPerform`), beside which oneDNN's team sleeps between its calls. One team trained
/// 6% (`original`) to 17% (`cnn --conditional`) faster, best of four rounds (docs/performance.md, session 15): two
/// pools woke each other's threads hundreds of times per iteration. BLAS runs single-threaded inside each worker
/// (`configureBLASThreads`), so the number of busy threads never exceeds the number of cores.
///
/// ```swift
/// Parallel.forEachChunk(count: batch) { range, worker in for n in range { process(sample: n, scratch: worker) } }
/// ```
public enum Parallel {
    /// Number of workers; defaults to the active core count (shared by the ranks an MPI launcher started on this
    /// machine), overridable with `CIFAR_GAN_THREADS`.
    nonisolated(unsafe) public static var workerCount: Int = {
        configureBLASThreads()
        if let s = ProcessInfo.processInfo.environment["CIFAR_GAN_THREADS"], let n = Int(s), n > 0 { return n }
        return max(1, ProcessInfo.processInfo.activeProcessorCount / Communicator.launchedLocalSize)
    }()

    /// Whether the workers run on oneDNN's OpenMP team once oneDNN is loaded (`CIFAR_GAN_OPENMP=0`: Dispatch's pool).
    /// Read when oneDNN loads, which sets OpenMP's waiting to match; tests switch it to compare the two.
    nonisolated(unsafe) public static var sharesOpenMPTeam = ProcessInfo.processInfo.environment["CIFAR_GAN_OPENMP"] != "0"

    /// Which threads ran the last parallel call: "OpenMP" or "Dispatch" (nil before the first), for `bench` and tests.
    nonisolated(unsafe) public private(set) static var lastPool: String?

    /// One call's work, passed to the OpenMP team through a C context pointer.
    private struct Job {
        var body: (Range<Int>, Int) -> Void
        var count, workers: Int
        func run(_ w: Int) {
            let lo = count * w / workers, hi = count * (w + 1) / workers
            if lo < hi { body(lo..<hi, w) }
        }
    }

    /// Calls `body(range, worker)` for contiguous slices of `0..<count`, one per worker, in parallel.
    public static func forEachChunk(count: Int, minimumPerWorker: Int = 1,
                                    _ body: (Range<Int>, Int) -> Void) {
        let workers = max(1, min(workerCount, count / max(1, minimumPerWorker)))
        if workers == 1 || count <= 1 {
            body(0..<count, 0)
            return
        }
        withoutActuallyEscaping(body) { body in
            // Workers touch disjoint slices; the caller guarantees that, not the type system.
            nonisolated(unsafe) var job = Job(body: body, count: count, workers: workers)
            // oneDNN's team where it is loaded; the one visible fallback to Dispatch's pool below.
            if sharesOpenMPTeam && withUnsafeMutablePointer(to: &job, { p in
                onednn_parallel_for(Int32(workers), { context, w in context!.assumingMemoryBound(to: Job.self).pointee.run(Int(w)) }, p)
            }) != 0 {
                lastPool = "OpenMP"
                return
            }
            lastPool = "Dispatch"
            nonisolated(unsafe) let shared = job
            DispatchQueue.concurrentPerform(iterations: workers) { w in shared.run(w) }
        }
    }
}
