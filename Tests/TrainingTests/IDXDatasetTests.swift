import Foundation
import Testing
@testable import Training

/// Hostile IDX files, as `embedlapse demo --data DIR` may be given: each must be refused with a
/// `PATH: problem` message, never crash (sizes multiplied without overflow checks once did).
@Suite struct IDXDatasetTests {
    /// A fresh folder holding `<prefix>-images-idx3-ubyte.gz` and `<prefix>-labels-idx1-ubyte.gz`.
    struct Folder {
        let path: String
        init(images: [UInt8], labels: [UInt8], gzip: Bool = true) throws {
            path = NSTemporaryDirectory() + "idx-test-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            try Data(gzip ? Gzip.stored(images) : images).write(to: URL(fileURLWithPath: imagesPath))
            try Data(gzip ? Gzip.stored(labels) : labels).write(to: URL(fileURLWithPath: labelsPath))
        }
        var imagesPath: String { path + "/t-images-idx3-ubyte.gz" }
        var labelsPath: String { path + "/t-labels-idx1-ubyte.gz" }
        /// Through the public initialiser, as `demo --data` loads it.
        func load() throws -> IDXDataset { try IDXDataset(directory: path, prefix: "t") }
        func load(limit: Int) throws -> IDXDataset { try IDXDataset(directory: path, prefix: "t", inflatedLimit: limit) }
        func remove() { try? FileManager.default.removeItem(atPath: path) }
    }

    static func word(_ value: UInt32) -> [UInt8] { [24, 16, 8, 0].map { UInt8(truncatingIfNeeded: value >> $0) } }
    static func images(_ dimensions: [UInt32], data: [UInt8]) -> [UInt8] { word(0x0803) + dimensions.flatMap(word) + data }
    static func labels(_ count: UInt32, data: [UInt8]) -> [UInt8] { word(0x0801) + word(count) + data }

    /// The error's text, or nil when loading succeeded or threw something else.
    static func message(_ body: () throws -> IDXDataset) -> String? {
        do { _ = try body(); return nil } catch { return (error as? IDXDataset.LoadError)?.description }
    }

    @Test func readsASmallDataset() throws {
        let pixels: [UInt8] = Array(0..<12)
        let folder = try Folder(images: Self.images([2, 2, 3], data: pixels), labels: Self.labels(2, data: [7, 1]))
        defer { folder.remove() }
        let set = try folder.load()
        #expect(set.count == 2 && set.height == 2 && set.width == 3)
        #expect(set.pixels == pixels)
        #expect(set.labels == [7, 1])
    }

    /// Trailing bytes after the announced data are ignored, as before.
    @Test func ignoresTrailingBytes() throws {
        let folder = try Folder(images: Self.images([1, 1, 2], data: [1, 2, 3, 4]), labels: Self.labels(1, data: [5, 6]))
        defer { folder.remove() }
        let set = try folder.load()
        #expect(set.pixels == [1, 2] && set.labels == [5])
    }

    /// The regression: `count * height * width` overflowed Int and trapped.
    @Test(arguments: [
        [UInt32.max, UInt32.max, UInt32.max],
        [UInt32.max, UInt32.max, 2],
        [1 << 31, 1 << 31, 4],
        [UInt32.max, 1, UInt32.max],
    ])
    func overflowingDimensionsAreRefused(_ dimensions: [UInt32]) throws {
        let folder = try Folder(images: Self.images(dimensions, data: Array(repeating: 0, count: 64)),
                                labels: Self.labels(1, data: [0]))
        defer { folder.remove() }
        let text = Self.message { try folder.load() }
        #expect(text?.hasPrefix(folder.imagesPath + ": truncated or corrupt") == true, "\(text ?? "no error")")
    }

    @Test func dimensionsBeyondTheDataAreRefused() throws {
        let folder = try Folder(images: Self.images([1 << 20, 1 << 20, 1 << 20], data: [1, 2, 3]),
                                labels: Self.labels(1, data: [0]))
        defer { folder.remove() }
        #expect(Self.message { try folder.load() }?.hasPrefix(folder.imagesPath + ": ") == true)
    }

    @Test func truncatedImagesAndLabelsAreRefused() throws {
        let short = try Folder(images: Self.images([3, 2, 2], data: Array(repeating: 9, count: 11)),
                               labels: Self.labels(3, data: [0, 1, 2]))
        defer { short.remove() }
        #expect(Self.message { try short.load() } == "\(short.imagesPath): truncated: dimensions 3 x 2 x 2 need 12 bytes of data, the file has 11")

        let fewLabels = try Folder(images: Self.images([3, 1, 1], data: [1, 2, 3]), labels: Self.labels(UInt32.max, data: [0, 1, 2]))
        defer { fewLabels.remove() }
        #expect(Self.message { try fewLabels.load() }?.hasPrefix(fewLabels.labelsPath + ": truncated") == true)

        let mismatch = try Folder(images: Self.images([3, 1, 1], data: [1, 2, 3]), labels: Self.labels(2, data: [0, 1]))
        defer { mismatch.remove() }
        #expect(Self.message { try mismatch.load() } == "\(mismatch.labelsPath): 2 labels for 3 images")
    }

    @Test(arguments: [[0, 28, 28], [10, 0, 28], [10, 28, 0]] as [[UInt32]])
    func emptyImagesAreRefused(_ dimensions: [UInt32]) throws {
        let folder = try Folder(images: Self.images(dimensions, data: []), labels: Self.labels(dimensions[0], data: Array(repeating: 0, count: Int(dimensions[0]))))
        defer { folder.remove() }
        #expect(Self.message { try folder.load() }?.hasPrefix(folder.imagesPath + ": holds no images") == true)
    }

    @Test func headersTooShortOrWithTheWrongMagicAreRefused() throws {
        for images in [[], [0, 0, 8], Self.word(0x0803) + [0, 0, 0, 1], Self.word(0x0801) + Self.word(1) + Self.word(1) + Self.word(1) + [0]] as [[UInt8]] {
            let folder = try Folder(images: images, labels: Self.labels(1, data: [0]))
            defer { folder.remove() }
            #expect(Self.message { try folder.load() } == "\(folder.imagesPath): not an IDX file of 3-dimensional unsigned bytes")
        }
    }

    /// A file that inflates beyond the limit is refused while it is read (a gzip bomb must not eat the memory).
    @Test func inflatingBeyondTheLimitIsRefused() throws {
        let folder = try Folder(images: Self.images([4, 32, 32], data: Array(repeating: 1, count: 4096)), labels: Self.labels(4, data: [0, 1, 2, 3]))
        defer { folder.remove() }
        #expect(Self.message { try folder.load(limit: 4000) } == "\(folder.imagesPath): inflates to more than 4000 bytes: not an IDX dataset (refused, to spare memory)")
        #expect(try folder.load(limit: 4112).count == 4)
        #expect(IDXDataset.sizeText(IDXDataset.maximumInflatedSize) == "1 GiB")
    }

    @Test func truncatedOrCorruptGzipIsRefused() throws {
        let whole = Gzip.stored(Self.images([2, 2, 2], data: Array(repeating: 3, count: 8)))
        let folder = try Folder(images: [], labels: Self.labels(2, data: [0, 1]))
        defer { folder.remove() }
        // Cut inside the stored block, then a stream with a bad checksum.
        for bytes in [Array(whole[0 ..< whole.count - 12]), Array(whole[0 ..< whole.count - 8]) + [0, 0, 0, 0, 24, 0, 0, 0]] {
            try Data(bytes).write(to: URL(fileURLWithPath: folder.imagesPath))
            let text = Self.message { try folder.load() }
            #expect(text?.hasPrefix(folder.imagesPath + ": ") == true && text?.contains("gzip") == true, "\(text ?? "no error")")
        }
    }

    @Test func aDirectoryInPlaceOfAFileIsRefused() throws {
        let folder = try Folder(images: [], labels: [])
        defer { folder.remove() }
        try FileManager.default.removeItem(atPath: folder.imagesPath)
        try FileManager.default.createDirectory(atPath: folder.imagesPath, withIntermediateDirectories: false)
        #expect(Self.message { try folder.load() } == "\(folder.imagesPath): not a regular file: expected a gzip file")
    }
}

/// gzip files made by hand: deflate's stored (uncompressed) blocks, a CRC-32 and the size.
enum Gzip {
    static func stored(_ data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 0xFF]
        var start = 0
        repeat {
            let end = min(start + 65_535, data.count)
            let length = end - start
            out.append(end == data.count ? 1 : 0)  // BFINAL, BTYPE 00
            out += [UInt8(length & 0xFF), UInt8(length >> 8), UInt8(~length & 0xFF), UInt8((~length >> 8) & 0xFF)]
            out += data[start..<end]
            start = end
        } while start < data.count
        out += littleEndian(crc32(data)) + littleEndian(UInt32(truncatingIfNeeded: data.count))
        return out
    }

    static func littleEndian(_ value: UInt32) -> [UInt8] { [0, 8, 16, 24].map { UInt8(truncatingIfNeeded: value >> $0) } }

    static func crc32(_ data: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in data {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
        }
        return ~crc
    }
}
