import Foundation
import GANCore

/// `report.html`: a self-contained page (inline SVG charts, sample grids by relative path) that shows at a
/// glance whether training is healthy: both losses, D's outputs and accuracies, speed, and samples over time.
public enum Report {
    public static func readMetrics(_ url: URL) -> [EpochMetrics] {
        guard let text = try? String(contentsOf: url, encoding: .utf8) else { return [] }
        let dec = JSONDecoder(); dec.keyDecodingStrategy = .convertFromSnakeCase
        return text.split(separator: "\n").compactMap { try? dec.decode(EpochMetrics.self, from: Data($0.utf8)) }
    }

    public static func write(runFolder: URL, title: String, config: RunConfig) throws {
        let run = RunFolder(runFolder)
        let metrics = readMetrics(run.metricsFile)
        let epochs = metrics.map { Double($0.epoch) }
        func chart(_ name: String, _ series: [(String, String, [Double])], yRange: ClosedRange<Double>? = nil) -> String {
            lineChart(title: name, x: epochs, series: series, yRange: yRange)
        }
        let samples = (try? FileManager.default.contentsOfDirectory(atPath: run.samples.path))?
            .filter { $0.hasSuffix(".png") }.sorted() ?? []
        let step = max(1, samples.count / 12)
        let timeline = samples.enumerated().filter { $0.offset % step == 0 || $0.offset == samples.count - 1 }.map { $0.element }
        let pointers = CheckpointPointer.allCases.compactMap { p in
            run.pointer(p).map { "<li><b>\(p.rawValue)</b>: checkpoints/\($0)</li>" }
        }.joined()
        let last = metrics.last
        let configJSON = String(decoding: (try? config.encoded()) ?? Data(), as: UTF8.self)
        var html = """
        <!doctype html><html><head><meta charset="utf-8"><title>cifar-gan: \(escape(title))</title>
        <meta http-equiv="refresh" content="60">
        <style>body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
        .charts{display:flex;flex-wrap:wrap;gap:16px}.grid img{image-rendering:pixelated;width:100%;max-width:560px}
        .timeline{display:flex;flex-wrap:wrap;gap:12px}.timeline figure{margin:0;text-align:center;font-size:12px}
        .timeline img{image-rendering:pixelated;width:180px}pre{background:#f5f5f5;padding:8px;font-size:12px}
        td,th{padding:2px 10px;text-align:right}</style></head><body>
        <h1>\(escape(title))</h1>
        <p>\(metrics.count) epochs\(last.map { String(format: " · last: loss_d %.3f, loss_g %.3f, D(x) %.3f, D(G(z)) %.3f, %.0f images/s, %.1f s/epoch", $0.lossD, $0.lossG, $0.dReal, $0.dFake, $0.imagesPerSec, $0.seconds) } ?? "").
        Healthy training keeps D(x) and D(G(z)) apart but away from 1 and 0; a D accuracy on generated images near 1 for many epochs means the discriminator dominates.</p>
        <div class="charts">
        \(chart("Losses", [("loss_d", "#d62728", metrics.map(\.lossD)), ("loss_g", "#1f77b4", metrics.map(\.lossG))]))
        \(chart("D outputs", [("D(x)", "#2ca02c", metrics.map(\.dReal)), ("D(G(z))", "#ff7f0e", metrics.map(\.dFake))], yRange: 0...1))
        \(chart("D accuracy", [("real", "#2ca02c", metrics.map(\.accuracyReal)), ("generated", "#ff7f0e", metrics.map(\.accuracyFake))], yRange: 0...1))
        \(chart("Images per second", [("images/s", "#9467bd", metrics.map(\.imagesPerSec))]))
        \(metrics.contains { $0.fid != nil } ? chart("FID (judge features; lower is better)", [("FID", "#8c564b", metrics.map { $0.fid ?? .nan })]) : "")
        \(metrics.contains { $0.recognitionRate != nil } ? chart("Recognition rate", [("recognised", "#17becf", metrics.map { $0.recognitionRate ?? .nan })], yRange: 0...1) : "")
        </div>
        """
        if let latest = samples.last {
            html += "<h2>Latest samples (\(escape(latest)))</h2><div class=\"grid\"><img src=\"samples/\(escape(latest))\" alt=\"latest samples\"></div>"
        }
        html += "<h2>Samples over time (same latent vectors)</h2><div class=\"timeline\">"
        for s in timeline { html += "<figure><img src=\"samples/\(escape(s))\"><figcaption>\(escape(s))</figcaption></figure>" }
        html += "</div><h2>Checkpoints</h2><ul>\(pointers)</ul><h2>Configuration</h2><pre>\(escape(configJSON))</pre></body></html>\n"
        try writeAtomically(Data(html.utf8), to: run.report)
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }

    /// A small SVG line chart with axes, min/max labels and a legend.
    static func lineChart(title: String, x: [Double], series: [(String, String, [Double])], yRange: ClosedRange<Double>? = nil) -> String {
        let w = 540.0, h = 260.0, left = 50.0, right = 12.0, top = 28.0, bottom = 30.0
        let values = series.flatMap { $0.2 }.filter(\.isFinite)
        var lo = yRange?.lowerBound ?? (values.min() ?? 0), hi = yRange?.upperBound ?? (values.max() ?? 1)
        if hi - lo < 1e-9 { lo -= 0.5; hi += 0.5 }
        let x0 = x.first ?? 0, x1 = max(x.last ?? 1, x0 + 1)
        func px(_ v: Double) -> Double { left + (v - x0) / (x1 - x0) * (w - left - right) }
        func py(_ v: Double) -> Double { top + (1 - (v - lo) / (hi - lo)) * (h - top - bottom) }
        var svg = "<svg width=\"\(Int(w))\" height=\"\(Int(h))\" xmlns=\"http://www.w3.org/2000/svg\" font-size=\"11\">"
        svg += "<text x=\"\(left)\" y=\"16\" font-size=\"13\" font-weight=\"bold\">\(escape(title))</text>"
        svg += "<rect x=\"\(left)\" y=\"\(top)\" width=\"\(w - left - right)\" height=\"\(h - top - bottom)\" fill=\"none\" stroke=\"#bbb\"/>"
        svg += String(format: "<text x=\"4\" y=\"%.1f\">%.3g</text><text x=\"4\" y=\"%.1f\">%.3g</text>", top + 10, hi, h - bottom, lo)
        svg += String(format: "<text x=\"%.1f\" y=\"%.1f\">epoch %.0f</text><text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.0f</text>",
                      left, h - 10, x0, w - right, h - 10, x1)
        for (k, (name, color, ys)) in series.enumerated() {
            let pts = zip(x, ys).filter { $0.1.isFinite }.map { String(format: "%.1f,%.1f", px($0.0), py($0.1)) }.joined(separator: " ")
            if x.count == 1, let y = ys.first, y.isFinite {
                svg += String(format: "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%@\"/>", px(x[0]), py(y), color)
            }
            svg += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"1.8\" points=\"\(pts)\"/>"
            svg += "<text x=\"\(w - right - 120)\" y=\"\(16 + 0 * k)\" dx=\"\(k * 60)\" fill=\"\(color)\">\(escape(name))</text>"
        }
        return svg + "</svg>"
    }
}
