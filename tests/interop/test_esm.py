"""ESM-2 interop: name-map round trip, parity with a random tiny `transformers` twin
in both directions, and clear errors on bad directories."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch
import transformers

from biofm.config import PretrainConfig
from biofm.errors import BiofmError
from biofm.interop import (biofm_to_esm, esm_config_to_backbone, esm_to_biofm,
                           is_hf_esm_dir, load_hf_esm, load_pretrained, save_hf_esm)
from biofm.modalities.proteins.tokenizer import ESM2_VOCAB, EsmTokenizer
from biofm.model import FoundationModel

ATOL = 1e-4
HF_TINY = dict(vocab_size=33, hidden_size=64, num_hidden_layers=3, num_attention_heads=4,
               intermediate_size=128, max_position_embeddings=64, token_dropout=True,
               position_embedding_type="rotary", pad_token_id=1, mask_token_id=32,
               layer_norm_eps=1e-5, emb_layer_norm_before=False,
               hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
SEQUENCES = ["MKTAYIAKQRQISFVKSHFSRQ", "MK<mask>AYIA", "GSHM<mask>LE<mask>K", "A"]


def perturb(module: torch.nn.Module, seed: int) -> None:
    """Non-trivial LayerNorm scales and biases (init leaves them at 1 and 0)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))


def write_vocab(directory: Path, vocab: tuple[str, ...] | list[str] = ESM2_VOCAB) -> None:
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n")


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, Path]:
    torch.manual_seed(0)
    model = transformers.EsmForMaskedLM(transformers.EsmConfig(**HF_TINY)).eval()
    perturb(model, seed=1)
    directory = tmp_path_factory.mktemp("hf_esm")
    model.save_pretrained(directory)
    write_vocab(directory)
    return model, directory


def padded_batch(tok: EsmTokenizer) -> tuple[torch.Tensor, torch.Tensor]:
    ids = [tok.encode(s) for s in SEQUENCES]
    T = max(map(len, ids))
    input_ids = torch.tensor([s + [tok.pad_id] * (T - len(s)) for s in ids])
    return input_ids, input_ids != tok.pad_id


def tiny_biofm(**backbone: object) -> FoundationModel:
    config = PretrainConfig.from_dict({
        "backbone": {"size": None, "d_model": 64, "n_layers": 2, "n_heads": 4, "d_ff": 128,
                     "max_len": 64, "token_dropout": True, **backbone},
        "objective": {"name": "mlm"}})
    torch.manual_seed(0)
    model = FoundationModel(config, EsmTokenizer()).eval()
    perturb(model, seed=2)
    return model


# -- pure converters ---------------------------------------------------------------

def test_name_map_round_trip(hf_dir):
    hf_model, _ = hf_dir
    state = {k: v for k, v in hf_model.state_dict().items()
             if "contact_head" not in k and "inv_freq" not in k}
    ours = esm_to_biofm(state)
    assert set(ours) == set(tiny_biofm(n_layers=3).state_dict())
    back = biofm_to_esm(ours)
    assert set(back) == set(state)
    assert all(back[k] is state[k] for k in state)


def test_esm_model_keys_and_legacy_layernorm_names(hf_dir):
    hf_model, _ = hf_dir
    bare = {k.removeprefix("esm."): v for k, v in hf_model.state_dict().items()
            if k.startswith("esm.")}  # EsmModel layout
    legacy = lambda k: k.replace("LayerNorm.weight", "LayerNorm.gamma").replace(  # noqa: E731
        "LayerNorm.bias", "LayerNorm.beta")
    bare = {legacy(k): v for k, v in bare.items()}
    ours = esm_to_biofm(bare)
    assert "backbone.layers.2.mlp_norm.weight" in ours and "backbone.final_norm.bias" in ours
    assert not any(k.startswith("objective.") for k in ours)


def test_unmappable_key_is_an_error():
    with pytest.raises(BiofmError, match="position_embeddings"):
        esm_to_biofm({"esm.embeddings.position_embeddings.weight": torch.zeros(3, 4)})
    with pytest.raises(BiofmError, match="no ESM counterpart"):
        biofm_to_esm({"backbone.embed_positions.weight": torch.zeros(3, 4)})


@pytest.mark.parametrize("change, message", [
    ({"position_embedding_type": "relative_key"}, "rotary .* or absolute"),
    ({"emb_layer_norm_before": True}, "emb_layer_norm_before"),
    ({"is_decoder": True}, "decoder"),
    ({"model_type": "bert"}, "model_type"),
])
def test_unsupported_configs(change, message):
    config = {**HF_TINY, "model_type": "esm", **change}
    with pytest.raises(BiofmError, match=message):
        esm_config_to_backbone(config)


def test_config_fields():
    fields = esm_config_to_backbone({**HF_TINY, "model_type": "esm"})
    assert fields["max_len"] == 64 and fields["position"] == "rope" and fields["token_dropout"]
    assert (fields["pad_id"], fields["mask_id"], fields["norm_eps"]) == (1, 32, 1e-5)


# -- parity ------------------------------------------------------------------------

def test_hf_to_biofm_parity(hf_dir):
    hf_model, directory = hf_dir
    assert is_hf_esm_dir(directory)
    model = load_hf_esm(directory).eval()
    input_ids, mask = padded_batch(model.tokenizer)
    with torch.no_grad():
        ref = hf_model(input_ids, attention_mask=mask.long(), output_hidden_states=True)
        out = model.backbone(input_ids, mask, output_hidden_states=True)
        logits = model.objective.logits(out.last_hidden_state)
    assert len(out.hidden_states) == len(ref.hidden_states) == HF_TINY["num_hidden_layers"] + 1
    for ours, theirs in zip(out.hidden_states, ref.hidden_states):
        torch.testing.assert_close(ours[mask], theirs[mask], atol=ATOL, rtol=0)
    torch.testing.assert_close(logits[mask], ref.logits[mask], atol=ATOL, rtol=0)


def test_biofm_to_hf_parity(tmp_path):
    model = tiny_biofm()
    save_hf_esm(model, tmp_path)
    hf_model, info = transformers.EsmForMaskedLM.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["unexpected_keys"] and not info["mismatched_keys"]
    assert {k for k in info["missing_keys"]} <= {"esm.contact_head.regression.weight",
                                                 "esm.contact_head.regression.bias"}
    hf_tok = transformers.EsmTokenizer.from_pretrained(tmp_path)
    assert hf_tok(SEQUENCES[1])["input_ids"] == model.tokenizer.encode(SEQUENCES[1])
    input_ids, mask = padded_batch(model.tokenizer)
    with torch.no_grad():
        ref = hf_model.eval()(input_ids, attention_mask=mask.long()).logits
        ours = model.objective.logits(model.backbone(input_ids, mask).last_hidden_state)
    torch.testing.assert_close(ours[mask], ref[mask], atol=ATOL, rtol=0)
    # and back: HF dir written by biofm loads into the same weights
    again = load_hf_esm(tmp_path)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(again.state_dict()[key], value, atol=0, rtol=0)


def test_pytorch_bin_and_esm_model_dirs(tmp_path, hf_dir):
    hf_model, directory = hf_dir
    (tmp_path / "config.json").write_text((directory / "config.json").read_text())
    write_vocab(tmp_path)
    torch.save(hf_model.state_dict(), tmp_path / "pytorch_model.bin")
    torch.testing.assert_close(load_hf_esm(tmp_path).state_dict()["objective.head.bias"],
                               hf_model.lm_head.bias.detach())
    (tmp_path / "pytorch_model.bin").unlink()
    torch.save(hf_model.esm.state_dict(), tmp_path / "pytorch_model.bin")  # EsmModel: no head
    with pytest.warns(UserWarning, match="randomly initialised"):
        model = load_hf_esm(tmp_path)
    torch.testing.assert_close(model.backbone.final_norm.weight,
                               hf_model.esm.encoder.emb_layer_norm_after.weight.detach())


def test_sharded_safetensors(tmp_path, hf_dir):
    from safetensors.torch import load_file, save_file
    _, directory = hf_dir
    state = load_file(directory / "model.safetensors")
    names = sorted(state)
    shards = {"model-00001-of-00002.safetensors": names[::2],
              "model-00002-of-00002.safetensors": names[1::2]}
    for shard, keys in shards.items():
        save_file({k: state[k] for k in keys}, tmp_path / shard, metadata={"format": "pt"})
    weight_map = {k: shard for shard, keys in shards.items() for k in keys}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    (tmp_path / "config.json").write_text((directory / "config.json").read_text())
    write_vocab(tmp_path)
    reference = load_hf_esm(directory).state_dict()
    for key, value in load_hf_esm(tmp_path).state_dict().items():
        assert torch.equal(value, reference[key]), key
    (tmp_path / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(BiofmError, match="shard model-00002-of-00002.safetensors .* missing"):
        load_hf_esm(tmp_path)


# -- errors and dispatch -----------------------------------------------------------

def copy_hf_dir(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for name in ("config.json", "model.safetensors", "vocab.txt"):
        (dst / name).write_bytes((src / name).read_bytes())
    return dst


def test_truncated_weights_name_the_file(tmp_path, hf_dir):
    directory = copy_hf_dir(hf_dir[1], tmp_path / "hf")
    data = (directory / "model.safetensors").read_bytes()
    (directory / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(BiofmError, match="model.safetensors.*truncated"):
        load_hf_esm(directory)

    saved = tiny_biofm().save(tmp_path / "ours")
    data = (saved / "model.safetensors").read_bytes()
    (saved / "model.safetensors").write_bytes(data[:100])
    with pytest.raises(BiofmError, match="model.safetensors"):
        FoundationModel.load(saved)


@pytest.mark.parametrize("breakage, message", [
    ("no_weights", "no weights file"),
    ("no_vocab", "vocab.txt"),
    ("other_vocab", "not ESM-2's"),
    ("bert", "model_type"),
    ("no_config", "config.json is missing"),
])
def test_bad_hf_dirs(tmp_path, hf_dir, breakage, message):
    directory = copy_hf_dir(hf_dir[1], tmp_path / "hf")
    config = json.loads((directory / "config.json").read_text())
    if breakage == "no_weights":
        (directory / "model.safetensors").unlink()
    elif breakage == "no_vocab":
        (directory / "vocab.txt").unlink()
    elif breakage == "other_vocab":
        write_vocab(directory, list(ESM2_VOCAB[:-1]) + ["<MASK>"])
    elif breakage == "bert":
        (directory / "config.json").write_text(json.dumps({**config, "model_type": "bert"}))
    else:
        (directory / "config.json").unlink()
    with pytest.raises(BiofmError, match=message):
        load_hf_esm(directory)


def test_export_needs_encoder_mlm(tmp_path):
    config = PretrainConfig.from_dict({"backbone": {"kind": "decoder"},
                                       "objective": {"name": "clm"}})
    with pytest.raises(BiofmError, match="cannot export.*decoder"):
        save_hf_esm(FoundationModel(config, EsmTokenizer()), tmp_path)
    with pytest.raises(BiofmError, match="cannot export.*learned"):
        save_hf_esm(tiny_biofm(position="learned"), tmp_path)


def test_load_pretrained_dispatch(tmp_path, hf_dir):
    ours = tiny_biofm().save(tmp_path / "ours")
    assert isinstance(load_pretrained(ours), FoundationModel)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_pretrained(hf_dir[1]).config.backbone.n_layers == 3
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(BiofmError, match="'gpt2'"):
        load_pretrained(tmp_path / "other")
    with pytest.raises(BiofmError, match="does not exist"):
        load_pretrained(tmp_path / "missing")


# -- Nucleotide Transformer (ESM architecture, 6-mer vocabulary) -----------------------

def nt_vocab() -> list[str]:
    import itertools
    kmers = ["".join(p) for p in itertools.product("ATCG", repeat=6)]  # NT's own order
    return ["<unk>", "<pad>", "<mask>", "<cls>", "<eos>", "<bos>", *kmers, "A", "T", "C", "G", "N"]


@pytest.fixture(scope="module")
def hf_nt_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, Path]:
    vocab = nt_vocab()
    config = transformers.EsmConfig(
        vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, max_position_embeddings=40, position_embedding_type="absolute",
        pad_token_id=1, mask_token_id=2, token_dropout=False, emb_layer_norm_before=False,
        layer_norm_eps=1e-12, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    torch.manual_seed(0)
    model = transformers.EsmForMaskedLM(config).eval()
    perturb(model, seed=3)
    directory = tmp_path_factory.mktemp("hf_nt")
    model.save_pretrained(directory)
    write_vocab(directory, vocab)
    return model, directory


def test_nucleotide_transformer_directory_loads_with_parity(hf_nt_dir):
    hf_model, directory = hf_nt_dir
    ours = load_pretrained(directory).eval()
    assert ours.config.data.modality == "dna" and ours.tokenizer.name == "dna-nt6"
    assert ours.config.backbone.position == "learned" and ours.config.backbone.max_len == 38
    tok = ours.tokenizer
    assert not tok.adds_eos  # no eos_token declared: <cls> + body, as NT's tokenizer does
    hf_tok = transformers.EsmTokenizer(str(directory / "vocab.txt"), eos_token=None)
    seqs = ["ATGCGTACGTTAGCNNACGTAC", "GGGCCCAAATTTG", "ACGTAC"]
    ids = [tok.encode(s) for s in seqs]
    assert ids[1] == hf_tok(seqs[1])["input_ids"]  # non-overlapping 6-mers, then single bases
    assert ids[2] == [tok.bos_id, tok.token_to_id["ACGTAC"]]
    T = max(map(len, ids))
    input_ids = torch.tensor([s + [tok.pad_id] * (T - len(s)) for s in ids])
    mask = input_ids != tok.pad_id
    with torch.no_grad():
        theirs = hf_model(input_ids=input_ids, attention_mask=mask, output_hidden_states=True)
        mine = ours.backbone(input_ids, mask, output_hidden_states=True)
        logits = ours.objective.logits(mine.last_hidden_state)
    for a, b in zip(mine.hidden_states, theirs.hidden_states):
        torch.testing.assert_close(a[mask], b[mask], atol=ATOL, rtol=0)
    torch.testing.assert_close(logits[mask], theirs.logits[mask], atol=ATOL, rtol=0)


def test_nt_vocab_without_specials_is_a_clear_error(tmp_path, hf_nt_dir):
    _, directory = hf_nt_dir
    for name in ("config.json", "model.safetensors"):
        (tmp_path / name).write_bytes((directory / name).read_bytes())
    write_vocab(tmp_path, [t for t in nt_vocab() if t != "<eos>"])
    with pytest.raises(BiofmError, match="lacks <eos>"):
        load_pretrained(tmp_path)
