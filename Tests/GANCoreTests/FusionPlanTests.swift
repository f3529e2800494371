import XCTest
import GANCore

/// The plan a `Sequential` makes of its layers: which neighbours fuse, decided from the layer list alone.
/// The numerics of each fusion are checked elsewhere (`BatchNormFoldingTests`, `KernelTests`,
/// `NarrowConvolutionTests`); these tests pin down what is fused and what must not be.
final class FusionPlanTests: XCTestCase {
    var rng = RandomGenerator(seed: 31)

    func testDiscriminatorStackFusesActivationsBothWays() {
        let d = Sequential([
            Conv2d(inChannels: 3, outChannels: 16, kernelSize: 3, padding: 1, rng: &rng), LeakyReLU(0.1, inPlace: true),
            SpectralNorm(Conv2d(inChannels: 16, outChannels: 16, kernelSize: 4, stride: 2, padding: 1, rng: &rng), rng: &rng),
            LeakyReLU(0.1, inPlace: true), Linear(inFeatures: 4, outFeatures: 1, rng: &rng),
        ])
        let fusions = d.plan.fusions
        XCTAssert(fusions.contains(.activationIntoProducer(producer: 0, activation: 1, slope: 0.1)))
        XCTAssert(fusions.contains(.activationGradientIntoConsumer(activation: 1, consumer: 2, slope: 0.1)), "through spectral norm")
        XCTAssert(fusions.contains(.activationIntoProducer(producer: 2, activation: 3, slope: 0.1)), "through spectral norm")
        // Linear takes neither role: the LeakyReLU before it keeps its own gradient pass.
        XCTAssertFalse(fusions.contains { if case .activationGradientIntoConsumer(3, 4, _) = $0 { return true }; return false })
        // Where oneDNN runs, the two convolutions around layer 1 may hand it over in oneDNN's layout; nothing else.
        let handoffs = fusions.compactMap { f -> [Int]? in if case let .blockedHandoff(p, c, _) = f { return [p, c] }; return nil }
        XCTAssert(handoffs == [] || handoffs == [[0, 2]], "\(handoffs)")
        if !ConvolutionKernels.oneDNNAvailable { XCTAssertEqual(handoffs, []) }
        let layers = d.layers
        XCTAssert((layers[1] as! LeakyReLU).inputArrivesActivated && (layers[1] as! LeakyReLU).gradientAppliedByNeighbour)
        XCTAssertEqual((layers[0] as! Conv2d).fusedLeakyReLUSlope, 0.1)
        XCTAssertEqual(((layers[2] as! SpectralNorm).inner as! Conv2d).inputLeakyReLUSlope, 0.1)
        XCTAssertFalse((layers[3] as! LeakyReLU).gradientAppliedByNeighbour)
    }

    /// A ReLU is a LeakyReLU of slope 0: batch norms write it and, where the next layer cannot take its gradient,
    /// apply that too; a convolution writes it, and the convolution after it applies the gradient.
    func testReLUsFuseLikeLeakyReLUsOfSlopeZero() {
        let labels = ClassLabels(classes: 3)
        let g = Sequential([
            BatchNorm(numFeatures: 8), ReLU(inPlace: true), Upsample2x(),
            ConditionalBatchNorm(numFeatures: 8, labels: labels), ReLU(inPlace: true),
            Conv2d(inChannels: 8, outChannels: 8, kernelSize: 3, padding: 1, rng: &rng), ReLU(inPlace: true),
            Conv2d(inChannels: 8, outChannels: 8, kernelSize: 3, padding: 1, rng: &rng),
            BatchNorm(numFeatures: 8), LeakyReLU(0.2, inPlace: true), Upsample2x(),
        ])
        XCTAssertEqual(g.plan.fusions, [
            .activationIntoProducer(producer: 0, activation: 1, slope: 0),
            .activationIntoProducer(producer: 3, activation: 4, slope: 0),
            .activationGradientIntoConsumer(activation: 4, consumer: 5, slope: 0),
            .activationIntoProducer(producer: 5, activation: 6, slope: 0),
            .activationGradientIntoConsumer(activation: 6, consumer: 7, slope: 0),
            .activationIntoProducer(producer: 8, activation: 9, slope: 0.2),
            .activationGradientIntoProducer(producer: 0, activation: 1),
            .activationGradientIntoProducer(producer: 8, activation: 9),
        ] + (ConvolutionKernels.oneDNNAvailable
             ? [.blockedHandoff(producer: 5, consumer: 7, block: OneDNNConvolution.preferredChannelBlock)] : []))
        XCTAssert(g.plan.description.hasPrefix("0 writes ReLU of its output (1 passes it on)"), g.plan.description)
        let layers = g.layers
        XCTAssertEqual((layers[0] as! BatchNorm).fusedLeakyReLUSlope, 0)
        XCTAssertEqual((layers[3] as! ConditionalBatchNorm).fusedLeakyReLUSlope, 0)
        XCTAssertEqual((layers[5] as! Conv2d).fusedLeakyReLUSlope, 0, "8 input channels: no Winograd, the ReLU fuses")
        XCTAssertEqual((layers[7] as! Conv2d).inputLeakyReLUSlope, 0)
        for i in [1, 4, 6] { XCTAssert((layers[i] as! ReLU).gradientAppliedByNeighbour, "ReLU \(i)") }
        XCTAssert((layers[1] as! ReLU).inputArrivesActivated && (layers[6] as! ReLU).inputArrivesActivated)
        // Not in place: nothing fuses.
        XCTAssertEqual(Sequential([BatchNorm(numFeatures: 8), ReLU(), Upsample2x()]).plan.fusions, [])
    }

    /// A ReLU fuses into the convolution before it in either precision, also where that convolution asks oneDNN for
    /// float32 Winograd (3×3, stride 1, ≥ 16 input channels), whose missing post-op the oneDNN shim makes up with a
    /// second pass (`KernelTests.testWinogradConvolutionWithFusedActivationMatchesSeparateLayers`), so that the
    /// residual models' conv → ReLU → conv pairs hand over in the blocked layout.
    func testReLUFusesIntoAConvolutionThatAsksForWinograd() {
        let saved = (KernelSettings.precision, KernelSettings.oneDNNWinograd)
        defer { (KernelSettings.precision, KernelSettings.oneDNNWinograd) = saved }
        KernelSettings.oneDNNWinograd = true
        func make(_ r: inout RandomGenerator, inChannels: Int = 16) -> Sequential {
            Sequential([Conv2d(inChannels: inChannels, outChannels: 16, kernelSize: 3, padding: 1, rng: &r), ReLU(inPlace: true),
                        Conv2d(inChannels: 16, outChannels: 16, kernelSize: 3, padding: 1, rng: &r)])
        }
        for precision in [Precision.fp32, .bf16] {
            KernelSettings.precision = precision
            for inChannels in [3, 16] {
                let m = make(&rng, inChannels: inChannels)
                XCTAssert(m.plan.fusions.contains(.activationIntoProducer(producer: 0, activation: 1, slope: 0)), m.plan.description)
                XCTAssert(m.plan.fusions.contains(.activationGradientIntoConsumer(activation: 1, consumer: 2, slope: 0)))
                XCTAssertEqual((m.layers[0] as! Conv2d).fusedLeakyReLUSlope, 0)
                XCTAssert((m.layers[1] as! ReLU).inputArrivesActivated)
            }
        }
    }

    /// An activation that is not in place keeps its input for someone else to read: nothing may fuse across it.
    func testOutOfPlaceActivationIsNotFused() {
        let d = Sequential([Conv2d(inChannels: 3, outChannels: 8, kernelSize: 3, rng: &rng), LeakyReLU(0.2),
                            Conv2d(inChannels: 8, outChannels: 8, kernelSize: 3, rng: &rng)])
        XCTAssertEqual(d.plan.fusions, [])
        XCTAssertEqual(d.plan.description, "no fusions")
        XCTAssertNil((d.layers[0] as! Conv2d).fusedLeakyReLUSlope)
    }

    /// Batch norm folds into a transposed convolution only where its forward runs by phases (wide outputs).
    func testBatchNormFoldsIntoWideTransposedConvolutionsOnly() {
        let wide = Sequential([ConvTranspose2d(inChannels: 8, outChannels: 64, kernelSize: 4, stride: 2, padding: 1, rng: &rng),
                               BatchNorm(numFeatures: 64), ReLU()])
        XCTAssertEqual(wide.plan.fusions, [.batchNormIntoTransposedConvolution(convolution: 0, batchNorm: 1)])
        let narrow = Sequential([ConvTranspose2d(inChannels: 8, outChannels: 16, kernelSize: 4, stride: 2, padding: 1, rng: &rng),
                                 BatchNorm(numFeatures: 16)])
        XCTAssertEqual(narrow.plan.fusions, [], "16 output channels: no phase forward, nothing to fold into")
    }

    /// The plan is a function of the layer list: making one does not touch the layers.
    func testMakingAPlanLeavesLayersAlone() {
        let conv = Conv2d(inChannels: 3, outChannels: 8, kernelSize: 3, rng: &rng), act = LeakyReLU(0.2, inPlace: true)
        let plan = FusionPlan([conv, act])
        XCTAssertEqual(plan.fusions, [.activationIntoProducer(producer: 0, activation: 1, slope: 0.2)])
        XCTAssertNil(conv.fusedLeakyReLUSlope)
        XCTAssertFalse(act.inputArrivesActivated)
    }

    /// `kernelReport` names each convolution's path after a forward pass, nested models included.
    func testKernelReportListsEveryConvolution() {
        let g = Sequential([ConvTranspose2d(inChannels: 8, outChannels: 64, kernelSize: 4, stride: 2, padding: 1, rng: &rng),
                            BatchNorm(numFeatures: 64), ReLU(),
                            ResidualBlock(main: Sequential([Conv2d(inChannels: 64, outChannels: 64, kernelSize: 3, padding: 1, rng: &rng)]),
                                          shortcut: nil)])
        _ = g.forward(randomTensor([2, 8, 4, 4], &rng), training: true)
        let report = g.kernelReport(label: "G")
        XCTAssertEqual(report.first, "G fusions: 0 folds batch norm 1 in eval mode")
        XCTAssert(report.contains { $0.hasPrefix("G.0 ConvTranspose2d 8→64: ") }, "\(report)")
        XCTAssert(report.contains { $0.hasPrefix("G.3.main.0 Conv2d 64→64: ") }, "\(report)")
    }
}
