/// Differentiable augmentation (DiffAugment, Zhao et al. 2020) of images in [-1, 1], applied to real and
/// generated batches alike before the discriminator, so D cannot memorise a small training set while
/// G still receives gradients through the augmentation.
///
/// Per image, in this order: `color` — brightness (add U(−½, ½)), saturation (scale the distance to the
/// per-pixel channel mean by U(0, 2)), contrast (scale the distance to the image mean by U(½, 1½));
/// `translation` — shift by up to ⅛ of the size in each direction (integer pixels, zeros shifted in);
/// `cutout` — zero a square of half the size at a random centre. Every step is linear in the image for
/// fixed random draws, so the backward pass applies the adjoints in reverse order.
///
/// ```swift
/// let augment = DiffAugment(policy: [.color, .translation, .cutout], seed: 1)
/// let seen = augment.forward(images, training: true)   // [N, C, H, W] → same shape
/// ```
public final class DiffAugment: Layer {
    public enum Operation: String, CaseIterable, Codable, Sendable { case color, translation, cutout }
    public let policy: Set<Operation>
    /// The stream of random draws; a checkpoint saves it.
    public var rng: RandomGenerator
    /// When false, forward reuses the previous draws (gradient checks perturb one input at a time).
    public var redraw = true
    /// Probability that each operation of the policy is applied to an image (per image and operation, as
    /// ADA applies its augmentations); 1 applies every operation to every image, as DiffAugment does.
    /// `AdaptiveAugmentation` steers it during training.
    public var probability: Float = 1
    /// This rank's rows of a data-parallel batch (`DataParallel`): the draws are made for the whole batch and
    /// each rank applies its rows', as one process would.
    public var shard = BatchShard.whole

    /// Per image: brightness, saturation and contrast factors; shift (dy, dx); cutout centre (cy, cx).
    private var brightness: [Float] = [], saturation: [Float] = [], contrast: [Float] = []
    private var shiftY: [Int] = [], shiftX: [Int] = [], cutY: [Int] = [], cutX: [Int] = []
    private var output: Tensor?, scratch: Tensor?, inputGrad: Tensor?

    public init(policy: Set<Operation>, seed: UInt64) {
        self.policy = policy; rng = RandomGenerator(seed: seed)
    }

    /// Fills the per-image draws in place: the arrays keep their storage from one batch to the next.
    private func draw(_ N: Int, _ H: Int, _ W: Int) {
        let maxShiftY = Int(Float(H) * 0.125 + 0.5), maxShiftX = Int(Float(W) * 0.125 + 0.5)
        if brightness.count != N {
            brightness = Array(repeating: 0, count: N); saturation = brightness; contrast = brightness
            shiftY = Array(repeating: 0, count: N); shiftX = shiftY; cutY = shiftY; cutX = shiftY
        }
        // One stream, in the order of the draws' meaning: all brightness values, then all saturations, …
        for n in 0..<N { brightness[n] = rng.uniform() - 0.5 }
        for n in 0..<N { saturation[n] = rng.uniform() * 2 }
        for n in 0..<N { contrast[n] = rng.uniform() + 0.5 }
        for n in 0..<N { shiftY[n] = Int(rng.next() % UInt64(2 * maxShiftY + 1)) - maxShiftY }
        for n in 0..<N { shiftX[n] = Int(rng.next() % UInt64(2 * maxShiftX + 1)) - maxShiftX }
        for n in 0..<N { cutY[n] = Int(rng.next() % UInt64(H + 1)) }
        for n in 0..<N { cutX[n] = Int(rng.next() % UInt64(W + 1)) }
        // Skipped operations become the identity. Nothing more is drawn at probability 1, so runs without
        // ADA keep the stream (and the results) they had before it existed.
        guard probability < 1 else { return }
        for n in 0..<N where rng.uniform() >= probability { brightness[n] = 0; saturation[n] = 1; contrast[n] = 1 }
        for n in 0..<N where rng.uniform() >= probability { shiftY[n] = 0; shiftX[n] = 0 }
        for n in 0..<N where rng.uniform() >= probability { cutY[n] = -H }   // the square lies outside the image
    }

    // x [N, C, H, W] → y [N, C, H, W]
    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        precondition(x.shape.count == 4, "DiffAugment expects [N, C, H, W], got \(x.shape)")
        guard training, !policy.isEmpty else { return x }
        let N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3], size = C * H * W
        // Row n of this rank is row `first + n` of the whole batch's draws.
        let first = shard.index * N
        if redraw || brightness.count != N * shard.count { draw(N * shard.count, H, W) }
        let y = Tensor.reuse(output, shape: x.shape); output = y
        let t = Tensor.reuse(scratch, shape: x.shape); scratch = t
        let xp = x.data, yp = y.data, tp = t.data
        Parallel.forEachChunk(count: N) { range, _ in
            for n in range {
                let src = xp + n * size, img = tp + n * size, dst = yp + n * size
                img.update(from: src, count: size)
                if policy.contains(.color) { colorForward(img, first + n, C, H * W) }
                if policy.contains(.translation) { translate(img, dst, first + n, C, H, W, adjoint: false) } else { dst.update(from: img, count: size) }
                if policy.contains(.cutout) { cut(dst, first + n, C, H, W) }
            }
        }
        return y
    }

    // dy → dx: the adjoints in reverse order (cutout, translation, contrast, saturation; brightness is identity)
    public func backward(_ dy: Tensor, weightGradients: Bool, inputGradient: Bool) -> Tensor? {
        guard inputGradient else { return nil }
        guard !policy.isEmpty else { return dy }
        let N = dy.shape[0], C = dy.shape[1], H = dy.shape[2], W = dy.shape[3], size = C * H * W
        let dx = Tensor.reuse(inputGrad, shape: dy.shape); inputGrad = dx
        let t = Tensor.reuse(scratch, shape: dy.shape); scratch = t
        let dp = dy.data, op = dx.data, tp = t.data, first = shard.index * N
        Parallel.forEachChunk(count: N) { range, _ in
            for n in range {
                let g = tp + n * size, out = op + n * size, k = first + n
                g.update(from: dp + n * size, count: size)
                if policy.contains(.cutout) { cut(g, k, C, H, W) }
                if policy.contains(.translation) { translate(g, out, k, C, H, W, adjoint: true) } else { out.update(from: g, count: size) }
                if policy.contains(.color) { colorBackward(out, k, C, H * W) }
            }
        }
        return dx
    }

    private func colorForward(_ p: UnsafeMutablePointer<Float>, _ n: Int, _ C: Int, _ S: Int) {
        let b = brightness[n], s = saturation[n], r = contrast[n]
        for i in 0..<(C * S) { p[i] += b }
        mixWithMean(p, C, S, perPixel: true, keep: s)
        mixWithMean(p, C, S, perPixel: false, keep: r)
    }

    private func colorBackward(_ p: UnsafeMutablePointer<Float>, _ n: Int, _ C: Int, _ S: Int) {
        // Both mixes are symmetric linear maps, so each is its own adjoint.
        mixWithMean(p, C, S, perPixel: false, keep: contrast[n])
        mixWithMean(p, C, S, perPixel: true, keep: saturation[n])
    }

    /// p ← keep·p + (1 − keep)·mean, the mean over channels per pixel, or over the whole image.
    private func mixWithMean(_ p: UnsafeMutablePointer<Float>, _ C: Int, _ S: Int, perPixel: Bool, keep: Float) {
        if perPixel {
            let invC = 1 / Float(C)
            for q in 0..<S {
                var m: Float = 0
                for c in 0..<C { m += p[c * S + q] }
                let shift = (1 - keep) * m * invC
                for c in 0..<C { p[c * S + q] = keep * p[c * S + q] + shift }
            }
        } else {
            var m = 0.0
            for i in 0..<(C * S) { m += Double(p[i]) }
            let shift = (1 - keep) * Float(m / Double(C * S))
            for i in 0..<(C * S) { p[i] = keep * p[i] + shift }
        }
    }

    /// dst[c, i, j] = src[c, i + dy, j + dx] (zero outside); the adjoint scatters dst back instead.
    private func translate(_ src: UnsafeMutablePointer<Float>, _ dst: UnsafeMutablePointer<Float>, _ n: Int,
                           _ C: Int, _ H: Int, _ W: Int, adjoint: Bool) {
        let sy = shiftY[n], sx = shiftX[n]
        dst.update(repeating: 0, count: C * H * W)
        for c in 0..<C {
            for i in max(0, -sy)..<min(H, H - sy) {
                for j in max(0, -sx)..<min(W, W - sx) {
                    let a = (c * H + i) * W + j, b = (c * H + i + sy) * W + j + sx
                    if adjoint { dst[b] = src[a] } else { dst[a] = src[b] }
                }
            }
        }
    }

    /// Zeroes the rows cy−H/4 ..< cy+H/4 and columns cx−W/4 ..< cx+W/4 (clipped to the image).
    private func cut(_ p: UnsafeMutablePointer<Float>, _ n: Int, _ C: Int, _ H: Int, _ W: Int) {
        let y0 = max(0, cutY[n] - H / 4), y1 = min(H, cutY[n] + H / 4)
        let x0 = max(0, cutX[n] - W / 4), x1 = min(W, cutX[n] + W / 4)
        guard y0 < y1, x0 < x1 else { return }
        for c in 0..<C { for i in y0..<y1 { (p + (c * H + i) * W + x0).update(repeating: 0, count: x1 - x0) } }
    }
}
