/// Reduces a BGRA frame to 256 colours for GIF: a median cut over a 5-5-5 bit colour
/// histogram, then each pixel mapped to its nearest palette entry through a lookup table.
struct PaletteQuantizer {
    private var histogram = [UInt32](repeating: 0, count: 1 << 15)
    /// Per cell, the sums of the exact red, green and blue values of its pixels: palette colours
    /// are true means (pure white stays 255, not the cell centre 252).
    private var sums = [UInt64](repeating: 0, count: 3 << 15)
    private var lookup = [UInt8](repeating: 0, count: 1 << 15)

    mutating func quantize(bgra: UnsafePointer<UInt8>, bytesPerRow: Int, width: Int, height: Int,
                           into indices: UnsafeMutablePointer<UInt8>, indexStride: Int,
                           palette: UnsafeMutablePointer<UInt32>) {
        for i in histogram.indices { histogram[i] = 0 }
        for i in sums.indices { sums[i] = 0 }
        for y in 0..<height {
            let row = bgra + y * bytesPerRow
            for x in 0..<width {
                let p = row + 4 * x, key = Self.key(p)
                histogram[key] += 1
                sums[3 * key] += UInt64(p[2])
                sums[3 * key + 1] += UInt64(p[1])
                sums[3 * key + 2] += UInt64(p[0])
            }
        }
        let colours = medianCut()
        for i in 0..<256 {
            let c = i < colours.count ? colours[i] : (0, 0, 0)
            palette[i] = 0xFF00_0000 | UInt32(c.0) << 16 | UInt32(c.1) << 8 | UInt32(c.2)
        }
        // Each occupied 5-5-5 cell maps to the nearest palette colour.
        for key in 0..<histogram.count where histogram[key] > 0 {
            let r = Int(key >> 10 & 31) << 3 | 4, g = Int(key >> 5 & 31) << 3 | 4, b = Int(key & 31) << 3 | 4
            var best = 0, bestDistance = Int.max
            for (i, c) in colours.enumerated() {
                let dr = r - Int(c.0), dg = g - Int(c.1), db = b - Int(c.2)
                let distance = 2 * dr * dr + 4 * dg * dg + 3 * db * db
                if distance < bestDistance { bestDistance = distance; best = i }
            }
            lookup[key] = UInt8(best)
        }
        for y in 0..<height {
            let row = bgra + y * bytesPerRow
            let out = indices + y * indexStride
            for x in 0..<width { out[x] = lookup[Self.key(row + 4 * x)] }
        }
    }

    @inline(__always)
    private static func key(_ p: UnsafePointer<UInt8>) -> Int {
        Int(p[2] >> 3) << 10 | Int(p[1] >> 3) << 5 | Int(p[0] >> 3)
    }

    /// Splits the occupied cells into up to 256 boxes, always splitting the box with the most
    /// pixels times its widest extent along that channel; each box's colour is its pixel-weighted mean.
    private func medianCut() -> [(UInt8, UInt8, UInt8)] {
        var cells = (0..<histogram.count).filter { histogram[$0] > 0 }
        guard !cells.isEmpty else { return [(255, 255, 255)] }
        var boxes: [Range<Int>] = [0..<cells.count]
        func channel(_ key: Int, _ c: Int) -> Int { key >> (10 - 5 * c) & 31 }
        while boxes.count < 256 {
            var bestBox = -1, bestChannel = 0, bestScore = 0
            for (b, box) in boxes.enumerated() where box.count > 1 {
                var pixels = 0
                var low = [31, 31, 31], high = [0, 0, 0]
                for i in box {
                    pixels += Int(histogram[cells[i]])
                    for c in 0..<3 {
                        let v = channel(cells[i], c)
                        low[c] = min(low[c], v); high[c] = max(high[c], v)
                    }
                }
                for c in 0..<3 where high[c] > low[c] {
                    let score = (high[c] - low[c]) * Int(Double(pixels).squareRoot() + 1)
                    if score > bestScore { bestScore = score; bestBox = b; bestChannel = c }
                }
            }
            guard bestBox >= 0 else { break }
            let box = boxes[bestBox]
            cells[box].sort { channel($0, bestChannel) < channel($1, bestChannel) }
            let total = box.reduce(0) { $0 + Int(histogram[cells[$1]]) }
            var running = 0, split = box.lowerBound + 1
            for i in box {
                running += Int(histogram[cells[i]])
                if running * 2 >= total { split = min(max(i + 1, box.lowerBound + 1), box.upperBound - 1); break }
            }
            if split >= box.upperBound { split = box.upperBound - 1 }
            boxes[bestBox] = box.lowerBound..<split
            boxes.append(split..<box.upperBound)
        }
        return boxes.map { box in
            var weight = 0.0, r = 0.0, g = 0.0, b = 0.0
            for i in box {
                let key = cells[i]
                weight += Double(histogram[key])
                r += Double(sums[3 * key])
                g += Double(sums[3 * key + 1])
                b += Double(sums[3 * key + 2])
            }
            return (UInt8(min(255, (r / weight).rounded())), UInt8(min(255, (g / weight).rounded())), UInt8(min(255, (b / weight).rounded())))
        }
    }
}
