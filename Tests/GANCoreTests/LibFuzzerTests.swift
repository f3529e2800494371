import XCTest
import Foundation

/// libFuzzer (coverage-guided, with AddressSanitizer) on the readers of untrusted weight files, for a few
/// seconds in CI: `fuzz/run` builds `fuzz/TorchCheckpointFuzz.swift` with `swiftc -sanitize=fuzzer,address` and
/// runs it from the committed .pth/safetensors fixtures. Skipped where the toolchain cannot build fuzzers.
/// `CIFAR_GAN_LIBFUZZER_SECONDS` sets the length (default 15).
final class LibFuzzerTests: XCTestCase {
    func testTorchCheckpointReaderUnderLibFuzzer() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardized
        let seconds = ProcessInfo.processInfo.environment["CIFAR_GAN_LIBFUZZER_SECONDS"] ?? "15"
        let process = Process()
        process.executableURL = root.appendingPathComponent("fuzz/run")
        process.arguments = [seconds]
        process.currentDirectoryURL = root
        let pipe = Pipe()
        process.standardOutput = pipe; process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        if output.contains("error: unsupported option") || output.contains("unsupported argument")
            || output.contains("libclang_rt.fuzzer") || output.contains("cannot find -lclang_rt") {
            throw XCTSkip("this toolchain cannot build libFuzzer targets: \(output.suffix(300))")
        }
        let stats = output.split(separator: "\n").filter { $0.contains("stat::number_of_executed_units") || $0.contains("DONE") }
        print("libFuzzer: \(stats.joined(separator: "; "))")
        XCTAssertEqual(process.terminationStatus, 0, "libFuzzer found a crash or leak:\n\(output.suffix(3000))")
        XCTAssert(output.contains("stat::number_of_executed_units"), output.suffix(2000).description)
    }
}
