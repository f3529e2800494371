/// A dense float32 array with a shape, stored contiguously in row-major (PyTorch "contiguous") order.
///
/// Tensors are reference types so that layers can hand out and reuse buffers without copying;
/// a layer owns the tensors it returns and overwrites them on its next call.
///
/// ```swift
/// let x = Tensor(shape: [2, 3], values: [1, 2, 3, 4, 5, 6])
/// x[1 * 3 + 2] = 0      // flat index
/// print(x.shape, x.toArray())
/// ```
public final class Tensor: @unchecked Sendable {
    public private(set) var shape: [Int]
    public let count: Int
    /// The storage; valid for the tensor's lifetime. Hot loops take this pointer once, outside the loop.
    public let data: UnsafeMutablePointer<Float>

    /// A zero-filled tensor.
    public init(shape: [Int]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in shape \(shape)")
        self.shape = shape
        self.count = shape.reduce(1, *)
        self.data = FloatStorage.allocate(count)
        data.initialize(repeating: 0, count: Swift.max(count, 1))
    }

    public convenience init(shape: [Int], values: [Float]) {
        self.init(shape: shape)
        precondition(values.count == count, "\(values.count) values for shape \(shape)")
        values.withUnsafeBufferPointer { data.update(from: $0.baseAddress!, count: count) }
    }

    public convenience init(shape: [Int], repeating value: Float) {
        self.init(shape: shape)
        fill(value)
    }

    deinit { FloatStorage.deallocate(data) }

    public subscript(i: Int) -> Float {
        get { data[i] }
        set { data[i] = newValue }
    }

    public var buffer: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: data, count: count) }

    public func toArray() -> [Float] { Array(buffer) }

    public func fill(_ value: Float) { data.update(repeating: value, count: count) }

    public func copy(from other: Tensor) {
        precondition(other.count == count, "copy: \(other.shape) into \(shape)")
        data.update(from: other.data, count: count)
    }

    public func clone() -> Tensor {
        let t = Tensor(shape: shape)
        t.copy(from: self)
        return t
    }

    /// Changes the shape without moving data (like `view`); the element count must stay the same.
    public func reshape(_ newShape: [Int]) {
        precondition(newShape.reduce(1, *) == count, "reshape: \(shape) to \(newShape)")
        shape = newShape
    }

    /// Returns `cached` when it already has `shape`, else a new tensor: how layers reuse their buffers.
    public static func reuse(_ cached: Tensor?, shape: [Int]) -> Tensor {
        if let cached, cached.shape == shape { return cached }
        return Tensor(shape: shape)
    }

    /// Sum in double precision (for losses and tests).
    public func sum() -> Double {
        var s = 0.0
        for i in 0..<count { s += Double(data[i]) }
        return s
    }

    public func maxAbs() -> Float {
        var m: Float = 0
        for i in 0..<count { m = Swift.max(m, Swift.abs(data[i])) }
        return m
    }
}

/// Elementwise helpers used by layers, losses and optimizers.
extension Tensor {
    /// self += other
    public func add(_ other: Tensor) {
        precondition(other.count == count, "add: \(other.shape) to \(shape)")
        let a = data, b = other.data
        for i in 0..<count { a[i] += b[i] }
    }

    /// self *= s
    public func scale(by s: Float) {
        let a = data
        for i in 0..<count { a[i] *= s }
    }

    public var isFinite: Bool {
        let a = data
        for i in 0..<count where !a[i].isFinite { return false }
        return true
    }
}
