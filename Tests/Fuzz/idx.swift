// The IDX/gzip reader of `embedlapse demo --data DIR`. Input: a flags byte (bit 0: gzip the files
// with zlib, else write them as they are, which gzread reads transparently), the images file
// (two length bytes, then its bytes), and the labels file (the rest).
import CZlib
import Training

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzIDX(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    let compress = input.byte() & 1 == 1
    let folder = Scratch.emptyFolder("idx")
    for (name, bytes) in [("f-images-idx3-ubyte.gz", input.chunk(long: true)), ("f-labels-idx1-ubyte.gz", input.rest())] {
        let path = Scratch.write(compress ? [] : bytes, to: "idx/\(name)")
        if compress {
            guard let file = gzopen(path, "wb") else { fatalError("gzopen \(path)") }
            _ = Array(bytes).withUnsafeBytes { gzwrite(file, $0.baseAddress, UInt32($0.count)) }
            gzclose(file)
        }
    }
    do {
        let set = try IDXDataset(directory: folder, prefix: "f")
        report("\(set.count) images of \(set.height) x \(set.width), labels \(set.labels)")
    } catch { report("\(error)") }
    return 0
}
