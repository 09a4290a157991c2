/// A dense row-major matrix of `Float`, the layout of a C-order `.npy` file.
public struct Matrix: Sendable, Equatable {
    public let rows: Int
    public let columns: Int
    /// `rows * columns` values, row after row.
    public var storage: [Float]

    public init(rows: Int, columns: Int, storage: [Float]) {
        precondition(rows >= 0 && columns >= 0 && storage.count == rows * columns,
                     "Matrix storage does not match its shape")
        self.rows = rows
        self.columns = columns
        self.storage = storage
    }

    public init(zeros rows: Int, _ columns: Int) {
        self.init(rows: rows, columns: columns, storage: [Float](repeating: 0, count: rows * columns))
    }

    public subscript(row: Int, column: Int) -> Float {
        get { storage[row * columns + column] }
        set { storage[row * columns + column] = newValue }
    }

    /// The values of one row, copied.
    public func row(_ index: Int) -> ArraySlice<Float> {
        storage[index * columns ..< (index + 1) * columns]
    }
}

/// Points in the plane, the output of every projection stage: `x[i]`, `y[i]` for sample `i`.
public struct PlanarPoints: Sendable, Equatable {
    public var x: [Float]
    public var y: [Float]

    public init(x: [Float], y: [Float]) {
        precondition(x.count == y.count)
        self.x = x
        self.y = y
    }

    public var count: Int { x.count }

    /// Reads the first two columns of an `N x 2` matrix.
    public init(_ matrix: Matrix) {
        precondition(matrix.columns == 2)
        self.init(x: (0..<matrix.rows).map { matrix[$0, 0] },
                  y: (0..<matrix.rows).map { matrix[$0, 1] })
    }

    /// Row-major `N x 2` values, as `.npy` wants them.
    public var interleaved: [Float] {
        var out = [Float](repeating: 0, count: 2 * count)
        for i in 0..<count {
            out[2 * i] = x[i]
            out[2 * i + 1] = y[i]
        }
        return out
    }
}

/// One place of a ranking: a sample and the value it was ranked by (an outlier score, kNN-AUM, a
/// move). Every leaderboard, in the analysis, the frame and the explorer, lists these.
public struct RankedSample: Sendable, Equatable {
    public let index: Int
    public let value: Float

    public init(index: Int, value: Float) {
        self.index = index
        self.value = value
    }
}

/// Pointers into buffers handed to the threads of `DispatchQueue.concurrentPerform`, each of which
/// touches only its own part of them; the buffers outlive the call. Unchecked Sendable for that
/// reason alone: whoever makes one keeps the parts apart.
public struct UncheckedSendable<Value>: @unchecked Sendable {
    public let value: Value
    public init(_ value: Value) { self.value = value }
}
