/// A writer of the protocol-buffer wire format (https://protobuf.dev/programming-guides/encoding/): just
/// what the ONNX exporter and the TensorBoard log need — varints, floats, doubles, length-delimited bytes, strings and nested
/// messages. Fields are written in the order they are called; readers accept any order.
///
/// ```swift
/// var m = ProtobufWriter()
/// m.varint(1, 150)                                // 08 96 01
/// m.string(2, "testing")                          // 12 07 74 65 73 74 69 6e 67
/// m.message(3) { $0.varint(1, 1) }                // 1a 02 08 01
/// ```
public struct ProtobufWriter: Sendable {
    public private(set) var bytes: [UInt8] = []

    public init() {}

    /// Wire types: 0 varint, 1 64-bit, 2 length-delimited, 5 32-bit.
    private mutating func tag(_ field: Int, _ wireType: UInt64) { rawVarint(UInt64(field) << 3 | wireType) }

    private mutating func rawVarint(_ value: UInt64) {
        var v = value
        while v >= 0x80 { bytes.append(UInt8(v & 0x7f) | 0x80); v >>= 7 }
        bytes.append(UInt8(v))
    }

    /// An int32/int64/uint64/enum/bool field; negative numbers take ten bytes (two's complement), as in protobuf.
    public mutating func varint(_ field: Int, _ value: Int64) { tag(field, 0); rawVarint(UInt64(bitPattern: value)) }
    public mutating func varint(_ field: Int, _ value: Int) { varint(field, Int64(value)) }

    /// A `float` field (little-endian IEEE 754).
    public mutating func float(_ field: Int, _ value: Float) {
        tag(field, 5)
        withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes.append(contentsOf: $0) }
    }

    /// A `double` field (little-endian IEEE 754).
    public mutating func double(_ field: Int, _ value: Double) {
        tag(field, 1)
        withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes.append(contentsOf: $0) }
    }

    public mutating func bytes(_ field: Int, _ value: [UInt8]) {
        tag(field, 2); rawVarint(UInt64(value.count)); bytes.append(contentsOf: value)
    }

    public mutating func string(_ field: Int, _ value: String) { bytes(field, Array(value.utf8)) }

    /// A nested message, written by `body` into its own writer and then length-prefixed.
    public mutating func message(_ field: Int, _ body: (inout ProtobufWriter) -> Void) {
        var inner = ProtobufWriter()
        body(&inner)
        bytes(field, inner.bytes)
    }

    /// `repeated int64` in packed form (one length-delimited run of varints; proto2 readers accept it too).
    public mutating func packedVarints(_ field: Int, _ values: [Int]) {
        var inner = ProtobufWriter()
        for v in values { inner.rawVarint(UInt64(bitPattern: Int64(v))) }
        bytes(field, inner.bytes)
    }

    /// `repeated float` in packed form.
    public mutating func packedFloats(_ field: Int, _ values: [Float]) {
        var raw: [UInt8] = []
        raw.reserveCapacity(values.count * 4)
        for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { raw.append(contentsOf: $0) } }
        bytes(field, raw)
    }
}
