"""The pre-trained LM news text vectors (frozen, cached) and the fine-tuning mode."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from newsrec.pipeline.text_encoder import (TextEncoderConfig, TextModelError, encode_texts, load_language_model,
                                   news_text_vectors)


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> Path:
    """A 2-layer random BERT with the MiniLM tokenizer, saved as a Hugging Face directory."""
    from transformers import BertConfig, BertModel

    tokenizer, _ = load_language_model("default")
    path = tmp_path_factory.mktemp("tiny-bert")
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=32, max_position_embeddings=128)).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_default_model_loads_offline_and_gives_sentence_vectors():
    tokenizer, model = load_language_model("default")
    texts = ["Riverton Hawks rally past a division rival", "Stocks slide on weak earnings", "",
             "Riverton Hawks rally past a division rival"]
    vectors = encode_texts(texts, tokenizer, model, 32, 2, torch.device("cpu"))
    assert vectors.shape == (4, 384)
    assert np.allclose(np.linalg.norm(vectors[[0, 1, 3]], axis=1), 1.0, atol=1e-5)
    assert not vectors[2].any()  # empty abstract -> zeros
    assert np.allclose(vectors[0], vectors[3], atol=1e-6)  # batching/sorting does not change a vector
    assert vectors[0] @ vectors[1] < 0.5


def test_vectors_are_cached_by_model_and_text(tmp_path: Path, tiny_bert: Path):
    config = TextEncoderConfig(model=str(tiny_bert))
    first = news_text_vectors(["a title"], ["an abstract"], config, torch.device("cpu"), tmp_path)
    assert first.shape == (1, 2, 16) and len(list(tmp_path.glob("*.npy"))) == 1
    again = news_text_vectors(["a title"], ["an abstract"], config, torch.device("cpu"), tmp_path)
    assert np.array_equal(first, again) and len(list(tmp_path.glob("*.npy"))) == 1
    news_text_vectors(["another title"], ["an abstract"], config, torch.device("cpu"), tmp_path)
    assert len(list(tmp_path.glob("*.npy"))) == 2


def test_unloadable_model_is_a_clear_error(tmp_path: Path):
    with pytest.raises(TextModelError, match="cannot load language model"):
        load_language_model(str(tmp_path / "no-such-model"))


def test_fine_tuning_trains_only_the_top_layers(tiny_demo: Path, tiny_bert: Path, tmp_path: Path):
    from newsrec.pipeline.checkpoint import load_checkpoint
    from newsrec.pipeline.training import TrainConfig, train

    config = TrainConfig(model="unirec", epochs=1, recall_epochs=0, batch_size=32, max_impressions=120,
                         finetune_layers=1, text=TextEncoderConfig(model=str(tiny_bert), title_tokens=16,
                                                                   abstract_tokens=16))
    train(tiny_demo, tmp_path / "ft", config, log=lambda line: None)
    model = load_checkpoint(tmp_path / "ft").model
    assert model.config.news.finetune_layers == 1
    original = load_language_model(str(tiny_bert))[1].state_dict()
    tuned = model.news_encoder.language_model.state_dict()
    changed = {k for k in original if not torch.equal(original[k], tuned[k])}
    assert changed and all(k.startswith("encoder.layer.1.") for k in changed)


@pytest.mark.parametrize("runtime", ["torch-int8", "onnx", "onnx-int8"])
def test_each_cpu_runtime_gives_the_float32_vectors_within_tolerance_and_its_own_cache_key(runtime, tiny_bert: Path,
                                                                                        tmp_path: Path):
    titles, abstracts = ["Riverton Hawks rally past a division rival", "Stocks slide"], ["", "Earnings were weak"]
    reference = news_text_vectors(titles, abstracts, TextEncoderConfig(model=str(tiny_bert)), torch.device("cpu"),
                                  tmp_path)
    other = news_text_vectors(titles, abstracts, TextEncoderConfig(model=str(tiny_bert), runtime=runtime),
                              torch.device("cpu"), tmp_path)
    assert len(list(tmp_path.glob("*.npy"))) == 2  # never served another runtime's vectors
    assert not other[0, 1].any()  # the empty abstract stays zeros
    present = reference.reshape(-1, 16)[[0, 2, 3]], other.reshape(-1, 16)[[0, 2, 3]]
    cosine = (present[0] * present[1]).sum(-1)
    exact = runtime == "onnx"
    assert cosine.min() > (0.99999 if exact else 0.98), cosine
    difference = np.abs(reference - other).max()
    assert difference < 1e-4 if exact else difference > 1e-6  # int8 really is another arithmetic


def test_an_unknown_runtime_or_one_off_its_device_is_refused():
    from newsrec.pipeline.lm_runtime import RuntimeChoiceError, require_runtime

    with pytest.raises(RuntimeChoiceError, match="unknown LM runtime 'tensorrt'"):
        require_runtime("tensorrt", torch.device("cpu"))
    with pytest.raises(RuntimeChoiceError, match="runs on CPU only"):
        require_runtime("onnx-int8", torch.device("cuda"))


def test_exporting_to_onnx_leaves_the_callers_model_as_it_was(tiny_bert: Path, tmp_path: Path):
    from newsrec.pipeline.lm_runtime import export

    _, model = load_language_model(str(tiny_bert))
    model.eval()
    export(model, tmp_path / "lm.onnx")
    assert not model.training  # left in train mode, the PyTorch runtime would run dropout
    model.train()
    export(model, tmp_path / "lm2.onnx")
    assert model.training
