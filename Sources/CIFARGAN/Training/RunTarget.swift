/// What a run trains, spelled in config.json and by `train` as before: "all" (one model per class, in
/// subfolders), "unconditional" (one model on every image), "conditional" (one class-conditional model for
/// every class) or a class name (one model of that class).
///
/// ```swift
/// var config = RunConfig()
/// config.target = .conditional
/// config.target = "cat"              // .oneClass("cat")
/// print(config.target)               // cat
/// ```
public enum RunTarget: Codable, Hashable, Sendable, CustomStringConvertible, ExpressibleByStringLiteral {
    case all, unconditional, conditional
    case oneClass(String)

    public init(_ text: String) {
        switch text {
        case "all": self = .all
        case "unconditional": self = .unconditional
        case "conditional": self = .conditional
        default: self = .oneClass(text)
        }
    }

    public init(stringLiteral text: String) { self.init(text) }

    /// The spelling of config files and run-folder names.
    public var description: String {
        switch self {
        case .all: return "all"
        case .unconditional: return "unconditional"
        case .conditional: return "conditional"
        case .oneClass(let name): return name
        }
    }

    /// The class of a one-class run.
    public var className: String? {
        if case .oneClass(let name) = self { return name }
        return nil
    }

    public init(from decoder: Decoder) throws { self.init(try decoder.singleValueContainer().decode(String.self)) }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }
}
