import Foundation
import GANCore

public struct EpochMetrics: Codable, Sendable {
    public var epoch: Int
    public var lossD: Double
    public var lossG: Double
    public var dReal: Double
    public var dFake: Double
    public var accuracyReal: Double
    public var accuracyFake: Double
    public var imagesPerSec: Double
    public var seconds: Double
    public var instanceNoise: Double
    public var iterations: Int
    /// In-training evaluation (epochs where it ran): FID and recognition rate of generated samples.
    public var fid: Double?
    public var recognitionRate: Double?
    /// ADA's augmentation probability at the end of the epoch (runs with `ada_target`).
    public var augmentProbability: Double?

    /// The epoch's numbers under TensorBoard tags (those measured this epoch).
    public var tensorBoardScalars: [(tag: String, value: Double)] {
        [("loss/d", lossD), ("loss/g", lossG), ("D/real", dReal), ("D/fake", dFake),
         ("accuracy/real", accuracyReal), ("accuracy/fake", accuracyFake), ("speed/images_per_sec", imagesPerSec),
         ("instance_noise", instanceNoise)]
            + [("eval/fid", fid), ("eval/recognition", recognitionRate), ("augment/probability", augmentProbability)]
                .compactMap { tag, v in v.map { (tag, $0) } }
    }
}

public enum TrainingOutcome: Equatable, Sendable {
    case finished(epochs: Int)
    case autoStopped(atEpoch: Int, bestEpoch: Int)
    /// FID did not improve for `eval_patience` evaluations; `bestEpoch` had the lowest FID.
    case earlyStopped(atEpoch: Int, bestEpoch: Int)
    /// `time_limit_minutes` ran out during epoch `atEpoch` (which is partial).
    case timeLimit(atEpoch: Int)
}

public struct TrainingDiverged: UserFacingError {
    public var exitCode: Int32 { 3 }
    public let description: String
}
