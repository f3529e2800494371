import Foundation

/// The kernel switches of the numerical core, in one place: which library runs `Conv2d`, whether 4×4, stride-2
/// transposed convolutions run by Winograd tiles, and whether the direct 3-channel kernel is used. Each starts
/// from its environment variable (`CIFAR_GAN_CONVOLUTION=blas|onednn|auto`, `CIFAR_GAN_WINOGRAD=0`,
/// `CIFAR_GAN_NARROW=0`, `CIFAR_GAN_ONEDNN_CHUNK=N`); tests switch them per case to compare the paths, which all
/// compute the same function. Which path a given layer takes for a given input is its `kernelPath(…)`, printed
/// by `cifar-gan bench --profile` beside the model's `FusionPlan`.
///
/// ```swift
/// KernelSettings.convolution = .blas    // patch-matrix GEMMs only
/// KernelSettings.winograd = false       // phase GEMMs for transposed convolutions
/// print(KernelSettings.summary)
/// ```
public enum KernelSettings {
    nonisolated(unsafe) public static var convolution: ConvolutionKernels =
        ConvolutionKernels(rawValue: environment("CIFAR_GAN_CONVOLUTION") ?? "") ?? .auto

    /// Winograd F(2×2, 2×2) for 4×4, stride-2 transposed convolutions (`ConvTranspose2d+Winograd.swift`).
    nonisolated(unsafe) public static var winograd: Bool = environment("CIFAR_GAN_WINOGRAD") != "0"

    /// oneDNN's Winograd F(4×4, 3×3) for 3×3 stride-1 convolutions, where oneDNN has it (float32 on AVX-512, no
    /// fused activation; elsewhere it runs them directly): measured +39% training on `--preset sngan`
    /// (docs/performance.md). Its sums differ from the direct ones by ~1e-6 relative (the transforms' rounding).
    nonisolated(unsafe) public static var oneDNNWinograd: Bool = environment("CIFAR_GAN_ONEDNN_WINOGRAD") != "0"

    /// The direct kernel for convolutions whose result has ≤ 3 channels (`NarrowConvolution`), where the CPU has it.
    nonisolated(unsafe) public static var narrow: Bool = environment("CIFAR_GAN_NARROW") != "0"

    /// The number format of convolution inputs (`Precision`); set it through `Precision.resolve`, which falls back
    /// to float32 where the CPU cannot run bfloat16 natively.
    nonisolated(unsafe) public static var precision: Precision = .fp32

    /// In bfloat16, whether two convolutions joined by a `BlockedHandoff` pass the activation and its gradient as
    /// bfloat16 (`CIFAR_GAN_BF16_HANDOFF=0`: as float32, each converting on the way in, as before session 12).
    nonisolated(unsafe) public static var bf16Handoff: Bool = environment("CIFAR_GAN_BF16_HANDOFF") != "0"

    /// Whether two oneDNN convolutions with a batch norm (and its activation) between them hand the activation and
    /// its gradient over in oneDNN's blocked layout, the batch norm reading and writing it
    /// (`.blockedHandoffThroughNormalization`; `CIFAR_GAN_BLOCKED_NORMS=0`: NCHW, as before session 12).
    nonisolated(unsafe) public static var blockedNormalization: Bool = environment("CIFAR_GAN_BLOCKED_NORMS") != "0"

    /// Samples per oneDNN call (`CIFAR_GAN_ONEDNN_CHUNK` overrides it): 128, in either precision — a whole batch
    /// up to 128, and a generated batch of 256 in two calls. What each call costs besides the products (reordering
    /// the weights, starting the threads) weighs less in larger calls, and oneDNN's kernels split the work of small
    /// images (8×8, 16×16) better across a bigger batch: 64 measured +11–23% over 16 for `cnn` and `original` in
    /// bfloat16 (session 10) and +12% for `cnn --conditional` and `sngan` in float32 (session 13); 128 over 64, at
    /// batch 128 in float32, +4 to +27% for `cnn --conditional` and −3 to +14% for `original` over 3–4 rounds each,
    /// for 23 MB more memory (the original models: 253 → 276 MB, under the 300 MB goal; session 14,
    /// docs/performance.md).
    public static var oneDNNChunk: Int { chunkOverride ?? 128 }
    private static let chunkOverride: Int? = Int(environment("CIFAR_GAN_ONEDNN_CHUNK") ?? "")

    /// One line for `cifar-gan bench`: each switch, and what this machine makes of it.
    public static var summary: String {
        let kernels = ConvolutionKernels.oneDNNAvailable
            ? "\(convolution.rawValue) (oneDNN available; CIFAR_GAN_CONVOLUTION=blas|onednn|auto)"
            : "BLAS (oneDNN not available: \(ConvolutionKernels.oneDNNUnavailableReason))"
        let direct = !NarrowConvolution.available ? "not on this CPU (needs AVX2 and FMA)"
            : narrow ? "on (CIFAR_GAN_NARROW=0 turns it off)" : "off (CIFAR_GAN_NARROW=0)"
        let tiles = winograd ? "on (CIFAR_GAN_WINOGRAD=0 turns it off)" : "off (CIFAR_GAN_WINOGRAD=0)"
        let oneDNNTiles = oneDNNWinograd ? "where oneDNN has it (CIFAR_GAN_ONEDNN_WINOGRAD=0 turns it off)" : "off (CIFAR_GAN_ONEDNN_WINOGRAD=0)"
        let bf16 = Precision.bf16UnavailableReason.map { "not here: \($0)" } ?? "available"
        let pool = Parallel.sharesOpenMPTeam && ConvolutionKernels.oneDNNAvailable
            ? "oneDNN's OpenMP team (CIFAR_GAN_OPENMP=0: Dispatch's pool)" : "Dispatch's pool"
        return "convolution kernels: \(kernels); direct 3-channel kernel: \(direct); Winograd transposed convolutions: \(tiles); "
            + "oneDNN Winograd for 3×3 stride-1 convolutions: \(oneDNNTiles); "
            + "precision: \(precision.rawValue) (bfloat16 \(bf16)); parallel loops: \(pool)"
    }

    private static func environment(_ name: String) -> String? { ProcessInfo.processInfo.environment[name] }
}

/// The kernel path a convolution layer takes for one input size (see each layer's `kernelPath(…)`).
public enum ConvolutionPath: String, Sendable {
    /// oneDNN's direct convolution (`OneDNNConvolution`).
    case oneDNN = "oneDNN"
    /// This package's patch matrix (im2row / row2im) and one GEMM per group of samples.
    case patchGEMM = "patch GEMM"
    /// A transposed convolution as one ordinary convolution per output phase (stride² GEMMs).
    case phaseGEMM = "phase GEMMs"
    /// The phase convolutions by Winograd F(2×2, 2×2) tiles.
    case winograd = "Winograd"
    /// `NarrowConvolution`'s direct kernel (≤ 3 result channels).
    case narrow = "direct 3-channel"
}
