/// Round tick positions for a chart axis: steps of 1, 2 or 5 times a power of ten.
///
/// Every finite range gets a bounded answer: spans that overflow, steps below a value's
/// precision (where `value + step == value`) and subnormal ranges included.
enum Ticks {
    /// The most ticks an axis asks for; `values` returns at most about twice as many.
    static let largestCount = 50

    static func values(from low: Double, to high: Double, about count: Int = 5) -> [Double] {
        guard low.isFinite, high.isFinite else { return [] }
        guard high > low, count > 0, let step = step(from: low, to: high, about: count) else { return [low] }
        let tolerance = step * 1e-9
        // Each tick is computed from its index rather than by adding steps, which stall once the step
        // is below the value's precision; the index bound holds even if rounding misjudges the count.
        let first = (low / step).rounded(.up)
        var ticks: [Double] = []
        for index in 0...(2 * min(count, largestCount) + 1) {
            let value = (first + Double(index)) * step
            guard value.isFinite, value <= high || value - high <= tolerance else { break }
            let tick = abs(value) < tolerance ? 0 : value
            // Below the value's precision, rounding can put a tick before `low` or add nothing to the last.
            guard tick >= low || low - tick <= tolerance, ticks.last.map({ tick > $0 }) ?? true else { continue }
            ticks.append(tick)
        }
        return ticks
    }

    /// The tick spacing `values` uses: the smallest round step at least `(high - low) / count`,
    /// finite and positive; nil unless both ends are finite with `low < high`.
    static func step(from low: Double, to high: Double, about count: Int = 5) -> Double? {
        guard low.isFinite, high.isFinite, high > low else { return nil }
        let count = Double(min(max(count, 1), largestCount))
        var raw = (high - low) / count
        if !raw.isFinite { raw = high / count - low / count }  // ends of opposite sign near the largest Double
        raw = min(max(raw, .leastNonzeroMagnitude), .greatestFiniteMagnitude)  // a span of a few subnormals underflows
        let magnitude = max(pow10(floorLog10(raw)), .leastNonzeroMagnitude)
        // Past 1e308 the round steps overflow: the power of ten itself then gives at most twice the ticks.
        return [1.0, 2, 5, 10].map { $0 * magnitude }.first { $0 >= raw && $0.isFinite } ?? magnitude
    }

    /// A tick label with no more decimals than the step needs.
    static func label(_ value: Double, step: Double) -> String {
        if value == value.rounded() && abs(value) < 1e15 && step >= 1 {
            let v = Int(value)
            return abs(v) >= 10_000 ? "\(v / 1000)k" : String(v)
        }
        let stepExponent = floorLog10(step)
        // Plain decimals serve steps down to 1e-6 below 1e15; beyond, the mantissa carries the digits the step needs.
        if stepExponent < -6 || abs(value) >= 1e15 {
            return value == 0 ? "0" : NumberText.scientific(value, decimals: min(15, max(0, floorLog10(abs(value)) - stepExponent)))
        }
        return formatted(value, decimals: max(0, min(6, -stepExponent)))
    }

    /// `value` with exactly `decimals` digits after the point (0...15), or in scientific notation
    /// where a Double has no such digits (1e15 and beyond).
    static func formatted(_ value: Double, decimals: Int) -> String {
        guard value.isFinite else { return String(value) }  // "nan", "inf", "-inf"
        let decimals = min(max(decimals, 0), 15)
        let units = (value * pow10(decimals)).rounded()
        guard abs(units) < 1e15 else { return NumberText.scientific(value, decimals: 3) }
        // The digits of the whole number of units, then the point placed: String(Double) would
        // switch to exponent form below 1e-4.
        let whole = Int64(units)  // exact: |units| < 1e15
        var digits = String(whole.magnitude)
        if decimals > 0 {
            if digits.count <= decimals { digits = String(repeating: "0", count: decimals + 1 - digits.count) + digits }
            digits.insert(".", at: digits.index(digits.endIndex, offsetBy: -decimals))
        }
        return whole < 0 ? "-" + digits : digits
    }

    /// The exponent of the leading decimal digit of `x`; 0 for zero, negative or non-finite `x`.
    static func floorLog10(_ x: Double) -> Int {
        guard x.isFinite, x > 0 else { return 0 }
        var e = 0, v = x
        while v >= 10 { v /= 10; e += 1 }
        while v < 1 { v *= 10; e -= 1 }
        return e
    }

    /// 10^e: infinity above 1e308, zero below the smallest subnormal.
    static func pow10(_ e: Int) -> Double {
        shifted(1, by: e)
    }

    /// `value` times 10^e, one factor of ten at a time so that neither the power of ten nor
    /// the product leaves the range of Double before the result does.
    static func shifted(_ value: Double, by e: Int) -> Double {
        let e = min(max(e, -700), 700)  // enough to take any finite Double to zero or infinity
        var v = value
        if e >= 0 { for _ in 0..<e { v *= 10 } } else { for _ in 0..<(-e) { v /= 10 } }
        return v
    }
}

/// A linear map from values onto pixels that neither overflows nor underflows for any finite
/// range: values are divided by the range's larger magnitude before they are subtracted.
struct AxisScale {
    private let magnitude: Double
    private let start: Double   // the low end, divided by `magnitude`
    private let span: Double    // the range, divided by `magnitude`: in (0, 2]
    private let origin: Double
    private let length: Double

    /// Maps `low` to the pixel `origin` and `high` to `origin + length`; needs finite `low < high`.
    init(from low: Double, to high: Double, onto origin: Double, length: Double) {
        let magnitude = max(abs(low), abs(high))
        self.magnitude = magnitude > 0 ? magnitude : 1
        start = low / self.magnitude
        let span = high / self.magnitude - start
        self.span = span > 0 ? span : 1
        self.origin = origin
        self.length = length
    }

    func callAsFunction(_ value: Double) -> Double {
        origin + (value / magnitude - start) / span * length
    }
}

/// Fixed-precision number formatting without Foundation.
enum NumberText {
    /// `value` with `significant` significant digits, in plain or scientific notation.
    static func significant(_ value: Double, _ significant: Int = 4) -> String {
        guard value.isFinite else { return String(value) }
        if value == 0 { return "0" }
        var exponent = Ticks.floorLog10(abs(value))
        // Rounding may carry into a new leading digit: 9.99996 to four digits is 10.00, not 10.000.
        if abs(Ticks.shifted(value, by: significant - 1 - exponent).rounded()) >= Ticks.pow10(significant) { exponent += 1 }
        if exponent < -4 || exponent >= 15 { return scientific(value, decimals: significant - 1) }
        return Ticks.formatted(value, decimals: max(0, significant - 1 - exponent))
    }

    /// Several values written on one scale, so that they compare at a glance: the same number of
    /// decimals for all, chosen to give the largest `significant` digits. Values too small or too
    /// large for plain decimals share one power of ten, returned as `scale` ("1e-5") for a caption.
    static func onOneScale(_ values: [Double], significant: Int = 4) -> (texts: [String], scale: String?) {
        let largest = values.filter(\.isFinite).map(abs).max() ?? 0
        guard largest > 0 else { return (values.map { $0.isFinite ? "0" : String($0) }, nil) }
        let exponent = Ticks.floorLog10(largest)
        // A value too small to show at the shared precision reads "<0.0001", not a zero it is not.
        let text = { (value: Double, decimals: Int) -> String in
            guard value.isFinite else { return String(value) }
            let smallest = Ticks.pow10(-decimals)
            if value != 0 && abs(value) < smallest / 2 {
                return (value < 0 ? ">-" : "<") + Ticks.formatted(smallest, decimals: decimals)
            }
            return Ticks.formatted(value, decimals: decimals)
        }
        if (-2..<6).contains(exponent) {
            let decimals = max(0, significant - 1 - exponent)
            return (values.map { text($0, decimals) }, nil)
        }
        return (values.map { text(Ticks.shifted($0, by: -exponent), significant - 1) }, "1e\(exponent)")
    }

    /// `value` as a mantissa in [1, 10) with `decimals` decimals and a power of ten: 1.50e17.
    static func scientific(_ value: Double, decimals: Int) -> String {
        guard value.isFinite, value != 0 else { return value == 0 ? "0" : String(value) }
        let decimals = min(max(decimals, 0), 15)
        var exponent = Ticks.floorLog10(abs(value))
        var mantissa = Ticks.shifted(value, by: -exponent)
        // Rounding may carry the mantissa to 10: 9.9996 with three decimals reads 1.000e1, not 10.000e0.
        if abs((mantissa * Ticks.pow10(decimals)).rounded()) >= Ticks.pow10(decimals + 1) {
            mantissa /= 10
            exponent += 1
        }
        return Ticks.formatted(mantissa, decimals: decimals) + "e" + String(exponent)
    }

    /// 10000 -> "10,000".
    static func grouped(_ value: Int) -> String {
        let digits = String(value.magnitude)  // abs(Int.min) would trap
        var out = ""
        for (i, c) in digits.enumerated() {
            if i > 0 && (digits.count - i) % 3 == 0 { out.append(",") }
            out.append(c)
        }
        return value < 0 ? "-" + out : out
    }
}
