"""The matching benchmark twice in one run: `book.py` as Python, then compiled by mypyc.

    python bench/matching_mypyc.py [matching.py options]

The Python source stays the source: this copies `src/strongroom` to a temporary folder,
compiles `actors/book.py` there with mypyc (needs gcc and the Python headers, as on a
fresh machine of this kind), and runs `bench/matching.py` once against each build, each
in a fresh process. The compiled build passes the same tests:
`PYTHONPATH=<that folder> pytest tests/actors/test_book.py`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE.parent / "src" / "strongroom"


def run(extra_path: str | None, options: list[str]) -> float:
    environment = dict(os.environ)
    if extra_path:
        environment["PYTHONPATH"] = extra_path
    output = subprocess.run(
        [sys.executable, str(HERE / "matching.py"), *options],
        env=environment, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    print(output)
    median = re.search(r"median ([\d,]+) ops/s \(handle_batch", output)
    assert median is not None, output
    return float(median.group(1).replace(",", ""))


def main() -> None:
    options = sys.argv[1:]
    with tempfile.TemporaryDirectory(prefix="strongroom-mypyc-") as folder:
        shutil.copytree(SOURCE, Path(folder) / "strongroom")
        mypyc = Path(sys.executable).with_name("mypyc")
        subprocess.run(
            [str(mypyc), "strongroom/actors/book.py"],
            cwd=folder, check=True, capture_output=True,
        )  # fmt: skip
        print("== book.py as Python")
        python = run(None, options)
        print("== book.py compiled by mypyc")
        compiled = run(folder, options)
    print(f"compiled / Python (medians, same run) = {compiled / python:.2f}")

    import summary  # bench/summary.py: the line `python -m bench` reads

    summary.emit(
        "matching-mypyc",
        [
            summary.figure(
                "throughput, median, book.py compiled by mypyc",
                compiled,
                "ops/s",
                baseline=python,
                baseline_name="book.py as Python",
            )
        ],
    )


if __name__ == "__main__":
    main()
