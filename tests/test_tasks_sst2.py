"""gptlab.tasks.sst2: whole sentences, no dev sentence in train, labels intact."""

import pytest

from gptlab.datasets import DataUnavailableError
from gptlab.tasks import maximal_phrases, normalize_text, sst2


def test_maximal_phrases_keeps_what_no_longer_text_contains():
    texts = ["a charming and often affecting journey", "charming", "often affecting", "affecting journey",
             "journey", "not good", "good", "it is not"]
    assert maximal_phrases(texts) == {"a charming and often affecting journey", "not good", "it is not"}
    assert maximal_phrases(["good", "goodness"]) == {"good", "goodness"}  # words, not characters


def test_normalize_text():
    assert normalize_text("Bad .") == normalize_text("bad") == "bad"
    assert normalize_text("it 's  GOOD!") == "it s good"


@pytest.fixture(scope="module")
def data():
    try:
        return sst2(), sst2(phrases=True)
    except DataUnavailableError as e:  # no mirror and no network (CI always has the mirror)
        pytest.skip(f"SST-2 unavailable: {e}")


def test_sizes_and_labels(data):
    (train, dev), (phrases, dev2) = data
    assert len(dev) == len(dev2) == 872 and sum(y for _, y in dev) == 444
    assert len(train) == 6885 and sum(y for _, y in train) == 3595
    assert 66_000 < len(phrases) < 67_349  # every distinct phrase once
    assert all(y in (0, 1) and t == t.strip() and t for t, y in train + phrases)
    assert len({t for t, _ in train}) == len(train) and len({t for t, _ in phrases}) == len(phrases)
    text, label = train[0]  # unpacks as a pair
    assert isinstance(text, str) and isinstance(label, int)


def test_no_dev_sentence_leaks_into_train(data):
    (train, dev), (phrases, _) = data
    dev_norm = {normalize_text(t) for t, _ in dev}
    for rows in (train, phrases):
        assert not dev_norm & {normalize_text(t) for t, _ in rows}
    # the raw file does hold near-copies ('bad' vs dev's 'bad .'): the filter is needed
    assert "bad" in dev_norm and "bad" not in {t for t, _ in phrases}


def test_sentences_are_not_sub_phrases(data):
    (train, _), (phrases, _) = data
    sentences = {t for t, _ in train}
    assert sentences <= {t for t, _ in phrases}
    assert "charming" not in sentences and "charming" in {t for t, _ in phrases}
    # whole sentences look like dev's: similar mean length in characters
    def mean(rows):
        return sum(len(t) for t, _ in rows) / len(rows)

    assert abs(mean(train) - mean(data[0][1])) < 10 and mean(phrases) < 60
