import COneDNN
import Foundation

/// Which kernels run `Conv2d`: this package's patch-matrix GEMMs and Winograd tiles on BLAS, oneDNN's
/// convolutions, or (`auto`, the default) oneDNN wherever it loads. (Until session 13 `auto` kept layers with
/// fewer than 64 output positions on BLAS; with 64-sample oneDNN calls oneDNN measured 7–13% faster there too —
/// the original discriminator's last layer, the standard CNN's D.10 and D.12; docs/performance.md.)
///
/// oneDNN is used only where its library loads (Linux with `libdnnl2`; `scripts/install-deps` installs it);
/// elsewhere every choice means BLAS. The choice in force is `KernelSettings.convolution`. Both kernels compute
/// the same function and are each checked against PyTorch.
///
/// ```swift
/// KernelSettings.convolution = .blas
/// ```
public enum ConvolutionKernels: String, Sendable {
    case blas, onednn, auto

    /// Whether oneDNN could be loaded on this machine.
    public static let oneDNNAvailable: Bool = onednn_available(Int32(Parallel.workerCount), Parallel.sharesOpenMPTeam ? 1 : 0) != 0

    /// Why oneDNN is not available, for messages.
    public static var oneDNNUnavailableReason: String { String(cString: onednn_unavailable_reason()) }

    /// Whether convolutions run on oneDNN.
    public static var useOneDNN: Bool {
        // bfloat16 runs only on oneDNN (`Precision.resolve` allows it only where oneDNN loads).
        if KernelSettings.precision == .bf16 && oneDNNAvailable { return true }
        switch KernelSettings.convolution {
        case .blas: return false
        case .onednn: return oneDNNAvailable
        case .auto: return oneDNNAvailable
        }
    }
}

/// oneDNN's primitives for one input shape (batch, channels, size) of a convolution; recreated when the
/// shape changes. The batch runs in chunks of `KernelSettings.oneDNNChunk` samples so that the copies in oneDNN's layouts
/// stay small (they are the size of one chunk's activations, shared by all layers) and warm in cache.
///
/// Public for inference networks outside the layer library (pytorch-fid's Inception, with its 1×7 and 7×1
/// kernels): `init(inference…)` makes the forward pass only, NCHW in and out.
///
/// ```swift
/// let conv = OneDNNConvolution(inferenceInput: [8, 768, 17, 17], outChannels: 192, kernelHeight: 1, kernelWidth: 7,
///                              stride: 1, paddingHeight: 0, paddingWidth: 3, reluAfter: true)
/// conv?.forward(x: x.data, weight: weight.data, bias: bias.data, y: y.data)   // conv is nil without oneDNN
/// ```
public final class OneDNNConvolution {
    public let shape: [Int]
    private let full: OpaquePointer          // KernelSettings.oneDNNChunk samples (or the whole batch when smaller)
    private let remainder: OpaquePointer?    // the last, shorter chunk
    private let chunk: Int, inputStride: Int, outputStride: Int

    /// Whether the passes multiply in bfloat16 (`Precision`); fixed at creation.
    public let bf16: Bool
    /// Whether oneDNN runs them as Winograd F(4×4, 3×3) (`KernelSettings.oneDNNWinograd`) rather than directly.
    public let winograd: Bool
    /// `KernelSettings.oneDNNWinograd` when these primitives were made (a layer remakes them when it changes).
    let winogradRequested: Bool

    /// Whether a float32 convolution of this shape asks oneDNN for Winograd F(4×4, 3×3) (oneDNN still declines it
    /// on AVX2 or in bfloat16; a fused activation then runs as a second pass over y in the shim). Not below 16 input
    /// channels: there the transforms of each 6×6 tile cost more than the products they save — the residual models'
    /// first convolution (3→64 at 32×32) measured 104 µs per sample forward and 71 for its weights' gradient on
    /// Winograd against 28 and 21 directly (`ONEDNN_VERBOSE`, docs/performance.md "Session 13").
    public static func asksForWinograd(inChannels: Int, kernelHeight: Int, kernelWidth: Int, stride: Int) -> Bool {
        KernelSettings.oneDNNWinograd && kernelHeight == 3 && kernelWidth == 3 && stride == 1 && inChannels >= 16
    }

    /// The layouts of x/dx and y/dy: 0 for NCHW, else oneDNN's channel block (see `BlockedHandoff`).
    let inputBlock: Int, outputBlock: Int
    /// Whether x/dx and y/dy are bfloat16 in that blocked layout (a bfloat16 `BlockedHandoff`): 2 bytes a value
    /// behind the `Float` pointers.
    let inputBF16: Bool, outputBF16: Bool

    /// The channel block of oneDNN's preferred activation layout on this CPU, or 0.
    public static let preferredChannelBlock: Int = Int(onednn_preferred_channel_block())

    /// Training primitives (forward and both backward passes); in bfloat16 unless `bf16` says otherwise, when
    /// `KernelSettings.precision` is `.bf16`.
    convenience init?(inputShape: [Int], outChannels: Int, kernel: Int, stride: Int, padding: Int, leakyReLUSlope: Float?,
                      inputBlock: Int = 0, outputBlock: Int = 0, bf16: Bool? = nil,
                      inputBF16: Bool = false, outputBF16: Bool = false) {
        self.init(inputShape: inputShape, outChannels: outChannels, kernelHeight: kernel, kernelWidth: kernel, stride: stride,
                  paddingHeight: padding, paddingWidth: padding, leakyReLUSlope: leakyReLUSlope,
                  inputBlock: inputBlock, outputBlock: outputBlock, training: true,
                  bf16: bf16 ?? (KernelSettings.precision == .bf16), inputBF16: inputBF16, outputBF16: outputBF16)
    }

    /// An inference-only convolution, NCHW in and out, ReLU fused when `reluAfter`; nil where oneDNN is missing
    /// or refuses the shape (the caller keeps its own kernel then).
    public convenience init?(inferenceInput inputShape: [Int], outChannels: Int, kernelHeight: Int, kernelWidth: Int,
                             stride: Int, paddingHeight: Int, paddingWidth: Int, reluAfter: Bool) {
        self.init(inputShape: inputShape, outChannels: outChannels, kernelHeight: kernelHeight, kernelWidth: kernelWidth,
                  stride: stride, paddingHeight: paddingHeight, paddingWidth: paddingWidth,
                  leakyReLUSlope: reluAfter ? 0 : nil, inputBlock: 0, outputBlock: 0, training: false, bf16: false)
    }

    init?(inputShape: [Int], outChannels: Int, kernelHeight: Int, kernelWidth: Int, stride: Int, paddingHeight: Int,
          paddingWidth: Int, leakyReLUSlope: Float?, inputBlock: Int, outputBlock: Int, training: Bool, bf16: Bool,
          inputBF16: Bool = false, outputBF16: Bool = false) {
        guard ConvolutionKernels.oneDNNAvailable, inputShape.count == 4, inputShape[0] > 0 else { return nil }
        let n = inputShape[0], c = inputShape[1], h = inputShape[2], w = inputShape[3]
        let askWinograd = Self.asksForWinograd(inChannels: c, kernelHeight: kernelHeight, kernelWidth: kernelWidth,
                                               stride: stride)
        func create(_ batch: Int) -> OpaquePointer? {
            onednn_convolution_create_general(Int32(batch), Int32(c), Int32(h), Int32(w), Int32(outChannels),
                                              Int32(kernelHeight), Int32(kernelWidth), Int32(stride),
                                              Int32(paddingHeight), Int32(paddingWidth),
                                              leakyReLUSlope == nil ? 0 : 1, leakyReLUSlope ?? 0,
                                              Int32(inputBlock), Int32(outputBlock),
                                              UInt32((training ? ONEDNN_TRAINING : 0) | (bf16 ? ONEDNN_BF16 : 0)
                                                     | (askWinograd ? ONEDNN_WINOGRAD : 0)
                                                     | (inputBF16 ? ONEDNN_BF16_INPUT_HANDOFF : 0)
                                                     | (outputBF16 ? ONEDNN_BF16_OUTPUT_HANDOFF : 0)))
        }
        chunk = min(n, max(1, KernelSettings.oneDNNChunk))
        guard let full = create(chunk) else { return nil }
        self.full = full
        if n % chunk != 0 {
            guard let r = create(n % chunk) else { onednn_convolution_destroy(full); return nil }
            remainder = r
        } else { remainder = nil }
        shape = inputShape
        self.inputBlock = inputBlock; self.outputBlock = outputBlock; self.bf16 = bf16
        self.inputBF16 = inputBF16; self.outputBF16 = outputBF16
        winograd = onednn_convolution_is_winograd(full) != 0
        winogradRequested = KernelSettings.oneDNNWinograd
        // Per-sample strides hold for the blocked layouts too: a sample is contiguous in nChw8c/nChw16c, and
        // blocked layouts are only used when the channels fill whole blocks (so a bfloat16 sample, half as many
        // `Float`s, is a whole number of them).
        inputStride = c * h * w / (inputBF16 ? 2 : 1)
        outputStride = outChannels * Int(onednn_convolution_output_height(full)) * Int(onednn_convolution_output_width(full))
            / (outputBF16 ? 2 : 1)
    }
    deinit {
        onednn_convolution_destroy(full)
        if let remainder { onednn_convolution_destroy(remainder) }
        scratch.map(FloatStorage.deallocate)
    }

    /// Calls `body(handle, first sample)` for each chunk of the batch, in order.
    private func forEachChunk(_ what: String, _ body: (OpaquePointer, Int) -> Int32) {
        var n = 0
        while n < shape[0] {
            let handle = shape[0] - n >= chunk ? full : remainder!
            let status = body(handle, n)
            // oneDNN accepted these shapes at creation, so a failure is a programming error, not bad input.
            precondition(status == 0, "oneDNN convolution \(what) failed (status \(status))")
            n += min(chunk, shape[0] - n)
        }
    }

    /// y = conv(x) + bias (then the fused activation), the whole batch of `shape`.
    public func forward(x: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?, y: UnsafeMutablePointer<Float>) {
        let xs = inputStride, ys = outputStride
        forEachChunk("forward") { h, n in onednn_convolution_forward(h, x + n * xs, weight, bias, y + n * ys) }
    }
    func backwardData(dy: UnsafePointer<Float>, weight: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>) {
        let xs = inputStride, ys = outputStride
        forEachChunk("backward-data") { h, n in onednn_convolution_backward_data(h, dy + n * ys, weight, dx + n * xs) }
    }

    /// The same for an input x that is the output of an in-place LeakyReLU(slope) (`LeakyReLUGradientFusing`):
    /// each chunk's dx goes to a chunk-sized scratch buffer, then LeakyReLU′(x)·dx replaces x chunk by chunk while
    /// both are in cache. x then holds the gradient with respect to the LeakyReLU's input.
    func backwardDataOverwritingLeakyReLUInput(dy: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                                               x: UnsafeMutablePointer<Float>, slope a: Float) {
        let xs = inputStride, ys = outputStride, chunk = self.chunk, total = shape[0] * xs, bf16 = inputBF16
        if scratch == nil { scratch = FloatStorage.allocate(chunk * xs) }
        let scratch = self.scratch!
        forEachChunk("backward-data") { h, n in
            let status = onednn_convolution_backward_data(h, dy + n * ys, weight, scratch)
            guard status == 0 else { return status }
            let first = n * xs, count = min(chunk * xs, total - first)
            Parallel.forEachChunk(count: count, minimumPerWorker: 1 << 14) { r, _ in
                let i = first + r.lowerBound
                if bf16 {   // x and dx hold 2 bfloat16 values per `Float`
                    BFloat16.leakyReLUGradient(dy: BFloat16.pointer(scratch + r.lowerBound), sign: BFloat16.pointer(x + i),
                                               into: BFloat16.pointer(x + i), count: 2 * r.count, slope: a)
                } else {
                    leakyReLUGradient(dy: scratch + r.lowerBound, sign: x + i, into: x + i, count: r.count, slope: a)
                }
            }
            return status
        }
    }

    /// One chunk's dx for `backwardDataOverwritingLeakyReLUInput`, allocated on first use.
    private var scratch: UnsafeMutablePointer<Float>?
    /// Accumulates into the gradients, chunk after chunk (a fixed order, so results do not depend on timing).
    func backwardWeights(x: UnsafePointer<Float>, dy: UnsafePointer<Float>, weightGrad: UnsafeMutablePointer<Float>,
                         biasGrad: UnsafeMutablePointer<Float>?) {
        let xs = inputStride, ys = outputStride
        forEachChunk("backward-weights") { h, n in
            onednn_convolution_backward_weights(h, x + n * xs, dy + n * ys, weightGrad, biasGrad)
        }
    }
}
