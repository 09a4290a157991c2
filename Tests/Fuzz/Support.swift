// Shared by every fuzz target (compiled into each one): a scratch folder in a tmpfs, files
// written from the fuzz input, and a reader that splits the input into fields.
#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// A folder of this process in /dev/shm (a tmpfs, so files cost no disk I/O), removed at exit.
enum Scratch {
    static let root: String = {
        let base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : NSTemporaryDirectory()
        let path = "\(base)/embedlapse-fuzz-\(getpid())"
        try? FileManager.default.removeItem(atPath: path)
        mkdir(path, 0o700)
        atexit { try? FileManager.default.removeItem(atPath: scratchRoot) }
        return path
    }()

    /// A path in the scratch folder.
    static func path(_ name: String) -> String { "\(root)/\(name)" }

    /// Writes `bytes` to `name` in the scratch folder (replacing whatever is there) and returns its path.
    @discardableResult
    static func write<C: Collection<UInt8>>(_ bytes: C, to name: String) -> String {
        let path = path(name)
        let data = Data(bytes)
        try? FileManager.default.removeItem(atPath: path)
        guard FileManager.default.createFile(atPath: path, contents: data) else { fatalError("cannot write \(path)") }
        return path
    }

    /// An empty folder `name` in the scratch folder (whatever was there is removed).
    static func emptyFolder(_ name: String) -> String {
        let path = path(name)
        try? FileManager.default.removeItem(atPath: path)
        guard mkdir(path, 0o700) == 0 else { fatalError("cannot create \(path)") }
        return path
    }
}

/// `FUZZ_VERBOSE=1 .build-fuzz/bin/<target> FILE` prints what the parser made of an input.
let verbose = getenv("FUZZ_VERBOSE") != nil

func report(_ text: @autoclosure () -> String) {
    if verbose { print(text()) }
}

/// For the `atexit` handler, which cannot capture.
let scratchRoot = Scratch.root

/// Reads the fuzz input field by field; past the end every field is empty or zero.
struct FuzzInput {
    let bytes: [UInt8]
    var position = 0

    init(_ start: UnsafePointer<UInt8>?, _ count: Int) {
        bytes = count > 0 && start != nil ? Array(UnsafeBufferPointer(start: start, count: count)) : []
    }

    var isAtEnd: Bool { position >= bytes.count }

    mutating func byte() -> UInt8 {
        guard position < bytes.count else { return 0 }
        defer { position += 1 }
        return bytes[position]
    }

    mutating func uint16() -> Int { Int(byte()) | Int(byte()) << 8 }

    /// A field of up to `limit` bytes, its length in a first byte (or two when `long`).
    mutating func chunk(long: Bool = false, limit: Int = .max) -> ArraySlice<UInt8> {
        let length = min(long ? uint16() : Int(byte()), bytes.count - min(position, bytes.count), limit)
        defer { position += length }
        return bytes[min(position, bytes.count) ..< min(position, bytes.count) + length]
    }

    /// Everything not read yet.
    mutating func rest() -> ArraySlice<UInt8> {
        defer { position = bytes.count }
        return bytes[min(position, bytes.count)...]
    }
}
