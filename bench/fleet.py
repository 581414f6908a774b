"""What a fleet costs as it grows (bench/README.md, docs/fleet.md): `python -m smartid.report.fleet
run` over 1, 4, 16 and 64 site files that all point at one lab set up by the suite's own setup,
with -j 1 and -j <cores>; the time per site and the ratio to one site, in one run (one site's
fleet runs before each larger one and once after the last; the ratios divide by their median).
Goal on a 2-core machine: 16 sites <= 4x one site, 64 sites <= 12x. Also the machine's busy
CPU-seconds during each run (the lab's included), how busy that kept the cores (a fleet at
100 % is CPU-bound: more concurrency cannot help it), the CPU-seconds each site beyond the first
adds, and the peak resident memory of the whole fleet run (the fleet and every site's
processes, sampled from /proc). Where the time goes: `lab s/site`, the CPU-seconds the lab spent
answering each site (the target's share, which a real fleet's targets spend on their own
machines), and `tail`, the seconds from the last site's end to the fleet's (the fleet's own
report, one Allure worker, while the other cores wait).

    python bench/fleet.py [--sizes 1,4,16,64] [--jobs 1,2] [--starts warm,cold] [--bytecode-cache]

`--bytecode-cache` lets the runs keep compiled modules (and pytest's rewritten ones) as a user's
machine does, where the environment sets PYTHONDONTWRITEBYTECODE (bench/verify_cost.py too).

A site's run is a whole nightly (pytest -m verify, summary, HTML report), so the per-site start
(interpreter, pytest, imports, the site model) and the report's render are paid per site.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.helpers import run_suite  # noqa: E402
from tests.lab import new_state, running_lab  # noqa: E402

LAB_SITE = (ROOT / "sites" / "lab.toml").read_text(encoding="utf-8")


def _tree_rss(root: int) -> int:
    """The resident memory (kB) of `root` and every process below it."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        pid = int(entry.name)
        parents[pid] = int(fields.get("PPid", "0").strip())
        rss[pid] = int(fields.get("VmRSS", "0 kB").split()[0]) if "VmRSS" in fields else 0
    total, frontier = 0, [root]
    while frontier:
        pid = frontier.pop()
        total += rss.get(pid, 0)
        frontier += [child for child, parent in parents.items() if parent == pid]
    return total


def _busy() -> float:
    """The machine's busy CPU-seconds since boot (/proc/stat: user, nice, system, irq, softirq),
    or NaN where there is no /proc/stat."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return float("nan")
    user, nice, system, _idle, _iowait, irq, softirq = (int(f) for f in fields[:7])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def _cpu_of(pid: int) -> float:
    """The CPU-seconds (user and system) process `pid` has used, or NaN where /proc has none."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _tail(reports: Path, ended: float) -> float:
    """Seconds from the last site's summary (the end of its nightly) to `ended` (wall clock)."""
    summaries = list((reports / "sites").glob("*/summary.json"))
    return ended - max(p.stat().st_mtime for p in summaries) if summaries else float("nan")


@dataclass(frozen=True)
class _Measured:
    seconds: float
    peak_kb: int
    busy: float  # the machine's busy CPU-seconds meanwhile
    lab: float  # the lab's CPU-seconds meanwhile
    tail: float  # seconds after the last site ended


def _fleet(
    sites: Path, reports: Path, jobs: int, env: dict[str, str], cold: bool, lab_pid: int
) -> _Measured:
    """Seconds of one fleet run into an empty `reports` (no history, as every run of the
    bench), its peak memory (kB) and the machine's busy CPU-seconds meanwhile (the lab's
    included); every site must pass."""
    shutil.rmtree(reports, ignore_errors=True)
    command = [sys.executable, "-m", "smartid.report.fleet", "run", str(sites), "-j", str(jobs)]
    command += [f"--reports={reports}", *(["--cold"] if cold else [])]
    peak = 0
    busy = _busy()
    lab = _cpu_of(lab_pid)
    started = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.PIPE, text=True
    )
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_rss(process.pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output, _ = process.communicate()
    elapsed = time.perf_counter() - started
    ended = time.time()
    busy = _busy() - busy
    lab = _cpu_of(lab_pid) - lab
    done.set()
    sampler.join()
    if process.returncode != 0:
        raise SystemExit(f"fleet of {sites} exited {process.returncode}:\n{output}")
    return _Measured(elapsed, peak, busy, lab, _tail(reports, ended))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,4,16,64")
    parser.add_argument("--jobs", default=f"1,{os.cpu_count() or 1}")
    parser.add_argument(
        "--starts", default="warm,cold", help="warm (forked from the fleet's server), cold, or both"
    )
    parser.add_argument(
        "--bytecode-cache",
        action="store_true",
        help="let the runs write and use bytecode caches (drop PYTHONDONTWRITEBYTECODE)",
    )
    args = parser.parse_args()
    if args.bytecode_cache:
        os.environ.pop("PYTHONDONTWRITEBYTECODE", None)  # the fleets inherit this environment
    starts = args.starts.split(",")
    sizes = [int(n) for n in args.sizes.split(",")]
    jobs = sorted({int(n) for n in args.jobs.split(",")})
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="fleet-bench-") as work:
        folder = Path(work)
        state = new_state(folder / "lab")
        env = {"SMARTID_LAB_STATE": str(state.path), "SMARTID_STATE": str(folder / "state")}
        with running_lab(state) as lab_process:
            setup = run_suite("-m", "setup", "-q", f"--alluredir={folder / 'a'}", env=env)
            if setup.returncode != 0:
                raise SystemExit(f"setup failed:\n{setup.stdout}")
            print(
                f"{'start':>5} {'sites':>5} {'-j':>3} {'seconds':>8} {'s/site':>7} {'x one':>6} "
                f"{'peak MB':>8} {'CPU s':>7} {'busy':>5} {'CPU s/site':>10} "
                f"{'lab s/site':>10} {'tail s':>6}"
            )
            for start, j in [(start, j) for start in starts for j in jobs]:
                # One site's fleet is the divisor of every ratio and moves the most from one
                # minute to the next: it runs before each larger fleet and once after the
                # last, and the ratios divide by the median of those runs.
                ones: list[_Measured] = []
                rows: list[tuple[int, _Measured]] = []
                order = [1, *[n for larger in sizes if larger != 1 for n in (larger, 1)]]
                for size in order:
                    measured = _fleet(
                        _sites(folder, size),
                        folder / "reports",
                        j,
                        env,
                        start == "cold",
                        lab_process.pid,
                    )
                    if size == 1:
                        ones.append(measured)
                    else:
                        rows.append((size, measured))
                one = statistics.median(m.seconds for m in ones)
                cpu = statistics.median(m.busy for m in ones)
                lab_one = statistics.median(m.lab for m in ones)
                tail_one = statistics.median(m.tail for m in ones)
                print(
                    f"{start:>5} {1:>5} {j:>3} {one:>8.1f} {one:>7.2f} {1.0:>6.1f} "
                    f"{'':>8} {cpu:>7.1f} {cpu / (one * cores):>5.0%} {'':>10} "
                    f"{lab_one:>10.2f} {tail_one:>6.1f}  median of {len(ones)}: "
                    f"{', '.join(f'{m.seconds:.1f}' for m in ones)}"
                )
                for size, m in rows:
                    # The CPU a site adds: beyond what a one-site fleet costs in all.
                    added = (m.busy - cpu) / (size - 1)
                    print(
                        f"{start:>5} {size:>5} {j:>3} {m.seconds:>8.1f} {m.seconds / size:>7.2f} "
                        f"{m.seconds / one:>6.1f} {m.peak_kb / 1024:>8.0f} {m.busy:>7.1f} "
                        f"{m.busy / (m.seconds * cores):>5.0%} {added:>10.2f} "
                        f"{m.lab / size:>10.2f} {m.tail:>6.1f}",
                        flush=True,
                    )


def _sites(folder: Path, size: int) -> Path:
    """A folder of `size` site files, each a copy of sites/lab.toml under its own name."""
    sites = folder / f"sites-{size}"
    if not sites.is_dir():
        sites.mkdir()
        for n in range(size):
            (sites / f"s{n:03}.toml").write_text(f'name = "s{n:03}"\n{LAB_SITE}')
    return sites


if __name__ == "__main__":
    main()
