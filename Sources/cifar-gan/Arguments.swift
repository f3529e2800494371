import ArgumentParser
import CIFARGAN
import GANCore

// Typed flags: the same spellings as config files (`ConfigChoice`), and `--help` lists the choices.
extension GANLoss: ExpressibleByArgument {}
extension Architecture: ExpressibleByArgument {}
extension Upsampling: ExpressibleByArgument {}
extension Precision: ExpressibleByArgument {}

/// Puts a requested precision in force for this process (`Precision.resolve`: float32, with a message, where the
/// CPU cannot run bfloat16 natively).
func usePrecision(_ requested: Precision, log: (String) -> Void) {
    let (precision, message) = Precision.resolve(requested)
    if let message { log(message) }
    KernelSettings.precision = precision
}
extension RunTarget: ExpressibleByArgument {
    public init?(argument: String) { self.init(argument) }
}

/// `--diff-augment color,translation` (or `none`) → the operations, with an error naming the flag.
func augmentOperations(_ text: String, flag: String = "--diff-augment") throws -> [DiffAugment.Operation] {
    if text == "none" { return [] }
    return try text.split(separator: ",").map { part in
        let name = part.trimmingCharacters(in: .whitespaces)
        guard let op = DiffAugment.Operation(rawValue: name) else {
            throw ValidationError("\(flag): unknown operation '\(name)'; expected any of \(DiffAugment.Operation.allCases.map(\.rawValue).joined(separator: ",")) or none")
        }
        return op
    }
}
