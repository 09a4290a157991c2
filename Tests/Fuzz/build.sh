#!/usr/bin/env bash
# Builds the libFuzzer targets (one per parser, Tests/Fuzz/<target>.swift) into $FUZZ_BUILD
# (default .build-fuzz/), with the toolchain's libFuzzer and AddressSanitizer, without SwiftPM:
# the library sources they need are compiled here as modules of the same names, each once,
# and rebuilt only when a source is newer than its object. Prints nothing when all is up to date.
# Up to FUZZ_JOBS (default: the number of cores) compilations run at once.
#   Tests/Fuzz/build.sh [target...]     (default: every target)
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${FUZZ_BUILD:-.build-fuzz}
SWIFTC=${SWIFTC:-swiftc}
ALL_TARGETS=(npy idx losses_csv trainer_state class_names run_scanner)
TARGETS=("${@:-${ALL_TARGETS[@]}}")
mkdir -p "$OUT/modules" "$OUT/bin"

# The flags Package.swift's system-library targets give: module maps and pkg-config flags.
read -r -a PKG_CFLAGS <<<"$(pkg-config --cflags openblas lapacke zlib)"
read -r -a PKG_LIBS <<<"$(pkg-config --libs openblas lapacke zlib)"
COMMON=(-sanitize=fuzzer,address -parse-as-library -O -g -swift-version 6
        -module-cache-path "$OUT/module-cache" -I "$OUT/modules"
        -I Sources/CLinearAlgebra -I Sources/CZlib -I Sources/CFileSystem)
for flag in "${PKG_CFLAGS[@]}"; do COMMON+=(-Xcc "$flag"); done
LINKER=()
command -v ld.lld >/dev/null 2>&1 && LINKER=(-use-ld=lld)

# newer OUTPUT INPUT...: whether some input is newer than the output (or the output is missing).
stale() {
    local output=$1; shift
    [[ ! -e $output ]] && return 0
    for input; do [[ $input -nt $output ]] && return 0; done
    return 1
}

JOBS=${FUZZ_JOBS:-$(nproc)}
PIDS=()
# spawn COMMAND...: runs it in the background, at most JOBS at once.
spawn() {
    while (( $(jobs -rp | wc -l) >= JOBS )); do wait -n || true; done
    "$@" &
    PIDS+=($!)
}
# finish: waits for everything spawned; fails when anything failed.
finish() {
    local pid failed=0
    for pid in "${PIDS[@]}"; do wait "$pid" || failed=1; done
    PIDS=()
    (( failed == 0 )) || { echo "fuzz: build failed" >&2; exit 1; }
}

# module NAME SOURCE...: one object and one .swiftmodule, whole-module optimised.
module() {
    local name=$1; shift
    if stale "$OUT/modules/$name.o" "$@" "$0" "${DEPENDS[@]}"; then
        echo "fuzz: compiling module $name"
        spawn "$SWIFTC" "${COMMON[@]}" -module-name "$name" -wmo -num-threads 0 -c "$@" \
            -emit-module -emit-module-path "$OUT/modules/$name.swiftmodule" -o "$OUT/modules/$name.o"
    fi
}

DEPENDS=()
module LinearAlgebra Sources/LinearAlgebra/*.swift
module FileOutput Sources/FileOutput/*.swift
finish
DEPENDS+=("$OUT/modules/LinearAlgebra.o" "$OUT/modules/FileOutput.o")
module RunFormat Sources/RunFormat/*.swift
module Training Sources/Training/IDXDataset.swift  # the demo's dataset reader needs nothing else of Training
finish
DEPENDS+=("$OUT/modules/RunFormat.o" "$OUT/modules/Training.o")

for target in "${TARGETS[@]}"; do
    source=Tests/Fuzz/$target.swift
    [[ -f $source ]] || { echo "fuzz: no target $target ($source)" >&2; exit 2; }
    if stale "$OUT/bin/$target" "$source" Tests/Fuzz/Support.swift "${DEPENDS[@]}"; then
        echo "fuzz: linking $target"
        spawn "$SWIFTC" "${COMMON[@]}" "${LINKER[@]}" -module-name "Fuzz_$target" "$source" Tests/Fuzz/Support.swift \
            "${DEPENDS[@]}" "${PKG_LIBS[@]}" -o "$OUT/bin/$target"
    fi
done
finish
