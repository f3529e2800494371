import Foundation
import GANCore

/// Inception-FID, comparable with pytorch-fid: the features of `InceptionFID` for 8-bit images (divided by
/// 255, as pytorch-fid's `ToTensor`), statistics in float64, and the same Fréchet distance as the judge's FID.
///
/// ```swift
/// let inception = try InceptionFID(weights: TorchCheckpoint.read(from: weightsURL))
/// let fid = try Metrics.fid(InceptionEvaluation.features(pixels: pixels, inception: inception).statistics(), reference)
/// ```
public enum InceptionEvaluation {
    /// The 2048-d features of planar 8-bit RGB images (3 × 1024 bytes each), in batches.
    public static func features(pixels: [UInt8], inception: InceptionFID, batchSize: Int = 64) -> FeatureSet {
        let n = pixels.count / 3072
        var values: [Double] = []
        values.reserveCapacity(n * InceptionFID.featureCount)
        var start = 0
        while start < n {
            let m = min(batchSize, n - start)
            let batch = Tensor(shape: [m, 3, 32, 32])
            for i in 0..<(m * 3072) { batch[i] = Float(pixels[start * 3072 + i]) / 255 }
            values += inception.features(batch).toArray().map(Double.init)
            start += m
        }
        return FeatureSet(count: n, dim: InceptionFID.featureCount, values: values)
    }
}
