"""The explain command (recbole_selfattn.diagnostics.explain) on tiny trained
AttRec, MTAW and MIND models: it writes a PNG and the text, the numbers it
prints are the model's own tensors, and bad input gets a one-paragraph error."""

import os

import pytest
import torch

from recbole_selfattn.diagnostics import explain
from recbole_selfattn.quick_start import run
from recbole_selfattn.recommender import Recommender
from tests.conftest import cyclic_sequences, one_paragraph_error, tiny_config, write_inter

HISTORY = ["i3", "i4", "i5", "i6", "i7", "i8", "i9", "i10", "i11"]  # 9 items: MIND has 3 valid interests


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """One tiny trained checkpoint per model (GRU4Rec: a model without a map), and a
    MIND whose routing softmax runs over the items."""
    folder = tmp_path_factory.mktemp("explain")
    data = write_inter(folder / "data", "tiny", cyclic_sequences())
    cwd = os.getcwd()
    os.chdir(folder)  # log/ and saved/ land there
    runs = {name: (name, {}) for name in ("AttRec", "MTAW", "MIND", "GRU4Rec")}
    runs["MIND-items"] = ("MIND", {"routing_softmax": "items"})
    try:
        files = {}
        for name, (model, extra) in runs.items():
            result = run(model, "tiny", config_dict=tiny_config(data, epochs=2, **extra), cmd_args=[])
            files[name] = str(folder / result["model_file"])
        return files
    finally:
        os.chdir(cwd)


def command(capsys, model_file, output, history=HISTORY, *extra):
    """Run the command; return its exit status and what it printed."""
    status = explain.main([f"--checkpoint={model_file}", f"--history={','.join(history)}", f"--output={output}",
                           *extra])
    out = capsys.readouterr().out
    return status, out


def printed_matrix(out, n_rows, n_columns):
    """The weight matrix of the printed text: the rows after the header line (the
    first line after the first blank one), the last ``n_columns`` numbers of each."""
    lines = out.splitlines()
    start = lines.index("") + 2
    rows = [line.split()[-n_columns:] for line in lines[start : start + n_rows]]
    assert lines[start + n_rows] == ""
    return torch.tensor([[float(v) for v in row] for row in rows])


def model_input(model_file, history=HISTORY):
    """The checkpoint's recommender and model, and the model's input for ``history``."""
    recommender = Recommender(model_file)
    model = recommender.model
    interaction = recommender.model_input(history)
    return recommender, model, interaction[model.ITEM_SEQ], interaction[model.ITEM_SEQ_LEN]


@pytest.mark.parametrize("model", ["AttRec", "MTAW", "MIND"])
def test_writes_picture_and_the_printed_text(checkpoints, tmp_path, capsys, model):
    status, out = command(capsys, checkpoints[model], tmp_path / "out")
    assert status == 0
    with open(tmp_path / "out" / f"{model}-explain.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "out" / f"{model}-explain.txt").read_text() == out
    assert out.startswith(f"checkpoint: {checkpoints[model]}\n{model}: ")
    top = Recommender(checkpoints[model]).recommend(HISTORY, 5)
    assert out.rstrip().endswith(f"Top 5 recommendations: {', '.join(top)}")


def test_attrec_map_is_the_models_attention(checkpoints, tmp_path, capsys):
    history = HISTORY[:3]  # L = 5: two padded window positions
    status, out = command(capsys, checkpoints["AttRec"], tmp_path, history)
    _, model, seq, length = model_input(checkpoints["AttRec"], history)
    s = model.attention_weights(seq, length)[0]
    printed = printed_matrix(out, 5, 5)
    assert status == 0 and torch.allclose(printed, s, atol=5e-5)
    assert torch.all(printed[:2] == 0) and torch.all(printed[:, :2] == 0)  # padding
    assert torch.all(printed.diagonal() == 0)
    assert torch.allclose(printed[2:].sum(1), torch.ones(3), atol=2e-4)
    assert out.split("\n")[5].split()[0] == "(pad)" and out.split("\n")[7].split()[0] == "i3"


def test_mtaw_weights_are_the_models_interest_enhancing_weights(checkpoints, tmp_path, capsys):
    status, out = command(capsys, checkpoints["MTAW"], tmp_path)
    _, model, seq, length = model_input(checkpoints["MTAW"])
    instant, weights = model.interest_enhancing(seq, length)
    printed = printed_matrix(out, 1, len(HISTORY))
    assert status == 0 and torch.allclose(printed, weights, atol=5e-5)
    assert printed.sum().item() == pytest.approx(1.0, abs=5e-4)
    # forward is the same weights applied to the same instant interests
    assert torch.allclose(model.forward(seq, length), torch.einsum("bt,btd->bd", weights, instant), atol=1e-6)


def test_mind_routing_weights_and_top_items(checkpoints, tmp_path, capsys):
    status, out = command(capsys, checkpoints["MIND"], tmp_path, HISTORY, "--top_k=4")
    recommender, model, seq, length = model_input(checkpoints["MIND"])
    interests, mask, routing = model.route(seq, length)
    printed = printed_matrix(out, len(HISTORY), model.interest_num)
    assert status == 0 and torch.allclose(printed, routing[0], atol=5e-5)
    assert mask[0].tolist() == [True, True, True, False]  # floor(log2 9) = 3 valid interests
    assert torch.allclose(printed.sum(1), torch.ones(len(HISTORY)), atol=2e-4)  # over interests, per item
    assert torch.all(printed[:, 3] == 0)  # the invalid interest gets nothing
    own, own_mask = model.forward(seq, length)
    assert torch.equal(own, interests) and torch.equal(own_mask, mask)  # forward routes the same way
    scores = own[0] @ model.item_embedding.weight.t()
    for j in range(3):
        ranked = [i for i in scores[j].argsort(descending=True).tolist() if i != 0][:4]
        tokens = recommender.dataset.id2token(recommender.dataset.iid_field, ranked)
        line = f"  interest {j + 1}: " + ", ".join(f"{t} ({scores[j, i]:.4f})" for t, i in zip(tokens, ranked))
        assert line in out.splitlines()
    assert "interest 4:" not in out


def test_mind_routing_softmax_over_items(checkpoints, tmp_path, capsys):
    status, out = command(capsys, checkpoints["MIND-items"], tmp_path)
    _, model, seq, length = model_input(checkpoints["MIND-items"])
    printed = printed_matrix(out, len(HISTORY), model.interest_num)
    assert status == 0 and torch.allclose(printed, model.route(seq, length)[2][0], atol=5e-5)
    assert torch.allclose(printed.sum(0), torch.ones(model.interest_num), atol=2e-4)  # per interest, over items
    assert "Each interest's routing weights sum to 1 over the history items" in out


def test_bad_input_is_one_paragraph_and_exit_2(checkpoints, tmp_path, capsys):
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"not a checkpoint")
    (tmp_path / "file").write_text("")
    cases = [
        ([f"--checkpoint={checkpoints['AttRec']}", "--history=i3,nope", f"--output={tmp_path}"], "nope"),
        ([f"--checkpoint={checkpoints['GRU4Rec']}", "--history=i3,i4", f"--output={tmp_path}"], "GRU4Rec"),
        ([f"--checkpoint={corrupt}", "--history=i3", f"--output={tmp_path}"], "corrupt.pth"),
        ([f"--checkpoint={tmp_path / 'missing.pth'}", "--history=i3", f"--output={tmp_path}"], "missing.pth"),
        ([f"--checkpoint={checkpoints['MIND']}", "--history=i3", f"--output={tmp_path / 'file'}"], "is a file"),
        ([f"--checkpoint={checkpoints['MIND']}", "--history=,", f"--output={tmp_path}"], "history is empty"),
        ([f"--checkpoint={checkpoints['MIND']}", "--history=i3"], "--output"),
        ([f"--checkpoint={checkpoints['MIND']}", "--history=i3", f"--output={tmp_path}", "--top_k=0"], "--top_k=0"),
        (["--checkpoint"], "Unrecognised argument"),
    ]
    for argv, named in cases:
        assert explain.main(argv) == 2, argv
        assert named in one_paragraph_error(capsys)
    assert explain.main(["--help"]) == 0 and capsys.readouterr().out.startswith("usage: ")
    assert not list((tmp_path).glob("*-explain.*"))


def test_history_longer_than_the_model_reads(checkpoints, tmp_path, capsys):
    history = [f"i{k}" for k in range(1, 13)]  # MAX_ITEM_LIST_LENGTH = 10
    status, out = command(capsys, checkpoints["MTAW"], tmp_path, history)
    _, model, seq, length = model_input(checkpoints["MTAW"], history)
    assert status == 0 and length.item() == 10
    assert torch.allclose(printed_matrix(out, 1, 10), model.interest_enhancing(seq, length)[1], atol=5e-5)
    assert "l1:i3" in out and "The model reads the last 10 of the 12 history items given." in out
