import LinearAlgebra

#if canImport(Glibc)
import Glibc
#endif

/// A fully connected layer `y = x W + b`, optionally followed by a ReLU, trained with Adam.
public final class DenseLayer {
    public let inputs: Int
    public let outputs: Int
    public let relu: Bool
    /// Frozen layers pass gradients through but do not change.
    public var frozen = false
    var weights: [Float]  // inputs x outputs, row-major
    var bias: [Float]
    private var weightMoments: AdamMoments
    private var biasMoments: AdamMoments
    // Saved by `forward` for `backward`.
    private var lastInput: [Float] = []
    private var lastOutput: [Float] = []
    private var lastRows = 0

    public init(inputs: Int, outputs: Int, relu: Bool, generator: inout SplitMix) {
        self.inputs = inputs
        self.outputs = outputs
        self.relu = relu
        let scale = (2 / Float(inputs)).squareRoot()  // He initialisation
        weights = (0..<inputs * outputs).map { _ in Float(generator.normal()) * scale }
        bias = [Float](repeating: 0, count: outputs)
        weightMoments = AdamMoments(count: inputs * outputs)
        biasMoments = AdamMoments(count: outputs)
    }

    /// `rows x inputs` in, `rows x outputs` out. `keep` saves what `backward` needs.
    public func forward(_ x: [Float], rows: Int, keep: Bool = true) -> [Float] {
        var y = [Float](repeating: 0, count: rows * outputs)
        x.withUnsafeBufferPointer { px in
            weights.withUnsafeBufferPointer { pw in
                y.withUnsafeMutableBufferPointer { py in
                    BLAS.gemm(m: rows, n: outputs, k: inputs, a: px.baseAddress!, lda: inputs,
                              b: pw.baseAddress!, ldb: outputs, c: py.baseAddress!, ldc: outputs)
                }
            }
        }
        for r in 0..<rows {
            for c in 0..<outputs {
                let v = y[r * outputs + c] + bias[c]
                y[r * outputs + c] = relu ? max(v, 0) : v
            }
        }
        if keep {
            lastInput = x
            lastOutput = y
            lastRows = rows
        }
        return y
    }

    /// Takes the gradient of the loss with respect to this layer's output; updates the weights
    /// (unless frozen) and returns the gradient with respect to its input.
    public func backward(_ gradient: [Float], step: Int, learningRate: Float, needsInputGradient: Bool = true) -> [Float] {
        let rows = lastRows
        var g = gradient
        if relu {
            for i in 0..<g.count where lastOutput[i] <= 0 { g[i] = 0 }
        }
        var inputGradient: [Float] = []
        if needsInputGradient {
            inputGradient = [Float](repeating: 0, count: rows * inputs)
            g.withUnsafeBufferPointer { pg in
                weights.withUnsafeBufferPointer { pw in
                    inputGradient.withUnsafeMutableBufferPointer { pi in
                        BLAS.gemm(transposeB: true, m: rows, n: inputs, k: outputs, a: pg.baseAddress!, lda: outputs,
                                  b: pw.baseAddress!, ldb: outputs, c: pi.baseAddress!, ldc: inputs)
                    }
                }
            }
        }
        guard !frozen else { return inputGradient }
        var weightGradient = [Float](repeating: 0, count: inputs * outputs)
        lastInput.withUnsafeBufferPointer { px in
            g.withUnsafeBufferPointer { pg in
                weightGradient.withUnsafeMutableBufferPointer { pw in
                    BLAS.gemm(transposeA: true, m: inputs, n: outputs, k: rows, a: px.baseAddress!, lda: inputs,
                              b: pg.baseAddress!, ldb: outputs, c: pw.baseAddress!, ldc: outputs)
                }
            }
        }
        var biasGradient = [Float](repeating: 0, count: outputs)
        for r in 0..<rows { for c in 0..<outputs { biasGradient[c] += g[r * outputs + c] } }
        weightMoments.update(&weights, gradient: weightGradient, step: step, learningRate: learningRate)
        biasMoments.update(&bias, gradient: biasGradient, step: step, learningRate: learningRate)
        return inputGradient
    }
}

/// Adam's running moments for one parameter array (beta1 0.9, beta2 0.999, epsilon 1e-8).
struct AdamMoments {
    var first: [Float]
    var second: [Float]

    init(count: Int) {
        first = [Float](repeating: 0, count: count)
        second = [Float](repeating: 0, count: count)
    }

    mutating func update(_ parameters: inout [Float], gradient: [Float], step: Int, learningRate: Float) {
        let b1: Float = 0.9, b2: Float = 0.999
        let correction1 = 1 - Float(pow(Double(b1), Double(step)))
        let correction2 = 1 - Float(pow(Double(b2), Double(step)))
        for i in 0..<parameters.count {
            first[i] = b1 * first[i] + (1 - b1) * gradient[i]
            second[i] = b2 * second[i] + (1 - b2) * gradient[i] * gradient[i]
            parameters[i] -= learningRate * (first[i] / correction1) / ((second[i] / correction2).squareRoot() + 1e-8)
        }
    }
}

/// Softmax cross-entropy over `rows x classes` logits: the mean loss and its gradient.
func softmaxCrossEntropy(_ logits: [Float], labels: [Int], classes: Int) -> (loss: Float, gradient: [Float]) {
    let rows = labels.count
    var gradient = [Float](repeating: 0, count: logits.count)
    var loss: Double = 0
    for r in 0..<rows {
        let row = r * classes
        var top = -Float.infinity
        for c in 0..<classes { top = max(top, logits[row + c]) }
        var sum: Float = 0
        for c in 0..<classes {
            let e = expf(logits[row + c] - top)
            gradient[row + c] = e
            sum += e
        }
        for c in 0..<classes { gradient[row + c] /= sum }
        loss -= Double(logf(max(gradient[row + labels[r]], 1e-12)))
        gradient[row + labels[r]] -= 1
        for c in 0..<classes { gradient[row + c] /= Float(rows) }
    }
    return (Float(loss / Double(rows)), gradient)
}
