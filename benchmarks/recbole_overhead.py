"""How much time the harness adds around one SASRec epoch, as a ratio against RecBole's own pipeline
on the same atomic files, in one process.

    harness:  RecBoleMethod.fit  = write atomic files + Config + dataset/dataloaders + 1 epoch + valid
                                   + best checkpoint reloaded + item columns mapped
    RecBole:  Config + create_dataset + data_preparation + model + Trainer.fit (1 epoch + valid),
              the code a RecBole user writes, on the files the harness wrote, same settings and seed

    .venv/bin/python benchmarks/recbole_overhead.py [--dataset ml-100k] [--device auto] [--repeats 3] [--threads 1]

The dataset is prepared on first use (MovieLens-100k ships with RecBole: no download). Each repeat
runs both pipelines, alternating which goes first; the medians are reported. CPU runs use one torch
thread by default: on a machine whose cores are shared, torch's default thread pool makes timings
swing by a factor of ten from one run to the next.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def harness_epoch(split, device: str, work: Path) -> tuple[float, dict]:
    from bench import registry
    from bench.method import Context

    cls = registry.load_class("sasrec")
    method = cls(registry.build_config(cls, {"epochs": "1"}))
    context = Context(device=device, seed=0, items=split.items, card=split.card, work_dir=work, cache_dir=work / "cache")
    start = time.perf_counter()
    method.fit(split.train, split.valid, context)
    return time.perf_counter() - start, method.run_info()


def recbole_epoch(files: Path, device: str, checkpoints: Path) -> tuple[float, float]:
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
    argv, sys.argv = sys.argv, sys.argv[:1]
    start = time.perf_counter()
    try:
        with shims.quiet():
            config = Config(model="SASRec", dataset=rb_files.DATASET, config_dict=settings)
            config["device"] = torch.device(device)
            init_seed(config["seed"], config["reproducibility"])
            dataset = create_dataset(config)
            train, valid, _ = data_preparation(config, dataset)
            init_seed(config["seed"], config["reproducibility"])
            model = get_model(config["model"])(config, train._dataset).to(config["device"])
            trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
            best, _ = trainer.fit(train, valid, verbose=False, saved=True, show_progress=False)
    finally:
        sys.argv = argv
    return time.perf_counter() - start, best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads; 0 keeps torch's default")
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
    shims.install_shims()
    rb_settings.model_class("SASRec")  # imports outside the timed region, for both pipelines

    harness_times, recbole_times = [], []
    with tempfile.TemporaryDirectory(prefix="recbole-overhead-") as tmp:
        tmp = Path(tmp)
        for repeat in range(args.repeats):
            work = tmp / f"harness{repeat}"
            files = work / "recbole" / rb_files.DATASET
            order = ["harness", "recbole"] if repeat % 2 == 0 else ["recbole", "harness"]
            if order[0] == "recbole":  # RecBole needs the harness's files: write them untimed first
                rb_files.write_atomic_files(
                    files, {"train": split.train, "valid": split.valid, "test": split.valid}, split.n_items, 10
                )
            for which in order:
                if which == "harness":
                    seconds, info = harness_epoch(split, device, work)
                    harness_times.append(seconds)
                    print(f"repeat {repeat}: harness {seconds:7.2f}s  valid NDCG@10 {info['best_valid_ndcg10']:.4f}", flush=True)
                else:
                    seconds, best = recbole_epoch(files, device, tmp / f"checkpoints{repeat}")
                    recbole_times.append(seconds)
                    print(f"repeat {repeat}: RecBole {seconds:7.2f}s  valid NDCG@10 {best:.4f}", flush=True)

    harness, recbole = statistics.median(harness_times), statistics.median(recbole_times)
    print()
    threads = torch.get_num_threads() if device == "cpu" else "-"
    print(
        f"dataset {args.dataset}: {len(split.train)} train / {len(split.valid)} valid samples, {split.n_items} items, "
        f"device {device}, torch threads {threads}"
    )
    print(f"one SASRec epoch (train + validation), median of {args.repeats}:")
    print(f"  through the harness   {harness:8.2f} s")
    print(f"  RecBole's own trainer {recbole:8.2f} s")
    print(f"  ratio harness / RecBole {harness / recbole:.3f}")


if __name__ == "__main__":
    main()
