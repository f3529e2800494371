import XCTest
import Foundation
import GANCore

final class SafeTensorsTests: XCTestCase {
    func testRoundTripAndHeaderLayout() throws {
        let bn = BatchNorm(numFeatures: 3)
        bn.runningMean[1] = 0.25
        bn.numBatchesTracked[0] = 7
        let entries = bn.namedParameters.map { StateEntry(name: $0.0, tensor: $0.1.value) } + bn.namedBuffers
        let data = try SafeTensors.encode(entries, metadata: ["format": "pt"])
        // Layout: u64 little-endian header size, JSON header padded to 8 bytes, then the data.
        let n = data.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self).littleEndian }
        XCTAssertEqual(n % 8, 0)
        let header = try JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + Int(n)))) as! [String: Any]
        let nbt = header["num_batches_tracked"] as! [String: Any]
        XCTAssertEqual(nbt["dtype"] as? String, "I64")
        XCTAssertEqual(nbt["shape"] as? [Int], [])
        XCTAssertEqual((header["__metadata__"] as? [String: String])?["format"], "pt")
        XCTAssertEqual(data.count, 8 + Int(n) + 4 * 3 * 4 + 8)
        let back = try SafeTensors.decode(data)
        XCTAssertEqual(back["running_mean"]?.values, [0, 0.25, 0])
        XCTAssertEqual(back["num_batches_tracked"]?.values, [7])
        XCTAssertEqual(back["weight"]?.dtype, .f32)
    }

    func testCorruptFilesGiveClearErrors() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("st-\(UUID().uuidString)")
        let url = dir.appendingPathComponent("bad.safetensors")
        try writeAtomically(Data([1, 2, 3]), to: url)
        XCTAssertThrowsError(try SafeTensors.read(from: url)) { XCTAssert("\($0)".contains("bad.safetensors")) }
        var big = UInt64(1 << 40).littleEndian
        try writeAtomically(Data(bytes: &big, count: 8) + Data("{}".utf8), to: url)
        XCTAssertThrowsError(try SafeTensors.read(from: url)) { XCTAssert("\($0)".contains("header length")) }
        let good = try SafeTensors.encode([StateEntry(name: "w", tensor: Tensor(shape: [4]))])
        try writeAtomically(good.prefix(good.count - 4), to: url)   // truncated data
        XCTAssertThrowsError(try SafeTensors.read(from: url)) { XCTAssert("\($0)".contains("data_offsets")) }
        // A shape mismatch on load names the tensor.
        try writeAtomically(good, to: url)
        let entries = try SafeTensors.read(from: url)
        XCTAssertThrowsError(try SafeTensors.load(entries, into: [StateEntry(name: "w", tensor: Tensor(shape: [5]))], file: url.path)) {
            XCTAssert("\($0)".contains("'w'"))
        }
        try? FileManager.default.removeItem(at: dir)
    }
}
