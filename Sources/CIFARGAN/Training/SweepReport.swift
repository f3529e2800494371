import Foundation
import GANCore

/// A sweep's outputs, ranked by FID (lowest first): `sweep.md` (a table), `sweep.jsonl` (one object per trial) and
/// `sweep.svg` (FID per trial as bars), each written atomically.
///
/// ```swift
/// let plan = try SweepPlan.decode(json: Data(#"{"target": "cat", "epochs": 1, "grid": {"loss": ["bce"]}}"#.utf8))
/// let results: [EvaluationResult] = []   // from `Evaluator.evaluate`, one per trial
/// try SweepReport.write(plan: plan, results: results, names: ["trial-00"], className: "cat",
///                       to: FileManager.default.temporaryDirectory.appendingPathComponent("sweep"))
/// ```
public enum SweepReport {
    public static func write(plan: SweepPlan, results: [EvaluationResult], names: [String], className: String, to folder: URL) throws {
        let ranked = results.sorted { $0.fid < $1.fid }
        let budget = plan.minutes > 0 ? "\(plan.minutes) minutes" : "\(plan.epochs ?? 0) epochs"
        var md = "Sweep of \(names.count) trials, \(className), \(budget) each; FID of \(plan.evalCount) samples (built-in judge)\n\n"
        md += "| rank | trial | settings | FID | KID | precision | recall | recognition |\n|---:|---|---|---:|---:|---:|---:|---:|\n"
        var lines: [String] = []
        for (place, r) in ranked.enumerated() {
            let i = names.firstIndex(of: r.name)!
            md += String(format: "| %d | %@ | %@ | %.3f | %.4f | %.3f | %.3f | %@ |\n", place + 1, r.name, plan.label(trial: i), r.fid, r.kid,
                         r.precision, r.recall, r.recognitionRate.map { String(format: "%.3f", $0) } ?? "–")
            let settings = Dictionary(uniqueKeysWithValues: plan.trials[i].map { ($0.path, $0.value.description) })
            let object: [String: Any] = ["trial": r.name, "rank": place + 1, "settings": settings, "fid": r.fid, "kid": r.kid,
                                         "precision": r.precision, "recall": r.recall]
            lines.append(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self))
        }
        let worst = max(ranked.map(\.fid).max() ?? 1, 1e-9), rowHeight = 22, width = 720, labelWidth = 420
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(width)\" height=\"\(rowHeight * ranked.count + 40)\" font-family=\"sans-serif\" font-size=\"12\">\n"
        svg += "<text x=\"4\" y=\"16\">FID by trial (lower is better): \(xmlEscaped(className)), \(budget)</text>\n"
        for (place, r) in ranked.enumerated() {
            let y = 28 + place * rowHeight, i = names.firstIndex(of: r.name)!
            let bar = Int(Double(width - labelWidth - 60) * r.fid / worst)
            svg += "<text x=\"4\" y=\"\(y + 14)\">\(xmlEscaped(r.name + ": " + plan.label(trial: i)))</text>"
            svg += "<rect x=\"\(labelWidth)\" y=\"\(y + 3)\" width=\"\(bar)\" height=\"14\" fill=\"#4c78a8\"/>"
            svg += String(format: "<text x=\"%d\" y=\"%d\">%.2f</text>\n", labelWidth + bar + 4, y + 14, r.fid)
        }
        svg += "</svg>\n"
        for (name, text) in [("sweep.md", md), ("sweep.jsonl", lines.joined(separator: "\n") + "\n"), ("sweep.svg", svg)] {
            try writeAtomically(Data(text.utf8), to: folder.appendingPathComponent(name))
        }
    }

    static func xmlEscaped(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }
}
