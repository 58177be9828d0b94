"""``benchmarks/plain_baselines.py``: the transition counts are the training
split's, a sequence's scores are the sums of its last items' counts, and the
table chooses the window on validation and tests only Pop and that window."""

from collections import Counter
from pathlib import Path

import torch
from recbole.data.interaction import Interaction

from tests.benchmark_helpers import load_script
from tests.conftest import cyclic_sequences, write_inter
from tests.test_acceleration import prepare


def _scorer(tiny_data, window):
    baselines = load_script("plain_baselines")
    config, train_data, _, _ = prepare("GRU4Rec", tiny_data)
    return baselines, baselines.CountScorer(config, train_data._dataset, window), train_data._dataset


def test_window_counts_are_the_training_targets_after_each_item(tiny_data):
    _, scorer, dataset = _scorer(tiny_data, window=2)
    seq, length, target = (dataset.inter_feat[k].tolist() for k in ("item_id_list", "item_length", "item_id"))
    expected = Counter()
    for items, n, b in zip(seq, length, target):
        for back in (1, 2):
            if n >= back:
                expected[(b, items[n - back])] += 1
    dense = scorer.transitions.to_dense()
    assert {(b, a): int(dense[b, a]) for b, a in zip(*dense.nonzero().T.tolist())} == dict(expected)
    assert torch.equal(scorer.popularity, torch.bincount(torch.tensor(target), minlength=scorer.n_items).float())


def test_symmetric_counts_add_both_directions(tiny_data):
    _, directed, _ = _scorer(tiny_data, window=2)
    baselines = load_script("plain_baselines")
    config, train_data, _, _ = prepare("GRU4Rec", tiny_data)
    symmetric = baselines.CountScorer(config, train_data._dataset, 2, symmetric=True)
    counts = directed.transitions.to_dense()
    assert not torch.equal(counts, counts.T)  # the data has a direction
    torch.testing.assert_close(symmetric.transitions.to_dense(), counts + counts.T)


def test_scores_sum_the_counts_of_the_last_items(tiny_data):
    baselines, scorer, _ = _scorer(tiny_data, window=2)
    seq = torch.zeros(2, scorer.max_seq_length, dtype=torch.long)
    seq[0, :3] = torch.tensor([4, 5, 6])
    seq[1, :1] = torch.tensor([9])
    batch = Interaction({scorer.ITEM_SEQ: seq, scorer.ITEM_SEQ_LEN: torch.tensor([3, 1])})
    counts = scorer.transitions.to_dense().T  # counts[a, b]
    tie = baselines.TIE_BREAK * scorer.popularity
    expected = torch.stack([counts[6] + counts[5] + tie, counts[9] + tie])  # the last 2 items; item 4 is outside
    torch.testing.assert_close(scorer.full_sort_predict(batch), expected)


def test_table_chooses_the_window_on_validation_and_tests_pop_and_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_inter(tmp_path / "data", "tiny", cyclic_sequences())
    baselines = load_script("plain_baselines")
    argv = ["--dataset=tiny", "--output=out", f"--data_path={tmp_path / 'data'}", "--MAX_ITEM_LIST_LENGTH=10",
            "--load_col={'inter': ['user_id', 'item_id', 'timestamp']}"]
    assert baselines.main(argv) == 0
    text = (Path("out") / "results.md").read_text()
    assert str(tmp_path) not in text and "--data_path=data" in text
    lines = [line for line in text.splitlines() if line.startswith("| ") and "Row" not in line]
    rows = {line.split("|")[1].strip(): line for line in lines}
    assert set(rows) == {"Pop", "**Window(W=1)** (chosen)", *(f"Window(W={w})" for w in (2, 3, 5, 10)),
                         *(f"Symmetric(W={w})" for w in (1, 2, 3, 5, 10))}
    chosen = rows["**Window(W=1)** (chosen)"].split("|")[2:-1]
    assert float(chosen[2]) > 0.95  # the ring's next item is always the successor: W = 1 ranks it first
    assert "—" not in chosen and "—" not in rows["Pop"] and "—" in rows["Window(W=2)"]
    assert float(rows["Pop"].split("|")[4]) < 0.5
    # both ring neighbours count alike: the successor ties with the predecessor
    assert float(rows["Symmetric(W=1)"].split("|")[4]) < float(chosen[2]) - 0.1


def test_bad_dataset_is_one_paragraph_and_exit_2(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert load_script("plain_baselines").main(["--dataset=nowhere", "--output=out", f"--data_path={tmp_path}"]) == 2
    assert capsys.readouterr().err.startswith("error: ")
