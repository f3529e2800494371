import Foundation
import GANCore

public struct DataError: UserFacingError {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Labelled 32×32 RGB images kept as bytes (3 KB each) in the CIFAR layout: per image the red plane,
/// then green, then blue, rows top to bottom. Batches are converted to floats in [−1, 1] on demand.
///
/// ```swift
/// let train = try CIFAR10.load(from: dir, split: .train)
/// let cats = train.subset(label: 3)
/// cats.fillBatch(indices: [0, 1, 2], into: x)   // x [3, 3, 32, 32]
/// ```
public struct ImageDataset: Sendable {
    public static let imageBytes = 3072
    public var pixels: [UInt8]
    public var labels: [UInt8]
    public var classNames: [String]

    public init(pixels: [UInt8], labels: [UInt8], classNames: [String]) {
        self.pixels = pixels; self.labels = labels; self.classNames = classNames
    }

    public var count: Int { labels.count }

    public func subset(label: Int) -> ImageDataset {
        // Already one class (loaded with `label:`): share the storage instead of copying it.
        if labels.allSatisfy({ Int($0) == label }) { return self }
        var p = [UInt8](), l = [UInt8]()
        for i in 0..<count where Int(labels[i]) == label {
            p.append(contentsOf: pixels[(i * Self.imageBytes)..<((i + 1) * Self.imageBytes)])
            l.append(labels[i])
        }
        return ImageDataset(pixels: p, labels: l, classNames: classNames)
    }

    /// Writes images `indices` into `x` [n, 3, 32, 32], scaled from 0…255 to −1…1.
    public func fillBatch(indices: ArraySlice<Int>, into x: Tensor) {
        precondition(x.count == indices.count * Self.imageBytes)
        let xp = x.data
        pixels.withUnsafeBufferPointer { src in
            for (k, i) in indices.enumerated() {
                let s = src.baseAddress! + i * Self.imageBytes, d = xp + k * Self.imageBytes
                for j in 0..<Self.imageBytes { d[j] = Float(s[j]) * (2.0 / 255.0) - 1 }
            }
        }
    }

    public func image(_ i: Int) -> RGBImage { RGBImage(planar: Array(pixels[(i * Self.imageBytes)..<((i + 1) * Self.imageBytes)])) }
}

extension RGBImage {
    /// From CIFAR's planar bytes (R plane, G plane, B plane).
    public init(planar: [UInt8]) {
        var px = [UInt8](repeating: 0, count: 3072)
        for i in 0..<1024 { for c in 0..<3 { px[i * 3 + c] = planar[c * 1024 + i] } }
        self.init(width: 32, height: 32, pixels: px)
    }

    /// To CIFAR's planar bytes.
    public var planar: [UInt8] {
        var out = [UInt8](repeating: 0, count: 3072)
        for i in 0..<1024 { for c in 0..<3 { out[c * 1024 + i] = pixels[i * 3 + c] } }
        return out
    }

    /// From a generated image tensor slice in [−1, 1], CHW.
    public init(tensor: UnsafePointer<Float>) {
        var px = [UInt8](repeating: 0, count: 3072)
        for i in 0..<1024 { for c in 0..<3 {
            let v = (tensor[c * 1024 + i] + 1) * 127.5
            px[i * 3 + c] = UInt8(max(0, min(255, v.rounded())))
        } }
        self.init(width: 32, height: 32, pixels: px)
    }
}

/// The CIFAR-10 binary layout: files of 3073-byte records (one label byte, then 3072 pixel bytes).
public enum CIFAR10 {
    public static let classNames = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    public static let recordBytes = 3073
    public enum Split: String, Sendable { case train, test }
    public static let trainFiles = (1...5).map { "data_batch_\($0).bin" }
    public static let testFiles = ["test_batch.bin"]

    public static func files(_ split: Split) -> [String] { split == .train ? trainFiles : testFiles }

    /// True when every file of the split is present in `dir`.
    public static func isPresent(in dir: URL, split: Split = .train) -> Bool {
        files(split).allSatisfy { FileManager.default.fileExists(atPath: dir.appendingPathComponent($0).path) }
    }

    /// Reads the split's files; with `label`, keeps only that class's images (a tenth of the memory).
    public static func load(from dir: URL, split: Split, label only: Int? = nil) throws -> ImageDataset {
        var pixels = [UInt8](), labels = [UInt8]()
        for name in files(split) {
            let url = dir.appendingPathComponent(name)
            guard FileManager.default.fileExists(atPath: url.path) else {
                throw DataError("\(url.path): missing CIFAR-10 file (expected \(files(split).joined(separator: ", ")) in \(dir.path))")
            }
            let data: Data
            do { data = try Data(contentsOf: url) } catch { throw DataError("\(url.path): cannot read (\(error.localizedDescription))") }
            guard !data.isEmpty, data.count % recordBytes == 0 else {
                throw DataError("\(url.path): \(data.count) bytes is not a whole number of \(recordBytes)-byte CIFAR-10 records (truncated or not CIFAR-10 binary)")
            }
            let n = data.count / recordBytes
            pixels.reserveCapacity(pixels.count + (only == nil ? n : n / 8) * 3072)
            try data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
                let b = raw.bindMemory(to: UInt8.self)
                for r in 0..<n {
                    let label = b[r * recordBytes]
                    guard label < 10 else { throw DataError("\(url.path): record \(r) has label \(label); CIFAR-10 labels are 0–9") }
                    if let only, Int(label) != only { continue }
                    labels.append(label)
                    pixels.append(contentsOf: b[(r * recordBytes + 1)..<((r + 1) * recordBytes)])
                }
            }
        }
        return ImageDataset(pixels: pixels, labels: labels, classNames: classNames)
    }

    /// Writes images in the binary layout (one file).
    public static func write(_ images: [RGBImage], labels: [UInt8], to url: URL) throws {
        var data = Data(capacity: images.count * recordBytes)
        for (img, label) in zip(images, labels) { data.append(label); data.append(contentsOf: img.planar) }
        try writeAtomically(data, to: url)
    }
}

/// A folder of PNG images with one subfolder per class (`root/cat/0001.png`); every image must be 32×32.
public enum ImageFolder {
    public static func load(from root: URL) throws -> ImageDataset {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: root.path, isDirectory: &isDir), isDir.boolValue else {
            throw DataError("\(root.path): no such folder")
        }
        let classes = try fm.contentsOfDirectory(atPath: root.path).filter { name in
            var d: ObjCBool = false
            return !name.hasPrefix(".") && fm.fileExists(atPath: root.appendingPathComponent(name).path, isDirectory: &d) && d.boolValue
        }.sorted()
        guard !classes.isEmpty else { throw DataError("\(root.path): no class subfolders (expected \(root.path)/<class>/*.png)") }
        guard classes.count <= 256 else { throw DataError("\(root.path): \(classes.count) class folders; at most 256 are supported") }
        var pixels = [UInt8](), labels = [UInt8]()
        for (label, name) in classes.enumerated() {
            let dir = root.appendingPathComponent(name)
            let files = try fm.contentsOfDirectory(atPath: dir.path).filter { $0.lowercased().hasSuffix(".png") }.sorted()
            for file in files {
                let url = dir.appendingPathComponent(file)
                let img = try PNG.read(from: url)
                guard img.width == 32, img.height == 32 else {
                    throw DataError("\(url.path): image is \(img.width)×\(img.height); this toolkit trains on 32×32 images")
                }
                pixels.append(contentsOf: img.planar)
                labels.append(UInt8(label))
            }
        }
        guard !labels.isEmpty else { throw DataError("\(root.path): no .png images in its class folders") }
        return ImageDataset(pixels: pixels, labels: labels, classNames: classes)
    }
}

/// Where data and runs live by default.
public enum Locations {
    /// `$XDG_CACHE_HOME/cifar-gan` or `~/.cache/cifar-gan` (`~/Library/Caches/cifar-gan` on macOS).
    public static var cacheFolder: URL {
        let env = ProcessInfo.processInfo.environment
        #if os(macOS)
        let base = FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent("Library/Caches")
        #else
        let base = env["XDG_CACHE_HOME"].map { URL(fileURLWithPath: $0) }
            ?? FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache")
        #endif
        return base.appendingPathComponent("cifar-gan")
    }

    /// `--data-dir`, else `$CIFAR10_DIR`, else the cache folder's `cifar-10-batches-bin`.
    public static func dataDirectory(_ flag: String?) -> URL {
        if let flag { return URL(fileURLWithPath: flag) }
        if let env = ProcessInfo.processInfo.environment["CIFAR10_DIR"], !env.isEmpty { return URL(fileURLWithPath: env) }
        return cacheFolder.appendingPathComponent("cifar-10-batches-bin")
    }
}
