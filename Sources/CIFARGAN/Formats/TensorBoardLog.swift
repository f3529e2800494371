import Foundation
import GANCore

/// A TensorBoard events file in a run folder (`events.out.tfevents.<time>.cifar-gan`): per epoch, scalars
/// and the sample grid as a PNG image, so `tensorboard --logdir runs/` shows every run.
///
/// The file is a sequence of TFRecords — length (uint64 LE), masked CRC-32C of the length, an `Event`
/// protobuf, masked CRC-32C of it — starting with an Event whose `file_version` is "brain.Event:2". Fields,
/// from tensorflow/core/util/event.proto and summary.proto: Event{wall_time 1 double, step 2 int64,
/// file_version 3, summary 5}, Summary{value 1}, Value{tag 1, simple_value 2 float, image 4},
/// Image{height 1, width 2, colorspace 3, encoded_image_string 4}.
///
/// ```swift
/// let log = try TensorBoardLog(runFolder: run, keepingStepsUpTo: nil)
/// try log.append(step: 1, scalars: [("loss/d", 1.2)], image: nil)
/// ```
public final class TensorBoardLog {
    public let file: URL

    /// Opens the run's events file, or starts one. `keepingStepsUpTo` (a resume from that epoch) first drops
    /// the records of later steps and any torn last record, so a resumed run logs each epoch once.
    public init(runFolder: URL, keepingStepsUpTo lastStep: Int?) throws {
        let fm = FileManager.default
        let existing = ((try? fm.contentsOfDirectory(atPath: runFolder.path)) ?? []).filter { $0.hasPrefix("events.out.tfevents.") }.sorted()
        if let name = existing.last {
            file = runFolder.appendingPathComponent(name)
            if let lastStep {
                let kept = TensorBoardLog.records(in: (try? Data(contentsOf: file)) ?? Data())
                    .filter { ($0.step ?? 0) <= lastStep }.map(\.framed)
                try writeAtomically(Data(kept.joined()), to: file)
            }
            return
        }
        file = runFolder.appendingPathComponent("events.out.tfevents.\(Int(Date().timeIntervalSince1970)).cifar-gan")
        var header = ProtobufWriter()
        header.double(1, Date().timeIntervalSince1970)
        header.string(3, "brain.Event:2")
        try writeAtomically(Data(TensorBoardLog.frame(header.bytes)), to: file)
    }

    /// One Event at `step` holding the scalars and, when given, a PNG image; flushed to disk.
    public func append(step: Int, scalars: [(tag: String, value: Double)], image: (tag: String, png: Data, height: Int, width: Int)?) throws {
        var event = ProtobufWriter()
        event.double(1, Date().timeIntervalSince1970)
        event.varint(2, step)
        event.message(5) { summary in
            for (tag, value) in scalars where value.isFinite {
                summary.message(1) { v in v.string(1, tag); v.float(2, Float(value)) }
            }
            if let image {
                summary.message(1) { v in
                    v.string(1, image.tag)
                    v.message(4) { i in
                        i.varint(1, image.height); i.varint(2, image.width); i.varint(3, 3)   // colorspace 3: RGB
                        i.bytes(4, [UInt8](image.png))
                    }
                }
            }
        }
        let handle = try FileHandle(forWritingTo: file)
        defer { try? handle.close() }
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(TensorBoardLog.frame(event.bytes)))
        try handle.synchronize()
    }

    /// A TFRecord around `payload`.
    public static func frame(_ payload: [UInt8]) -> [UInt8] {
        var length = [UInt8](repeating: 0, count: 8)
        withUnsafeBytes(of: UInt64(payload.count).littleEndian) { length = Array($0) }
        var out = length
        appendLE(masked(CRC32C.checksum(length)), to: &out)
        out += payload
        appendLE(masked(CRC32C.checksum(payload)), to: &out)
        return out
    }

    /// The complete records of an events file with their Event's step (nil for the file-version record);
    /// reading stops at the first record that is torn or fails its checksums.
    public static func records(in data: Data) -> [(step: Int?, framed: [UInt8])] {
        let bytes = [UInt8](data)
        var out: [(Int?, [UInt8])] = []
        var i = 0
        while i + 16 <= bytes.count {
            let lengthBytes = Array(bytes[i..<(i + 8)])
            let n = lengthBytes.reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            let room = bytes.count - i - 16   // bytes left for the payload after both checksums
            guard readLE(bytes, i + 8) == masked(CRC32C.checksum(lengthBytes)), room >= 0, n <= UInt64(room) else { break }
            let start = i + 12, end = start + Int(n)
            let payload = Array(bytes[start..<end])
            guard readLE(bytes, end) == masked(CRC32C.checksum(payload)) else { break }
            out.append((step(of: payload), Array(bytes[i..<(end + 4)])))
            i = end + 4
        }
        return out
    }

    /// Field 2 (step, a varint) of an Event, skipping the other top-level fields by their wire types.
    static func step(of event: [UInt8]) -> Int? {
        var i = 0
        func varint() -> UInt64? {
            var v: UInt64 = 0, shift: UInt64 = 0
            while i < event.count, shift < 64 {
                let b = event[i]; i += 1
                v |= UInt64(b & 0x7f) << shift
                if b < 0x80 { return v }
                shift += 7
            }
            return nil
        }
        while i < event.count {
            guard let key = varint() else { return nil }
            switch key & 7 {
            case 0: guard let v = varint() else { return nil }; if key >> 3 == 2 { return Int(truncatingIfNeeded: v) }
            case 1: i += 8
            case 5: i += 4
            case 2: guard let n = varint(), n <= UInt64(event.count - i) else { return nil }; i += Int(n)
            default: return nil
            }
        }
        return nil
    }

    /// TFRecord's checksum masking: rotate right by 15, add a constant.
    static func masked(_ crc: UInt32) -> UInt32 { ((crc >> 15) | (crc << 17)) &+ 0xa282_ead8 }

    private static func appendLE(_ v: UInt32, to out: inout [UInt8]) {
        withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) }
    }

    private static func readLE(_ b: [UInt8], _ i: Int) -> UInt32 {
        UInt32(b[i]) | UInt32(b[i + 1]) << 8 | UInt32(b[i + 2]) << 16 | UInt32(b[i + 3]) << 24
    }
}
