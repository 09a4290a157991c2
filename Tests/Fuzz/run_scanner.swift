// The run scanner on a synthetic run folder built from the input: a flags byte (bit 0: DONE;
// bit 1: run.json; bit 2: losses.csv; bit 3: scan as a live run, twice; bits 4-6: up to 7
// checkpoint folders), the run.json and losses.csv fields, then per checkpoint a name byte, a
// kind byte and its fields (see `checkpoint`). A finished run goes through RunDirectory.scan,
// as render and inspect do; every checkpoint handed out is loaded, as the films do.
import RunFormat

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRunScanner(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    let flags = input.byte()
    let run = Scratch.emptyFolder("run")
    if flags & 1 != 0 { Scratch.write([], to: "run/DONE") }
    if flags & 2 != 0 { Scratch.write(input.chunk(), to: "run/run.json") }
    if flags & 4 != 0 { Scratch.write(input.chunk(), to: "run/losses.csv") }
    for _ in 0 ..< Int(flags >> 4 & 7) { checkpoint(&input) }
    if flags & 8 != 0 {
        var scanner = RunScanner(path: run, mode: .live(settle: .zero))
        for _ in 0..<2 {
            let snapshot = scanner.scan()
            report("live scan: ready \(snapshot.ready.map(\.step)), waiting \(snapshot.waiting.map(String.init(describing:)) ?? "-"), problems \(snapshot.problems), warnings \(snapshot.warnings)")
            for file in snapshot.ready { _ = try? file.loadEmbeddings() }
        }
        _ = scanner.losses.history
    } else {
        let scan = RunDirectory.scan(path: run)
        report("scan: checkpoints \(scan.checkpoints.map(\.step)), problems \(scan.problems), warnings \(scan.warnings), losses \(scan.run?.losses.training.count ?? -1)")
        for file in scan.checkpoints { _ = try? file.loadEmbeddings() }
    }
    return 0
}

/// One `checkpoint-<name>` folder. Name byte: low 3 bits pick the form (0-4: the step in the
/// high bits; 5: the same with a leading zero, a second folder of that step; 6: a step beyond
/// 2^53; 7: not digits). Kind byte: bits 0-1 the embeddings (none; raw bytes; a float32 .npy of
/// 1-8 x 1-4 from the next bytes, bit patterns and all; a folder), bit 2 its `.complete` marker,
/// bit 3 a trainer_state.json (a field), bit 4 a float64 .npy instead of float32.
func checkpoint(_ input: inout FuzzInput) {
    let name = input.byte(), kind = input.byte()
    let step = Int(name >> 3)
    let folder: String
    switch name & 7 {
    case 0...4: folder = "run/checkpoint-\(step)"
    case 5: folder = "run/checkpoint-0\(step)"
    case 6: folder = "run/checkpoint-\((1 << 53) + 1 + step)"
    default: folder = "run/checkpoint-x\(step)"
    }
    _ = Scratch.emptyFolder(folder)
    let embeddings = "\(folder)/embeddings.npy"
    switch kind & 3 {
    case 1: Scratch.write(input.chunk(long: true), to: embeddings)
    case 2:
        let shape = [1 + Int(input.byte() & 7), 1 + Int(input.byte() & 3)]
        let bits = input.chunk(limit: 4 * shape[0] * shape[1])
        let values = (0 ..< shape[0] * shape[1]).map { i -> Float in
            let at = bits.startIndex + 4 * i
            guard at + 4 <= bits.endIndex else { return Float(i % 7) - 3 }
            return Float(bitPattern: bits[at ..< at + 4].reversed().reduce(0) { $0 << 8 | UInt32($1) })
        }
        if kind & 16 != 0 {
            Scratch.write(float64NPY(values.map(Double.init), shape: shape), to: embeddings)
        } else {
            Scratch.write(NPYWriter.encode(float32: values, shape: shape), to: embeddings)
        }
    case 3: _ = Scratch.emptyFolder(embeddings)
    default: break
    }
    if kind & 4 != 0 { Scratch.write([], to: embeddings + ".complete") }
    if kind & 8 != 0 { Scratch.write(input.chunk(), to: "\(folder)/trainer_state.json") }
}

/// A little-endian float64 .npy (format 1.0).
func float64NPY(_ values: [Double], shape: [Int]) -> [UInt8] {
    var dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (\(shape.map(String.init).joined(separator: ", "))), }"
    dict += String(repeating: " ", count: (64 - (10 + dict.utf8.count + 1) % 64) % 64) + "\n"
    var out: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0, UInt8(dict.utf8.count & 0xFF), UInt8(dict.utf8.count >> 8)]
    out += Array(dict.utf8)
    for value in values { withUnsafeBytes(of: value.bitPattern.littleEndian) { out += $0 } }
    return out
}
