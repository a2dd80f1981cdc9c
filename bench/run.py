"""Run the benchmark suite (all rows or some) and write BENCHMARKS.md.

    python3 bench/run.py                  # every row (about an hour on 2 CPU cores), then BENCHMARKS.md
    python3 bench/run.py ann embed        # some rows; the others keep their saved results
    python3 bench/run.py --quick metrics  # small sizes, to check that a row works (not for the record)
    python3 bench/run.py --render         # rewrite BENCHMARKS.md and the README's summary from saved results

Each row's measurements are saved to bench/results/ROW.json (committed); its section of BENCHMARKS.md and
its line of the README's results summary are rendered from them. Every row runs newsrec and its baseline side
by side in the same run. Quick runs are saved to bench/out/quick/ instead, so they never replace a recorded result.
"""
from __future__ import annotations

import argparse
import importlib
import json
import time
from pathlib import Path

from newsrec.bench.common import OUT, ROOT, describe, table

ROWS = {  # row name -> module of the `bench` package (installed with newsrec), in the order of BENCHMARKS.md
    "embed": "newsrec.bench.bench_embed",
    "users": "newsrec.bench.bench_users",
    "training": "newsrec.bench.bench_training",
    "metrics": "newsrec.bench.bench_metrics",
    "ann": "newsrec.bench.bench_ann",
    "ann-cost": "newsrec.bench.bench_ann_cost",
    "mips": "newsrec.bench.bench_mips",
    "funnel": "newsrec.bench.bench_funnel",
    "feed": "newsrec.bench.bench_feed_http",
    "memory": "newsrec.bench.bench_memory",
    "generate": "newsrec.bench.bench_generate",
    "fum": "newsrec.bench.bench_fum",
    "unbert": "newsrec.bench.bench_unbert",
    "recallnet": "newsrec.bench.bench_recallnet",
    "large": "newsrec.bench.bench_large",
    "epoch": "newsrec.bench.bench_epoch",
    "serve": "newsrec.bench.bench_serve",
    "start": "newsrec.bench.bench_start",
    "cpu": "newsrec.bench.bench_cpu",
    "live": "newsrec.bench.bench_live",
    "learned": "newsrec.bench.bench_learned",
}
GPU_ROW = ("gpu", "newsrec.bench.bench_gpu")  # rendered only: measured by `bash bench/gpu.sh` on a GPU machine
RESULTS = ROOT / "bench" / "results"
DOCUMENT = ROOT / "BENCHMARKS.md"

HEADER = """# Benchmarks

Every row runs newsrec and a baseline side by side, in the same run and on the same inputs, and
reports the ratio (medians over repeats). The baselines are written inside the benchmarks, after the
Vespa news tutorial's pipeline: a one-article-at-a-time embedding loop, a per-impression sklearn
metrics loop, one query per impression for evaluation, pyvespa's synchronous feed. These machines
are shared and noisy: read the ratios; absolute times only mean much on a GPU.

Regenerate everything with `python3 -m pip install -e '.[bench]' && python3 bench/run.py` (about an
hour on 2 CPU cores), one row with `python3 bench/run.py ROW` (rows: {rows}); this file is written
by `bench/run.py` from `bench/results/*.json`. Each section names the machine it was measured on.
"""


def run_rows(names: list[str], quick: bool) -> None:
    target = OUT / "quick" if quick else RESULTS
    target.mkdir(parents=True, exist_ok=True)
    for name in names:
        module = importlib.import_module(ROWS[name])
        print(f"== {name}{' (quick)' if quick else ''}", flush=True)
        started = time.perf_counter()
        data = module.run(quick)
        data["seconds"] = round(time.perf_counter() - started, 1)
        data["quick"] = quick
        (target / f"{name}.json").write_text(json.dumps(data, indent=1) + "\n")
        print(module.render(data), flush=True)


def render_document(results: Path = RESULTS) -> str:
    sections = [HEADER.format(rows=", ".join(ROWS))]
    for name, module_name in ROWS.items():
        path = results / f"{name}.json"
        if not path.is_file():
            sections.append(f"## {name}\n\nNot measured yet: `python3 bench/run.py {name}`.\n")
            continue
        data = json.loads(path.read_text())
        body = importlib.import_module(module_name).render(data)
        sections.append(f"{body}\n\nMachine: {describe(data['machine'])}; the row took {data['seconds']:.0f} s.\n")
    gpu = results / f"{GPU_ROW[0]}.json"
    sections.append(importlib.import_module(GPU_ROW[1]).render(json.loads(gpu.read_text()) if gpu.is_file() else None)
                    + "\n")
    return "\n".join(sections)


# ----------------------------------------------------------------------------- the README's results summary
# One line per row: what it measures, its headline (where the row's own check failed or its target is not met, the
# line says so first), and the command. Written into README.md between the two markers by `--render` and after runs;
# tests/test_readme.py checks that the README's block is what this renders from the committed results.

README = ROOT / "README.md"
SUMMARY_START = "<!-- results:start (written by `python3 bench/run.py --render` from bench/results/*.json) -->"
SUMMARY_END = "<!-- results:end -->"

WHAT = {  # row -> what it measures, newsrec against what
    "embed": "news embedding (all-MiniLM-L6-v2): batched vs the per-article loop",
    "users": "user embedding (UniRec): batched vs one user at a time",
    "training": "training UniRec's ranking stage: cached LM vectors vs fine-tuning",
    "metrics": "dev metrics (MIND-small-sized) and evaluation from model vectors vs per-impression sklearn",
    "ann": "ANN recall@100 against exact MIPS, 10k-1M news",
    "ann-cost": "recall cost: the HNSW graph against exact search, one thread, 161k and 1M news",
    "mips": "MIPS on HNSW: explicit Φ vs Vespa's `dotproduct` (simulated) vs none",
    "funnel": "the ranking funnel: recall budget vs quality and latency",
    "feed": "feeding 5,000 documents: newsrec's feeder vs pyvespa's `feed_iterable`",
    "memory": "reading and embedding at MIND-small and MIND-large scale vs pandas",
    "generate": "generating data: world v2 vs world v1",
    "fum": "user embedding: FUM vs UniRec",
    "unbert": "UNBERT re-ranking the two-tower's best N",
    "recallnet": "recall vectors: Recallnet vs UniRec's bases and mean-pool",
    "large": "the whole pipeline on generated MIND-large, each stage's peak memory",
    "epoch": "one full CPU training epoch at MIND-large scale",
    "serve": "the web page (`newsrec serve`) at MIND-small scale",
    "cpu": "the news encoder against this CPU's peak; int8 and ONNX Runtime",
    "start": "command-line start time: libraries imported where needed vs torch imported first",
    "live": "the live service replayed (streaming, causal): time-blind two-tower vs time in every phase",
    "learned": "learned ranking through the replay (streaming, causal): LightGBM vs the best hand-set combination",
}


def _ratio(value: float) -> str:
    return f"{value:.2f}×" if value < 10 else f"{value:.0f}×"


def _gib(mib: float) -> str:
    return f"{mib / 1024:.1f} GiB"


def _device(data: dict) -> str:
    return "CPU" if data["device"] == "cpu" else data["device"]


def _embed_line(data: dict) -> str:
    speedup = data["batched_rate"] / data["loop_rate"]
    if speedup < 30:
        return f"target ≥ 30× **not met**: {speedup:.1f}× on {_device(data)}"
    return f"**{speedup:.1f}×** on {_device(data)} (target ≥ 30× met)"


def _users_line(data: dict) -> str:
    users, seconds = data["curve"]["users"][-1], data["curve"]["seconds"][-1]
    return (f"**{data['batched_rate'] / data['loop_rate']:.0f}×**; {users:,} users in {seconds:.0f} s on "
            f"{_device(data)} (GPU target: under 10 s)")


def _training_line(data: dict) -> str:
    modes = data["modes"]
    default = next(label for label in modes if "default" in label)
    finetune = next(label for label in modes if label.startswith("fine-tune"))
    return (f"{default}: {modes[default]['impressions_per_s']:,.0f} impressions/s; {finetune}: "
            f"{modes[finetune]['impressions_per_s']:.2f}/s ({_device(data)})")


def _metrics_line(data: dict) -> str:
    speedup = data["loop_s"] / data["ours_s"]
    metrics = (f"metrics **{speedup:.0f}×** (target ≥ 20× {'met' if speedup >= 20 else '**not met**'})"
               if data.get("agree") else "metrics: **no ratio**, the row's agreement check failed")
    serving = data["serving"]
    if not serving.get("agree") or "skipped_single_class" not in serving:
        return f"{metrics}; evaluation: **no ratio**, the recorded run predates its agreement check (rerun the row)"
    return f"{metrics}; evaluation **{serving['per_query_s'] / serving['ours_s']:.0f}×** (metrics agree)"


def _ann_line(data: dict) -> str:
    targets = importlib.import_module(ROWS["ann"]).TARGETS
    parts = []
    for entry in data["sizes"]:
        law = next((row["law"] for row in entry["budgets"] if row["law"]["budget"] == 100), None)
        if law is None:
            continue
        wanted = targets.get(entry["size"])
        met = "met" if wanted is not None and law["recall"] >= wanted else "**not met**"
        verdict = "" if wanted is None else f", target ≥ {wanted} {met}"
        parts.append(f"{law['recall']:.4f} at {entry['size']:,} (E = {law['explored']:,}{verdict})")
    return f"{'; '.join(parts)}; {data['links']} links"


def _ann_cost_line(data: dict) -> str:
    module = importlib.import_module(ROWS["ann-cost"])
    parts = []
    for entry in data["sizes"]:  # the graph the embedded index builds
        best = module.fastest(entry, module.SERVED)
        if best is None:
            parts.append(f"{entry['size']:,} news: the served graph did not reach recall@100 ≥ {module.TARGET}")
            continue
        met = "met" if best["ratio"] >= module.WANTED_RATIO else "**not met**"
        parts.append(f"{entry['size']:,} news: **{_ratio(best['ratio'])}** exact at recall@100 {best['recall']:.3f} "
                     f"(efSearch {best['ef']:,}; target ≥ {module.WANTED_RATIO:.0f}× {met})")
    return "; ".join(parts)


def _mips_line(data: dict) -> str:
    entry = data["sizes"][-1]
    found = {name: variant["recall_at_100"] for name, variant in entry["variants"].items()}
    vectors = "generated" if "generated" in entry["source"] else "the model's"
    return (f"{entry['size']:,} {vectors} news, recall@100 in random feed order: explicit Φ "
            f"{found['explicit Φ (newsrec), random']:.4f}, Vespa's `dotproduct` "
            f"{found['Vespa dotproduct (simulated), random']:.4f}, none {found['none, random']:.4f}; by descending "
            f"norm {found['explicit Φ (newsrec), descending norm']:.4f} / "
            f"{found['Vespa dotproduct (simulated), descending norm']:.4f}")


def _funnel_line(data: dict) -> str:
    baseline = importlib.import_module(ROWS["funnel"]).BASELINE
    row = next(row for row in data["rows"] if row["budget"] == data["default"])
    latency = data["latency_ms"]
    return (f"R = {row['budget']}: phase-1 recall@R {row['recall']:.4f}; served AUC {row['auc']:.4f} against "
            f"{data['offline']['auc']:.4f} offline (bounded by the recall key); {latency[str(row['budget'])]:.1f} ms a "
            f"10-hit query ({latency[str(baseline)]:.1f} ms at R = {baseline})")


def _feed_line(data: dict) -> str:
    http = data["http"]
    baseline = next(iter(http.values()))["docs_per_s"]

    def versus(word: str) -> str:
        return _ratio(next(m for name, m in http.items() if word in name)["docs_per_s"] / baseline)

    return (f"newsrec's feeder {versus('--feed-mode sync')} (HTTP/1.1) and {versus('--feed-mode async')} (h2c), "
            f"`vespa feed` {versus('Go CLI')} of pyvespa's {baseline:,.0f} docs/s, on the contract server (not "
            f"Vespa); the embedded index {_ratio(data['embedded_docs_per_s'] / baseline)}")


def _memory_line(data: dict) -> str:
    size, largest = list(data["scales"].items())[-1]
    read, pandas, embed = largest["read"], largest["pandas"], largest["embed"]
    baseline = f"did not finish ({pandas['failed']})" if pandas.get("failed") else f"{pandas['seconds']:.0f} s"
    older = "; an older run: the whole-pipeline row supersedes it" if data.get("note") else ""
    return (f"{size}: read {read['seconds']:.0f} s, {_gib(read['added_mib'])}; pandas' read_csv {baseline}; read + "
            f"embed peak {_gib(embed['added_mib'])} (measured {data['machine']['date']}{older})")


def _generate_line(data: dict) -> str:
    def peak(measured: dict) -> float:  # the process tree's PSS where sampled, as bench_generate renders it
        return measured.get("tree_peak_mib", measured["peak_mib"])

    time_ratios = [entry["v2"]["seconds"] / entry["v1"]["seconds"] for entry in data["sizes"]]
    peak_ratios = [peak(entry["v2"]) / peak(entry["v1"]) for entry in data["sizes"]]
    within = all(0.5 <= ratio <= 1.5 for ratio in time_ratios + peak_ratios)
    sizes = " / ".join(entry["size"] for entry in data["sizes"])
    times, peaks = (" / ".join(f"{r:.2f}×" for r in ratios) for ratios in (time_ratios, peak_ratios))
    return (f"{'within' if within else '**not within**'} ± 50% of v1 at every size: time {times}, peak memory "
            f"{peaks} ({sizes})")


def _fum_line(data: dict) -> str:
    speed, longest = data["throughput"], data["scaling"]["rows"][-1]
    fum, unirec = speed["fum"]["users_per_s"], speed["unirec"]["users_per_s"]
    return (f"FUM {fum:,.0f} users/s, **{fum / unirec:.2f}×** UniRec's {unirec:,.0f}; one Fastformer layer "
            f"{longest['self_attention_ms'] / longest['fastformer_ms']:.0f}× cheaper than self-attention at "
            f"{longest['clicks']} clicks")


def _unbert_line(data: dict) -> str:
    alone = data["rows"][0]
    best10 = next((row for row in data["rows"]
                   if "fusion" in row and row["fusion"] == data["served_fusion"] and row["n"] == 10), data["rows"][1])
    latency = data["latency"]
    times = " / ".join(f"{row['ms']:,.0f}" for row in latency[1:])
    ratios = " / ".join(f"{row['ratio']:.0f}×" for row in latency[1:])
    sizes = " / ".join(row["name"].rpartition("= ")[2] for row in latency[1:])
    trained = data["reranker"]["train_config"].get("max_impressions")
    moves = ", ".join(f"{label} {alone[key]:.4f} → {best10[key]:.4f}"
                      for key, label in (("auc", "AUC"), ("mrr", "MRR")))
    lowered = any(best10[key] < alone[key] for key in ("auc", "mrr", "ndcg10"))
    return (f"{best10['name'].removeprefix('+ ')}: {moves} (trained on {f'{trained:,}' if trained else 'all'} "
            f"impressions on CPU){'; lowers the funnel: off by default' if lowered else ''}; `recommend` {times} ms "
            f"at N = {sizes} against {latency[0]['ms']:.1f} ms ({ratios})")


def _recallnet_line(data: dict) -> str:
    def at100(name: str) -> float:
        row = next(row for row in data["rows"] if row["name"] == name)
        return row["exact"]["dev-day pool"]["100"]

    oracle = data.get("oracle", {}).get("dev-day pool", {}).get("100")
    versus = f"; the recall oracle {oracle:.4f}" if oracle is not None else ""
    return (f"R@100 over the day's news: Recallnet {at100('recallnet'):.4f}, UniRec's bases "
            f"{at100('unirec (top-P bases)'):.4f}, mean-pool {at100('meanpool'):.4f}{versus}")


def _large_line(data: dict) -> str:
    large, users = data["sizes"]["large"], data["users_1m"]
    budget = importlib.import_module(ROWS["large"]).GIB
    return (f"{large['feed']['news']:,} news, {large['feed']['users']:,} users within {budget} GiB: train "
            f"{_gib(large['train']['peak_mib'])}, feed {_gib(large['feed']['peak_mib'])} / "
            f"{large['feed']['seconds']:.0f} s, evaluate {_gib(large['evaluate']['peak_mib'])} / "
            f"{large['evaluate']['seconds']:.0f} s; {users['users']:,} users embedded at {_gib(users['peak_mib'])}")


def _epoch_line(data: dict) -> str:
    train = data["train"]
    stages = ", ".join(f"{e['stage']} {e['seconds'] / 60:.0f} min ({e['impressions_per_s']:,.0f}/s)"
                       for e in train["epochs"])
    return (f"{train['train_impressions'] * 0.9:,.0f} impressions: {stages}, {train['seconds'] / 60:.0f} min with "
            f"validation; peak {train['peak_mib'] / 1024:.2f} GiB")


def _serve_line(data: dict) -> str:
    page, direct = data["page"], data["direct"]
    return (f"p50 **{page['all']['p50_ms']:.0f} ms**, p99 **{page['all']['p99_ms']:.0f} ms** at {data['clients']} "
            f"clients; {1000 / page['pages_per_s']:.0f} ms of server time a page against "
            f"{direct['all']['mean_ms']:.0f} ms in-process")


def _cpu_line(data: dict) -> str:
    tolerance = importlib.import_module(ROWS["cpu"]).TOLERANCE
    runtimes, auc, peak = data["runtimes"], data.get("auc") or {}, data["peak"]["peak_gflops"]
    torch = runtimes["torch"]
    fits = [name for name in runtimes if name in auc and abs(auc[name] - auc["torch"]) <= tolerance["auc"]
            and runtimes[name]["min_cosine"] >= tolerance["cosine"]]
    if not fits:
        verdict = "no quality check in this run: no runtime recommended"
    else:
        best = min(fits, key=lambda name: runtimes[name]["seconds"])
        faster = [f"`{name}`" for name in runtimes if runtimes[name]["seconds"] < runtimes[best]["seconds"]]
        verdict = ("float32 is the fastest at equal quality" if best == "torch" else
                   f"`{best}` {torch['seconds'] / runtimes[best]['seconds']:.2f}× at equal quality (offered; float32 "
                   "stays the default)") + (f"; {', '.join(faster)} faster but outside the quality tolerance"
                                            if faster else "")
    return f"float32 PyTorch {torch['gflops']:.0f} GFLOP/s, **{torch['gflops'] / peak:.0%} of peak**; {verdict}"


def _start_line(data: dict) -> str:
    return "; ".join(f"`{name}` {times['lazy_s']:.2f} s against {times['eager_s']:.2f} s "
                     f"({_ratio(times['eager_s'] / times['lazy_s'])})" for name, times in data["commands"].items())


def _live_line(data: dict) -> str:
    parts = []
    for world, ladder in data["ladder"].items():
        first, last = ladder["ladder"][0], ladder["ladder"][-1]
        recall = last["recall@100 over all news"] / first["recall@100 over all news"]
        parts.append(f"{world}: AUC {first['auc']:.4f} → **{last['auc']:.4f}**, Recall@100 over all news "
                     f"{first['recall@100 over all news']:.4f} → **{last['recall@100 over all news']:.4f}** "
                     f"({_ratio(recall)}{'' if recall >= 3 else ', target ≥ 3× **not met**'})")
    v2 = data["ladder"].get("v2", {}).get("ladder", [{}])[-1].get("auc")
    if v2 is not None:
        parts.append(f"v2 AUC target ≥ 0.72 {'met' if v2 >= 0.72 else '**not met**'}")
    rates = data["updates"]["updates_per_second"]
    best = max(rates["one call per impression"], rates["calls of 1,000 impressions"])
    parts.append(f"{best:,.0f} counter updates/s into the embedded index (target ≥ 50,000)")
    alone = data.get("replay alone")
    if alone:
        verdict = "" if alone["wall seconds"] <= 600 else ", target ≤ 600 s **not met**"
        parts.append(f"the replay of {alone['world']} {alone['size']} in {alone['wall seconds']:.0f} s{verdict}")
    return "; ".join(parts)


def _learned_line(data: dict) -> str:
    parts = []
    for world, w in data["worlds"].items():
        hand = w["hand-set"]["auc"]
        best = max(w["rankers"], key=lambda o: w["rankers"][o]["auc"])
        gain = w["rankers"][best]["auc"] - hand
        target = "" if world != "v2" else (", target ≥ +0.01 met" if gain >= 0.01 else ", target ≥ +0.01 **not met**")
        parts.append(f"{world}: hand-set AUC {hand:.4f} → LightGBM {best} **{w['rankers'][best]['auc']:.4f}** "
                     f"({gain:+.4f}{target}"
                     + (f"; served through the replay: {w['served']['auc']:.4f})" if "auc" in w["served"] else ")"))
    if "v2" not in data["worlds"]:
        parts.append("v2: **not recorded** (target ≥ +0.01 unproven here; docs/learned.md)")
    return "; ".join(parts) + "; UNBERT fused in the global phase: the `unbert` row"


HEADLINES = {"learned": _learned_line, "live": _live_line, "start": _start_line, "embed": _embed_line, "users": _users_line, "training": _training_line, "metrics": _metrics_line,
             "ann": _ann_line, "ann-cost": _ann_cost_line, "mips": _mips_line, "funnel": _funnel_line, "feed": _feed_line, "memory": _memory_line,
             "generate": _generate_line, "fum": _fum_line, "unbert": _unbert_line, "recallnet": _recallnet_line,
             "large": _large_line, "epoch": _epoch_line, "serve": _serve_line, "cpu": _cpu_line}


def _headline(name: str, results: Path) -> str:
    path = results / f"{name}.json"
    if not path.is_file():
        return "**not measured** yet"
    data = json.loads(path.read_text())
    if data.get("quick"):
        return "**not measured**: only a quick run is saved (not for the record)"
    return HEADLINES[name](data)


def _gpu_headline(results: Path) -> str:
    path = results / f"{GPU_ROW[0]}.json"
    data = json.loads(path.read_text()) if path.is_file() else None
    if not data or data.get("quick"):
        return "**not measured**: the script is ready (checked at toy sizes on CPU); no GPU has been lent yet"
    news, users = data["news_embedding"], data["users"]
    return (f"{news['news']:,} news in **{news['seconds']:.1f} s**, {users['users']:,} users in "
            f"**{users['seconds']:.1f} s** on {data['gpu']}")


def render_summary(results: Path = RESULTS) -> str:
    """The README's results table, from the saved results (the same files BENCHMARKS.md is rendered from)."""
    rows = [[WHAT[name], _headline(name, results), f"`python3 bench/run.py {name}`"] for name in ROWS]
    rows.append(["GPU: 161k news, 1M users, training throughput, UNBERT latency", _gpu_headline(results),
                 "`bash bench/gpu.sh`"])
    return "\n".join([SUMMARY_START, table(["benchmark", "newsrec (against its baseline)", "command"], rows),
                      SUMMARY_END])


def write_summary(readme: Path = README, results: Path = RESULTS) -> None:
    """Replace the README's block between the markers with `render_summary()`."""
    text = readme.read_text(encoding="utf-8")
    start, end = text.find(SUMMARY_START), text.find(SUMMARY_END)
    if start < 0 or end < start:
        raise SystemExit(f"{readme.name} has no results block ({SUMMARY_START} ... {SUMMARY_END})")
    readme.write_text(text[:start] + render_summary(results) + text[end + len(SUMMARY_END):], encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rows", nargs="*", metavar="ROW", help=f"any of {', '.join(ROWS)} (default: all)")
    parser.add_argument("--quick", action="store_true", help="small sizes; results go to bench/out/quick/")
    parser.add_argument("--render", action="store_true",
                        help="only rewrite BENCHMARKS.md and the README's summary from saved results")
    args = parser.parse_args()
    unknown = [name for name in args.rows if name not in ROWS]
    if unknown:
        parser.error(f"unknown row(s) {', '.join(unknown)}; choose from {', '.join(ROWS)}")
    if not args.render:
        run_rows(args.rows or list(ROWS), args.quick)
    if not args.quick:
        DOCUMENT.write_text(render_document())
        write_summary()
        print(f"wrote {DOCUMENT.relative_to(ROOT)} and the results summary in {README.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
