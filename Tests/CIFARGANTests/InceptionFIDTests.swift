import XCTest
import Foundation
import CIFARGAN
import GANCore

/// pytorch-fid's FID Inception in Swift against pytorch-fid's own code: `tools/make_inception_fixture.py`
/// builds its network with random weights (pytorch-fid's file cannot be downloaded here), saves them in the
/// legacy .pth format as pytorch-fid's file is, and records the features `pytorch_fid.inception.InceptionV3`
/// computes for a few images; the toolkit reads that file and must compute the same features.
final class InceptionFIDTests: XCTestCase {
    func testFeaturesAgreeWithPytorchFid() throws {
        let dir = temporaryFolder(self)
        let r = try runPythonCheck(packages: ["torch", "--no-deps", "torchvision", "pytorch-fid=pytorch_fid"],
                                   "make_inception_fixture.py", [dir.path])
        XCTAssertEqual(r.status, 0, r.output)
        let weights = try TorchCheckpoint.read(from: dir.appendingPathComponent("pt_inception-random.pth"))
        let inception = try InceptionFID(weights: weights, file: "pt_inception-random.pth")
        let expected = try SafeTensors.read(from: dir.appendingPathComponent("inception_expected.safetensors"))
        let images = try XCTUnwrap(expected["images"]), reference = try XCTUnwrap(expected["features"])
        // Both kernel paths: oneDNN's convolutions (where installed) and the GEMM fallback; batches of 3 so that
        // the last batch is a short one.
        let saved = KernelSettings.convolution
        defer { KernelSettings.convolution = saved }
        inception.batchSize = 3
        for kernels in [ConvolutionKernels.auto, .blas] {
            KernelSettings.convolution = kernels
            let got = inception.features(Tensor(shape: images.shape, values: images.values)).toArray()
            XCTAssertEqual(got.count, reference.values.count)
            let scale = reference.values.map(abs).max() ?? 1
            let worst = zip(got, reference.values).map { abs($0 - $1) }.max() ?? 0
            print("Inception features (\(kernels), oneDNN \(ConvolutionKernels.oneDNNAvailable ? "available" : "missing")): "
                  + "max |swift - pytorch-fid| = \(worst) (largest feature \(scale))")
            XCTAssertLessThan(worst, 1e-4 * max(1, scale), "\(kernels): features agree with pytorch-fid to float32 rounding")
        }
    }

    func testWeightsOfAnotherNetworkAreRefusedByName() throws {
        XCTAssertThrowsError(try InceptionFID(weights: ["fc.weight": SafeTensors.Entry(dtype: .f32, shape: [1], values: [0])], file: "resnet.pth")) {
            XCTAssert("\($0)".contains("resnet.pth") && "\($0)".contains("Conv2d_1a_3x3.conv.weight"), "\($0)")
        }
    }
}
