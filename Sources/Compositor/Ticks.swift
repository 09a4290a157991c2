/// Round tick positions for a chart axis: steps of 1, 2 or 5 times a power of ten.
enum Ticks {
    static func values(from low: Double, to high: Double, about count: Int = 5) -> [Double] {
        guard high > low, count > 0 else { return [low] }
        let raw = (high - low) / Double(count)
        let magnitude = pow10(floorLog10(raw))
        let step = [1.0, 2, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? 10 * magnitude
        var ticks: [Double] = []
        var value = (low / step).rounded(.up) * step
        while value <= high + step * 1e-9 {
            ticks.append(abs(value) < step * 1e-9 ? 0 : value)
            value += step
        }
        return ticks
    }

    /// A tick label with no more decimals than the step needs.
    static func label(_ value: Double, step: Double) -> String {
        if value == value.rounded() && abs(value) < 1e15 && step >= 1 {
            let v = Int(value)
            return abs(v) >= 10_000 ? "\(v / 1000)k" : String(v)
        }
        let decimals = max(0, min(6, -floorLog10(step)))
        return formatted(value, decimals: decimals)
    }

    static func formatted(_ value: Double, decimals: Int) -> String {
        let scale = pow10(decimals)
        let rounded = (value * scale).rounded() / scale
        var text = String(rounded)
        if let dot = text.firstIndex(of: ".") {
            let have = text.distance(from: dot, to: text.endIndex) - 1
            if have < decimals { text += String(repeating: "0", count: decimals - have) }
            if decimals == 0 { text = String(text[..<dot]) }
        } else if decimals > 0 {
            text += "." + String(repeating: "0", count: decimals)
        }
        return text
    }

    static func floorLog10(_ x: Double) -> Int {
        var e = 0, v = x
        while v >= 10 { v /= 10; e += 1 }
        while v < 1 && v > 0 { v *= 10; e -= 1 }
        return e
    }

    static func pow10(_ e: Int) -> Double {
        var v = 1.0
        if e >= 0 { for _ in 0..<e { v *= 10 } } else { for _ in 0..<(-e) { v /= 10 } }
        return v
    }
}

/// Fixed-precision number formatting without Foundation.
enum NumberText {
    /// `value` with `significant` significant digits, in plain or scientific notation.
    static func significant(_ value: Double, _ significant: Int = 4) -> String {
        guard value.isFinite else { return String(value) }
        if value == 0 { return "0" }
        let exponent = Ticks.floorLog10(abs(value))
        if exponent < -4 {
            let mantissa = value / Ticks.pow10(exponent)
            return Ticks.formatted(mantissa, decimals: significant - 1) + "e" + String(exponent)
        }
        return Ticks.formatted(value, decimals: max(0, significant - 1 - exponent))
    }

    /// 10000 -> "10,000".
    static func grouped(_ value: Int) -> String {
        let digits = String(abs(value))
        var out = ""
        for (i, c) in digits.enumerated() {
            if i > 0 && (digits.count - i) % 3 == 0 { out.append(",") }
            out.append(c)
        }
        return value < 0 ? "-" + out : out
    }
}
