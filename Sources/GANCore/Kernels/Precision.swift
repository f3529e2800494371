import COneDNN

/// The number format convolutions multiply in. `fp32` everywhere is the default; `bf16` gives every
/// convolution (and transposed convolution) bfloat16 copies of its two inputs and accumulates in float32, on
/// oneDNN's bfloat16 kernels. Weights, optimizer state, activations between layers, losses and batch-norm
/// statistics stay float32, so checkpoints are the same float32 files either way.
///
/// bfloat16 keeps float32's exponent and 8 bits of mantissa: each product's inputs carry a relative rounding
/// error of at most 2⁻⁹, and sums of many such products land within about 1% of float32 (the tests' tolerance).
/// It is worth having only where the CPU multiplies bfloat16 natively (AVX512-BF16 or AMX: twice the products
/// per instruction); elsewhere `resolve` says so and keeps float32.
///
/// ```swift
/// let (precision, message) = Precision.resolve(.bf16)
/// if let message { print(message) }
/// KernelSettings.precision = precision
/// ```
public enum Precision: String, CaseIterable, Sendable {
    case fp32, bf16

    /// Whether this machine runs bfloat16 convolutions natively: oneDNN loaded and the CPU has AVX512-BF16 or AMX.
    public static let bf16Native: Bool = ConvolutionKernels.oneDNNAvailable && onednn_native_bf16() != 0

    /// Why `bf16` cannot run here (nil when it can).
    public static var bf16UnavailableReason: String? {
        if !ConvolutionKernels.oneDNNAvailable {
            return "bfloat16 runs on oneDNN, which is not available (\(ConvolutionKernels.oneDNNUnavailableReason))"
        }
        if KernelSettings.convolution == .blas { return "bfloat16 runs on oneDNN, and CIFAR_GAN_CONVOLUTION=blas turns it off" }
        if !bf16Native { return "this CPU has neither AVX512-BF16 nor AMX (oneDNN would emulate bfloat16, slower than float32)" }
        return nil
    }

    /// What runs for a requested precision on this machine, and a message when that is not what was asked.
    public static func resolve(_ requested: Precision) -> (Precision, String?) {
        guard requested == .bf16, let reason = bf16UnavailableReason else { return (requested, nil) }
        return (.fp32, "--precision bf16: \(reason); training in float32 instead")
    }
}
