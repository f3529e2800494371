import XCTest
import Foundation
import CIFARGAN
import GANCore

/// `cifar-gan sweep`: a grid of recipe options, one run per trial, ranked by FID; continued where it stopped; bad
/// files named; under mpirun the trials spread over the ranks.
final class SweepTests: XCTestCase {
    var dataDir: URL!

    override func setUpWithError() throws {
        dataDir = temporaryFolder(self).appendingPathComponent("cifar")
        try writeSyntheticCIFAR(to: dataDir, perClass: 8)
    }

    func sweepFile(_ json: String) throws -> URL {
        let url = temporaryFolder(self).appendingPathComponent("sweep.json")
        try Data(json.utf8).write(to: url)
        return url
    }

    let grid = #"""
    {"target": "cat", "epochs": 2, "base": {"model": {"generator_width": 16, "discriminator_width": 8}, "batch_size": 4},
     "grid": {"optimizer.generator_lr": [0.0001, 0.0002], "loss": ["bce", "hinge"]}, "eval_count": 8}
    """#

    /// The rows of sweep.md's table: (rank, trial, FID).
    func rows(_ folder: URL) throws -> [(Int, String, Double)] {
        try String(contentsOf: folder.appendingPathComponent("sweep.md"), encoding: .utf8).split(separator: "\n")
            .filter { $0.hasPrefix("| ") && !$0.hasPrefix("| rank") }
            .map { line in
                let cells = line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
                return (Int(cells[0])!, cells[1], Double(cells[3])!)
            }
    }

    func testGridTrainsEveryTrialRanksByFIDAndContinues() throws {
        let out = temporaryFolder(self).appendingPathComponent("sweep")
        let file = try sweepFile(grid)
        let flags = ["sweep", file.path, "--out", out.path, "--data-dir", dataDir.path, "--no-download"]
        let first = try runTool(flags)
        XCTAssertEqual(first.status, 0, first.output)
        let table = try rows(out)
        XCTAssertEqual(table.map(\.0), [1, 2, 3, 4])
        XCTAssertEqual(Set(table.map(\.1)), ["trial-00", "trial-01", "trial-02", "trial-03"])
        XCTAssertEqual(table.map(\.2), table.map(\.2).sorted(), "ranked by FID")
        let md = try String(contentsOf: out.appendingPathComponent("sweep.md"), encoding: .utf8)
        XCTAssert(md.contains("loss=hinge, optimizer.generator_lr=0.0002"), md)
        XCTAssertEqual(try String(contentsOf: out.appendingPathComponent("sweep.jsonl"), encoding: .utf8).split(separator: "\n").count, 4)
        XCTAssert(try String(contentsOf: out.appendingPathComponent("sweep.svg"), encoding: .utf8).contains("<rect"))
        // Each trial is a run folder with its own settings.
        let config = try RunFolder(out.appendingPathComponent("trial-03")).loadConfig()
        XCTAssertEqual(config.loss, .hinge); XCTAssertEqual(config.optimizer.generatorLR, 2e-4); XCTAssertEqual(config.model.generatorWidth, 16)
        // Run again: the finished trials are kept, not retrained, and the table is the same.
        let again = try runTool(flags)
        XCTAssertEqual(again.status, 0, again.output)
        XCTAssertFalse(again.output.contains("epoch 1/2"), again.output)
        XCTAssertEqual(try rows(out).map(\.1), table.map(\.1))
    }

    func testBadSweepFilesAreNamed() throws {
        for (json, expected) in [(#"{"target": "cat", "epochs": 1, "grid": {"loss": ["bce"]}, "budget": 3}"#, "unknown field 'budget'"),
                                 (#"{"target": "cat", "epochs": 1, "grid": {"loss": ["wasserstein"]}}"#, "loss"),
                                 (#"{"target": "cat", "grid": {"loss": ["bce"]}}"#, "'minutes'"),
                                 (#"{"target": "cat", "epochs": 1, "grid": {}}"#, "'grid'")] {
            let r = try runTool(["sweep", try sweepFile(json).path, "--out", temporaryFolder(self).path, "--data-dir", dataDir.path, "--no-download"])
            XCTAssertNotEqual(r.status, 0, json)
            XCTAssert(r.output.contains(expected), "\(json): \(r.output)")
        }
        let plan = try SweepPlan.decode(json: Data(#"{"target": "cat", "epochs": 1, "random": 3, "grid": {"loss": ["bce", "hinge"], "ema_decay": [0, 0.9, 0.99]}}"#.utf8))
        XCTAssertEqual(plan.trials.count, 3, "a random sample of the six combinations")
    }

    func testTrialsSpreadOverMPIRanks() throws {
        let out = temporaryFolder(self).appendingPathComponent("sweep")
        let r = try runCapturing(try mpirunProcess(self, ranks: 2, ["sweep", try sweepFile(grid).path, "--out", out.path,
                                                                     "--data-dir", dataDir.path, "--no-download"]))
        let output = r.output
        XCTAssertEqual(r.status, 0, output)
        XCTAssert(output.contains("rank 0: trial-00") && output.contains("rank 1: trial-01"), output)
        XCTAssertEqual(try rows(out).count, 4)
    }
}
