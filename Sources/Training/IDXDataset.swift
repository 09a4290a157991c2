#if canImport(Glibc)
import Glibc
#endif
private import CZlib

/// Images and labels in the IDX format of MNIST and Fashion-MNIST, read from `.gz` files (zlib).
///
/// Every size in the files is untrusted: the dimensions are multiplied with overflow checks and
/// compared with the bytes actually present before anything is sliced, and a file that inflates
/// to more than `maximumInflatedSize` bytes (a gzip bomb) is refused while it is being read.
public struct IDXDataset: Sendable {
    public let count: Int
    public let height: Int
    public let width: Int
    /// `count * height * width` bytes, image after image.
    public let pixels: [UInt8]
    public let labels: [Int]

    public struct LoadError: Error, CustomStringConvertible {
        public let description: String
    }

    /// The most bytes one file may inflate to: Fashion-MNIST's largest is 47 MB.
    public static let maximumInflatedSize = 1 << 30

    /// Reads `<prefix>-images-idx3-ubyte.gz` and `<prefix>-labels-idx1-ubyte.gz` from `directory`.
    public init(directory: String, prefix: String) throws(LoadError) {
        try self.init(directory: directory, prefix: prefix, inflatedLimit: Self.maximumInflatedSize)
    }

    /// As above, with the inflated-size limit as a parameter (tests use a small one).
    init(directory: String, prefix: String, inflatedLimit: Int) throws(LoadError) {
        let imagesPath = "\(directory)/\(prefix)-images-idx3-ubyte.gz"
        let labelsPath = "\(directory)/\(prefix)-labels-idx1-ubyte.gz"
        let images = try Self.inflate(imagesPath, limit: inflatedLimit)
        let labelBytes = try Self.inflate(labelsPath, limit: inflatedLimit)
        let imageShape = try Self.shape(images, path: imagesPath, magic: 0x0803, dimensions: 3)
        let labelShape = try Self.shape(labelBytes, path: labelsPath, magic: 0x0801, dimensions: 1)
        guard imageShape.dimensions[0] > 0, imageShape.dimensions[1] > 0, imageShape.dimensions[2] > 0 else {
            let d = imageShape.dimensions
            throw LoadError(description: "\(imagesPath): holds no images (\(d[0]) images of \(d[1]) x \(d[2]) pixels)")
        }
        guard imageShape.dimensions[0] == labelShape.dimensions[0] else {
            throw LoadError(description: "\(labelsPath): \(labelShape.dimensions[0]) labels for \(imageShape.dimensions[0]) images")
        }
        count = imageShape.dimensions[0]
        height = imageShape.dimensions[1]
        width = imageShape.dimensions[2]
        // `shape` checked that both ranges lie within the inflated bytes.
        pixels = Array(images[imageShape.data])
        labels = labelBytes[labelShape.data].map(Int.init)
    }

    /// An IDX file's dimensions and the range of bytes its data occupies.
    struct Shape: Equatable {
        let dimensions: [Int]
        let data: Range<Int>
    }

    /// The dimensions after an IDX magic number, checked (without overflow) against the data that follows.
    static func shape(_ bytes: [UInt8], path: String, magic: Int, dimensions: Int) throws(LoadError) -> Shape {
        func word(_ offset: Int) -> Int { (0..<4).reduce(0) { $0 << 8 | Int(bytes[offset + $1]) } }
        let header = 4 + 4 * dimensions
        guard bytes.count >= header, word(0) == magic else {
            throw LoadError(description: "\(path): not an IDX file of \(dimensions)-dimensional unsigned bytes")
        }
        let shape = (0..<dimensions).map { word(4 + 4 * $0) }
        var size = 1
        for extent in shape {
            let (product, overflow) = size.multipliedReportingOverflow(by: extent)
            guard !overflow else {
                throw LoadError(description: "\(path): truncated or corrupt: dimensions \(Self.text(shape)) need more bytes than any file holds")
            }
            size = product
        }
        guard size <= bytes.count - header else {
            throw LoadError(description: "\(path): truncated: dimensions \(Self.text(shape)) need \(size) bytes of data, the file has \(bytes.count - header)")
        }
        return Shape(dimensions: shape, data: header ..< header + size)
    }

    static func text(_ shape: [Int]) -> String { shape.map(String.init).joined(separator: " x ") }

    /// The whole decompressed content of a gzip file (`gzopen`, `gzread`), at most `limit` bytes.
    static func inflate(_ path: String, limit: Int = maximumInflatedSize) throws(LoadError) -> [UInt8] {
        // gzopen would block on a FIFO and fail later on a directory: only regular files are read.
        var info = stat()
        if stat(path, &info) == 0, (info.st_mode & S_IFMT) != S_IFREG {
            throw LoadError(description: "\(path): not a regular file: expected a gzip file")
        }
        guard let file = gzopen(path, "rb") else {
            throw LoadError(description: "\(path): cannot open: install Debian's dataset-fashion-mnist package (apt-get install dataset-fashion-mnist)")
        }
        defer { gzclose(file) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let read = chunk.withUnsafeMutableBytes { gzread(file, $0.baseAddress, UInt32($0.count)) }
            guard read >= 0 else { throw LoadError(description: "\(path): corrupt gzip data") }
            if read == 0 { break }
            guard Int(read) <= limit - out.count else {
                throw LoadError(description: "\(path): inflates to more than \(Self.sizeText(limit)): not an IDX dataset (refused, to spare memory)")
            }
            out.append(contentsOf: chunk[0..<Int(read)])
        }
        // gzread reports a stream cut short as an end of file; gzerror tells them apart.
        var code: Int32 = Z_OK
        _ = gzerror(file, &code)
        guard code == Z_OK || code == Z_STREAM_END else {
            throw LoadError(description: "\(path): truncated or corrupt gzip data")
        }
        return out
    }

    static func sizeText(_ bytes: Int) -> String {
        bytes >= 1 << 30 && bytes % (1 << 30) == 0 ? "\(bytes >> 30) GiB" : "\(bytes) bytes"
    }
}
