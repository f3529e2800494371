#if canImport(Glibc)
import Glibc
#endif

/// Float storage for tensors and scratch buffers.
///
/// On Linux, buffers of 4 MB or more are aligned to 2 MB and marked for transparent huge pages
/// (`madvise(MADV_HUGEPAGE)`; "madvise" is the kernel's usual THP mode): activations, patch matrices and layout
/// copies are streamed through by the GEMMs' packing and by oneDNN, and with 4 KB pages the TLB misses cost
/// ~2% of a training step (measured first with glibc's `glibc.malloc.hugetlb=1` tunable, then with this).
/// Elsewhere it is Swift's allocator.
///
/// ```swift
/// let p = FloatStorage.allocate(1 << 20)
/// defer { FloatStorage.deallocate(p) }
/// ```
enum FloatStorage {
    /// Buffers from this size (bytes) on get huge-page backing.
    static let hugePageThreshold = 4 << 20
    static let hugePageSize = 2 << 20

    /// Uninitialised storage for `count` floats (at least one).
    static func allocate(_ count: Int) -> UnsafeMutablePointer<Float> {
        let n = max(count, 1)
        #if os(Linux)
        let bytes = n * MemoryLayout<Float>.stride
        var raw: UnsafeMutableRawPointer?
        if bytes >= hugePageThreshold {
            if posix_memalign(&raw, hugePageSize, bytes) == 0, let raw {
                // Advice only: without THP support the call fails and the buffer keeps small pages.
                _ = madvise(raw, (bytes + 4095) & ~4095, MADV_HUGEPAGE)
            }
        } else {
            raw = malloc(bytes)
        }
        guard let raw else { fatalError("out of memory allocating \(bytes) bytes") }
        return raw.bindMemory(to: Float.self, capacity: n)
        #else
        return .allocate(capacity: n)
        #endif
    }

    /// Frees storage from `allocate`.
    static func deallocate(_ p: UnsafeMutablePointer<Float>) {
        #if os(Linux)
        free(p)
        #else
        p.deallocate()
        #endif
    }
}
