import Foundation

/// Per-layer wall-clock accounting for `cifar-gan bench --profile`; off (and free) unless enabled.
///
/// ```swift
/// Profiler.enabled = true
/// …train…
/// for row in Profiler.report() { print(row) }
/// ```
public enum Profiler {
    nonisolated(unsafe) public static var enabled = false
    nonisolated(unsafe) static var totals: [String: (seconds: Double, calls: Int, order: Int)] = [:]

    @inline(__always)
    static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    static func record(_ key: String, since start: UInt64) {
        let s = Double(now() - start) * 1e-9
        let old = totals[key] ?? (0, 0, totals.count)
        totals[key] = (old.seconds + s, old.calls + 1, old.order)
    }

    public static func reset() { totals = [:] }

    /// (label, total seconds, calls) in first-seen order.
    public static func report() -> [(String, Double, Int)] {
        totals.sorted { $0.value.order < $1.value.order }.map { ($0.key, $0.value.seconds, $0.value.calls) }
    }
}
