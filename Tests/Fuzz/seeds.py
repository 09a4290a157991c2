#!/usr/bin/env python3
"""Writes the seed corpus of every fuzz target into Tests/Fuzz/corpus/<target>/ (standard library only).

Each seed is small: a few valid inputs, so that the fuzzer starts deep in each parser, and a few
invalid ones of the kinds the parsers must refuse. Rerun after changing an input layout."""
import gzip, json, os, struct, shutil

HERE = os.path.dirname(os.path.abspath(__file__))


def npy(descr, shape, data, fortran=False, version=1):
    shape_text = "(" + ", ".join(map(str, shape)) + (",)" if len(shape) == 1 else ")")
    d = "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }" % (descr, fortran, shape_text)
    pre = 10 if version == 1 else 12
    d += " " * ((64 - (pre + len(d) + 1) % 64) % 64) + "\n"
    head = b"\x93NUMPY" + bytes([version, 0])
    head += struct.pack("<H", len(d)) if version == 1 else struct.pack("<I", len(d))
    return head + d.encode() + data


def f32(values, endian="<"):
    return struct.pack(endian + "%df" % len(values), *values)


def idx_images(n, h, w, pixels=None, magic=0x0803):
    return struct.pack(">IIII", magic, n, h, w) + bytes(pixels if pixels is not None else [(i * 37) % 256 for i in range(n * h * w)])


def idx_labels(n, labels=None):
    return struct.pack(">II", 0x0801, n) + bytes(labels if labels is not None else [i % 10 for i in range(n)])


def idx_input(images, labels, compress):
    return bytes([1 if compress else 0]) + struct.pack("<H", len(images)) + images + labels


def chunk(data, long=False):
    return (struct.pack("<H", len(data)) if long else bytes([len(data)])) + data


def checkpoint(name_byte, kind, fields=b""):
    return bytes([name_byte, kind]) + fields


def f32_checkpoint(step, rows, cols, values, complete=False, state=None, float64=False):
    kind = 2 | (4 if complete else 0) | (8 if state is not None else 0) | (16 if float64 else 0)
    bits = b"".join(struct.pack(">f", v) for v in values)
    out = checkpoint(step << 3, kind, bytes([rows - 1, cols - 1]) + chunk(bits))
    return out + (chunk(state) if state is not None else b"")


def run_input(flags, run_json=None, losses=None, checkpoints=()):
    flags |= (2 if run_json is not None else 0) | (4 if losses is not None else 0) | (len(checkpoints) << 4)
    out = bytes([flags])
    if run_json is not None:
        out += chunk(run_json)
    if losses is not None:
        out += chunk(losses)
    return out + b"".join(checkpoints)


STATE = json.dumps({"epoch": 1.5, "log_history": [
    {"step": 10, "loss": 2.3, "epoch": 0.5}, {"step": 20, "loss": 1.9, "epoch": 1.0},
    {"step": 20, "eval_loss": 2.0, "epoch": 1.0}]}).encode()
VALUES = [0.5, -1.0, 2.0, 0.25, -0.75, 1.5, 3.0, -2.0, 0.125, 1.0, -0.5, 2.5]

SEEDS = {
    "npy": {
        "valid_f4_3x2.npy": npy("<f4", (3, 2), f32(VALUES[:6])),
        "valid_f2_big_endian.npy": npy(">f2", (2, 2), struct.pack(">4e", 1.0, -2.0, 0.5, 3.0)),
        "valid_f8_fortran.npy": npy("<f8", (2, 3), struct.pack("<6d", *VALUES[:6]), fortran=True),
        "valid_i8_labels.npy": npy("<i8", (4,), struct.pack("<4q", 0, 3, 1, 2)),
        "valid_u1_images_fortran.npy": npy("|u1", (2, 2, 3), bytes(range(12)), fortran=True),
        "valid_b1.npy": npy("|b1", (3,), b"\x01\x00\x01"),
        "valid_u8_version2.npy": npy("<u8", (2,), struct.pack("<2Q", 7, 2**63), version=2),
        "valid_i2_version3.npy": npy(">i2", (3,), struct.pack(">3h", -1, 0, 300), version=3),
        "empty_array.npy": npy("<f4", (0, 2), b""),
        "bad_magic.npy": b"\x93NUMPZ\x01\x00\x10\x00{'descr': '<f4'}",
        "truncated_data.npy": npy("<f4", (3, 2), f32(VALUES[:5])),
        "huge_shape.npy": npy("<f4", (2**40, 2**40), b""),
        "bad_descr.npy": npy("<c16", (1,), b"\x00" * 16),
        "no_shape.npy": b"\x93NUMPY\x01\x00\x20\x00{'descr': '<f4', 'fortran_order': False}",
        "empty.npy": b"",
    },
    "idx": {
        "valid_plain": idx_input(idx_images(3, 2, 2), idx_labels(3), False),
        "valid_gzip": idx_input(idx_images(4, 3, 2), idx_labels(4), True),
        "valid_real_gzip_member": idx_input(gzip.compress(idx_images(2, 2, 2), mtime=0), idx_labels(2), False),
        "count_mismatch": idx_input(idx_images(3, 1, 1), idx_labels(2), True),
        "overflowing_dimensions": idx_input(struct.pack(">IIII", 0x0803, 2**32 - 1, 2**32 - 1, 2**32 - 1), idx_labels(1), False),
        "truncated_images": idx_input(idx_images(3, 2, 2)[:-3], idx_labels(3), True),
        "wrong_magic": idx_input(idx_images(1, 1, 1, magic=0x0801), idx_labels(1), False),
        "no_images": idx_input(idx_images(0, 28, 28), idx_labels(0), True),
        "corrupt_gzip": idx_input(gzip.compress(idx_images(2, 2, 2), mtime=0)[:-6] + b"\0\0\0\0\0\0", idx_labels(2), False),
    },
    "losses_csv": {
        "valid.csv": b"step,loss,epoch\n10,2.30,0.5\n20,1.95,1.0\n30,1.70,1.5\n",
        "valid_bom_crlf_spaces.csv": "\ufeffstep, loss ,lr\r\n0, 2.5 ,0.001\r\n5,2.1,0.001\r\n".encode(),
        "growing_last_line.csv": b"step,loss\n1,1.0\n2,0.9\n3,0.",
        "blank_lines.csv": b"loss,step\n\n1.5,4\n\n1.2,8\n",
        "bad_header.csv": b"iteration,value\n1,2\n",
        "not_numbers.csv": b"step,loss\nten,2.3\n",
        "huge_step.csv": b"step,loss\n9007199254740993,1.0\n1e300,2\n-1,3\n",
        "nan_and_inf.csv": b"step,loss,epoch\n1,nan,inf\n2,inf,nan\n",
        "empty.csv": b"",
        "not_utf8.csv": b"step,loss\n1,\xff\xfe\n",
    },
    "trainer_state": {
        "valid.json": STATE,
        "odd_entries.json": json.dumps({"epoch": True, "log_history": [
            {"step": 1e300, "loss": 1}, {"step": True, "loss": 2}, {"step": 3, "loss": "x"},
            {"step": -4, "loss": 1}, {"step": 5.5, "eval_loss": 1}, "not an object", None]}).encode(),
        "no_log.json": b'{"epoch": 2}',
        "not_object.json": b'[1, 2, 3]',
        "fragment.json": b'"just a string"',
        "invalid.json": b'{"epoch": ',
        "deep.json": b'{"log_history": ' + b"[" * 64 + b"]" * 64 + b"}",
        "empty.json": b"",
    },
    "class_names": {
        "valid_names": b"\x00" + json.dumps(["T-shirt", "Trouser", "Pullover"]).encode(),
        "valid_with_labels": bytes([8 | 16 | 3, 0, 2, 1]) + json.dumps(["a", "b", "c"]).encode(),
        "labels_beyond_names": bytes([8 | 3, 0, 5, 1]) + json.dumps(["a", "b"]).encode(),
        "labels_checked_against_samples": bytes([8 | 16 | 2, 0, 1]) + b'["a","b"]',
        "not_a_list": b"\x00" + b'{"0": "a"}',
        "not_strings": b"\x00" + b'["a", 1, null]',
        "unicode_names": b"\x00" + json.dumps(["\u00e9t\u00e9", "\u2603", "a\nb"], ensure_ascii=False).encode(),
        "invalid_json": b"\x00" + b'["a", ',
        "empty": b"\x00",
    },
    "run_scanner": {
        "valid_run": run_input(1, run_json=b'{"run_id": "seed"}', losses=b"step,loss\n0,2.0\n10,1.5\n", checkpoints=[
            f32_checkpoint(0, 3, 2, VALUES[:6], state=STATE),
            f32_checkpoint(1, 3, 2, VALUES[6:12], complete=True),
            f32_checkpoint(2, 3, 2, VALUES[:6], float64=True)]),
        "valid_live_run": run_input(8, checkpoints=[
            f32_checkpoint(0, 4, 2, VALUES[:8], complete=True), f32_checkpoint(3, 4, 2, VALUES[4:12])]),
        "shape_change": run_input(0, checkpoints=[f32_checkpoint(0, 3, 2, VALUES[:6]), f32_checkpoint(1, 4, 2, VALUES[:8])]),
        "duplicate_step": run_input(0, checkpoints=[
            f32_checkpoint(1, 3, 2, VALUES[:6]), checkpoint(1 << 3 | 5, 2, bytes([2, 1]) + chunk(b""))]),
        "beyond_2_53_and_not_digits": run_input(0, checkpoints=[
            checkpoint(6, 2, bytes([2, 1]) + chunk(b"")), checkpoint(7, 2, bytes([2, 1]) + chunk(b"")),
            f32_checkpoint(2, 3, 2, VALUES[:6])]),
        "raw_embeddings": run_input(0, checkpoints=[
            checkpoint(0, 1, chunk(npy("<f4", (3, 2), f32(VALUES[:6])), long=True)),
            checkpoint(8, 1 | 4, chunk(b"\x93NUMPY\x01\x00", long=True))]),
        "embeddings_folder_and_missing": run_input(8, checkpoints=[checkpoint(0, 3), checkpoint(8, 0 | 4)]),
        "nan_values_bad_state": run_input(0, run_json=b"[1]", checkpoints=[
            f32_checkpoint(0, 3, 2, [float("nan")] * 6, state=b"{bad")]),
        "empty_run": b"",
    },
}

for target, seeds in SEEDS.items():
    folder = os.path.join(HERE, "corpus", target)
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    for name, data in seeds.items():
        with open(os.path.join(folder, name), "wb") as f:
            f.write(data)
    os.makedirs(os.path.join(HERE, "crashes", target), exist_ok=True)
