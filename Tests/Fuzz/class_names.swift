// class_names.json, read through SampleAnnotations.read on a run folder. Input: a flags byte
// (bits 0-2: a number k of labels; bit 3: write labels.npy with the next k bytes as labels;
// bit 4: check against k samples), then the JSON (the rest).
import RunFormat

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzClassNames(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    let flags = input.byte(), k = Int(flags & 7)
    let folder = Scratch.emptyFolder("annotations")
    if flags & 8 != 0 {
        let labels = (0..<k).map { _ in Int(input.byte()) }
        Scratch.write(NPYWriter.encode(int64: labels, shape: [k]), to: "annotations/labels.npy")
    }
    Scratch.write(input.rest(), to: "annotations/class_names.json")
    let read = SampleAnnotations.read(runPath: folder, sampleCount: flags & 16 != 0 ? k : nil)
    report("labels \(read.labels ?? []), names \(read.classNames ?? []), problems \(read.problems)")
    return 0
}
