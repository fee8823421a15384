"""ESM-2 tokenizer: exact vocabulary, parity with transformers, documented policy."""

from __future__ import annotations

import numpy as np
import pytest

from biofm.errors import BiofmError
from biofm.modalities.proteins.tokenizer import ESM2_VOCAB, EsmTokenizer
from biofm.registry import MODALITIES, TOKENIZERS
from biofm.tokenizer import load_tokenizer

ESM2_TOKENS = ["<cls>", "<pad>", "<eos>", "<unk>", "L", "A", "G", "V", "S", "E", "R", "T",
               "I", "D", "P", "K", "Q", "N", "F", "Y", "M", "H", "W", "C", "X", "B", "U",
               "Z", "O", ".", "-", "<null_1>", "<mask>"]

# uppercase text on which transformers and we must agree id for id
PARITY = ["MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQAPILSRVGDGTQDNLSGAEKAVQVKVKALPDAQ",
          "UOBZX", "A.-G", "MK<mask>AL<mask>", "M J K", "ACDEFGHIKLMNPQRSTVWY", "J"]


@pytest.fixture(scope="module")
def tok() -> EsmTokenizer:
    return EsmTokenizer()


def write_vocab(directory, tokens) -> None:
    (directory / "vocab.txt").write_text("\n".join(tokens) + "\n")


def test_vocabulary_and_roles_are_esm2s(tok):
    assert list(ESM2_VOCAB) == ESM2_TOKENS and tok.vocab == ESM2_TOKENS
    assert (tok.bos_id, tok.pad_id, tok.eos_id, tok.unk_id, tok.mask_id) == (0, 1, 2, 3, 32)
    assert tok.vocab_size == 33
    assert TOKENIZERS.get("esm2") is EsmTokenizer


def test_matches_transformers_esm_tokenizer(tmp_path, tok):
    import transformers
    write_vocab(tmp_path, ESM2_TOKENS)
    hf = transformers.EsmTokenizer(str(tmp_path / "vocab.txt"))
    for text in PARITY:
        assert tok.encode(text) == hf(text)["input_ids"], text
        assert tok.encode(text, add_special_tokens=False) == hf(
            text, add_special_tokens=False)["input_ids"], text


def test_policy_uppercase_stop_whitespace_unknown(tok):
    assert tok.encode("mktay") == tok.encode("MKTAY")
    assert tok.encode("MKTAY*") == tok.encode("MKTAY")              # final stop dropped
    assert tok.split("M*K") == ["M", "*", "K"]                      # inner '*' is unknown
    assert tok.encode(" MK\tTA\nY ") == tok.encode("MKTAY")
    assert tok.encode("uobzx") == tok.encode("UOBZX") == [0, 26, 28, 25, 27, 24, 2]
    # one <unk> per unknown character keeps residue i at token i + 1
    assert tok.encode("MJJ1K", add_special_tokens=False) == [20, 3, 3, 3, 15]
    assert tok.split("mk<mask>a") == ["M", "K", "<mask>", "A"]      # literal specials kept
    assert tok.decode(tok.encode("mkta*")) == "MKTA"


def test_truncation_keeps_the_n_terminus(tok):
    ids = tok.encode("MKTAYIAK", max_length=5)
    assert ids == [0, 20, 15, 11, 2]
    assert tok.encode("MK", max_length=10) == [0, 20, 15, 2]


def test_random_crop_is_a_seeded_window(tok):
    seq = "ACDEFGHIKLMNPQRSTVWY"
    body = tok.encode(seq, add_special_tokens=False)
    crops = {tuple(tok.encode(seq, max_length=7, crop="random", rng=np.random.default_rng(s)))
             for s in range(20)}
    assert len(crops) > 1
    for ids in crops:
        assert len(ids) == 7 and ids[0] == 0 and ids[-1] == 2
        window = list(ids[1:-1])
        assert any(body[i:i + 5] == window for i in range(len(body) - 4))
    again = [tok.encode(seq, max_length=7, crop="random", rng=np.random.default_rng(3))
             for _ in range(2)]
    assert again[0] == again[1]
    with pytest.raises(BiofmError, match="rng="):
        tok.encode(seq, max_length=7, crop="random")
    with pytest.raises(BiofmError, match="unknown crop"):
        tok.encode(seq, max_length=7, crop="end")


def test_save_load_and_from_dict(tmp_path, tok):
    tok.save(tmp_path)
    again = load_tokenizer(tmp_path)
    assert isinstance(again, EsmTokenizer) and again.vocab == tok.vocab
    assert again.encode("mkta*") == tok.encode("mkta*")
    assert EsmTokenizer.from_dict(tok.to_dict()).specials == tok.specials


def test_from_hf_dir(tmp_path):
    write_vocab(tmp_path, ESM2_TOKENS)
    assert EsmTokenizer.from_hf_dir(tmp_path).vocab == ESM2_TOKENS
    with pytest.raises(BiofmError, match="no vocab.txt"):
        EsmTokenizer.from_hf_dir(tmp_path / "nowhere")
    swapped = ESM2_TOKENS.copy()
    swapped[4], swapped[5] = swapped[5], swapped[4]
    write_vocab(tmp_path, swapped)
    with pytest.raises(BiofmError, match=r"vocab.txt.*token 4 is 'A', ESM-2 has 'L'"):
        EsmTokenizer.from_hf_dir(tmp_path)
    write_vocab(tmp_path, ESM2_TOKENS[:-1])
    with pytest.raises(BiofmError, match="32 tokens"):
        EsmTokenizer.from_hf_dir(tmp_path)


def test_other_vocabularies_are_refused():
    with pytest.raises(BiofmError, match="not ESM-2's"):
        EsmTokenizer(["<cls>", "<pad>", "<eos>", "<unk>", "<mask>", "A"])


def test_protein_modality_is_registered(tmp_path):
    protein = MODALITIES.get("protein")
    assert protein.matches("x.faa") and protein.matches("X.FASTA.gz")
    assert not protein.matches("x.smi")
    assert isinstance(protein.build_tokenizer([]), EsmTokenizer)
    path = tmp_path / "p.fa"
    path.write_text(">a\nMK\n")
    assert [r.data for r in protein.read(path)] == ["MK"]
