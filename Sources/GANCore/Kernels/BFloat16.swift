import CBFloat16

/// bfloat16 values stored two to a `Float` slot: how a bfloat16 `BlockedHandoff` keeps an activation and its gradient
/// between two oneDNN convolutions. oneDNN reads and writes them; these are the few passes outside oneDNN that touch
/// them (a fused LeakyReLU's gradient rule, the first layer's image gradient), by the C kernels of `CBFloat16`
/// (AVX-512 where the CPU has it: Swift's SIMD types lower 16-bit lanes poorly at this package's baseline ISA).
/// Rounding is to nearest even, as in oneDNN's reorders.
///
/// ```swift
/// let x = Tensor(shape: [4])                       // room for 8 bfloat16 values
/// let bits = BFloat16.pointer(x.data)
/// bits[0] = BFloat16.bits(1.5)
/// print(BFloat16.float(bits[0]))                   // 1.5
/// ```
public enum BFloat16 {
    /// The bfloat16 view of a `Float` buffer (twice as many values).
    @inline(__always)
    public static func pointer(_ p: UnsafeMutablePointer<Float>) -> UnsafeMutablePointer<UInt16> {
        UnsafeMutableRawPointer(p).assumingMemoryBound(to: UInt16.self)
    }

    @inline(__always)
    public static func float(_ b: UInt16) -> Float { Float(bitPattern: UInt32(b) << 16) }

    /// x rounded to the nearest bfloat16 (ties to even).
    @inline(__always)
    public static func bits(_ x: Float) -> UInt16 {
        let b = x.bitPattern
        return UInt16(truncatingIfNeeded: (b &+ 0x7FFF &+ ((b >> 16) & 1)) >> 16)
    }

    /// dx = dy · (sign > 0 ? 1 : slope) over `count` bfloat16 values; `into` may be `dy` or `sign`.
    public static func leakyReLUGradient(dy: UnsafePointer<UInt16>, sign: UnsafePointer<UInt16>, into dx: UnsafeMutablePointer<UInt16>,
                                         count: Int, slope a: Float) {
        bf16_leaky_relu_gradient(dy, sign, dx, count, a)
    }

    /// `count` bfloat16 values widened to float32.
    public static func widen(_ src: UnsafePointer<UInt16>, into dst: UnsafeMutablePointer<Float>, count: Int) {
        bf16_widen(src, dst, count)
    }
}
