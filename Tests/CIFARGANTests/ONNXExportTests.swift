import XCTest
import Foundation
import CIFARGAN
import GANCore

/// ONNX export: the protobuf wire format against the encodings the protobuf documentation spells out, and
/// every generator kind checked by the reference tools (`onnx.checker`, onnxruntime; `tools/check_onnx.py`)
/// against `generate --format safetensors` on the same latents.
final class ONNXExportTests: XCTestCase {
    func testProtobufWireFormat() {
        var m = ProtobufWriter()
        m.varint(1, 150)
        XCTAssertEqual(m.bytes, [0x08, 0x96, 0x01])
        m = ProtobufWriter(); m.string(2, "testing")
        XCTAssertEqual(m.bytes, [0x12, 0x07, 0x74, 0x65, 0x73, 0x74, 0x69, 0x6e, 0x67])
        m = ProtobufWriter(); m.message(3) { $0.varint(1, 150) }
        XCTAssertEqual(m.bytes, [0x1a, 0x03, 0x08, 0x96, 0x01])
        m = ProtobufWriter(); m.packedVarints(4, [3, 270, 86942])
        XCTAssertEqual(m.bytes, [0x22, 0x06, 0x03, 0x8e, 0x02, 0x9e, 0xa7, 0x05])
        m = ProtobufWriter(); m.varint(1, -1)   // int64 −1: ten bytes of two's complement
        XCTAssertEqual(m.bytes, [0x08] + Array(repeating: 0xff, count: 9) + [0x01])
        m = ProtobufWriter(); m.float(2, 1)
        XCTAssertEqual(m.bytes, [0x15, 0x00, 0x00, 0x80, 0x3f])
    }

    func testLayersWithoutATranslationAreNamed() {
        var rng = RandomGenerator(seed: 1)
        let graph = ONNXGraph(name: "g")
        XCTAssertThrowsError(try graph.add(Sequential([Linear(inFeatures: 2, outFeatures: 2, rng: &rng), Dropout(0.5)]), input: "x")) {
            XCTAssert("\($0)".contains("Dropout") && "\($0)".contains("'1'"), "\($0)")
        }
    }

    func testEveryGeneratorAgreesWithOnnxRuntime() throws {
        let dir = temporaryFolder(self)
        try writeSyntheticCIFAR(to: dir, perClass: 8, files: CIFAR10.trainFiles)
        let data = try CIFAR10.load(from: dir, split: .train)
        let kinds: [(String, (inout RunConfig) -> Void)] = [
            ("original", { _ in }),
            ("nearest-ema", { $0.model.upsampling = .nearest; $0.emaDecay = 0.9 }),
            ("cnn-conditional-ema", { $0.target = "conditional"; $0.model.architecture = .cnn; $0.model.leakySlope = 0.1; $0.emaDecay = 0.9 }),
            ("resnet-conditional", { $0.target = "conditional"; $0.model.architecture = .resnet }),
        ]
        var checks: [(onnx: URL, samples: URL)] = []
        for (name, edit) in kinds {
            var cfg = tinyConfig(); cfg.epochs = 1
            edit(&cfg)
            let run = temporaryFolder(self)
            _ = try Jobs.train(config: cfg, runFolder: run, resume: false, data: data, quiet: true, log: { _ in })
            let onnx = dir.appendingPathComponent("\(name).onnx"), samples = dir.appendingPathComponent(name)
            try Jobs.export(runFolder: run, className: nil, checkpoint: nil, out: onnx)
            let className = cfg.target == "conditional" ? "dog" : "cat"
            try Jobs.generate(runFolder: run, className: className, checkpoint: nil, count: 5, seed: 3, out: samples,
                              format: .safetensors, log: { _ in })
            let file = samples.appendingPathComponent("\(className).safetensors")
            let tensors = try SafeTensors.read(from: file)
            XCTAssertEqual(tensors["latents"]?.shape, [5, 16])
            XCTAssertEqual(tensors["images"]?.shape, [5, 3, 32, 32])
            XCTAssertEqual(tensors["classes"]?.values, Array(repeating: cfg.target == "conditional" ? 5 : 0, count: 5))
            checks.append((onnx, file))
        }
        for (onnx, samples) in checks {
            let r = try runPythonCheck(packages: ["onnx", "onnxruntime"], "check_onnx.py", [onnx.path, samples.path, "--tolerance", "1e-4"])
            XCTAssertEqual(r.status, 0, r.output)
            print(r.output.trimmingCharacters(in: .whitespacesAndNewlines))
        }
    }

    func testARunOfSeveralModelsNeedsAClass() throws {
        let run = temporaryFolder(self)
        var cfg = tinyConfig(target: "all")
        try FileManager.default.createDirectory(at: run, withIntermediateDirectories: true)
        try cfg.encoded().write(to: run.appendingPathComponent("config.json"))
        for name in ["cat", "dog"] {
            cfg.target = .oneClass(name)
            let sub = run.appendingPathComponent(name)
            try FileManager.default.createDirectory(at: sub, withIntermediateDirectories: true)
            try cfg.encoded().write(to: sub.appendingPathComponent("config.json"))
        }
        XCTAssertThrowsError(try Jobs.export(runFolder: run, className: nil, checkpoint: nil, out: run.appendingPathComponent("g.onnx"))) {
            XCTAssert("\($0)".contains("--class") && "\($0)".contains("cat, dog"), "\($0)")
        }
    }
}
