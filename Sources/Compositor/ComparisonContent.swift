import LinearAlgebra
import RunFormat

/// What stays the same in every frame of a comparison film (`embedlapse compare`): the two runs'
/// names and embedding widths. The rest (samples, labels, class names, images) is the shared
/// evaluation set's, in the `FilmSetting` beside it.
public struct ComparisonSetting: Sendable, Equatable {
    /// One name per run, left panel first.
    public var names: [String]
    /// Each run's embedding dimension.
    public var dimensions: [Int]
    /// Whether the runs share one leaderboard (`--leaderboard disagreement`), listed once and
    /// ringed in both panels, rather than a list per run.
    public var sharedLeaderboard: Bool
    /// Each run's whole losses when known in advance (offline), left panel first: drawn faint
    /// behind the part up to the film's step, and fixing the loss chart's axes from the start.
    public var wholeRunLosses: [LossHistory]?

    public init(names: [String], dimensions: [Int], sharedLeaderboard: Bool, wholeRunLosses: [LossHistory]? = nil) {
        self.names = names
        self.dimensions = dimensions
        self.sharedLeaderboard = sharedLeaderboard
        self.wholeRunLosses = wholeRunLosses
    }
}

/// One frame of a comparison film: two runs side by side, at one step of the film (the union of
/// both runs' steps).
public struct ComparisonContent: Sendable {
    /// One run's half of the frame.
    public struct Panel: Sendable {
        /// The run's frame as the film would draw it: its points (already rotated onto the first
        /// run's, so that both panels share one fixed view), its leaderboard and rings (with
        /// `sharedLeaderboard`, the same one in both panels), trails, and its losses up to the
        /// film's step. `content.step` and `content.stepPosition` are the film's.
        public var content: FrameContent
        public var state: PanelState

        public init(content: FrameContent, state: PanelState) {
            self.content = content
            self.state = state
        }
    }

    /// What a panel shows at the film's step, for its header.
    public enum PanelState: Sendable, Equatable {
        /// The run has a checkpoint at this step.
        case current
        /// The run's latest checkpoint at or before this step is an older one.
        case older(shownStep: Int)
        /// The run ended before this step; it stays on its last checkpoint.
        case finished(lastStep: Int)
        /// The run's first checkpoint comes later; its first checkpoint is shown meanwhile.
        case notStarted(firstStep: Int)
    }

    /// The film's step, and where its loss cursor stands (between two steps in a tweened frame).
    public var step: Int
    public var stepPosition: Double
    /// Left panel first; as many as `ComparisonSetting.names`.
    public var panels: [Panel]

    public init(step: Int, stepPosition: Double, panels: [Panel]) {
        self.step = step
        self.stepPosition = stepPosition
        self.panels = panels
    }
}
