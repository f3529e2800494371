import Foundation
import GANCore

/// The toolkit's own CIFAR-10 classifier (the "judge" for evaluation): a compact ResNet.
///
/// stem 3×3 conv → BN → ReLU, then for each stage `blocks` basic residual blocks (the first with stride 2
/// except in stage one), global average pooling (the penultimate features), and a linear layer to 10 logits.
///
/// ```swift
/// var rng = RandomGenerator(seed: 0)
/// let net = ClassifierConfig().makeNetwork(rng: &rng)    // images [N, 3, 32, 32] in [−1, 1] → logits [N, 10]
/// ```
public struct ClassifierConfig: Codable, Equatable, Sendable {
    public var widths = [32, 64, 128]
    public var blocks = 1
    public var classes = 10
    public init() {}

    public var featureDim: Int { widths.last! }

    public func makeNetwork(rng: inout RandomGenerator) -> Sequential {
        var layers: [Layer] = [
            Conv2d(inChannels: 3, outChannels: widths[0], kernelSize: 3, stride: 1, padding: 1, bias: false, rng: &rng),
            BatchNorm2d(numFeatures: widths[0]),
            ReLU(inPlace: true),
        ]
        var c = widths[0]
        for (stage, w) in widths.enumerated() {
            for b in 0..<blocks {
                layers.append(ResidualBlock.basic(inChannels: c, outChannels: w, stride: (stage > 0 && b == 0) ? 2 : 1, rng: &rng))
                c = w
            }
        }
        layers.append(GlobalAvgPool2d())
        layers.append(Linear(inFeatures: c, outFeatures: classes, rng: &rng))
        let net = Sequential(layers)
        net.name = "C"
        return net
    }

    /// Forward FLOPs per 32×32 image (convolutions and the linear layer).
    public var forwardFLOPs: Double {
        var total = 2.0 * 27 * Double(widths[0]) * 1024
        var c = widths[0], size = 32
        for (stage, w) in widths.enumerated() {
            for b in 0..<blocks {
                let stride = (stage > 0 && b == 0) ? 2 : 1
                size /= stride
                let positions = Double(size * size)
                total += 2 * Double(9 * c * w) * positions + 2 * Double(9 * w * w) * positions
                if stride != 1 || c != w { total += 2 * Double(c * w) * positions }
                c = w
            }
        }
        return total + 2 * Double(c * classes)
    }
}

/// Training settings of the classifier: SGD with Nesterov momentum, a one-cycle learning rate
/// (linear warm-up to `peakLR` over `warmupFraction` of the steps, then linear decay to 0), weight decay,
/// label smoothing, and augmentation by random crops of the image padded by 4 pixels and horizontal flips.
public struct ClassifierTraining: Codable, Equatable, Sendable {
    public var epochs = 30
    public var batchSize = 128
    public var peakLR: Float = 0.2
    public var warmupFraction: Float = 0.2
    public var momentum: Float = 0.9
    public var weightDecay: Float = 5e-4
    public var labelSmoothing: Float = 0.1
    public var seed: UInt64 = 0
    public init() {}

    enum CodingKeys: String, CodingKey {
        case epochs, batchSize, peakLR = "peakLr", warmupFraction, momentum, weightDecay, labelSmoothing, seed
    }

    public func learningRate(step: Int, totalSteps: Int) -> Float {
        let t = Float(step) / Float(max(1, totalSteps)), w = warmupFraction
        return t < w ? peakLR * t / w : peakLR * max(0, (1 - t) / (1 - w))
    }
}

public enum ClassifierJob {
    /// Writes augmented images `indices` into `x`: a random 32×32 crop of the image padded by 4 black pixels,
    /// mirrored with probability ½.
    public static func fillAugmentedBatch(_ data: ImageDataset, indices: ArraySlice<Int>, into x: Tensor, rng: inout RandomGenerator) {
        let xp = x.data
        data.pixels.withUnsafeBufferPointer { src in
            for (k, i) in indices.enumerated() {
                let dx = Int(rng.next() % 9) - 4, dy = Int(rng.next() % 9) - 4, flip = rng.next() & 1 == 1
                let s = src.baseAddress! + i * 3072, d = xp + k * 3072
                for c in 0..<3 {
                    for y in 0..<32 {
                        let sy = y + dy
                        for xx in 0..<32 {
                            let sx = (flip ? 31 - xx : xx) + dx
                            let v: Float = (sy >= 0 && sy < 32 && sx >= 0 && sx < 32) ? Float(s[c * 1024 + sy * 32 + sx]) * (2.0 / 255.0) - 1 : -1
                            d[c * 1024 + y * 32 + xx] = v
                        }
                    }
                }
            }
        }
    }

    public struct Evaluation: Codable, Sendable {
        public var accuracy: Double
        public var count: Int
        public var perClass: [String: Double]
    }

    /// Accuracy of `net` (eval mode) on `data`, optionally only on records `range`.
    public static func evaluate(_ net: Sequential, on data: ImageDataset, range: Range<Int>? = nil, batchSize: Int = 250) -> Evaluation {
        let r = range ?? 0..<data.count
        var correct = 0
        var perClassCorrect = [Int](repeating: 0, count: data.classNames.count), perClassTotal = perClassCorrect
        var start = r.lowerBound
        while start < r.upperBound {
            let n = min(batchSize, r.upperBound - start)
            let x = Tensor(shape: [n, 3, 32, 32])
            data.fillBatch(indices: Array(start..<(start + n))[...], into: x)
            let logits = net.forward(x, training: false)
            let K = logits.shape[1]
            for i in 0..<n {
                var best = 0
                for k in 1..<K where logits[i * K + k] > logits[i * K + best] { best = k }
                let label = Int(data.labels[start + i])
                perClassTotal[label] += 1
                if best == label { correct += 1; perClassCorrect[label] += 1 }
            }
            start += n
        }
        var perClass: [String: Double] = [:]
        for (k, name) in data.classNames.enumerated() where perClassTotal[k] > 0 {
            perClass[name] = Double(perClassCorrect[k]) / Double(perClassTotal[k])
        }
        return Evaluation(accuracy: Double(correct) / Double(max(1, r.count)), count: r.count, perClass: perClass)
    }

    /// Trains a classifier; calls `epochDone(epoch, trainLoss, trainAccuracy, seconds)` after each epoch.
    public static func train(config: ClassifierConfig, training: ClassifierTraining, data: ImageDataset,
                             epochDone: (Int, Double, Double, Double) -> Void) -> Sequential {
        var rng = RandomGenerator(seed: training.seed)
        let net = config.makeNetwork(rng: &rng)
        let opt = SGD(parameters: net.parameters, lr: 0, momentum: training.momentum,
                      weightDecay: training.weightDecay, nesterov: true)
        let loss = CrossEntropyLoss(labelSmoothing: training.labelSmoothing)
        let N = training.batchSize, batches = data.count / N
        let total = batches * training.epochs
        let x = Tensor(shape: [N, 3, 32, 32])
        var step = 0
        for epoch in 0..<training.epochs {
            var order = RandomGenerator(seed: training.seed).derived(100 &+ UInt64(epoch))
            let perm = order.permutation(data.count)
            var lossSum = 0.0, correct = 0
            let start = Date()
            for b in 0..<batches {
                let idx = perm[(b * N)..<((b + 1) * N)]
                fillAugmentedBatch(data, indices: idx, into: x, rng: &rng)
                let labels = idx.map { Int(data.labels[$0]) }
                opt.lr = training.learningRate(step: step, totalSteps: total)
                opt.zeroGrad()
                let logits = net.forward(x, training: true)
                lossSum += loss.forward(logits, labels)
                for i in 0..<N {
                    var best = 0
                    for k in 1..<config.classes where logits[i * config.classes + k] > logits[i * config.classes + best] { best = k }
                    if best == labels[i] { correct += 1 }
                }
                _ = net.backward(loss.backward(), weightGradients: true, inputGradient: false)
                opt.step()
                step += 1
            }
            epochDone(epoch + 1, lossSum / Double(batches), Double(correct) / Double(batches * N), Date().timeIntervalSince(start))
        }
        return net
    }
}
