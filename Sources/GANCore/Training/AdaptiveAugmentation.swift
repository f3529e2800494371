import Foundation

/// ADA's controller of the augmentation probability p (Karras et al. 2020, "Training Generative Adversarial
/// Networks with Limited Data"): the overfitting signal r_t = E[sign(D(x_real))] over the last `interval`
/// D steps is compared with a target (0.6 in the paper); p moves by
///
///     p ← clamp(p + sign(r_t − target) · N·interval / speedImages, 0, 1)
///
/// (N the batch size), so that it can go from 0 to 1 in `speedImages` real images (500k in the paper).
/// A discriminator that is sure about real images (r_t near 1) is memorising them: more augmentation.
///
/// ```swift
/// var ada = AdaptiveAugmentation(target: 0.6)
/// if let p = ada.observe(realLogits: logits) { augment.probability = Float(p) }   // a new p every `interval` steps
/// ```
public struct AdaptiveAugmentation: Codable, Equatable, Sendable {
    public var target: Double
    public var interval: Int
    public var speedImages: Double
    /// The current probability, and the sum of signs and count of logits since the last adjustment.
    public var probability = 0.0
    public var signSum = 0.0
    public var count = 0
    public var steps = 0

    public init(target: Double = 0.6, interval: Int = 4, speedImages: Double = 500_000) {
        precondition(interval >= 1 && speedImages > 0, "AdaptiveAugmentation: interval ≥ 1, speed > 0")
        self.target = target; self.interval = interval; self.speedImages = speedImages
    }

    /// Accumulates sign(D(x)) of one D step's real batch [N, 1]; every `interval` steps returns the new p.
    public mutating func observe(realLogits: Tensor) -> Double? {
        observe(signSum: Self.signSum(realLogits), count: realLogits.count)
    }

    /// `observe` with the sum of signs of one D step's `count` real logits (a data-parallel job: every rank's).
    public mutating func observe(signSum stepSum: Double, count stepCount: Int) -> Double? {
        signSum += stepSum
        count += stepCount
        steps += 1
        guard steps % interval == 0 else { return nil }
        // `count` real images were seen since the last adjustment: the batch size times the interval.
        probability = Self.adjusted(probability, signal: signSum / Double(count), target: target,
                                    images: Double(count), speedImages: speedImages)
        signSum = 0; count = 0
        return probability
    }

    /// Σ sign(D(x)) of a batch of logits.
    public static func signSum(_ logits: Tensor) -> Double {
        var s = 0.0
        for i in 0..<logits.count { s += logits[i] > 0 ? 1 : (logits[i] < 0 ? -1 : 0) }
        return s
    }

    /// The update rule: p + sign(r_t − target)·images/speed, clamped to [0, 1].
    public static func adjusted(_ p: Double, signal: Double, target: Double, images: Double, speedImages: Double) -> Double {
        let direction: Double = signal > target ? 1 : (signal < target ? -1 : 0)
        return min(1, max(0, p + direction * images / speedImages))
    }
}
