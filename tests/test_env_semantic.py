from __future__ import annotations

import os
import subprocess
import sys
import warnings

import pytest

from infopo.envs import semantic
from infopo.envs.semantic import SemanticMatcher, lexical_similarity, tokens


@pytest.fixture(scope="module")
def embedding() -> SemanticMatcher:
    matcher = SemanticMatcher("embedding")
    assert matcher.backend == "embedding"
    return matcher


def test_embedding_paraphrase_beats_unrelated(embedding: SemanticMatcher) -> None:
    query = "How many days will you stay in Lisbon?"
    paraphrase = "What is the duration of your trip to Lisbon?"
    unrelated = "Do you have any allergies to nuts?"
    assert embedding.similarity(query, paraphrase) > embedding.similarity(query, unrelated) + 0.2
    assert embedding.similarity(query, query) == pytest.approx(1.0, abs=1e-5)
    index, score = embedding.best_match(
        "Is it a living thing?", ["Is it a vehicle?", "Is it alive?", "Is it red?"]
    )
    assert index == 1 and score > 0.6
    assert embedding.matches("Is it alive?", "Is it a living thing?")
    assert not embedding.matches("Is it alive?", "Does it have wheels?")
    assert embedding.best_match("x", []) == (-1, 0.0)


def test_embedding_cache_reuses_rows(embedding: SemanticMatcher) -> None:
    embedder = semantic._embedder()
    first = embedder.encode(["cached sentence", "another"])
    size = len(embedder._cache)
    second = embedder.encode(["another", "cached sentence", "another"])
    assert len(embedder._cache) == size
    assert second.shape == (3, 384)
    assert (second[1] == first[0]).all() and (second[0] == first[1]).all()


def test_lexical_scores() -> None:
    lexical = SemanticMatcher("lexical")
    assert lexical.backend == "lexical" and lexical.threshold == 0.5
    assert tokens("What are the budgets for the trips?") == {"budget", "trip"}
    assert lexical.similarity("What is your budget?", "Budget for the trip") == pytest.approx(2 * 1 / (1 + 2))
    # Question words carry no content: a bare "What?" matches no detail (a policy learned to exploit it).
    assert tokens("What? Which one, and how, when, where, who, why?") == {"one"}
    assert lexical_similarity("What?", "What is your budget?") == 0.0
    assert lexical.similarity("the of and", "budget") == 0.0
    assert lexical_similarity("Eiffel Tower", "the eiffel tower") == 1.0
    assert lexical.best_match("trip budget", ["dietary needs", "budget of the trip"]) == (1, 1.0)
    assert lexical.matches("What is your budget?", "What budget do you have?")
    assert not lexical.matches("What is your budget?", "How many guests?")


def test_auto_falls_back_to_lexical_with_one_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> None:
        raise ImportError("no model package")

    monkeypatch.setattr(semantic, "_embedder", broken)
    monkeypatch.setattr(semantic, "_warned", False)
    with pytest.warns(RuntimeWarning, match="using lexical matching"):
        assert SemanticMatcher("auto").backend == "lexical"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the warning is given once per process
        assert SemanticMatcher().similarity("budget", "budget") == 1.0
    with pytest.raises(RuntimeError, match="cannot load the embedding model"):
        _ = SemanticMatcher("embedding").backend
    with pytest.raises(ValueError, match="unknown matcher backend"):
        SemanticMatcher("magic")  # type: ignore[arg-type]


def test_the_embedder_is_built_once_under_concurrent_first_use() -> None:
    """Threads that ask for the embedder at once share one construction (concurrent model loads break
    later ones in the process); a fresh process, since the embedder is cached per process."""
    code = (
        "import threading\n"
        "from infopo.envs import semantic\n"
        "threads = [threading.Thread(target=semantic._embedder) for _ in range(8)]\n"
        "[t.start() for t in threads]; [t.join() for t in threads]\n"
        "print(semantic._cached_embedder.cache_info().misses)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert out.stdout.strip() == "1"
