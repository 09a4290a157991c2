import LinearAlgebra

/// The element types Embedlapse reads from `.npy` files.
public enum NPYElement: Sendable, Equatable, CustomStringConvertible {
    case float(bytes: Int)      // 2, 4, 8
    case signed(bytes: Int)     // 1, 2, 4, 8
    case unsigned(bytes: Int)   // 1, 2, 4, 8
    case bool

    public var size: Int {
        switch self {
        case .float(let b), .signed(let b), .unsigned(let b): return b
        case .bool: return 1
        }
    }

    public var isInteger: Bool {
        switch self {
        case .signed, .unsigned, .bool: return true
        case .float: return false
        }
    }

    public var description: String {
        switch self {
        case .float(let b): return "float\(b * 8)"
        case .signed(let b): return "int\(b * 8)"
        case .unsigned(let b): return "uint\(b * 8)"
        case .bool: return "bool"
        }
    }
}

/// A `.npy` file (format versions 1.0 to 3.0): its validated header, and the values on demand.
///
/// Opening reads only the header. Each value accessor opens the file again, checks that it is
/// still the version whose header was read (same inode, size and modification time) and reads
/// the data into an owned buffer: a file that changes in between is reported, never misread.
public struct NPYArray: Sendable {
    public let path: String
    public let element: NPYElement
    public let bigEndian: Bool
    public let fortranOrder: Bool
    public let shape: [Int]
    /// The file as it was when the header was read.
    public let identity: FileIdentity
    let dataOffset: Int
    /// Bytes of data the header announces (overflow-checked).
    let dataCount: Int

    public var elementCount: Int { dataCount / element.size }

    /// Reads and validates the header; checks that the file holds all the data it announces.
    public init(path: String) throws(RunFormatError) {
        try self.init(file: InputFile(path: path))
    }

    init(file: InputFile) throws(RunFormatError) {
        let path = file.path
        self.path = path
        identity = file.identity
        let header = try NPYHeader(reading: file)
        element = header.element
        bigEndian = header.bigEndian
        fortranOrder = header.fortranOrder
        shape = header.shape
        dataOffset = header.dataOffset
        var count = shape.contains(0) ? 0 : element.size
        for extent in shape where count > 0 {
            let (product, overflow) = count.multipliedReportingOverflow(by: extent)
            guard !overflow, product <= file.size else {
                throw RunFormatError(path, "truncated or corrupt: shape \(Self.shapeText(shape)) needs more bytes than the file's \(file.size)")
            }
            count = product
        }
        dataCount = count
        let available = file.size - dataOffset
        if available < count {
            throw RunFormatError(path, "truncated: shape \(Self.shapeText(shape)) needs \(count) bytes of data, the file has \(available)")
        }
        if available > count {
            // numpy would read the first array and ignore the rest: a second array saved into the
            // same file, or a file cut and pasted together, must not pass unnoticed.
            throw RunFormatError(path, "\(available - count) bytes after the data that shape \(Self.shapeText(shape)) announces: not a single .npy array")
        }
    }

    static func shapeText(_ shape: [Int]) -> String {
        "(" + shape.map(String.init).joined(separator: ", ") + (shape.count == 1 ? ",)" : ")")
    }

    public var shapeText: String { Self.shapeText(shape) }

    /// Opens the file again and checks it is the version whose header was read.
    private func reopen() throws(RunFormatError) -> InputFile {
        let file = try InputFile(path: path)
        guard file.identity == identity else {
            throw RunFormatError(path, "changed since its header was read: another process rewrote it", kind: .changing)
        }
        return file
    }

    /// Reads the data bytes into `buffer` (of `dataCount` bytes) and checks the file did not change meanwhile.
    private func readData(into buffer: UnsafeMutableRawBufferPointer) throws(RunFormatError) {
        let file = try reopen()
        try file.read(into: buffer, at: dataOffset)
        try file.checkUnchanged()
    }

    private func dataBytes() throws(RunFormatError) -> [UInt8] {
        var raw = [UInt8](repeating: 0, count: dataCount)
        var failure: RunFormatError?
        raw.withUnsafeMutableBytes { buffer in
            do throws(RunFormatError) { try readData(into: buffer) } catch { failure = error }
        }
        if let failure { throw failure }
        return raw
    }

    /// The array as an `N x D` float32 matrix, in row-major order. Refuses non-floating dtypes.
    public func floatMatrix() throws(RunFormatError) -> Matrix {
        guard shape.count == 2 else { throw RunFormatError(path, "expected a 2-D array (N, D), got shape \(shapeText)") }
        guard case .float = element else {
            throw RunFormatError(path, "expected float16, float32 or float64 embeddings, got \(element)")
        }
        let rows = shape[0], columns = shape[1]
        var values = [Float](repeating: 0, count: rows * columns)
        if element == .float(bytes: 4), !bigEndian, !fortranOrder {
            // The common case: read straight into the matrix, no second copy.
            var failure: RunFormatError?
            values.withUnsafeMutableBytes { buffer in
                do throws(RunFormatError) { try readData(into: buffer) } catch { failure = error }
            }
            if let failure { throw failure }
            return Matrix(rows: rows, columns: columns, storage: values)
        }
        let raw = try dataBytes()
        let element = self.element, swap = bigEndian
        raw.withUnsafeBytes { data in
            values.withUnsafeMutableBufferPointer { out in
                switch element {
                case .float(bytes: 2):
                    for i in 0..<out.count {
                        let bits = data.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)
                        out[i] = Float(Float16(bitPattern: swap ? bits.byteSwapped : bits))
                    }
                case .float(bytes: 4):
                    for i in 0..<out.count {
                        let bits = data.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)
                        out[i] = Float(bitPattern: swap ? bits.byteSwapped : bits)
                    }
                default:
                    for i in 0..<out.count {
                        let bits = data.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)
                        out[i] = Float(Double(bitPattern: swap ? bits.byteSwapped : bits))
                    }
                }
            }
        }
        if fortranOrder {
            // Column-major on disk: transpose into row-major.
            var transposed = [Float](repeating: 0, count: values.count)
            for r in 0..<rows {
                for c in 0..<columns { transposed[r * columns + c] = values[c * rows + r] }
            }
            values = transposed
        }
        return Matrix(rows: rows, columns: columns, storage: values)
    }

    /// A 1-D integer array (any integer dtype) as `Int`s; uint64 values above `Int.max` are refused.
    public func integers() throws(RunFormatError) -> [Int] {
        guard shape.count == 1 else { throw RunFormatError(path, "expected a 1-D array (N,), got shape \(shapeText)") }
        guard element.isInteger else { throw RunFormatError(path, "expected an integer dtype, got \(element)") }
        let element = self.element, swap = bigEndian, n = shape[0]
        let raw = try dataBytes()
        var tooLarge = false
        let values = raw.withUnsafeBytes { data in
            (0..<n).map { i -> Int in
                switch element {
                case .bool, .unsigned(bytes: 1): return Int(data[i])
                case .signed(bytes: 1): return Int(Int8(bitPattern: data[i]))
                case .signed(bytes: 2), .unsigned(bytes: 2):
                    let v = data.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)
                    let bits = swap ? v.byteSwapped : v
                    return element == .signed(bytes: 2) ? Int(Int16(bitPattern: bits)) : Int(bits)
                case .signed(bytes: 4), .unsigned(bytes: 4):
                    let v = data.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)
                    let bits = swap ? v.byteSwapped : v
                    return element == .signed(bytes: 4) ? Int(Int32(bitPattern: bits)) : Int(bits)
                default:
                    let v = data.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)
                    let bits = swap ? v.byteSwapped : v
                    if element == .signed(bytes: 8) { return Int(Int64(bitPattern: bits)) }
                    guard let value = Int(exactly: bits) else { tooLarge = true; return 0 }
                    return value
                }
            }
        }
        if tooLarge { throw RunFormatError(path, "holds uint64 values too large for an index") }
        return values
    }

    /// The values of a little-endian, C-order float32 array of any shape, as `NPYWriter` writes them
    /// (the analysis cache's own files); anything else is refused.
    public func float32Values() throws(RunFormatError) -> [Float] {
        try exactValues(.float(bytes: 4), as: Float.self)
    }

    /// The values of a little-endian, C-order int32 array of any shape, as `NPYWriter` writes them.
    public func int32Values() throws(RunFormatError) -> [Int32] {
        try exactValues(.signed(bytes: 4), as: Int32.self)
    }

    private func exactValues<T>(_ expected: NPYElement, as type: T.Type) throws(RunFormatError) -> [T] {
        guard element == expected, !bigEndian, !fortranOrder, MemoryLayout<T>.size == expected.size else {
            throw RunFormatError(path, "expected a little-endian C-order \(expected) array, got \(element)\(bigEndian ? " big-endian" : "")\(fortranOrder ? " in Fortran order" : "")")
        }
        let raw = try dataBytes()
        let count = raw.count / expected.size
        return [T](unsafeUninitializedCapacity: count) { values, initialised in
            raw.withUnsafeBytes { UnsafeMutableRawBufferPointer(values).copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[..<(count * expected.size)])) }
            initialised = count
        }
    }

    /// The raw bytes of a uint8 array in C order (Fortran order is transposed).
    public func bytes() throws(RunFormatError) -> [UInt8] {
        guard element == .unsigned(bytes: 1) else { throw RunFormatError(path, "expected uint8, got \(element)") }
        let raw = try dataBytes()
        let count = raw.count
        // Every stride below is at most `count`, which the header check bounded by the file's size.
        guard fortranOrder, shape.count > 1, count > 0 else { return raw }
        // Fortran order: the first index varies fastest. Re-index into C order.
        var out = [UInt8](repeating: 0, count: count)
        var cStrides = [Int](repeating: 1, count: shape.count)
        var fStrides = [Int](repeating: 1, count: shape.count)
        for axis in stride(from: shape.count - 2, through: 0, by: -1) { cStrides[axis] = cStrides[axis + 1] * shape[axis + 1] }
        for axis in 1..<shape.count { fStrides[axis] = fStrides[axis - 1] * shape[axis - 1] }
        for c in 0..<count {
            var rest = c, f = 0
            for axis in 0..<shape.count {
                f += (rest / cStrides[axis]) * fStrides[axis]
                rest %= cStrides[axis]
            }
            out[c] = raw[f]
        }
        return out
    }
}

/// The parsed `.npy` preamble: magic, version, header length and the header dictionary.
struct NPYHeader {
    let element: NPYElement
    let bigEndian: Bool
    let fortranOrder: Bool
    let shape: [Int]
    let dataOffset: Int

    /// The largest header accepted: numpy writes a few hundred bytes; anything near this is not a real array.
    static let maximumHeaderLength = 1 << 20

    init(reading file: InputFile) throws(RunFormatError) {
        let path = file.path
        guard file.size > 0 else { throw RunFormatError(path, "empty file, not a .npy array") }
        let preamble = try file.bytes(at: 0, count: min(file.size, 12))
        let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]  // "\x93NUMPY"
        guard preamble.count >= 10, Array(preamble[0..<6]) == magic else {
            throw RunFormatError(path, "not a .npy file (bad magic bytes)")
        }
        let major = preamble[6]
        let headerLength: Int, start: Int
        switch major {
        case 1:
            headerLength = Int(preamble[8]) | Int(preamble[9]) << 8
            start = 10
        case 2, 3:
            guard preamble.count >= 12 else { throw RunFormatError(path, "truncated .npy header") }
            headerLength = (0..<4).reduce(0) { $0 | Int(preamble[8 + $1]) << (8 * $1) }
            start = 12
        default:
            throw RunFormatError(path, "unsupported .npy format version \(major).\(preamble[7])")
        }
        guard headerLength <= Self.maximumHeaderLength else {
            throw RunFormatError(path, "malformed .npy header: announces \(headerLength) bytes of header")
        }
        guard start + headerLength <= file.size else { throw RunFormatError(path, "truncated .npy header") }
        let headerBytes = try file.bytes(at: start, count: headerLength)
        guard let text = String(validating: headerBytes, as: UTF8.self) else {
            throw RunFormatError(path, "malformed .npy header: not text")
        }
        dataOffset = start + headerLength

        guard let descr = Self.value(of: "descr", in: text), let quoted = Self.quoted(descr) else {
            throw RunFormatError(path, "malformed .npy header: no 'descr'")
        }
        guard !text.utf8.contains(0), text.hasPrefix("{") else {
            throw RunFormatError(path, "malformed .npy header: not a Python dictionary")
        }
        guard let fortran = Self.value(of: "fortran_order", in: text)?.trimmingSpaces, fortran == "True" || fortran == "False" else {
            throw RunFormatError(path, "malformed .npy header: 'fortran_order' must be True or False")
        }
        guard let shapeValue = Self.value(of: "shape", in: text), let shape = Self.tuple(shapeValue) else {
            throw RunFormatError(path, "malformed .npy header: no readable 'shape'")
        }
        fortranOrder = fortran == "True"
        self.shape = shape
        let order = quoted.first ?? "|"
        bigEndian = order == ">"
        let code = order == "<" || order == ">" || order == "|" || order == "=" ? String(quoted.dropFirst()) : quoted
        switch code {
        case "f2": element = .float(bytes: 2)
        case "f4": element = .float(bytes: 4)
        case "f8": element = .float(bytes: 8)
        case "i1": element = .signed(bytes: 1)
        case "i2": element = .signed(bytes: 2)
        case "i4": element = .signed(bytes: 4)
        case "i8": element = .signed(bytes: 8)
        case "u1": element = .unsigned(bytes: 1)
        case "u2": element = .unsigned(bytes: 2)
        case "u4": element = .unsigned(bytes: 4)
        case "u8": element = .unsigned(bytes: 8)
        case "b1": element = .bool
        default: throw RunFormatError(path, "unsupported dtype '\(quoted)'")
        }
    }

    /// The text after `'key':` up to the next top-level comma or closing brace.
    static func value(of key: String, in header: String) -> Substring? {
        guard let range = header.range(of: "'\(key)':") else { return nil }
        let rest = header[range.upperBound...].drop { $0 == " " }
        var depth = 0
        var end = rest.startIndex
        for index in rest.indices {
            let c = rest[index]
            if c == "(" { depth += 1 }
            if c == ")" { depth -= 1 }
            if depth == 0 && (c == "," || c == "}") { end = index; return rest[..<end] }
            end = rest.index(after: index)
        }
        return rest[..<end]
    }

    static func quoted(_ value: Substring) -> String? {
        let trimmed = value.trimmingSpaces
        guard trimmed.count >= 2, let q = trimmed.first, q == "'" || q == "\"", trimmed.last == q else { return nil }
        return String(trimmed.dropFirst().dropLast())
    }

    static func tuple(_ value: Substring) -> [Int]? {
        let trimmed = value.trimmingSpaces
        guard trimmed.first == "(", trimmed.last == ")" else { return nil }
        let parts = trimmed.dropFirst().dropLast().split(separator: ",").map { $0.trimmingSpaces }.filter { !$0.isEmpty }
        // Plain decimal integers only (Python 2 wrote a trailing L): no signs, spaces or other digits.
        let numbers = parts.map { part -> Int? in
            let digits = part.hasSuffix("L") ? part.dropLast() : part
            guard !digits.isEmpty, digits.utf8.allSatisfy({ (0x30...0x39).contains($0) }) else { return nil }
            return Int(digits)
        }
        guard numbers.count <= 64, numbers.allSatisfy({ $0 != nil }) else { return nil }
        return numbers.map { $0! }
    }
}

extension Substring {
    var trimmingSpaces: Substring {
        var s = self
        while s.first == " " || s.first == "\n" { s.removeFirst() }
        while s.last == " " || s.last == "\n" { s.removeLast() }
        return s
    }
}

/// Writes little-endian, C-order `.npy` files (format 1.0).
public enum NPYWriter {
    /// The complete file bytes for a float32 array of the given shape.
    public static func encode(float32 values: [Float], shape: [Int]) -> [UInt8] {
        encode(values, descr: "<f4", shape: shape)
    }

    /// The complete file bytes for an int64 array of the given shape.
    public static func encode(int64 values: [Int], shape: [Int]) -> [UInt8] {
        encode(values.map { Int64($0).littleEndian }, descr: "<i8", shape: shape)
    }

    /// The complete file bytes for an int32 array of the given shape.
    public static func encode(int32 values: [Int32], shape: [Int]) -> [UInt8] {
        encode(values.map(\.littleEndian), descr: "<i4", shape: shape)
    }

    /// The complete file bytes for a uint8 array of the given shape.
    public static func encode(uint8 values: [UInt8], shape: [Int]) -> [UInt8] {
        encode(values, descr: "|u1", shape: shape)
    }

    static func encode<T>(_ values: [T], descr: String, shape: [Int]) -> [UInt8] {
        precondition(values.count == shape.reduce(1, *))
        var bytes = header(descr: descr, shape: shape)
        values.withUnsafeBytes { bytes.append(contentsOf: $0) }
        return bytes
    }

    static func header(descr: String, shape: [Int]) -> [UInt8] {
        let shapeText = NPYArray.shapeText(shape)
        var dict = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shapeText), }"
        // Pad with spaces so the data starts on a 64-byte boundary; the header ends with a newline.
        let unpadded = 10 + dict.utf8.count + 1
        dict += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        var out: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0]
        let length = dict.utf8.count
        out += [UInt8(length & 0xFF), UInt8(length >> 8)]
        out += Array(dict.utf8)
        return out
    }
}
