import XCTest
import Foundation
import CIFARGAN
import GANCore

final class DataTests: XCTestCase {
    func testCIFARBinaryLoadsRecordsAndLabels() throws {
        let dir = temporaryFolder(self)
        try writeSyntheticCIFAR(to: dir, perClass: 2)
        let train = try CIFAR10.load(from: dir, split: .train)
        XCTAssertEqual(train.count, 5 * 20)
        XCTAssertEqual(train.labels[0], 0)
        XCTAssertEqual(train.subset(label: 3).count, 10)
        // Loading one class keeps exactly that class's records, in file order.
        let cats = try CIFAR10.load(from: dir, split: .train, label: 3)
        XCTAssertEqual(cats.labels, train.subset(label: 3).labels)
        XCTAssertEqual(cats.pixels, train.subset(label: 3).pixels)
        XCTAssertEqual(cats.subset(label: 3).pixels, cats.pixels)
        XCTAssertEqual(cats.subset(label: 4).count, 0)
        let test = try CIFAR10.load(from: dir, split: .test)
        XCTAssertEqual(test.count, 20)
        // Pixel bytes map to [−1, 1].
        let x = Tensor(shape: [1, 3, 32, 32])
        train.fillBatch(indices: [0][...], into: x)
        XCTAssertEqual(x[0], Float(train.pixels[0]) / 127.5 - 1, accuracy: 1e-6)
        XCTAssert((0..<x.count).allSatisfy { x[$0] >= -1 && x[$0] <= 1 })
    }

    func testCIFARBadFilesNameTheFile() throws {
        let dir = temporaryFolder(self)
        try writeSyntheticCIFAR(to: dir, perClass: 1)
        // Missing file.
        try FileManager.default.removeItem(at: dir.appendingPathComponent("data_batch_3.bin"))
        XCTAssertThrowsError(try CIFAR10.load(from: dir, split: .train)) { XCTAssert("\($0)".contains("data_batch_3.bin")) }
        // Truncated file (a wrong record size).
        try writeSyntheticCIFAR(to: dir, perClass: 1)
        let url = dir.appendingPathComponent("data_batch_2.bin")
        let data = try Data(contentsOf: url)
        try data.prefix(data.count - 100).write(to: url)
        XCTAssertThrowsError(try CIFAR10.load(from: dir, split: .train)) {
            XCTAssert("\($0)".contains("data_batch_2.bin") && "\($0)".contains("3073"), "\($0)")
        }
        // A label out of range.
        var bad = data; bad[3073] = 42
        try bad.write(to: url)
        XCTAssertThrowsError(try CIFAR10.load(from: dir, split: .train)) { XCTAssert("\($0)".contains("label 42"), "\($0)") }
    }

    func testPNGRoundTripAndFilteredRows() throws {
        var rng = RandomGenerator(seed: 3)
        let img = RGBImage(width: 5, height: 4, pixels: (0..<60).map { _ in UInt8(rng.next() % 256) })
        XCTAssertEqual(try PNG.decode(PNG.encode(img)), img)
        // Rows with each filter type (sub, up, average, paeth), built by hand.
        let width = 3, height = 4
        let original: [[UInt8]] = (0..<height).map { y in (0..<(width * 3)).map { x in UInt8((x * 37 + y * 91) % 256) } }
        var raw = [UInt8]()
        for (y, row) in original.enumerated() {
            let filter = UInt8(y + 1)
            raw.append(filter)
            for x in 0..<row.count {
                let a = x >= 3 ? Int(row[x - 3]) : 0, b = y > 0 ? Int(original[y - 1][x]) : 0
                let c = (x >= 3 && y > 0) ? Int(original[y - 1][x - 3]) : 0
                let pred: Int
                switch filter {
                case 1: pred = a
                case 2: pred = b
                case 3: pred = (a + b) / 2
                default:
                    let p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c)
                    pred = (pa <= pb && pa <= pc) ? a : (pb <= pc ? b : c)
                }
                raw.append(UInt8((Int(row[x]) - pred + 256) % 256))
            }
        }
        var png = Data([137, 80, 78, 71, 13, 10, 26, 10])
        var ihdr = Data()
        for v in [UInt32(width), UInt32(height)] { ihdr.append(contentsOf: [UInt8(v >> 24), UInt8(v >> 16 & 255), UInt8(v >> 8 & 255), UInt8(v & 255)]) }
        ihdr.append(contentsOf: [8, 2, 0, 0, 0])
        PNGTestAccess.chunk(&png, "IHDR", ihdr)
        PNGTestAccess.chunk(&png, "IDAT", PNGTestAccess.deflate(raw))
        PNGTestAccess.chunk(&png, "IEND", Data())
        let decoded = try PNG.decode(png)
        XCTAssertEqual(decoded.pixels, original.flatMap { $0 })
    }

    func testImageFolderAndItsErrors() throws {
        let root = temporaryFolder(self)
        var rng = RandomGenerator(seed: 4)
        for cls in ["apples", "pears"] {
            for i in 0..<3 {
                let img = RGBImage(width: 32, height: 32, pixels: (0..<3072).map { _ in UInt8(rng.next() % 256) })
                try PNG.write(img, to: root.appendingPathComponent(cls).appendingPathComponent("\(i).png"))
            }
        }
        let data = try ImageFolder.load(from: root)
        XCTAssertEqual(data.classNames, ["apples", "pears"])
        XCTAssertEqual(data.count, 6)
        XCTAssertEqual(data.labels, [0, 0, 0, 1, 1, 1])
        // Wrong image size names the file.
        try PNG.write(RGBImage(width: 8, height: 8, pixels: [UInt8](repeating: 0, count: 192)),
                      to: root.appendingPathComponent("pears/small.png"))
        XCTAssertThrowsError(try ImageFolder.load(from: root)) { XCTAssert("\($0)".contains("small.png") && "\($0)".contains("8×8"), "\($0)") }
        try FileManager.default.removeItem(at: root.appendingPathComponent("pears/small.png"))
        // An unreadable PNG names the file.
        try Data("not a png".utf8).write(to: root.appendingPathComponent("apples/broken.png"))
        XCTAssertThrowsError(try ImageFolder.load(from: root)) { XCTAssert("\($0)".contains("broken.png"), "\($0)") }
        // An empty folder.
        XCTAssertThrowsError(try ImageFolder.load(from: temporaryFolder(self))) { XCTAssert("\($0)".contains("no class subfolders"), "\($0)") }
    }

    func testMD5KnownVectors() {
        XCTAssertEqual(MD5.hex([UInt8]()), "d41d8cd98f00b204e9800998ecf8427e")
        XCTAssertEqual(MD5.hex(Array("abc".utf8)), "900150983cd24fb0d6963f7d28e17f72")
        XCTAssertEqual(MD5.hex(Array("The quick brown fox jumps over the lazy dog".utf8)), "9e107d9d372bb6826bd81d3542a419d6")
        let long = [UInt8](repeating: 97, count: 1_000_000)
        XCTAssertEqual(MD5.hex(long), "7707d6ae4e027c70eea2a935c2296f21")
        var split = MD5(); split.update(long[..<333]); split.update(long[333...])
        XCTAssertEqual(split.finalize(), "7707d6ae4e027c70eea2a935c2296f21")
    }
}
