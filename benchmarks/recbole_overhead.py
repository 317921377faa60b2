"""The harness's SASRec epoch against a minimal training loop over RecBole's own SASRec class, as a
ratio, in one process.

    harness:  RecBoleMethod.fit with epochs=1: atomic files + Config + dataset/dataloaders + 1 training
              epoch + validation + best checkpoint reloaded + item columns mapped. Its training epoch
              (RecBole's Trainer._train_epoch: dataloader, loss, backward, Adam) is timed on its own.
    minimal:  the loop a PyTorch user writes: RecBole's SASRec class built from the same Config and
              dataset, fed the same batches (the harness's training dataloader, collected untimed),
              zero_grad / calculate_loss / backward / Adam step / loss.item(), with autograd's anomaly
              detection switched off for the leg whatever the process has set.
    RecBole:  (--recbole-pipeline) Config + create_dataset + data_preparation + model + Trainer.fit
              (1 epoch + valid), RecBole's own pipeline on the files the harness wrote, against the
              harness's whole fit.

    .venv/bin/python benchmarks/recbole_overhead.py [--dataset ml-100k] [--device auto] [--repeats 5]
        [--threads 1] [--limit-train N] [--recbole-pipeline] [--json PATH]

The primary figure is epoch ratio = harness training epoch / minimal loop epoch. It is about 1 when
the harness trains the way RecBole's class is meant to be trained (the difference is RecBole's
dataloader and trainer bookkeeping); anything that slows every autograd op in the process, such as
anomaly detection left switched on by an import (RecBole 1.2.1's sine.py did, about 2x), shows up as a
larger ratio, because the minimal leg runs with anomaly detection off whatever the process has set.
The anomaly state seen during the harness's epoch is printed too. RecBole's own pipeline shares the
process with the harness, so it cannot show such a regression: it measures the adapter's work around
RecBole (files, mapping), not the training step.

One warm-up round runs every leg first; then each repeat runs every leg, alternating the order, and
the median and the spread (min-max) of each ratio over the repeats are printed. The dataset is
prepared on first use (MovieLens-100k ships with RecBole: no download). CPU runs use one torch thread
by default: on a machine whose cores are shared, torch's default thread pool makes timings swing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


@contextlib.contextmanager
def timed_train_epochs(device: str):
    """Times every RecBole Trainer._train_epoch run inside the block and records whether anomaly
    detection was on during it. Yields the list of (seconds, anomaly enabled) it fills."""
    import torch
    from recbole.trainer import trainer as rb_trainer

    seen: list[tuple[float, bool]] = []
    original = rb_trainer.Trainer._train_epoch

    def _train_epoch(self, *args, **kwargs):
        anomaly = torch.is_anomaly_enabled()
        _sync(device)
        start = time.perf_counter()
        out = original(self, *args, **kwargs)
        _sync(device)
        seen.append((time.perf_counter() - start, anomaly))
        return out

    rb_trainer.Trainer._train_epoch = _train_epoch
    try:
        yield seen
    finally:
        rb_trainer.Trainer._train_epoch = original


def harness_leg(split, device: str, work: Path) -> dict:
    from bench import registry
    from bench.method import Context

    cls = registry.load_class("sasrec")
    method = cls(registry.build_config(cls, {"epochs": "1"}))
    context = Context(device=device, seed=0, items=split.items, card=split.card, work_dir=work, cache_dir=work / "cache")
    with timed_train_epochs(device) as epochs:
        start = time.perf_counter()
        method.fit(split.train, split.valid, context)
        fit = time.perf_counter() - start
    ((epoch, anomaly),) = epochs
    return {"fit": fit, "epoch": epoch, "anomaly": anomaly, "ndcg": method.run_info()["best_valid_ndcg10"], "method": method}


def minimal_leg(config, dataset, batches: list, device: str) -> dict:
    """One epoch of RecBole's SASRec class over `batches` (RecBole Interactions on the CPU), anomaly
    detection off for the leg."""
    import torch
    from recbole.utils import get_model, init_seed

    init_seed(config["seed"], config["reproducibility"])
    model = get_model("SASRec")(config, dataset).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config["learning_rate"], weight_decay=config["weight_decay"])
    total = 0.0
    with torch.autograd.set_detect_anomaly(False):
        model.train()
        _sync(device)
        start = time.perf_counter()
        for interaction in batches:
            interaction = interaction.to(device)
            optimizer.zero_grad()
            loss = model.calculate_loss(interaction)
            loss.backward()
            optimizer.step()
            total += loss.item()
        _sync(device)
        seconds = time.perf_counter() - start
    return {"epoch": seconds, "loss": total}


def recbole_pipeline_leg(files: Path, device: str, checkpoints: Path) -> dict:
    """RecBole's own pipeline on `files` (the folder holding bench.*.inter). The adapter's shims must be
    installed for RecBole 1.2.1 to run at all on today's numpy/pandas/torch; nothing else of ours runs."""
    import torch
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, get_trainer, init_seed

    from bench import registry
    from methods.recbole import files as rb_files
    from methods.recbole import settings as rb_settings
    from methods.recbole import shims

    cls = registry.load_class("sasrec")
    settings = rb_settings.recbole_settings("SASRec", cls.Config(epochs=1), files.parent, seed=0)
    settings["checkpoint_dir"] = str(checkpoints)
    start = time.perf_counter()
    with shims.hidden_argv(), shims.quiet():
        config = Config(model="SASRec", dataset=rb_files.DATASET, config_dict=settings)
        config["device"] = torch.device(device)
        init_seed(config["seed"], config["reproducibility"])
        dataset = create_dataset(config)
        train, valid, _ = data_preparation(config, dataset)
        init_seed(config["seed"], config["reproducibility"])
        model = get_model(config["model"])(config, train._dataset).to(config["device"])
        trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
        best, _ = trainer.fit(train, valid, verbose=False, saved=True, show_progress=False)
    return {"fit": time.perf_counter() - start, "ndcg": best}


def spread(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "values": values}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats after one warm-up round")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads; 0 keeps torch's default")
    parser.add_argument("--limit-train", type=int, default=0, help="train on the first N training samples (0: all)")
    parser.add_argument("--recbole-pipeline", action="store_true", help="also time RecBole's own pipeline (whole fit)")
    parser.add_argument("--json", type=Path, help="write the results to this file")
    args = parser.parse_args()

    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)

    from bench.data.prepare import is_prepared, load_split, prepare
    from bench.seeding import resolve_device
    from methods.recbole import files as rb_files
    from methods.recbole import settings as rb_settings
    from methods.recbole import shims

    device = resolve_device(args.device)
    if not is_prepared(args.dataset):
        prepare(args.dataset)
    split = load_split(args.dataset)
    if args.limit_train:
        split.train = split.train.head(args.limit_train)
    shims.install_shims()
    rb_settings.model_class("SASRec")  # imports outside the timed region, for every leg

    legs = ["harness", "minimal"] + (["recbole"] if args.recbole_pipeline else [])
    results: dict[str, list[dict]] = {leg: [] for leg in legs}
    batches = None
    harness: dict = {}
    with tempfile.TemporaryDirectory(prefix="recbole-overhead-") as tmp:
        tmp = Path(tmp)
        for repeat in range(args.repeats + 1):  # round 0 is the warm-up
            work = tmp / f"harness{repeat}"
            files = work / "recbole" / rb_files.DATASET
            order = legs if repeat % 2 == 0 else legs[::-1]  # round 0 starts with the harness (its data feeds the minimal leg)
            for leg in order:
                if leg == "harness":
                    harness = out = harness_leg(split, device, work)
                    text = f"fit {out['fit']:7.2f}s  epoch {out['epoch']:7.2f}s  anomaly {'ON' if out['anomaly'] else 'off'}"
                elif leg == "minimal":
                    if batches is None:
                        batches = list(harness["method"].data.train)  # untimed; CPU tensors
                    data = harness["method"].data
                    out = minimal_leg(data.config, data.train._dataset, batches, device)
                    text = f"              epoch {out['epoch']:7.2f}s"
                else:
                    if not (files / f"{rb_files.DATASET}.train.inter").exists():  # RecBole reads the harness's files
                        rb_files.write_atomic_files(
                            files, {"train": split.train, "valid": split.valid, "test": split.valid}, split.n_items, 10
                        )
                    out = recbole_pipeline_leg(files, device, tmp / f"checkpoints{repeat}")
                    text = f"fit {out['fit']:7.2f}s"
                if repeat > 0:
                    results[leg].append({k: v for k, v in out.items() if k != "method"})
                label = "warm-up" if repeat == 0 else f"repeat {repeat}"
                print(f"{label:>9}: {leg:<8} {text}", flush=True)

    epoch_ratio = [h["epoch"] / m["epoch"] for h, m in zip(results["harness"], results["minimal"])]
    anomaly = any(h["anomaly"] for h in results["harness"])
    threads = torch.get_num_threads() if device == "cpu" else None
    summary = {
        "benchmark": "recbole_overhead",
        "dataset": args.dataset,
        "train_samples": len(split.train),
        "valid_samples": len(split.valid),
        "items": split.n_items,
        "device": device,
        "device_name": torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else "cpu",
        "torch": torch.__version__,
        "threads": threads,
        "repeats": args.repeats,
        "anomaly_during_harness_epoch": anomaly,
        "harness_fit_s": spread([h["fit"] for h in results["harness"]]),
        "harness_epoch_s": spread([h["epoch"] for h in results["harness"]]),
        "minimal_epoch_s": spread([m["epoch"] for m in results["minimal"]]),
        "epoch_ratio": spread(epoch_ratio),
    }
    if args.recbole_pipeline:
        summary["recbole_fit_s"] = spread([r["fit"] for r in results["recbole"]])
        summary["fit_ratio"] = spread([h["fit"] / r["fit"] for h, r in zip(results["harness"], results["recbole"])])

    print()
    print(
        f"dataset {args.dataset}: {len(split.train)} train / {len(split.valid)} valid samples, {split.n_items} items, "
        f"device {summary['device_name']}, torch threads {threads if threads is not None else '-'}"
    )
    print(f"one SASRec epoch, median [min-max] of {args.repeats} repeats after a warm-up:")
    for key, label in [
        ("harness_fit_s", "harness fit (files, data, epoch, valid)"),
        ("harness_epoch_s", "harness training epoch"),
        ("minimal_epoch_s", "minimal loop epoch"),
        ("recbole_fit_s", "RecBole's own pipeline fit"),
    ]:
        if key in summary:
            s = summary[key]
            print(f"  {label:<42} {s['median']:8.2f} s  [{s['min']:.2f}-{s['max']:.2f}]")
    s = summary["epoch_ratio"]
    print(f"  epoch ratio harness / minimal loop       {s['median']:8.3f}    [{s['min']:.3f}-{s['max']:.3f}]")
    if args.recbole_pipeline:
        s = summary["fit_ratio"]
        print(f"  fit ratio harness / RecBole pipeline     {s['median']:8.3f}    [{s['min']:.3f}-{s['max']:.3f}]")
    print(f"  anomaly detection during the harness epoch: {'ON (every autograd op is checked)' if anomaly else 'off'}")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
