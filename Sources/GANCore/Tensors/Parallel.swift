import Dispatch
#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// Splits work across the machine's cores with one worker per core.
///
/// BLAS runs single-threaded inside each worker (`configureBLASThreads`), so the number of busy
/// threads never exceeds the number of cores.
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
            nonisolated(unsafe) let body = body
            DispatchQueue.concurrentPerform(iterations: workers) { w in
                let lo = count * w / workers, hi = count * (w + 1) / workers
                if lo < hi { body(lo..<hi, w) }
            }
        }
    }
}
