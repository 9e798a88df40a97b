"""The 4-gram baseline against hand-computed Witten-Bell probabilities."""

from __future__ import annotations

import numpy as np

from pyserver.bench.ngram import TokenNgram


def test_bigram_by_hand() -> None:
    m = TokenNgram(vocab=4, order=2).fit([np.array([0, 1, 0, 1, 0, 2])])
    # add-one unigram: counts 3, 2, 1, 0 over 6 tokens -> (c + 1) / 10
    np.testing.assert_allclose(m.unigram, [0.4, 0.3, 0.2, 0.1])
    # after 0: continuations 1 (twice) and 2 (once): total 3, 2 types, lambda = 3 / 5
    np.testing.assert_allclose(m.distribution([0]), [0.4 * 0.4, 0.4 * 0.3 + 0.6 * 2 / 3, 0.4 * 0.2 + 0.6 / 3, 0.04])
    np.testing.assert_allclose(m.distribution([3]), m.unigram)  # unseen context backs off entirely
    # the start of a stream is its own context: only token 0 followed it
    np.testing.assert_allclose(m.distribution([]), 0.5 * m.unigram + 0.5 * np.eye(4)[0])


def test_distributions_sum_to_one(rng: np.random.Generator) -> None:
    streams = [rng.integers(0, 50, size=int(n)) for n in rng.integers(5, 400, size=20)]
    m = TokenNgram(vocab=50, order=4).fit(streams)
    for s in streams[:5]:
        for i in range(0, len(s), 7):
            p = m.distribution(list(s[:i]))
            assert abs(p.sum() - 1.0) < 1e-9 and (p > 0).all()
    # a context seen once, always followed by the same token, makes that token the most likely
    seq = [int(x) for x in streams[0][:4]]
    assert int(np.argmax(m.distribution(seq[:3]))) in {
        int(s[j + 3]) for s in streams for j in range(len(s) - 3) if [int(v) for v in s[j : j + 3]] == seq[:3]
    }
