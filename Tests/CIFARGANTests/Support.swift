import Foundation
import XCTest
import CIFARGAN
import GANCore

/// A fresh temporary folder, removed when the test ends.
func temporaryFolder(_ test: XCTestCase) -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("cifar-gan-test-\(UUID().uuidString)")
    try! FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(at: url) }
    return url
}

/// Synthetic CIFAR-10 binary files: `perClass` images of each class per file, each class a distinct colour
/// pattern with noise, so a model can learn something in a few epochs.
func writeSyntheticCIFAR(to dir: URL, perClass: Int = 4, files: [String] = CIFAR10.trainFiles + CIFAR10.testFiles, seed: UInt64 = 1) throws {
    var rng = RandomGenerator(seed: seed)
    for name in files {
        var data = Data()
        for label in 0..<10 {
            for _ in 0..<perClass {
                data.append(UInt8(label))
                for c in 0..<3 {
                    for p in 0..<1024 {
                        let base = (label * 25 + c * 60 + (p % 32) * 3) % 256
                        data.append(UInt8(max(0, min(255, base + Int(rng.uniform(-20, 20))))))
                    }
                }
            }
        }
        try writeAtomically(data, to: dir.appendingPathComponent(name))
    }
}

/// A small, fast recipe: the original architecture at 1/16 of its widths.
func tinyConfig(target: RunTarget = "cat") -> RunConfig {
    var c = RunConfig()
    c.target = target
    c.model.generatorWidth = 8
    c.model.discriminatorWidth = 4
    c.model.latentDim = 16
    c.batchSize = 8
    c.epochs = 3
    c.checkpointEvery = 1
    c.sampleCount = 4
    c.seed = 7
    return c
}

/// The `cifar-gan` executable built beside the tests.
func cifarGANBinary() -> URL {
    let products = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent(".build")
    let candidates = ["release", "debug"].map { products.appendingPathComponent($0).appendingPathComponent("cifar-gan") }
    let bundleSibling = Bundle(for: BundleMarker.self).bundleURL.deletingLastPathComponent().appendingPathComponent("cifar-gan")
    return ([bundleSibling] + candidates).first { FileManager.default.isExecutableFile(atPath: $0.path) } ?? candidates[0]
}
final class BundleMarker {}

struct ProcessResult { var status: Int32; var output: String }

/// Runs the tool with arguments and environment additions; returns its exit status and combined output.
@discardableResult
func runTool(_ args: [String], env: [String: String] = [:], timeout: TimeInterval = 300) throws -> ProcessResult {
    let p = Process()
    p.executableURL = cifarGANBinary()
    p.arguments = args
    p.environment = ProcessInfo.processInfo.environment.merging(env) { $1 }
    return try runCapturing(p)
}

/// Runs a prepared process to its end; its exit status and combined output.
func runCapturing(_ p: Process) throws -> ProcessResult {
    let pipe = Pipe()
    p.standardOutput = pipe; p.standardError = pipe
    try p.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return ProcessResult(status: p.terminationStatus, output: String(decoding: data, as: UTF8.self))
}

/// `mpirun -np N cifar-gan ARGS` as a prepared process (as root where the tests run as root, on one machine's
/// cores, Open MPI's session files in a test folder); skips the test where mpirun is not installed.
func mpirunProcess(_ test: XCTestCase, ranks: Int, _ args: [String]) throws -> Process {
    guard let mpirun = ["/usr/bin/mpirun", "/usr/local/bin/mpirun"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
        throw XCTSkip("mpirun not installed (scripts/install-deps installs Open MPI)")
    }
    let p = Process()
    p.executableURL = URL(fileURLWithPath: mpirun)
    p.arguments = ["--oversubscribe", "--allow-run-as-root", "-np", "\(ranks)", cifarGANBinary().path] + args
    p.environment = ProcessInfo.processInfo.environment.merging(["TMPDIR": temporaryFolder(test).path]) { $1 }
    return p
}

/// Runs `tools/SCRIPT` with python3 under `tools/with-python-packages` (which installs missing pip packages
/// into .build/python-tools); skips the test, with the reason, where they cannot be installed (exit 77).
func runPythonCheck(packages: [String], _ script: String, _ args: [String]) throws -> ProcessResult {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let p = Process()
    p.executableURL = root.appendingPathComponent("tools/with-python-packages")
    p.arguments = packages + ["--", "python3", root.appendingPathComponent("tools").appendingPathComponent(script).path] + args
    let pipe = Pipe()
    p.standardOutput = pipe; p.standardError = pipe
    try p.run()
    let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    p.waitUntilExit()
    if p.terminationStatus == 77 { throw XCTSkip("\(packages.joined(separator: ", ")) unavailable: \(output)") }
    return ProcessResult(status: p.terminationStatus, output: output)
}

/// All of a generator checkpoint's tensors, for exact comparisons.
func generatorWeights(_ runFolder: URL, checkpoint: String = "latest") throws -> [String: [Float]] {
    let folder = try Checkpoint.resolve(checkpoint, in: runFolder.appendingPathComponent("checkpoints"))
    var out: [String: [Float]] = [:]
    for file in ["generator.safetensors", "discriminator.safetensors"] {
        for (k, v) in try SafeTensors.read(from: folder.appendingPathComponent(file)) { out[file + "/" + k] = v.values }
    }
    return out
}
