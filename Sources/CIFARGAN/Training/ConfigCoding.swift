import GANCore
import Foundation

/// A configuration whose every field has a default (`init()`), so that a config file needs only the fields it
/// changes. One decoding idiom for every config type: the file's JSON object is laid over the encoded defaults
/// (nested objects field by field) and the result decoded by the synthesised `Codable` — so adding a field
/// is one line in the type, with no decoder to extend.
///
/// ```swift
/// let config = try RunConfig.decode(json: Data(#"{"epochs": 5, "model": {"generator_width": 256}}"#.utf8))
/// // config.batchSize == 64, config.model.latentDim == 100: the defaults
/// ```
public protocol DefaultedConfig: Codable {
    init()
}

extension DefaultedConfig {
    /// Decodes a JSON object (snake_case keys) in which any field may be missing. Errors are `ConfigError`s
    /// naming the field (prefixed with `file` when given).
    public static func decode(json data: Data, file: String? = nil) throws -> Self {
        let prefix = file.map { "\($0): " } ?? ""
        let given: Any
        do { given = try JSONSerialization.jsonObject(with: data) } catch {
            throw ConfigError("\(prefix)invalid JSON (\(error.localizedDescription))")
        }
        guard given is [String: Any] else { throw ConfigError("\(prefix)expected a JSON object of fields") }
        let defaults = try JSONSerialization.jsonObject(with: jsonEncoder.encode(Self()))
        let merged = try JSONSerialization.data(withJSONObject: overlay(given, on: defaults))
        do { return try jsonDecoder.decode(Self.self, from: merged) } catch let DecodingError.keyNotFound(key, ctx) {
            throw ConfigError("\(prefix)missing field '\(fieldPath(ctx.codingPath + [key]))'")
        } catch let DecodingError.typeMismatch(_, ctx), let DecodingError.valueNotFound(_, ctx) {
            throw ConfigError("\(prefix)field '\(fieldPath(ctx.codingPath))' has the wrong type")
        } catch let DecodingError.dataCorrupted(ctx) {
            throw ConfigError("\(prefix)field '\(fieldPath(ctx.codingPath))': \(ctx.debugDescription)")
        }
    }

    /// Reads a config file; errors name the file and the field.
    public static func load(from url: URL) throws -> Self {
        let data: Data
        do { data = try Data(contentsOf: url) } catch { throw ConfigError("\(url.path): cannot read the config file") }
        return try decode(json: data, file: url.path)
    }

    public func encoded() throws -> Data { try jsonEncoder.encode(self) }
}

/// `given` laid over `defaults`: objects merge key by key, anything else in `given` replaces the default.
private func overlay(_ given: Any, on defaults: Any) -> Any {
    guard let g = given as? [String: Any], var d = defaults as? [String: Any] else { return given }
    for (key, value) in g { d[key] = d[key].map { overlay(value, on: $0) } ?? value }
    return d
}

/// `model.generatorWidth` → `model.generator_width`, the spelling of config files.
private func fieldPath(_ path: [CodingKey]) -> String {
    path.map { $0.intValue.map(String.init) ?? snakeCase($0.stringValue) }.joined(separator: ".")
}

/// Choices spelled the same in config files, on the command line and in messages: "one of a, b, c".
public protocol ConfigChoice: RawRepresentable, CaseIterable, Codable, Sendable where RawValue == String {}

extension ConfigChoice {
    public static var choices: String { allCases.map(\.rawValue).joined(separator: ", ") }

    /// Decodes the raw value, naming the choices when it is none of them.
    public init(from decoder: Decoder) throws {
        let raw = try decoder.singleValueContainer().decode(String.self)
        guard let value = Self(rawValue: raw) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "'\(raw)' is not one of \(Self.choices)"))
        }
        self = value
    }
}

extension Precision: ConfigChoice {}

let jsonEncoder: JSONEncoder = {
    let e = JSONEncoder()
    e.keyEncodingStrategy = .convertToSnakeCase
    e.outputFormatting = [.prettyPrinted, .sortedKeys]
    return e
}()

let jsonDecoder: JSONDecoder = {
    let d = JSONDecoder()
    d.keyDecodingStrategy = .convertFromSnakeCase
    return d
}()

/// `generatorLR` → `generator_lr`, the spelling of config files.
func snakeCase(_ s: String) -> String {
    var out = ""
    let chars = Array(s)
    for (i, c) in chars.enumerated() {
        if c.isUppercase, i > 0, !(chars[i - 1].isUppercase && (i + 1 == chars.count || chars[i + 1].isUppercase)) { out += "_" }
        out += c.lowercased()
    }
    return out
}
