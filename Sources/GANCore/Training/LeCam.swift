import Foundation

/// LeCam regularisation of the discriminator (Tseng et al. 2021, "Regularizing Generative Adversarial
/// Networks under Limited Data"): D's outputs are anchored to moving averages of its own past outputs on
/// the other kind of image,
///
///     R = mean(relu(D(x) − α_fake)²) + mean(relu(α_real − D(G(z)))²),   added to D's loss as λ·R,
///
/// with α_real, α_fake exponential moving averages (decay 0.99, bias-corrected as in the authors' code) of the
/// batch means of D(x) and D(G(z)). It keeps D's real and fake outputs from drifting apart when D starts to
/// memorise a small training set. The anchors are constants in the gradient.
///
/// ```swift
/// let lecam = LeCam(weight: 0.3)
/// let penalty = lecam.addGradient(logits: realLogits, term: .real, into: dRealLogits)   // λ·mean(relu(D(x) − α_fake)²)
/// lecam.update(realMean: 1.2, fakeMean: -0.8)                                            // once per D step
/// ```
public final class LeCam {
    public enum Term: Sendable { case real, fake }
    /// λ, the penalty's weight in D's loss.
    public let weight: Float
    public let decay: Double
    /// The raw (biased) moving averages and the number of updates: the state a checkpoint keeps.
    public struct State: Codable, Equatable, Sendable {
        public var realSum = 0.0, fakeSum = 0.0, updates = 0
    }
    public var state = State()

    public init(weight: Float, decay: Double = 0.99) {
        precondition(weight >= 0 && decay >= 0 && decay < 1, "LeCam: weight ≥ 0 and decay in [0, 1)")
        self.weight = weight; self.decay = decay
    }

    /// The anchors α_real, α_fake: the moving averages divided by 1 − decay^t (0 before the first update).
    public var anchors: (real: Double, fake: Double) {
        guard state.updates > 0 else { return (0, 0) }
        let correction = 1 - pow(decay, Double(state.updates))
        return (state.realSum / correction, state.fakeSum / correction)
    }

    /// Adds ∂(λ·R_term)/∂logits to `grad` (same shape as `logits`, [N, 1]) and returns λ·R_term.
    // real: λ·mean(relu(D − α_fake)²) → 2λ·relu(D − α_fake)/N; fake: λ·mean(relu(α_real − D)²) → −2λ·relu(α_real − D)/N
    @discardableResult
    public func addGradient(logits: Tensor, term: Term, into grad: Tensor) -> Double {
        precondition(logits.count == grad.count, "LeCam: logits \(logits.shape) and gradient \(grad.shape) differ")
        let (aReal, aFake) = anchors
        let n = logits.count, lambda = Double(weight)
        var penalty = 0.0
        for i in 0..<n {
            let gap = term == .real ? Double(logits[i]) - aFake : aReal - Double(logits[i])
            guard gap > 0 else { continue }
            penalty += gap * gap
            let d = 2 * lambda * gap / Double(n)
            grad[i] += Float(term == .real ? d : -d)
        }
        return lambda * penalty / Double(n)
    }

    /// One step of both moving averages with this D step's batch means.
    public func update(realMean: Double, fakeMean: Double) {
        state.realSum = decay * state.realSum + (1 - decay) * realMean
        state.fakeSum = decay * state.fakeSum + (1 - decay) * fakeMean
        state.updates += 1
    }
}

