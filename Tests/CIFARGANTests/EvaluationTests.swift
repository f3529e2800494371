import XCTest
import Foundation
import CIFARGAN
import GANCore

/// `cifar-gan classifier` and `cifar-gan evaluate` end to end, with a tiny judge trained on synthetic data.
final class EvaluationTests: XCTestCase {
    func testJudgeTrainEvaluateAndBadInput() throws {
        let root = temporaryFolder(self)
        let data = root.appendingPathComponent("cifar")
        try writeSyntheticCIFAR(to: data, perClass: 8)
        let env = ["XDG_CACHE_HOME": root.appendingPathComponent("cache").path]
        let judge = root.appendingPathComponent("judge")
        let t = try runTool(["classifier", "train", "--epochs", "2", "--widths", "4,8,8", "--batch-size", "16",
                             "--data-dir", data.path, "--no-download", "--out", judge.path], env: env)
        XCTAssertEqual(t.status, 0, t.output)
        let e = try runTool(["classifier", "evaluate", "--weights", judge.path, "--data-dir", data.path, "--json"], env: env)
        XCTAssertEqual(e.status, 0, e.output)
        let acc = try JSONSerialization.jsonObject(with: Data(e.output.utf8)) as? [String: Any]
        XCTAssertNotNil(acc?["accuracy"] as? Double, e.output)

        // A small run to evaluate, and a folder of its PNGs.
        let run = root.appendingPathComponent("run")
        let r = try runTool(["train", "--class", "cat", "--epochs", "1", "--batch-size", "4", "--generator-width", "8",
                             "--discriminator-width", "4", "--data-dir", data.path, "--no-download", "--run", run.path, "--quiet"], env: env)
        XCTAssertEqual(r.status, 0, r.output)
        let common = ["--judge", judge.path, "--data-dir", data.path, "--count", "30", "--json"]
        let ev = try runTool(["evaluate", "--run", run.path] + common, env: env)
        XCTAssertEqual(ev.status, 0, ev.output)
        let obj = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(ev.output.utf8)) as? [String: Any], ev.output)
        for key in ["fid", "kid", "kid_std", "precision", "recall", "recognition_rate", "count"] { XCTAssertNotNil(obj[key], "\(key) in \(ev.output)") }
        XCTAssertEqual(obj["count"] as? Int, 30)

        // Real images of a class against the same class's reference score better than generated ones.
        let pngs = root.appendingPathComponent("pngs")
        let real = try CIFAR10.load(from: data, split: .test).subset(label: 3)
        for i in 0..<real.count { try PNG.write(real.image(i), to: pngs.appendingPathComponent("cat/\(i).png")) }
        let realEval = try runTool(["evaluate", "--images", pngs.path] + common, env: env)
        XCTAssertEqual(realEval.status, 0, realEval.output)
        let realObj = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(realEval.output.utf8)) as? [String: Any])
        XCTAssertLessThan(realObj["fid"] as! Double, obj["fid"] as! Double, "real cats closer to cats than an untrained generator")

        // In-training evaluation: FID every epoch, the best checkpoint kept, early stopping by its rule.
        let evalRun = root.appendingPathComponent("evalrun")
        let tr = try runTool(["train", "--class", "cat", "--epochs", "6", "--batch-size", "4", "--generator-width", "8",
                              "--discriminator-width", "4", "--data-dir", data.path, "--no-download", "--run", evalRun.path, "--quiet",
                              "--eval-every", "1", "--eval-count", "20", "--eval-patience", "2", "--judge", judge.path], env: env)
        XCTAssertEqual(tr.status, 0, tr.output)
        let metrics = Report.readMetrics(evalRun.appendingPathComponent("metrics.jsonl"))
        let fids = metrics.compactMap(\.fid)
        XCTAssertEqual(fids.count, metrics.count, "an FID every epoch")
        XCTAssert(metrics.allSatisfy { $0.recognitionRate != nil })
        let bestEpoch = fids.indices.min { fids[$0] < fids[$1] }! + 1
        XCTAssertEqual(Checkpoint.pointer(.best, in: evalRun.appendingPathComponent("checkpoints")), Checkpoint.folderName(epoch: bestEpoch))
        if metrics.count < 6 {
            XCTAssertEqual(metrics.count - bestEpoch, 2, "stopped two evaluations after the best: \(fids)")
            XCTAssert(tr.output.contains("early stop"), tr.output)
        } else {
            // The rule may fire at the last epoch itself (best at epoch 4, patience 2).
            XCTAssertLessThanOrEqual(6 - bestEpoch, 2, "would have stopped: \(fids)")
        }
        XCTAssert(try String(contentsOf: evalRun.appendingPathComponent("report.html"), encoding: .utf8).contains("FID"))

        // Bad input: an empty folder, a wrong image size, an unknown class, no judge.
        let empty = root.appendingPathComponent("empty"); try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        let bad = root.appendingPathComponent("bad")
        try PNG.write(RGBImage(width: 16, height: 16, pixels: [UInt8](repeating: 9, count: 768)), to: bad.appendingPathComponent("x.png"))
        let unknown = root.appendingPathComponent("unknown")
        try PNG.write(real.image(0), to: unknown.appendingPathComponent("unicorn/0.png"))
        for (args, expected) in [(["--images", empty.path], "no .png images"), (["--images", bad.path], "16×16"),
                                 (["--images", unknown.path], "unknown class 'unicorn'"),
                                 (["--images", pngs.path, "--judge", root.path], "no judge")] {
            let res = try runTool(["evaluate"] + args + ["--judge", judge.path, "--data-dir", data.path].suffix(args.contains("--judge") ? 2 : 4), env: env)
            XCTAssertNotEqual(res.status, 0, "\(args)")
            XCTAssert(res.output.contains(expected), "\(args): expected '\(expected)' in \(res.output)")
        }
    }
}
