#!/usr/bin/env python3
"""Validates ONNX files with the reference checker: check-onnx.py FILE...

Runs onnx.checker.check_model(onnx.load(f), full_check=True) on each file (full_check adds strict
shape inference) and prints "OK FILE" or "FAIL FILE: reason". Exits 0 when every file passes, 1
when any fails, 2 when the onnx package is missing (Debian: apt-get install python3-onnx).
"""
import sys


def main(files):
    if not files:
        print("usage: check-onnx.py FILE...", file=sys.stderr)
        return 2
    try:
        import onnx
    except ImportError as error:
        print(
            f"check-onnx: the Python onnx package is missing ({error}); "
            "install it with `apt-get install python3-onnx` or `pip install onnx`",
            file=sys.stderr,
        )
        return 2
    failed = 0
    for f in files:
        try:
            onnx.checker.check_model(onnx.load(f), full_check=True)
            print(f"OK {f}")
        except Exception as error:  # the checker raises several types; report each the same way
            failed += 1
            print(f"FAIL {f}: {type(error).__name__}: {error}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
