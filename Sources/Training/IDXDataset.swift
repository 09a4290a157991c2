private import CZlib

/// Images and labels in the IDX format of MNIST and Fashion-MNIST, read from `.gz` files (zlib).
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

    /// Reads `<prefix>-images-idx3-ubyte.gz` and `<prefix>-labels-idx1-ubyte.gz` from `directory`.
    public init(directory: String, prefix: String) throws(LoadError) {
        let imagesPath = "\(directory)/\(prefix)-images-idx3-ubyte.gz"
        let labelsPath = "\(directory)/\(prefix)-labels-idx1-ubyte.gz"
        let images = try Self.inflate(imagesPath)
        let labelBytes = try Self.inflate(labelsPath)
        let imageShape = try Self.shape(images, path: imagesPath, magic: 0x0803, dimensions: 3)
        let labelShape = try Self.shape(labelBytes, path: labelsPath, magic: 0x0801, dimensions: 1)
        guard imageShape[0] == labelShape[0] else {
            throw LoadError(description: "\(labelsPath): \(labelShape[0]) labels for \(imageShape[0]) images")
        }
        count = imageShape[0]
        height = imageShape[1]
        width = imageShape[2]
        pixels = Array(images[16 ..< 16 + count * height * width])
        labels = labelBytes[8 ..< 8 + count].map(Int.init)
    }

    /// The dimensions after an IDX magic number, checked against the data that follows.
    static func shape(_ bytes: [UInt8], path: String, magic: Int, dimensions: Int) throws(LoadError) -> [Int] {
        func word(_ offset: Int) -> Int { (0..<4).reduce(0) { $0 << 8 | Int(bytes[offset + $1]) } }
        let header = 4 + 4 * dimensions
        guard bytes.count >= header, word(0) == magic else {
            throw LoadError(description: "\(path): not an IDX file of \(dimensions)-dimensional unsigned bytes")
        }
        let shape = (0..<dimensions).map { word(4 + 4 * $0) }
        guard bytes.count >= header + shape.reduce(1, *) else { throw LoadError(description: "\(path): truncated") }
        return shape
    }

    /// The whole decompressed content of a gzip file (`gzopen`, `gzread`).
    static func inflate(_ path: String) throws(LoadError) -> [UInt8] {
        guard let file = gzopen(path, "rb") else {
            throw LoadError(description: "\(path): cannot open: install Debian's dataset-fashion-mnist package (apt-get install dataset-fashion-mnist)")
        }
        defer { gzclose(file) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let read = chunk.withUnsafeMutableBytes { gzread(file, $0.baseAddress, UInt32($0.count)) }
            guard read >= 0 else { throw LoadError(description: "\(path): corrupt gzip data") }
            if read == 0 { break }
            out.append(contentsOf: chunk[0..<Int(read)])
        }
        return out
    }
}
