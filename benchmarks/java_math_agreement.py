"""Java's ``Math.log``/``Math.exp`` (used by ``BioASQEvaluation.jar``'s GMAP) against Python's and the correctly
rounded values, on random arguments in GMAP's ranges: log of AP + 1e-5 (AP in [0, 3]), exp of a mean log in [-11.6, 0].

Prints a table and writes ``benchmarks/results/java_math_agreement.json``; the numbers back the GMAP section of
``bioqa/evaluation/README.md``. Needs ``java`` and ``javac`` (bioqa itself never does).

    python benchmarks/java_math_agreement.py [--n 200000] [--seed 1]
"""

from __future__ import annotations

import argparse
import math
import random
import shutil
import struct
import subprocess
import sys
import tempfile
from decimal import Context, Decimal
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bioqa.evaluation.official import _log
from bioqa.runs import write_json

ROOT = Path(__file__).resolve().parents[1]
DRIVER = """
import java.io.*;
public class JavaMath {
  public static void main(String[] a) throws Exception {
    BufferedReader r = new BufferedReader(new InputStreamReader(System.in));
    PrintWriter w = new PrintWriter(new BufferedWriter(new OutputStreamWriter(System.out)));
    String line;
    while ((line = r.readLine()) != null) {
      String[] f = line.split(" ");
      double x = Double.longBitsToDouble(Long.parseUnsignedLong(f[1], 16));
      double y = f[0].equals("log") ? Math.log(x) : Math.exp(x);
      w.println(Long.toHexString(Double.doubleToRawLongBits(y)));
    }
    w.flush();
  }
}
"""
_REFERENCE = Context(prec=50)


def _bits(x: float) -> str:
    return format(struct.unpack("<Q", struct.pack("<d", x))[0], "x")


def _float(bits: str) -> float:
    return struct.unpack("<d", struct.pack("<Q", int(bits, 16)))[0]


def java_values(function: str, xs: list[float]) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "JavaMath.java").write_text(DRIVER)
        subprocess.run(["javac", "-d", tmp, str(Path(tmp) / "JavaMath.java")], check=True)
        lines = "".join(f"{function} {_bits(x)}\n" for x in xs)
        out = subprocess.run(["java", "-cp", tmp, "JavaMath"], input=lines, capture_output=True, text=True, check=True)
    return [_float(b) for b in out.stdout.split()]


def compare(function: str, xs: list[float]) -> dict:
    """Arguments; where Java and the C library differ; which of them is correctly rounded there; bioqa vs Java."""
    java = java_values(function, xs)
    libm = math.log if function == "log" else math.exp
    exact = _REFERENCE.ln if function == "log" else _REFERENCE.exp
    bioqa = _log if function == "log" else math.exp
    differ = java_cr = libm_cr = 0
    for x, j in zip(xs, java, strict=True):
        if libm(x) != j:
            differ += 1
            correct = float(exact(Decimal(x)))
            java_cr += j == correct
            libm_cr += libm(x) == correct
    bioqa_differs = sum(bioqa(x) != j for x, j in zip(xs, java, strict=True))
    return {"arguments": len(xs), "java_differs_from_libm": differ, "java_correctly_rounded": java_cr,
            "libm_correctly_rounded": libm_cr, "bioqa_differs_from_java": bioqa_differs}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if shutil.which("java") is None or shutil.which("javac") is None:
        sys.exit("java_math_agreement: error: java and javac are needed")
    rng = random.Random(args.seed)
    logs = [rng.random() * rng.choice([1, 1e-3, 1e-5, 3]) + 1e-5 for _ in range(args.n)]
    exps = [-rng.random() * 11.6 for _ in range(2 * args.n)]
    rows = {"log": compare("log", logs), "exp": compare("exp", exps)}
    table = Table(title="Java Math (HotSpot intrinsics) vs the C library, on GMAP's argument ranges")
    for column in ("function", *rows["log"]):
        table.add_column(column, justify="left" if column == "function" else "right")
    for name, row in rows.items():
        table.add_row(name, *(str(v) for v in row.values()))
    Console(width=160).print(table)
    write_json(ROOT / "benchmarks/results/java_math_agreement.json", {"seed": args.seed, **rows})


if __name__ == "__main__":
    main()
