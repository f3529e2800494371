import Foundation

/// PNG building blocks exposed for tests that craft files by hand.
public enum PNGTestAccess {
    public static func chunk(_ out: inout Data, _ type: String, _ body: Data) { PNG.appendChunk(&out, type, body) }
    public static func deflate(_ bytes: [UInt8]) -> Data { PNG.deflate(bytes) }
}
