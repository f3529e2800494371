import Foundation
import GANCore

/// A hyperparameter search at a fixed budget per trial — the original author's "additional iteration on the
/// hyperparameters": every combination of a grid of config fields (or a seeded random sample of them) trains one
/// model of one class from the same base recipe, each for `minutes` (or `epochs`), and the trials are ranked by the
/// judge's FID. Under mpirun the trials are dealt out to the ranks by index; rank 0 writes the table and chart.
///
/// A sweep file (JSON; unknown keys are refused by name):
///
///     {"target": "cat", "minutes": 10, "base": {"preset": "modern"},
///      "grid": {"optimizer.generator_lr": [0.0001, 0.0002], "loss": ["bce", "hinge"]},
///      "random": 0, "seed": 0, "eval_count": 1000}
///
/// ```swift
/// let plan = try SweepPlan.decode(json: Data(#"{"target": "cat", "grid": {"loss": ["bce", "hinge"]}}"#.utf8))
/// print(plan.trials.count)   // 2
/// ```
public struct SweepPlan: Sendable {
    public var target: String
    public var minutes: Double
    public var epochs: Int?
    /// The base configuration as a JSON object (a run's config.json fields), with "preset" naming a start.
    public var base: [String: JSONValue]
    /// Per trial, the dotted field paths and their values, in grid order.
    public var trials: [[(path: String, value: JSONValue)]]
    public var evalCount: Int
    public var seed: UInt64

    /// A JSON value, kept as parsed so that a trial's fields can be written into the base object.
    public indirect enum JSONValue: Sendable, CustomStringConvertible {
        case number(Double), string(String), bool(Bool), array([JSONValue]), object([String: JSONValue]), null

        init(_ any: Any) throws {
            switch any {
            case let b as Bool where type(of: any) == type(of: NSNumber(value: true)): self = .bool(b)
            case let n as NSNumber: self = .number(n.doubleValue)
            case let s as String: self = .string(s)
            case let a as [Any]: self = .array(try a.map(JSONValue.init))
            case let o as [String: Any]: self = .object(try o.mapValues(JSONValue.init))
            case is NSNull: self = .null
            default: throw ConfigError("sweep: unsupported JSON value \(any)")
            }
        }

        var any: Any {
            switch self {
            case .number(let n): return n
            case .string(let s): return s
            case .bool(let b): return b
            case .array(let a): return a.map(\.any)
            case .object(let o): return o.mapValues(\.any)
            case .null: return NSNull()
            }
        }

        public var description: String {
            switch self {
            case .number(let n): return n == n.rounded() && abs(n) < 1e9 ? String(Int(n)) : "\(n)"
            case .string(let s): return s
            case .bool(let b): return "\(b)"
            case .array(let a): return a.map(\.description).joined(separator: ",")
            case .object: return "{…}"
            case .null: return "null"
            }
        }
    }

    public static func decode(json data: Data, file: String = "sweep file") throws -> SweepPlan {
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw ConfigError("\(file): not a JSON object")
        }
        let known: Set<String> = ["target", "minutes", "epochs", "base", "grid", "random", "seed", "eval_count"]
        if let unknown = object.keys.sorted().first(where: { !known.contains($0) }) {
            throw ConfigError("\(file): unknown field '\(unknown)' (expected \(known.sorted().joined(separator: ", ")))")
        }
        guard let target = object["target"] as? String else { throw ConfigError("\(file): field 'target' (a class name) is required") }
        let minutes = (object["minutes"] as? NSNumber)?.doubleValue ?? 0
        let epochs = (object["epochs"] as? NSNumber)?.intValue
        guard minutes > 0 || (epochs ?? 0) > 0 else { throw ConfigError("\(file): give 'minutes' (the budget per trial) or 'epochs'") }
        guard let grid = object["grid"] as? [String: Any], !grid.isEmpty else {
            throw ConfigError("\(file): field 'grid' must map config fields to lists of values")
        }
        var axes: [(String, [JSONValue])] = []
        for key in grid.keys.sorted() {
            guard let values = grid[key] as? [Any], !values.isEmpty else { throw ConfigError("\(file): grid field '\(key)' must be a non-empty list") }
            axes.append((key, try values.map(JSONValue.init)))
        }
        var trials: [[(path: String, value: JSONValue)]] = [[]]
        for (key, values) in axes { trials = trials.flatMap { t in values.map { t + [(key, $0)] } } }
        let seed = UInt64((object["seed"] as? NSNumber)?.intValue ?? 0)
        if let n = (object["random"] as? NSNumber)?.intValue, n > 0, n < trials.count {
            var rng = RandomGenerator(seed: seed)
            for i in stride(from: trials.count - 1, to: 0, by: -1) { trials.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
            trials = Array(trials.prefix(n))
        }
        let base = try ((object["base"] as? [String: Any]) ?? [:]).mapValues(JSONValue.init)
        let evalCount = (object["eval_count"] as? NSNumber)?.intValue ?? 1000
        guard evalCount >= 2 else { throw ConfigError("\(file): eval_count must be at least 2") }
        return SweepPlan(target: target, minutes: minutes, epochs: epochs, base: base, trials: trials, evalCount: evalCount, seed: seed)
    }

    /// Trial `index`'s configuration: the base (its preset, then its fields), the trial's fields, the budget.
    public func config(trial index: Int) throws -> RunConfig {
        var fields = base.mapValues(\.any)
        var start = RunConfig()
        if let preset = fields.removeValue(forKey: "preset") as? String { start = try RunConfig.preset(preset) }
        var object = try JSONSerialization.jsonObject(with: start.encoded()) as! [String: Any]
        func set(_ path: [String], _ value: Any, in dict: inout [String: Any]) {
            guard path.count > 1 else { dict[path[0]] = value; return }
            var inner = dict[path[0]] as? [String: Any] ?? [:]
            set(Array(path.dropFirst()), value, in: &inner)
            dict[path[0]] = inner
        }
        for (k, v) in fields { set(k.split(separator: ".").map(String.init), v, in: &object) }
        for (path, value) in trials[index] { set(path.split(separator: ".").map(String.init), value.any, in: &object) }
        var config = try RunConfig.decode(json: JSONSerialization.data(withJSONObject: object), file: "sweep trial \(index)")
        config.target = RunTarget(target)
        if let epochs { config.epochs = epochs }
        config.timeLimitMinutes = minutes
        try config.validate()
        return config
    }

    /// "field=value, …" for tables.
    public func label(trial index: Int) -> String {
        trials[index].map { "\($0.path)=\($0.value)" }.joined(separator: ", ")
    }
}
