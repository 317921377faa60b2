"""RecBole 1.2.1 as a model zoo behind one thin adapter: any RecBole sequential model becomes a
benchmark method with one registry line (`{"recbole_model": "NARM"}`).

    prepared split ──► atomic files in the run's work_dir      user_id:token  item_id_list:token_seq  item_id:token
                       (bench.train/valid/test.inter,           one row per sample, so RecBole neither
                        bench.item = the whole catalogue)       splits nor augments anything itself
                  ──► RecBole Config from a dict (no yaml, no sys.argv, no environment writes)
                  ──► RecBole Trainer: early stopping on valid NDCG@10, best checkpoint inside work_dir
                  ──► score(samples): full_sort_predict on the histories, columns reordered to our item ids

The harness, not RecBole, turns the scores into ranks and metrics. Nothing is masked (RecBole's
sequential full-sort evaluation masks only its padding column, which we drop).

    shims     RecBole 1.2.1 on numpy 2, pandas 3 and torch >= 2.6 (`install_shims()`, called before
              the first RecBole import; see its docstring for each shim)
    files     the atomic files written from our samples
    settings  the method's Config and the RecBole Config built from it
    method    RecBoleMethod: fit through RecBole's Trainer, score through full_sort_predict

Importing this package imports neither torch nor RecBole.
"""
