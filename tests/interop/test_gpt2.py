"""GPT-2 interop: byte-level BPE id parity with `transformers`, logits parity with a
random tiny `GPT2LMHeadModel` (a protein-letter and a SMILES vocabulary, both trained
here), the modality read from the vocabulary, `biofm generate` / `biofm export` end
to end, and clear errors on bad directories."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import transformers
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import decoders, models, pre_tokenizers, trainers

from biofm.errors import BiofmError
from biofm.interop import (biofm_to_gpt2, gpt2_config_to_backbone, gpt2_to_biofm, is_hf_gpt2_dir,
                           load_hf_gpt2, load_pretrained, save_hf_gpt2)
from biofm.interop.bpe import ENDOFTEXT, ByteBpeTokenizer
from biofm.interop.gpt2 import vocabulary_modality
from biofm.model import FoundationModel
from biofm.registry import TOKENIZERS
from biofm.tokenizer import load_tokenizer
from tests.helpers import random_proteins

ATOL = 1e-4
SMILES = ["CCO", "CC(=O)Oc1ccccc1C(=O)O", "c1ccccc1", "CN1C=NC2=C1C(=O)N(C(=O)N2C)C",
          "CC(C)Cc1ccc(cc1)C(C)C(=O)O", "OC(=O)c1ccccc1O", "CCN(CC)CC", "C1CCCCC1",
          "c1ccc2ccccc2c1", "CC(=O)Nc1ccc(O)cc1", "O=C(O)CC(O)(CC(=O)O)C(=O)O", "CCOC(=O)C",
          "Clc1ccccc1", "Brc1ccccc1", "NC(Cc1ccccc1)C(=O)O", "C#N", "CC=CC", "c1ccncc1",
          "OCC(O)CO", "CC(C)(C)c1ccccc1", "FC(F)(F)c1ccccc1", "O=S(=O)(O)c1ccccc1"]


def fasta_lines(sequence: str, width: int = 20) -> str:
    """ProtGPT2's training text: residues in lines, between newlines."""
    return "\n" + "\n".join(sequence[i:i + width] for i in range(0, len(sequence), width)) + "\n"


CORPORA = {"protein": [fasta_lines(s) for s in random_proteins(200, high=80)],
           "molecule": SMILES * 4}
TEXTS = {"protein": ["MKTAYIAKQRQISFVKSHFSRQ", "\nMKTAYIA\nKQRQ\n", "GSHM" + ENDOFTEXT + "LEK",
                     "mktay AKQ"],
         "molecule": ["CC(=O)Oc1ccccc1C(=O)O", "c1ccncc1CCO", "C" + ENDOFTEXT + "N", "CCO CCN"]}


def train_bpe(texts: list[str], vocab_size: int) -> HFTokenizer:
    """A GPT-2-style tokenizer (byte-level BPE, <|endoftext|> at id 0) learnt on `texts`."""
    bpe = HFTokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=[ENDOFTEXT], show_progress=False))
    return bpe


def perturb(module: torch.nn.Module, seed: int) -> None:
    """Non-trivial LayerNorm scales and biases (init leaves them at 1 and 0)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))


def make_hf_dir(directory: Path, kind: str, *, tokenizer_json: bool = False,
                seed: int = 0, **config: object) -> transformers.GPT2LMHeadModel:
    bpe = train_bpe(CORPORA[kind], vocab_size=120)
    directory.mkdir(parents=True, exist_ok=True)
    if tokenizer_json:
        bpe.save(str(directory / "tokenizer.json"))
    else:
        bpe.model.save(str(directory))  # vocab.json, merges.txt
    eos = bpe.token_to_id(ENDOFTEXT)
    hf_config = transformers.GPT2Config(**{
        "vocab_size": bpe.get_vocab_size(), "n_embd": 32, "n_layer": 2, "n_head": 4,
        "n_positions": 64, "bos_token_id": eos, "eos_token_id": eos, "resid_pdrop": 0.0,
        "embd_pdrop": 0.0, "attn_pdrop": 0.0, **config})
    torch.manual_seed(seed)
    model = transformers.GPT2LMHeadModel(hf_config).eval()
    perturb(model, seed=seed + 1)
    model.save_pretrained(directory)
    return model


@pytest.fixture(scope="module")
def hf_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[torch.nn.Module, Path]]:
    root = tmp_path_factory.mktemp("hf_gpt2")
    return {kind: (make_hf_dir(root / kind, kind, seed=n), root / kind)
            for n, kind in enumerate(("protein", "molecule"))}


def padded(tok, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    ids = [tok.encode(t) for t in texts]
    T = max(map(len, ids))
    input_ids = torch.tensor([s + [tok.pad_id] * (T - len(s)) for s in ids])
    mask = torch.tensor([[True] * len(s) + [False] * (T - len(s)) for s in ids])
    return input_ids, mask


def logits_of(model: FoundationModel, input_ids: torch.Tensor,
              mask: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.objective.logits(model.backbone(input_ids, mask).last_hidden_state)


# -- tokenizer ---------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["protein", "molecule"])
@pytest.mark.parametrize("tokenizer_json", [False, True])
def test_token_ids_match_gpt2_tokenizer(tmp_path, kind, tokenizer_json):
    make_hf_dir(tmp_path, kind, tokenizer_json=tokenizer_json)
    hf_tok = transformers.GPT2TokenizerFast.from_pretrained(tmp_path)
    ours = load_hf_gpt2(tmp_path).tokenizer
    assert ours.vocab == [hf_tok.convert_ids_to_tokens(i) for i in range(len(hf_tok))]
    for text in TEXTS[kind]:
        ids = hf_tok(text)["input_ids"]
        assert ours.encode(text, add_special_tokens=False) == ids, text
        assert ours.encode(text) == [hf_tok.eos_token_id, *ids, hf_tok.eos_token_id]
    assert ours.specials == dict.fromkeys(("bos", "eos", "unk", "pad", "mask"), ENDOFTEXT)


def test_tokenizer_persists_and_decodes(tmp_path, hf_dirs):
    tok = load_hf_gpt2(hf_dirs["protein"][1]).tokenizer
    assert tok.config["whitespace"] == "remove"  # ProtGPT2's line breaks are not residues
    tok.save(tmp_path)
    again = load_tokenizer(tmp_path)
    assert isinstance(again, ByteBpeTokenizer) and TOKENIZERS.get("byte-bpe") is ByteBpeTokenizer
    text = "\nMKTAYIA\nKQRQ\n"
    assert again.encode(text) == tok.encode(text)
    assert again.decode(tok.encode(text)) == "MKTAYIAKQRQ"
    keep = again.with_options(whitespace="keep")
    assert keep.decode(keep.encode(text)) == text
    assert keep.with_options(whitespace="strip").decode(keep.encode(text)) == text.strip()


def test_special_tokens_named_by_the_directory(tmp_path, hf_dirs):
    shutil.copytree(hf_dirs["molecule"][1], tmp_path / "d")
    (tmp_path / "d" / "special_tokens_map.json").write_text(json.dumps(
        {"eos_token": {"content": ENDOFTEXT}, "pad_token": "C"}))
    tok = load_hf_gpt2(tmp_path / "d").tokenizer
    assert tok.pad_id == tok.token_to_id["C"] and tok.eos_id == tok.bos_id == 0


# -- modality ------------------------------------------------------------------------

def test_vocabulary_modality():
    assert vocabulary_modality(["A", "C", "Ġ", "ACGT", "GGC", "TTA"]) == "dna"
    assert vocabulary_modality(["MK", "LLE", "AW", "Ċ", "\nMKV"]) == "protein"
    assert vocabulary_modality(["c1ccc", "(=O)", "CC", "Cl", "[nH]", "C(=O)O"]) == "molecule"
    assert vocabulary_modality(["Ġthe", "Ġof", "ing", "CC"]) is None
    assert vocabulary_modality(["M", "K", "L"]) == "protein"  # no merges: single letters count


# -- parity ------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["protein", "molecule"])
def test_hf_to_biofm_parity(hf_dirs, kind):
    hf_model, directory = hf_dirs[kind]
    assert is_hf_gpt2_dir(directory)
    model = load_pretrained(directory)
    assert model.config.data.modality == kind and model.tokenizer.name == "byte-bpe"
    b = model.config.backbone
    assert (b.kind, b.position, b.activation, b.norm, b.max_len) == (
        "decoder", "learned", "gelu_tanh", "pre", 64)
    input_ids, mask = padded(model.tokenizer, TEXTS[kind])
    with torch.no_grad():
        ref = hf_model(input_ids, attention_mask=mask.long(), output_hidden_states=True)
        out = model.backbone(input_ids, mask, output_hidden_states=True)
        logits = model.objective.logits(out.last_hidden_state)
    assert len(out.hidden_states) == len(ref.hidden_states) == 3
    for ours, theirs in zip(out.hidden_states, ref.hidden_states):
        torch.testing.assert_close(ours[mask], theirs[mask], atol=ATOL, rtol=0)
    torch.testing.assert_close(logits[mask], ref.logits[mask], atol=ATOL, rtol=0)


def test_name_map_round_trip(hf_dirs):
    hf_model, _ = hf_dirs["protein"]
    state = hf_model.state_dict()
    ours = gpt2_to_biofm(state)
    assert set(ours) == set(load_hf_gpt2(hf_dirs["protein"][1]).state_dict()) - {
        "objective.decoder.weight"}
    back = biofm_to_gpt2(ours)
    assert set(back) == set(state) - {"lm_head.weight"}
    for key, value in back.items():
        assert torch.equal(value, state[key]), key
    again = gpt2_to_biofm(back)
    assert all(torch.equal(again[k], ours[k]) for k in ours)


def test_gpt2_model_keys_and_old_mask_buffers(hf_dirs):
    hf_model, _ = hf_dirs["protein"]
    bare = {k.removeprefix("transformer."): v for k, v in hf_model.state_dict().items()
            if k.startswith("transformer.")}  # GPT2Model layout, no lm_head
    bare["h.0.attn.bias"] = torch.ones(1, 1, 64, 64, dtype=torch.bool)  # transformers < 4.3x
    bare["h.0.attn.masked_bias"] = torch.tensor(-1e4)
    ours = gpt2_to_biofm(bare)
    assert "backbone.layers.1.attn.v_proj.bias" in ours and "backbone.final_norm.weight" in ours
    assert not any("attn.bias" in k for k in ours)


# -- export --------------------------------------------------------------------------

def test_biofm_to_hf_round_trip(tmp_path, hf_dirs, cli):
    _, directory = hf_dirs["molecule"]
    model = load_pretrained(directory)
    run = cli("export", "--model", directory, "--output", tmp_path / "out", "--format", "hf-gpt2")
    assert run.code == 0, run.err
    hf_model, info = transformers.GPT2LMHeadModel.from_pretrained(
        tmp_path / "out", output_loading_info=True)
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys"))
    hf_tok = transformers.GPT2TokenizerFast.from_pretrained(tmp_path / "out")
    for text in TEXTS["molecule"]:
        assert hf_tok(text)["input_ids"] == model.tokenizer.encode(text, add_special_tokens=False)
    input_ids, mask = padded(model.tokenizer, TEXTS["molecule"])
    with torch.no_grad():
        ref = hf_model.eval()(input_ids, attention_mask=mask.long()).logits
    torch.testing.assert_close(logits_of(model, input_ids, mask)[mask], ref[mask], atol=ATOL,
                               rtol=0)
    again = load_pretrained(tmp_path / "out")
    assert again.config.data.modality == "molecule"
    for key, value in model.state_dict().items():
        assert torch.equal(again.state_dict()[key], value), key


def test_export_needs_gpt2_layout(tmp_path):
    from tests.helpers import tiny_model
    with pytest.raises(BiofmError, match="cannot export to GPT-2 layout.*encoder"):
        save_hf_gpt2(tiny_model(), tmp_path)
    with pytest.raises(BiofmError, match="cannot export to GPT-2 layout.*not GPT-2-shaped"):
        save_hf_gpt2(tiny_model("decoder", "clm"), tmp_path)  # rotary positions


# -- biofm checkpoints and generation ------------------------------------------------

def test_saved_as_a_biofm_checkpoint(tmp_path, hf_dirs):
    model = load_pretrained(hf_dirs["protein"][1])
    again = load_pretrained(model.save(tmp_path / "ckpt"))
    input_ids, mask = padded(model.tokenizer, TEXTS["protein"])
    assert torch.equal(logits_of(again, input_ids, mask), logits_of(model, input_ids, mask))




def test_generate_proteins_through_the_cli(tmp_path, hf_dirs, cli):
    run = cli("generate", "--model", hf_dirs["protein"][1], "--num", 4, "--max-length", 24,
              "--output", tmp_path / "x.fasta")
    assert run.code == 0, run.err
    report = json.loads(run.out[run.out.index("{"): run.out.rindex("}") + 1])
    assert report["num"] == 4 and set(report["composition"]) >= set("ACDEFGHIKLMNPQRSTVWY")
    assert report["length_max"] <= 24 * 3  # a token holds a few residues
    records = (tmp_path / "x.fasta").read_text().split(">")[1:]
    assert len(records) == report["written"] == 4
    assert all(set("".join(r.split("\n")[1:])) <= set("ACDEFGHIKLMNPQRSTVWYX") for r in records)


def test_generate_molecules_through_the_cli(tmp_path, hf_dirs, cli):
    (tmp_path / "train.smi").write_text("\n".join(SMILES) + "\n")
    run = cli("generate", "--model", hf_dirs["molecule"][1], "--num", 4, "--max-length", 16,
              "--output", tmp_path / "x.smi", "--reference", tmp_path / "train.smi",
              "--keep-invalid")
    assert run.code == 0, run.err
    report = json.loads(run.out[run.out.index("{"): run.out.rindex("}") + 1])
    assert {"validity", "uniqueness", "novelty"} <= set(report) and report["n_samples"] == 4
    assert len((tmp_path / "x.smi").read_text().splitlines()) == 4
    assert load_hf_gpt2(hf_dirs["molecule"][1]).config.data.input == "nci"  # default reference


def test_larger_config_vocab_gets_placeholders_never_sampled(tmp_path, hf_dirs):
    from biofm.generate import sample
    directory = tmp_path / "d"
    make_hf_dir(directory, "protein", vocab_size=128)  # embedding rows padded past the files'
    model = load_hf_gpt2(directory)
    assert model.tokenizer.vocab_size == 128 and model.tokenizer.vocab[-1] == "<|unused_7|>"
    assert not any("unused" in s for s in sample(model, 4, max_new_tokens=20, seed=1))


# -- errors --------------------------------------------------------------------------

def copy_dir(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize("breakage, message", [
    ("no_tokenizer", "GPT-2 tokenizer files are missing.*'gpt2'"),
    ("no_merges", r"missing \(found only vocab.json\)"),
    ("no_weights", "no weights file"),
    ("truncated", "model.safetensors.*truncated"),
    ("small_vocab_size", "vocab_size=50, but the tokenizer files hold 120"),
    ("wider", "weights do not match.*wrong shape"),
    ("vocab_gap", "ids are not 0"),
    ("bad_merges", "line 3 is not a pair"),
    ("unknown_special", "special tokens <pad> are not in the vocabulary"),
    ("no_config", "config.json is missing"),
])
def test_bad_directories(tmp_path, hf_dirs, breakage, message):
    d = copy_dir(hf_dirs["protein"][1], tmp_path / "d")
    config = json.loads((d / "config.json").read_text())
    vocab = json.loads((d / "vocab.json").read_text())
    if breakage == "no_tokenizer":
        (d / "vocab.json").unlink()
        (d / "merges.txt").unlink()
    elif breakage == "no_merges":
        (d / "merges.txt").unlink()
    elif breakage == "no_weights":
        (d / "model.safetensors").unlink()
    elif breakage == "truncated":
        data = (d / "model.safetensors").read_bytes()
        (d / "model.safetensors").write_bytes(data[: len(data) // 2])
    elif breakage == "small_vocab_size":
        (d / "config.json").write_text(json.dumps({**config, "vocab_size": 50}))
    elif breakage == "wider":
        (d / "config.json").write_text(json.dumps({**config, "n_embd": 64}))
    elif breakage == "vocab_gap":
        (d / "vocab.json").write_text(json.dumps({**vocab, "MK": 500}))
    elif breakage == "bad_merges":
        (d / "merges.txt").write_text("#version: 0.2\nM K\nA B C\n")
    elif breakage == "unknown_special":
        (d / "special_tokens_map.json").write_text(json.dumps({"pad_token": "<pad>"}))
    else:
        (d / "config.json").unlink()
    with pytest.raises(BiofmError, match=message):
        load_hf_gpt2(d)


def test_untied_head_and_unknown_keys_are_errors(hf_dirs):
    state = dict(hf_dirs["protein"][0].state_dict())
    with pytest.raises(BiofmError, match="lm_head.weight differs"):
        gpt2_to_biofm({**state, "lm_head.weight": state["lm_head.weight"] + 1})
    with pytest.raises(BiofmError, match="transformer.h.0.crossattention"):
        gpt2_to_biofm({**state, "transformer.h.0.crossattention.c_attn.weight": torch.zeros(2)})


@pytest.mark.parametrize("change, message", [
    ({"add_cross_attention": True}, "cross-attention"),
    ({"activation_function": "silu"}, "activation_function is 'silu'"),
    ({"scale_attn_weights": False}, "not scaled"),
    ({"scale_attn_by_inverse_layer_idx": True}, "inverse layer index"),
    ({"model_type": "gpt_neox"}, "model_type"),
])
def test_unsupported_configs(change, message):
    with pytest.raises(BiofmError, match=message):
        gpt2_config_to_backbone({"model_type": "gpt2", **change})


def test_config_defaults_are_gpt2s():
    fields = gpt2_config_to_backbone({"model_type": "gpt2"})
    assert (fields["vocab_size"], fields["d_model"], fields["n_layers"], fields["d_ff"],
            fields["max_len"], fields["activation"]) == (50257, 768, 12, 3072, 1024, "gelu_tanh")


def test_vocabulary_of_no_known_modality_needs_the_caller(tmp_path):
    directory = tmp_path / "d"
    directory.mkdir()
    bpe = train_bpe(["the cat sat on the mat", "a dog in the fog"] * 5, vocab_size=60)
    bpe.model.save(str(directory))
    transformers.GPT2LMHeadModel(transformers.GPT2Config(
        vocab_size=bpe.get_vocab_size(), n_embd=16, n_layer=1, n_head=2, n_positions=16,
        bos_token_id=0, eos_token_id=0)).save_pretrained(directory)
    with pytest.raises(BiofmError, match="cannot tell the modality.*modality=") as info:
        load_pretrained(directory)
    assert str(directory) in str(info.value)
    assert load_hf_gpt2(directory, modality="molecule").config.data.modality == "molecule"
