import XCTest
import Foundation

/// The doc-comment examples of Sources/ compile: `DocExamples.generated.swift` holds each one as a function
/// of this test target (so a build with a broken example fails), and this test fails when that file no longer
/// matches the examples in Sources/ (`python3 scripts/doc-examples.py` regenerates it).
final class DocExampleTests: XCTestCase {
    func testGeneratedExamplesMatchTheSources() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardized
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", root.appendingPathComponent("scripts/doc-examples.py").path, "--check"]
        let pipe = Pipe()
        process.standardError = pipe
        do { try process.run() } catch { throw XCTSkip("python3 is not available: \(error)") }
        process.waitUntilExit()
        let message = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertEqual(process.terminationStatus, 0, message)
    }
}
